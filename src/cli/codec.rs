//! `jukebox encode` / `jukebox decode`: audio ↔ VQ-VAE codes files (docs/CONVENTIONS.md,
//! "Codes files": int64 `level_K` tensors [samples, tokens] with `sample_rate` and `hop_lengths`
//! metadata).

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use jukebox::vqvae::{self, VqVae};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct EncodeArgs {
    /// Model directory (HF layout: config.json + weights).
    #[arg(long, default_value = "models/default")]
    pub model: PathBuf,
    /// Input audio (WAV, FLAC, MP3, OGG); converted to 44.1 kHz mono.
    pub input: PathBuf,
    /// Output codes file (.safetensors).
    #[arg(short = 'o', long = "out", visible_alias = "output")]
    pub out: PathBuf,
    /// Encode only this level (0/bottom, 1/middle, 2/top); default: every level.
    #[arg(long, value_parser = jukebox::level::parse_level)]
    pub level: Option<usize>,
}

#[derive(clap::Args, Debug)]
pub struct DecodeArgs {
    /// Model directory (HF layout: config.json + weights).
    #[arg(long, default_value = "models/default")]
    pub model: PathBuf,
    /// Codes file written by `jukebox encode` or `jukebox sample`.
    pub codes: PathBuf,
    /// Which level's codes to decode (0/bottom, 1/middle, 2/top).
    #[arg(long, value_parser = jukebox::level::parse_level)]
    pub level: usize,
    /// Output WAV file (16-bit PCM, 44.1 kHz mono).
    #[arg(short = 'o', long = "out", visible_alias = "output")]
    pub out: PathBuf,
    /// Which item of the codes batch to decode (0-based), when the file holds several.
    #[arg(long, default_value_t = 0)]
    pub sample: usize,
}

fn resolve_model(p: &Path) -> PathBuf {
    match p.to_str() {
        Some(s) if s == "models/default" => jukebox::util::resolve_default(s),
        _ => p.to_path_buf(),
    }
}

fn load_model(dir: &Path) -> Result<VqVae> {
    let dir = resolve_model(dir);
    if !dir.exists() {
        bail!(
            "model directory {} does not exist (pass --model DIR)",
            dir.display()
        );
    }
    jukebox::model::vqvae_from_dir(&dir)
        .with_context(|| format!("loading the VQ-VAE from {}", dir.display()))
}

/// Encode a mono 44.1 kHz signal. It is cut down to a multiple of the top level's hop (as the
/// official code does), whichever levels are asked, so codes of every level line up.
pub fn encode_samples(
    model: &VqVae,
    samples: &[f32],
    levels: &[usize],
) -> Result<Vec<Option<Tensor>>> {
    let hop = model.hop_length(model.levels() - 1);
    let n = samples.len() / hop * hop;
    if n == 0 {
        bail!(
            "the audio has {} samples, fewer than one token at hop {hop} ({:.4} s)",
            samples.len(),
            hop as f64 / model.config().sample_rate as f64
        );
    }
    if n < samples.len() {
        eprintln!(
            "note: encoding the first {n} of {} samples (a multiple of the top hop {hop})",
            samples.len()
        );
    }
    let x = Tensor::from_slice(&samples[..n], (1, n), &Device::Cpu)?;
    let mut out = vec![None; model.levels()];
    for &l in levels {
        out[l] = Some(
            model
                .encode(&x, l)
                .with_context(|| format!("encoding level {l}"))?,
        );
    }
    Ok(out)
}

pub fn run_encode(args: EncodeArgs) -> Result<()> {
    if args.out.is_dir() {
        bail!(
            "-o {} is a directory: name the codes file to write (e.g. codes.safetensors)",
            args.out.display()
        );
    }
    let model = load_model(&args.model)?;
    let levels: Vec<usize> = match args.level {
        Some(l) if l >= model.levels() => {
            bail!(
                "--level {l} does not exist: the model has levels 0..{}",
                model.levels() - 1
            )
        }
        Some(l) => vec![l],
        None => (0..model.levels()).collect(),
    };
    let audio = jukebox::audio::load(&args.input)?;
    for w in &audio.warnings {
        eprintln!("warning: {}: {w}", args.input.display());
    }
    let codes = encode_samples(&model, &audio.samples, &levels)?;
    let sr = model.config().sample_rate;
    vqvae::save_codes(&args.out, &codes, sr, &model.config().hop_lengths())?;
    for &l in &levels {
        if let Some(c) = &codes[l] {
            eprintln!("level {l}: {} tokens", c.dim(1)?);
        }
    }
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

pub fn run_decode(args: DecodeArgs) -> Result<()> {
    // Only WAV is written: refuse another extension before any work, rather than writing a WAV
    // under a name that says otherwise.
    match args.out.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("wav") => {}
        other => bail!(
            "-o {}: decode writes WAV only (16-bit PCM); name the output *.wav{}",
            args.out.display(),
            other
                .map(|e| format!(" (`.{e}` is not written; convert the WAV afterwards)"))
                .unwrap_or_default()
        ),
    }
    let model = load_model(&args.model)?;
    if args.level >= model.levels() {
        bail!(
            "--level {} does not exist: the model has levels 0..{}",
            args.level,
            model.levels() - 1
        );
    }
    let codes = vqvae::load_codes(&args.codes)?;
    let hops = model.config().hop_lengths();
    if !codes.hop_lengths.is_empty() && codes.hop_lengths != hops {
        bail!(
            "{} was made with hop lengths {:?}, but the model has {:?}",
            args.codes.display(),
            codes.hop_lengths,
            hops
        );
    }
    let c = codes
        .level(args.level)
        .with_context(|| format!("reading {}", args.codes.display()))?;
    let (n, _) = c.dims2()?;
    if args.sample >= n {
        bail!(
            "--sample {} is out of range: {} holds {n} sample(s)",
            args.sample,
            args.codes.display()
        );
    }
    let c = c.narrow(0, args.sample, 1)?;
    let y = model
        .decode(&c, args.level)
        .with_context(|| format!("decoding level {}", args.level))?;
    let samples: Vec<f32> = y.flatten_all()?.to_vec1()?;
    jukebox::audio::write_wav_i16(&args.out, &samples, model.config().sample_rate)?;
    eprintln!(
        "wrote {} ({:.2} s)",
        args.out.display(),
        samples.len() as f64 / model.config().sample_rate as f64
    );
    Ok(())
}
