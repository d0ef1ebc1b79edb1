//! Ranking a prompt's labels from a model directory: what `jukebox rank-labels` and the study's
//! `label_ranking.csv` both run. [`RankJob::prepare`] checks the request, encodes the prompt and
//! loads the prior (everything that can fail fast); [`RankJob::run`] scores every candidate
//! label against the no-label baseline with [`crate::prior::rank::rank_labels`].

use crate::checkpoint::ModelDir;
use crate::labels::{Field, IdSet, Labeller};
use crate::prior::rank::{self, RankRequest, Ranking};
use crate::prior::windows::seconds_to_samples;
use crate::prior::{Prior, WeightFormat};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use std::path::PathBuf;

/// Activation budget per forward pass when the available memory cannot be measured.
const DEFAULT_BUDGET: u64 = 1 << 30;

/// What to rank.
#[derive(Debug, Clone)]
pub struct RankSpec {
    pub model: PathBuf,
    pub prompt: PathBuf,
    /// Seconds of the prompt to score (None: all of it), cut to a multiple of the top hop.
    pub prompt_seconds: Option<f64>,
    pub level: usize,
    /// Rank artists as well as genres.
    pub artists: bool,
    /// Only labels whose name contains this text (genres, and artists too).
    pub search: Option<String>,
    /// The artist while genres are ranked.
    pub artist: String,
    /// The genres while artists are ranked (empty: unknown).
    pub genres: Vec<String>,
    pub lyrics: Option<String>,
    /// Song length for the timing labels (None: max(prompt length, the prior's minimum)).
    pub total_seconds: Option<f64>,
    /// Labels per forward pass (None: as many as fit the available memory).
    pub max_batch: Option<usize>,
    pub device: Device,
    /// Dense weight storage of the prior (`--dtype`).
    pub weights: WeightFormat,
}

impl RankSpec {
    /// Genres (and artists, where the model has few enough to rank them all) of a model's top
    /// prior on a prompt, as the study ranks them.
    pub fn for_study(model: PathBuf, prompt: PathBuf, prompt_seconds: f64) -> Result<Self> {
        let md = ModelDir::open(&model)?;
        let top = md.config.top_level();
        let few_artists = match md.config.priors.get(top) {
            Some(p) if p.labels.is_some() => {
                IdSet::for_model(&model, p)?
                    .table(Field::Artist)
                    .entries
                    .len()
                    <= 64
            }
            _ => false,
        };
        Ok(Self {
            model,
            prompt,
            prompt_seconds: Some(prompt_seconds),
            level: top,
            artists: few_artists,
            search: None,
            artist: crate::labels::UNKNOWN.into(),
            genres: vec![],
            lyrics: None,
            total_seconds: None,
            max_batch: None,
            device: Device::Cpu,
            weights: WeightFormat::F32,
        })
    }
}

/// A checked request, its prompt encoded and its prior loaded.
pub struct RankJob {
    pub level: usize,
    pub n_levels: usize,
    /// Prompt samples scored.
    pub samples: usize,
    pub sample_rate: u32,
    /// The song length the timing labels use, seconds.
    pub total_seconds: f64,
    /// Labels per forward pass.
    pub batch: usize,
    /// Warnings from reading the prompt.
    pub warnings: Vec<String>,
    tokens: Vec<i64>,
    upper: Option<Vec<i64>>,
    prior: Prior,
    labeller: Labeller,
    request: RankRequest,
}

impl RankJob {
    pub fn prepare(spec: &RankSpec) -> Result<Self> {
        let model = &spec.model;
        let md = ModelDir::open(model)
            .with_context(|| format!("cannot open model {} (pass --model DIR)", model.display()))?;
        let n_levels = md.config.priors.len();
        if spec.level >= n_levels {
            bail!(
                "--level {} but the model has levels 0..{}",
                spec.level,
                n_levels - 1
            );
        }
        let cfg = md.config.priors[spec.level].clone();
        let Some(lc) = cfg.labels.clone() else {
            bail!(
                "the level-{} prior of {} takes no artist/genre labels: nothing to rank",
                spec.level,
                model.display()
            );
        };
        if spec.max_batch == Some(0) {
            bail!("--max-batch must be at least 1");
        }
        let sr = md.config.vqvae.sample_rate as f64;

        // Candidates before any heavy work, so a bad search fails fast.
        let ids = IdSet::for_model(model, &cfg)?;
        let search = spec.search.as_deref();
        let mut cands = rank::candidates(&ids, Field::Genre, search);
        if spec.artists || search.is_some() {
            cands.extend(rank::candidates(&ids, Field::Artist, search));
        }
        if cands.is_empty() {
            match search {
                Some(s) => bail!(
                    "no genre or artist name of this model contains `{s}`; see `jukebox labels --search {s}`"
                ),
                None => bail!("the model's label lists hold no genre besides `unknown`"),
            }
        }

        let levels: Vec<usize> = if cfg.cond.is_some() {
            vec![spec.level, spec.level + 1]
        } else {
            vec![spec.level]
        };
        let (mut rows, samples, warnings) = encode(&md, spec, &levels)?;
        let upper = (rows.len() > 1).then(|| rows.remove(1));
        let tokens = rows.remove(0);
        let prior = md.prior_as(spec.level, spec.weights, &spec.device)?;

        let mut labeller = Labeller::for_model(model, &cfg, sr)?.strict(true);
        labeller.quiet = true;
        // As `logits`: the codes' length at this level, at least the prior's minimum duration.
        let audio_s = tokens.len() as f64 * cfg.raw_to_tokens as f64 / sr;
        let min_s = if lc.include_time_signal {
            lc.min_duration
        } else {
            0.0
        };
        let total_seconds = spec.total_seconds.unwrap_or(audio_s.max(min_s));
        if !(total_seconds.is_finite() && total_seconds > 0.0) {
            bail!("--total-seconds must be a positive number, got {total_seconds}");
        }
        let request = RankRequest {
            candidates: cands,
            artist: spec.artist.clone(),
            genres: spec.genres.clone(),
            lyrics: spec.lyrics.clone(),
            total_length: (total_seconds * sr).round() as i64,
        };
        // Check the fixed axis once, with strict lookup, before scoring anything.
        labeller
            .base(
                &request.meta(&request.candidates[0]),
                request.total_length,
                0,
            )
            .context("the fixed --artist/--genre")?;

        let n_items = request.candidates.len() + 1;
        let batch = match spec.max_batch {
            Some(b) => b.min(n_items),
            None => {
                let budget = crate::guard::available()?
                    .map_or(DEFAULT_BUDGET, |a| a.bytes / 2)
                    .max(1);
                rank::batch_for_budget(&prior, budget, n_items)
            }
        };
        Ok(Self {
            level: spec.level,
            n_levels,
            samples,
            sample_rate: md.config.vqvae.sample_rate,
            total_seconds,
            batch,
            warnings,
            tokens,
            upper,
            prior,
            labeller,
            request,
        })
    }

    /// Ranked labels plus the baseline.
    pub fn n_items(&self) -> usize {
        self.request.candidates.len() + 1
    }

    /// Prompt tokens at the ranked level.
    pub fn n_tokens(&self) -> usize {
        self.tokens.len()
    }

    /// Score everything; `progress(done, total)` after each batch.
    pub fn run(&self, progress: &mut dyn FnMut(usize, usize)) -> Result<Ranking> {
        rank::rank_labels(
            &self.prior,
            &self.labeller,
            &self.request,
            &self.tokens,
            self.upper.as_deref(),
            self.batch,
            progress,
        )
    }
}

/// Encode the prompt at `levels`; returns (rows per level, samples used, warnings).
fn encode(
    md: &ModelDir,
    spec: &RankSpec,
    levels: &[usize],
) -> Result<(Vec<Vec<i64>>, usize, Vec<String>)> {
    let sr = md.config.vqvae.sample_rate;
    let top_hop = md.config.vqvae.hop_length(md.config.vqvae.levels - 1);
    let prompt = &spec.prompt;
    let audio = match spec.prompt_seconds {
        Some(s) => crate::audio::load_prefix(prompt, s + crate::audio::PREFIX_MARGIN_SECONDS),
        None => crate::audio::load(prompt),
    }
    .with_context(|| format!("loading the prompt {}", prompt.display()))?;
    let warnings = audio
        .warnings
        .iter()
        .map(|w| format!("{}: {w}", prompt.display()))
        .collect();
    let samples = match spec.prompt_seconds {
        Some(s) => seconds_to_samples(s, sr, top_hop).context("--prompt-seconds")?,
        None => audio.samples.len() / top_hop * top_hop,
    };
    if samples == 0 || audio.samples.len() < samples {
        bail!(
            "the prompt {} is {:.3} s long; at least {:.3} s are needed{}",
            prompt.display(),
            audio.samples.len() as f64 / sr as f64,
            samples.max(top_hop) as f64 / sr as f64,
            if spec.prompt_seconds.is_some() {
                " for --prompt-seconds"
            } else {
                " (one top-level token)"
            }
        );
    }
    let vq = md.vqvae(&spec.device)?;
    let x = Tensor::from_slice(&audio.samples[..samples], (1, samples), &spec.device)?;
    let rows = levels
        .iter()
        .map(|&l| {
            let c = vq
                .encode(&x, l)
                .with_context(|| format!("encoding the prompt at level {l}"))?;
            Ok(c.to_dtype(DType::I64)?.squeeze(0)?.to_vec1::<i64>()?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((rows, samples, warnings))
}
