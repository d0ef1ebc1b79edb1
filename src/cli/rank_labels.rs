//! `jukebox rank-labels`: rank every genre (and, with `--artists`, every artist) by the
//! teacher-forced bits per token of a prompt's codes under that label, against the no-label
//! baseline. Labels are built as `sample` and `logits` build them (total length, offset 0), and
//! scored in the windows of `jukebox logits`, so each value equals what `logits` prints.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use jukebox::checkpoint::ModelDir;
use jukebox::labels::{Field, IdSet, Labeller};
use jukebox::prior::rank::{self, RankRequest, Ranking};
use jukebox::prior::windows::seconds_to_samples;
use std::path::PathBuf;

/// Activation budget per forward pass when the available memory cannot be measured.
const DEFAULT_BUDGET: u64 = 1 << 30;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model directory.
    #[arg(long, default_value = "models/default")]
    pub model: PathBuf,
    /// Prompt audio (any format `encode` reads).
    #[arg(long, default_value = "data/prompts/amen.wav")]
    pub prompt: PathBuf,
    /// Seconds of the prompt to score (default: all of it), cut to a multiple of the top hop.
    #[arg(long)]
    pub prompt_seconds: Option<f64>,
    /// Prior level: 0/1/2 or bottom/middle/top.
    #[arg(long, value_parser = super::codec::parse_level, default_value = "top")]
    pub level: usize,
    /// Rows to print (the CSV gets all of them).
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Rank artists as well as genres.
    #[arg(long)]
    pub artists: bool,
    /// Only labels whose name contains TEXT (genres, and artists too).
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
    /// The artist while genres are ranked (`#12` for a numeric id).
    #[arg(long, default_value = "unknown")]
    pub artist: String,
    /// The genre while artists are ranked (repeat for a bag) [default: unknown].
    #[arg(long)]
    pub genre: Vec<String>,
    /// Lyrics text, for lyrics priors.
    #[arg(long)]
    pub lyrics: Option<String>,
    /// Song length for the timing labels (default: max(prompt length, the prior's minimum)).
    #[arg(long)]
    pub total_seconds: Option<f64>,
    /// Labels per forward pass (default: as many as fit the available memory).
    #[arg(long = "max-batch", alias = "batch-size")]
    pub batch_size: Option<usize>,
    /// cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Print the ranking as JSON (baseline bits, every label best first) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Write the full ranking as CSV (e.g. STUDY_DIR/label_ranking.csv).
    #[arg(short = 'o', long = "out")]
    pub out: Option<PathBuf>,
}

const DEFAULT_MODEL: &str = "models/default";
const DEFAULT_PROMPT: &str = "data/prompts/amen.wav";

/// Defaults resolve against the crate root too (docs/CONVENTIONS.md, "Default paths"); user paths are taken as given.
fn resolve_default_path(p: &std::path::Path, default: &str) -> PathBuf {
    match p.to_str() {
        Some(s) if s == default => jukebox::util::resolve_default(s),
        _ => p.to_path_buf(),
    }
}

/// Encode the prompt at `level` (and the level above, for upsamplers); returns
/// (rows per needed level, samples used).
fn encode(
    md: &ModelDir,
    args: &Args,
    levels: &[usize],
    dev: &Device,
) -> Result<(Vec<Vec<i64>>, usize)> {
    let sr = md.config.vqvae.sample_rate;
    let top_hop = md.config.vqvae.hop_length(md.config.vqvae.levels - 1);
    let prompt = resolve_default_path(&args.prompt, DEFAULT_PROMPT);
    let audio = match args.prompt_seconds {
        Some(s) => jukebox::audio::load_prefix(&prompt, s + 0.01),
        None => jukebox::audio::load(&prompt),
    }
    .with_context(|| format!("loading the prompt {}", prompt.display()))?;
    for w in &audio.warnings {
        eprintln!("warning: {}: {w}", prompt.display());
    }
    let samples = match args.prompt_seconds {
        Some(s) => seconds_to_samples(s, sr, top_hop).context("--prompt-seconds")?,
        None => audio.samples.len() / top_hop * top_hop,
    };
    if samples == 0 || audio.samples.len() < samples {
        bail!(
            "the prompt {} is {:.3} s long; at least {:.3} s are needed{}",
            prompt.display(),
            audio.samples.len() as f64 / sr as f64,
            samples.max(top_hop) as f64 / sr as f64,
            if args.prompt_seconds.is_some() {
                " for --prompt-seconds"
            } else {
                " (one top-level token)"
            }
        );
    }
    let vq = md.vqvae(dev)?;
    let x = Tensor::from_slice(&audio.samples[..samples], (1, samples), dev)?;
    let rows = levels
        .iter()
        .map(|&l| {
            let c = vq
                .encode(&x, l)
                .with_context(|| format!("encoding the prompt at level {l}"))?;
            Ok(c.to_dtype(DType::I64)?.squeeze(0)?.to_vec1::<i64>()?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((rows, samples))
}

fn level_name(l: usize, n: usize) -> &'static str {
    if l + 1 == n {
        "top"
    } else if l == 0 {
        "bottom"
    } else {
        "middle"
    }
}

fn print_ranking(r: &Ranking, top: usize) {
    let width = r
        .scored
        .iter()
        .take(top)
        .map(|s| s.candidate.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(8);
    println!(
        "{:>5}  {:<6}  {:<width$}  {:>12}  {:>10}",
        "rank", "kind", "label", "bits/token", "Δ bits"
    );
    println!(
        "{:>5}  {:<6}  {:<width$}  {:>12.6}  {:>10}",
        "-", "none", "no label", r.baseline_bits, "(baseline)"
    );
    for (i, s) in r.scored.iter().take(top).enumerate() {
        println!(
            "{:>5}  {:<6}  {:<width$}  {:>12.6}  {:>+10.6}",
            i + 1,
            s.candidate.field.name(),
            s.candidate.name,
            s.bits,
            s.bits - r.baseline_bits
        );
    }
    if r.scored.len() > top {
        println!("  … {} more (see -o CSV)", r.scored.len() - top);
    }
    let better = r.scored.iter().filter(|s| s.bits < r.baseline_bits).count();
    println!(
        "{better} of {} labels explain the prompt better than no label",
        r.scored.len()
    );
}

pub fn run(args: Args) -> Result<()> {
    let model = resolve_default_path(&args.model, DEFAULT_MODEL);
    let md = ModelDir::open(&model)
        .with_context(|| format!("cannot open model {} (pass --model DIR)", model.display()))?;
    let n_levels = md.config.priors.len();
    if args.level >= n_levels {
        bail!(
            "--level {} but the model has levels 0..{}",
            args.level,
            n_levels - 1
        );
    }
    let cfg = md.config.priors[args.level].clone();
    let Some(lc) = cfg.labels.clone() else {
        bail!(
            "the level-{} prior of {} takes no artist/genre labels: nothing to rank",
            args.level,
            model.display()
        );
    };
    if args.top == 0 {
        bail!("--top must be at least 1");
    }
    if args.batch_size == Some(0) {
        bail!("--max-batch must be at least 1");
    }
    let dev = super::device(&args.device)?;
    let sr = md.config.vqvae.sample_rate as f64;

    // Candidates before any heavy work, so a bad --search fails fast.
    let ids: std::sync::Arc<IdSet> = IdSet::for_model(&model, &cfg)?;
    let search = args.search.as_deref();
    let mut cands = rank::candidates(&ids, Field::Genre, search);
    if args.artists || search.is_some() {
        cands.extend(rank::candidates(&ids, Field::Artist, search));
    }
    if cands.is_empty() {
        match search {
            Some(s) => bail!(
                "no genre or artist name of this model contains `{s}`; see `jukebox labels --search {s}`"
            ),
            None => bail!("the model's label lists hold no genre besides `unknown`"),
        }
    }

    let needs_upper = cfg.cond.is_some();
    let levels: Vec<usize> = if needs_upper {
        vec![args.level, args.level + 1]
    } else {
        vec![args.level]
    };
    let (rows, samples) = encode(&md, &args, &levels, &dev)?;
    let tokens = &rows[0];
    let upper = rows.get(1).map(Vec::as_slice);
    let prior = md.prior(args.level, &dev)?;

    let mut lab = Labeller::for_model(&model, &cfg, sr)?.strict(true);
    lab.quiet = true;
    // As `logits`: the codes' length at this level, at least the prior's minimum duration.
    let audio_s = tokens.len() as f64 * cfg.raw_to_tokens as f64 / sr;
    let min_s = if lc.include_time_signal {
        lc.min_duration
    } else {
        0.0
    };
    let total_s = args.total_seconds.unwrap_or(audio_s.max(min_s));
    if !(total_s.is_finite() && total_s > 0.0) {
        bail!("--total-seconds must be a positive number, got {total_s}");
    }
    let req = RankRequest {
        candidates: cands,
        artist: args.artist.clone(),
        genres: args.genre.clone(),
        lyrics: args.lyrics.clone(),
        total_length: (total_s * sr).round() as i64,
    };
    // Check the fixed axis once, with the CLI's strict lookup, before scoring anything.
    lab.base(&req.meta(&req.candidates[0]), req.total_length, 0)
        .context("the fixed --artist/--genre")?;

    let n_items = req.candidates.len() + 1;
    let batch = match args.batch_size {
        Some(b) => b.min(n_items),
        None => {
            let budget = jukebox::guard::available()?
                .map_or(DEFAULT_BUDGET, |a| a.bytes / 2)
                .max(1);
            rank::batch_for_budget(&prior, budget, n_items)
        }
    };
    let n_batches = n_items.div_ceil(batch);
    eprintln!(
        "rank-labels: {} level {} ({}), prompt {:.2} s = {} tokens, total length {:.2} s; {} labels + baseline in {} batch(es) of ≤ {}",
        model.display(),
        args.level,
        level_name(args.level, n_levels),
        samples as f64 / sr,
        tokens.len(),
        total_s,
        n_items - 1,
        n_batches,
        batch
    );
    let pb = ProgressBar::new(n_items as u64);
    pb.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} labels  {elapsed_precise} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let ranking = rank::rank_labels(&prior, &lab, &req, tokens, upper, batch, &mut |done, _| {
        pb.set_position(done as u64)
    })?;
    pb.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&ranking)?);
    } else {
        print_ranking(&ranking, args.top);
    }
    if let Some(out) = &args.out {
        jukebox::util::atomic_write(out, ranking.to_csv().as_bytes())
            .with_context(|| format!("writing {}", out.display()))?;
        if args.json {
            eprintln!("wrote {}", out.display());
        } else {
            println!("wrote {}", out.display());
        }
    }
    Ok(())
}
