//! `jukebox bench`: VQ-VAE and prior-sampling throughput on this machine (random weights),
//! memory bandwidth, peak memory and the share of the roofline.

use anyhow::{bail, Context, Result};
use candle_core::Device;
use jukebox::bench::{
    self, prior::bench_prior, prior_preset, vqvae::bench_vqvae, Measurement, PriorBenchOpts,
    VqvaeBenchOpts, PRIOR_PRESETS,
};
use jukebox::config::VqvaeConfig;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    jukebox bench --vqvae --prior mid --batch 1,4 --json bench/raw/rust.jsonl\n  \
    jukebox bench --prior 1b --dtype f32,f16 --fill empty --prime 0\n  \
    jukebox bench --prior mid --batch 1 --dtype bf16,q8 --fill empty --prime 0\n\
    Threads: set RAYON_NUM_THREADS (default: all cores). Timings are best of --reps.")]
pub struct Args {
    /// Measure the VQ-VAE (encode and decode per level).
    #[arg(long)]
    pub vqvae: bool,
    /// VQ-VAE size: `official` (released model) or `small` (the fixture one).
    #[arg(long, default_value = "official")]
    pub vqvae_config: String,
    /// Prior presets, comma-separated: small, mid, 1b, or all.
    #[arg(long, value_delimiter = ',')]
    pub prior: Vec<String>,
    /// Batch sizes for prior sampling.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    pub batch: Vec<usize>,
    /// Prime length for the primed measurement (0 skips it; capped by the window).
    #[arg(long, default_value_t = 4096)]
    pub prime: usize,
    /// KV-cache fill levels to time: empty, half, full.
    #[arg(long, value_delimiter = ',', default_value = "empty,half,full")]
    pub fill: Vec<String>,
    /// Sampling steps timed per measurement.
    #[arg(long, default_value_t = 32)]
    pub tokens: usize,
    /// Seconds of audio per VQ-VAE pass.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Weight storage dtypes for the priors (compute is f32, but for bf16 prefill on a CPU
    /// with AMX: bf16 products, f32 sums): f32, f16, bf16, or q8 (int8
    /// dense weights with a scale per output; its logits error against f32 is reported).
    #[arg(long, value_delimiter = ',', default_value = "f32")]
    pub dtype: Vec<String>,
    /// Timed repeats per figure (the best is reported).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Prefill chunk in tokens.
    #[arg(long, default_value_t = 512)]
    pub chunk: usize,
    /// Skip the bandwidth probe (no roofline shares then).
    #[arg(long)]
    pub no_bandwidth: bool,
    /// Bytes per array for the bandwidth probe.
    #[arg(long, default_value_t = 512 << 20)]
    pub bandwidth_bytes: usize,
    /// Write every measurement as a JSON line here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Device: cpu or cuda (a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Training throughput instead: `vqvae` or `prior` optimiser steps on `--config`.
    #[arg(long, value_name = "vqvae|prior")]
    pub train: Option<String>,
    /// Training config (TOML as for `jukebox train`; default bench/configs/train_<kind>.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Training: timed optimiser steps.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Training: untimed steps before them.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Training (VQ-VAE): the recording whose random windows are trained on.
    #[arg(long, default_value = "data/prompts/amen.wav")]
    pub audio: PathBuf,
    /// Training: convolution products on AMX tiles, operands split into two bf16 parts (as
    /// `jukebox train --amx-split`; not f32's numbers). Recorded as dtype `f32-amx-split`.
    #[arg(long)]
    pub amx_split: bool,
}

fn write_json(path: &std::path::Path, all: &[Measurement]) -> Result<()> {
    let mut text = String::new();
    for m in all {
        text += &serde_json::to_string(m)?;
        text.push('\n');
    }
    jukebox::util::atomic_write(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {} measurements to {}", all.len(), path.display());
    Ok(())
}

/// `--train vqvae|prior`: optimiser steps of the real training step, timed.
fn run_train(a: &Args, kind: &str, dev: &Device) -> Result<()> {
    use jukebox::bench::train::{bench_train_prior, bench_train_vqvae, TrainBenchOpts};
    use jukebox::train::config::{read_toml, PriorRunConfig, VqvaeRunConfig};
    if !["vqvae", "prior"].contains(&kind) {
        bail!("--train `{kind}` is not one of vqvae, prior");
    }
    if a.steps == 0 {
        bail!("--steps must be at least 1");
    }
    let path = a.config.clone().unwrap_or_else(|| {
        jukebox::util::resolve_default(&format!("bench/configs/train_{kind}.toml"))
    });
    let o = TrainBenchOpts {
        config: path
            .file_stem()
            .map_or("config".into(), |s| s.to_string_lossy().into_owned()),
        steps: a.steps,
        warmup: a.warmup,
    };
    let bar = indicatif::ProgressBar::new((a.steps + a.warmup) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} steps, {msg} (ETA {eta})",
        )?
        .progress_chars("=> "),
    );
    bar.set_prefix(format!("train {kind}"));
    let warmup = a.warmup;
    let mut progress = |done: usize, _total: usize, dt: f64| {
        let phase = if done <= warmup { "warm-up" } else { "timed" };
        bar.set_message(format!("{phase}, last step {dt:.2} s"));
        bar.set_position(done as u64);
    };
    eprintln!(
        "jukebox bench --train {kind}: {} threads, load average {:.2}, config {} ({} warm-up steps not timed)",
        rayon::current_num_threads(),
        bench::load_average().unwrap_or(f64::NAN),
        path.display(),
        a.warmup
    );
    super::train::set_amx_split(a.amx_split, &a.device)?;
    let mut m = if kind == "vqvae" {
        let cfg: VqvaeRunConfig = read_toml(&path)?;
        cfg.model.validate()?;
        let audio_path = jukebox::util::resolve_default(&a.audio.to_string_lossy());
        let audio = jukebox::audio::load(&audio_path)
            .with_context(|| format!("bench audio {}", audio_path.display()))?;
        bench_train_vqvae(&cfg, &audio.samples, &o, dev, &mut progress)?
    } else {
        let cfg: PriorRunConfig = read_toml(&path)?;
        cfg.model.validate()?;
        bench_train_prior(&cfg, &o, dev, &mut progress)?
    };
    bar.finish_and_clear();
    if a.amx_split {
        m.dtype = "f32-amx-split".into();
    }
    if let Some(path) = &a.json {
        write_json(path, std::slice::from_ref(&m))?;
    }
    println!("{}", serde_json::to_string(&m)?);
    eprintln!("{}", bench::summary_line(&m));
    Ok(())
}

pub fn run(a: Args) -> Result<()> {
    jukebox::ops::init_threads_for(a.train.is_some());
    let dev = super::device(&a.device)?;
    if let Some(kind) = &a.train {
        return run_train(&a, kind, &dev);
    }
    let mut presets: Vec<String> = vec![];
    for p in &a.prior {
        if p == "all" {
            presets.extend(PRIOR_PRESETS.iter().map(|s| s.to_string()));
        } else if PRIOR_PRESETS.contains(&p.as_str()) {
            presets.push(p.clone());
        } else {
            let near = jukebox::util::nearest(p, PRIOR_PRESETS, 1);
            bail!(
                "--prior `{p}` is not one of {} or all{}",
                PRIOR_PRESETS.join(", "),
                near.first()
                    .map(|n| format!(" (did you mean `{n}`?)"))
                    .unwrap_or_default()
            );
        }
    }
    if !a.vqvae && presets.is_empty() {
        bail!("nothing to measure: pass --vqvae and/or --prior small|mid|1b|all");
    }
    let formats = a
        .dtype
        .iter()
        .map(|s| super::weight_format(s))
        .collect::<Result<Vec<_>>>()?;
    if a.batch.is_empty() || a.batch.contains(&0) {
        bail!("--batch needs sizes >= 1, got {:?}", a.batch);
    }
    for f in &a.fill {
        if !["empty", "half", "full"].contains(&f.as_str()) {
            bail!("--fill `{f}` is not one of empty, half, full");
        }
    }
    if !(a.seconds > 0.0 && a.seconds <= 600.0) {
        bail!("--seconds must be in (0, 600], got {}", a.seconds);
    }
    let vq_cfg = match a.vqvae_config.as_str() {
        "official" => VqvaeConfig::official(),
        "small" => bench::vqvae::small_vqvae(),
        other => bail!("--vqvae-config `{other}` is not one of official, small"),
    };

    let mut all: Vec<Measurement> = vec![];
    let mut emit = |m: Measurement| {
        eprintln!("  {}", bench::summary_line(&m));
        all.push(m);
    };
    eprintln!(
        "jukebox bench: {} threads, load average {:.2}",
        rayon::current_num_threads(),
        bench::load_average().unwrap_or(f64::NAN)
    );
    let bw = if a.no_bandwidth || dev.is_cuda() {
        None
    } else {
        eprintln!(
            "memory bandwidth ({} per array)…",
            bench::fmt_bytes(a.bandwidth_bytes as f64)
        );
        let b = bench::bandwidth(a.bandwidth_bytes, 5);
        let mut m = Measurement::new("bandwidth", "stream", "f32");
        m.copy_bytes_per_s = Some(b.copy);
        m.read_bytes_per_s = Some(b.read);
        emit(m);
        Some(b)
    };
    if a.vqvae {
        eprintln!("VQ-VAE `{}`, {} s of audio…", a.vqvae_config, a.seconds);
        let o = VqvaeBenchOpts {
            preset: a.vqvae_config.clone(),
            cfg: vq_cfg,
            seconds: a.seconds,
            reps: a.reps,
        };
        bench_vqvae(&o, &dev, &mut emit).context("VQ-VAE benchmark")?;
    }
    for p in &presets {
        let cfg = prior_preset(p)?;
        eprintln!(
            "prior `{p}` (width {}, depth {}, heads {}, n_ctx {})…",
            cfg.width, cfg.depth, cfg.heads, cfg.n_ctx
        );
        let o = PriorBenchOpts {
            preset: p.clone(),
            cfg,
            batches: a.batch.clone(),
            formats: formats.clone(),
            fills: a.fill.clone(),
            prime: a.prime,
            tokens: a.tokens,
            reps: a.reps,
            chunk: a.chunk,
        };
        bench_prior(&o, &dev, bw.as_ref(), &mut emit)
            .with_context(|| format!("prior benchmark `{p}`"))?;
    }
    if let Some(path) = &a.json {
        write_json(path, &all)?;
    }
    println!("{:-<100}", "");
    for m in &all {
        println!("{}", bench::summary_line(m));
    }
    Ok(())
}
