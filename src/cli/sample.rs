//! `jukebox sample`: ancestral, primed, `--continue` and `--resume`.

use anyhow::{bail, Context, Result};
use candle_core::Device;
use jukebox::checkpoint::ModelDir;
use jukebox::sample::{self, ItemSpec, Mode, Outcome, RunOptions, RunSpec, SampleRequest};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(clap::Args, Debug)]
// `--seconds -1` is a number out of range (said by the checks below), not an unknown flag.
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// Model directory (default: models/default).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// ancestral (from nothing) or primed (continue --prompt).
    #[arg(long, value_parser = ["ancestral", "primed"])]
    pub mode: Option<String>,
    /// Run directory to create (not needed with --resume; with --continue, a copy to extend).
    #[arg(long, short = 'o', alias = "output", required_unless_present_any = ["resume", "continue_run"])]
    pub out: Option<PathBuf>,
    /// Prompt audio (primed mode).
    #[arg(long)]
    pub prompt: Option<PathBuf>,
    /// Seconds taken from the prompt (rounded down to a multiple of the top hop).
    #[arg(long)]
    pub prompt_seconds: Option<f64>,
    /// Total length of each sample in seconds, prompt included (with --continue: the new total).
    #[arg(long, required_unless_present = "resume")]
    pub seconds: Option<f64>,
    /// The song-length label in seconds (default: max(--seconds, the prior's minimum)).
    #[arg(long)]
    pub total_seconds: Option<f64>,
    /// Artist name (or `#id`).
    #[arg(long, default_value = "unknown")]
    pub artist: String,
    /// Genre (repeat for a bag of genres).
    #[arg(long = "genre", value_delimiter = ',')]
    pub genres: Vec<String>,
    /// Per-item labels: a TOML file with `[[item]]` tables (artist, genres, lyrics, seed).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Lyrics text file (lyrics models).
    #[arg(long)]
    pub lyrics: Option<PathBuf>,
    /// Number of samples; seeds are S, S+1, …
    #[arg(long, default_value_t = 1)]
    pub n_samples: usize,
    /// Seed of the first sample.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sampling temperature (> 0; lower is more conservative).
    #[arg(long, default_value_t = jukebox::sample::DEFAULT_TEMPERATURE)]
    pub temperature: f64,
    /// Keep only the k most likely codes at each step (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Keep the smallest set of codes whose probability reaches p (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub top_p: f64,
    /// Levels to sample: top, top,middle, all (or numbers, 0 = bottom).
    #[arg(long, default_value = "all")]
    pub levels: String,
    /// Window hop as a fraction of the context, per level 0,1,2 (official order).
    #[arg(long)]
    pub hop_fraction: Option<String>,
    /// Items sampled in one batch.
    #[arg(long, default_value_t = 16)]
    pub max_batch: usize,
    /// Prime tokens prefilled per pass.
    #[arg(long, default_value_t = 32)]
    pub chunk_size: usize,
    /// How the priors hold their dense weights while sampling: f32 (as loaded), f16, bf16
    /// (on a CPU with AMX, primed prefills run on its tiles: 2.3-2.7x faster than f32), or
    /// q8 (int8 with a scale per output: a quarter of the bytes, faster steps at small
    /// batches, logits within about 1-2 % RMS of f32). Recorded in the run; changes the tokens.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Extend a finished run to a new total length (--seconds).
    #[arg(long = "continue", value_name = "RUN_DIR")]
    pub continue_run: Option<PathBuf>,
    /// With --continue: extend only this take, into --n-samples new takes (seeds from --seed)
    /// in a new run --out that records its parent.
    #[arg(long, requires = "continue_run")]
    pub take: Option<usize>,
    /// Finish a run that was stopped or killed.
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Hide progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Progress as bars, or as JSON lines on stderr (for programs such as `jukebox serve`).
    #[arg(long, value_parser = ["bars", "json"], default_value = "bars")]
    pub progress: String,
    /// cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(serde::Deserialize)]
struct LabelsFile {
    item: Vec<LabelItem>,
}

#[derive(serde::Deserialize)]
struct LabelItem {
    #[serde(default = "unknown")]
    artist: String,
    #[serde(default)]
    genres: Vec<String>,
    #[serde(default)]
    genre: Option<String>,
    #[serde(default)]
    lyrics: Option<String>,
    #[serde(default)]
    seed: Option<u64>,
}

fn unknown() -> String {
    "unknown".into()
}

fn open_model(p: Option<&Path>) -> Result<ModelDir> {
    let path = match p {
        Some(p) => p.to_path_buf(),
        None => jukebox::util::resolve_default("models/default"),
    };
    ModelDir::open(&path).with_context(|| format!("cannot open the model {}", path.display()))
}

fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let _ = ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond Ctrl-C: stopping now; the last finished window is saved");
            std::process::exit(130);
        }
        eprintln!(
            "\nCtrl-C: finishing the current window, then saving (Ctrl-C again to stop at once)"
        );
    });
    flag
}

/// One JSON line per change of window or per ~0.2 s of tokens, on stderr.
fn json_progress() -> impl Fn(&sample::Progress) + Sync {
    let last = std::sync::Mutex::new((usize::MAX, usize::MAX, std::time::Instant::now()));
    move |p: &sample::Progress| {
        let Ok(mut l) = last.lock() else { return };
        let now = std::time::Instant::now();
        let new_window = (l.0, l.1) != (p.level, p.window);
        if new_window || now.duration_since(l.2).as_millis() >= 200 {
            *l = (p.level, p.window, now);
            if let Ok(s) = serde_json::to_string(p) {
                eprintln!("{s}");
            }
        }
    }
}

/// Run or resume `run_dir`, reporting the outcome.
pub fn drive(md: &ModelDir, run_dir: &Path, quiet: bool, json: bool, device: Device) -> Result<()> {
    let flag = interrupt_flag();
    let report = json_progress();
    let opts = RunOptions {
        progress: !quiet && !json,
        interrupt: Some(&flag),
        device,
        on_progress: json.then_some(&report as &(dyn Fn(&sample::Progress) + Sync)),
        ..Default::default()
    };
    match sample::run(md, run_dir, &opts)? {
        Outcome::Interrupted => {
            eprintln!(
                "stopped and saved. Resume with: jukebox sample --resume {}",
                run_dir.display()
            );
            std::process::exit(130);
        }
        Outcome::Finished(s) => {
            for (level, tokens, secs) in &s.levels {
                println!(
                    "level {level}: {tokens} tokens per sample in {secs:.1} s ({:.1} tokens/s)",
                    *tokens as f64 / secs.max(1e-9)
                );
            }
            println!("done: {}", run_dir.display());
            Ok(())
        }
    }
}

pub fn run(a: Args) -> Result<()> {
    // A device that cannot be opened is refused before any run folder is written.
    let dev = super::device(&a.device)?;
    let json = a.progress == "json";
    if let Some(dir) = &a.resume {
        let spec = RunSpec::load(dir)?;
        let md = open_model(Some(a.model.as_deref().unwrap_or(&spec.model)))?;
        spec.check_model(&md, dir)?;
        return drive(&md, dir, a.quiet, json, dev);
    }
    if let Some(src) = &a.continue_run {
        let spec = RunSpec::load(src)?;
        let md = open_model(Some(a.model.as_deref().unwrap_or(&spec.model)))?;
        let secs = a
            .seconds
            .context("--continue needs --seconds, the new total length")?;
        if let Some(take) = a.take {
            let out = a
                .out
                .clone()
                .context("--take needs --out, the new run directory")?;
            sample::fork_take(&md, src, take, &out, secs, a.n_samples, a.seed)?;
            return drive(&md, &out, a.quiet, json, dev);
        }
        let dir = sample::continue_run(&md, src, a.out.as_deref(), secs)?;
        return drive(&md, &dir, a.quiet, json, dev);
    }
    let md = open_model(a.model.as_deref())?;
    let out = a
        .out
        .clone()
        .context("--out RUN_DIR is required for a new run")?;
    if RunSpec::path(&out).exists() {
        bail!(
            "{} already holds a run; use --resume {} to finish it, or choose another --out",
            out.display(),
            out.display()
        );
    }
    let spec = RunSpec::build(&request(&a)?, &md)?;
    sample::create_run(&out, &spec)?;
    drive(&md, &out, a.quiet, json, dev)
}

/// The library request these flags describe.
pub fn request(a: &Args) -> Result<SampleRequest> {
    let mode = match a.mode.as_deref() {
        Some("primed") => Some(Mode::Primed),
        Some("ancestral") => Some(Mode::Ancestral),
        None => None,
        Some(m) => bail!("unknown mode `{m}`"),
    };
    let lyrics = match &a.lyrics {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read lyrics {}", p.display()))?,
        ),
        None => None,
    };
    let items: Vec<ItemSpec> = match &a.labels {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            let f: LabelsFile = toml::from_str(&text)
                .with_context(|| format!("{} is not a labels file", p.display()))?;
            f.item
                .into_iter()
                .enumerate()
                .map(|(i, it)| {
                    let mut genres = it.genres;
                    genres.extend(it.genre);
                    ItemSpec {
                        artist: it.artist,
                        genres,
                        lyrics: it.lyrics.or_else(|| lyrics.clone()),
                        seed: it.seed.unwrap_or(a.seed + i as u64),
                    }
                })
                .collect()
        }
        None => sample::request::items(&a.artist, &a.genres, lyrics, a.n_samples, a.seed)?,
    };
    let hop_fraction = match &a.hop_fraction {
        Some(s) => Some(
            s.split(',')
                .map(|x| {
                    x.trim()
                        .parse::<f64>()
                        .map_err(|_| anyhow::anyhow!("bad --hop-fraction value `{x}`"))
                })
                .collect::<Result<Vec<f64>>>()?,
        ),
        None => None,
    };
    Ok(SampleRequest {
        mode,
        prompt: a.prompt.clone(),
        prompt_seconds: a.prompt_seconds,
        seconds: a.seconds,
        total_seconds: a.total_seconds,
        items,
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        levels: a.levels.clone(),
        hop_fraction,
        max_batch: a.max_batch,
        chunk_size: a.chunk_size,
        weights: super::weight_format(&a.dtype)?,
    })
}
