//! prior (being written).
