//! Prefill attention on the CPU: each query of a chunk reads only the keys its pattern allows
//! (a block, the previous block, one column of blocks, or everything before it) straight from
//! the KV cache and the chunk, instead of scoring every cached key and masking most of them.
//!
//! For a transpose layer at position p that is p/block_ctx keys instead of p; for block layers
//! at most one block. Softmax over the allowed keys equals the masked softmax of
//! [`super::attention::attend_split`] (a masked score is −1e9 and its exponential is exactly
//! 0), up to the order of the sums.

use super::attention::{score_scale, AttnGeom, AttnKind};
use crate::ops::fused;
use crate::ops::gemv::{self, WSlice};
use candle_core::{Layout, Result, StorageRef, Tensor};
use rayon::prelude::*;

/// Keys read by a query at `p`: (first, end, stride) of positions, or None (no keys: the
/// previous-block layer in block 0, whose output is exactly zero; prime and cross layers are
/// not handled here).
pub(crate) fn key_range(kind: AttnKind, p: usize, bc: usize) -> Option<(usize, usize, usize)> {
    match kind {
        AttnKind::Dense => Some((0, p + 1, 1)),
        AttnKind::Block => Some((p / bc * bc, p + 1, 1)),
        AttnKind::PrevBlock => (p >= bc).then(|| ((p / bc - 1) * bc, p / bc * bc, 1)),
        AttnKind::Transpose => Some((p % bc, p + 1, bc)),
        AttnKind::Prime | AttnKind::Cross => None,
    }
}

/// `softmax(q·kᵀ · scale) · v` over the keys `kp` of `keys` (positions), each read by `key`
/// and `val`; the result is written to `out`.
pub(crate) fn attend_one<'a>(
    q: &[f32],
    keys: impl Iterator<Item = usize> + Clone,
    key: impl Fn(usize) -> &'a [f32],
    val: impl Fn(usize) -> &'a [f32],
    scale: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    // Dot products and the normaliser sum in 16 lanes, and the exponential is
    // `fused::exp`: serial f32 sums and libm's scalar `expf` do not vectorise.
    scores.clear();
    for kp in keys.clone() {
        scores.push(fused::dot(q, key(kp)) * scale);
    }
    let max = fused::row_max(scores);
    for v in scores.iter_mut() {
        *v = fused::exp(*v - max);
    }
    let sum = fused::sum(scores);
    out.fill(0.0);
    for (kp, &e) in keys.zip(scores.iter()) {
        let pw = e / sum;
        for (o, v) in out.iter_mut().zip(val(kp)) {
            *o += pw * v;
        }
    }
}

/// Row of position `kp`: from the cache before `t0` (slot kp mod cap), else from the chunk.
#[allow(clippy::too_many_arguments)]
#[inline]
fn pos_row<'a>(
    cache: &'a [f32],
    chunk: &'a [f32],
    kp: usize,
    t0: usize,
    old: usize,
    new: usize,
    cap: usize,
    d: usize,
) -> &'a [f32] {
    let (buf, off) = if kp < t0 {
        (cache, old + (kp % cap) * d)
    } else {
        (chunk, new + (kp - t0) * d)
    };
    &buf[off..off + d]
}

fn f32_slice<'a>(g: &'a (StorageRef<'a>, &'a Layout)) -> Option<&'a [f32]> {
    match gemv::slice_of(&g.0, g.1)? {
        WSlice::F32(v) => Some(v),
        _ => None,
    }
}

/// Queries t0..t0+c (`qh` (B, H, c, d)) against the cache (`k`, `v` (B, H, cap, d), position
/// p in slot p mod cap) and the chunk's own keys and values (`kh`, `vh` (B, H, c, d)).
/// Returns None where this path does not apply (not CPU f32, prime/cross layers).
#[allow(clippy::too_many_arguments)]
pub(crate) fn chunk_attend_cpu(
    kind: AttnKind,
    g: &AttnGeom,
    t0: usize,
    k: &Tensor,
    v: &Tensor,
    qh: &Tensor,
    kh: &Tensor,
    vh: &Tensor,
) -> Result<Option<Tensor>> {
    // The KV cache is inference only: no gradient flows through it, so tracked inputs (a
    // model built from training variables) take this path too.
    if matches!(kind, AttnKind::Prime | AttnKind::Cross) || !qh.device().is_cpu() {
        return Ok(None);
    }
    let (b, h, c, d) = qh.dims4()?;
    let cap = k.dim(2)?;
    let (qh, kh, vh) = (qh.contiguous()?, kh.contiguous()?, vh.contiguous()?);
    let guards: Vec<(StorageRef, &Layout)> = [k, v, &qh, &kh, &vh]
        .iter()
        .map(|t| t.storage_and_layout())
        .collect();
    let Some(s) = guards
        .iter()
        .map(f32_slice)
        .collect::<Option<Vec<&[f32]>>>()
    else {
        return Ok(None);
    };
    let (kc, vc, q, kn, vn) = (s[0], s[1], s[2], s[3], s[4]);
    let scale = score_scale(d) as f32;
    let bc = g.block_ctx;
    let mut out = vec![0f32; b * h * c * d];
    out.par_chunks_mut(c * d)
        .enumerate()
        .for_each_init(Vec::new, |scores, (bh, o)| {
            let (old, new) = (bh * cap * d, bh * c * d);
            for i in 0..c {
                let p = t0 + i;
                let oi = &mut o[i * d..(i + 1) * d];
                let Some((k0, k1, stride)) = key_range(kind, p, bc) else {
                    oi.fill(0.0);
                    continue;
                };
                let key = |kp: usize| pos_row(kc, kn, kp, t0, old, new, cap, d);
                let val = |kp: usize| pos_row(vc, vn, kp, t0, old, new, cap, d);
                let qi = &q[new + i * d..new + (i + 1) * d];
                attend_one(qi, (k0..k1).step_by(stride), key, val, scale, scores, oi);
            }
        });
    drop(guards);
    Tensor::from_vec(out, (b, h, c, d), qh.device()).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prior::attention::allowed;

    /// The keys a query reads here are exactly those the masks of the teacher-forced path
    /// allow (`attention::allowed`), for every pattern the prefill and the persistent step take.
    #[test]
    fn key_range_is_the_allowed_set() {
        for (n_ctx, blocks) in [(24, Some(4)), (32, Some(8)), (12, None), (30, Some(5))] {
            let g = AttnGeom::new(n_ctx, blocks, None).unwrap();
            for kind in [
                AttnKind::Dense,
                AttnKind::Block,
                AttnKind::PrevBlock,
                AttnKind::Transpose,
            ] {
                for p in 0..n_ctx {
                    let want: Vec<usize> =
                        (0..n_ctx).filter(|&k| allowed(kind, &g, p, k)).collect();
                    let got: Vec<usize> = match key_range(kind, p, g.block_ctx) {
                        Some((a, b, s)) => (a..b).step_by(s).collect(),
                        None => vec![],
                    };
                    assert_eq!(got, want, "{kind:?} n_ctx {n_ctx} blocks {blocks:?} p {p}");
                }
            }
        }
        assert_eq!(key_range(AttnKind::Cross, 3, 4), None);
        assert_eq!(key_range(AttnKind::Prime, 3, 4), None);
    }
}
