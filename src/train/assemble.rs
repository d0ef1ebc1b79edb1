//! `jukebox train assemble`: a VQ-VAE and one prior per level → a model directory in the Hugging
//! Face layout (`config.json` + `model.safetensors` with HF key names, `labels/`).

use super::ckpt::write_safetensors;
use super::component::{self, ComponentConfig};
use crate::checkpoint::{Component, KeyMap};
use crate::config::JukeboxConfig;
use crate::dataset::Vocab;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct AssembleOpts {
    pub vqvae: PathBuf,
    /// Trained priors, official order (`priors[0]` = bottom).
    pub priors: Vec<PathBuf>,
    pub out: PathBuf,
    /// Store weights as f16 (codebooks stay f32 so that codes do not change).
    pub f16: bool,
    /// Window hop fractions, official order.
    pub hop_fraction: Vec<f64>,
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Assembled {
    pub config: JukeboxConfig,
    pub tensors: usize,
    pub parameters: usize,
    pub bytes: u64,
}

pub fn assemble(opts: &AssembleOpts) -> Result<Assembled> {
    let dev = Device::Cpu;
    let (vq_cfg, vq_w) = component::load_vqvae(&opts.vqvae, &dev)?;
    let mut priors = Vec::new();
    let mut weights: Vec<(Component, HashMap<String, Tensor>)> = vec![(Component::Vqvae, vq_w)];
    let mut vocab: Option<(Vocab, PathBuf)> = None;
    for (level, dir) in opts.priors.iter().enumerate() {
        let (cfg, w) = read_prior(dir, level, &dev)?;
        let ComponentConfig::Prior { prior, vqvae, .. } = cfg else {
            bail!(
                "{} holds a VQ-VAE where the level-{level} prior was expected",
                dir.display()
            );
        };
        if prior.level != level {
            bail!(
                "{} is a level-{} prior, given for level {level}",
                dir.display(),
                prior.level
            );
        }
        if vqvae != vq_cfg {
            bail!(
                "{}: this prior was trained on codes of a different VQ-VAE than {}",
                dir.display(),
                opts.vqvae.display()
            );
        }
        let labels_dir = component::find(dir)
            .unwrap_or_else(|| dir.clone())
            .join("labels");
        if let Some(v) = Vocab::read(&labels_dir)? {
            match &vocab {
                Some((have, from)) if *have != v => {
                    bail!("{} and {} use different label vocabularies; train every prior on the same corpus", from.display(), labels_dir.display())
                }
                Some(_) => {}
                None => vocab = Some((v, labels_dir.clone())),
            }
        }
        let mut w = w;
        // HF layout stores the tied output head under both names.
        if !prior.merged_decoder && !w.contains_key("prior.x_out.weight") {
            if let Some(e) = w.get("prior.x_emb.weight") {
                w.insert("prior.x_out.weight".into(), e.clone());
            }
        }
        weights.push((Component::Prior(level), w));
        priors.push(*prior);
    }
    let config = JukeboxConfig {
        vqvae: vq_cfg,
        priors,
        hop_fraction: opts.hop_fraction.clone(),
    };
    config
        .validate()
        .context("the assembled model is inconsistent")?;
    let km = KeyMap::new(&config);
    let mut out: HashMap<String, Tensor> = HashMap::new();
    let mut parameters = 0;
    for (c, w) in &weights {
        for (k, t) in w {
            let hf = km
                .official_to_hf(*c, k)
                .with_context(|| format!("{c}: no HF name for `{k}`"))?;
            let keep_f32 = k.starts_with("bottleneck.");
            let t = if opts.f16 && !keep_f32 && t.dtype().is_float() {
                t.to_dtype(DType::F16)?
            } else {
                t.clone()
            };
            parameters += t.elem_count();
            if out.insert(hf.clone(), t).is_some() {
                bail!("two tensors map to the HF key `{hf}`");
            }
        }
    }
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let wpath = opts.out.join("model.safetensors");
    write_safetensors(&wpath, &out, meta)?;
    let json = serde_json::to_string_pretty(&config.to_hf_value())?;
    crate::util::atomic_write(&opts.out.join("config.json"), json.as_bytes())?;
    if let Some((v, _)) = &vocab {
        v.write(&opts.out.join("labels"))?;
    }
    let bytes = std::fs::metadata(&wpath).map(|m| m.len()).unwrap_or(0);
    Ok(Assembled {
        config,
        tensors: out.len(),
        parameters,
        bytes,
    })
}

/// A prior from a training output / component dir, or the level-`level` prior of a model
/// directory (so that a new VQ-VAE decoder can be assembled with a shipped model's priors).
fn read_prior(
    dir: &Path,
    level: usize,
    dev: &Device,
) -> Result<(ComponentConfig, HashMap<String, Tensor>)> {
    if component::find(dir).is_some() {
        return component::read(dir, dev);
    }
    let md = crate::checkpoint::ModelDir::open(dir).with_context(|| {
        format!(
            "{} is neither a `train prior` output nor a model directory",
            dir.display()
        )
    })?;
    let prior = md
        .config
        .priors
        .get(level)
        .with_context(|| format!("{} has no level-{level} prior", dir.display()))?
        .clone();
    let w = component::component_tensors(&md, Component::Prior(level), dev)?;
    let cfg = ComponentConfig::Prior {
        prior: Box::new(prior),
        vqvae: md.config.vqvae.clone(),
        steps: 0,
    };
    Ok((cfg, w))
}

/// Convenience: the prior dirs of a training folder laid out as `ROOT/{bottom,middle,top}`.
pub fn default_prior_dirs(root: &Path) -> Vec<PathBuf> {
    crate::level::NAMES.iter().map(|n| root.join(n)).collect()
}
