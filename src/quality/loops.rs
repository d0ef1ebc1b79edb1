//! Held-out loops of `jukebox quality`: primed continuations of drum loops at tempos the training
//! corpus does not contain (`scripts/fetch-corpus` renders them into `<corpus>-heldout-loops`).
//!
//! Each loop's first seconds prime the model (with the loop's own artist and genre when the model
//! knows them, else `unknown`), and the tempo of what the model adds is compared with the loop's
//! tempo, which `jukebox dataset render-breaks` writes into the file name (`amen-113bpm.wav`).
//! Baselines per loop: the tempo read on the prompt itself (the estimator's own error) and on
//! the loop repeated (what copying the prompt would score).

use super::tempo::{self, TempoOpts};
use crate::checkpoint::ModelDir;
use crate::dataset::Corpus;
use crate::labels::IdSet;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct LoopsOpts {
    /// A corpus folder of loops (metadata.csv; tempo in each file name).
    pub dir: PathBuf,
    /// Loops measured at most, spread evenly over the folder.
    pub max_files: usize,
    pub prompt_seconds: f64,
    pub seconds: f64,
    /// Continuations per loop.
    pub seeds: usize,
    pub seed: u64,
    pub temperature: f64,
    pub top_k: usize,
    pub top_p: f64,
    pub work: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoopRow {
    pub rel: String,
    pub bpm: f64,
    /// The labels the continuations were sampled with.
    pub artist: String,
    pub genres: Vec<String>,
    /// Tempo read on the prompt span (the estimator's error on real audio).
    pub prompt_bpm: f64,
    /// Tempo of each continuation.
    pub estimates: Vec<f64>,
    pub folded_error: f64,
    /// Tempo of the loop repeated over the continued span.
    pub loop_folded_error: f64,
}

#[derive(Debug, Clone)]
pub struct LoopsResult {
    pub dir: String,
    pub prompt_seconds: f64,
    pub seconds: f64,
    pub seeds: Vec<u64>,
    pub rows: Vec<LoopRow>,
    /// Loops not measured, and why.
    pub left_out: Vec<String>,
    pub sampling_seconds: f64,
}

impl LoopsResult {
    fn mean(&self, f: impl Fn(&LoopRow) -> f64) -> f64 {
        self.rows.iter().map(f).sum::<f64>() / self.rows.len().max(1) as f64
    }
    /// Mean folded tempo error of the continuations, over loops.
    pub fn folded_error(&self) -> f64 {
        self.mean(|r| r.folded_error)
    }
    pub fn prompt_folded_error(&self) -> f64 {
        self.mean(|r| crate::dsp::tempo_error_folded(r.prompt_bpm, r.bpm))
    }
    pub fn loop_folded_error(&self) -> f64 {
        self.mean(|r| r.loop_folded_error)
    }
}

/// The tempo in a rendered loop's file name: `…-113bpm.wav` → 113.
pub fn bpm_from_name(rel: &str) -> Option<f64> {
    let stem = rel.rsplit('/').next()?.strip_suffix(".wav")?;
    let num = stem.strip_suffix("bpm")?.rsplit('-').next()?;
    num.parse::<f64>()
        .ok()
        .filter(|b| *b > 0.0 && b.is_finite())
}

/// `n` of `0..len`, evenly spread (all when n ≥ len).
fn spread(len: usize, n: usize) -> Vec<usize> {
    if n >= len {
        return (0..len).collect();
    }
    (0..n).map(|i| i * len / n).collect()
}

pub fn measure(
    md: &ModelDir,
    o: &LoopsOpts,
    bars: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<LoopsResult> {
    let corpus = Corpus::open(&o.dir)
        .with_context(|| format!("opening the loops folder {}", o.dir.display()))?;
    let top = md.config.top_level();
    let ids = match &md.config.priors[top].labels {
        Some(_) => Some(IdSet::for_model(&md.path, &md.config.priors[top])?),
        None => None,
    };
    let mut left_out = Vec::new();
    let mut cands = Vec::new();
    for it in &corpus.items {
        match bpm_from_name(&it.rel) {
            Some(b) => cands.push((it, b)),
            None => left_out.push(format!("{}: no `-<N>bpm.wav` tempo in its name", it.rel)),
        }
    }
    if cands.is_empty() {
        bail!(
            "no loop in {} names its tempo (`…-113bpm.wav`, as `jukebox dataset render-breaks` writes)",
            o.dir.display()
        );
    }
    let picked = spread(cands.len(), o.max_files);
    for (i, (it, _)) in cands.iter().enumerate() {
        if !picked.contains(&i) {
            left_out.push(format!("{}: over --loops-files", it.rel));
        }
    }
    let t0 = std::time::Instant::now();
    let mut rows = Vec::new();
    let seeds: Vec<u64> = (0..o.seeds as u64).map(|i| o.seed + i).collect();
    for (n, &i) in picked.iter().enumerate() {
        let (it, bpm) = cands[i];
        // The loop's own labels where the model has them (a user primes with the labels they know).
        let (artist, genres) = match &ids {
            Some(ids) => {
                let artist = if ids.artist_lookup(&it.artist).0 > 0 {
                    it.artist.clone()
                } else {
                    "unknown".to_string()
                };
                let genres: Vec<String> = it
                    .genres
                    .iter()
                    .filter(|g| ids.genre_lookup(g).0.iter().any(|&id| id > 0))
                    .cloned()
                    .collect();
                (artist, genres)
            }
            None => ("unknown".to_string(), Vec::new()),
        };
        progress(&format!(
            "loops: {}/{} {} ({bpm} BPM)",
            n + 1,
            picked.len(),
            it.rel
        ));
        let topts = TempoOpts {
            prompt: corpus.dir.join(&it.rel),
            prompt_bpm: bpm,
            bpm_source: "from the loop's file name".into(),
            prompt_seconds: o.prompt_seconds,
            seconds: o.seconds,
            seeds: o.seeds,
            seed: o.seed,
            levels: vec![top],
            artist: artist.clone(),
            genres: if genres.is_empty() {
                vec!["unknown".to_string()]
            } else {
                genres.clone()
            },
            temperature: o.temperature,
            top_k: o.top_k,
            top_p: o.top_p,
            work: o.work.join(format!("loop-{n}")),
            ancestral: false,
        };
        let r = tempo::measure(md, &topts, bars, &mut |_| {})
            .with_context(|| format!("continuing the loop {}", it.rel))?;
        let find = |prefix: &str| {
            r.rows
                .iter()
                .find(|row| row.name.starts_with(prefix))
                .with_context(|| format!("tempo measurement has no `{prefix}` row"))
        };
        let primed = find("primed continuation")?;
        rows.push(LoopRow {
            rel: it.rel.clone(),
            bpm,
            artist,
            genres,
            prompt_bpm: find("the prompt itself")?.estimates[0],
            estimates: primed.estimates.clone(),
            folded_error: primed.mean_folded_error,
            loop_folded_error: find("repeat the prompt (audio loop)")?.mean_folded_error,
        });
    }
    let _ = std::fs::remove_dir(&o.work);
    Ok(LoopsResult {
        dir: o.dir.display().to_string(),
        prompt_seconds: o.prompt_seconds,
        seconds: o.seconds,
        seeds,
        rows,
        left_out,
        sampling_seconds: t0.elapsed().as_secs_f64(),
    })
}

/// The section as Markdown.
pub fn markdown(r: &LoopsResult) -> String {
    use std::fmt::Write as _;
    let f1 = |x: f64| format!("{x:.1}");
    let mut s = String::new();
    let _ = writeln!(s, "## Tempo of primed continuations: held-out loops\n");
    let _ = writeln!(
        s,
        "Loops of `{}`, at tempos the training corpus does not contain. Each loop's first {:.2} s, \
         continued to {:.2} s at the top level with the loop's own labels (`unknown` where the \
         model lacks them); seeds {:?}; {:.0} s of sampling. Tempo is read on the continued span \
         and folded (octave errors forgiven). Baselines: the tempo read on the prompt itself (the \
         estimator's own error) and on the loop repeated over the continued span.\n",
        r.dir, r.prompt_seconds, r.seconds, r.seeds, r.sampling_seconds
    );
    let _ = writeln!(
        s,
        "| loop | true BPM | labels | read on the prompt | continuations (BPM) | **folded error** | loop repeated: error |"
    );
    let _ = writeln!(s, "|---|---:|---|---:|---|---:|---:|");
    for x in &r.rows {
        let est: Vec<String> = x.estimates.iter().map(|e| f1(*e)).collect();
        let _ = writeln!(
            s,
            "| `{}` | {} | {} / {} | {} | {} | **{}** | {} |",
            x.rel,
            x.bpm,
            x.artist,
            if x.genres.is_empty() {
                "unknown".to_string()
            } else {
                x.genres.join("+")
            },
            f1(x.prompt_bpm),
            est.join(", "),
            f1(x.folded_error),
            f1(x.loop_folded_error)
        );
    }
    let _ = writeln!(
        s,
        "| **mean over {} loops** | | | error {} | | **{}** | {} |",
        r.rows.len(),
        f1(r.prompt_folded_error()),
        f1(r.folded_error()),
        f1(r.loop_folded_error())
    );
    if !r.left_out.is_empty() {
        let _ = writeln!(
            s,
            "\n{} loop(s) not measured (e.g. {}).",
            r.left_out.len(),
            r.left_out[0]
        );
    }
    s
}

/// The comparisons the continuations lose.
pub fn misses(r: &LoopsResult) -> Vec<String> {
    if r.folded_error() >= r.loop_folded_error().max(r.prompt_folded_error()) + 4.0 {
        vec![format!(
            "Held-out loops: continuations miss the loop's tempo by {:.1} BPM (folded), against {:.1} for repeating the loop.",
            r.folded_error(),
            r.loop_folded_error()
        )]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tempo_comes_from_the_rendered_name() {
        assert_eq!(bpm_from_name("breaks/kit/amen-113bpm.wav"), Some(113.0));
        assert_eq!(bpm_from_name("four-on-the-floor-87.5bpm.wav"), Some(87.5));
        assert_eq!(bpm_from_name("breaks/kit/amen.wav"), None);
        assert_eq!(bpm_from_name("x-0bpm.wav"), None);
        assert_eq!(bpm_from_name("x-113bpm.flac"), None);
    }

    #[test]
    fn loops_are_spread_evenly() {
        assert_eq!(spread(10, 4), vec![0, 2, 5, 7]);
        assert_eq!(spread(3, 8), vec![0, 1, 2]);
    }
}
