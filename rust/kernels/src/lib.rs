//! ferrograd-kernels: all of ferrograd's arithmetic, with no knowledge of Python.
//!
//! Every kernel works on plain slices (row-major, C-contiguous), accepts `f32` and `f64`,
//! checks every length it is given (returning [`KernelError`] rather than panicking), runs
//! in parallel on the pool of [`threading`] and chooses its SIMD path at run time
//! ([`simd::Level`]). Work is split into blocks of a fixed size and every floating-point
//! reduction runs in a fixed order, so results are bitwise identical whatever the number
//! of threads.

pub mod conv;
pub mod elementwise;
pub mod error;
pub mod gemm;
pub mod linear;
pub mod optim;
pub mod pool;
pub mod rbm;
pub mod reduce;
pub mod rl;
pub mod rnn;
pub mod scalar;
pub mod simd;
pub mod softmax;
pub mod som;
pub mod spin;
pub mod threading;
pub mod vmath;

pub use error::KernelError;
pub use scalar::Float;

/// Result type of every fallible kernel.
pub type Result<T> = std::result::Result<T, KernelError>;
