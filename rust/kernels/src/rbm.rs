//! Boltzmann-machine kernels: seeded Gibbs sampling and contrastive-divergence statistics.
