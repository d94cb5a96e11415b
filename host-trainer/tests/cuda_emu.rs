//! Tier 2 and 3 of the CUDA backend (being written).
