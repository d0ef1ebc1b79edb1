//! Per-sample metrics (prompt retention, timbre, codes) and separability between cells.

use super::features;
use super::plan::{Mode, Plan};
use super::runner::LevelOutcome;
use super::stats::{self, WithinBetween};
use super::store::{ItemRecord, LevelRecord};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Audio features of one sample's continuation (the part after the prompt).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Features {
    pub tempo_bpm: f64,
    /// |tempo − prompt tempo| in BPM, octave errors folded.
    pub tempo_err_bpm: f64,
    /// Mean per-bar onset-pattern correlation with the prompt; NaN (`null`) when the
    /// continuation holds no full bar.
    #[serde(with = "super::store::nan_as_null")]
    pub onset_corr: f64,
    /// Mean log-spectrum distance to the prompt, dB.
    pub spec_dist_db: f64,
    pub centroid_hz: f64,
    pub bandwidth_hz: f64,
    pub flatness: f64,
    pub rms_db: f64,
    pub bands: Vec<f64>,
}

/// Names of the spectral features that make up a sample's timbre vector.
pub const SPECTRAL_NAMES: [&str; 4] = ["centroid_hz", "bandwidth_hz", "flatness", "rms_db"];

impl Features {
    /// Spectral feature vector for distances (timbre and band shares; tempo excluded).
    pub fn spectral_vector(&self) -> Vec<f64> {
        let mut v = vec![
            self.centroid_hz,
            self.bandwidth_hz,
            self.flatness,
            self.rms_db,
        ];
        v.extend(&self.bands);
        v
    }
}

/// The prompt as a reference for retention metrics.
#[derive(Clone, Debug)]
pub struct PromptRef {
    pub audio: Vec<f32>,
    pub tempo_bpm: f64,
}

impl PromptRef {
    /// `known_bpm` (the plan's `prompt_bpm`) wins over the measured tempo.
    pub fn new(audio: Vec<f32>, sample_rate: u32, known_bpm: Option<f64>) -> Self {
        let tempo_bpm = known_bpm.unwrap_or_else(|| features::tempo_bpm(&audio, sample_rate));
        Self { audio, tempo_bpm }
    }
}

fn finite(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// Features of a sample's continuation (`full[prompt_samples..]`) against the prompt. Onset
/// patterns are compared bar by bar on the prompt's bar grid (from the first bar line after
/// the prompt ends), so that a continuation that keeps the beat scores high even when the
/// prompt was not cut on a bar line.
pub fn compute_features(
    full: &[f32],
    prompt_samples: usize,
    prompt: &PromptRef,
    sr: u32,
) -> Features {
    let cont = full.get(prompt_samples.min(full.len())..).unwrap_or(&[]);
    let tempo = features::tempo_bpm(cont, sr);
    let t = features::timbre(cont, sr);
    let bar = features::bar_samples(prompt.tempo_bpm, sr);
    let mut start = if bar > 0 {
        prompt_samples.div_ceil(bar) * bar
    } else {
        prompt_samples
    };
    if start + bar > full.len() {
        // Less than a bar after the next bar line: compare from the prompt's end instead.
        start = prompt_samples;
    }
    let aligned = full.get(start.min(full.len())..).unwrap_or(&[]);
    Features {
        tempo_bpm: finite(tempo),
        tempo_err_bpm: finite(features::tempo_error(tempo, prompt.tempo_bpm)),
        onset_corr: finite(features::onset_corr_per_bar(
            aligned,
            &prompt.audio,
            sr,
            prompt.tempo_bpm,
        )),
        spec_dist_db: finite(features::spectral_distance(cont, &prompt.audio, sr)),
        centroid_hz: finite(t.centroid_hz),
        bandwidth_hz: finite(t.bandwidth_hz),
        flatness: finite(t.flatness),
        rms_db: finite(t.rms_dbfs),
        bands: t.band_energy.iter().copied().map(finite).collect(),
    }
}

/// The record of one level of one item.
pub fn level_record(plan: &Plan, lo: &LevelOutcome, prompt: &PromptRef) -> LevelRecord {
    let hop = plan.hops[lo.level];
    let skip = plan.prompt_samples / hop;
    let gen = lo.codes.get(skip..).unwrap_or(&[]);
    let mut hist: BTreeMap<i64, u32> = BTreeMap::new();
    for c in gen {
        *hist.entry(*c).or_default() += 1;
    }
    let counts: Vec<f64> = hist.values().map(|v| *v as f64).collect();
    let end = plan.total_samples.min(lo.audio.len());
    LevelRecord {
        level: lo.level,
        tokens: lo.codes.len(),
        generated_tokens: gen.len(),
        entropy_raw_bits: lo.entropy_raw_bits,
        entropy_filtered_bits: lo.entropy_filtered_bits,
        bits_own: lo.bits_own,
        bits_nolabel: lo.bits_nolabel,
        codes_used: hist.len(),
        code_entropy_bits: stats::entropy_bits(&counts),
        code_hist: hist.into_iter().collect(),
        features: compute_features(
            &lo.audio[..end],
            plan.prompt_samples,
            prompt,
            plan.sample_rate,
        ),
    }
}

/// Fixed float formatting for CSV files (same value → same bytes).
pub fn f(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else {
        format!("{x:.6}")
    }
}

/// `metrics.csv`: one row per item and level, in plan order.
pub fn metrics_csv(plan: &Plan, items: &[ItemRecord], prompt_tempo: f64) -> String {
    let mut s = String::from(
        "cell,mode,genres,artist,no_label,seed,sample,level,tokens,generated_tokens,\
         entropy_raw_bits,entropy_filtered_bits,bits_own,bits_nolabel,codes_used,code_entropy_bits,\
         tempo_bpm,prompt_tempo_bpm,tempo_err_bpm,onset_corr,spec_dist_db,centroid_hz,bandwidth_hz,\
         flatness,rms_db",
    );
    for i in 0..features::N_BANDS {
        let _ = write!(s, ",band_{i}");
    }
    s.push('\n');
    for it in items {
        let Some(cell) = plan.cell(&it.cell) else {
            continue;
        };
        for l in &it.levels {
            let x = &l.features;
            let mut row = vec![
                cell.id.clone(),
                cell.mode.as_str().to_string(),
                cell.genres.join("+"),
                cell.artist.clone(),
                cell.no_label.to_string(),
                it.seed.to_string(),
                it.sample.to_string(),
                l.level.to_string(),
                l.tokens.to_string(),
                l.generated_tokens.to_string(),
                f(l.entropy_raw_bits),
                f(l.entropy_filtered_bits),
                f(l.bits_own),
                f(l.bits_nolabel),
                l.codes_used.to_string(),
                f(l.code_entropy_bits),
                f(x.tempo_bpm),
                f(prompt_tempo),
                f(x.tempo_err_bpm),
                f(x.onset_corr),
                f(x.spec_dist_db),
                f(x.centroid_hz),
                f(x.bandwidth_hz),
                f(x.flatness),
                f(x.rms_db),
            ];
            row.extend(x.bands.iter().map(|b| f(*b)));
            s.push_str(&crate::util::csv_line(&row));
        }
    }
    s
}

/// `codes_hist.csv`: sparse code histograms of each item's continuation, `code:count` pairs.
pub fn codes_hist_csv(items: &[ItemRecord]) -> String {
    let mut s = String::from("cell,seed,level,codes_used,hist\n");
    for it in items {
        for l in &it.levels {
            let h: Vec<String> = l
                .code_hist
                .iter()
                .map(|(c, n)| format!("{c}:{n}"))
                .collect();
            let _ = writeln!(
                s,
                "{},{},{},{},{}",
                it.cell,
                it.seed,
                l.level,
                l.codes_used,
                h.join(" ")
            );
        }
    }
    s
}

/// Dense histogram from a sparse one.
pub fn dense(h: &[(i64, u32)], out: &mut Vec<f64>) {
    for (c, n) in h {
        let c = (*c).max(0) as usize;
        if out.len() <= c {
            out.resize(c + 1, 0.0);
        }
        out[c] += *n as f64;
    }
}

/// How items are grouped for a separability test.
type CellKey = Box<dyn Fn(&super::plan::Cell) -> String>;

/// One within-vs-between test.
#[derive(Clone, Debug, PartialEq)]
pub struct Separability {
    pub level: usize,
    pub mode: Mode,
    /// `cell`, `genre` or `artist`: what the groups are.
    pub factor: String,
    /// `spectral` (z-scored timbre features) or `codes` (JS divergence of code histograms).
    pub space: String,
    pub result: WithinBetween,
}

/// Pairwise comparison of two cells at one level.
#[derive(Clone, Debug, PartialEq)]
pub struct CellPair {
    pub level: usize,
    pub a: String,
    pub b: String,
    /// JS divergence (bits) between the cells' pooled code histograms.
    pub js_bits: f64,
    /// Distance between the cells' mean z-scored spectral features.
    pub feature_dist: f64,
}

/// Items of the labelled (non no-label) cells of `mode` at `level`, with their distance
/// matrices, z-scored feature rows and labels.
pub struct LevelSet<'a> {
    pub items: Vec<(&'a ItemRecord, &'a LevelRecord)>,
    pub z: Vec<Vec<f64>>,
}

pub fn level_set<'a>(
    plan: &Plan,
    items: &'a [ItemRecord],
    level: usize,
    keep: &dyn Fn(&super::plan::Cell) -> bool,
) -> LevelSet<'a> {
    let sel: Vec<(&ItemRecord, &LevelRecord)> = items
        .iter()
        .filter(|it| plan.cell(&it.cell).is_some_and(keep))
        .filter_map(|it| it.level(level).map(|l| (it, l)))
        .collect();
    let rows: Vec<Vec<f64>> = sel
        .iter()
        .map(|(_, l)| l.features.spectral_vector())
        .collect();
    LevelSet {
        z: stats::zscore(&rows),
        items: sel,
    }
}

/// Separability tests and cell pairs for every level and mode.
pub fn separability(plan: &Plan, items: &[ItemRecord]) -> (Vec<Separability>, Vec<CellPair>) {
    let mut tests = vec![];
    let mut pairs = vec![];
    for &level in &plan.levels {
        for mode in [Mode::Primed, Mode::Ancestral] {
            let set = level_set(plan, items, level, &|c| c.mode == mode && !c.no_label);
            let n = set.items.len();
            if n < 3 {
                continue;
            }
            let fdist: Vec<Vec<f64>> = (0..n)
                .map(|i| {
                    (0..n)
                        .map(|j| stats::euclid(&set.z[i], &set.z[j]))
                        .collect()
                })
                .collect();
            let hists: Vec<Vec<f64>> = set
                .items
                .iter()
                .map(|(_, l)| {
                    let mut h = vec![];
                    dense(&l.code_hist, &mut h);
                    h
                })
                .collect();
            let cdist: Vec<Vec<f64>> = (0..n)
                .map(|i| {
                    (0..n)
                        .map(|j| stats::js_divergence(&hists[i], &hists[j]))
                        .collect()
                })
                .collect();
            let factors: [(&str, CellKey); 3] = [
                ("cell", Box::new(|c| c.id.clone())),
                ("genre", Box::new(|c| c.genres.join("+"))),
                ("artist", Box::new(|c| c.artist.clone())),
            ];
            for (name, key) in factors.iter() {
                let keys: Vec<String> = set
                    .items
                    .iter()
                    .map(|(it, _)| plan.cell(&it.cell).map(key).unwrap_or_default())
                    .collect();
                let mut uniq = keys.clone();
                uniq.sort();
                uniq.dedup();
                if *name != "cell"
                    && uniq.len()
                        == plan
                            .cells
                            .iter()
                            .filter(|c| c.mode == mode && !c.no_label)
                            .count()
                {
                    // Same grouping as `cell`: no new information.
                    continue;
                }
                let labels: Vec<usize> = keys
                    .iter()
                    .map(|k| uniq.binary_search(k).unwrap_or(0))
                    .collect();
                for (space, dist) in [("spectral", &fdist), ("codes", &cdist)] {
                    let seed = stats::STATS_SEED ^ ((level as u64) << 8) ^ ((mode as u64) << 4);
                    if let Some(r) = stats::within_between(dist, &labels, seed) {
                        tests.push(Separability {
                            level,
                            mode,
                            factor: name.to_string(),
                            space: space.to_string(),
                            result: r,
                        });
                    }
                }
            }
        }
        // Cell pairs over all cells of each mode (controls included), pooled over seeds.
        for mode in [Mode::Primed, Mode::Ancestral] {
            let set = level_set(plan, items, level, &|c| c.mode == mode);
            let mut by_cell: BTreeMap<&str, (Vec<f64>, Vec<Vec<f64>>)> = BTreeMap::new();
            for ((it, l), z) in set.items.iter().zip(&set.z) {
                let e = by_cell.entry(it.cell.as_str()).or_default();
                dense(&l.code_hist, &mut e.0);
                e.1.push(z.clone());
            }
            let order: Vec<&str> = plan
                .cells
                .iter()
                .filter(|c| by_cell.contains_key(c.id.as_str()))
                .map(|c| c.id.as_str())
                .collect();
            let means: BTreeMap<&str, Vec<f64>> = by_cell
                .iter()
                .map(|(k, (_, zs))| {
                    let d = zs.first().map_or(0, Vec::len);
                    let m = (0..d)
                        .map(|j| stats::mean(&zs.iter().map(|r| r[j]).collect::<Vec<_>>()))
                        .collect();
                    (*k, m)
                })
                .collect();
            for (i, a) in order.iter().enumerate() {
                for b in &order[i + 1..] {
                    pairs.push(CellPair {
                        level,
                        a: a.to_string(),
                        b: b.to_string(),
                        js_bits: stats::js_divergence(&by_cell[a].0, &by_cell[b].0),
                        feature_dist: stats::euclid(&means[a], &means[b]),
                    });
                }
            }
        }
    }
    (tests, pairs)
}

pub fn separability_csv(tests: &[Separability]) -> String {
    let mut s = String::from(
        "level,mode,factor,space,n_items,n_groups,within,within_se,between,between_se,p\n",
    );
    for t in tests {
        let r = &t.result;
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{}",
            t.level,
            t.mode.as_str(),
            t.factor,
            t.space,
            r.n_items,
            r.n_groups,
            f(r.within),
            f(r.within_se),
            f(r.between),
            f(r.between_se),
            f(r.p)
        );
    }
    s
}

pub fn cell_pairs_csv(pairs: &[CellPair]) -> String {
    let mut s = String::from("level,cell_a,cell_b,js_bits,feature_dist\n");
    for p in pairs {
        let _ = writeln!(
            s,
            "{},{},{},{},{}",
            p.level,
            p.a,
            p.b,
            f(p.js_bits),
            f(p.feature_dist)
        );
    }
    s
}
