//! sample (being written).
