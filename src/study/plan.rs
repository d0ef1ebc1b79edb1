//! The study plan: cells (label set × primed/ancestral), seeds, and fixed batch groups.
//!
//! A **cell** is one label set in one mode; it holds one sample per seed. A **batch group** is
//! several cells of the same mode × one seed; it is the unit of batching, resume and sharding, and
//! is written into `plan.toml` so that every rerun or shard batches exactly alike.

pub use super::vocab::{LabelKind, LabelResolver, Vocab};
use crate::labels::norm_v2 as normalise;
use crate::prior::WeightFormat;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Plan file format version.
pub const PLAN_VERSION: u32 = 1;
/// Default number of cells in one batch group. 16 holds the default sweep's 13 primed cells of
/// one seed in one group (the per-step cost of a small model is mostly per-op overhead, so one
/// batch of 13 is much cheaper than 8 + 5); the memory guard refuses a batch that would not fit.
pub const DEFAULT_MAX_BATCH: usize = 16;
/// The label name used by the no-label control (the official unknown id 0).
pub use crate::labels::UNKNOWN;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Continue the prompt's codes.
    Primed,
    /// No prompt: sample from scratch with the same labels and seeds.
    Ancestral,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Primed => "primed",
            Mode::Ancestral => "ancestral",
        }
    }
}

/// What produced a study's numbers: the sampling pipeline on a model, or the deterministic
/// fake runner (`--fake-runner`, for tests and demos). Recorded in `plan.toml`, in every item
/// record, in `claims.csv` and in the report, so a fake study never reads as a real one and the
/// two are never mixed. A plan or record written before this field existed reads as `model`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum RunnerKind {
    #[default]
    Model,
    Fake,
}

impl RunnerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunnerKind::Model => "model",
            RunnerKind::Fake => "fake",
        }
    }
}

impl std::fmt::Display for RunnerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One label set in one mode.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Cell {
    pub id: String,
    pub mode: Mode,
    /// Genre names as given (a bag of genres for one item).
    pub genres: Vec<String>,
    pub genre_ids: Vec<i64>,
    pub artist: String,
    pub artist_id: i64,
    /// True for the no-label control (unknown artist and genre).
    pub no_label: bool,
    /// True for a control cell (no-label, or any ancestral cell).
    pub control: bool,
}

impl Cell {
    /// A short human label, e.g. `rock+pop / artist`.
    pub fn label(&self) -> String {
        format!("{} / {}", self.genres.join("+"), self.artist)
    }
}

/// Several cells of one mode sampled together for one seed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BatchGroup {
    pub index: usize,
    pub mode: Mode,
    pub seed: u64,
    pub cells: Vec<String>,
}

/// Everything needed to run, resume, shard and report a study.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Plan {
    pub version: u32,
    /// What runs the cells (see [`RunnerKind`]); [`Plan::build`] sets `model`.
    #[serde(default)]
    pub runner: RunnerKind,
    pub model: String,
    pub prompt: String,
    pub prompt_seconds: f64,
    pub seconds: f64,
    pub sample_rate: u32,
    /// Hop length per level, official order (0 = bottom).
    pub hops: Vec<usize>,
    /// Prompt length in samples, a multiple of the top hop.
    pub prompt_samples: usize,
    /// Total length of each sample (prompt included), a multiple of the top hop.
    pub total_samples: usize,
    /// The prompt's tempo when the user knows it (`--prompt-bpm`); else it is measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_bpm: Option<f64>,
    /// Levels to sample, top first (official numbering).
    pub levels: Vec<usize>,
    pub temperature: f64,
    pub top_k: usize,
    pub top_p: f64,
    pub seed_base: u64,
    pub seeds: Vec<u64>,
    pub controls: bool,
    pub max_batch: usize,
    /// How the priors store their dense weights (`--dtype`; f32 unless asked).
    #[serde(default, skip_serializing_if = "WeightFormat::is_f32")]
    pub weights: WeightFormat,
    pub cells: Vec<Cell>,
    pub groups: Vec<BatchGroup>,
}

/// A cell-id fragment: lowercase ASCII letters, digits and `_`.
pub fn slug(s: &str) -> String {
    let n = normalise(&s.replace('#', "id"));
    if n.is_empty() {
        "x".into()
    } else {
        n
    }
}

/// What the user asked for (CLI flags, optionally overridden by a `--plan FILE.toml`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlanSpec {
    pub model: Option<String>,
    pub prompt: Option<String>,
    pub prompt_seconds: Option<f64>,
    pub seconds: Option<f64>,
    pub prompt_bpm: Option<f64>,
    /// Sweep axis: each entry is one cell's genre bag (`a+b` for several).
    pub genres: Option<Vec<String>>,
    pub artists: Option<Vec<String>>,
    /// Number of seeds (seeds `seed .. seed + seeds`).
    pub seeds: Option<u64>,
    pub seed: Option<u64>,
    /// `top`, `top,middle`, `all`, or level numbers.
    pub levels: Option<String>,
    pub temperature: Option<f64>,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    pub controls: Option<bool>,
    pub max_batch: Option<usize>,
    /// `f32`, `f16`, `bf16` or `q8` (`--dtype`).
    pub dtype: Option<String>,
    /// Explicit cells instead of the genre × artist sweep.
    pub cells: Option<Vec<CellSpec>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CellSpec {
    pub genres: Vec<String>,
    pub artist: String,
}

impl PlanSpec {
    /// Read a `--plan FILE.toml`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read plan {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("plan {} is not a valid study plan", path.display()))
    }

    /// Fields set in `other` replace ours (the plan file wins over CLI defaults).
    pub fn overlay(mut self, other: PlanSpec) -> Self {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(
            model,
            prompt,
            prompt_seconds,
            seconds,
            prompt_bpm,
            genres,
            artists,
            seeds,
            seed,
            levels,
            temperature,
            top_k,
            top_p,
            controls,
            max_batch,
            dtype,
            cells
        );
        self
    }
}

/// Parse `--levels`: `top`, `top,middle`, `all`, or numbers; returns levels top first.
pub fn parse_levels(s: &str, n_levels: usize) -> Result<Vec<usize>> {
    let top = n_levels.checked_sub(1).context("the model has no levels")?;
    let mut out = vec![];
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let l = match part {
            "all" => {
                out.extend((0..=top).rev());
                continue;
            }
            p => p
                .parse::<crate::level::Level>()
                .ok()
                .map(|l| l.0)
                .filter(|l| *l <= top)
                .with_context(|| {
                    format!("--levels: `{p}` is not top, middle, bottom, all or a level 0..={top}")
                })?,
        };
        out.push(l);
    }
    out.sort_unstable_by(|a, b| b.cmp(a));
    out.dedup();
    if out.first() != Some(&top) {
        bail!("--levels `{s}` must include the top level: lower levels are upsampled from it");
    }
    // Upsampling goes one level at a time, so the chosen levels must be contiguous from the top.
    for (i, l) in out.iter().enumerate() {
        if *l != top - i {
            bail!("--levels `{s}` skips a level: choose top, top,middle or all");
        }
    }
    Ok(out)
}

/// Fixed values of the model and defaults that the plan builder needs.
#[derive(Clone, Debug)]
pub struct ModelFacts {
    pub sample_rate: u32,
    pub hops: Vec<usize>,
}

/// Defaults for the no-flag study (docs/CONVENTIONS.md, "Budgets").
/// Two bars of the bundled Amen prompt at 137 BPM: users advise cutting a prime on a bar line.
pub const DEFAULT_PROMPT_SECONDS: f64 = 3.504;
pub const DEFAULT_CONTINUATION_SECONDS: f64 = 3.0;
pub const DEFAULT_SWEEP: usize = 4;
pub const DEFAULT_SEEDS: u64 = 2;

impl Plan {
    /// Build the plan: cells (sweep × controls), seeds and batch groups.
    pub fn build(spec: &PlanSpec, vocab: &dyn LabelResolver, facts: &ModelFacts) -> Result<Plan> {
        let sr = facts.sample_rate;
        let top_hop = *facts.hops.last().context("model has no levels")?;
        let prompt_seconds = spec.prompt_seconds.unwrap_or(DEFAULT_PROMPT_SECONDS);
        let seconds = spec
            .seconds
            .unwrap_or(prompt_seconds + DEFAULT_CONTINUATION_SECONDS);
        if !(prompt_seconds.is_finite() && prompt_seconds > 0.0) {
            bail!("--prompt-seconds must be > 0, got {prompt_seconds}");
        }
        if !(seconds.is_finite() && seconds > prompt_seconds) {
            bail!(
                "--seconds is the total length (prompt included) and must exceed --prompt-seconds \
                 {prompt_seconds}, got {seconds}"
            );
        }
        let to_samples = |s: f64| ((s * sr as f64) as usize) / top_hop * top_hop;
        let prompt_samples = to_samples(prompt_seconds);
        let total_samples = to_samples(seconds);
        if prompt_samples == 0 {
            bail!("--prompt-seconds {prompt_seconds} is shorter than one top-level token ({top_hop} samples)");
        }
        if total_samples <= prompt_samples {
            bail!("--seconds {seconds} leaves no continuation after the prompt (top hop {top_hop} samples)");
        }
        if let Some(b) = spec.prompt_bpm {
            if !(b.is_finite() && (20.0..=400.0).contains(&b)) {
                bail!("--prompt-bpm must be between 20 and 400, got {b}");
            }
        }
        let levels = parse_levels(spec.levels.as_deref().unwrap_or("all"), facts.hops.len())?;
        let temperature = spec
            .temperature
            .unwrap_or(crate::sample::DEFAULT_TEMPERATURE);
        if !(temperature.is_finite() && temperature > 0.0) {
            bail!("--temperature must be > 0, got {temperature}");
        }
        let top_p = spec.top_p.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&top_p) {
            bail!("--top-p must be in [0, 1], got {top_p}");
        }
        let n_seeds = spec.seeds.unwrap_or(DEFAULT_SEEDS);
        if n_seeds == 0 {
            bail!("empty sweep: --seeds is 0");
        }
        let seed_base = spec.seed.unwrap_or(0);
        let seeds: Vec<u64> = (0..n_seeds).map(|i| seed_base.wrapping_add(i)).collect();
        let controls = spec.controls.unwrap_or(true);
        let max_batch = spec.max_batch.unwrap_or(DEFAULT_MAX_BATCH);
        if max_batch == 0 {
            bail!("max_batch must be at least 1");
        }
        let weights = match &spec.dtype {
            Some(d) => WeightFormat::parse(d).map_err(|e| anyhow::anyhow!("--dtype: {e}"))?,
            None => WeightFormat::F32,
        };

        // Label sets of the sweep.
        let mut sets: Vec<(Vec<String>, String)> = vec![];
        if let Some(cells) = &spec.cells {
            for c in cells {
                sets.push((c.genres.clone(), c.artist.clone()));
            }
        } else {
            let genres = match &spec.genres {
                Some(g) => g.clone(),
                None => vocab.first_names(LabelKind::Genre, DEFAULT_SWEEP),
            };
            let artists = match &spec.artists {
                Some(a) => a.clone(),
                None => vocab.first_names(LabelKind::Artist, DEFAULT_SWEEP),
            };
            let genres: Vec<String> = genres
                .into_iter()
                .filter(|g| !g.trim().is_empty())
                .collect();
            let artists: Vec<String> = artists
                .into_iter()
                .filter(|a| !a.trim().is_empty())
                .collect();
            if genres.is_empty() || artists.is_empty() {
                bail!(
                    "empty sweep: {} genres × {} artists; give --genre and --artist (see --list-genres)",
                    genres.len(),
                    artists.len()
                );
            }
            for g in &genres {
                for a in &artists {
                    let bag = g
                        .split('+')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect();
                    sets.push((bag, a.clone()));
                }
            }
        }
        if sets.is_empty() {
            bail!("empty sweep: the plan has no cells");
        }

        let mut primed = vec![];
        for (genres, artist) in &sets {
            if genres.is_empty() {
                bail!("a cell for artist `{artist}` has no genre");
            }
            let mut genre_ids = vec![];
            for g in genres {
                genre_ids.extend(vocab.genre_ids(g)?);
            }
            let artist_id = vocab.artist_id(artist)?;
            let no_label = artist_id == 0 && genre_ids.iter().all(|g| *g == 0);
            primed.push(Cell {
                id: String::new(),
                mode: Mode::Primed,
                genres: genres.clone(),
                genre_ids,
                artist: artist.clone(),
                artist_id,
                no_label,
                control: no_label,
            });
        }
        if controls && !primed.iter().any(|c| c.no_label) {
            primed.push(Cell {
                id: String::new(),
                mode: Mode::Primed,
                genres: vec![UNKNOWN.into()],
                genre_ids: vec![0],
                artist: UNKNOWN.into(),
                artist_id: 0,
                no_label: true,
                control: true,
            });
        }
        let mut cells = primed.clone();
        if controls {
            for c in &primed {
                cells.push(Cell {
                    mode: Mode::Ancestral,
                    control: true,
                    ..c.clone()
                });
            }
        }
        // Stable, readable, unique ids.
        let mut seen = std::collections::BTreeSet::new();
        for c in cells.iter_mut() {
            let genres: Vec<String> = c.genres.iter().map(|g| slug(g)).collect();
            let base = format!(
                "{}-{}-{}",
                c.mode.as_str(),
                genres.join("+"),
                slug(&c.artist)
            );
            let mut id = base.clone();
            let mut k = 2;
            while !seen.insert(id.clone()) {
                id = format!("{base}-{k}");
                k += 1;
            }
            c.id = id;
        }

        let mut groups = vec![];
        for mode in [Mode::Primed, Mode::Ancestral] {
            let ids: Vec<String> = cells
                .iter()
                .filter(|c| c.mode == mode)
                .map(|c| c.id.clone())
                .collect();
            for &seed in &seeds {
                for chunk in ids.chunks(max_batch) {
                    groups.push(BatchGroup {
                        index: groups.len(),
                        mode,
                        seed,
                        cells: chunk.to_vec(),
                    });
                }
            }
        }

        Ok(Plan {
            version: PLAN_VERSION,
            runner: RunnerKind::Model,
            model: spec.model.clone().unwrap_or_default(),
            prompt: spec.prompt.clone().unwrap_or_default(),
            prompt_seconds,
            seconds,
            sample_rate: sr,
            hops: facts.hops.clone(),
            prompt_samples,
            total_samples,
            prompt_bpm: spec.prompt_bpm,
            levels,
            temperature,
            top_k: spec.top_k.unwrap_or(0),
            top_p,
            seed_base,
            seeds,
            controls,
            max_batch,
            weights,
            cells,
            groups,
        })
    }

    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).context("cannot serialise the study plan")
    }

    pub fn from_toml(text: &str, path: &Path) -> Result<Plan> {
        let p: Plan = toml::from_str(text)
            .with_context(|| format!("{} is not a study plan", path.display()))?;
        if p.version != PLAN_VERSION {
            bail!(
                "{}: plan version {} is not supported (expected {PLAN_VERSION})",
                path.display(),
                p.version
            );
        }
        p.check()?;
        Ok(p)
    }

    /// Internal consistency (a hand-edited plan must still be runnable).
    pub fn check(&self) -> Result<()> {
        let ids: std::collections::BTreeSet<&str> =
            self.cells.iter().map(|c| c.id.as_str()).collect();
        if ids.len() != self.cells.len() {
            bail!("plan has duplicate cell ids");
        }
        for (i, g) in self.groups.iter().enumerate() {
            if g.index != i {
                bail!("plan group {i} has index {}", g.index);
            }
            for c in &g.cells {
                let cell = self
                    .cell(c)
                    .with_context(|| format!("plan group {i} names unknown cell `{c}`"))?;
                if cell.mode != g.mode {
                    bail!("plan group {i} mixes modes (cell `{c}`)");
                }
            }
            if !self.seeds.contains(&g.seed) {
                bail!("plan group {i} uses seed {} which is not in seeds", g.seed);
            }
        }
        if self.hops.is_empty() || self.levels.is_empty() {
            bail!("plan has no levels");
        }
        Ok(())
    }

    pub fn cell(&self, id: &str) -> Option<&Cell> {
        self.cells.iter().find(|c| c.id == id)
    }

    /// Index of a seed in `seeds` (the `sample_I` number).
    pub fn seed_index(&self, seed: u64) -> Option<usize> {
        self.seeds.iter().position(|s| *s == seed)
    }

    /// Groups that belong to shard `i` of `n`.
    pub fn shard_groups(&self, shard: Option<(usize, usize)>) -> Vec<&BatchGroup> {
        self.groups
            .iter()
            .filter(|g| shard.is_none_or(|(i, n)| g.index % n == i))
            .collect()
    }

    /// Tokens generated per item at `level`.
    pub fn generated_tokens(&self, level: usize, mode: Mode) -> usize {
        let hop = self.hops[level];
        match mode {
            Mode::Primed => (self.total_samples - self.prompt_samples) / hop,
            Mode::Ancestral => self.total_samples / hop,
        }
    }

    /// Total generated tokens per level over the whole plan, top level first.
    pub fn tokens_per_level(&self) -> Vec<(usize, usize)> {
        self.levels
            .iter()
            .map(|&l| {
                let n: usize = self
                    .groups
                    .iter()
                    .map(|g| g.cells.len() * self.generated_tokens(l, g.mode))
                    .sum();
                (l, n)
            })
            .collect()
    }

    /// A rough wall-time estimate in seconds from tokens per second per level (batched).
    pub fn estimate_seconds(&self, tokens_per_second: &dyn Fn(usize) -> f64) -> f64 {
        self.tokens_per_level()
            .iter()
            .map(|&(l, n)| n as f64 / tokens_per_second(l).max(1e-9))
            .sum()
    }

    /// The human-readable plan for `--dry-run`.
    pub fn describe(&self, tokens_per_second: &dyn Fn(usize) -> f64) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "study plan: {} cells × {} seeds = {} samples in {} batch groups",
            self.cells.len(),
            self.seeds.len(),
            self.cells.len() * self.seeds.len(),
            self.groups.len()
        );
        let _ = writeln!(
            s,
            "prompt {} ({} samples = {:.3} s), total {} samples = {:.3} s per sample, levels {:?}",
            self.prompt,
            self.prompt_samples,
            self.prompt_samples as f64 / self.sample_rate as f64,
            self.total_samples,
            self.total_samples as f64 / self.sample_rate as f64,
            self.levels
        );
        let _ = writeln!(
            s,
            "temperature {}, top-k {}, top-p {}, seeds {:?}",
            self.temperature, self.top_k, self.top_p, self.seeds
        );
        let _ = writeln!(s, "cells:");
        for c in &self.cells {
            let tag = if c.no_label {
                " [control: no labels]"
            } else if c.mode == Mode::Ancestral {
                " [control: ancestral]"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "  {:<48} genres {:?} (ids {:?}) artist {:?} (id {}){tag}",
                c.id, c.genres, c.genre_ids, c.artist, c.artist_id
            );
        }
        let _ = writeln!(s, "batch groups:");
        for g in &self.groups {
            let _ = writeln!(
                s,
                "  {:>4} {:<9} seed {:<4} {} cells",
                g.index,
                g.mode.as_str(),
                g.seed,
                g.cells.len()
            );
        }
        let _ = writeln!(s, "generated tokens per level:");
        for (l, n) in self.tokens_per_level() {
            let _ = writeln!(s, "  level {l} (hop {}): {n} tokens", self.hops[l]);
        }
        let est = self.estimate_seconds(tokens_per_second);
        let _ = writeln!(
            s,
            "estimated time: {:.0} s (~{:.1} min; rough, from assumed tokens/s per level)",
            est,
            est / 60.0
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocab {
        Vocab {
            genres: vec![
                ("unknown".into(), 0),
                ("rock".into(), 1),
                ("jazz".into(), 2),
                ("hip hop".into(), 3),
            ],
            artists: vec![
                ("unknown".into(), 0),
                ("the beatles".into(), 1),
                ("miles davis".into(), 2),
            ],
            n_genres: 4,
            n_artists: 3,
        }
    }

    fn facts() -> ModelFacts {
        ModelFacts {
            sample_rate: 44100,
            hops: vec![8, 32, 128],
        }
    }

    #[test]
    fn sweep_with_controls_and_groups() {
        let spec = PlanSpec {
            genres: Some(vec!["rock".into(), "jazz".into()]),
            artists: Some(vec!["the beatles".into()]),
            seeds: Some(3),
            seed: Some(10),
            max_batch: Some(2),
            prompt_seconds: Some(1.0),
            seconds: Some(2.0),
            ..Default::default()
        };
        let p = Plan::build(&spec, &vocab(), &facts()).unwrap();
        // 2 sweep cells + no-label, each primed and ancestral.
        assert_eq!(p.cells.len(), 6);
        assert_eq!(p.cells.iter().filter(|c| c.no_label).count(), 2);
        assert_eq!(p.cells[0].id, "primed-rock-the_beatles");
        assert_eq!(p.cells[2].id, "primed-unknown-unknown");
        assert_eq!(p.cells[3].id, "ancestral-rock-the_beatles");
        assert_eq!(p.seeds, vec![10, 11, 12]);
        // 3 primed cells in chunks of 2 → 2 groups per seed per mode.
        assert_eq!(p.groups.len(), 12);
        assert_eq!(p.prompt_samples, 44100 / 128 * 128);
        assert_eq!(p.total_samples, 88200 / 128 * 128);
        assert_eq!(
            p.shard_groups(Some((1, 4)))
                .iter()
                .map(|g| g.index)
                .collect::<Vec<_>>(),
            vec![1, 5, 9]
        );
        let text = p.to_toml().unwrap();
        assert_eq!(Plan::from_toml(&text, Path::new("plan.toml")).unwrap(), p);
        // f32 plans do not name their weights (plans written before `--dtype` read the same).
        assert_eq!(p.weights, WeightFormat::F32);
        assert!(!text.contains("weights"));
        let q = Plan::build(
            &PlanSpec {
                dtype: Some("q8".into()),
                ..spec.clone()
            },
            &vocab(),
            &facts(),
        )
        .unwrap();
        assert_eq!(q.weights, WeightFormat::Q8);
        let text = q.to_toml().unwrap();
        assert!(text.contains("weights = \"q8\""), "{text}");
        assert_eq!(Plan::from_toml(&text, Path::new("plan.toml")).unwrap(), q);
        let bad = PlanSpec {
            dtype: Some("int4".into()),
            ..spec
        };
        let e = Plan::build(&bad, &vocab(), &facts())
            .unwrap_err()
            .to_string();
        assert!(e.contains("--dtype") && e.contains("q8"), "{e}");
    }

    #[test]
    fn errors_are_clear() {
        let v = vocab();
        let e = v.resolve(LabelKind::Genre, "rokc").unwrap_err().to_string();
        assert!(
            e.contains("unknown genre `rokc`") && e.contains("rock"),
            "{e}"
        );
        assert_eq!(v.resolve(LabelKind::Genre, "Hip-Hop").unwrap(), 3);
        assert_eq!(v.resolve(LabelKind::Artist, "#2").unwrap(), 2);
        assert!(v
            .resolve(LabelKind::Artist, "#9")
            .unwrap_err()
            .to_string()
            .contains("out of range"));
        let spec = PlanSpec {
            genres: Some(vec![]),
            ..Default::default()
        };
        let e = Plan::build(&spec, &v, &facts()).unwrap_err().to_string();
        assert!(e.contains("empty sweep"), "{e}");
        let spec = PlanSpec {
            prompt_seconds: Some(3.0),
            seconds: Some(2.0),
            ..Default::default()
        };
        let e = Plan::build(&spec, &v, &facts()).unwrap_err().to_string();
        assert!(e.contains("must exceed --prompt-seconds"), "{e}");
    }

    #[test]
    fn levels() {
        assert_eq!(parse_levels("top", 3).unwrap(), vec![2]);
        assert_eq!(parse_levels("top,middle", 3).unwrap(), vec![2, 1]);
        assert_eq!(parse_levels("all", 3).unwrap(), vec![2, 1, 0]);
        assert!(parse_levels("middle", 3).is_err());
        assert!(parse_levels("top,bottom", 3).is_err());
    }

    #[test]
    fn default_sweep_uses_model_names() {
        let p = Plan::build(&PlanSpec::default(), &vocab(), &facts()).unwrap();
        // 3 genres × 2 artists + no-label, doubled by the ancestral column.
        assert_eq!(p.cells.len(), (3 * 2 + 1) * 2);
        assert_eq!(p.seeds, vec![0, 1]);
        assert!((p.seconds - 6.504).abs() < 1e-12);
    }
}
