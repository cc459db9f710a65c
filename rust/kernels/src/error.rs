//! The error every kernel returns instead of panicking.

use std::fmt;

/// A kernel was called with arguments that do not fit together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelError {
    /// A buffer is shorter than the shape and strides it is used with need.
    BufferTooSmall {
        op: &'static str,
        what: &'static str,
        needed: usize,
        given: usize,
    },
    /// Two shapes or lengths that must agree do not.
    ShapeMismatch { op: &'static str, detail: String },
    /// An argument outside its allowed range.
    InvalidArgument { op: &'static str, detail: String },
    /// A size computation overflowed `usize`.
    Overflow { op: &'static str },
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::BufferTooSmall {
                op,
                what,
                needed,
                given,
            } => write!(
                f,
                "{op}: buffer {what} needs at least {needed} elements, given {given}"
            ),
            KernelError::ShapeMismatch { op, detail } => write!(f, "{op}: {detail}"),
            KernelError::InvalidArgument { op, detail } => write!(f, "{op}: {detail}"),
            KernelError::Overflow { op } => write!(f, "{op}: size computation overflows"),
        }
    }
}

impl std::error::Error for KernelError {}

/// Checks that `given >= needed`, naming the buffer otherwise.
pub fn check_len(
    op: &'static str,
    what: &'static str,
    needed: usize,
    given: usize,
) -> crate::Result<()> {
    if given < needed {
        Err(KernelError::BufferTooSmall {
            op,
            what,
            needed,
            given,
        })
    } else {
        Ok(())
    }
}

/// Multiplies sizes, reporting overflow as an error.
pub fn checked_product(op: &'static str, dims: &[usize]) -> crate::Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or(KernelError::Overflow { op })
}
