//! `jukebox rank-labels`: rank every genre (and, with `--artists`, every artist) by the
//! teacher-forced bits per token of a prompt's codes under that label, against the no-label
//! baseline. Labels are built as `sample` and `logits` build them (total length, offset 0), and
//! scored in the windows of `jukebox logits`, so each value equals what `logits` prints.

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use jukebox::prior::rank::Ranking;
use jukebox::study::ranking::{RankJob, RankSpec};
use std::path::PathBuf;

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
    #[arg(long, value_parser = jukebox::level::parse_level, default_value = "top")]
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
    #[arg(long, value_delimiter = ',')]
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
    /// How the prior holds its dense weights: f32, f16, bf16 or q8 (int8 with a scale per
    /// output: a quarter of the memory; logits within about 1-2 % RMS of f32).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
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

pub fn print_ranking(r: &Ranking, top: usize) {
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

/// The library request this command's flags describe.
pub fn spec(args: &Args) -> Result<RankSpec> {
    Ok(RankSpec {
        model: resolve_default_path(&args.model, DEFAULT_MODEL),
        prompt: resolve_default_path(&args.prompt, DEFAULT_PROMPT),
        prompt_seconds: args.prompt_seconds,
        level: args.level,
        artists: args.artists,
        search: args.search.clone(),
        artist: args.artist.clone(),
        genres: args.genre.clone(),
        lyrics: args.lyrics.clone(),
        total_seconds: args.total_seconds,
        max_batch: args.batch_size,
        device: super::device(&args.device)?,
        weights: super::weight_format(&args.dtype)?,
    })
}

pub fn run(args: Args) -> Result<()> {
    if args.top == 0 {
        bail!("--top must be at least 1");
    }
    let spec = spec(&args)?;
    let ranking = rank(&spec)?;
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

/// Prepare and run a ranking with its header line and a progress bar on stderr.
pub fn rank(spec: &RankSpec) -> Result<Ranking> {
    let job = RankJob::prepare(spec)?;
    for w in &job.warnings {
        eprintln!("warning: {w}");
    }
    let sr = job.sample_rate as f64;
    let n_items = job.n_items();
    eprintln!(
        "rank-labels: {} level {} ({}), prompt {:.2} s = {} tokens, total length {:.2} s; {} labels + baseline in {} batch(es) of ≤ {}",
        spec.model.display(),
        job.level,
        jukebox::level::Level(job.level),
        job.samples as f64 / sr,
        job.n_tokens(),
        job.total_seconds,
        n_items - 1,
        n_items.div_ceil(job.batch),
        job.batch
    );
    let pb = ProgressBar::new(n_items as u64);
    pb.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} labels  {elapsed_precise} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let ranking = job.run(&mut |done, _| pb.set_position(done as u64))?;
    pb.finish_and_clear();
    Ok(ranking)
}
