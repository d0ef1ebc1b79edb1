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
    // Rows in parallel chunks (a scoring pass normalises thousands): each row's arithmetic
    // is the same, so the bits do not depend on the split.
    y.par_chunks_mut(n * rows_per_task(n))
        .for_each(|c| layer_norm_rows(c, &wv, &bv, eps as f32));
    Tensor::from_vec(y, x.dims(), &Device::Cpu).map(Some)
}

/// Rows of `n` elements per parallel task: about 64 K elements, at least one row.
fn rows_per_task(n: usize) -> usize {
    (PAR_CHUNK / n).max(1)
}

const PAR_CHUNK: usize = 1 << 16;

/// LayerNorm of every row (of `w.len()` elements) of `y`, in place: the arithmetic of
/// [`layer_norm`], shared with the persistent sampling step.
pub(crate) fn layer_norm_rows(y: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let inv_n = 1.0 / w.len() as f32;
    for row in y.chunks_exact_mut(w.len()) {
        let mean = row.iter().sum::<f32>() * inv_n;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() * inv_n;
        let denom = (var + eps).sqrt();
        for ((v, &wi), &bi) in row.iter_mut().zip(w).zip(b) {
            *v = (*v - mean) / denom * wi + bi;
        }
    }
}

/// `z · σ(1.702 z)` of one value (see [`quick_gelu`]).
pub(crate) fn quick_gelu_f32(v: f32) -> f32 {
    v * (1.0 / (1.0 + (-1.702 * v).exp()))
}

/// `z · σ(1.702 z)` elementwise.
pub fn quick_gelu(x: &Tensor) -> Result<Option<Tensor>> {
    if !plain_f32(x) {
        return Ok(None);
    }
    let mut y: Vec<f32> = x.flatten_all()?.to_vec1()?;
    y.par_chunks_mut(PAR_CHUNK).for_each(|c| {
        for v in c {
            *v = quick_gelu_f32(*v);
        }
    });
    Tensor::from_vec(y, x.dims(), &Device::Cpu).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ops::test_util::{max_err, rand_scaled as rand};

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
