//! Lyric alignment (official `jukebox/align.py` `get_alignment`): which lyric characters each
//! music token of the top level attends to.
//!
//! For every window of the song (official `get_starts` with the given hop), one teacher-forced
//! pass per item records the softmax weights of the prior's `alignment_layer` and keeps its
//! `alignment_head`: a cross-attention layer for 5b_lyrics (music queries × lyric encoder
//! states), a prime-attention layer for 1b_lyrics (of which only music queries × lyric keys are
//! kept). Each window is scattered into a (song tokens × (|full_tokens| + 1)) matrix at the
//! window's lyric indices; windows are written last to first so that earlier windows win where
//! they overlap. The padding column (index −1) and the token padding rows are dropped.

use super::{AttnKind, Prior, Record};
use crate::labels::{BaseLabel, Labeller};
use crate::prior::windows::get_starts;
use candle_core::{bail, DType, Device, Result, Tensor};

/// One item's alignment: `a[t][c]` is the attention weight of music token `t` on lyric token
/// `c` of the item's full token list.
pub type Alignment = Vec<Vec<f32>>;

use crate::error::into_candle as msg;

/// The prior's alignment (layer, head), checked against its layers.
pub fn alignment_layer_head(prior: &Prior) -> Result<(usize, usize)> {
    let Some((layer, head)) = prior.cfg.alignment else {
        bail!("this prior has no alignment_layer/alignment_head (it is not a lyrics prior)");
    };
    let Some(l) = prior.transformer.layers.get(layer) else {
        bail!(
            "alignment_layer {layer} is outside the prior's {} layers",
            prior.transformer.layers.len()
        );
    };
    if !matches!(l.kind, AttnKind::Prime | AttnKind::Cross) {
        bail!(
            "alignment_layer {layer} is a {:?} layer; it must be prime or cross attention",
            l.kind
        );
    }
    if head >= prior.cfg.heads {
        bail!(
            "alignment_head {head} is outside the prior's {} heads",
            prior.cfg.heads
        );
    }
    Ok((layer, head))
}

/// The alignment head's weights for one window: music `tokens` (N, n_ctx) under labels `y`
/// (N, y_dim) → (N, n_ctx, n_tokens) (official `z_forward(get_attn_weights=..)[:, head]`).
pub fn window_attention(prior: &Prior, tokens: &Tensor, y: &Tensor) -> Result<Tensor> {
    let (layer, head) = alignment_layer_head(prior)?;
    let cond = prior.conditioning(Some(y), None)?;
    let seq = prior.raw_sequence(tokens, &cond)?;
    let mut rec = Record::default();
    prior.forward_seq(&seq, &cond, Some(&mut rec), &[layer])?;
    let Some((_, w)) = rec.attn_weights.into_iter().find(|(l, _)| *l == layer) else {
        bail!("layer {layer} recorded no attention weights");
    };
    let w = w.narrow(1, head, 1)?.squeeze(1)?;
    let p = prior.lyric_prefix_len();
    let n_tokens = prior.n_lyric_tokens();
    let t = tokens.dim(1)?;
    // 1b: keep music queries × lyric keys (official `w[:, :, n_tokens:, :n_tokens]`).
    let w = if p > 0 {
        w.narrow(1, p, t)?.narrow(2, 0, p)?
    } else {
        w
    };
    if w.dims3()? != (tokens.dim(0)?, t, n_tokens) {
        bail!(
            "alignment weights have shape {:?}, expected ({}, {t}, {n_tokens})",
            w.dims(),
            tokens.dim(0)?
        );
    }
    w.to_dtype(DType::F32)
}

/// Official `get_alignment` for one item: its top-level `tokens` (the whole song so far), its
/// labels `base` (as `labeller` builds them for this prior) and the window hop in tokens
/// (official `hop_fraction[top] · n_ctx`). Returns `tokens.len()` rows of
/// `base.full_tokens.len()` columns.
pub fn get_alignment(
    prior: &Prior,
    labeller: &Labeller,
    base: &BaseLabel,
    tokens: &[i64],
    hop: usize,
) -> Result<Alignment> {
    alignment_layer_head(prior)?;
    let n_ctx = prior.cfg.n_ctx;
    if tokens.is_empty() {
        bail!("no tokens to align");
    }
    if hop == 0 || hop > n_ctx {
        bail!("alignment hop {hop} must lie in 1..={n_ctx} tokens");
    }
    if labeller.n_tokens != prior.n_lyric_tokens() {
        bail!(
            "the labeller has {} lyric tokens, the prior {}",
            labeller.n_tokens,
            prior.n_lyric_tokens()
        );
    }
    // Shorter than one window: pad with code 0, drop the padded rows at the end (official).
    let real = tokens.len();
    let mut z = tokens.to_vec();
    if z.len() < n_ctx {
        z.resize(n_ctx, 0);
    }
    let total = z.len();
    let n_full = base.full_tokens.len();
    let starts = get_starts(total, n_ctx, hop);
    let dev = prior.device().clone();
    let mut hops: Vec<(usize, Vec<Vec<f32>>, Vec<i64>)> = Vec::with_capacity(starts.len());
    for &start in &starts {
        let wl = labeller.get_y(base, start as i64).map_err(msg)?;
        if wl.lyric_indices.len() != prior.n_lyric_tokens() {
            bail!(
                "window at token {start}: {} lyric indices, expected {}",
                wl.lyric_indices.len(),
                prior.n_lyric_tokens()
            );
        }
        let y = Tensor::from_vec(wl.y, (1, labeller.y_len()), &dev)?;
        let tk = Tensor::from_slice(&z[start..start + n_ctx], (1, n_ctx), &dev)?;
        let w = window_attention(prior, &tk, &y)?
            .squeeze(0)?
            .to_device(&Device::Cpu)?
            .to_vec2::<f32>()?;
        hops.push((start, w, wl.lyric_indices));
    }
    // Column n_full is the pad column (numpy index −1), dropped below.
    let mut a = vec![vec![0f32; n_full + 1]; total];
    for (start, w, idx) in hops.iter().rev() {
        for (r, wrow) in w.iter().enumerate() {
            let row = &mut a[start + r];
            for (&i, &v) in idx.iter().zip(wrow) {
                let col = match i {
                    -1 => n_full,
                    i if i >= 0 && (i as usize) < n_full => i as usize,
                    i => bail!(
                        "lyric index {i} of the window at token {start} is outside the {n_full} lyric tokens"
                    ),
                };
                row[col] = v;
            }
        }
    }
    a.truncate(real);
    for row in &mut a {
        row.truncate(n_full);
    }
    Ok(a)
}

/// [`get_alignment`] for each item of a batch (`tokens[i]`, `bases[i]`), one item at a time as
/// officially (memory is that of one window of one item).
pub fn get_alignments(
    prior: &Prior,
    labeller: &Labeller,
    bases: &[BaseLabel],
    tokens: &[Vec<i64>],
    hop: usize,
) -> Result<Vec<Alignment>> {
    if bases.len() != tokens.len() {
        bail!("{} label rows for {} token rows", bases.len(), tokens.len());
    }
    bases
        .iter()
        .zip(tokens)
        .enumerate()
        .map(|(i, (b, t))| {
            get_alignment(prior, labeller, b, t, hop)
                .map_err(|e| msg(anyhow::Error::new(e).context(format!("alignment of item {i}"))))
        })
        .collect()
}
