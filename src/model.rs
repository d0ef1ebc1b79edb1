//! The one way to load a model: [`ModelDir::vqvae`] and [`ModelDir::prior`].
//!
//! A model directory (`checkpoint::ModelDir`) only knows files, keys and configs; building the
//! networks needs `vqvae` and `prior`, which sit above `checkpoint` in the data flow, so the
//! loaders live here, one layer above both. Every load does the same three things in the same
//! order: check the component's tensors against the key/shape table its config builds (one
//! error naming every missing, unexpected or mis-shaped tensor), check that it fits in memory
//! (`guard`), then build it.

use crate::checkpoint::{Component, ModelDir, ShapeRecorder};
use crate::config::JukeboxConfig;
use crate::error::{ModelMismatch, TensorMismatch};
use crate::prior::{Prior, WeightFormat};
use crate::vqvae::VqVae;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use std::path::Path;

impl ModelDir {
    /// The VQ-VAE in f32.
    pub fn vqvae(&self, dev: &Device) -> Result<VqVae> {
        self.vqvae_as(DType::F32, dev)
    }

    /// The VQ-VAE with weights in `dtype`.
    pub fn vqvae_as(&self, dtype: DType, dev: &Device) -> Result<VqVae> {
        self.check_component(Component::Vqvae)?;
        crate::guard::check_component_fits(self, Component::Vqvae)?;
        let vb = self.vqvae_vb(dtype, dev)?;
        VqVae::new(&self.config.vqvae, vb)
            .with_context(|| format!("loading the VQ-VAE of {}", self.path.display()))
    }

    /// The prior of official level `level` (0 bottom .. 2 top) in f32.
    pub fn prior(&self, level: usize, dev: &Device) -> Result<Prior> {
        self.prior_as(level, WeightFormat::F32, dev)
    }

    /// The prior of level `level` with its dense weights stored in `weights` (`--dtype`),
    /// converted layer by layer as they load; the memory check counts the converted sizes.
    pub fn prior_as(&self, level: usize, weights: WeightFormat, dev: &Device) -> Result<Prior> {
        if weights == WeightFormat::Q8 && !dev.is_cpu() {
            bail!("--dtype q8 runs on the CPU only (its int8 kernels have no GPU form): use f16 or bf16 on {dev:?}");
        }
        let cfg = self.config.priors.get(level).with_context(|| {
            format!(
                "{} has no prior for level {level} (it has levels 0..{})",
                self.path.display(),
                self.config.priors.len()
            )
        })?;
        self.check_component(Component::Prior(level))?;
        crate::guard::check_component_fits_as(self, Component::Prior(level), weights)?;
        let vb = self.prior_vb(level, DType::F32, dev)?;
        Prior::new_as(cfg, vb, weights)
            .with_context(|| format!("loading the level-{level} prior of {}", self.path.display()))
    }

    /// Check one component against the key/shape table its config builds. A tied output head
    /// (`prior.x_out.weight` absent with `merged_decoder` false) is allowed.
    pub fn check_component(&self, c: Component) -> Result<()> {
        let mut expected = expected_keys(&self.config, c)?;
        if let Component::Prior(l) = c {
            let tied = !self.config.priors[l].merged_decoder;
            let has_out = self
                .component(c)
                .map(|t| t.map.contains_key("prior.x_out.weight"))
                .unwrap_or(false);
            if tied && !has_out {
                expected.retain(|(k, _)| k != "prior.x_out.weight");
            }
        }
        self.check_component_against(c, &expected)
    }

    /// Check every component: one error listing every missing, unexpected and mis-shaped
    /// tensor of every component.
    pub fn validate(&self) -> Result<()> {
        let n = self.config.priors.len();
        let mut problems: Vec<(Component, anyhow::Error)> = std::iter::once(Component::Vqvae)
            .chain((0..n).map(Component::Prior))
            .filter_map(|c| self.check_component(c).err().map(|e| (c, e)))
            .collect();
        if problems.len() <= 1 {
            return problems.pop().map_or(Ok(()), |(_, e)| Err(e));
        }
        // Several components: listed one after the other, each typed under its name.
        let msgs: Vec<String> = problems.iter().map(|(_, e)| format!("{e:#}")).collect();
        let parts: Option<Vec<(String, TensorMismatch)>> = problems
            .iter()
            .map(|(c, e)| Some((c.to_string(), e.downcast_ref::<TensorMismatch>()?.clone())))
            .collect();
        match parts {
            Some(parts) => Err(ModelMismatch::new(parts, msgs.join("\n")).into()),
            None => bail!("{}", msgs.join("\n")),
        }
    }
}

/// The VQ-VAE of the model directory at `dir`, in f32 on the CPU.
pub fn vqvae_from_dir(dir: &Path) -> Result<VqVae> {
    ModelDir::open(dir)?.vqvae(&Device::Cpu)
}

/// The `(official key, shape)` table that the model code builds for component `c` of
/// `config`, recorded shape-only (no weights are allocated).
pub fn expected_keys(config: &JukeboxConfig, c: Component) -> Result<Vec<(String, Vec<usize>)>> {
    let rec = ShapeRecorder::new();
    let vb = rec.var_builder(DType::F32, &Device::Cpu);
    match c {
        Component::Vqvae => {
            VqVae::new(&config.vqvae, vb).context("building the VQ-VAE shape-only")?;
        }
        Component::Prior(l) => {
            let p = config
                .priors
                .get(l)
                .with_context(|| format!("the config has no prior level {l}"))?;
            Prior::new(p, vb).with_context(|| format!("building prior level {l} shape-only"))?;
        }
    }
    Ok(rec.records())
}
