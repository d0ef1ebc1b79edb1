//! Training throughput: N optimiser steps of the real training step (`VqTrainer::train_step`,
//! `PriorTrainer::train_step`) on a config file, after warm-up steps that are not timed.
//!
//! The VQ-VAE trains on random windows of a real recording with the real losses (lmix,
//! multispectral, commit, EMA codebooks); the bandwidth statistics are fixed at 1 so that the
//! PyTorch reference (`tests/fixtures/reference/bench_train.py`) computes the same loss without
//! a dataset pass. The prior trains on random tokens and label rows (its cost does not depend on
//! the token values).

use super::{load_average, min_median, reset_peak_rss, Measurement};
use crate::train::config::{PriorRunConfig, VqvaeRunConfig};
use crate::train::prior::{PriorBatch, PriorTrainer};
use crate::train::stats::Bandwidth;
use crate::train::vqvae::VqTrainer;
use crate::util::splitmix64;
use candle_core::{Device, Result, Tensor};
use std::time::Instant;

/// What to time and how long.
#[derive(Debug, Clone)]
pub struct TrainBenchOpts {
    /// Label of the config in the records (the config file's stem).
    pub config: String,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps first (allocator and cache warm-up, codebook initialisation).
    pub warmup: usize,
}

/// Times `steps` calls of `step(i)` after `warmup` untimed ones: (per-step times, first and
/// last loss, peak RSS of the timed phase).
fn time_steps(
    o: &TrainBenchOpts,
    mut step: impl FnMut(u64) -> Result<f64>,
    progress: &mut dyn FnMut(usize, usize, f64),
) -> Result<(Vec<f64>, f64, f64, Option<u64>)> {
    let total = o.warmup + o.steps.max(1);
    let mut times = Vec::with_capacity(o.steps);
    let (mut first, mut last) = (f64::NAN, f64::NAN);
    for i in 0..total {
        if i == o.warmup {
            reset_peak_rss();
        }
        let t = Instant::now();
        let loss = step(i as u64)?;
        let dt = t.elapsed().as_secs_f64();
        if !loss.is_finite() {
            candle_core::bail!("training loss is {loss} at bench step {i}");
        }
        if i >= o.warmup {
            times.push(dt);
        }
        if i == 0 {
            first = loss;
        }
        last = loss;
        progress(i + 1, total, dt);
    }
    Ok((times, first, last, super::peak_rss()))
}

fn record(
    kind: &str,
    o: &TrainBenchOpts,
    batch: usize,
    times: &mut [f64],
    load_start: Option<f64>,
    losses: (f64, f64),
    peak: Option<u64>,
) -> Measurement {
    let wall: f64 = times.iter().sum();
    let (_, median) = min_median(times);
    let mut m = Measurement::new(kind, &o.config, "f32");
    m.implementation = Some("rust".into());
    m.batch = Some(batch);
    m.steps = Some(times.len());
    m.warmup_steps = Some(o.warmup);
    m.wall_s = wall;
    m.wall_s_median = Some(median);
    m.steps_per_s = Some(times.len() as f64 / wall);
    m.load_start = load_start;
    m.load_end = load_average();
    m.loss_first = Some(losses.0);
    m.loss_last = Some(losses.1);
    m.peak_rss = peak;
    m
}

/// `batch` windows of `window` samples from `audio` for bench step `step` (seeded).
fn vq_batch(audio: &[f32], batch: usize, window: usize, step: u64, dev: &Device) -> Result<Tensor> {
    if audio.len() < window {
        candle_core::bail!(
            "the bench audio has {} samples, shorter than one {window}-sample window",
            audio.len()
        );
    }
    let span = (audio.len() - window + 1) as u64;
    let mut x = Vec::with_capacity(batch * window);
    for b in 0..batch as u64 {
        let s = (splitmix64(step.wrapping_mul(1_000_003) ^ b) % span) as usize;
        x.extend_from_slice(&audio[s..s + window]);
    }
    Tensor::from_vec(x, (batch, window), dev)
}

/// VQ-VAE training steps on windows of `audio` (44.1 kHz mono).
pub fn bench_train_vqvae(
    cfg: &VqvaeRunConfig,
    audio: &[f32],
    o: &TrainBenchOpts,
    dev: &Device,
    progress: &mut dyn FnMut(usize, usize, f64),
) -> Result<Measurement> {
    let bw = Bandwidth {
        l2: 1.0,
        l1: 1.0,
        spec: 1.0,
    };
    let (batch, window) = (cfg.train.batch_size, cfg.train.window);
    let mut tr = VqTrainer::new(&cfg.model, &cfg.loss, &cfg.optim, bw, cfg.train.seed, dev)?;
    let params = tr.opt.num_params();
    let load_start = load_average();
    let (mut times, first, last, peak) = time_steps(
        o,
        |i| {
            let x = vq_batch(audio, batch, window, i, dev)?;
            Ok(tr.train_step(&x, i)?.loss)
        },
        progress,
    )?;
    let mut m = record(
        "train_vqvae",
        o,
        batch,
        &mut times,
        load_start,
        (first, last),
        peak,
    );
    m.window = Some(window);
    m.params = Some(params);
    m.audio_s_per_wall_s = m
        .steps_per_s
        .map(|s| s * (batch * window) as f64 / crate::prior::SAMPLE_RATE);
    Ok(m)
}

/// A prior batch of random tokens and label rows for bench step `step` (seeded).
pub fn random_prior_batch(cfg: &PriorRunConfig, step: u64, dev: &Device) -> Result<PriorBatch> {
    let m = &cfg.model;
    let (b, n) = (cfg.train.batch_size, m.n_ctx);
    let mut r = splitmix64(step ^ 0x70_7269_6f72);
    let mut next = |k: usize| {
        r = splitmix64(r);
        (r % k.max(1) as u64) as i64
    };
    let toks: Vec<i64> = (0..b * n).map(|_| next(m.bins)).collect();
    let y = match &m.labels {
        None => None,
        Some(lab) => {
            let len = (m.n_ctx * m.raw_to_tokens) as i64;
            let total = (lab.max_duration * crate::prior::SAMPLE_RATE) as i64 / 2;
            let mut ys = Vec::new();
            for _ in 0..b {
                ys.extend([
                    total,
                    next((total - len) as usize),
                    len,
                    next(lab.n_artists),
                ]);
                ys.push(next(lab.n_genres));
                ys.extend(std::iter::repeat_n(-1, lab.max_genres.saturating_sub(1)));
            }
            Some(Tensor::from_vec(ys.clone(), (b, ys.len() / b), dev)?)
        }
    };
    let z_cond = match &m.cond {
        None => None,
        Some(c) => {
            let per = (c.stride_t.pow(c.down_t as u32)).max(1);
            let zc: Vec<i64> = (0..b * (n / per)).map(|_| next(m.bins)).collect();
            Some(Tensor::from_vec(zc, (b, n / per), dev)?)
        }
    };
    Ok(PriorBatch {
        tokens: Tensor::from_vec(toks, (b, n), dev)?,
        y,
        z_cond,
        mask: Tensor::ones((b, n), candle_core::DType::F32, dev)?,
        contrast: Vec::new(),
    })
}

/// Prior training steps on random tokens.
pub fn bench_train_prior(
    cfg: &PriorRunConfig,
    o: &TrainBenchOpts,
    dev: &Device,
    progress: &mut dyn FnMut(usize, usize, f64),
) -> Result<Measurement> {
    let mut tr = PriorTrainer::new(
        &cfg.model,
        &cfg.optim,
        cfg.train.seed,
        cfg.train.init_scale,
        0.0,
        dev,
    )?;
    let params = tr.opt.num_params();
    let batch = cfg.train.batch_size;
    let load_start = load_average();
    let (mut times, first, last, peak) = time_steps(
        o,
        |i| {
            let b = random_prior_batch(cfg, i, dev)?;
            Ok(tr.train_step(&b, 0, i)?.bits)
        },
        progress,
    )?;
    let mut m = record(
        "train_prior",
        o,
        batch,
        &mut times,
        load_start,
        (first, last),
        peak,
    );
    m.window = Some(cfg.model.n_ctx);
    m.params = Some(params);
    m.tokens_per_s_total = m.steps_per_s.map(|s| s * (batch * cfg.model.n_ctx) as f64);
    Ok(m)
}
