//! Self-organizing map kernels: batched best-matching-unit search, neighbourhood-weighted
//! updates, the U-matrix.
