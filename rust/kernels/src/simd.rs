//! Run-time choice of the SIMD instruction set.
//!
//! The wheel is built for baseline x86-64; kernels compile their fast paths with
//! `#[target_feature(enable = ...)]` and pick one here, once, from what the CPU reports.

use std::sync::OnceLock;

/// The widest SIMD level this CPU supports, in the order kernels prefer them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Portable code, no explicit SIMD (the compiler may still use SSE2 on x86-64).
    Scalar,
    /// AVX2 with FMA (256-bit vectors).
    Avx2Fma,
    /// AVX-512F (512-bit vectors).
    Avx512,
}

static LEVEL: OnceLock<Level> = OnceLock::new();

fn detect_level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        // FERROGRAD_SIMD=scalar|avx2|avx512 caps the level (for tests of every path).
        let cap = std::env::var("FERROGRAD_SIMD").ok();
        let allow = |name: &str| -> bool {
            match cap.as_deref() {
                None | Some("") => true,
                Some("scalar") => false,
                Some("avx2") => name == "avx2",
                Some(_) => true,
            }
        };
        if allow("avx512") && std::arch::is_x86_feature_detected!("avx512f") {
            return Level::Avx512;
        }
        if allow("avx2")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return Level::Avx2Fma;
        }
    }
    Level::Scalar
}

/// The SIMD level kernels use in this process (detected once).
pub fn level() -> Level {
    *LEVEL.get_or_init(detect_level)
}

/// A short name of the level in use, for diagnostics.
pub fn level_name() -> &'static str {
    match level() {
        Level::Scalar => "scalar",
        Level::Avx2Fma => "avx2+fma",
        Level::Avx512 => "avx512f",
    }
}
