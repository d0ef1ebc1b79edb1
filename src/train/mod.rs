//! Training: losses, the EMA codebook, the optimiser, and the training loops behind
//! `jukebox train vqvae|prior|assemble`.

pub mod loss;
pub mod optim;
pub mod rng;
pub mod ema;
pub mod stats;
pub mod init;
pub mod ckpt;
pub mod data;
pub mod log;
pub mod vqvae;
pub mod prior;
pub mod config;
pub mod component;
pub mod driver;
pub mod run_vqvae;
pub mod run_prior;
