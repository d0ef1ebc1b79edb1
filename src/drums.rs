//! drums (being written).
