//! A trained component (`OUT/model/`): `component.json` (its config) + `model.safetensors`
//! (official keys, f32) + `labels/` for priors. `jukebox train assemble` turns a VQ-VAE and three
//! priors into a model directory in the Hugging Face layout.

use super::ckpt::{read_safetensors, write_safetensors};
use crate::checkpoint::{Component, ModelDir};
use crate::config::{PriorConfig, VqvaeConfig};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ComponentConfig {
    Vqvae {
        vqvae: VqvaeConfig,
        steps: u64,
    },
    Prior {
        prior: Box<PriorConfig>,
        vqvae: VqvaeConfig,
        steps: u64,
    },
}

pub const COMPONENT_FILE: &str = "component.json";

/// Write a component directory.
pub fn write(dir: &Path, cfg: &ComponentConfig, weights: &HashMap<String, Tensor>) -> Result<()> {
    let meta = HashMap::from([(
        "format".to_string(),
        "jukebox-rs component (official keys)".to_string(),
    )]);
    write_safetensors(&dir.join("model.safetensors"), weights, meta)?;
    crate::util::atomic_write(
        &dir.join(COMPONENT_FILE),
        serde_json::to_string_pretty(cfg)?.as_bytes(),
    )
}

/// A component directory: either `dir` itself or `dir/model` (a training output folder).
pub fn find(dir: &Path) -> Option<PathBuf> {
    [dir.to_path_buf(), dir.join("model")]
        .into_iter()
        .find(|d| d.join(COMPONENT_FILE).is_file())
}

pub fn read(dir: &Path, device: &Device) -> Result<(ComponentConfig, HashMap<String, Tensor>)> {
    let d = find(dir).with_context(|| {
        format!(
            "{} has no {COMPONENT_FILE} (nor model/{COMPONENT_FILE})",
            dir.display()
        )
    })?;
    let p = d.join(COMPONENT_FILE);
    let cfg: ComponentConfig = serde_json::from_str(
        &std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?,
    )
    .with_context(|| format!("{} is not a valid component file", p.display()))?;
    let w = read_safetensors(&d.join("model.safetensors"), device)?;
    Ok((cfg, w))
}

/// A VQ-VAE from a training output / component dir, or from any model directory (HF layout or
/// official files): its config and official-key weights in f32.
pub fn load_vqvae(dir: &Path, device: &Device) -> Result<(VqvaeConfig, HashMap<String, Tensor>)> {
    if find(dir).is_some() {
        return match read(dir, device)? {
            (ComponentConfig::Vqvae { vqvae, .. }, w) => Ok((vqvae, w)),
            (ComponentConfig::Prior { .. }, _) => {
                bail!("{} holds a prior, not a VQ-VAE", dir.display())
            }
        };
    }
    let md = ModelDir::open(dir)
        .with_context(|| format!("cannot open the VQ-VAE in {}", dir.display()))?;
    let w = component_tensors(&md, Component::Vqvae, device)?;
    Ok((md.config.vqvae.clone(), w))
}

/// Every tensor of one component of a model directory, official keys, f32.
pub fn component_tensors(
    md: &ModelDir,
    c: Component,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let ct = md.component(c)?;
    let mut out = HashMap::new();
    for (official, key) in &ct.map {
        let t = ct
            .store
            .load(key, DType::F32, device)
            .with_context(|| format!("loading `{key}` from {}", md.path.display()))?;
        out.insert(official.clone(), t);
    }
    Ok(out)
}

/// A prior's weights for `--init`: from a component dir (any level) or a model directory.
pub fn load_prior_init(
    dir: &Path,
    level: usize,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    if find(dir).is_some() {
        return match read(dir, device)? {
            (ComponentConfig::Prior { prior, .. }, w) if prior.level == level => Ok(w),
            (ComponentConfig::Prior { prior, .. }, _) => {
                bail!(
                    "{} holds a level-{} prior, not level {level}",
                    dir.display(),
                    prior.level
                )
            }
            _ => bail!("{} holds a VQ-VAE, not a prior", dir.display()),
        };
    }
    let md = ModelDir::open(dir)
        .with_context(|| format!("cannot open the model in {}", dir.display()))?;
    component_tensors(&md, Component::Prior(level), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_roundtrip() -> Result<()> {
        let d = tempfile::tempdir()?;
        let dev = Device::Cpu;
        let cfg = ComponentConfig::Vqvae {
            vqvae: VqvaeConfig::official(),
            steps: 7,
        };
        let w = HashMap::from([(
            "bottleneck.level_blocks.0.k".to_string(),
            Tensor::ones((2, 3), DType::F32, &dev)?,
        )]);
        write(&d.path().join("model"), &cfg, &w)?;
        let (back, wb) = read(d.path(), &dev)?;
        assert_eq!(back, cfg);
        assert_eq!(wb["bottleneck.level_blocks.0.k"].dims(), &[2, 3]);
        let (vq, _) = load_vqvae(d.path(), &dev)?;
        assert_eq!(vq, VqvaeConfig::official());
        assert!(load_prior_init(d.path(), 0, &dev).is_err());
        Ok(())
    }
}
