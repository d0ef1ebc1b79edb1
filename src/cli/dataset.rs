//! `jukebox dataset`: validate a corpus and write its label vocabulary; render drum breaks.

use anyhow::{bail, Context, Result};
use jukebox::dataset::{self, metadata, Record};
use jukebox::drums::{self, Kit, Pattern, RenderOptions};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Validate a corpus (metadata, labels, audio) and write DIR/labels/{artists,genres}.txt.
    Check(CheckArgs),
    /// Render one drum pattern from a Hydrogen kit to a 16-bit 44.1 kHz mono WAV.
    Render(RenderArgs),
    /// Render break/groove patterns × tempos × kits into a corpus and add their metadata rows.
    RenderBreaks(BreaksArgs),
    /// List the built-in drum patterns (with `--grid`, print each grid).
    Patterns(PatternsArgs),
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Corpus folder (audio files + metadata.csv or metadata.jsonl).
    pub dir: PathBuf,
    /// Report only; do not write DIR/labels/.
    #[arg(long)]
    pub no_write: bool,
    /// Validation fraction used to preview the train/valid split.
    #[arg(long, default_value_t = 0.1)]
    pub valid_fraction: f64,
    /// Seed of the split preview.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(clap::Args, Debug)]
pub struct RenderArgs {
    /// Hydrogen kit folder (with drumkit.xml).
    #[arg(long, default_value = drums::COLOMBO)]
    pub kit: PathBuf,
    /// A built-in pattern name (see `jukebox dataset patterns`) or a `.drum` file.
    #[arg(long, default_value = "amen")]
    pub pattern: String,
    /// Tempo in BPM (default: the pattern's own).
    #[arg(long)]
    pub bpm: Option<f64>,
    /// Bars to render (the pattern loops; default: one pass of the pattern).
    #[arg(long)]
    pub bars: Option<usize>,
    /// Seconds of ring-out to keep after the last bar line (0 = cut exactly on it).
    #[arg(long, default_value_t = 0.0)]
    pub tail: f64,
    /// Peak level in dBFS after normalisation.
    #[arg(long, default_value_t = -1.0, allow_hyphen_values = true)]
    pub peak_db: f64,
    /// Humanisation: onset shift up to ± this many ms (0 = on the grid).
    #[arg(long, default_value_t = 0.0)]
    pub humanize_ms: f64,
    /// Velocity scale up to ± this fraction (0 = as written).
    #[arg(long, default_value_t = 0.0)]
    pub velocity_jitter: f32,
    /// Seed of the humanisation and velocity draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output WAV.
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct BreaksArgs {
    /// Hydrogen kit folders (repeat); each kit becomes one artist.
    #[arg(long = "kit", required = true)]
    pub kits: Vec<PathBuf>,
    /// Corpus folder; files go to OUT/breaks/<kit>/ and rows into OUT/metadata.csv.
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
    /// Comma-separated pattern names or `.drum` files (default: every built-in pattern).
    #[arg(long, value_delimiter = ',')]
    pub patterns: Vec<String>,
    /// Approximate length of each render (rounded to whole pattern loops).
    #[arg(long, default_value_t = 16.0)]
    pub seconds: f64,
    /// Humanisation: onset shift up to ± this many ms (seeded per file).
    #[arg(long, default_value_t = 3.0)]
    pub humanize_ms: f64,
    /// Velocity scale up to ± this fraction (seeded per file).
    #[arg(long, default_value_t = 0.08)]
    pub velocity_jitter: f32,
    /// Seed of the per-file draws (tempo picks, swing, humanisation, velocities).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seconds of ring-out after the last bar line.
    #[arg(long, default_value_t = 0.25)]
    pub tail: f64,
    /// Comma-separated tempos (BPM) for every pattern, replacing each pattern's own `tempos:`.
    #[arg(long, value_delimiter = ',')]
    pub tempos: Vec<f64>,
    /// Render only this many of the tempos per kit × pattern, picked by the seed (0 = all).
    #[arg(long, default_value_t = 0)]
    pub tempos_per_pattern: usize,
    /// Comma-separated swing amounts; each file gets one, picked by the seed (a pattern's own
    /// swing is kept when it is larger).
    #[arg(long, value_delimiter = ',')]
    pub swing: Vec<f64>,
    /// Label every render with this genre instead of its pattern's `genre:`.
    #[arg(long)]
    pub genre: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct PatternsArgs {
    /// Print each pattern's grid.
    #[arg(long)]
    pub grid: bool,
}

pub fn run(args: Args) -> Result<()> {
    match args.cmd {
        Cmd::Check(a) => check(a),
        Cmd::Render(a) => render_one(a),
        Cmd::RenderBreaks(a) => render_breaks(a),
        Cmd::Patterns(a) => patterns(a),
    }
}

fn load_pattern(spec: &str) -> Result<Pattern> {
    let p = Path::new(spec);
    if spec.ends_with(".drum") || p.is_file() {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("cannot read pattern file {spec}"))?;
        return Pattern::parse(&text, spec);
    }
    drums::builtin(spec)
}

fn check(a: CheckArgs) -> Result<()> {
    let s = dataset::scan(&a.dir)?;
    let c = &s.corpus;
    for w in &s.warnings {
        eprintln!("warning: {w}");
    }
    let (artists, genres) = c.totals();
    let fmt_t = |s: f64| format!("{:>3}:{:04.1}", (s / 60.0).floor() as u64, s % 60.0);
    println!("corpus {} ({})", a.dir.display(), c.metadata_path.display());
    println!(
        "  {} usable file(s), {} total",
        c.items.len(),
        fmt_t(c.total_seconds())
    );
    let (shortest, longest) = c.items.iter().fold((f64::INFINITY, 0f64), |(lo, hi), it| {
        (lo.min(it.seconds()), hi.max(it.seconds()))
    });
    if !c.items.is_empty() {
        println!("  file lengths {shortest:.1} s – {longest:.1} s");
    }
    println!(
        "\n  {:<4} {:<32} {:>5} {:>9}",
        "id", "artist", "files", "min:sec"
    );
    for (id, name) in c.vocab.artists.iter().enumerate() {
        if let Some((n, t)) = artists.get(name) {
            println!("  {id:<4} {name:<32} {n:>5} {:>9}", fmt_t(*t));
        }
    }
    println!(
        "\n  {:<4} {:<32} {:>5} {:>9}",
        "id", "genre", "files", "min:sec"
    );
    for (id, name) in c.vocab.genres.iter().enumerate() {
        if let Some((n, t)) = genres.get(name) {
            println!("  {id:<4} {name:<32} {n:>5} {:>9}", fmt_t(*t));
        }
    }
    let split = c.split(a.seed, a.valid_fraction);
    let vt: f64 = split.valid.iter().map(|&i| c.items[i].seconds()).sum();
    println!(
        "\n  split (seed {}, fraction {}): {} train / {} valid files ({} of validation audio)",
        a.seed,
        a.valid_fraction,
        split.train.len(),
        split.valid.len(),
        fmt_t(vt)
    );
    let labels = a.dir.join("labels");
    if !a.no_write && s.problems.is_empty() {
        c.vocab.write(&labels)?;
        println!(
            "  wrote {} ({} artists) and {} ({} genres); id 0 = unknown",
            labels.join("artists.txt").display(),
            c.vocab.artists.len(),
            labels.join("genres.txt").display(),
            c.vocab.genres.len()
        );
    } else if !c.vocab_on_disk {
        println!(
            "  labels/ not written (it would change: {} artists, {} genres)",
            c.vocab.artists.len(),
            c.vocab.genres.len()
        );
    }
    if !s.problems.is_empty() {
        eprintln!("\n{} problem(s):", s.problems.len());
        for p in &s.problems {
            eprintln!("  {p}");
        }
        bail!(
            "corpus {} has {} problem(s); labels were not written",
            a.dir.display(),
            s.problems.len()
        );
    }
    println!("  OK");
    Ok(())
}

fn peak_from_db(db: f64) -> Result<f32> {
    if !(-60.0..=0.0).contains(&db) {
        bail!("--peak-db {db} must be between -60 and 0 dBFS");
    }
    Ok(10f64.powf(db / 20.0) as f32)
}

fn render_one(a: RenderArgs) -> Result<()> {
    let pattern = load_pattern(&a.pattern)?;
    let kit = Kit::load(&a.kit)?;
    let bpm = a.bpm.unwrap_or(pattern.bpm);
    let opts = RenderOptions {
        bars: a.bars.unwrap_or(pattern.bars),
        tail_seconds: a.tail,
        humanize_ms: a.humanize_ms,
        velocity_jitter: a.velocity_jitter,
        seed: a.seed,
        peak: Some(peak_from_db(a.peak_db)?),
        ..RenderOptions::default()
    };
    let r = drums::render(&pattern, &kit, bpm, &opts)?;
    jukebox::audio::write_wav_i16(&a.out, &r.samples, opts.sample_rate)?;
    println!(
        "wrote {}: `{}` × {} bar(s) at {bpm} BPM with {} — {} samples ({:.4} s; bar length {} samples), {} hits",
        a.out.display(),
        pattern.name,
        opts.bars,
        kit.info.name,
        r.samples.len(),
        r.samples.len() as f64 / opts.sample_rate as f64,
        r.bar_length,
        r.onsets.len()
    );
    Ok(())
}

fn slug(s: &str) -> String {
    dataset::key(s).replace('_', "-")
}

fn render_breaks(a: BreaksArgs) -> Result<()> {
    let patterns: Vec<Pattern> = if a.patterns.is_empty() {
        drums::builtin_patterns()?
    } else {
        a.patterns
            .iter()
            .map(|p| load_pattern(p))
            .collect::<Result<_>>()?
    };
    if !(1.0..=600.0).contains(&a.seconds) {
        bail!("--seconds {} must be in 1–600", a.seconds);
    }
    if let Some(t) = a.tempos.iter().find(|t| !(20.0..=400.0).contains(*t)) {
        bail!("--tempos: {t} BPM is outside 20–400");
    }
    if let Some(s) = a.swing.iter().find(|s| !(0.0..1.0).contains(*s)) {
        bail!("--swing: {s} must be in [0, 1) (a fraction of a step)");
    }
    let meta_path = a.out.join("metadata.csv");
    let mut records: Vec<Record> = if meta_path.is_file() {
        metadata::read(&meta_path)?
    } else {
        Vec::new()
    };
    let mut written = 0usize;
    let mut total = 0f64;
    for kit_dir in &a.kits {
        let kit = Kit::load(kit_dir)?;
        let (artist, source, license, author) = kit.info.credits();
        for p in &patterns {
            let all = if a.tempos.is_empty() {
                &p.tempos
            } else {
                &a.tempos
            };
            let key = format!("{}/{}", slug(&artist), p.name);
            for bpm in pick_tempos(all, a.tempos_per_pattern, a.seed ^ fnv(&key)) {
                let rel = format!(
                    "breaks/{}/{}-{}bpm.wav",
                    slug(&artist),
                    p.name,
                    fmt_bpm(bpm)
                );
                let seed = a.seed ^ jukebox::util::splitmix64(fnv(&rel));
                let mut p = p.clone();
                if !a.swing.is_empty() {
                    let pick =
                        a.swing[(jukebox::util::splitmix64(seed) % a.swing.len() as u64) as usize];
                    p.swing = p.swing.max(pick);
                }
                let genre = a.genre.clone().unwrap_or_else(|| p.genre.clone());
                let p = &p;
                let opts = RenderOptions {
                    bars: drums::bars_for_seconds(p, bpm, a.seconds),
                    tail_seconds: a.tail,
                    humanize_ms: a.humanize_ms,
                    velocity_jitter: a.velocity_jitter,
                    seed,
                    ..RenderOptions::default()
                };
                let r = drums::render(p, &kit, bpm, &opts)?;
                jukebox::audio::write_wav_i16(&a.out.join(&rel), &r.samples, opts.sample_rate)?;
                total += r.samples.len() as f64 / opts.sample_rate as f64;
                written += 1;
                let rec = Record {
                    path: rel.clone(),
                    artist: artist.clone(),
                    genres: vec![genre],
                    license: license.clone(),
                    source: source.clone(),
                    author: author.clone(),
                    title: format!(
                        "{} at {} BPM{} ({} bars, rendered by jukebox-rs)",
                        p.title,
                        fmt_bpm(bpm),
                        if p.swing > 0.0 {
                            format!(", swing {}", p.swing)
                        } else {
                            String::new()
                        },
                        opts.bars
                    ),
                    ..Record::default()
                };
                match records.iter_mut().find(|r| r.path == rel) {
                    Some(old) => *old = rec,
                    None => records.push(rec),
                }
            }
        }
        println!(
            "{}: rendered {} pattern(s) with {}",
            kit.info.name,
            patterns.len(),
            artist
        );
    }
    jukebox::util::atomic_write(&meta_path, metadata::to_csv(&records).as_bytes())?;
    println!(
        "wrote {written} file(s), {:.1} min, under {} and updated {}",
        total / 60.0,
        a.out.join("breaks").display(),
        meta_path.display()
    );
    Ok(())
}

/// FNV-1a of a name: a seed that depends on the file, not on the order of the loops.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// `n` of `tempos` (all when n is 0 or ≥ len), chosen by a seeded shuffle, in ascending order.
fn pick_tempos(tempos: &[f64], n: usize, seed: u64) -> Vec<f64> {
    let mut v = tempos.to_vec();
    if n > 0 && n < v.len() {
        let mut h = seed;
        for i in (1..v.len()).rev() {
            h = jukebox::util::splitmix64(h);
            v.swap(i, (h % (i as u64 + 1)) as usize);
        }
        v.truncate(n);
    }
    v.sort_by(f64::total_cmp);
    v
}

fn fmt_bpm(bpm: f64) -> String {
    if bpm.fract() == 0.0 {
        format!("{}", bpm as i64)
    } else {
        format!("{bpm}")
    }
}

fn patterns(a: PatternsArgs) -> Result<()> {
    for p in drums::builtin_patterns()? {
        let tempos: Vec<String> = p.tempos.iter().map(|t| fmt_bpm(*t)).collect();
        println!(
            "{:<18} {} bar(s), {} BPM (corpus: {}), genre {} — {}",
            p.name,
            p.bars,
            fmt_bpm(p.bpm),
            tempos.join("/"),
            p.genre,
            p.title
        );
        if a.grid {
            println!("{}", p.grid());
        }
    }
    Ok(())
}
