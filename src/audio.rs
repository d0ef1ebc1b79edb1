//! Audio I/O (placeholder: being written).
