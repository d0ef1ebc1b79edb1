//! `jukebox quality`: measured quality of a model on held-out audio, each figure beside a trivial
//! baseline, written as a Markdown report (`models/default/QUALITY.md`).
//!
//! - Reconstruction: multi-resolution STFT distance and SNR per level on held-out clips, against
//!   silence, 8-bit µ-law and a 4 kHz low-pass ([`recon`]); codebook usage and perplexity.
//! - Priors: teacher-forced bits per token on held-out windows against the unigram of the
//!   training codes ([`bits`]).
//! - Tempo: primed continuations of a prompt of known tempo against looping the prompt,
//!   silence and unprimed samples ([`tempo`]).
//! - Held-out loops: continuations of drum loops at tempos the corpus lacks ([`loops`]).
//! - Genre separation: unprimed samples per genre told apart by a nearest-centroid classifier
//!   fitted on the training audio ([`separation`]).
//! - Labels: genres and artists ranked on a prompt (whole windows and each window's first
//!   tokens, against no label and the log2(#genres) bound), and top-1 genre accuracy on
//!   held-out files against chance ([`labels`]).
//!
//! Held-out means the validation split training uses: [`crate::dataset::Corpus::split`] with
//! the training seed and validation fraction (defaults 0 and 0.1, as `train.toml`), per corpus:
//! the VQ-VAE's corpus for reconstruction, the priors' corpus for bits per token.

pub mod bag;
pub mod bits;
pub mod heldout;
pub mod labels;
pub mod loops;
pub mod recon;
pub mod report;
pub mod separation;
pub mod tempo;

pub use bits::{BitsOpts, BitsRow};
pub use heldout::SplitInfo;
pub use labels::{LabelOpts, LabelResult};
pub use loops::{LoopsOpts, LoopsResult};
pub use recon::{ReconResult, ReconRow, UsageRow};
pub use report::markdown;
pub use separation::{SeparationOpts, SeparationResult};
pub use tempo::{TempoOpts, TempoResult, TempoRow};

use crate::checkpoint::ModelDir;
use crate::dataset::Corpus;
use anyhow::{Context, Result};
use candle_core::Device;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct QualityOpts {
    pub model: PathBuf,
    /// The VQ-VAE's training corpus (reconstruction and codebook figures).
    pub corpus: PathBuf,
    /// The priors' training corpus (bits per token); `corpus` when absent.
    pub prior_corpus: Option<PathBuf>,
    /// The training split: seed and validation fraction.
    pub split_seed: u64,
    pub valid_fraction: f64,
    /// Reconstruction clips and their length.
    pub clips: usize,
    pub clip_seconds: f64,
    pub bits: BitsOpts,
    /// Continuations of a prompt; skipped when absent.
    pub tempo: Option<TempoOpts>,
    /// The label sections; skipped when absent.
    pub labels: Option<LabelOpts>,
    /// Continuations of held-out loops; skipped when absent.
    pub loops: Option<LoopsOpts>,
    /// Genre separation of unprimed samples; skipped when absent.
    pub separation: Option<SeparationOpts>,
    /// Progress bars of the sampler.
    pub bars: bool,
}

#[derive(Debug, Clone)]
pub struct QualityReport {
    pub model: String,
    /// The command line that produced the report (set by the caller).
    pub command: String,
    pub date: String,
    pub recon_split: SplitInfo,
    pub prior_split: SplitInfo,
    pub clips: usize,
    pub clip_seconds: f64,
    pub recon: ReconResult,
    pub bits: Vec<BitsRow>,
    pub tempo: Option<TempoResult>,
    pub labels: Option<LabelResult>,
    pub loops: Option<LoopsResult>,
    pub separation: Option<SeparationResult>,
    /// (stage, wall seconds).
    pub timings: Vec<(String, f64)>,
}

/// Today's UTC date, `YYYY-MM-DD` (civil-from-days, no time-zone database needed).
pub fn utc_date() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Run one section of the report, recording its wall time under `name`.
fn timed<T>(
    timings: &mut Vec<(String, f64)>,
    name: &str,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let t = Instant::now();
    let r = f()?;
    timings.push((name.to_string(), t.elapsed().as_secs_f64()));
    Ok(r)
}

/// Run every measurement; progress goes to stderr with the elapsed time.
pub fn measure(opts: &QualityOpts) -> Result<QualityReport> {
    let t0 = Instant::now();
    let mut log = |m: &str| eprintln!("[{:6.1} s] {m}", t0.elapsed().as_secs_f64());
    let mut timings = Vec::new();
    let dev = Device::Cpu;
    let md = ModelDir::open(&opts.model)
        .with_context(|| format!("cannot open the model {}", opts.model.display()))?;
    let vq = md.vqvae(&dev)?;
    let sr = md.config.vqvae.sample_rate;
    let top_hop = md.config.vqvae.hop_length(md.config.vqvae.levels - 1);

    let (corpus, recon_split, clip_len, n_clips, recon) = timed(
        &mut timings,
        "reconstruction and codebook usage",
        || {
            let corpus = Corpus::open(&opts.corpus)
                .with_context(|| format!("opening the corpus {}", opts.corpus.display()))?;
            let (_, valid, split) = heldout::split(&corpus, opts.split_seed, opts.valid_fraction);
            if !split.held_out {
                eprintln!(
                    "warning: no artist of {} has two files, so nothing is held out; measuring on training files",
                    opts.corpus.display()
                );
            }
            let clip_len =
                crate::prior::windows::seconds_to_samples(opts.clip_seconds, sr, top_hop)
                    .context("--clip-seconds")?;
            log(&format!(
                "reconstruction: {} clips of {:.2} s from {} held-out files of {}",
                opts.clips,
                clip_len as f64 / sr as f64,
                valid.len(),
                opts.corpus.display()
            ));
            let clips: Vec<Vec<f32>> =
                heldout::clips(&corpus, &valid, opts.clips, clip_len, top_hop)?
                    .into_iter()
                    .map(|c| c.samples)
                    .collect();
            let recon = recon::measure(&vq, &clips, &dev, &mut log)?;
            Ok((corpus, split, clip_len, clips.len(), recon))
        },
    )?;

    let (prior_split, bits) = timed(&mut timings, "prior bits per token", || {
        let prior_dir = opts
            .prior_corpus
            .clone()
            .unwrap_or_else(|| opts.corpus.clone());
        let prior_corpus = if prior_dir == opts.corpus {
            corpus
        } else {
            Corpus::open(&prior_dir)
                .with_context(|| format!("opening the corpus {}", prior_dir.display()))?
        };
        let (train, valid, split) =
            heldout::split(&prior_corpus, opts.split_seed, opts.valid_fraction);
        if !split.held_out {
            eprintln!(
                "warning: no artist of {} has two files, so nothing is held out; measuring on training files",
                prior_dir.display()
            );
        }
        let bits = bits::measure(
            &md,
            &vq,
            &prior_corpus,
            &train,
            &valid,
            opts.bits,
            &dev,
            &mut log,
        )?;
        Ok((split, bits))
    })?;
    drop(vq);

    let tempo = opts
        .tempo
        .as_ref()
        .map(|o| {
            timed(&mut timings, "continuations and tempo", || {
                tempo::measure(&md, o, opts.bars, &mut log)
            })
        })
        .transpose()?;
    let labels = opts
        .labels
        .as_ref()
        .map(|o| {
            timed(&mut timings, "labels", || {
                labels::measure(&md, o, &dev, &mut log)
            })
        })
        .transpose()?;
    let loops = opts
        .loops
        .as_ref()
        .map(|o| {
            timed(&mut timings, "held-out loops", || {
                loops::measure(&md, o, opts.bars, &mut log)
            })
        })
        .transpose()?;
    let top_labels = md.config.priors[md.config.top_level()].labels.is_some();
    if opts.separation.is_some() && !top_labels {
        log("separation: skipped (the top prior takes no genre labels)");
    }
    let separation = opts
        .separation
        .as_ref()
        .filter(|_| top_labels)
        .map(|o| {
            timed(&mut timings, "genre separation", || {
                separation::measure(&md, o, &mut log)
            })
        })
        .transpose()?;
    log("done");
    Ok(QualityReport {
        model: opts.model.display().to_string(),
        command: String::new(),
        date: utc_date(),
        recon_split,
        prior_split,
        clips: n_clips,
        clip_seconds: clip_len as f64 / sr as f64,
        recon,
        bits,
        tempo,
        labels,
        loops,
        separation,
        timings,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_date_is_well_formed() {
        let d = super::utc_date();
        assert_eq!(d.len(), 10, "{d}");
        let y: i32 = d[..4].parse().unwrap();
        assert!((2024..2200).contains(&y), "{d}");
        assert_eq!((&d[4..5], &d[7..8]), ("-", "-"));
    }
}
