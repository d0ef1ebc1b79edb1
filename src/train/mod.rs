//! Training: losses, the EMA codebook, the optimiser, and the training loops behind
//! `jukebox train vqvae|prior|assemble`.

pub mod assemble;
pub mod ckpt;
pub mod component;
pub mod config;
pub mod data;
pub mod driver;
pub mod ema;
pub mod init;
pub mod log;
pub mod loss;
pub mod optim;
pub mod prior;
pub mod rng;
pub mod run_prior;
pub mod run_vqvae;
pub mod stats;
pub mod vqvae;
