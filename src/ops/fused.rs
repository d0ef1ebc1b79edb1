//! Single-pass CPU kernels for the small per-token elementwise work of KV-cached sampling
//! (LayerNorm, quick-GELU), where the composed candle ops cost one allocation and one
//! dispatch each (about a dozen per LayerNorm). Inference only: each returns `Ok(None)`
//! unless every operand is on the CPU, `x` is f32 and nothing is tracked for gradients.

use candle_core::{DType, Device, Result, Tensor};
use rayon::prelude::*;

fn plain_f32(x: &Tensor) -> bool {
    matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 && !x.track_op()
}

/// LayerNorm over the last dimension, as [`crate::ops::layer_norm`] computes it (mean, then
/// the mean of squared deviations, `(x − μ) / sqrt(σ² + eps) · w + b`), in f32.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Option<Tensor>> {
    if !plain_f32(x) || w.track_op() || b.track_op() || !matches!(w.device(), Device::Cpu) {
        return Ok(None);
    }
    let n = match x.dims().last() {
        Some(&n) if n > 0 => n,
        _ => return Ok(None),
    };
    let wv: Vec<f32> = w.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let bv: Vec<f32> = b.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    if wv.len() != n || bv.len() != n {
        return Ok(None);
    }
    let mut y: Vec<f32> = x.flatten_all()?.to_vec1()?;
    layer_norm_par(&mut y, &wv, &bv, eps as f32);
    Tensor::from_vec(y, x.dims(), &Device::Cpu).map(Some)
}

/// [`layer_norm_rows`] with the rows in parallel chunks (a scoring pass normalises
/// thousands): each row's arithmetic is the same, so the bits do not depend on the split.
pub(crate) fn layer_norm_par(y: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let n = w.len();
    y.par_chunks_mut(n * rows_per_task(n))
        .for_each(|c| layer_norm_rows(c, w, b, eps));
}

/// Rows of `n` elements per parallel task: about 64 K elements, at least one row.
fn rows_per_task(n: usize) -> usize {
    (PAR_CHUNK / n).max(1)
}

const PAR_CHUNK: usize = 1 << 16;

/// LayerNorm of every row (of `w.len()` elements) of `y`, in place: the arithmetic of
/// [`layer_norm`], shared with the persistent sampling step. Sums run in 16 lanes (a serial
/// f32 chain does not vectorise; the lanes made a scoring pass's LayerNorms ~8× faster), so
/// the bits depend only on the row length, never on the split or the thread count.
pub(crate) fn layer_norm_rows(y: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let n = w.len();
    let inv_n = 1.0 / n as f32;
    for row in y.chunks_exact_mut(n) {
        let mean = lane_sum(row, |v| v) * inv_n;
        let var = lane_sum(row, |v| (v - mean) * (v - mean)) * inv_n;
        let r = 1.0 / (var + eps).sqrt();
        for ((v, &wi), &bi) in row.iter_mut().zip(w).zip(b) {
            *v = (*v - mean) * r * wi + bi;
        }
    }
}

/// `−log softmax(row)[t]` in nats: `log Σ exp(x − max) + max − x_t`.
#[inline]
pub(crate) fn row_nll(row: &[f32], t: usize) -> f32 {
    let max = row_max(row);
    lane_sum(row, |a| exp(a - max)).ln() + max - row[t]
}

/// `e^x` in f32 without a libm call, so that loops over it vectorise: glibc's `expf` is one
/// call per element, and the softmaxes, cross-entropy and GELU of a prior training step spent
/// 6.6 % of it there (`perf`, bench/RESULTS.md). Cody–Waite reduction by ln 2 (rounding by
/// the 1.5·2²³ trick, which needs no rounding instruction) and the Cephes `expf` polynomial:
/// within 2 ulp of the true value (`tests`). Below −87.34 (where f32 turns subnormal) the
/// result is 0, above 88 it saturates at e⁸⁸ ≈ 1.65e38 instead of growing to infinity; NaN
/// stays NaN. Pure IEEE arithmetic without fused multiply-adds, so every vector width and
/// the scalar loop give the same bits.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    const LO: f32 = -87.336_54;
    let xc = x.clamp(LO, 88.0);
    let t = xc * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = xc - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = (((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 1.666_666_5e-1)
        * r
        + 0.5)
        * (r * r)
        + r
        + 1.0;
    let e = (t.to_bits() as i32 - MAGIC.to_bits() as i32 + 127) << 23;
    let y = p * f32::from_bits(e as u32);
    if x < LO {
        0.0
    } else {
        y
    }
}

pub(crate) fn row_max(row: &[f32]) -> f32 {
    row.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

/// `Σ v` in 16 lanes ([`lane_sum`]).
pub(crate) fn sum(v: &[f32]) -> f32 {
    lane_sum(v, |x| x)
}

/// `Σ a·b` in 16 lanes ([`lane_sum`]'s order).
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    const L: usize = 16;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; L];
    let (mut ca, mut cb) = (a.chunks_exact(L), b.chunks_exact(L));
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..L {
            acc[i] += x[i] * y[i];
        }
    }
    for ((a, &x), &y) in acc.iter_mut().zip(ca.remainder()).zip(cb.remainder()) {
        *a += x * y;
    }
    fold_lanes(acc)
}

/// The 16 lanes added in a fixed tree.
#[inline(always)]
fn fold_lanes(mut acc: [f32; 16]) -> f32 {
    let mut w = 16;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] += acc[i + w];
        }
    }
    acc[0]
}

/// `Σ f(x)` over `x` in 16 interleaved lanes, then the lanes in a fixed tree.
#[inline(always)]
pub(crate) fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    const L: usize = 16;
    let mut acc = [0f32; L];
    let mut chunks = x.chunks_exact(L);
    for c in &mut chunks {
        for i in 0..L {
            acc[i] += f(c[i]);
        }
    }
    for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
        *a += f(v);
    }
    fold_lanes(acc)
}

/// Negative log-likelihood in bits of each row of `logits` (rows × `v`, contiguous, CPU f32,
/// untracked) at its target: `(log Σ exp(x − max) + max − x_t) / ln 2`, rows in parallel.
/// `Ok(None)` where it does not apply (the caller composes candle ops instead).
pub fn nll_bits(logits: &Tensor, targets: &Tensor) -> Result<Option<Tensor>> {
    if !plain_f32(logits) || targets.track_op() {
        return Ok(None);
    }
    let v = match logits.dims().last() {
        Some(&v) if v > 0 => v,
        _ => return Ok(None),
    };
    let t: Vec<u32> = targets.flatten_all()?.to_dtype(DType::U32)?.to_vec1()?;
    let out = super::custom::with_data(logits, |x| {
        if x.len() != t.len() * v {
            candle_core::bail!("nll_bits: {} targets for {} rows", t.len(), x.len() / v);
        }
        if let Some(&bad) = t.iter().find(|&&i| i as usize >= v) {
            candle_core::bail!("nll_bits: target {bad} is outside 0..{v}");
        }
        let mut out = vec![0f32; t.len()];
        let rows = rows_per_task(v);
        out.par_chunks_mut(rows)
            .zip(x.par_chunks(rows * v))
            .zip(t.par_chunks(rows))
            .for_each(|((o, x), t)| {
                for ((o, row), &ti) in o.iter_mut().zip(x.chunks_exact(v)).zip(t) {
                    *o = row_nll(row, ti as usize) / std::f32::consts::LN_2;
                }
            });
        Ok(out)
    })?;
    Tensor::from_vec(out, targets.dims(), &Device::Cpu).map(Some)
}

/// `z · σ(1.702 z)` of one value (see [`quick_gelu`]), through [`exp`] so that loops over it
/// vectorise (libm's scalar `expf` was a tenth of a bf16 prefill).
#[inline(always)]
pub(crate) fn quick_gelu_f32(v: f32) -> f32 {
    v * (1.0 / (1.0 + exp(-1.702 * v)))
}

/// `z · σ(1.702 z)` elementwise.
pub fn quick_gelu(x: &Tensor) -> Result<Option<Tensor>> {
    if !plain_f32(x) {
        return Ok(None);
    }
    let mut y: Vec<f32> = x.flatten_all()?.to_vec1()?;
    quick_gelu_par(&mut y);
    Tensor::from_vec(y, x.dims(), &Device::Cpu).map(Some)
}

/// [`quick_gelu_f32`] of every element, in place, in parallel chunks.
pub(crate) fn quick_gelu_par(y: &mut [f32]) {
    y.par_chunks_mut(PAR_CHUNK).for_each(|c| {
        for v in c {
            *v = quick_gelu_f32(*v);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ops::test_util::{max_err, rand_scaled as rand};

    /// [`exp`] within 2 ulp of the f64 exponential over the whole normal range (a dense
    /// sweep plus the reduction's boundaries), 0 below it, saturated above 88, NaN for NaN.
    #[test]
    fn ops_fused_exp_within_two_ulp() {
        let mut worst = 0f64;
        let mut xs: Vec<f32> = (0..2_000_001)
            .map(|i| -87.3 + 175.3 * i as f32 / 2e6)
            .collect();
        xs.extend((-130..=130).map(|n| n as f32 * std::f32::consts::LN_2 / 2.0));
        xs.extend([0.0, -0.0, 1e-30, -1e-30, 1.0, -1.0]);
        for x in xs.into_iter().filter(|x| (-87.33..=88.0).contains(x)) {
            let want = (x as f64).exp();
            let ulp = f32::EPSILON as f64 * (want as f32).abs() as f64;
            let e = (exp(x) as f64 - want).abs() / ulp;
            assert!(e <= 2.0, "exp({x}) = {} vs {want}: {e} ulp", exp(x));
            worst = worst.max(e);
        }
        assert!(worst > 0.0, "compared nothing");
        assert_eq!(exp(-87.4), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-1e30), 0.0);
        assert!((exp(100.0) - 88f32.exp()).abs() / 88f32.exp() < 1e-6);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn ops_fused_layer_norm_matches_composed() {
        let x = (rand(&[2, 3, 96], 1, 4.0) + 1.5).unwrap();
        let w = rand(&[96], 2, 1.0);
        let b = rand(&[96], 3, 1.0);
        let got = layer_norm(&x, &w, &b, 1e-5).unwrap().expect("fast path");
        // The composed ops (what training uses): force them with a tracked weight.
        let wv = candle_core::Var::from_tensor(&w).unwrap();
        assert!(layer_norm(&x, wv.as_tensor(), &b, 1e-5).unwrap().is_none());
        let want = crate::ops::layer_norm(&x, wv.as_tensor(), &b, 1e-5).unwrap();
        assert!(max_err(&got, &want) < 2e-5, "{}", max_err(&got, &want));
        // f16 weights are widened.
        let (wh, bh) = (
            w.to_dtype(DType::F16).unwrap(),
            b.to_dtype(DType::F16).unwrap(),
        );
        let got = layer_norm(&x, &wh, &bh, 1e-5).unwrap().unwrap();
        let want = crate::ops::layer_norm(&x, wv.as_tensor(), &b, 1e-5).unwrap();
        assert!(max_err(&got, &want) < 2e-3);
    }

    #[test]
    fn ops_fused_quick_gelu_matches_definition() {
        let x = rand(&[3, 50], 4, 6.0);
        let got = quick_gelu(&x).unwrap().expect("fast path");
        let want = x
            .mul(&candle_nn::ops::sigmoid(&(&x * 1.702).unwrap()).unwrap())
            .unwrap();
        assert!(max_err(&got, &want) < 1e-5);
        let xv = candle_core::Var::from_tensor(&x).unwrap();
        assert!(quick_gelu(xv.as_tensor()).unwrap().is_none());
    }

    /// Inputs of several parallel chunks (and a ragged last one) give the serial loops' bits.
    #[test]
    fn ops_fused_parallel_chunks_match_the_serial_loops() {
        let x = (rand(&[3, 1001, 96], 5, 3.0) + 0.5).unwrap();
        let (w, b) = (rand(&[96], 6, 1.0), rand(&[96], 7, 1.0));
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let got = flat(&layer_norm(&x, &w, &b, 1e-5).unwrap().unwrap());
        let mut want = flat(&x);
        layer_norm_rows(&mut want, &flat(&w), &flat(&b), 1e-5);
        assert!(want.len() > 3 * PAR_CHUNK && got == want);
        let got = flat(&quick_gelu(&x).unwrap().unwrap());
        let xs = flat(&x);
        assert!(got.iter().zip(&xs).all(|(g, &v)| *g == quick_gelu_f32(v)));
    }
}
