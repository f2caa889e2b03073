//! The `sim` backend: in memory, deterministic from a seed. (Being written.)
