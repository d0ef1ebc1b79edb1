//! Label sections of `jukebox quality`: does the top prior use its artist and
//! genre labels?
//!
//! A true label can save at most log2(#genres) bits per *window* against no label (see
//! `models/default/TRAINING.md`), so over a whole window of n_ctx tokens the difference is
//! bounded by log2(#genres) / n_ctx bits per token. Both sections therefore give every figure
//! twice: as the mean over all scored tokens (what `jukebox rank-labels` prints) and over the
//! first [`EARLY`] tokens of each window, where the window's own context cannot yet stand in
//! for the label.
//!
//! - **Prompt label spread**: every genre (and artist) of the model scored on a prompt's
//!   top-level codes, against no label; best and worst label, the spread worst − best, and the
//!   rank of the genre the prompt is known to be.
//! - **Held-out genre accuracy**: for every held-out file of the priors' corpus, the genre with
//!   the fewest bits is compared with the file's genre; chance is 1/#genres, and the trivial
//!   baseline a bag of codes ([`GenreBag`]: each genre's training-code histogram, order
//!   ignored) classifying the same tokens.
//!
//! Labels are built as `rank-labels` builds them ([`rank::candidates`], [`RankRequest`]) and
//! scored teacher-forced in the windows of [`score_sequence`] (the scorer `rank-labels` and
//! `logits` use), so the whole-window figure equals what `rank-labels` prints for the same codes.

use super::bag::GenreBag;
use super::heldout::{self, SplitInfo};
use crate::checkpoint::ModelDir;
use crate::dataset::Corpus;
use crate::labels::{BaseLabel, Field, IdKind, IdSet, Labeller, Meta};
use crate::prior::rank::{self, Candidate, RankRequest};
use crate::prior::windows::get_starts;
use crate::prior::{score_sequence, Prior, SAMPLE_RATE};
use crate::vqvae::VqVae;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use std::path::PathBuf;

/// Tokens at the start of each window that the early-token figures average.
pub const EARLY: usize = 16;

/// Activation budget per forward pass (as `rank-labels` when memory cannot be measured).
const BUDGET: u64 = 1 << 30;

/// What the label sections measure.
#[derive(Debug, Clone)]
pub struct LabelOpts {
    /// Prompt whose top-level codes are scored under every label.
    pub prompt: PathBuf,
    /// The genre the prompt is known to be (its rank is reported); ignored, with a note, when
    /// the model has no such genre.
    pub prompt_genre: Option<String>,
    /// Rank artists as well as genres on the prompt.
    pub artists: bool,
    /// Tokens at the start of each window for the early-token figures.
    pub early: usize,
    /// The priors' corpus for held-out genre accuracy; `None` skips that section.
    pub corpus: Option<PathBuf>,
    /// The training split (as `QualityOpts`).
    pub split_seed: u64,
    pub valid_fraction: f64,
    /// Held-out files scored at most, and top-level windows scored per file (from its start).
    pub max_files: usize,
    pub windows_per_file: usize,
}

/// A section that was measured, or why it was not.
#[derive(Debug, Clone, PartialEq)]
pub enum Section<T> {
    Measured(T),
    Skipped(String),
}

impl<T> Section<T> {
    pub fn measured(&self) -> Option<&T> {
        match self {
            Section::Measured(t) => Some(t),
            Section::Skipped(_) => None,
        }
    }
}

/// One label's mean bits per token: over every scored token, and over the early tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelScore {
    pub id: i64,
    pub name: String,
    pub whole: f64,
    pub early: f64,
}

/// Every label of one field scored on the same codes, and the no-label baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    pub field: Field,
    pub baseline: LabelScore,
    /// In id order.
    pub scored: Vec<LabelScore>,
}

impl Spread {
    fn key(s: &LabelScore, early: bool) -> f64 {
        if early {
            s.early
        } else {
            s.whole
        }
    }
    /// Labels best (fewest bits) first; ties keep id order.
    pub fn ranked(&self, early: bool) -> Vec<&LabelScore> {
        let mut v: Vec<&LabelScore> = self.scored.iter().collect();
        v.sort_by(|a, b| Self::key(a, early).total_cmp(&Self::key(b, early)));
        v
    }
    pub fn best(&self, early: bool) -> Option<&LabelScore> {
        self.ranked(early).first().copied()
    }
    pub fn worst(&self, early: bool) -> Option<&LabelScore> {
        self.ranked(early).last().copied()
    }
    /// Worst − best, bits per token (≥ 0).
    pub fn spread(&self, early: bool) -> f64 {
        match (self.best(early), self.worst(early)) {
            (Some(b), Some(w)) => Self::key(w, early) - Self::key(b, early),
            _ => f64::NAN,
        }
    }
    /// 1-based rank of the label with this id.
    pub fn rank_of(&self, id: i64, early: bool) -> Option<usize> {
        self.ranked(early)
            .iter()
            .position(|s| s.id == id)
            .map(|i| i + 1)
    }
    pub fn get(&self, id: i64) -> Option<&LabelScore> {
        self.scored.iter().find(|s| s.id == id)
    }
}

/// The prompt label spread.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptSpread {
    pub prompt: String,
    pub level: usize,
    pub seconds: f64,
    pub tokens: usize,
    pub n_ctx: usize,
    /// Windows the tokens are scored in, and how many positions the early figures average.
    pub windows: usize,
    pub early: usize,
    pub early_positions: usize,
    pub genres: Spread,
    pub artists: Option<Spread>,
    /// The expected genre (id, name) when the model has it.
    pub expected: Option<(i64, String)>,
    /// Why an asked-for expected genre is not ranked.
    pub expected_note: Option<String>,
    /// The bag-of-codes baseline's genre ranking of the same tokens (its "no label": all
    /// genres' codes pooled); `None` without a corpus to fit it on.
    pub bag: Option<Spread>,
}

impl PromptSpread {
    /// log2(#genres) bits per window spread over the tokens scored: what a true label can save
    /// against no label, per token, in the whole-window figure.
    pub fn bound_whole(&self) -> f64 {
        label_bound(self.genres.scored.len()) * self.windows as f64 / self.tokens.max(1) as f64
    }
    /// The same bound over the early tokens only.
    pub fn bound_early(&self) -> f64 {
        label_bound(self.genres.scored.len()) * self.windows as f64
            / self.early_positions.max(1) as f64
    }
}

/// log2(n), the bits a label can save per window when "no label" is a mixture of n labels.
pub fn label_bound(n: usize) -> f64 {
    (n.max(1) as f64).log2()
}

/// One held-out file's genre ranking.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRow {
    pub rel: String,
    /// The file's genres as the corpus names them, and their ids in the model.
    pub genres: Vec<String>,
    pub genre_ids: Vec<i64>,
    pub tokens: usize,
    pub best_whole: String,
    pub best_early: String,
    pub hit_whole: bool,
    pub hit_early: bool,
    /// The bag-of-codes baseline's pick on the same tokens (whole windows, first tokens).
    pub bag_whole: String,
    pub bag_early: String,
    pub bag_hit_whole: bool,
    pub bag_hit_early: bool,
    /// 1-based rank of the best-ranked of the file's genres: the prior's (whole windows, first
    /// tokens), then the bag's. Finer than a hit: it moves before the top pick does.
    pub rank: [usize; 4],
}

/// Held-out genre accuracy.
#[derive(Debug, Clone, PartialEq)]
pub struct Accuracy {
    pub split: SplitInfo,
    pub n_genres: usize,
    pub early: usize,
    pub windows_per_file: usize,
    pub files: Vec<FileRow>,
    /// Held-out files left out, with why (no genre of the model, too short, over the limit).
    pub left_out: Vec<String>,
    /// The bag-of-codes baseline: training clips per genre, and (genre, training tokens).
    pub bag_clips: usize,
    pub bag_tokens: Vec<(String, usize)>,
}

impl Accuracy {
    fn count(&self, hit: impl Fn(&FileRow) -> bool) -> usize {
        self.files.iter().filter(|f| hit(f)).count()
    }
    pub fn hits(&self, early: bool) -> usize {
        self.count(|f| if early { f.hit_early } else { f.hit_whole })
    }
    pub fn accuracy(&self, early: bool) -> f64 {
        self.hits(early) as f64 / self.files.len().max(1) as f64
    }
    pub fn bag_hits(&self, early: bool) -> usize {
        self.count(|f| {
            if early {
                f.bag_hit_early
            } else {
                f.bag_hit_whole
            }
        })
    }
    pub fn bag_accuracy(&self, early: bool) -> f64 {
        self.bag_hits(early) as f64 / self.files.len().max(1) as f64
    }
    /// Mean over files of the rank of the file's genre: the prior's, or the bag's when `bag`.
    pub fn mean_rank(&self, early: bool, bag: bool) -> f64 {
        let k = usize::from(early) + 2 * usize::from(bag);
        let sum: usize = self.files.iter().map(|f| f.rank[k]).sum();
        sum as f64 / self.files.len().max(1) as f64
    }
    /// The mean rank a random ordering gives: for a file with g of the n genres, the best of g
    /// random ranks averages (n + 1) / (g + 1).
    pub fn chance_rank(&self) -> f64 {
        let n = self.n_genres as f64;
        let sum: f64 = self
            .files
            .iter()
            .map(|f| (n + 1.0) / (f.genre_ids.len() as f64 + 1.0))
            .sum();
        sum / self.files.len().max(1) as f64
    }
    /// Chance of a top-1 hit for a label picked at random: the mean over files of
    /// (#file genres the model has) / #genres (1/#genres when each file has one genre).
    pub fn chance(&self) -> f64 {
        if self.files.is_empty() {
            return f64::NAN;
        }
        self.files
            .iter()
            .map(|f| f.genre_ids.len() as f64 / self.n_genres.max(1) as f64)
            .sum::<f64>()
            / self.files.len() as f64
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LabelResult {
    pub prompt: Section<PromptSpread>,
    pub accuracy: Section<Accuracy>,
}

/// Positions scored by [`score_sequence`] that lie among the first `k` positions of the window
/// that scores them: windows start at [`get_starts`] with hop n_ctx; the last window, which overlaps the one
/// before, scores only positions not scored yet, so its first positions (scored by the earlier
/// window, deep in its context) are not early.
pub fn early_positions(total: usize, n_ctx: usize, k: usize) -> Vec<usize> {
    let mut out = Vec::new();
    if total == 0 {
        return out;
    }
    let mut done = 0usize;
    for start in get_starts(total, n_ctx, n_ctx) {
        let len = n_ctx.min(total - start);
        let skip = done.saturating_sub(start);
        out.extend((skip..k.min(len)).map(|j| start + j));
        done = start + len;
    }
    out
}

/// Mean of one label's per-position bits (as [`score_sequence`] returns them, one value per
/// token) over the early positions of [`early_positions`].
pub fn early_mean(bits: &[f32], n_ctx: usize, k: usize) -> f64 {
    let pos = early_positions(bits.len(), n_ctx, k);
    if pos.is_empty() {
        return f64::NAN;
    }
    pos.iter().map(|&p| f64::from(bits[p])).sum::<f64>() / pos.len() as f64
}

fn mean(bits: &[f32]) -> f64 {
    bits.iter().map(|&b| f64::from(b)).sum::<f64>() / bits.len().max(1) as f64
}

/// Teacher-forced bits of every position of `tokens` (top-level codes) under each label,
/// `batch` labels per forward pass: (labels × tokens), as `rank_labels` scores them.
pub fn position_bits(
    prior: &Prior,
    lab: &Labeller,
    bases: &[BaseLabel],
    tokens: &[i64],
    batch: usize,
) -> Result<Vec<Vec<f32>>> {
    if tokens.is_empty() {
        bail!("no codes to score");
    }
    if prior.conditioner.is_some() {
        bail!("the label sections score the top level only (an upsampler needs the level above)");
    }
    let dev = prior.device().clone();
    let t = tokens.len();
    let mut out = Vec::with_capacity(bases.len());
    for chunk in bases.chunks(batch.max(1)) {
        let n = chunk.len();
        let toks = Tensor::from_slice(tokens, (1, t), &dev)?
            .to_dtype(DType::I64)?
            .repeat((n, 1))?;
        let mut y_at = |start: usize| -> anyhow::Result<Option<Tensor>> {
            let (flat, _) = lab.get_y_batch(chunk, start as i64)?;
            Ok(Some(Tensor::from_vec(flat, (n, lab.y_len()), &dev)?))
        };
        let s = score_sequence(prior, &toks, &mut y_at, None, false, &mut |_, _| {})?;
        out.extend(s.nll_bits.to_dtype(DType::F32)?.to_vec2::<f32>()?);
    }
    Ok(out)
}

/// Score the no-label baseline and every candidate of one field on `tokens`.
fn spread(
    prior: &Prior,
    lab: &Labeller,
    req: &RankRequest,
    offset: i64,
    tokens: &[i64],
    early: usize,
) -> Result<Spread> {
    let field = req
        .candidates
        .first()
        .map(|c| c.field)
        .context("no labels to score")?;
    let metas: Vec<Meta> = std::iter::once(req.baseline())
        .chain(req.candidates.iter().map(|c| req.meta(c)))
        .collect();
    let bases: Vec<BaseLabel> = metas
        .iter()
        .map(|m| lab.base(m, req.total_length, offset))
        .collect::<Result<_>>()?;
    let batch = rank::batch_for_budget(prior, BUDGET, bases.len());
    let bits = position_bits(prior, lab, &bases, tokens, batch)?;
    let n_ctx = prior.cfg.n_ctx;
    let score = |id: i64, name: &str, row: &[f32]| LabelScore {
        id,
        name: name.to_string(),
        whole: mean(row),
        early: early_mean(row, n_ctx, early),
    };
    Ok(Spread {
        field,
        baseline: score(0, "no label", &bits[0]),
        scored: req
            .candidates
            .iter()
            .zip(&bits[1..])
            .map(|(c, row)| score(c.id, &c.name, row))
            .collect(),
    })
}

/// The model's ids of a genre name (empty when it has none but `unknown`).
fn genre_ids_of(ids: &IdSet, name: &str, cands: &[Candidate]) -> Vec<i64> {
    let (found, _) = ids.genre_lookup(name);
    let mut v: Vec<i64> = found
        .into_iter()
        .filter(|&id| id > 0 && cands.iter().any(|c| c.id == id))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The model's genre ids (among `genres`) of a corpus item: its numeric ids for a model without
/// name lists, else its genre names looked up; empty when the model has none of them.
pub(crate) fn item_genre_ids(
    ids: &IdSet,
    it: &crate::dataset::Item,
    genres: &[Candidate],
) -> Vec<i64> {
    let mut v: Vec<i64> = if ids.kind == IdKind::Numeric {
        it.genre_ids
            .iter()
            .map(|&g| g as i64)
            .filter(|g| genres.iter().any(|c| c.id == *g))
            .collect()
    } else {
        it.genres
            .iter()
            .flat_map(|g| genre_ids_of(ids, g, genres))
            .collect()
    };
    v.sort_unstable();
    v.dedup();
    v
}

/// Both label sections. Progress lines go to `progress`.
pub fn measure(
    md: &ModelDir,
    opts: &LabelOpts,
    dev: &Device,
    progress: &mut dyn FnMut(&str),
) -> Result<LabelResult> {
    let levels = md.config.vqvae.levels;
    let level = levels - 1;
    let pcfg = md.config.priors[level].clone();
    let Some(lc) = pcfg.labels.clone() else {
        let why = format!("the level-{level} (top) prior takes no artist/genre labels");
        return Ok(LabelResult {
            prompt: Section::Skipped(why.clone()),
            accuracy: Section::Skipped(why),
        });
    };
    let ids = IdSet::for_model(&md.path, &pcfg)?;
    let genres = rank::candidates(&ids, Field::Genre, None);
    if genres.is_empty() {
        let why = "the model's label lists hold no genre besides `unknown`".to_string();
        return Ok(LabelResult {
            prompt: Section::Skipped(why.clone()),
            accuracy: Section::Skipped(why),
        });
    }
    let mut lab = Labeller::for_model(&md.path, &pcfg, SAMPLE_RATE)?;
    lab.quiet = true;
    let prior = md.prior(level, dev)?;
    let vq = md.vqvae(dev)?;
    let sr = md.config.vqvae.sample_rate;
    let top_hop = md.config.vqvae.hop_length(level);
    let min_s = if lc.include_time_signal {
        lc.min_duration
    } else {
        0.0
    };
    let early = opts.early.max(1);
    let sc = Scorer {
        prior: &prior,
        vq: &vq,
        lab: &lab,
        ids: &ids,
        genres: &genres,
        pcfg: &pcfg,
        level,
        top_hop,
        sr,
        early,
        dev,
    };

    let fitted = match &opts.corpus {
        None => None,
        Some(dir) => {
            let corpus = Corpus::open(dir)
                .with_context(|| format!("opening the corpus {}", dir.display()))?;
            let (train, valid, split) =
                heldout::split(&corpus, opts.split_seed, opts.valid_fraction);
            let bag = sc.fit_bag(&corpus, &train, progress)?;
            Some((corpus, valid, split, bag))
        }
    };
    let prompt = sc.prompt_spread(opts, min_s, fitted.as_ref().map(|f| &f.3), progress)?;
    let accuracy = match &fitted {
        None => Section::Skipped(
            "no corpus given (`--corpus`/`--prior-corpus`): the held-out files and their genres \
             come from the priors' training corpus"
                .to_string(),
        ),
        Some((corpus, valid, split, bag)) => {
            sc.heldout_accuracy(opts, corpus, valid, split.clone(), bag, progress)?
        }
    };
    Ok(LabelResult { prompt, accuracy })
}

/// What both label sections score with: the top prior, the VQ-VAE that encodes their audio,
/// the labeller and the model's genres.
struct Scorer<'a> {
    prior: &'a Prior,
    vq: &'a VqVae,
    lab: &'a Labeller,
    ids: &'a IdSet,
    genres: &'a [Candidate],
    pcfg: &'a crate::config::PriorConfig,
    level: usize,
    top_hop: usize,
    sr: u32,
    early: usize,
    dev: &'a Device,
}

impl Scorer<'_> {
    /// Top-level codes of `x` (a whole number of top-level hops).
    fn encode(&self, x: &[f32]) -> Result<Vec<i64>> {
        let t = Tensor::from_slice(x, (1, x.len()), self.dev)?;
        Ok(self
            .vq
            .encode(&t, self.level)
            .context("encoding at the top level")?
            .to_dtype(DType::I64)?
            .flatten_all()?
            .to_vec1::<i64>()?)
    }

    /// How far the genres (and artists) move the bits of the prompt's top-level codes, over
    /// whole windows and over their first tokens.
    fn prompt_spread(
        &self,
        opts: &LabelOpts,
        min_s: f64,
        bag: Option<&GenreBag>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Section<PromptSpread>> {
        let audio = crate::audio::load(&opts.prompt)
            .with_context(|| format!("loading the prompt {}", opts.prompt.display()))?;
        let samples = audio.samples.len() / self.top_hop * self.top_hop;
        Ok(if samples == 0 {
            Section::Skipped(format!(
                "the prompt {} is shorter than one top-level token",
                opts.prompt.display()
            ))
        } else {
            let tokens = self.encode(&audio.samples[..samples])?;
            let audio_s = samples as f64 / self.sr as f64;
            // As `rank-labels` (the prompt's length, at least the prior's minimum), clamped into
            // the prior's range so that a prompt longer than its longest song can still be scored.
            let want = (audio_s.max(min_s) * SAMPLE_RATE).round().max(1.0) as u64;
            let (total_length, _) = timing(self.pcfg, want, 0);
            let req = |candidates: Vec<Candidate>| RankRequest {
                candidates,
                artist: "unknown".into(),
                genres: Vec::new(),
                lyrics: None,
                total_length,
            };
            progress(&format!(
                "labels: {} genres on the prompt's {} top-level tokens",
                self.genres.len(),
                tokens.len()
            ));
            let g = spread(
                self.prior,
                self.lab,
                &req(self.genres.to_vec()),
                0,
                &tokens,
                self.early,
            )?;
            let artists = if opts.artists {
                let a = rank::candidates(self.ids, Field::Artist, None);
                if a.is_empty() {
                    None
                } else {
                    progress(&format!("labels: {} artists on the prompt", a.len()));
                    Some(spread(
                        self.prior,
                        self.lab,
                        &req(a),
                        0,
                        &tokens,
                        self.early,
                    )?)
                }
            } else {
                None
            };
            let (expected, expected_note) = match &opts.prompt_genre {
                None => (None, None),
                Some(name) => match genre_ids_of(self.ids, name, self.genres).first() {
                    Some(&id) => (
                        Some((id, g.get(id).map_or(name.clone(), |s| s.name.clone()))),
                        None,
                    ),
                    None => (
                        None,
                        Some(format!(
                            "the model has no genre `{name}`, so no rank is given"
                        )),
                    ),
                },
            };
            let n_ctx = self.pcfg.n_ctx;
            let bag = bag.map(|b| self.bag_spread(b, &tokens));
            Section::Measured(PromptSpread {
                prompt: opts.prompt.display().to_string(),
                level: self.level,
                seconds: audio_s,
                tokens: tokens.len(),
                n_ctx,
                windows: get_starts(tokens.len(), n_ctx, n_ctx).len(),
                early: self.early,
                early_positions: early_positions(tokens.len(), n_ctx, self.early).len(),
                genres: g,
                artists,
                expected,
                expected_note,
                bag,
            })
        })
    }

    /// The bag of codes' genre bits on `tokens`, over all of them and over the early positions
    /// of the prior's windows, as a [`Spread`] beside the prior's.
    fn bag_spread(&self, bag: &GenreBag, tokens: &[i64]) -> Spread {
        let all: Vec<usize> = (0..tokens.len()).collect();
        let first = early_positions(tokens.len(), self.pcfg.n_ctx, self.early);
        let (whole, early) = (bag.bits(tokens, &all), bag.bits(tokens, &first));
        Spread {
            field: Field::Genre,
            baseline: LabelScore {
                id: 0,
                name: "all genres pooled".into(),
                whole: bag.pooled_bits(tokens, &all),
                early: bag.pooled_bits(tokens, &first),
            },
            scored: self
                .genres
                .iter()
                .zip(whole.iter().zip(&early))
                .map(|(g, (w, e))| LabelScore {
                    id: g.id,
                    name: g.name.clone(),
                    whole: w.1,
                    early: e.1,
                })
                .collect(),
        }
    }

    /// Top-1 genre accuracy of the ranking on held-out files of `dir`.
    fn heldout_accuracy(
        &self,
        opts: &LabelOpts,
        corpus: &Corpus,
        valid: &[usize],
        split: SplitInfo,
        bag: &GenreBag,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Section<Accuracy>> {
        let dir = &corpus.dir;
        let max_len = opts.windows_per_file.max(1) * self.pcfg.n_ctx * self.top_hop;
        let mut files = Vec::new();
        let mut left_out = Vec::new();
        progress(&format!(
            "labels: genre accuracy on {} held-out files of {}",
            valid.len().min(opts.max_files),
            dir.display()
        ));
        for (i, &item) in valid.iter().enumerate() {
            let it = &corpus.items[item];
            if i >= opts.max_files {
                left_out.push(format!("{}: over --label-files", it.rel));
                continue;
            }
            let true_ids = item_genre_ids(self.ids, it, self.genres);
            if true_ids.is_empty() {
                left_out.push(format!(
                    "{}: genre `{}` is not a genre of the model",
                    it.rel,
                    it.genres.join("+")
                ));
                continue;
            }
            let len = (it.n_samples as usize).min(max_len) / self.top_hop * self.top_hop;
            if len == 0 {
                left_out.push(format!("{}: shorter than one top-level token", it.rel));
                continue;
            }
            let x = corpus
                .load_window(it, 0, len)
                .with_context(|| format!("reading {}", it.rel))?;
            let tokens = self.encode(&x)?;
            let (total, offset) = timing(self.pcfg, it.song_samples(), it.offset_samples());
            let req = RankRequest {
                candidates: self.genres.to_vec(),
                artist: "unknown".into(),
                genres: Vec::new(),
                lyrics: Some(it.lyrics.clone()),
                total_length: total,
            };
            let s = spread(self.prior, self.lab, &req, offset, &tokens, self.early)
                .with_context(|| format!("scoring genres on {}", it.rel))?;
            let (bw, be) = (s.best(false).unwrap(), s.best(true).unwrap());
            let b = self.bag_spread(bag, &tokens);
            let (gw, ge) = (b.best(false).unwrap(), b.best(true).unwrap());
            let rank = |sp: &Spread, early: bool| {
                true_ids
                    .iter()
                    .filter_map(|&id| sp.rank_of(id, early))
                    .min()
                    .unwrap_or(self.genres.len())
            };
            files.push(FileRow {
                rel: it.rel.clone(),
                genres: it.genres.clone(),
                genre_ids: true_ids.clone(),
                tokens: tokens.len(),
                best_whole: bw.name.clone(),
                best_early: be.name.clone(),
                hit_whole: true_ids.contains(&bw.id),
                hit_early: true_ids.contains(&be.id),
                bag_whole: gw.name.clone(),
                bag_early: ge.name.clone(),
                bag_hit_whole: true_ids.contains(&gw.id),
                bag_hit_early: true_ids.contains(&ge.id),
                rank: [
                    rank(&s, false),
                    rank(&s, true),
                    rank(&b, false),
                    rank(&b, true),
                ],
            });
        }
        Ok(if files.is_empty() {
            Section::Skipped(format!(
                "no held-out file of {} has a genre of the model ({} left out)",
                dir.display(),
                left_out.len()
            ))
        } else {
            Section::Measured(Accuracy {
                split,
                n_genres: self.genres.len(),
                early: self.early,
                windows_per_file: opts.windows_per_file.max(1),
                files,
                left_out,
                bag_clips: BAG_CLIPS,
                bag_tokens: self
                    .genres
                    .iter()
                    .map(|g| g.name.clone())
                    .zip(bag.tokens.iter().copied())
                    .collect(),
            })
        })
    }

    /// The bag-of-codes baseline: the top-level codes of [`BAG_CLIPS`] one-window clips per
    /// genre, spread over that genre's training files.
    fn fit_bag(
        &self,
        corpus: &Corpus,
        train: &[usize],
        progress: &mut dyn FnMut(&str),
    ) -> Result<GenreBag> {
        progress(&format!(
            "labels: encoding {BAG_CLIPS} training clips per genre for the bag-of-codes baseline"
        ));
        let len = self.pcfg.n_ctx * self.top_hop;
        let mut codes = Vec::with_capacity(self.genres.len());
        for g in self.genres {
            let items: Vec<usize> = train
                .iter()
                .copied()
                .filter(|&i| {
                    item_genre_ids(self.ids, &corpus.items[i], self.genres).contains(&g.id)
                })
                .collect();
            let mut c = Vec::new();
            for clip in heldout::clips(corpus, &items, BAG_CLIPS, len, self.top_hop)? {
                c.extend(self.encode(&clip.samples)?);
            }
            codes.push(c);
        }
        let ids: Vec<i64> = self.genres.iter().map(|g| g.id).collect();
        Ok(GenreBag::new(&ids, &codes, self.pcfg.bins))
    }
}

/// Training clips per genre (one top-level window each) for the bag-of-codes baseline.
pub const BAG_CLIPS: usize = 16;

/// The song length and offset labels of a file scored from its start, clamped into the prior's
/// range as training clamps them (the timing embedding asserts the range).
fn timing(pcfg: &crate::config::PriorConfig, song: u64, offset: u64) -> (i64, i64) {
    let song = song.max(1) as i64;
    let offset = offset as i64;
    match pcfg.labels.as_ref() {
        Some(l) => {
            let sample_length = (pcfg.n_ctx * pcfg.raw_to_tokens) as i64;
            let max = (l.max_duration * SAMPLE_RATE) as i64 - 1;
            let total = song.clamp((l.min_duration * SAMPLE_RATE).ceil() as i64, max.max(1));
            let last_start = (total - 1).min(max + 1 - sample_length);
            (total, offset.min(last_start).max(0))
        }
        None => (song, offset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_positions_follow_the_scoring_windows() {
        // One short window: its first k positions.
        assert_eq!(early_positions(10, 64, 4), vec![0, 1, 2, 3]);
        assert_eq!(early_positions(3, 64, 4), vec![0, 1, 2]);
        // Whole windows at 0 and 8.
        assert_eq!(early_positions(16, 8, 2), vec![0, 1, 8, 9]);
        // Windows at 0, 8 and 10 (the last one overlaps and scores only 16..18, which are its
        // positions 6 and 7: not early).
        assert_eq!(early_positions(18, 8, 2), vec![0, 1, 8, 9]);
        // With k past the overlap the last window's unscored early positions count.
        assert_eq!(
            early_positions(18, 8, 7),
            vec![0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 16]
        );
        assert!(early_positions(0, 8, 2).is_empty());
    }

    #[test]
    fn early_mean_averages_only_early_positions() {
        // Bits = 100 at early positions, 1 elsewhere: the early mean sees only the 100s.
        let n_ctx = 8;
        let mut bits = vec![1f32; 24];
        for w in 0..3 {
            bits[w * n_ctx] = 100.0;
            bits[w * n_ctx + 1] = 100.0;
        }
        assert_eq!(early_mean(&bits, n_ctx, 2), 100.0);
        assert!((mean(&bits) - (6.0 * 100.0 + 18.0) / 24.0).abs() < 1e-12);
        // A hand-made ramp: positions 0, 1, 8, 9, 16, 17 → (0+1+8+9+16+17)/6.
        let ramp: Vec<f32> = (0..24).map(|i| i as f32).collect();
        assert!((early_mean(&ramp, n_ctx, 2) - 51.0 / 6.0).abs() < 1e-12);
    }

    /// Mean ranks average the per-file ranks; chance is (n + 1) / (g + 1) per file.
    #[test]
    fn mean_and_chance_ranks() {
        let row = |ids: Vec<i64>, rank: [usize; 4]| FileRow {
            rel: String::new(),
            genres: vec![],
            genre_ids: ids,
            tokens: 1,
            best_whole: String::new(),
            best_early: String::new(),
            hit_whole: rank[0] == 1,
            hit_early: rank[1] == 1,
            bag_whole: String::new(),
            bag_early: String::new(),
            bag_hit_whole: rank[2] == 1,
            bag_hit_early: rank[3] == 1,
            rank,
        };
        let a = Accuracy {
            split: SplitInfo {
                corpus: String::new(),
                seed: 0,
                valid_fraction: 0.1,
                train_files: 1,
                valid_files: 2,
                held_out: true,
            },
            n_genres: 5,
            early: 16,
            windows_per_file: 1,
            files: vec![row(vec![1], [1, 2, 3, 4]), row(vec![2, 3], [4, 1, 2, 5])],
            left_out: vec![],
            bag_clips: 1,
            bag_tokens: vec![],
        };
        assert_eq!(a.mean_rank(false, false), 2.5);
        assert_eq!(a.mean_rank(true, false), 1.5);
        assert_eq!(a.mean_rank(false, true), 2.5);
        assert_eq!(a.mean_rank(true, true), 4.5);
        // One genre of 5: 3; two of 5: 2.
        assert!((a.chance_rank() - 2.5).abs() < 1e-12);
    }

    #[test]
    fn spread_ranks_and_measures() {
        let s = |id, w, e| LabelScore {
            id,
            name: format!("g{id}"),
            whole: w,
            early: e,
        };
        let sp = Spread {
            field: Field::Genre,
            baseline: s(0, 2.0, 5.0),
            scored: vec![s(1, 2.1, 3.0), s(2, 1.9, 9.0), s(3, 2.0, 4.0)],
        };
        assert_eq!(sp.best(false).unwrap().id, 2);
        assert_eq!(sp.best(true).unwrap().id, 1);
        assert!((sp.spread(false) - 0.2).abs() < 1e-12);
        assert!((sp.spread(true) - 6.0).abs() < 1e-12);
        assert_eq!(sp.rank_of(3, false), Some(2));
        assert_eq!(sp.rank_of(2, true), Some(3));
        assert!((label_bound(4) - 2.0).abs() < 1e-12);
    }
}
