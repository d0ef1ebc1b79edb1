//! Prior bits per token on held-out audio, teacher-forced over whole n_ctx windows with the
//! labels from the corpus metadata (as training validates), against the unigram baseline: the
//! code histogram of training audio (add-one smoothed) evaluated on the same held-out tokens.

use super::heldout::{self, Clip};
use crate::checkpoint::ModelDir;
use crate::dataset::{Corpus, Vocab};
use crate::labels::{Labeller, Meta};
use crate::prior::{nll_bits, SAMPLE_RATE};
use crate::vqvae::VqVae;
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};

/// One level's held-out bits per token.
#[derive(Debug, Clone, PartialEq)]
pub struct BitsRow {
    pub level: usize,
    pub windows: usize,
    pub tokens: usize,
    /// Teacher-forced prior, mean bits per token.
    pub prior_bits: f64,
    /// Unigram of the training codes (add-one smoothed), on the same tokens.
    pub unigram_bits: f64,
    /// Training tokens the unigram was counted from.
    pub unigram_train_tokens: usize,
}

/// Sizes of the measurement.
#[derive(Debug, Clone, Copy)]
pub struct BitsOpts {
    /// Held-out windows per level (one per clip).
    pub windows: usize,
    /// Training clips for the unigram histogram.
    pub train_clips: usize,
}

/// Codes of a clip at every level (official order).
fn encode_clip(vq: &VqVae, clip: &Clip, dev: &Device) -> Result<Vec<Vec<i64>>> {
    let n = clip.samples.len();
    let x = Tensor::from_slice(&clip.samples, (1, n), dev)?;
    (0..vq.levels())
        .map(|l| {
            Ok(vq
                .encode(&x, l)
                .with_context(|| format!("encoding a clip at level {l}"))?
                .to_dtype(DType::I64)?
                .flatten_all()?
                .to_vec1::<i64>()?)
        })
        .collect()
}

/// Add-one smoothed unigram bits of `tokens` under the histogram of `train`.
pub fn unigram_bits(train: &[i64], tokens: &[i64], bins: usize) -> f64 {
    let bins = bins.max(1);
    let mut h = vec![1f64; bins];
    for &c in train {
        h[(c.max(0) as usize).min(bins - 1)] += 1.0;
    }
    let total: f64 = h.iter().sum();
    let s: f64 = tokens
        .iter()
        .map(|&c| -(h[(c.max(0) as usize).min(bins - 1)] / total).log2())
        .sum();
    s / tokens.len().max(1) as f64
}

/// The clip layout: a margin on each side (so the scored window's codes are as a whole-file
/// encoding gives them, away from the clip's edges) around the longest window of any level.
pub fn clip_layout(md: &ModelDir) -> (usize, usize) {
    let cfg = &md.config;
    let hops = cfg.vqvae.hop_lengths();
    let top_hop = hops[cfg.vqvae.levels - 1];
    let core = cfg
        .priors
        .iter()
        .enumerate()
        .map(|(l, p)| p.n_ctx * hops[l])
        .max()
        .unwrap_or(top_hop);
    let round = |n: usize| n.div_ceil(top_hop) * top_hop;
    let margin = round(SAMPLE_RATE as usize / 4);
    (round(core), margin)
}

/// Held-out bits per token for every level, top first.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    md: &ModelDir,
    vq: &VqVae,
    corpus: &Corpus,
    train: &[usize],
    valid: &[usize],
    opts: BitsOpts,
    dev: &Device,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<BitsRow>> {
    let cfg = &md.config;
    let levels = cfg.vqvae.levels;
    let hops = cfg.vqvae.hop_lengths();
    let top_hop = hops[levels - 1];
    let (core, margin) = clip_layout(md);
    let len = core + 2 * margin;

    progress(&format!(
        "prior bits: encoding {} held-out clips of {:.2} s",
        opts.windows,
        len as f64 / SAMPLE_RATE
    ));
    let held = heldout::clips(corpus, valid, opts.windows, len, top_hop)?;
    let held_codes: Vec<Vec<Vec<i64>>> = held
        .iter()
        .map(|c| encode_clip(vq, c, dev))
        .collect::<Result<_>>()?;
    progress(&format!(
        "prior bits: encoding {} training clips for the unigram baseline",
        opts.train_clips
    ));
    let train_clips = heldout::clips(corpus, train, opts.train_clips, len, top_hop)?;
    let mut train_codes: Vec<Vec<i64>> = vec![Vec::new(); levels];
    for c in &train_clips {
        for (l, codes) in encode_clip(vq, c, dev)?.into_iter().enumerate() {
            train_codes[l].extend(codes);
        }
    }

    let model_vocab = Vocab::read(&md.path.join("labels"))
        .with_context(|| format!("reading the label lists of {}", md.path.display()))?;
    let mut rows = Vec::new();
    for level in (0..levels).rev() {
        let pcfg = &cfg.priors[level];
        let n_ctx = pcfg.n_ctx;
        progress(&format!(
            "prior bits: level {level}, {} windows of {n_ctx} tokens",
            held.len()
        ));
        let prior = md.prior(level, dev)?;
        let mut lab = Labeller::for_model(&md.path, pcfg, SAMPLE_RATE)?;
        lab.quiet = true;
        let s0 = margin / hops[level];
        let mut scored: Vec<i64> = Vec::new();
        let mut bits_sum = 0f64;
        for (chunk_i, chunk) in held.chunks(4).enumerate() {
            let base = chunk_i * 4;
            let mut toks = Vec::new();
            let mut zs = Vec::new();
            let mut bases = Vec::new();
            for (j, clip) in chunk.iter().enumerate() {
                let codes = &held_codes[base + j];
                toks.extend_from_slice(&codes[level][s0..s0 + n_ctx]);
                if pcfg.is_upsampler() {
                    let ratio = hops[level + 1] / hops[level];
                    let u0 = s0 / ratio;
                    zs.extend_from_slice(&codes[level + 1][u0..u0 + n_ctx / ratio]);
                }
                if pcfg.labels.is_some() {
                    bases.push(window_label(
                        &lab,
                        pcfg,
                        corpus,
                        clip,
                        margin,
                        model_vocab.as_ref(),
                    )?);
                }
            }
            let b = chunk.len();
            scored.extend_from_slice(&toks);
            let toks = Tensor::from_vec(toks, (b, n_ctx), dev)?;
            let z = if zs.is_empty() {
                None
            } else {
                let m = zs.len() / b;
                Some(Tensor::from_vec(zs, (b, m), dev)?)
            };
            let y = if bases.is_empty() {
                None
            } else {
                let (flat, _) = lab.get_y_batch(&bases, 0)?;
                Some(Tensor::from_vec(flat, (b, lab.y_len()), dev)?)
            };
            let logits = prior
                .forward(&toks, y.as_ref(), z.as_ref())
                .with_context(|| format!("level {level}: scoring held-out windows"))?;
            let targets = (toks.to_dtype(DType::I64)? + prior.music_shift() as f64)?;
            let bits = nll_bits(&logits, &targets)?
                .to_dtype(DType::F64)?
                .sum_all()?
                .to_scalar::<f64>()?;
            bits_sum += bits;
        }
        let n = scored.len().max(1);
        rows.push(BitsRow {
            level,
            windows: held.len(),
            tokens: scored.len(),
            prior_bits: bits_sum / n as f64,
            unigram_bits: unigram_bits(&train_codes[level], &scored, cfg.vqvae.l_bins),
            unigram_train_tokens: train_codes[level].len(),
        });
    }
    Ok(rows)
}

/// The window's labels as training builds them: the file's artist and genres, the song length
/// clamped into the prior's range, and the window's offset in the song.
fn window_label(
    lab: &Labeller,
    pcfg: &crate::config::PriorConfig,
    corpus: &Corpus,
    clip: &Clip,
    margin: usize,
    model_vocab: Option<&Vocab>,
) -> Result<crate::labels::BaseLabel> {
    let it = &corpus.items[clip.item];
    // Names when the model has label lists (ids follow the model's lists), else numeric ids.
    let meta = match model_vocab {
        Some(_) => Meta {
            artist: it.artist.clone(),
            genres: it.genres.clone(),
            lyrics: Some(it.lyrics.clone()),
        },
        None => Meta {
            artist: format!("#{}", it.artist_id),
            genres: it.genre_ids.iter().map(|g| format!("#{g}")).collect(),
            lyrics: Some(it.lyrics.clone()),
        },
    };
    let sample_length = (pcfg.n_ctx * pcfg.raw_to_tokens) as i64;
    let offset = (it.offset_samples() as usize + clip.start + margin) as i64;
    // Training clamps these whenever the prior has labels (the timing embedding asserts them).
    let (total, offset) = match pcfg.labels.as_ref() {
        Some(l) => {
            let max = (l.max_duration * SAMPLE_RATE) as i64 - 1;
            let total = (it.song_samples().max(1) as i64)
                .clamp((l.min_duration * SAMPLE_RATE).ceil() as i64, max.max(1));
            let last_start = (total - 1).min(max + 1 - sample_length);
            (total, offset.min(last_start).max(0))
        }
        None => (it.song_samples().max(1) as i64, offset),
    };
    lab.base(&meta, total, offset)
        .with_context(|| format!("labels of {} (artist `{}`)", it.rel, meta.artist))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unigram_bits_matches_hand_count() {
        // Histogram +1 smoothing over 4 bins: counts 1+2, 1+0, 1+0, 1+2 → p = 3/8, 1/8, 1/8, 3/8.
        let b = unigram_bits(&[0, 0, 3, 3], &[0, 1], 4);
        let want = (-(3.0f64 / 8.0).log2() - (1.0f64 / 8.0).log2()) / 2.0;
        assert!((b - want).abs() < 1e-12, "{b} vs {want}");
        // Uniform training codes: exactly log2(bins).
        let b = unigram_bits(&[0, 1, 2, 3], &[2, 2, 1], 4);
        assert!((b - 2.0).abs() < 1e-12);
    }
}
