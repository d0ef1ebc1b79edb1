//! study (being written).
