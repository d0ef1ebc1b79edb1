//! `jukebox sample`: ancestral, primed, `--continue` and `--resume`.

use anyhow::{bail, Context, Result};
use candle_core::Device;
use jukebox::checkpoint::ModelDir;
use jukebox::level::Level;
use jukebox::prior::windows::seconds_to_samples;
use jukebox::sample::{
    self, model_identity, ItemSpec, LevelSettings, Mode, Outcome, RunOptions, RunSpec,
};
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
    /// Run directory to create.
    #[arg(long, short = 'o', alias = "output")]
    pub out: Option<PathBuf>,
    /// Prompt audio (primed mode).
    #[arg(long)]
    pub prompt: Option<PathBuf>,
    /// Seconds taken from the prompt (rounded down to a multiple of the top hop).
    #[arg(long)]
    pub prompt_seconds: Option<f64>,
    /// Total length of each sample in seconds, prompt included.
    #[arg(long)]
    pub seconds: Option<f64>,
    /// The song-length label in seconds (default: max(--seconds, the prior's minimum)).
    #[arg(long)]
    pub total_seconds: Option<f64>,
    /// Artist name (or `#id`).
    #[arg(long, default_value = "unknown")]
    pub artist: String,
    /// Genre (repeat for a bag of genres).
    #[arg(long = "genre")]
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
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 0.99)]
    pub temperature: f64,
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
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
    /// Extend a finished run to a new total length (--seconds).
    #[arg(long = "continue", value_name = "RUN_DIR")]
    pub continue_run: Option<PathBuf>,
    /// Finish a run that was stopped or killed.
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Hide progress bars.
    #[arg(long)]
    pub quiet: bool,
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

/// `top`, `middle`, `bottom`, numbers, lists and `all`, to official level numbers.
pub fn parse_levels(s: &str, n_levels: usize) -> Result<Vec<usize>> {
    let s = s.trim();
    if s == "all" {
        return Ok((0..n_levels).rev().collect());
    }
    let mut out = vec![];
    for part in s.split(',') {
        let l = part
            .parse::<Level>()
            .map_err(anyhow::Error::msg)?
            .within(n_levels)?;
        if !out.contains(&l) {
            out.push(l);
        }
    }
    if out.is_empty() {
        bail!("no levels given");
    }
    Ok(out)
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

/// Run or resume `run_dir`, reporting the outcome.
pub fn drive(md: &ModelDir, run_dir: &Path, quiet: bool, device: Device) -> Result<()> {
    let flag = interrupt_flag();
    let opts = RunOptions {
        progress: !quiet,
        interrupt: Some(&flag),
        device,
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

fn check_same_model(md: &ModelDir, spec: &RunSpec, run_dir: &Path) -> Result<()> {
    let id = model_identity(md)?;
    if id != spec.model_id {
        bail!(
            "{} was made with another model ({}); this one is {}. Pass the run's own --model",
            run_dir.display(),
            spec.model.display(),
            md.path.display()
        );
    }
    Ok(())
}

pub fn run(a: Args) -> Result<()> {
    // A device that cannot be opened is refused before any run folder is written.
    let dev = super::device(&a.device)?;
    if let Some(dir) = &a.resume {
        let spec = RunSpec::load(dir)?;
        let md = open_model(Some(a.model.as_deref().unwrap_or(&spec.model)))?;
        check_same_model(&md, &spec, dir)?;
        return drive(&md, dir, a.quiet, dev);
    }
    if let Some(src) = &a.continue_run {
        let mut spec = RunSpec::load(src)?;
        let md = open_model(Some(a.model.as_deref().unwrap_or(&spec.model)))?;
        check_same_model(&md, &spec, src)?;
        let secs = a
            .seconds
            .context("--continue needs --seconds, the new total length")?;
        let top_hop = md.config.vqvae.hop_length(md.config.top_level());
        let new_len = seconds_to_samples(secs, spec.sample_rate, top_hop)?;
        if new_len <= spec.sample_length {
            bail!(
                "--seconds {secs} is not longer than the run's {:.2} s",
                spec.sample_length as f64 / spec.sample_rate as f64
            );
        }
        let dir = match &a.out {
            Some(out) if out != src => {
                copy_run(src, out)?;
                out.clone()
            }
            _ => src.clone(),
        };
        spec.sample_length = new_len;
        spec.total_length = spec.total_length.max(new_len);
        spec.save(&dir)?;
        return drive(&md, &dir, a.quiet, dev);
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
    let spec = build_spec(&a, &md)?;
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    spec.save(&out)?;
    drive(&md, &out, a.quiet, dev)
}

fn copy_run(src: &Path, dst: &Path) -> Result<()> {
    if RunSpec::path(dst).exists() {
        bail!("{} already holds a run", dst.display());
    }
    std::fs::create_dir_all(dst)?;
    for f in ["run.toml", "state.safetensors"] {
        std::fs::copy(src.join(f), dst.join(f)).with_context(|| format!("copying {f}"))?;
    }
    Ok(())
}

/// A new run's spec from the command line (validated against the model).
pub fn build_spec(a: &Args, md: &ModelDir) -> Result<RunSpec> {
    let cfg = &md.config;
    let sr = cfg.vqvae.sample_rate;
    let top = cfg.top_level();
    let top_hop = cfg.vqvae.hop_length(top);
    let mode = match a.mode.as_deref() {
        Some("primed") => Mode::Primed,
        Some("ancestral") => Mode::Ancestral,
        None if a.prompt.is_some() => Mode::Primed,
        None => Mode::Ancestral,
        Some(m) => bail!("unknown mode `{m}`"),
    };
    let seconds = a
        .seconds
        .context("--seconds (the total length of each sample) is required")?;
    let sample_length = seconds_to_samples(seconds, sr, top_hop)?;
    let (prompt, prompt_samples) = match mode {
        Mode::Primed => {
            let p = a
                .prompt
                .clone()
                .context("primed mode needs --prompt FILE")?;
            if !p.exists() {
                bail!("the prompt {} does not exist", p.display());
            }
            let ps = a
                .prompt_seconds
                .context("primed mode needs --prompt-seconds")?;
            let n = seconds_to_samples(ps, sr, top_hop)?;
            if n >= sample_length {
                bail!(
                    "the prompt ({ps} s) must be shorter than the requested length --seconds {seconds}"
                );
            }
            let audio =
                jukebox::audio::load_prefix(&p, ps + jukebox::audio::PREFIX_MARGIN_SECONDS)?;
            if audio.samples.len() < n {
                bail!(
                    "the prompt {} is {:.3} s long, shorter than the {ps} s asked for by --prompt-seconds",
                    p.display(),
                    audio.samples.len() as f64 / sr as f64
                );
            }
            (Some(std::path::absolute(&p).unwrap_or(p)), n)
        }
        Mode::Ancestral => {
            if a.prompt.is_some() {
                bail!("--prompt is only used in primed mode (--mode primed)");
            }
            (None, 0)
        }
    };
    let min_dur = cfg.priors[top]
        .labels
        .as_ref()
        .filter(|l| l.include_time_signal)
        .map_or(0.0, |l| l.min_duration);
    let total_seconds = a.total_seconds.unwrap_or(seconds.max(min_dur));
    if total_seconds <= 0.0
        || !total_seconds.is_finite()
        || total_seconds > jukebox::audio::MAX_SECONDS
    {
        bail!(
            "--total-seconds must be positive and at most {} s, got {total_seconds}",
            jukebox::audio::MAX_SECONDS
        );
    }
    if !(a.temperature.is_finite() && a.temperature >= 0.0) {
        bail!(
            "--temperature must be a finite number >= 0 (0 is greedy), got {}",
            a.temperature
        );
    }
    let total_length = (total_seconds * sr as f64).round() as usize;
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
        None => {
            if a.n_samples == 0 {
                bail!("--n-samples must be at least 1");
            }
            (0..a.n_samples)
                .map(|i| ItemSpec {
                    artist: a.artist.clone(),
                    genres: if a.genres.is_empty() {
                        vec!["unknown".into()]
                    } else {
                        a.genres.clone()
                    },
                    lyrics: lyrics.clone(),
                    seed: a.seed + i as u64,
                })
                .collect()
        }
    };
    let levels = parse_levels(&a.levels, cfg.priors.len())?;
    let hop_fraction: Vec<f64> = match &a.hop_fraction {
        Some(s) => s
            .split(',')
            .map(|x| {
                x.trim()
                    .parse::<f64>()
                    .map_err(|_| anyhow::anyhow!("bad --hop-fraction value `{x}`"))
            })
            .collect::<Result<_>>()?,
        None => cfg.hop_fraction.clone(),
    };
    if hop_fraction.len() != cfg.priors.len()
        || hop_fraction.iter().any(|h| !(*h > 0.0 && *h <= 1.0))
    {
        bail!(
            "--hop-fraction needs {} values in (0, 1], one per level 0,1,2",
            cfg.priors.len()
        );
    }
    let settings = hop_fraction
        .iter()
        .map(|&h| LevelSettings {
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
            hop_fraction: h,
        })
        .collect();
    let spec = RunSpec {
        version: env!("CARGO_PKG_VERSION").to_string(),
        model: std::path::absolute(&md.path).unwrap_or(md.path.clone()),
        model_id: model_identity(md)?,
        mode,
        prompt,
        prompt_samples,
        sample_length,
        total_length,
        sample_rate: sr,
        levels,
        settings,
        chunk_size: a.chunk_size.max(1),
        max_batch: a.max_batch.max(1),
        items,
        level_items: vec![],
    };
    spec.validate()?;
    // Resolve every label now, so a typo fails before any work.
    for &l in &spec.levels {
        let (lab, bases) = jukebox::sample::pipeline::base_labels(md, &spec, l, &spec.items_at(l))?;
        if let Some(lc) = &md.config.priors[l].labels {
            for b in &bases {
                let artist = b.y[3];
                if artist < 0 || artist as usize >= lc.n_artists {
                    bail!(
                        "artist id {artist} is outside this model's 0..{} (level {l})",
                        lc.n_artists
                    );
                }
                for &g in &b.y[4..4 + lab.max_genres] {
                    if g >= lc.n_genres as i64 {
                        bail!(
                            "genre id {g} is outside this model's 0..{} (level {l})",
                            lc.n_genres
                        );
                    }
                }
            }
        }
    }
    Ok(spec)
}
