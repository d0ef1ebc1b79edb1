//! Tensor ops we can both run fast and train through.
//!
//! candle 0.11.1's fused `layer_norm` and `softmax_last_dim` silently detach from the graph, and
//! its CPU conv1d weight gradient is wrong for batch > 1 (see docs: rust-stack §2.3). Everything
//! here is composed from differentiable primitives and checked by finite differences.

use candle_core::{DType, Result, Tensor, D};

/// LayerNorm over the last dimension, computed in f32 (or f64) whatever the input dtype,
/// as the official code does (it upcasts, normalises, casts back).
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    let dt = x.dtype();
    let xf = if dt == DType::F64 { x.clone() } else { x.to_dtype(DType::F32)? };
    let mean = xf.mean_keepdim(D::Minus1)?;
    let xc = xf.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let y = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    let y = y
        .broadcast_mul(&w.to_dtype(y.dtype())?)?
        .broadcast_add(&b.to_dtype(y.dtype())?)?;
    y.to_dtype(dt)
}

/// Softmax over the last dimension (max-subtracted, differentiable).
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    let s = e.sum_keepdim(D::Minus1)?;
    e.broadcast_div(&s)
}

/// `z · σ(1.702 z)`, the official MLP activation.
pub fn quick_gelu(x: &Tensor) -> Result<Tensor> {
    x.mul(&candle_nn::ops::sigmoid(&(x * 1.702)?)?)
}

/// Official `Conv1D` dense layer: `y = x · w + b` with `w` stored (n_in, n_out).
/// `x` is (.., n_in).
pub fn dense(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let n_in = dims[dims.len() - 1];
    let rows = x.elem_count() / n_in;
    let y = x.reshape((rows, n_in))?.matmul(w)?.broadcast_add(b)?;
    let mut out = dims;
    let last = out.len() - 1;
    out[last] = w.dim(1)?;
    y.reshape(out)
}
