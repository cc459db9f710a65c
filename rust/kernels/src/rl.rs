//! Reinforcement-learning kernels: Bellman backups for finite MDPs.
