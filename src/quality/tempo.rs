//! Primed continuations of a prompt with a known tempo (the Amen prompt, 137 BPM): the tempo of
//! what the model adds, against trivial baselines (loop the prompt, silence) and unprimed
//! (ancestral) samples with the same labels and seeds.

use super::recon::level_name;
use crate::checkpoint::ModelDir;
use crate::dsp;
use crate::prior::windows::seconds_to_samples;
use crate::sample::pipeline::{self, RunOptions};
use crate::sample::run::{model_identity, ItemSpec, LevelSettings, Mode, RunSpec};
use crate::sample::{Outcome, RunState};
use crate::vqvae::VqVae;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct TempoOpts {
    pub prompt: PathBuf,
    /// The prompt's true tempo, and where it comes from (for the report).
    pub prompt_bpm: f64,
    pub bpm_source: String,
    pub prompt_seconds: f64,
    /// Total length, prompt included.
    pub seconds: f64,
    /// Samples per condition; seeds `seed..seed + seeds`.
    pub seeds: usize,
    pub seed: u64,
    /// Levels to sample (official numbering); the top level is always included.
    pub levels: Vec<usize>,
    pub artist: String,
    pub genres: Vec<String>,
    pub temperature: f64,
    pub top_k: usize,
    pub top_p: f64,
    /// Scratch folder for the sampling runs (removed afterwards).
    pub work: PathBuf,
    /// Also sample unprimed, as a baseline (costs as much again).
    pub ancestral: bool,
}

/// Tempo readings of one condition.
#[derive(Debug, Clone, PartialEq)]
pub struct TempoRow {
    pub name: String,
    /// One tempo per sample (0 = no tempo found).
    pub estimates: Vec<f64>,
    /// Mean |estimate − true tempo|.
    pub mean_error: f64,
    /// Mean of the same after folding octave errors (×2, ×½, ×4, ×¼).
    pub mean_folded_error: f64,
    /// Whether this row is a baseline rather than the model.
    pub baseline: bool,
}

#[derive(Debug, Clone)]
pub struct TempoResult {
    pub sample_rate: u32,
    pub prompt_bpm: f64,
    pub bpm_source: String,
    pub prompt_samples: usize,
    pub sample_length: usize,
    pub levels: Vec<usize>,
    pub seeds: Vec<u64>,
    pub rows: Vec<TempoRow>,
    /// Wall time of the sampling, seconds.
    pub sampling_seconds: f64,
}

pub fn row(name: &str, estimates: Vec<f64>, truth: f64, baseline: bool) -> TempoRow {
    let n = estimates.len().max(1) as f64;
    let mean_error = estimates
        .iter()
        .map(|&e| if e > 0.0 { (e - truth).abs() } else { truth })
        .sum::<f64>()
        / n;
    let mean_folded_error = estimates
        .iter()
        .map(|&e| dsp::tempo_error_folded(e, truth))
        .sum::<f64>()
        / n;
    TempoRow {
        name: name.to_string(),
        estimates,
        mean_error,
        mean_folded_error,
        baseline,
    }
}

/// `x` repeated to `len` samples.
pub fn looped<T: Copy>(x: &[T], len: usize) -> Vec<T> {
    if x.is_empty() {
        return Vec::new();
    }
    x.iter().copied().cycle().take(len).collect()
}

fn decode_rows(vq: &VqVae, rows: &[Vec<i64>], level: usize, dev: &Device) -> Result<Vec<Vec<f32>>> {
    let n = rows.len();
    let t = rows.first().map_or(0, Vec::len);
    let flat: Vec<i64> = rows.iter().flatten().copied().collect();
    let audio = vq
        .decode_shared_prefix(&Tensor::from_vec(flat, (n, t), dev)?, level)
        .with_context(|| format!("decoding level-{level} codes"))?
        .to_dtype(DType::F32)?;
    (0..n)
        .map(|i| Ok(audio.get(i)?.to_vec1::<f32>()?))
        .collect()
}

fn spec(
    md: &ModelDir,
    o: &TempoOpts,
    mode: Mode,
    prompt_samples: usize,
    sample_length: usize,
) -> Result<RunSpec> {
    let cfg = &md.config;
    let sr = cfg.vqvae.sample_rate;
    let min_dur = cfg.priors[cfg.top_level()]
        .labels
        .as_ref()
        .filter(|l| l.include_time_signal)
        .map_or(0.0, |l| l.min_duration);
    let total_length = ((o.seconds.max(min_dur)) * sr as f64).round() as usize;
    let s = RunSpec {
        version: env!("CARGO_PKG_VERSION").to_string(),
        model: std::path::absolute(&md.path).unwrap_or(md.path.clone()),
        model_id: model_identity(md)?,
        mode,
        prompt: (mode == Mode::Primed)
            .then(|| std::path::absolute(&o.prompt).unwrap_or(o.prompt.clone())),
        prompt_samples: if mode == Mode::Primed {
            prompt_samples
        } else {
            0
        },
        sample_length,
        total_length,
        sample_rate: sr,
        levels: o.levels.clone(),
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
        max_batch: o.seeds.max(1),
        items: (0..o.seeds as u64)
            .map(|i| ItemSpec {
                artist: o.artist.clone(),
                genres: o.genres.clone(),
                lyrics: None,
                seed: o.seed + i,
            })
            .collect(),
        level_items: vec![],
        weights: Default::default(),
        parent: None,
    };
    s.validate()?;
    Ok(s)
}

fn run_fresh(md: &ModelDir, dir: &Path, spec: &RunSpec, progress: bool) -> Result<RunState> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    spec.save(dir)?;
    let opts = RunOptions {
        progress,
        write_audio: false,
        ..Default::default()
    };
    match pipeline::run(md, dir, &opts)? {
        Outcome::Finished(_) => {}
        Outcome::Interrupted => {
            return Err(crate::error::Interrupted::new(
                Some(dir.to_path_buf()),
                format!("sampling in {} was interrupted", dir.display()),
            )
            .into())
        }
    }
    RunState::load_or_default(dir)
}

/// Sample, decode and measure; `progress(message)` between stages.
pub fn measure(
    md: &ModelDir,
    o: &TempoOpts,
    show_bars: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<TempoResult> {
    let cfg = &md.config;
    let dev = Device::Cpu;
    let sr = cfg.vqvae.sample_rate;
    let top = cfg.top_level();
    let top_hop = cfg.vqvae.hop_length(top);
    let mut levels = o.levels.clone();
    if !levels.contains(&top) {
        levels.push(top);
    }
    levels.sort_unstable_by(|a, b| b.cmp(a));
    levels.dedup();
    let o = TempoOpts {
        levels: levels.clone(),
        ..o.clone()
    };
    let prompt_samples =
        seconds_to_samples(o.prompt_seconds, sr, top_hop).context("--prompt-seconds")?;
    let sample_length = seconds_to_samples(o.seconds, sr, top_hop).context("--seconds")?;
    if prompt_samples >= sample_length {
        bail!(
            "--prompt-seconds {} must be shorter than --seconds {} (the total length)",
            o.prompt_seconds,
            o.seconds
        );
    }
    let audio = crate::audio::load(&o.prompt)
        .with_context(|| format!("loading the prompt {}", o.prompt.display()))?;
    if audio.samples.len() < prompt_samples {
        bail!(
            "the prompt {} is {:.2} s long, shorter than --prompt-seconds {}",
            o.prompt.display(),
            audio.samples.len() as f64 / sr as f64,
            o.prompt_seconds
        );
    }
    let prompt = &audio.samples[..prompt_samples];
    let truth = o.prompt_bpm;
    let cont = |x: &[f32]| -> f64 {
        let end = sample_length.min(x.len());
        dsp::tempo_bpm(&x[prompt_samples.min(end)..end], sr)
    };
    let seeds: Vec<u64> = (0..o.seeds as u64).map(|i| o.seed + i).collect();
    let mut rows = vec![row(
        "the prompt itself (audio)",
        vec![dsp::tempo_bpm(prompt, sr)],
        truth,
        true,
    )];

    let t0 = std::time::Instant::now();
    progress(&format!(
        "tempo: sampling {} primed continuation(s), {:.2} s → {:.2} s, levels {levels:?}",
        o.seeds,
        prompt_samples as f64 / sr as f64,
        sample_length as f64 / sr as f64
    ));
    let primed = run_fresh(
        md,
        &o.work.join("primed"),
        &spec(md, &o, Mode::Primed, prompt_samples, sample_length)?,
        show_bars,
    )?;
    let ancestral = if o.ancestral {
        progress(&format!(
            "tempo: sampling {} unprimed sample(s) (baseline)",
            o.seeds
        ));
        Some(run_fresh(
            md,
            &o.work.join("ancestral"),
            &spec(md, &o, Mode::Ancestral, prompt_samples, sample_length)?,
            show_bars,
        )?)
    } else {
        None
    };
    let sampling_seconds = t0.elapsed().as_secs_f64();
    progress("tempo: decoding and measuring");
    let vq = md.vqvae(&dev)?;
    for &level in &levels {
        let name = level_name(level, cfg.vqvae.levels);
        let rows_l = &primed
            .levels
            .get(&level)
            .with_context(|| format!("the primed run has no level-{level} codes"))?
            .rows;
        let est: Vec<f64> = decode_rows(&vq, rows_l, level, &dev)?
            .iter()
            .map(|x| cont(x))
            .collect();
        rows.push(row(
            &format!("primed continuation, {name}"),
            est,
            truth,
            false,
        ));
        if let Some(a) = &ancestral {
            let r = &a
                .levels
                .get(&level)
                .context("the unprimed run has no codes")?
                .rows;
            let est: Vec<f64> = decode_rows(&vq, r, level, &dev)?
                .iter()
                .map(|x| cont(x))
                .collect();
            rows.push(row(
                &format!("unprimed sample, {name} (same span)"),
                est,
                truth,
                true,
            ));
        }
        // The prompt's own codes, decoded, and looped: what the level can carry at all.
        let pc = primed
            .prompt
            .get(&level)
            .with_context(|| format!("the primed run has no level-{level} prompt codes"))?;
        let recon = decode_rows(&vq, std::slice::from_ref(pc), level, &dev)?;
        rows.push(row(
            &format!("the prompt through the VQ-VAE, {name}"),
            vec![dsp::tempo_bpm(
                &recon[0][..prompt_samples.min(recon[0].len())],
                sr,
            )],
            truth,
            true,
        ));
        let loop_codes = looped(pc, sample_length / cfg.vqvae.hop_length(level));
        let lc = decode_rows(&vq, &[loop_codes], level, &dev)?;
        rows.push(row(
            &format!("repeat the prompt's codes, {name}"),
            vec![cont(&lc[0])],
            truth,
            true,
        ));
    }
    rows.push(row(
        "repeat the prompt (audio loop)",
        vec![cont(&looped(prompt, sample_length))],
        truth,
        true,
    ));
    rows.push(row("silence", vec![0.0], truth, true));
    // Only what this function made; the folder itself only if that leaves it empty.
    for d in ["primed", "ancestral"] {
        let _ = std::fs::remove_dir_all(o.work.join(d));
    }
    let _ = std::fs::remove_dir(&o.work);
    Ok(TempoResult {
        sample_rate: sr,
        prompt_bpm: truth,
        bpm_source: o.bpm_source.clone(),
        prompt_samples,
        sample_length,
        levels,
        seeds,
        rows,
        sampling_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_average_errors_and_fold_octaves() {
        let r = row("x", vec![137.0, 68.5, 0.0, 140.0], 137.0, false);
        assert!((r.mean_error - (0.0 + 68.5 + 137.0 + 3.0) / 4.0).abs() < 1e-12);
        assert!((r.mean_folded_error - (0.0 + 0.0 + 137.0 + 3.0) / 4.0).abs() < 1e-12);
        assert_eq!(looped(&[1, 2, 3], 7), vec![1, 2, 3, 1, 2, 3, 1]);
        assert!(looped::<i32>(&[], 3).is_empty());
    }
}
