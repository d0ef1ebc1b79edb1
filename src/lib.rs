//! jukebox-rs: OpenAI Jukebox rebuilt in Rust.
//!
//! Data flow: [`audio`] → [`vqvae`] → [`prior`] → [`sample`] → [`study`], with [`checkpoint`],
//! [`ops`] and [`train`] beside them. Levels use the official numbering: 0 = bottom (hop 8),
//! 1 = middle (hop 32), 2 = top (hop 128).

pub mod audio;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod dataset;
pub mod drums;
pub mod dsp;
pub mod error;
pub mod facade;
pub mod guard;
pub mod labels;
pub mod level;
pub mod model;
pub mod ops;
pub mod parity;
pub mod prior;
pub mod quality;
pub mod sample;
pub mod serve;
pub mod spectral;
pub mod study;
pub mod train;
pub mod util;
pub mod vqvae;

pub use candle_core as candle;
pub use error::{Error, ErrorKind};
pub use facade::{Jukebox, Takes};
