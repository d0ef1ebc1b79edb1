//! `jukebox logits`: teacher-forced logits of a codes file under given labels, and the mean
//! negative log-likelihood in bits per token.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use jukebox::checkpoint::model_dir::ModelDir;
use jukebox::checkpoint::safetensors_io::{self, WriteItem};
use jukebox::labels::{Labeller, Meta};
use jukebox::prior;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model directory.
    #[arg(long, default_value = "models/default")]
    pub model: PathBuf,
    /// Prior level: 0/1/2 or bottom/middle/top.
    #[arg(long, value_parser = jukebox::level::parse_level, default_value = "top")]
    pub level: usize,
    /// cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// How the prior holds its dense weights: f32, f16, bf16 or q8 (int8 with a scale per
    /// output: a quarter of the memory; logits within about 1-2 % RMS of f32).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Codes file (safetensors, `level_K` int64 [samples, tokens]).
    #[arg(long)]
    pub codes: PathBuf,
    /// Artist name (or `#12` for a numeric id).
    #[arg(long, default_value = "unknown")]
    pub artist: String,
    /// Genre (repeat for a bag of genres; `#3` for a numeric id).
    #[arg(long, value_delimiter = ',')]
    pub genre: Vec<String>,
    /// Lyrics text, for lyrics priors.
    #[arg(long)]
    pub lyrics: Option<String>,
    /// Song length for the timing labels (default: max(codes length, the prior's minimum)).
    #[arg(long)]
    pub total_seconds: Option<f64>,
    /// Output safetensors: `logits` [samples, tokens, vocab] f32 and `nll_bits` [samples, tokens].
    #[arg(short = 'o', long = "out")]
    pub out: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let model = jukebox::util::resolve_default(&args.model.to_string_lossy());
    let md = ModelDir::open(&model)?;
    let n_levels = md.config.priors.len();
    if args.level >= n_levels {
        bail!(
            "--level {} but the model has levels 0..{}",
            args.level,
            n_levels - 1
        );
    }
    let cfg = md.config.priors[args.level].clone();
    let dev = super::device(&args.device)?;
    let prior = md.prior_as(args.level, super::weight_format(&args.dtype)?, &dev)?;
    let codes = jukebox::vqvae::load_codes(&args.codes)?;
    let tokens = codes
        .level(args.level)
        .with_context(|| format!("reading {}", args.codes.display()))?
        .to_dtype(DType::I64)?;
    let upper = if prior.conditioner.is_some() {
        Some(
            codes
                .level(args.level + 1)
                .with_context(|| format!("an upsampler needs level {} codes too", args.level + 1))?
                .to_dtype(DType::I64)?,
        )
    } else {
        None
    };
    let (n, t) = tokens.dims2()?;
    let sr = md.config.vqvae.sample_rate as f64;
    let hop = cfg.raw_to_tokens as f64;

    // Labels as `sample` builds them: total length, offset 0.
    let labeller = match &cfg.labels {
        Some(_) => Some(Labeller::for_model(&model, &cfg, sr)?.strict(true)),
        None => None,
    };
    let mut bases = vec![];
    if let Some(lab) = &labeller {
        let audio_s = t as f64 * hop / sr;
        let min_s = cfg.labels.as_ref().map_or(0.0, |l| {
            if l.include_time_signal {
                l.min_duration
            } else {
                0.0
            }
        });
        let total_s = args.total_seconds.unwrap_or(audio_s.max(min_s));
        if !(total_s.is_finite() && total_s > 0.0) {
            bail!("--total-seconds must be a positive number, got {total_s}");
        }
        let genres = if args.genre.is_empty() {
            vec!["unknown".to_string()]
        } else {
            args.genre.clone()
        };
        let meta = Meta {
            artist: args.artist.clone(),
            genres,
            lyrics: args.lyrics.clone(),
        };
        let base = lab.base(&meta, (total_s * sr).round() as i64, 0)?;
        bases = vec![base; n];
    }
    let mut y_at = |start: usize| -> anyhow::Result<Option<Tensor>> {
        let Some(lab) = &labeller else {
            return Ok(None);
        };
        let (flat, _) = lab.get_y_batch(&bases, start as i64)?;
        Ok(Some(Tensor::from_vec(flat, (n, lab.y_len()), &dev)?))
    };
    let out = prior::score_sequence(
        &prior,
        &tokens,
        &mut y_at,
        upper.as_ref(),
        args.out.is_some(),
        &mut |d, k| {
            eprint!("\rwindow {d}/{k}");
        },
    )?;
    eprintln!();
    let mean = out.mean_bits()?;
    let per_item: Vec<f32> = out.nll_bits.mean(1)?.to_vec1()?;
    for (i, b) in per_item.iter().enumerate() {
        println!("sample {i}: {b:.4} bits/token");
    }
    println!(
        "mean NLL: {mean:.4} bits/token over {n} × {t} level-{} tokens",
        args.level
    );
    if let Some(path) = &args.out {
        let logits = out.logits.as_ref().context("logits were not kept")?;
        let mut md_out = BTreeMap::new();
        md_out.insert("level".to_string(), args.level.to_string());
        md_out.insert("mean_nll_bits".to_string(), format!("{mean}"));
        md_out.insert("model".to_string(), model.display().to_string());
        safetensors_io::write(
            path,
            vec![
                WriteItem::from_tensor("logits", logits),
                WriteItem::from_tensor("nll_bits", &out.nll_bits),
            ],
            &md_out,
        )?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
