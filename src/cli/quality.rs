//! `jukebox quality`: measure a model on held-out audio and write the Markdown report.

use anyhow::{bail, Context, Result};
use jukebox::quality::{self, BitsOpts, LabelOpts, QualityOpts, TempoOpts};
use jukebox::util::resolve_default;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model directory (HF layout).
    #[arg(long, default_value = "models/default")]
    pub model: PathBuf,
    /// The corpus the VQ-VAE was trained on (reconstruction and codebook figures); required
    /// except with --labels-only.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// The corpus the priors were trained on (bits per token, held-out genre accuracy);
    /// default: --corpus.
    #[arg(long)]
    pub prior_corpus: Option<PathBuf>,
    /// The training split's seed and validation fraction (`train.seed`, `train.valid_fraction`).
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    /// The training split's validation fraction (`train.valid_fraction`).
    #[arg(long, default_value_t = 0.1)]
    pub valid_fraction: f64,
    /// Held-out clips for reconstruction.
    #[arg(long, default_value_t = 8)]
    pub clips: usize,
    /// Length of each reconstruction clip, in seconds.
    #[arg(long, default_value_t = 4.0)]
    pub clip_seconds: f64,
    /// Held-out windows per prior level.
    #[arg(long, default_value_t = 16)]
    pub windows: usize,
    /// Training clips counted for the unigram baseline.
    #[arg(long, default_value_t = 24)]
    pub unigram_clips: usize,
    /// Prompt of known tempo for the continuations, and whose labels are ranked.
    #[arg(long, default_value = DEFAULT_PROMPT)]
    pub prompt: PathBuf,
    /// The prompt's true tempo [default: 137 for the bundled Amen prompt; for another prompt,
    /// estimated from its first --prompt-seconds, and the report says so].
    #[arg(long)]
    pub prompt_bpm: Option<f64>,
    /// Seconds of the prompt to continue from.
    #[arg(long, default_value_t = 4.0)]
    pub prompt_seconds: f64,
    /// Total length of each continuation, prompt included.
    #[arg(long, default_value_t = 8.0)]
    pub seconds: f64,
    /// Continuations per condition (seeds --seed, --seed + 1, ...).
    #[arg(long, default_value_t = 6)]
    pub seeds: usize,
    /// Seed of the first continuation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Levels to sample (top, top,middle, all); the top level is always sampled.
    #[arg(long, default_value = "top")]
    pub levels: String,
    /// Artist label of the continuations (`unknown`, a name, or `#id`).
    #[arg(long, default_value = "unknown")]
    pub artist: String,
    /// Genre label (repeat for a bag of genres); default `unknown`.
    #[arg(long, value_delimiter = ',')]
    pub genre: Vec<String>,
    /// Sampling temperature, as `sample --temperature`.
    #[arg(long, default_value_t = jukebox::sample::DEFAULT_TEMPERATURE)]
    pub temperature: f64,
    /// Top-k filter, as `sample --top-k` (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Top-p filter, as `sample --top-p` (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub top_p: f64,
    /// Skip the unprimed (ancestral) baseline samples.
    #[arg(long)]
    pub no_ancestral: bool,
    /// Skip the continuations altogether.
    #[arg(long)]
    pub no_tempo: bool,
    /// The prompt's genre, whose rank is reported [default: breakbeat for the default prompt,
    /// when the model has it].
    #[arg(long, value_name = "NAME")]
    pub prompt_genre: Option<String>,
    /// Skip the label sections (prompt label spread, held-out genre accuracy).
    #[arg(long, conflicts_with = "labels_only")]
    pub no_labels: bool,
    /// Measure only the label sections and print them (no --corpus needed: without one the
    /// held-out genre accuracy is skipped).
    #[arg(long)]
    pub labels_only: bool,
    /// Rank genres only on the prompt, not artists.
    #[arg(long)]
    pub no_label_artists: bool,
    /// Tokens at the start of each window for the early-token label figures.
    #[arg(long, default_value_t = jukebox::quality::labels::EARLY)]
    pub label_early: usize,
    /// Held-out files scored for genre accuracy, at most.
    #[arg(long, default_value_t = 32)]
    pub label_files: usize,
    /// Top-level windows scored per held-out file for genre accuracy.
    #[arg(long, default_value_t = 2)]
    pub label_windows: usize,
    /// A folder of held-out loops (a corpus whose file names carry the tempo, as
    /// `scripts/fetch-corpus` writes to `<corpus>-heldout-loops`): continue each and read the tempo.
    #[arg(long, value_name = "DIR")]
    pub loops: Option<PathBuf>,
    /// Held-out loops continued, at most.
    #[arg(long, default_value_t = 8)]
    pub loops_files: usize,
    /// Continuations per held-out loop.
    #[arg(long, default_value_t = 2)]
    pub loops_seeds: usize,
    /// Skip the genre separation of unprimed samples.
    #[arg(long)]
    pub no_separation: bool,
    /// Unprimed samples per genre for the separation.
    #[arg(long, default_value_t = 4)]
    pub separation_seeds: usize,
    /// Length of each unprimed sample and classifier clip, in seconds.
    #[arg(long, default_value_t = 4.0)]
    pub separation_seconds: f64,
    /// Training clips per genre that fit the classifier (and held-out clips it is checked on).
    #[arg(long, default_value_t = 16)]
    pub separation_clips: usize,
    /// Hide the sampler's progress bars (stage lines still go to stderr).
    #[arg(long)]
    pub quiet: bool,
    /// Scratch folder for the sampling runs (default: a folder in the system temp dir).
    #[arg(long)]
    pub work: Option<PathBuf>,
    /// Write the report here (a `## Reading` section already in the file is kept); default:
    /// print it.
    #[arg(short = 'o', long = "out", visible_alias = "output")]
    pub out: Option<PathBuf>,
}

const DEFAULT_PROMPT: &str = "data/prompts/amen.wav";

/// Everything from a `## Reading` heading line to the end of `text`, if present: the
/// hand-written interpretation that survives regenerating the figures.
pub fn reading_section(text: &str) -> Option<&str> {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "## Reading" {
            return Some(&text[at..]);
        }
        at += line.len();
    }
    None
}

pub fn run(a: Args) -> Result<()> {
    let model = resolve_default(&a.model.to_string_lossy());
    let prompt = resolve_default(&a.prompt.to_string_lossy());
    for (flag, v) in [
        ("--clips", a.clips),
        ("--windows", a.windows),
        ("--seeds", a.seeds),
        ("--label-early", a.label_early),
        ("--label-files", a.label_files),
        ("--label-windows", a.label_windows),
        ("--loops-files", a.loops_files),
        ("--loops-seeds", a.loops_seeds),
        ("--separation-seeds", a.separation_seeds),
        ("--separation-clips", a.separation_clips),
    ] {
        if v == 0 {
            bail!("{flag} must be at least 1");
        }
    }
    if !(0.0..1.0).contains(&a.valid_fraction) {
        bail!(
            "--valid-fraction must be in [0, 1), got {}",
            a.valid_fraction
        );
    }
    if let Some(b) = a.prompt_bpm.filter(|b| !(b.is_finite() && *b > 0.0)) {
        bail!("--prompt-bpm must be a positive number, got {b}");
    }
    let md = jukebox::checkpoint::ModelDir::open(&model)
        .with_context(|| format!("cannot open the model {}", model.display()))?;
    let levels = jukebox::sample::parse_levels(&a.levels, md.config.vqvae.levels)?;
    let prompt_genre = a.prompt_genre.clone().or_else(|| {
        (a.prompt == std::path::Path::new(DEFAULT_PROMPT)).then(|| "breakbeat".to_string())
    });
    let label_opts = LabelOpts {
        prompt: prompt.clone(),
        prompt_genre,
        artists: !a.no_label_artists,
        early: a.label_early,
        corpus: a.prior_corpus.clone().or_else(|| a.corpus.clone()),
        split_seed: a.split_seed,
        valid_fraction: a.valid_fraction,
        max_files: a.label_files,
        windows_per_file: a.label_windows,
    };
    if a.labels_only {
        let t0 = std::time::Instant::now();
        let mut log = |m: &str| eprintln!("[{:6.1} s] {m}", t0.elapsed().as_secs_f64());
        let r = quality::labels::measure(&md, &label_opts, &candle_core::Device::Cpu, &mut log)?;
        let secs = t0.elapsed().as_secs_f64();
        log("done");
        let text = format!(
            "Measured on {} with `jukebox quality --labels-only` (CPU, {secs:.0} s):\n\n```sh\n{}\n```\n\n{}",
            quality::utc_date(),
            command_line(),
            quality::report::labels_markdown(&r)
        );
        match &a.out {
            Some(out) => {
                jukebox::util::atomic_write(out, text.as_bytes())?;
                eprintln!("wrote {}", out.display());
            }
            None => print!("{text}"),
        }
        return Ok(());
    }
    drop(md);
    let Some(corpus) = a.corpus.clone() else {
        bail!("--corpus DIR is required (the VQ-VAE's training corpus), except with --labels-only");
    };
    let genres = if a.genre.is_empty() {
        vec!["unknown".to_string()]
    } else {
        a.genre.clone()
    };
    let work = a.work.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("jukebox-quality-{}", std::process::id()))
    });
    let (prompt_bpm, bpm_source) = prompt_tempo(&a, &prompt)?;
    let opts = QualityOpts {
        model: model.clone(),
        corpus: corpus.clone(),
        prior_corpus: a.prior_corpus.clone(),
        split_seed: a.split_seed,
        valid_fraction: a.valid_fraction,
        clips: a.clips,
        clip_seconds: a.clip_seconds,
        bits: BitsOpts {
            windows: a.windows,
            train_clips: a.unigram_clips.max(1),
        },
        tempo: (!a.no_tempo).then(|| TempoOpts {
            prompt,
            prompt_bpm,
            bpm_source,
            prompt_seconds: a.prompt_seconds,
            seconds: a.seconds,
            seeds: a.seeds,
            seed: a.seed,
            levels,
            artist: a.artist.clone(),
            genres,
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
            work: work.clone(),
            ancestral: !a.no_ancestral,
        }),
        labels: (!a.no_labels).then_some(label_opts),
        loops: a.loops.clone().map(|dir| quality::LoopsOpts {
            dir,
            max_files: a.loops_files,
            prompt_seconds: a.prompt_seconds,
            seconds: a.seconds,
            seeds: a.loops_seeds,
            seed: a.seed,
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
            work: work.join("loops"),
        }),
        separation: (!a.no_separation).then(|| quality::SeparationOpts {
            corpus: a.prior_corpus.clone().unwrap_or_else(|| corpus.clone()),
            split_seed: a.split_seed,
            valid_fraction: a.valid_fraction,
            seeds: a.separation_seeds,
            seed: a.seed,
            seconds: a.separation_seconds,
            clips_per_genre: a.separation_clips,
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
            work: work.join("separation"),
            bars: !a.quiet,
        }),
        bars: !a.quiet,
    };
    let mut report = quality::measure(&opts)?;
    report.command = command_line();
    let mut text = quality::markdown(&report);
    match &a.out {
        Some(out) => {
            if let Ok(old) = std::fs::read_to_string(out) {
                if let Some(r) = reading_section(&old) {
                    text.push('\n');
                    text.push_str(r);
                }
            }
            jukebox::util::atomic_write(out, text.as_bytes())?;
            eprintln!("wrote {}", out.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// The prompt's tempo and where it comes from: `--prompt-bpm`, the bundled Amen prompt's known
/// 137 BPM, or an estimate on the part of the prompt that primes the model.
fn prompt_tempo(a: &Args, prompt: &std::path::Path) -> Result<(f64, String)> {
    if let Some(b) = a.prompt_bpm {
        return Ok((b, "given by --prompt-bpm".into()));
    }
    if a.prompt == std::path::Path::new(DEFAULT_PROMPT) {
        return Ok((137.0, "the bundled Amen prompt's known".into()));
    }
    let audio = jukebox::audio::load(prompt)
        .with_context(|| format!("loading the prompt {}", prompt.display()))?;
    let n = ((a.prompt_seconds * audio.sample_rate as f64) as usize).min(audio.samples.len());
    let b = jukebox::dsp::tempo_bpm(&audio.samples[..n], audio.sample_rate);
    if b <= 0.0 {
        bail!(
            "no tempo found in the first {} s of {}: pass --prompt-bpm",
            a.prompt_seconds,
            prompt.display()
        );
    }
    eprintln!("note: --prompt-bpm not given; {b:.1} BPM estimated from the prompt");
    Ok((
        b,
        "estimated (`dsp::tempo_bpm` on the priming part, no --prompt-bpm given)".into(),
    ))
}

/// `jukebox quality ...` as typed, arguments quoted where the shell needs it.
fn command_line() -> String {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .map(|a| {
            if a.is_empty()
                || a.contains(|c: char| c.is_whitespace() || "'\"$`\\;&|<>()*?".contains(c))
            {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a
            }
        })
        .collect();
    format!("jukebox {}", args.join(" "))
}

#[cfg(test)]
mod tests {
    use super::{prompt_tempo, reading_section, Args};
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        a: Args,
    }

    #[test]
    fn prompt_tempo_is_given_known_or_estimated() {
        let parse = |extra: &[&str]| {
            let mut v = vec!["quality"];
            v.extend_from_slice(extra);
            Wrap::try_parse_from(v).unwrap().a
        };
        let default = parse(&[]);
        let (b, src) = prompt_tempo(&default, &default.prompt).unwrap();
        assert_eq!(b, 137.0);
        assert!(src.contains("Amen"), "{src}");
        let given = parse(&["--prompt-bpm", "99.5"]);
        assert_eq!(prompt_tempo(&given, &given.prompt).unwrap().0, 99.5);
        // Another prompt: a click every 0.5 s is estimated at 120 BPM (or an octave of it).
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("clicks.wav");
        let mut x = vec![0f32; 44_100 * 6];
        for k in 0..12 {
            for i in 0..400 {
                x[k * 22_050 + i] = 0.8 * (-(i as f32) / 80.0).exp();
            }
        }
        jukebox::audio::write_wav_i16(&wav, &x, 44_100).unwrap();
        let other = parse(&["--prompt", wav.to_str().unwrap()]);
        let (b, src) = prompt_tempo(&other, &wav).unwrap();
        assert!(jukebox::dsp::tempo_error_folded(b, 120.0) < 2.0, "{b}");
        assert!(src.contains("estimated"), "{src}");
        // Silence has no tempo: a clear error asks for the flag.
        let silent = dir.path().join("silent.wav");
        jukebox::audio::write_wav_i16(&silent, &vec![0.0; 44_100 * 5], 44_100).unwrap();
        let quiet = parse(&["--prompt", silent.to_str().unwrap()]);
        let e = prompt_tempo(&quiet, &silent).unwrap_err();
        assert!(e.to_string().contains("--prompt-bpm"), "{e}");
    }

    #[test]
    fn reading_section_is_found_and_kept() {
        assert_eq!(
            reading_section("# T\n\n## Reading\nwhy\n"),
            Some("## Reading\nwhy\n")
        );
        assert_eq!(reading_section("## Reading\nx"), Some("## Reading\nx"));
        assert_eq!(reading_section("# T\n## Readings elsewhere\n"), None);
        assert_eq!(reading_section("# T\nno section"), None);
    }
}
