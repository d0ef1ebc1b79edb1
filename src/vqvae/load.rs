//! Loading the VQ-VAE from a model directory (any layout `checkpoint::ModelDir` reads).

use super::VqVae;
use crate::checkpoint::{Component, ModelDir, ShapeRecorder};
use anyhow::{Context, Result};
use candle_core::{DType, Device};
use std::path::Path;

/// Load the VQ-VAE of a model directory in f32 on the CPU. The directory's tensors are first
/// checked against the keys and shapes this config builds, so a bad checkpoint gives one error
/// listing every missing, unexpected or mis-shaped tensor.
pub fn load_model_dir(dir: &Path) -> Result<VqVae> {
    let md = ModelDir::open(dir)?;
    load_from(&md, DType::F32, &Device::Cpu)
}

/// Load the VQ-VAE of an opened model directory.
pub fn load_from(md: &ModelDir, dtype: DType, dev: &Device) -> Result<VqVae> {
    let cfg = &md.config.vqvae;
    let rec = ShapeRecorder::new();
    VqVae::new(cfg, rec.var_builder(dtype, dev)).context("recording the VQ-VAE's expected keys")?;
    md.check_component_against(Component::Vqvae, &rec.records())?;
    crate::guard::check_component_fits(md, Component::Vqvae)?;
    let vb = md.vqvae_vb(dtype, dev)?;
    VqVae::new(cfg, vb).with_context(|| format!("building the VQ-VAE from {}", md.path.display()))
}
