//! The teacher-forced whole-window pass for inference on the CPU (scoring and ranking codes):
//! every layer on flat f32 buffers — LayerNorm, GEMM into a buffer pre-filled with the bias,
//! the fused factorised attention, quick-GELU in place, and the residual accumulated by the
//! GEMM itself — instead of about twenty candle ops per layer, each a fresh tensor.
//!
//! The graph path stays the reference (`tests/fast_forward.rs` compares the two); only the
//! order of a few float additions differs (bias before product, the residual inside the GEMM).
//! Training (tracked tensors), other devices, half or int8 weights, lyrics priors (prime and
//! cross attention) and dense attention take the graph path. `JUKEBOX_FAST_FORWARD=0` (or
//! [`set_enabled`]) turns it off.

use super::attention::{score_scale, AttnKind};
use super::transformer::{Conv1D, Ln, Transformer};
use crate::ops::attn_train::{Pattern, QkvAttnOp};
use crate::ops::conv::sgemm;
use crate::ops::fused;
use crate::ops::gemv::{self, WSlice};
use candle_core::{DType, Device, Layout, Result, StorageRef, Tensor};
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

fn enabled_flag() -> &'static AtomicBool {
    static ON: OnceLock<AtomicBool> = OnceLock::new();
    ON.get_or_init(|| AtomicBool::new(std::env::var("JUKEBOX_FAST_FORWARD").as_deref() != Ok("0")))
}

/// Turns the fast teacher-forced pass on or off (process-wide; for tests and benchmarks).
pub fn set_enabled(on: bool) {
    enabled_flag().store(on, Ordering::SeqCst);
}

static PASSES_RUN: AtomicUsize = AtomicUsize::new(0);

/// Passes this process has run on this path (tests check that it was taken).
pub fn passes_run() -> usize {
    PASSES_RUN.load(Ordering::Relaxed)
}

fn pattern(kind: AttnKind) -> Option<Pattern> {
    match kind {
        AttnKind::Block => Some(Pattern::Block),
        AttnKind::Transpose => Some(Pattern::Transpose),
        AttnKind::PrevBlock => Some(Pattern::PrevBlock),
        _ => None,
    }
}

/// A plain f32 CPU tensor, nothing tracked: what this path reads.
fn plain(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32 && !t.track_op()
}

fn dense_plain(c: &Conv1D) -> bool {
    c.scale.is_none() && plain(&c.w) && plain(&c.b)
}

fn ln_plain(l: &Ln) -> bool {
    plain(&l.w) && plain(&l.b)
}

/// Whether [`forward`] runs `x` (B, L, W) through `tr`.
fn applies(tr: &Transformer, x: &Tensor) -> bool {
    let l = x.dim(1).unwrap_or(0);
    enabled_flag().load(Ordering::SeqCst)
        && plain(x)
        && tr.geom.block_ctx > 0
        && l > 0
        && l.is_multiple_of(tr.geom.block_ctx)
        && tr.cfg.n_state.is_multiple_of(tr.cfg.heads)
        && tr.layers.iter().all(|ly| {
            pattern(ly.kind).is_some()
                && [&ly.c_attn, &ly.c_proj, &ly.mlp_fc, &ly.mlp_proj]
                    .iter()
                    .all(|c| dense_plain(c))
                && ln_plain(&ly.ln_0)
                && ln_plain(&ly.ln_1)
        })
}

/// Rows of one parallel GEMM task: fixed, so that the result never depends on the threads.
const GEMM_ROWS: usize = 256;

/// `dst (m × n) = bias + a (m × k) · w (k × n)`, or with `acc` `dst += bias + a · w`, rows in
/// parallel tasks of [`GEMM_ROWS`].
fn dense_into(dst: &mut [f32], a: &[f32], w: &[f32], bias: &[f32], k: usize, acc: bool) {
    let n = bias.len();
    dst.par_chunks_mut(GEMM_ROWS * n)
        .zip(a.par_chunks(GEMM_ROWS * k))
        .for_each(|(d, a)| {
            for row in d.chunks_exact_mut(n) {
                if acc {
                    row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
                } else {
                    row.copy_from_slice(bias);
                }
            }
            let m = d.len() / n;
            // SAFETY: `d` is m × n, `a` m × k and `w` k × n, all contiguous row-major.
            unsafe {
                sgemm(
                    m,
                    n,
                    k,
                    d.as_mut_ptr(),
                    n,
                    true,
                    a.as_ptr(),
                    k,
                    w.as_ptr(),
                    n,
                    1.0,
                )
            };
        });
}

/// The f32 elements behind a read guard (`None` for any other storage).
fn slice<'a>((st, l): &'a (StorageRef<'a>, &'a Layout)) -> Option<&'a [f32]> {
    match gemv::slice_of(st, l)? {
        WSlice::F32(v) => Some(v),
        _ => None,
    }
}

/// The teacher-forced pass of [`Transformer::forward`] (no record) on `x` (B, L, W), or `None`
/// where this path does not apply. [`super::Prior::forward_seq`] takes it first.
pub(crate) fn forward(tr: &Transformer, x: &Tensor) -> Result<Option<Tensor>> {
    if !applies(tr, x) {
        return Ok(None);
    }
    let (b, l, w) = x.dims3()?;
    let (s, mlp, heads) = (tr.cfg.n_state, tr.cfg.mlp_width, tr.cfg.heads);
    let rows = b * l;
    let mut ts: Vec<&Tensor> = vec![];
    for ly in &tr.layers {
        ts.extend([&ly.ln_0.w, &ly.ln_0.b, &ly.c_attn.w, &ly.c_attn.b]);
        ts.extend([&ly.c_proj.w, &ly.c_proj.b, &ly.ln_1.w, &ly.ln_1.b]);
        ts.extend([&ly.mlp_fc.w, &ly.mlp_fc.b, &ly.mlp_proj.w, &ly.mlp_proj.b]);
    }
    let guards: Vec<(StorageRef, &Layout)> = ts.iter().map(|t| t.storage_and_layout()).collect();
    let Some(p) = guards.iter().map(slice).collect::<Option<Vec<&[f32]>>>() else {
        return Ok(None);
    };
    let mut h: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let mut a = vec![0f32; rows * w];
    let mut c = vec![0f32; rows * 3 * s];
    let mut m = vec![0f32; rows * mlp];
    for (ly, p) in tr.layers.iter().zip(p.chunks_exact(12)) {
        let op = QkvAttnOp {
            pattern: pattern(ly.kind).expect("checked by applies"),
            bc: tr.geom.block_ctx,
            heads,
            scale: score_scale(s / heads) as f32,
        };
        a.copy_from_slice(&h);
        fused::layer_norm_par(&mut a, p[0], p[1], 1e-5);
        dense_into(&mut c, &a, p[2], p[3], w, false);
        let o = op.forward_slice(&c, b, l, 3 * s);
        dense_into(&mut h, &o, p[4], p[5], s, true);
        a.copy_from_slice(&h);
        fused::layer_norm_par(&mut a, p[6], p[7], 1e-5);
        dense_into(&mut m, &a, p[8], p[9], w, false);
        fused::quick_gelu_par(&mut m);
        dense_into(&mut h, &m, p[10], p[11], mlp, true);
    }
    drop(guards);
    PASSES_RUN.fetch_add(1, Ordering::Relaxed);
    Tensor::from_vec(h, (b, l, w), &Device::Cpu).map(Some)
}
