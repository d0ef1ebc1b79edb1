//! `RUN_DIR/run.toml`: everything needed to resume or reproduce a run.

use crate::checkpoint::ModelDir;
use crate::prior::WeightFormat;
use crate::util::atomic_write;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// How a run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// From nothing.
    Ancestral,
    /// Continuing the VQ-VAE codes of a prompt WAV.
    Primed,
}

/// One generated item: its labels and its seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemSpec {
    pub artist: String,
    /// Repeated genres give one item a bag of genres.
    pub genres: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lyrics: Option<String>,
    pub seed: u64,
}

/// Sampling settings of one level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelSettings {
    pub temperature: f64,
    pub top_k: usize,
    pub top_p: f64,
    /// Window hop as a fraction of n_ctx (official `hop_fraction`).
    pub hop_fraction: f64,
}

/// The run file. Field order is the file's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Crate version that wrote the file.
    pub version: String,
    pub model: PathBuf,
    /// sha256 of the model config and its tensor names/shapes (see [`model_identity`]).
    pub model_id: String,
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<PathBuf>,
    /// Prompt length actually used, in samples (a multiple of the top hop).
    #[serde(default)]
    pub prompt_samples: usize,
    /// Total length of each sample, prompt included, in samples.
    pub sample_length: usize,
    /// The song-length label, in samples.
    pub total_length: usize,
    pub sample_rate: u32,
    /// Levels to sample, official numbering.
    pub levels: Vec<usize>,
    /// Settings per level, official order (index = level).
    pub settings: Vec<LevelSettings>,
    /// Prime tokens prefilled per pass.
    pub chunk_size: usize,
    /// Items sampled together in one batch.
    pub max_batch: usize,
    pub items: Vec<ItemSpec>,
    /// Items sampled at each lower level (`upsample --samples`), by level; all when absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub level_items: Vec<Vec<usize>>,
    /// How the priors store their dense weights while sampling (`--dtype`; f32 as loaded
    /// unless asked). Part of the run: it changes the tokens.
    #[serde(default, skip_serializing_if = "WeightFormat::is_f32")]
    pub weights: WeightFormat,
    /// The run and take this run extends (`sample --continue RUN --take I`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Parent>,
}

/// Where a forked run came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parent {
    pub run: PathBuf,
    pub take: usize,
}

impl RunSpec {
    pub fn path(run_dir: &Path) -> PathBuf {
        run_dir.join("run.toml")
    }

    pub fn load(run_dir: &Path) -> Result<RunSpec> {
        let p = Self::path(run_dir);
        let text = std::fs::read_to_string(&p).with_context(|| {
            format!(
                "{} has no readable run.toml: is it a run directory?",
                run_dir.display()
            )
        })?;
        let spec: RunSpec = toml::from_str(&text)
            .with_context(|| format!("{} is corrupted or not a run file", p.display()))?;
        spec.validate()
            .with_context(|| format!("{} is inconsistent", p.display()))?;
        Ok(spec)
    }

    pub fn save(&self, run_dir: &Path) -> Result<()> {
        let text = toml::to_string_pretty(self).context("cannot serialise run.toml")?;
        atomic_write(&Self::path(run_dir), text.as_bytes())
    }

    pub fn validate(&self) -> Result<()> {
        if self.items.is_empty() {
            bail!("a run needs at least one item");
        }
        if self.sample_length == 0 {
            bail!("sample_length must be positive");
        }
        if self.prompt_samples >= self.sample_length && self.mode == Mode::Primed {
            bail!(
                "the prompt ({} samples) must be shorter than the requested length ({} samples)",
                self.prompt_samples,
                self.sample_length
            );
        }
        if self.levels.is_empty() {
            bail!("no levels to sample");
        }
        Ok(())
    }

    /// Items sampled at `level` (indices into `items`).
    pub fn items_at(&self, level: usize) -> Vec<usize> {
        match self.level_items.get(level) {
            Some(v) if !v.is_empty() => v.clone(),
            _ => (0..self.items.len()).collect(),
        }
    }
}

/// A model's identity: sha256 over its config and the sorted names and shapes of its tensors,
/// so a resumed run can refuse a different model.
pub fn model_identity(md: &ModelDir) -> Result<String> {
    let mut h = Sha256::new();
    h.update(serde_json::to_string(&md.config.to_hf_value())?.as_bytes());
    let mut comps = vec![crate::checkpoint::Component::Vqvae];
    for l in 0..md.config.priors.len() {
        comps.push(crate::checkpoint::Component::Prior(l));
    }
    for c in comps {
        let ct = md.component(c)?;
        let mut shapes: Vec<(String, Vec<usize>)> = ct.shapes().into_iter().collect();
        shapes.sort();
        for (k, s) in shapes {
            h.update(k.as_bytes());
            h.update(format!("{s:?};").as_bytes());
        }
    }
    Ok(format!("{:x}", h.finalize()))
}
