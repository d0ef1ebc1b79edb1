//! Attention types (official `attn_func`), their masks as pure functions, and the
//! teacher-forced (whole-sequence) attention used by training and parity.
//!
//! The factorised types are computed the way the official code does (reshape into blocks,
//! then masked dense attention per block), so training on 8192-token windows never builds an
//! L×L score matrix for them. The brute-force reference in the tests uses [`allowed`].

use crate::ops;
use candle_core::{bail, DType, Result, Tensor, D};

/// One attention layer's receptive field (official `attn_func` ids in the comments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttnKind {
    /// 0: every earlier position.
    Dense,
    /// 1: earlier positions of the same block.
    Block,
    /// 2: earlier positions in the same column (j ≡ p mod block_ctx).
    Transpose,
    /// 3: the whole previous block; zero output in block 0.
    PrevBlock,
    /// 6: cross-attention to the lyric encoder states.
    Cross,
    /// 7: causal, and only keys before the prime boundary P.
    Prime,
}

impl AttnKind {
    /// The official numeric id.
    pub fn id(self) -> usize {
        match self {
            Self::Dense => 0,
            Self::Block => 1,
            Self::Transpose => 2,
            Self::PrevBlock => 3,
            Self::Cross => 6,
            Self::Prime => 7,
        }
    }

    pub fn from_id(id: usize) -> Result<Self> {
        Ok(match id {
            0 => Self::Dense,
            1 => Self::Block,
            2 => Self::Transpose,
            3 => Self::PrevBlock,
            6 => Self::Cross,
            7 => Self::Prime,
            4 | 5 => {
                bail!("attention type {id} (summary) is not supported: no released model uses it")
            }
            _ => bail!("unknown attention type {id}"),
        })
    }
}

/// The attention type of layer `d` under the official `attn_order` (transformer.py).
/// Orders 3, 4 and 5 use summary attention, which is out of scope.
pub fn attn_kind(attn_order: usize, d: usize) -> Result<AttnKind> {
    let id = match attn_order {
        0 => 0,
        1 => [1, 2][d % 2],
        2 => [1, 2, 3][d % 3],
        6 => [1, 2, 3, 6][d % 4],
        7 => {
            if d % 16 == 15 {
                6
            } else {
                [1, 2, 3][(d % 16) % 3]
            }
        }
        8 => [1, 2, 3, 1, 2, 3, 1, 2, 3, 6][d % 10],
        9 => [1, 2, 3, 0][d % 4],
        10 => {
            let i = d % 79;
            if i < 9 {
                [1, 2, 3][i % 3]
            } else {
                [1, 2, 3, 1, 2, 3, 1, 2, 3, 6][(i - 9) % 10]
            }
        }
        11 => {
            if d % 16 == 15 {
                [6, 6, 0][d % 3]
            } else {
                [1, 2, 3][d % 3]
            }
        }
        12 => {
            if d % 16 == 15 {
                [7, 7, 0][d % 3]
            } else {
                [1, 2, 3][d % 3]
            }
        }
        3..=5 => bail!("attn_order {attn_order} uses summary attention, which is not supported"),
        _ => bail!("unknown attn_order {attn_order}"),
    };
    AttnKind::from_id(id)
}

/// The geometry a layer needs: block length and prime boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttnGeom {
    /// Transformer sequence length (music + merged lyrics).
    pub n_ctx: usize,
    /// `n_ctx / blocks` (n_ctx when blocks is None).
    pub block_ctx: usize,
    /// Keys visible to prime attention: (⌊prime_len/blocks⌋ + 1)·blocks.
    pub prime_p: usize,
}

impl AttnGeom {
    pub fn new(n_ctx: usize, blocks: Option<usize>, prime_len: Option<usize>) -> Result<Self> {
        let block_ctx = match blocks {
            Some(b) if b > 0 && n_ctx.is_multiple_of(b) => n_ctx / b,
            Some(b) => bail!("sequence length {n_ctx} is not divisible by blocks {b}"),
            None => n_ctx,
        };
        let prime_p = match (prime_len, blocks) {
            (Some(pl), Some(b)) => (pl / b + 1) * b,
            (Some(pl), None) => pl,
            (None, _) => 0,
        };
        Ok(Self {
            n_ctx,
            block_ctx,
            prime_p,
        })
    }
}

/// May query position `q` attend to key position `k` (self-attention kinds)? The brute-force
/// definition every implementation in this module is tested against. Prev-block queries in
/// block 0 have no keys at all (their output is exactly zero).
pub fn allowed(kind: AttnKind, g: &AttnGeom, q: usize, k: usize) -> bool {
    let bc = g.block_ctx;
    match kind {
        AttnKind::Dense => k <= q,
        AttnKind::Block => k <= q && k / bc == q / bc,
        AttnKind::Transpose => k <= q && k % bc == q % bc,
        AttnKind::PrevBlock => q / bc >= 1 && k / bc == q / bc - 1,
        AttnKind::Prime => k <= q && k < g.prime_p,
        AttnKind::Cross => true,
    }
}

/// Dense 0/1 mask (f32, `[q_len, k_len]`) over absolute positions.
pub fn mask_tensor(
    kind: AttnKind,
    g: &AttnGeom,
    q_pos: &[usize],
    k_pos: &[usize],
    dev: &candle_core::Device,
) -> Result<Tensor> {
    let mut m = Vec::with_capacity(q_pos.len() * k_pos.len());
    for &q in q_pos {
        for &k in k_pos {
            m.push(if allowed(kind, g, q, k) { 1f32 } else { 0f32 });
        }
    }
    Tensor::from_vec(m, (q_pos.len(), k_pos.len()), dev)
}

/// Causal 0/1 mask `[q_len, k_len]` with the official `tril(offset)`, offset = k_len − q_len.
pub fn causal_mask(q_len: usize, k_len: usize, dev: &candle_core::Device) -> Result<Tensor> {
    let off = k_len as isize - q_len as isize;
    let mut m = Vec::with_capacity(q_len * k_len);
    for i in 0..q_len as isize {
        for j in 0..k_len as isize {
            m.push(if j <= i + off { 1f32 } else { 0f32 });
        }
    }
    Tensor::from_vec(m, (q_len, k_len), dev)
}

/// `1/√d_h` in f64, as the official eval path (`scale*scale` of `d^{-1/4}`).
pub fn score_scale(head_dim: usize) -> f64 {
    let s = 1.0 / (head_dim as f64).sqrt().sqrt();
    s * s
}

/// (B, L, S) -> (B, H, L, S/H), head-major channel split.
pub fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, l, s) = x.dims3()?;
    x.reshape((b, l, heads, s / heads))?
        .transpose(1, 2)?
        .contiguous()
}

/// (B, H, L, d) -> (B, L, H·d).
pub fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (b, h, l, d) = x.dims4()?;
    x.transpose(1, 2)?.contiguous()?.reshape((b, l, h * d))
}

/// Multi-head softmax attention. `q` (B, Lq, S), `k`/`v` (B, Lk, S); `mask` (Lq, Lk) of 0/1.
/// Returns (output (B, Lq, S), weights (B, H, Lq, Lk)).
pub fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    heads: usize,
) -> Result<(Tensor, Tensor)> {
    let (o, p) = attend_split(
        &split_heads(q, heads)?,
        &split_heads(k, heads)?,
        &split_heads(v, heads)?,
        mask,
    )?;
    Ok((merge_heads(&o)?, p))
}

/// Attention on heads already split: `qh` (B, H, Lq, d), `kh`/`vh` (B, H, Lk, d). Masked scores
/// become exactly −1e9 via the official `w·m − 1e9·(1 − m)`; softmax in f32. Returns
/// (output (B, H, Lq, d), weights (B, H, Lq, Lk)).
pub fn attend_split(
    qh: &Tensor,
    kh: &Tensor,
    vh: &Tensor,
    mask: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let d = qh.dim(D::Minus1)?;
    // cuBLAS needs unit-stride rows: the KV cache's keys (a narrowed, transposed view) are
    // copied on a GPU; the CPU matmul takes them as they are.
    let (qh, kt, vh) = if qh.device().is_cpu() {
        (qh.clone(), kh.t()?, vh.clone())
    } else {
        (qh.contiguous()?, kh.t()?.contiguous()?, vh.contiguous()?)
    };
    let w = (qh.matmul(&kt)? * score_scale(d))?;
    let w = match mask {
        Some(m) => {
            let m = m.to_dtype(w.dtype())?;
            let keep = w.broadcast_mul(&m)?;
            let neg = ((m.ones_like()? - &m)? * -1e9)?;
            keep.broadcast_add(&neg)?
        }
        None => w,
    };
    let p = ops::softmax_last_dim(&w.to_dtype(DType::F32)?)?.to_dtype(vh.dtype())?;
    let o = p.matmul(&vh)?;
    Ok((o, p))
}

/// Training on the CPU: [`attend`] with a causal mask (or none) as one fused op with its own
/// backward ([`ops::fused_train::AttnOp`]); `None` where it does not apply.
fn attend_fused(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    causal: bool,
    heads: usize,
) -> Result<Option<Tensor>> {
    let tracked = q.track_op() || k.track_op() || v.track_op();
    if !tracked || !ops::train_fast() || !ops::fused_train::applicable(&[q, k, v]) {
        return Ok(None);
    }
    let (b, l, s) = q.dims3()?;
    if k.dims3()? != (b, l, s) || v.dims3()? != (b, l, s) || s % heads != 0 {
        return Ok(None);
    }
    let d = s / heads;
    let r = |x: &Tensor| split_heads(x, heads)?.reshape((b * heads, l, d));
    let op = ops::fused_train::AttnOp {
        scale: score_scale(d) as f32,
        causal,
    };
    let o = r(q)?.apply_op3(&r(k)?, &r(v)?, op)?;
    merge_heads(&o.reshape((b, heads, l, d))?).map(Some)
}

/// [`attend`] with a causal mask (`causal`) or none, through the fused op where it applies.
fn attend_masked(q: &Tensor, k: &Tensor, v: &Tensor, causal: bool, heads: usize) -> Result<Tensor> {
    if let Some(o) = attend_fused(q, k, v, causal, heads)? {
        return Ok(o);
    }
    let m = if causal {
        Some(causal_mask(q.dim(1)?, k.dim(1)?, q.device())?)
    } else {
        None
    };
    Ok(attend(q, k, v, m.as_ref(), heads)?.0)
}

fn pad_to_blocks(x: &Tensor, bc: usize) -> Result<Tensor> {
    let (b, l, s) = x.dims3()?;
    let lp = l.div_ceil(bc) * bc;
    if lp == l {
        return Ok(x.clone());
    }
    let z = Tensor::zeros((b, lp - l, s), x.dtype(), x.device())?;
    Tensor::cat(&[x, &z], 1)
}

/// Whole-sequence self-attention for positions 0..L (teacher forcing). `q`, `k`, `v` are
/// (B, L, S). Returns the output (B, L, S) and, when `want_weights`, the weights over all key
/// positions (B, H, L, Lk) for dense/prime kinds (the only ones recorded officially).
pub fn self_attention_full(
    kind: AttnKind,
    g: &AttnGeom,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
) -> Result<(Tensor, Option<Tensor>)> {
    let (b, l, s) = q.dims3()?;
    let dev = q.device();
    let bc = g.block_ctx;
    match kind {
        AttnKind::Dense => {
            let m = causal_mask(l, l, dev)?;
            let (o, w) = attend(q, k, v, Some(&m), heads)?;
            Ok((o, Some(w)))
        }
        AttnKind::Prime => {
            // Official: keys cut to the first P, then `tril(0)`, i.e. j <= p and j < P.
            let kl = l.min(g.prime_p);
            let (k, v) = (k.narrow(1, 0, kl)?, v.narrow(1, 0, kl)?);
            let pos: Vec<usize> = (0..l).collect();
            let m = mask_tensor(AttnKind::Prime, g, &pos, &pos[..kl], dev)?;
            let (o, w) = attend(q, &k, &v, Some(&m), heads)?;
            Ok((o, Some(w)))
        }
        AttnKind::Block => {
            let (q, k, v) = (
                pad_to_blocks(q, bc)?,
                pad_to_blocks(k, bc)?,
                pad_to_blocks(v, bc)?,
            );
            let nb = q.dim(1)? / bc;
            let r = |x: &Tensor| x.reshape((b * nb, bc, s));
            let o = attend_masked(&r(&q)?, &r(&k)?, &r(&v)?, true, heads)?;
            Ok((o.reshape((b, nb * bc, s))?.narrow(1, 0, l)?, None))
        }
        AttnKind::Transpose => {
            let (q, k, v) = (
                pad_to_blocks(q, bc)?,
                pad_to_blocks(k, bc)?,
                pad_to_blocks(v, bc)?,
            );
            let nb = q.dim(1)? / bc;
            let r = |x: &Tensor| -> Result<Tensor> {
                x.reshape((b, nb, bc, s))?
                    .transpose(1, 2)?
                    .contiguous()?
                    .reshape((b * bc, nb, s))
            };
            let o = attend_masked(&r(&q)?, &r(&k)?, &r(&v)?, true, heads)?;
            let o = o
                .reshape((b, bc, nb, s))?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b, nb * bc, s))?;
            Ok((o.narrow(1, 0, l)?, None))
        }
        AttnKind::PrevBlock => {
            let (q, k, v) = (
                pad_to_blocks(q, bc)?,
                pad_to_blocks(k, bc)?,
                pad_to_blocks(v, bc)?,
            );
            let nb = q.dim(1)? / bc;
            // Keys/values of block i are those of block i-1; block 0 sees zeros (output 0).
            let shift = |x: &Tensor| -> Result<Tensor> {
                let x = x.reshape((b, nb, bc, s))?;
                let z = Tensor::zeros((b, 1, bc, s), x.dtype(), x.device())?;
                let x = Tensor::cat(&[&z, &x.narrow(1, 0, nb - 1)?], 1)?;
                x.reshape((b * nb, bc, s))
            };
            let o = attend_masked(
                &q.reshape((b * nb, bc, s))?,
                &shift(&k)?,
                &shift(&v)?,
                false,
                heads,
            )?;
            Ok((o.reshape((b, nb * bc, s))?.narrow(1, 0, l)?, None))
        }
        AttnKind::Cross => bail!("cross-attention needs encoder keys; use cross_attention"),
    }
}

/// Cross-attention: all encoder positions, no mask.
pub fn cross_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
) -> Result<(Tensor, Tensor)> {
    attend(q, k, v, None, heads)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn brute(
        kind: AttnKind,
        g: &AttnGeom,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        heads: usize,
    ) -> Tensor {
        let l = q.dim(1).unwrap();
        let pos: Vec<usize> = (0..l).collect();
        let m = mask_tensor(kind, g, &pos, &pos, q.device()).unwrap();
        let (o, _) = attend(q, k, v, Some(&m), heads).unwrap();
        // Rows with no allowed key (prev-block, block 0) are exactly zero officially.
        let any: Vec<f32> = pos
            .iter()
            .map(|&p| {
                if pos.iter().any(|&j| allowed(kind, g, p, j)) {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let any = Tensor::from_vec(any, (1, l, 1), q.device()).unwrap();
        o.broadcast_mul(&any).unwrap()
    }

    fn rand(shape: (usize, usize, usize), seed: u64) -> Tensor {
        let n = shape.0 * shape.1 * shape.2;
        let v: Vec<f32> = (0..n)
            .map(|i| (crate::util::uniform(seed, 0, 0, i as u64) * 2.0 - 1.0) as f32)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn masks_match_definitions() {
        let g = AttnGeom::new(12, Some(3), Some(5)).unwrap();
        assert_eq!(g.block_ctx, 4);
        assert_eq!(g.prime_p, 6);
        // block: query 6 sees 4..=6
        let keys: Vec<usize> = (0..12)
            .filter(|&k| allowed(AttnKind::Block, &g, 6, k))
            .collect();
        assert_eq!(keys, vec![4, 5, 6]);
        let keys: Vec<usize> = (0..12)
            .filter(|&k| allowed(AttnKind::Transpose, &g, 9, k))
            .collect();
        assert_eq!(keys, vec![1, 5, 9]);
        let keys: Vec<usize> = (0..12)
            .filter(|&k| allowed(AttnKind::PrevBlock, &g, 9, k))
            .collect();
        assert_eq!(keys, vec![4, 5, 6, 7]);
        assert!((0..12).all(|k| !allowed(AttnKind::PrevBlock, &g, 3, k)));
        let keys: Vec<usize> = (0..12)
            .filter(|&k| allowed(AttnKind::Prime, &g, 10, k))
            .collect();
        assert_eq!(keys, vec![0, 1, 2, 3, 4, 5]);
        let keys: Vec<usize> = (0..12)
            .filter(|&k| allowed(AttnKind::Prime, &g, 3, k))
            .collect();
        assert_eq!(keys, vec![0, 1, 2, 3]);
        let keys: Vec<usize> = (0..12)
            .filter(|&k| allowed(AttnKind::Dense, &g, 2, k))
            .collect();
        assert_eq!(keys, vec![0, 1, 2]);
        // 1b: prime_len 384, blocks 64 -> P = 448
        assert_eq!(
            AttnGeom::new(6528, Some(64), Some(384)).unwrap().prime_p,
            448
        );
        assert_eq!(
            AttnGeom::new(6528, Some(64), Some(384)).unwrap().block_ctx,
            102
        );
    }

    #[test]
    fn layer_patterns() {
        let p: Vec<usize> = (0..48).map(|d| attn_kind(12, d).unwrap().id()).collect();
        let want = [
            1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 7, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2,
            3, 1, 7, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 0,
        ];
        assert_eq!(p, want);
        let cross: Vec<usize> = (0..79)
            .filter(|&d| attn_kind(10, d).unwrap() == AttnKind::Cross)
            .collect();
        assert_eq!(cross, vec![18, 28, 38, 48, 58, 68, 78]);
        assert_eq!(attn_kind(2, 5).unwrap(), AttnKind::PrevBlock);
        assert_eq!(attn_kind(0, 5).unwrap(), AttnKind::Dense);
        assert!(attn_kind(3, 0).is_err());
        assert!(attn_kind(99, 0).is_err());
    }

    #[test]
    fn factorised_attention_equals_brute_force_masks() {
        // (n_ctx, blocks, L, heads); L below n_ctx and not a multiple of block_ctx too (padding path).
        for &(n_ctx, blocks, l, heads) in &[
            (12usize, 3usize, 12usize, 2usize),
            (10, 5, 10, 1),
            (16, 4, 16, 2),
            (12, 3, 10, 2),
        ] {
            let g = AttnGeom::new(n_ctx, Some(blocks), Some(5)).unwrap();
            let q = rand((2, l, 8), 1);
            let k = rand((2, l, 8), 2);
            let v = rand((2, l, 8), 3);
            for kind in [
                AttnKind::Dense,
                AttnKind::Block,
                AttnKind::Transpose,
                AttnKind::PrevBlock,
                AttnKind::Prime,
            ] {
                let (got, _) = self_attention_full(kind, &g, &q, &k, &v, heads).unwrap();
                let want = brute(kind, &g, &q, &k, &v, heads);
                let err = (got - &want)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(err < 1e-6, "{kind:?} l={l} blocks={blocks}: err {err}");
            }
        }
    }

    #[test]
    fn prev_block_first_block_is_exactly_zero() {
        let g = AttnGeom::new(8, Some(2), None).unwrap();
        let q = rand((1, 8, 4), 5);
        let (o, _) = self_attention_full(AttnKind::PrevBlock, &g, &q, &q, &q, 1).unwrap();
        let first: Vec<f32> = o
            .narrow(1, 0, 4)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(first.iter().all(|&x| x == 0.0));
        let rest: Vec<f32> = o
            .narrow(1, 4, 4)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(rest.iter().any(|&x| x != 0.0));
    }
}
