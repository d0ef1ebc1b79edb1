//! `jukebox train vqvae`: a corpus folder in, a trained VQ-VAE component out.

use super::ckpt;
use super::component::{self, ComponentConfig};
use super::config::{read_toml, to_toml, VqvaeRunConfig};
use super::data::{length_pool, Pool, WindowPos};
use super::driver::{self, Job, LoopOpts, Outcome};
use super::log::Logger;
use super::stats::Bandwidth;
use super::vqvae::{log_columns, VqTrainer};
use crate::config::VqvaeConfig;
use crate::dataset::{Corpus, Item};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Options of one `train vqvae` invocation.
#[derive(Debug, Clone)]
pub struct VqvaeOpts {
    pub corpus: PathBuf,
    pub out: PathBuf,
    /// Ignored on resume (the run's own `train.toml` is used).
    pub config: VqvaeRunConfig,
    /// Overrides `train.steps` (on resume too: train further).
    pub steps: Option<u64>,
    pub resume: bool,
    /// Start from trained VQ-VAE weights (a component or model directory).
    pub init: Option<PathBuf>,
    pub quiet: bool,
    pub stop_after: Option<u64>,
    pub device: Device,
}

pub const RUN_CONFIG: &str = "train.toml";

/// Load the run config: fresh (written to OUT/train.toml) or the resumed run's own.
pub(crate) fn prepare_out<T: serde::Serialize + serde::de::DeserializeOwned>(
    out: &Path,
    resume: bool,
    fresh: &T,
) -> Result<T> {
    let path = out.join(RUN_CONFIG);
    if resume {
        ckpt::latest(out)?;
        return read_toml(&path);
    }
    if out.join("latest").exists() {
        bail!(
            "{} already holds a training run; pass --resume to continue it, or choose another --out",
            out.display()
        );
    }
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create output folder {}", out.display()))?;
    crate::util::atomic_write(&path, to_toml(fresh)?.as_bytes())?;
    read_toml(&path)
}

/// Train items and validation items of the corpus split.
pub(crate) fn split_items(
    corpus: &Corpus,
    seed: u64,
    valid_fraction: f64,
) -> (Vec<Item>, Vec<Item>) {
    let s = corpus.split(seed, valid_fraction);
    let pick = |ix: &[usize]| {
        ix.iter()
            .map(|&i| corpus.items[i].clone())
            .collect::<Vec<_>>()
    };
    (pick(&s.train), pick(&s.valid))
}

struct VqJob {
    tr: VqTrainer,
    corpus: Corpus,
    train_items: Vec<Item>,
    pool: Pool<f32>,
    valid: Vec<Tensor>,
    cfg: VqvaeRunConfig,
}

impl VqJob {
    fn load(&self, items: &[Item], ws: &[WindowPos]) -> Result<Tensor> {
        let len = self.cfg.train.window;
        let mut v = Vec::with_capacity(ws.len() * len);
        for w in ws {
            v.extend(self.corpus.load_window(&items[w.track], w.start, len)?);
        }
        Ok(Tensor::from_vec(v, (ws.len(), len), &self.tr.device)?)
    }
}

impl Job for VqJob {
    fn train_step(&mut self, step: u64) -> Result<BTreeMap<String, f64>> {
        let t = &self.cfg.train;
        let ws: Vec<WindowPos> = (0..t.batch_size as u64)
            .map(|s| self.pool.draw(t.seed, step, s, t.window, 1))
            .collect();
        let x = self.load(&self.train_items, &ws)?;
        Ok(self.tr.train_step(&x, step)?.values())
    }

    fn validate(&mut self, _step: u64) -> Result<BTreeMap<String, f64>> {
        Ok(self.tr.evaluate(&self.valid)?.values())
    }

    fn checkpoint(&self, step: u64) -> Result<ckpt::Checkpoint> {
        Ok(self.tr.checkpoint(step)?)
    }

    fn finish(&self, out: &Path, step: u64) -> Result<()> {
        let cfg = ComponentConfig::Vqvae {
            vqvae: self.cfg.model.clone(),
            steps: step,
        };
        component::write(&out.join("model"), &cfg, &self.tr.weights()?)
    }
}

/// Train (or resume) a VQ-VAE. Returns how the loop ended.
pub fn train_vqvae(opts: &VqvaeOpts) -> Result<Outcome> {
    let mut cfg: VqvaeRunConfig = prepare_out(&opts.out, opts.resume, &opts.config)?;
    if let Some(s) = opts.steps {
        cfg.train.steps = s;
    }
    cfg.validate()
        .with_context(|| format!("invalid config in {}", opts.out.join(RUN_CONFIG).display()))?;
    let t = cfg.train.clone();
    let corpus = Corpus::open(&opts.corpus)?;
    let (train_items, mut valid_items) = split_items(&corpus, t.seed, t.valid_fraction);
    if train_items.is_empty() {
        bail!(
            "corpus {} has no training items after the validation split",
            opts.corpus.display()
        );
    }
    if valid_items.is_empty() {
        eprintln!("warning: no validation files (each artist needs two or more); validating on training windows");
        valid_items = train_items.clone();
    }
    let pool = length_pool(&train_items);
    let vpool = length_pool(&valid_items);
    let dev = opts.device.clone();

    // Bandwidths from fixed training windows (recomputed identically on resume, then replaced
    // by the checkpoint's own values).
    let bw_windows: Vec<Vec<f32>> = pool
        .fixed(t.bandwidth_windows.max(1), t.window, 1)
        .iter()
        .map(|w| corpus.load_window(&train_items[w.track], w.start, t.window))
        .collect::<Result<_>>()?;
    let bw = Bandwidth::compute(bw_windows.iter().map(|w| w.as_slice()))?;
    let mut tr = VqTrainer::new(&cfg.model, &cfg.loss, &cfg.optim, bw, t.seed, &dev)?;
    if cfg.finetune.decoders_only {
        if !opts.resume && opts.init.is_none() {
            bail!(
                "[finetune] decoders_only trains the decoders of a trained VQ-VAE: pass --init DIR"
            );
        }
        tr.freeze_codes(&cfg.finetune.levels)?;
    }

    let start = if opts.resume {
        let dir = ckpt::latest(&opts.out)?;
        let ck = ckpt::load(&dir, &dev)?;
        let s = tr
            .restore(&ck)
            .with_context(|| format!("restoring {}", dir.display()))?;
        eprintln!("resuming from step {s} ({})", dir.display());
        s
    } else {
        if let Some(init) = &opts.init {
            let (icfg, w) = component::load_vqvae(init, &dev)?;
            // The encoders' blur (`antialias`) adds no weights: a model trained without it
            // can be fine-tuned with it (and back).
            let same = VqvaeConfig {
                antialias: cfg.model.antialias,
                ..icfg.clone()
            } == cfg.model;
            if !same {
                bail!("--init {}: its VQ-VAE config differs from the training config (use its hyperparameters)", init.display());
            }
            let tokens: Vec<usize> = cfg
                .model
                .hop_lengths()
                .iter()
                .map(|h| t.batch_size * t.window / h)
                .collect();
            tr.load_weights(&w, &tokens)?;
        }
        0
    };

    let mut job = VqJob {
        tr,
        corpus,
        train_items,
        pool,
        valid: vec![],
        cfg: cfg.clone(),
    };
    let vpos = vpool.fixed(t.valid_windows.max(1), t.window, 1);
    for chunk in vpos.chunks(t.batch_size) {
        let x = job.load(&valid_items, chunk)?;
        job.valid.push(x);
    }
    let mut logger = Logger::new(
        &opts.out,
        log_columns(cfg.model.levels),
        opts.resume.then_some(start),
    )?;
    let lo = LoopOpts {
        out: opts.out.clone(),
        total_steps: t.steps,
        valid_every: t.valid_every,
        ckpt_every: t.ckpt_every,
        log_every: t.log_every,
        keep_checkpoints: t.keep_checkpoints,
        quiet: opts.quiet,
        resume_hint: format!(
            "jukebox train vqvae --corpus {} --out {} --resume",
            opts.corpus.display(),
            opts.out.display()
        ),
        stop_after: opts.stop_after,
    };
    driver::run(&mut job, &lo, start, &mut logger)
}
