//! The sampling pipeline: ancestral, primed, continue and upsample across the three levels,
//! windowed as the official `sample.py`, resumable after every window.

pub mod windows;
