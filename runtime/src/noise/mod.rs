//! Counter-based noise (placeholder, being written).
