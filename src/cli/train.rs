//! `jukebox train vqvae|prior|assemble`: train on your own audio, stop with Ctrl-C, resume,
//! fine-tune, and assemble a model directory.

use anyhow::{bail, Context, Result};
use candle_core::Device;
use jukebox::train::assemble::{assemble, AssembleOpts};
use jukebox::train::config::{read_toml, to_toml, PriorRunConfig, VqvaeRunConfig, TRAIN_PRESETS};
use jukebox::train::driver::Outcome;
use jukebox::train::run_prior::{train_prior, PriorOpts};
use jukebox::train::run_vqvae::{train_vqvae, VqvaeOpts};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Train the VQ-VAE (all levels) on a corpus folder.
    Vqvae(VqvaeArgs),
    /// Train one level's prior on the corpus encoded by a trained VQ-VAE.
    Prior(PriorArgs),
    /// Combine a VQ-VAE and three priors into a model directory (HF layout).
    Assemble(AssembleArgs),
}

#[derive(clap::Args, Debug)]
pub struct Common {
    /// Corpus folder (audio + metadata.csv; see `jukebox dataset check`).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Training config (TOML). See `--print-config` for the format.
    #[arg(long, conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// Built-in config: tiny or small.
    #[arg(long)]
    pub preset: Option<String>,
    /// Output folder: checkpoints, train_log.csv, metrics.jsonl, and the trained `model/`.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Total steps (overrides the config; with --resume, train further).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Continue the run in --out (or in DIR) exactly where it stopped.
    #[arg(long, num_args = 0..=1, default_missing_value = "", value_name = "DIR")]
    pub resume: Option<String>,
    /// Start from trained weights (a training output, or any model directory, official included).
    #[arg(long, visible_alias = "init-from", value_name = "DIR")]
    pub init: Option<PathBuf>,
    /// Print the config (the preset, or --config) as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Convolution products on Intel AMX tiles, each f32 operand split into two bf16 parts
    /// (CPUs with AMX-BF16): VQ-VAE steps 1.2-1.26x faster (a prior's: only its conditioner's
    /// convolutions), but each product is good to ~2^-17 instead of f32's 2^-24, so gradients
    /// differ from the default path's (up to ~4e-3 relative on a small model) and a run repeats
    /// bit for bit only with the same choice.
    #[arg(long)]
    pub amx_split: bool,
}

/// Turns the split-bf16 AMX products on (`--amx-split`) or leaves them off; an error where the
/// CPU cannot run them or the run is not on the CPU.
pub(crate) fn set_amx_split(on: bool, device: &str) -> Result<()> {
    if on && device != "cpu" {
        bail!("--amx-split is for training on the CPU (AMX tiles); leave it out with --device {device}");
    }
    if jukebox::ops::amx_split::set_enabled(on) != on {
        bail!(
            "--amx-split needs a CPU with AMX-BF16 and AVX512-BF16 (Intel Sapphire Rapids or \
             later) and a kernel that grants the tile state; this machine has not: leave the flag out"
        );
    }
    if on {
        eprintln!(
            "convolution products: AMX tiles, f32 operands split into two bf16 parts (--amx-split)"
        );
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct VqvaeArgs {
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct PriorArgs {
    /// top, middle or bottom (or 2, 1, 0).
    #[arg(long, value_parser = jukebox::level::parse_level)]
    pub level: usize,
    /// The trained VQ-VAE (a `train vqvae` output, or a model directory).
    #[arg(long)]
    pub vqvae: Option<PathBuf>,
    /// Cache of the encoded corpus (default CORPUS/.cache/codes-<vqvae hash>.safetensors).
    #[arg(long)]
    pub codes_cache: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct AssembleArgs {
    /// The VQ-VAE: a `train vqvae` output (its latest export) or any model directory.
    #[arg(long)]
    pub vqvae: PathBuf,
    /// The bottom upsampler (level 0): a `train prior --level bottom` output, or a model directory (its level 0 prior).
    #[arg(long)]
    pub bottom: PathBuf,
    /// The middle upsampler (level 1): a `train prior --level middle` output, or a model directory (its level 1 prior).
    #[arg(long)]
    pub middle: PathBuf,
    /// The top prior (level 2): a `train prior --level top` output, or a model directory (its level 2 prior).
    #[arg(long)]
    pub top: PathBuf,
    /// Model directory to write (config.json, model.safetensors, labels/).
    #[arg(long, short = 'o', visible_alias = "output")]
    pub out: PathBuf,
    /// Weight dtype: f32 or f16 (half the size; codebooks stay f32), as `convert --dtype`.
    #[arg(long, default_value = "f32", value_parser = ["f32", "f16"])]
    pub dtype: String,
    /// Shorthand for `--dtype f16`.
    #[arg(long, hide = true)]
    pub f16: bool,
}

fn preset_name(c: &Common) -> Result<String> {
    match &c.preset {
        Some(p) if TRAIN_PRESETS.contains(&p.as_str()) => Ok(p.clone()),
        Some(p) => {
            let near = jukebox::util::nearest(p, TRAIN_PRESETS.iter().copied(), 1);
            bail!(
                "unknown preset `{p}`; expected one of {} (did you mean `{}`?)",
                TRAIN_PRESETS.join(", "),
                near.join("")
            )
        }
        None => Ok("small".into()),
    }
}

/// (out, resume) from --out / --resume [DIR].
fn out_and_resume(c: &Common) -> Result<(PathBuf, bool)> {
    match (&c.resume, &c.out) {
        (Some(r), Some(o)) if !r.is_empty() && Path::new(r) != o => {
            bail!(
                "--resume {r} and --out {} name different folders",
                o.display()
            )
        }
        (Some(r), None) if !r.is_empty() => Ok((PathBuf::from(r), true)),
        (resume, Some(o)) => Ok((o.clone(), resume.is_some())),
        (_, None) => bail!("--out DIR is required (or --resume DIR to continue a run)"),
    }
}

fn need<'a>(p: &'a Option<PathBuf>, flag: &str) -> Result<&'a PathBuf> {
    p.as_ref()
        .with_context(|| format!("{flag} DIR is required"))
}

fn report(o: &Outcome, out: &Path) {
    if o.interrupted {
        return;
    }
    eprintln!(
        "trained {} steps ({:.3} s/step this session); model written to {}",
        o.steps_done,
        o.step_seconds,
        out.join("model").display()
    );
    for (k, v) in &o.last_valid {
        eprintln!("  {k}: {v:.4}");
    }
}

pub fn run(args: Args) -> Result<()> {
    match args.cmd {
        Cmd::Vqvae(a) => {
            let c = &a.common;
            set_amx_split(c.amx_split, &c.device)?;
            let cfg = match &c.config {
                Some(p) => read_toml::<VqvaeRunConfig>(p)?,
                None => VqvaeRunConfig::preset(&preset_name(c)?)?,
            };
            if c.print_config {
                print!("{}", to_toml(&cfg)?);
                return Ok(());
            }
            let (out, resume) = out_and_resume(c)?;
            let opts = VqvaeOpts {
                corpus: need(&c.corpus, "--corpus")?.clone(),
                out: out.clone(),
                config: cfg,
                steps: c.steps,
                resume,
                init: c.init.clone(),
                quiet: c.quiet,
                stop_after: None,
                device: super::device(&c.device)?,
            };
            let o = train_vqvae(&opts)?;
            report(&o, &out);
            Ok(())
        }
        Cmd::Prior(a) => {
            let c = &a.common;
            set_amx_split(c.amx_split, &c.device)?;
            let vq_cfg = match &a.vqvae {
                Some(p) => jukebox::train::component::load_vqvae(p, &Device::Cpu)?.0,
                None if c.print_config => VqvaeRunConfig::preset(&preset_name(c)?)?.model,
                None => bail!("--vqvae DIR is required"),
            };
            let cfg = match &c.config {
                Some(p) => read_toml::<PriorRunConfig>(p)?,
                None => PriorRunConfig::preset(&preset_name(c)?, a.level, &vq_cfg)?,
            };
            if c.print_config {
                print!("{}", to_toml(&cfg)?);
                return Ok(());
            }
            let (out, resume) = out_and_resume(c)?;
            let opts = PriorOpts {
                corpus: need(&c.corpus, "--corpus")?.clone(),
                out: out.clone(),
                vqvae: need(&a.vqvae, "--vqvae")?.clone(),
                level: a.level,
                config: cfg,
                steps: c.steps,
                resume,
                init: c.init.clone(),
                codes_cache: a.codes_cache.clone(),
                quiet: c.quiet,
                stop_after: None,
                device: super::device(&c.device)?,
            };
            let o = train_prior(&opts)?;
            report(&o, &out);
            Ok(())
        }
        Cmd::Assemble(a) => {
            let r = assemble(&AssembleOpts {
                vqvae: a.vqvae,
                priors: vec![a.bottom, a.middle, a.top],
                out: a.out.clone(),
                f16: a.f16 || a.dtype == "f16",
                hop_fraction: vec![0.5, 0.5, 0.125],
            })?;
            println!(
                "wrote {} ({} tensors, {:.2} M parameters, {:.1} MiB)",
                a.out.display(),
                r.tensors,
                r.parameters as f64 / 1e6,
                r.bytes as f64 / (1024.0 * 1024.0)
            );
            if r.bytes > 40 * 1024 * 1024 {
                eprintln!(
                    "warning: the weights exceed the 40 MiB budget of a bundled model (try --f16)"
                );
            }
            Ok(())
        }
    }
}
