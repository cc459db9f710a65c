//! Bindings of the pool kernels.

use pyo3::prelude::*;

/// Adds this module's functions to `ferrograd._native`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let _ = m;
    Ok(())
}
