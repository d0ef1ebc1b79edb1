//! Genre separation of `jukebox quality`: do unprimed samples follow their genre label?
//!
//! A nearest-centroid classifier is fitted on the training audio of each genre (log-mel
//! features: the mean and standard deviation of each mel band over a clip, z-scored by the
//! training clips' statistics). It then labels
//! - held-out clips of each genre: how far this classifier can tell the genres apart at all
//!   (the ceiling), and
//! - top-level samples drawn with each genre label (artist `unknown`, no prompt): the figure.
//!
//! Chance is 1/#genres. A model that ignores its genre label scores near chance however good its
//! audio is; one that follows it approaches the ceiling.

use super::heldout::{self, SplitInfo};
use super::labels::item_genre_ids;
use crate::checkpoint::ModelDir;
use crate::dataset::Corpus;
use crate::dsp;
use crate::labels::{Field, IdSet};
use crate::prior::rank;
use crate::prior::windows::seconds_to_samples;
use crate::sample::pipeline::{self, RunOptions};
use crate::sample::run::{model_identity, ItemSpec, LevelSettings, Mode, RunSpec};
use crate::sample::{Outcome, RunState};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use std::path::PathBuf;

/// Mel bands of the features.
pub const N_MELS: usize = 40;

#[derive(Debug, Clone)]
pub struct SeparationOpts {
    /// The priors' training corpus: centroids from its training split, the ceiling from its
    /// held-out split.
    pub corpus: PathBuf,
    pub split_seed: u64,
    pub valid_fraction: f64,
    /// Samples per genre (seeds `seed..seed + seeds`) and their length.
    pub seeds: usize,
    pub seed: u64,
    pub seconds: f64,
    /// Training (and held-out) clips per genre.
    pub clips_per_genre: usize,
    pub temperature: f64,
    pub top_k: usize,
    pub top_p: f64,
    /// Scratch folder for the sampling run (removed afterwards).
    pub work: PathBuf,
    pub bars: bool,
}

/// One genre's results.
#[derive(Debug, Clone, PartialEq)]
pub struct GenreRow {
    pub name: String,
    pub train_clips: usize,
    pub heldout_clips: usize,
    pub heldout_hits: usize,
    /// The classifier's genre for each sample drawn with this genre's label.
    pub predicted: Vec<String>,
    pub sample_hits: usize,
}

#[derive(Debug, Clone)]
pub struct SeparationResult {
    pub split: SplitInfo,
    pub seconds: f64,
    pub seeds: Vec<u64>,
    pub rows: Vec<GenreRow>,
    /// Genres of the model left out, and why (no training audio).
    pub left_out: Vec<String>,
    pub sampling_seconds: f64,
}

impl SeparationResult {
    pub fn chance(&self) -> f64 {
        1.0 / self.rows.len().max(1) as f64
    }
    pub fn heldout_accuracy(&self) -> f64 {
        ratio(
            self.rows.iter().map(|r| r.heldout_hits).sum(),
            self.rows.iter().map(|r| r.heldout_clips).sum(),
        )
    }
    pub fn sample_accuracy(&self) -> f64 {
        ratio(
            self.rows.iter().map(|r| r.sample_hits).sum(),
            self.rows.iter().map(|r| r.predicted.len()).sum(),
        )
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

/// Mean and standard deviation of each mel band (dB) over the clip's frames.
pub fn features(x: &[f32], sr: u32) -> Vec<f64> {
    let m = dsp::log_mel(x, sr, N_MELS);
    let n = m.len().max(1) as f64;
    let mut mean = vec![0f64; N_MELS];
    for f in &m {
        for (a, v) in mean.iter_mut().zip(f) {
            *a += *v as f64 / n;
        }
    }
    let mut sd = vec![0f64; N_MELS];
    for f in &m {
        for ((a, v), mu) in sd.iter_mut().zip(f).zip(&mean) {
            *a += (*v as f64 - mu).powi(2) / n;
        }
    }
    mean.extend(sd.into_iter().map(f64::sqrt));
    mean
}

/// A nearest-centroid classifier on z-scored features.
#[derive(Debug, Clone)]
pub struct Centroids {
    mean: Vec<f64>,
    scale: Vec<f64>,
    centroids: Vec<Vec<f64>>,
}

impl Centroids {
    /// `classes[c]` holds the feature vectors of class c; every class needs at least one.
    pub fn fit(classes: &[Vec<Vec<f64>>]) -> Result<Centroids> {
        let all: Vec<&Vec<f64>> = classes.iter().flatten().collect();
        let Some(d) = all.first().map(|v| v.len()) else {
            bail!("no training features");
        };
        if let Some(c) = classes.iter().position(Vec::is_empty) {
            bail!("class {c} has no training features");
        }
        let n = all.len() as f64;
        let mean: Vec<f64> = (0..d)
            .map(|j| all.iter().map(|v| v[j]).sum::<f64>() / n)
            .collect();
        let scale: Vec<f64> = (0..d)
            .map(|j| {
                let var = all.iter().map(|v| (v[j] - mean[j]).powi(2)).sum::<f64>() / n;
                // A constant feature carries nothing: unit scale keeps it from dividing by zero.
                if var > 1e-12 {
                    var.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        let mut c = Centroids {
            mean,
            scale,
            centroids: Vec::new(),
        };
        c.centroids = classes
            .iter()
            .map(|vs| {
                let z: Vec<Vec<f64>> = vs.iter().map(|v| c.z(v)).collect();
                (0..d)
                    .map(|j| z.iter().map(|v| v[j]).sum::<f64>() / z.len() as f64)
                    .collect()
            })
            .collect();
        Ok(c)
    }

    fn z(&self, v: &[f64]) -> Vec<f64> {
        v.iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .map(|((x, m), s)| (x - m) / s)
            .collect()
    }

    /// The class whose centroid is nearest (Euclidean, z-scored).
    pub fn classify(&self, v: &[f64]) -> usize {
        let z = self.z(v);
        let dist = |c: &Vec<f64>| c.iter().zip(&z).map(|(a, b)| (a - b).powi(2)).sum::<f64>();
        (0..self.centroids.len())
            .min_by(|&a, &b| dist(&self.centroids[a]).total_cmp(&dist(&self.centroids[b])))
            .unwrap_or(0)
    }
}

/// Fit on the training audio, classify held-out clips and fresh samples per genre.
pub fn measure(
    md: &ModelDir,
    o: &SeparationOpts,
    progress: &mut dyn FnMut(&str),
) -> Result<SeparationResult> {
    let dev = Device::Cpu;
    let cfg = &md.config;
    let top = cfg.top_level();
    let sr = cfg.vqvae.sample_rate;
    let hop = cfg.vqvae.hop_length(top);
    let pcfg = &cfg.priors[top];
    if pcfg.labels.is_none() {
        bail!("the top prior takes no labels, so there is no genre to separate");
    }
    let ids = IdSet::for_model(&md.path, pcfg)?;
    let cands = rank::candidates(&ids, Field::Genre, None);
    let corpus = Corpus::open(&o.corpus)
        .with_context(|| format!("opening the corpus {}", o.corpus.display()))?;
    let (train, valid, split) = heldout::split(&corpus, o.split_seed, o.valid_fraction);
    let len = seconds_to_samples(o.seconds, sr, hop).context("--separation-seconds")?;

    // Genres with training audio: their clips' features.
    let of_genre = |items: &[usize], id: i64| -> Vec<usize> {
        items
            .iter()
            .copied()
            .filter(|&i| item_genre_ids(&ids, &corpus.items[i], &cands).contains(&id))
            .collect()
    };
    let feats = |items: &[usize]| -> Result<Vec<Vec<f64>>> {
        Ok(heldout::clips(&corpus, items, o.clips_per_genre, len, hop)?
            .iter()
            .map(|c| features(&c.samples, sr))
            .collect())
    };
    progress(&format!(
        "separation: log-mel features of up to {} clips per genre, {:.2} s each",
        o.clips_per_genre,
        len as f64 / sr as f64
    ));
    let mut genres = Vec::new();
    let mut train_f = Vec::new();
    let mut valid_f = Vec::new();
    let mut left_out = Vec::new();
    for c in &cands {
        let tr = of_genre(&train, c.id);
        if tr.is_empty() {
            left_out.push(format!(
                "`{}`: no training file in {}",
                c.name,
                o.corpus.display()
            ));
            continue;
        }
        genres.push(c.clone());
        train_f.push(feats(&tr)?);
        valid_f.push(if split.held_out {
            feats(&of_genre(&valid, c.id))?
        } else {
            Vec::new()
        });
    }
    if genres.len() < 2 {
        bail!(
            "genre separation needs two genres with training audio in {}; found {}",
            o.corpus.display(),
            genres.len()
        );
    }
    let clf = Centroids::fit(&train_f)?;

    // One ancestral run: every genre × every seed in one batch.
    let seeds: Vec<u64> = (0..o.seeds as u64).map(|i| o.seed + i).collect();
    let min_dur = pcfg
        .labels
        .as_ref()
        .filter(|l| l.include_time_signal)
        .map_or(0.0, |l| l.min_duration);
    let spec = RunSpec {
        version: env!("CARGO_PKG_VERSION").to_string(),
        model: std::path::absolute(&md.path).unwrap_or(md.path.clone()),
        model_id: model_identity(md)?,
        mode: Mode::Ancestral,
        prompt: None,
        prompt_samples: 0,
        sample_length: len,
        total_length: ((o.seconds.max(min_dur)) * sr as f64).round() as usize,
        sample_rate: sr,
        levels: vec![top],
        settings: cfg
            .hop_fraction
            .iter()
            .map(|&h| LevelSettings {
                temperature: o.temperature,
                top_k: o.top_k,
                top_p: o.top_p,
                hop_fraction: h,
            })
            .collect(),
        chunk_size: 32,
        max_batch: genres.len() * seeds.len(),
        items: genres
            .iter()
            .flat_map(|g| {
                seeds.iter().map(|&seed| ItemSpec {
                    artist: "unknown".into(),
                    genres: vec![g.name.clone()],
                    lyrics: None,
                    seed,
                })
            })
            .collect(),
        level_items: vec![],
        weights: Default::default(),
        parent: None,
    };
    spec.validate()?;
    let dir = o.work.join("separation");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    spec.save(&dir)?;
    progress(&format!(
        "separation: sampling {} genre(s) × {} seed(s), {:.2} s each, top level",
        genres.len(),
        seeds.len(),
        len as f64 / sr as f64
    ));
    let t0 = std::time::Instant::now();
    let ropts = RunOptions {
        progress: o.bars,
        write_audio: false,
        ..Default::default()
    };
    if let Outcome::Interrupted = pipeline::run(md, &dir, &ropts)? {
        return Err(crate::error::Interrupted::new(
            Some(dir.clone()),
            format!("sampling in {} was interrupted", dir.display()),
        )
        .into());
    }
    let sampling_seconds = t0.elapsed().as_secs_f64();
    let state = RunState::load_or_default(&dir)?;
    let rows_codes = &state
        .levels
        .get(&top)
        .context("the separation run has no top-level codes")?
        .rows;
    let vq = md.vqvae(&dev)?;
    let t = rows_codes.first().map_or(0, Vec::len);
    let flat: Vec<i64> = rows_codes.iter().flatten().copied().collect();
    let audio = vq
        .decode(&Tensor::from_vec(flat, (rows_codes.len(), t), &dev)?, top)?
        .to_dtype(DType::F32)?;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir(&o.work);

    let mut rows = Vec::new();
    for (g, name) in genres.iter().enumerate() {
        let predicted: Vec<usize> = (0..seeds.len())
            .map(|s| -> Result<usize> {
                let x = audio.get(g * seeds.len() + s)?.to_vec1::<f32>()?;
                Ok(clf.classify(&features(&x, sr)))
            })
            .collect::<Result<_>>()?;
        rows.push(GenreRow {
            name: name.name.clone(),
            train_clips: train_f[g].len(),
            heldout_clips: valid_f[g].len(),
            heldout_hits: valid_f[g].iter().filter(|v| clf.classify(v) == g).count(),
            sample_hits: predicted.iter().filter(|&&p| p == g).count(),
            predicted: predicted
                .into_iter()
                .map(|p| genres[p].name.clone())
                .collect(),
        });
    }
    Ok(SeparationResult {
        split,
        seconds: len as f64 / sr as f64,
        seeds,
        rows,
        left_out,
        sampling_seconds,
    })
}

/// The section as Markdown.
pub fn markdown(r: &SeparationResult) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "## Genre separation of unprimed samples (top level)\n");
    let _ = writeln!(
        s,
        "A nearest-centroid classifier on log-mel features ({N_MELS} mel bands, mean and standard \
         deviation over each {:.2} s clip, z-scored) is fitted on the training audio of each genre of \
         `{}` ({} training / {} held-out files, seed {}, fraction {}). It labels held-out clips \
         (how far these features can tell the genres apart at all: the ceiling) and top-level \
         samples drawn with each genre label, artist `unknown`, no prompt, seeds {:?} ({:.0} s of \
         sampling). Chance: 1/{} = {:.0} %.\n",
        r.seconds,
        r.split.corpus,
        r.split.train_files,
        r.split.valid_files,
        r.split.seed,
        r.split.valid_fraction,
        r.seeds,
        r.sampling_seconds,
        r.rows.len(),
        100.0 * r.chance()
    );
    let _ = writeln!(
        s,
        "| genre | training clips | held-out clips right (ceiling) | samples right | the samples' genres |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---|");
    for x in &r.rows {
        let _ = writeln!(
            s,
            "| `{}` | {} | {} / {} | **{} / {}** | {} |",
            x.name,
            x.train_clips,
            x.heldout_hits,
            x.heldout_clips,
            x.sample_hits,
            x.predicted.len(),
            x.predicted.join(", ")
        );
    }
    let pc = |x: f64| {
        if x.is_nan() {
            "–".to_string()
        } else {
            format!("{:.0} %", 100.0 * x)
        }
    };
    let _ = writeln!(
        s,
        "| **all** | | {} | **{}** | chance {} |",
        pc(r.heldout_accuracy()),
        pc(r.sample_accuracy()),
        pc(r.chance())
    );
    for l in &r.left_out {
        let _ = writeln!(s, "\nLeft out: {l}");
    }
    s
}

/// The comparisons the samples lose (empty when they beat chance).
pub fn misses(r: &SeparationResult) -> Vec<String> {
    let acc = r.sample_accuracy();
    if acc.is_nan() || acc <= r.chance() {
        vec![format!(
            "Genre separation: {:.0} % of unprimed samples are classified as their genre, not above chance ({:.0} %).",
            100.0 * acc,
            100.0 * r.chance()
        )]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centroids_separate_scaled_classes() {
        // Class 0 near (0, 0), class 1 near (0, 10); feature 0 is constant and must not matter.
        let c0 = vec![vec![5.0, 0.0], vec![5.0, 1.0]];
        let c1 = vec![vec![5.0, 10.0], vec![5.0, 11.0]];
        let clf = Centroids::fit(&[c0, c1]).unwrap();
        assert_eq!(clf.classify(&[5.0, 2.0]), 0);
        assert_eq!(clf.classify(&[5.0, 8.0]), 1);
        assert_eq!(clf.classify(&[-100.0, 8.0]), 1);
        assert!(Centroids::fit(&[vec![vec![1.0]], vec![]]).is_err());
    }

    #[test]
    fn features_tell_a_tone_from_noise() {
        let sr = 44_100;
        let tone: Vec<f32> = (0..22_050)
            .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / sr as f32).sin() * 0.5)
            .collect();
        let noise: Vec<f32> = (0..22_050)
            .map(|i| (crate::util::uniform(1, 0, 0, i as u64) as f32 - 0.5) * 0.5)
            .collect();
        let (ft, fnz) = (features(&tone, sr), features(&noise, sr));
        assert_eq!(ft.len(), 2 * N_MELS);
        // Noise fills the top bands; the tone does not.
        assert!(
            fnz[N_MELS - 1] > ft[N_MELS - 1] + 20.0,
            "{} vs {}",
            fnz[N_MELS - 1],
            ft[N_MELS - 1]
        );
        let clf = Centroids::fit(&[vec![ft.clone()], vec![fnz.clone()]]).unwrap();
        assert_eq!((clf.classify(&ft), clf.classify(&fnz)), (0, 1));
    }
}
