//! Training configs (TOML) and the built-in presets.
//!
//! A config file has `[model]` (the official hyperparameters, as in `config::VqvaeConfig` /
//! `config::PriorConfig`), `[train]` (the loop), `[optim]` and, for the VQ-VAE, `[loss]`.
//! `jukebox train ... --print-config` prints a preset as a starting point.

use super::optim::OptimConfig;
use super::vqvae::VqLossConfig;
use crate::config::{ConditionerConfig, LabelConfig, PriorConfig, VqvaeConfig};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The training loop (both model kinds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoopConfig {
    pub batch_size: usize,
    /// VQ-VAE: window length in audio samples (a multiple of the top hop). Priors use n_ctx.
    pub window: usize,
    /// Total optimiser steps.
    pub steps: u64,
    pub seed: u64,
    /// Share of files held out for validation (stratified by artist).
    pub valid_fraction: f64,
    pub valid_every: u64,
    pub valid_windows: usize,
    pub ckpt_every: u64,
    pub keep_checkpoints: usize,
    /// Log a training row every N steps.
    pub log_every: u64,
    /// VQ-VAE: windows used for the bandwidth statistics.
    pub bandwidth_windows: usize,
    /// Priors: share of windows trained with artist and genres set to id 0 ("unknown").
    pub label_dropout: f64,
    /// Priors: share of windows with only the artist or only the genres set to 0 (half each),
    /// so that a genre with an unknown artist (what `rank-labels` scores) is trained too.
    pub label_dropout_single: f64,
    /// Priors: weight of the label-contrast term (0: off). Each window whose artist alone was
    /// dropped (`label_dropout_single`) is scored again under a genre it is not, and a wrong
    /// genre is asked to cost at least `label_margin` bits per token more (`train::labels`).
    pub label_contrast: f64,
    /// Priors: that margin, in bits per token.
    pub label_margin: f64,
    /// Priors: the official `init_scale`.
    pub init_scale: f64,
}

impl Default for LoopConfig {
    fn default() -> Self {
        Self {
            batch_size: 4,
            window: 32768,
            steps: 2000,
            seed: 0,
            valid_fraction: 0.1,
            valid_every: 250,
            valid_windows: 16,
            ckpt_every: 250,
            keep_checkpoints: 2,
            log_every: 10,
            bandwidth_windows: 64,
            label_dropout: 0.15,
            label_dropout_single: 0.0,
            label_contrast: 0.0,
            label_margin: 0.25,
            init_scale: 1.0,
        }
    }
}

impl LoopConfig {
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            bail!("train.batch_size must be at least 1");
        }
        if !(0.0..1.0).contains(&self.valid_fraction) {
            bail!(
                "train.valid_fraction must be in [0, 1), got {}",
                self.valid_fraction
            );
        }
        if !(0.0..=1.0).contains(&self.label_dropout_single)
            || self.label_dropout + self.label_dropout_single > 1.0
        {
            bail!(
                "train.label_dropout_single must be in [0, 1 - label_dropout], got {}",
                self.label_dropout_single
            );
        }
        if !(0.0..=1.0).contains(&self.label_dropout) {
            bail!(
                "train.label_dropout must be in [0, 1], got {}",
                self.label_dropout
            );
        }
        let ok = |x: f64| x >= 0.0 && x.is_finite();
        if !ok(self.label_contrast) || !ok(self.label_margin) {
            bail!(
                "train.label_contrast and train.label_margin must be finite and >= 0, got {} and {}",
                self.label_contrast,
                self.label_margin
            );
        }
        if self.valid_every == 0 || self.ckpt_every == 0 || self.log_every == 0 {
            bail!("train.valid_every, ckpt_every and log_every must be at least 1");
        }
        Ok(())
    }
}

/// `jukebox train vqvae` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VqvaeRunConfig {
    pub model: VqvaeConfig,
    #[serde(default)]
    pub train: LoopConfig,
    #[serde(default)]
    pub loss: VqLossConfig,
    #[serde(default)]
    pub optim: OptimConfig,
    /// Decoder-only fine-tuning (absent in ordinary runs).
    #[serde(default, skip_serializing_if = "Finetune::is_off")]
    pub finetune: Finetune,
}

/// `[finetune]` of a VQ-VAE run: train the decoders of a trained VQ-VAE (`--init`) while its
/// encoders and codebooks stay fixed, so that the codes, and every prior trained on them, stay
/// valid: a better decoder for a shipped model without retraining its priors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Finetune {
    pub decoders_only: bool,
    /// The levels whose decoders train (empty: every level); the others are not run.
    pub levels: Vec<usize>,
}

impl Finetune {
    pub fn is_off(&self) -> bool {
        !self.decoders_only && self.levels.is_empty()
    }
}

/// `jukebox train prior` config. `model.labels` sizes are replaced by the corpus vocabulary and
/// `model.level` / `raw_to_tokens` / `bins` by the VQ-VAE's at training time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorRunConfig {
    pub model: PriorConfig,
    #[serde(default)]
    pub train: LoopConfig,
    #[serde(default)]
    pub optim: OptimConfig,
}

/// Preset names for `--preset`.
pub const TRAIN_PRESETS: &[&str] = &["tiny", "small"];

fn preset_err(name: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "unknown training preset `{name}`; expected one of {}",
        TRAIN_PRESETS.join(", ")
    )
}

impl VqvaeRunConfig {
    /// `small`: 3 levels (hops 8/32/128), width 32, depth 4, 64-dim codes, 512 codes per level
    /// (0.82 M weights with codebooks), batches of 4 × 16384 samples. `tiny`: a test-sized
    /// model that trains in seconds.
    pub fn preset(name: &str) -> Result<Self> {
        let base = VqvaeConfig {
            multipliers: vec![1, 1, 1],
            ..VqvaeConfig::official()
        };
        let cfg = match name {
            "small" => Self {
                model: VqvaeConfig {
                    width: 32,
                    depth: 4,
                    emb_width: 64,
                    l_bins: 512,
                    ..base
                },
                train: LoopConfig {
                    batch_size: 4,
                    window: 16384,
                    steps: 3000,
                    ..LoopConfig::default()
                },
                loss: VqLossConfig::default(),
                optim: OptimConfig {
                    lr: 3e-4,
                    lr_warmup: 100,
                    ..OptimConfig::default()
                },
                finetune: Finetune::default(),
            },
            "tiny" => Self {
                model: VqvaeConfig {
                    width: 8,
                    depth: 2,
                    emb_width: 8,
                    l_bins: 32,
                    ..base
                },
                train: LoopConfig {
                    batch_size: 2,
                    window: 4096,
                    steps: 20,
                    valid_every: 10,
                    valid_windows: 2,
                    ckpt_every: 10,
                    log_every: 1,
                    bandwidth_windows: 4,
                    ..LoopConfig::default()
                },
                loss: VqLossConfig {
                    linf_k: 256,
                    multispec: vec![(512, 128, 512), (256, 64, 256)],
                    ..VqLossConfig::default()
                },
                optim: OptimConfig {
                    lr: 1e-3,
                    lr_warmup: 5,
                    ..OptimConfig::default()
                },
                finetune: Finetune::default(),
            },
            _ => return Err(preset_err(name)),
        };
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.train.validate()?;
        let top = *self
            .model
            .hop_lengths()
            .last()
            .context("VQ-VAE has no levels")?;
        if self.train.window == 0 || !self.train.window.is_multiple_of(top) {
            bail!(
                "train.window {} must be a positive multiple of the top hop {top}",
                self.train.window
            );
        }
        if self
            .loss
            .multispec
            .iter()
            .any(|&(n, h, w)| n == 0 || h == 0 || w == 0 || w > n)
        {
            bail!("loss.multispec entries must be (n_fft, hop, window) with 0 < window <= n_fft");
        }
        // The level range and the shift term are checked where they take effect
        // (`VqTrainer::freeze_codes`), before the first step.
        if !self.finetune.levels.is_empty() && !self.finetune.decoders_only {
            bail!("[finetune] levels needs decoders_only = true");
        }
        Ok(())
    }
}

fn labels(t_bins: usize, timing: bool) -> LabelConfig {
    LabelConfig {
        n_genres: 1,
        n_artists: 1,
        max_genres: 2,
        include_time_signal: timing,
        t_bins,
        min_duration: 0.0,
        max_duration: 1200.0,
    }
}

impl PriorRunConfig {
    /// Presets per level (official numbering: 0 bottom, 1 middle, 2 top). `small`: the top prior
    /// is width 256 × depth 8, n_ctx 512 (2.0 M weights); the upsamplers are width 192 × depth 6,
    /// n_ctx 512, with a conditioner of width 192 × depth 4 (2.6 M weights each). `tiny`: a
    /// test-sized prior.
    pub fn preset(name: &str, level: usize, vq: &VqvaeConfig) -> Result<Self> {
        let hops = vq.hop_lengths();
        if level >= vq.levels {
            bail!(
                "level {level} does not exist: the VQ-VAE has levels 0..{}",
                vq.levels
            );
        }
        let top = level + 1 == vq.levels;
        let (n_ctx, width, depth, heads, blocks, cw, cd) = match name {
            "small" if top => (512, 256, 8, 2, 16, 0, 0),
            "small" => (512, 192, 6, 1, 16, 192, 4),
            "tiny" => (64, 32, 2, 2, 8, 32, 2),
            _ => return Err(preset_err(name)),
        };
        let cond = (!top).then(|| ConditionerConfig {
            width: cw,
            depth: cd,
            m_conv: 1.0,
            dilation_growth_rate: 3,
            dilation_cycle: Some(4),
            res_scale: level == 1,
            down_t: vq.downs_t[level + 1],
            stride_t: vq.strides_t[level + 1],
        });
        let model = PriorConfig {
            level,
            n_ctx,
            width,
            depth,
            heads,
            blocks: Some(blocks),
            attn_order: 2,
            bins: vq.l_bins,
            m_attn: 0.25,
            m_mlp: 1.0,
            merged_decoder: top,
            labels: Some(labels(64, top)),
            cond,
            lyrics: None,
            raw_to_tokens: hops[level],
            alignment: None,
        };
        let train = match name {
            "tiny" => LoopConfig {
                batch_size: 2,
                steps: 20,
                valid_every: 10,
                valid_windows: 2,
                ckpt_every: 10,
                log_every: 1,
                init_scale: 1.0,
                ..LoopConfig::default()
            },
            _ => LoopConfig {
                batch_size: 4,
                steps: 4000,
                init_scale: if top { 0.1 } else { 0.4 },
                ..LoopConfig::default()
            },
        };
        let optim = OptimConfig {
            lr: if name == "tiny" { 1e-3 } else { 3e-4 },
            lr_warmup: 100.min(train.steps / 4).max(1),
            ..OptimConfig::default()
        };
        Ok(Self {
            model,
            train,
            optim,
        })
    }

    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.train.validate()?;
        if let Some(c) = &self.model.cond {
            let f = c.stride_t.pow(c.down_t as u32);
            if !self.model.n_ctx.is_multiple_of(f) {
                bail!(
                    "model.n_ctx {} must be a multiple of the conditioner's upsampling {f}",
                    self.model.n_ctx
                );
            }
        }
        Ok(())
    }
}

/// Read a TOML config file, naming the file in every error.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid training config {}", path.display()))
}

pub fn to_toml<T: Serialize>(v: &T) -> Result<String> {
    toml::to_string_pretty(v).context("cannot serialise the training config")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_roundtrip_through_toml() -> Result<()> {
        for p in TRAIN_PRESETS {
            let v = VqvaeRunConfig::preset(p)?;
            v.validate()?;
            let back: VqvaeRunConfig = toml::from_str(&to_toml(&v)?)?;
            assert_eq!(back, v);
            for level in 0..3 {
                let pc = PriorRunConfig::preset(p, level, &v.model)?;
                pc.validate()?;
                let back: PriorRunConfig = toml::from_str(&to_toml(&pc)?)?;
                assert_eq!(back, pc);
                assert_eq!(pc.model.cond.is_some(), level < 2);
                assert_eq!(pc.model.raw_to_tokens, [8, 32, 128][level]);
            }
        }
        assert!(VqvaeRunConfig::preset("huge").is_err());
        Ok(())
    }

    #[test]
    fn unknown_keys_are_rejected_with_the_file_name() -> Result<()> {
        let d = tempfile::tempdir()?;
        let p = d.path().join("c.toml");
        let mut text = to_toml(&VqvaeRunConfig::preset("tiny")?)?;
        text = text.replace("[train]", "[train]\nbatchsize = 3");
        std::fs::write(&p, text)?;
        let e = format!("{:#}", read_toml::<VqvaeRunConfig>(&p).unwrap_err());
        assert!(e.contains("c.toml") && e.contains("batchsize"), "{e}");
        Ok(())
    }
}
