//! Trainable fused CPU ops for the prior: LayerNorm, quick-GELU, block attention and the
//! cross-entropy, each one candle custom op with a hand-written backward.
//!
//! Composed from candle primitives, a LayerNorm is ~10 ops forward and as many in the backward
//! pass, each a full pass over the activations plus candle's gradient bookkeeping (a zero
//! tensor and an add per operand); a prior training step spent most of its time there rather
//! than in its matmuls. Here each is one parallel pass forward and one backward. Rows are
//! independent, so results do not depend on the thread count; the LayerNorm's weight and bias
//! gradients sum fixed chunks of rows in order for the same reason.
//!
//! The composed ops stay as the reference: `tests` compare outputs and gradients, and check the
//! gradients against f64 finite differences of the composed ops.

use super::attn_train as attn;
pub use super::custom::applicable;
use super::custom::{column_sums, data, slice, tensor as cpu, uninit_then, uninit_with, with_data};
use super::fused;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Fixed number of row chunks for parameter-gradient sums (independent of the thread count).
const CHUNKS: usize = 16;

/// Rows per parallel task for row-wise ops over `n`-wide rows (about 16 K elements a task).
fn rows_per_task(n: usize) -> usize {
    (16384 / n.max(1)).max(1)
}

/// LayerNorm over the last dimension (`(x − μ)/sqrt(σ² + eps)·w + b`, as `ops::layer_norm`).
#[derive(Debug, Clone, Copy)]
pub struct LayerNormOp {
    pub eps: f32,
}

/// (mean, 1/sqrt(var + eps)) of a row.
fn row_stats(row: &[f32], eps: f32) -> (f32, f32) {
    let inv_n = 1.0 / row.len() as f32;
    let mean = fused::sum(row) * inv_n;
    let var = fused::lane_sum(row, |v| (v - mean) * (v - mean)) * inv_n;
    (mean, 1.0 / (var + eps).sqrt())
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "layer-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, b) = (
            slice(s1, l1, "layer_norm")?,
            slice(s2, l2, "layer_norm")?,
            slice(s3, l3, "layer_norm")?,
        );
        let n = w.len();
        if n == 0 || x.len() % n != 0 || b.len() != n {
            candle_core::bail!("layer_norm: input rows do not match the weight's {n}");
        }
        let rpt = rows_per_task(n);
        // SAFETY: x is whole rows of n, so the row loop writes every element of y.
        let y = unsafe {
            uninit_with(x.len(), |y| {
                y.par_chunks_mut(n * rpt)
                    .zip(x.par_chunks(n * rpt))
                    .for_each(|(yc, xc)| {
                        for (yr, xr) in yc.chunks_exact_mut(n).zip(xc.chunks_exact(n)) {
                            let (mean, rstd) = row_stats(xr, self.eps);
                            for i in 0..n {
                                yr[i].write((xr[i] - mean) * rstd * w[i] + b[i]);
                            }
                        }
                    })
            })
        };
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let wv = data(w)?;
        let n = wv.len();
        let (dx, dw, db) = with_data(x, |xs| {
            with_data(g, |gs| {
                if gs.len() != xs.len() || xs.len() % n != 0 {
                    candle_core::bail!("layer_norm backward: gradient does not match the input");
                }
                let rows = xs.len() / n;
                let per = rows.div_ceil(CHUNKS).max(1);
                // SAFETY: xs is whole rows of n, so the row loop writes every element of dx.
                let (dx, parts) = unsafe {
                    uninit_then(xs.len(), |dx| {
                        dx.par_chunks_mut(n * per)
                            .zip(xs.par_chunks(n * per).zip(gs.par_chunks(n * per)))
                            .map(|(dxc, (xc, gc))| {
                                let (mut dw, mut db) = (vec![0f32; n], vec![0f32; n]);
                                for ((dxr, xr), gr) in dxc
                                    .chunks_exact_mut(n)
                                    .zip(xc.chunks_exact(n))
                                    .zip(gc.chunks_exact(n))
                                {
                                    let (mean, rstd) = row_stats(xr, self.eps);
                                    // dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = g·w.
                                    let (mut sg, mut sgx) = (0f32, 0f32);
                                    for i in 0..n {
                                        let xh = (xr[i] - mean) * rstd;
                                        let gh = gr[i] * wv[i];
                                        sg += gh;
                                        sgx += gh * xh;
                                        dw[i] += gr[i] * xh;
                                        db[i] += gr[i];
                                    }
                                    let (mg, mgx) = (sg / n as f32, sgx / n as f32);
                                    for i in 0..n {
                                        let xh = (xr[i] - mean) * rstd;
                                        dxr[i].write(rstd * (gr[i] * wv[i] - mg - xh * mgx));
                                    }
                                }
                                (dw, db)
                            })
                            .collect::<Vec<(Vec<f32>, Vec<f32>)>>()
                    })
                };
                let (mut dw, mut db) = (vec![0f32; n], vec![0f32; n]);
                for (pw, pb) in &parts {
                    for i in 0..n {
                        dw[i] += pw[i];
                        db[i] += pb[i];
                    }
                }
                Ok((dx, dw, db))
            })
        })?;
        Ok((
            Some(cpu(dx, x.shape())?),
            Some(cpu(dw, w.shape())?),
            Some(cpu(db, w.shape())?),
        ))
    }
}

/// `z·σ(1.702 z)` elementwise.
#[derive(Debug, Clone, Copy)]
pub struct QuickGeluOp;

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + fused::exp(-1.702 * v))
}

impl CustomOp1 for QuickGeluOp {
    fn name(&self) -> &'static str {
        "quick-gelu-train"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, "quick_gelu")?;
        // SAFETY: equal chunks of y and x, so every element of y is written.
        let y = unsafe {
            uninit_with(x.len(), |y| {
                y.par_chunks_mut(16384)
                    .zip(x.par_chunks(16384))
                    .for_each(|(y, x)| {
                        for (y, &x) in y.iter_mut().zip(x) {
                            y.write(x * sigmoid(x));
                        }
                    })
            })
        };
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let dx = with_data(x, |xs| {
            with_data(g, |gs| {
                if gs.len() != xs.len() {
                    candle_core::bail!("quick_gelu backward: gradient does not match the input");
                }
                // SAFETY: equal chunks of dx, xs and gs (checked above), so every element of dx
                // is written.
                let dx = unsafe {
                    uninit_with(xs.len(), |dx| {
                        dx.par_chunks_mut(16384)
                            .zip(xs.par_chunks(16384).zip(gs.par_chunks(16384)))
                            .for_each(|(d, (x, g))| {
                                for ((d, &x), &g) in d.iter_mut().zip(x).zip(g) {
                                    let s = sigmoid(x);
                                    d.write(g * (s + 1.702 * x * s * (1.0 - s)));
                                }
                            })
                    })
                };
                Ok(dx)
            })
        })?;
        Ok(Some(cpu(dx, x.shape())?))
    }
}

/// Softmax attention over independent (L × d) problems: `q`, `k`, `v` (N, L, d) → (N, L, d),
/// scores scaled by `scale`, with key j hidden from query i > j... i.e. `causal` keeps j ≤ i.
/// The official mask sets hidden scores to −1e9, which is exactly a zero weight here since
/// every causal row keeps its diagonal.
#[derive(Debug, Clone, Copy)]
pub struct AttnOp {
    pub scale: f32,
    pub causal: bool,
}

impl CustomOp3 for AttnOp {
    fn name(&self) -> &'static str {
        "attention-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, l, d) = l1.shape().dims3()?;
        let (q, k, v) = (
            slice(s1, l1, "attention")?,
            slice(s2, l2, "attention")?,
            slice(s3, l3, "attention")?,
        );
        let mut o = vec![0f32; q.len()];
        let sz = l * d;
        o.par_chunks_mut(sz).enumerate().for_each_init(
            || vec![0f32; l * l],
            |p, (i, o)| {
                let r = i * sz..(i + 1) * sz;
                attn::weights(
                    &q[r.clone()],
                    &k[r.clone()],
                    l,
                    d,
                    self.causal,
                    self.scale,
                    p,
                );
                attn::apply(p, &v[r], l, d, o);
            },
        );
        Ok((CpuStorage::F32(o), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _o: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (_, l, d) = q.dims3()?;
        let sz = l * d;
        let (qs, ks, vs, gs) = (data(q)?, data(k)?, data(v)?, data(g)?);
        let mut dq = vec![0f32; qs.len()];
        let mut dk = vec![0f32; qs.len()];
        let mut dv = vec![0f32; qs.len()];
        dq.par_chunks_mut(sz)
            .zip(dk.par_chunks_mut(sz).zip(dv.par_chunks_mut(sz)))
            .enumerate()
            .for_each_init(
                || (vec![0f32; l * l], vec![0f32; l * l]),
                |(p, ds), (i, (dq, (dk, dv)))| {
                    let r = i * sz..(i + 1) * sz;
                    let (q, k) = (&qs[r.clone()], &ks[r.clone()]);
                    attn::weights(q, k, l, d, self.causal, self.scale, p);
                    let dims = (l, d, self.scale);
                    attn::backward(q, k, &vs[r.clone()], &gs[r], p, dims, ds, dq, dk, dv);
                },
            );
        Ok((
            Some(cpu(dq, q.shape())?),
            Some(cpu(dk, k.shape())?),
            Some(cpu(dv, v.shape())?),
        ))
    }
}

/// Per-row negative log-likelihood `logsumexp(z) − z[target]` of logits (N, V) and u32
/// targets (N) → (N).
#[derive(Debug, Clone, Copy)]
pub struct CrossEntropyOp;

impl CustomOp2 for CrossEntropyOp {
    fn name(&self) -> &'static str {
        "cross-entropy-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, v) = l1.shape().dims2()?;
        let z = slice(s1, l1, "cross_entropy")?;
        let Some((a, b)) = l2.contiguous_offsets() else {
            candle_core::bail!("cross_entropy: targets are not contiguous");
        };
        let t = &s2.as_slice::<u32>()?[a..b];
        if t.len() != n || t.iter().any(|&t| t as usize >= v) {
            candle_core::bail!("cross_entropy: targets must be {n} ids below {v}");
        }
        let nll: Vec<f32> = z
            .par_chunks(v)
            .zip(t.par_iter())
            .map(|(row, &t)| fused::row_nll(row, t as usize))
            .collect();
        Ok((CpuStorage::F32(nll), Shape::from(n)))
    }

    fn bwd(
        &self,
        z: &Tensor,
        t: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let v = z.dim(1)?;
        let ts = t.to_vec1::<u32>()?;
        let gs = data(g)?;
        let dz = with_data(z, |zs| {
            let mut dz = vec![0f32; zs.len()];
            dz.par_chunks_mut(v)
                .zip(zs.par_chunks(v))
                .enumerate()
                .for_each(|(i, (d, row))| {
                    let m = fused::row_max(row);
                    for (d, &x) in d.iter_mut().zip(row) {
                        *d = fused::exp(x - m);
                    }
                    let k = gs[i] / fused::sum(d);
                    for d in d.iter_mut() {
                        *d *= k;
                    }
                    d[ts[i] as usize] -= gs[i];
                });
            Ok(dz)
        })?;
        Ok((Some(cpu(dz, z.shape())?), None))
    }
}

/// `dst (m × n) = [dst +] a · b` with arbitrary strides (column stride, row stride) on the
/// rayon pool.
///
/// # Safety
/// Every pointer must be valid for the extents its dimensions and strides give.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_par(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    (dcs, drs): (isize, isize),
    acc: bool,
    a: *const f32,
    (acs, ars): (isize, isize),
    b: *const f32,
    (bcs, brs): (isize, isize),
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        dcs,
        drs,
        acc,
        a,
        acs,
        ars,
        b,
        bcs,
        brs,
        1.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::Rayon(rayon::current_num_threads()),
    );
}

/// The official `Conv1D` dense layer `y = x·w + b` (w stored (n_in, n_out)), x (.., n_in).
#[derive(Debug, Clone, Copy)]
pub struct DenseOp;

impl CustomOp3 for DenseOp {
    fn name(&self) -> &'static str {
        "dense-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, b) = (
            slice(s1, l1, "dense")?,
            slice(s2, l2, "dense")?,
            slice(s3, l3, "dense")?,
        );
        let (n_in, n_out) = l2.shape().dims2()?;
        if n_in == 0 || x.len() % n_in != 0 || b.len() != n_out || w.len() != n_in * n_out {
            candle_core::bail!("dense: input, weight ({n_in} × {n_out}) and bias do not match");
        }
        let rows = x.len() / n_in;
        let rpt = rows_per_task(n_out);
        // SAFETY: every row of y is first filled with the bias (in parallel: serially it was
        // 1.7 % of a step), then the GEMM adds x·w; y is rows × n_out, x rows × n_in, w n_in ×
        // n_out, all row-major.
        let y = unsafe {
            uninit_with(rows * n_out, |y| {
                y.par_chunks_mut(n_out * rpt).for_each(|c| {
                    for r in c.chunks_exact_mut(n_out) {
                        for (d, &v) in r.iter_mut().zip(b) {
                            d.write(v);
                        }
                    }
                });
                gemm_par(
                    rows,
                    n_out,
                    n_in,
                    y.as_mut_ptr().cast(),
                    (1, n_out as isize),
                    true,
                    x.as_ptr(),
                    (1, n_in as isize),
                    w.as_ptr(),
                    (1, n_out as isize),
                );
            })
        };
        let mut dims = l1.shape().dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = n_out;
        }
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n_in, n_out) = w.dims2()?;
        let ws = data(w)?;
        let (dx, dw, db) = with_data(x, |xs| {
            with_data(g, |gs| {
                let rows = xs.len() / n_in;
                if gs.len() != rows * n_out || ws.len() != n_in * n_out {
                    candle_core::bail!("dense backward: gradient or weight does not match");
                }
                // SAFETY: dx = g (rows × n_out) · wᵀ (n_out × n_in); dw = xᵀ (n_in × rows) ·
                // g (rows × n_out); strides as laid out above. Neither GEMM reads its
                // destination, and each writes all of it, so no zero fill is needed.
                let dx = unsafe {
                    uninit_with(rows * n_in, |dx| {
                        gemm_par(
                            rows,
                            n_in,
                            n_out,
                            dx.as_mut_ptr().cast(),
                            (1, n_in as isize),
                            false,
                            gs.as_ptr(),
                            (1, n_out as isize),
                            ws.as_ptr(),
                            (n_out as isize, 1),
                        )
                    })
                };
                let dw = unsafe {
                    uninit_with(n_in * n_out, |dw| {
                        gemm_par(
                            n_in,
                            n_out,
                            rows,
                            dw.as_mut_ptr().cast(),
                            (1, n_out as isize),
                            false,
                            xs.as_ptr(),
                            (n_in as isize, 1),
                            gs.as_ptr(),
                            (1, n_out as isize),
                        )
                    })
                };
                // Bias: fixed row chunks summed in order (thread-count independent).
                let db = column_sums(gs, n_out, CHUNKS);
                Ok((dx, dw, db))
            })
        })?;
        Ok((
            Some(cpu(dx, x.shape())?),
            Some(cpu(dw, w.shape())?),
            Some(cpu(db, b.shape())?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{rand_scaled, rel_max as rel};
    use candle_core::{DType, Device, Var, D};

    fn var(shape: &[usize], seed: u64, scale: f64, dt: DType) -> Var {
        Var::from_tensor(&rand_scaled(shape, seed, scale).to_dtype(dt).unwrap()).unwrap()
    }

    /// Each op under test: its inputs' shapes, the fused op, and the composed (graph) op.
    type Op = fn(&[Tensor], bool) -> Tensor;

    fn layer_norm(v: &[Tensor], fused: bool) -> Tensor {
        if fused {
            v[0].apply_op3(&v[1], &v[2], LayerNormOp { eps: 1e-5 })
                .unwrap()
        } else {
            let x = &v[0];
            let mean = x.mean_keepdim(D::Minus1).unwrap();
            let xc = x.broadcast_sub(&mean).unwrap();
            let var = xc.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
            let y = xc
                .broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap())
                .unwrap();
            y.broadcast_mul(&v[1])
                .unwrap()
                .broadcast_add(&v[2])
                .unwrap()
        }
    }

    fn gelu(v: &[Tensor], fused: bool) -> Tensor {
        if fused {
            v[0].apply_op1(QuickGeluOp).unwrap()
        } else {
            let s = candle_nn::ops::sigmoid(&(&v[0] * 1.702).unwrap()).unwrap();
            v[0].mul(&s).unwrap()
        }
    }

    fn attn(v: &[Tensor], fused: bool, causal: bool) -> Tensor {
        let d = v[0].dim(2).unwrap();
        let scale = crate::prior::attention::score_scale(d);
        if fused {
            let op = AttnOp {
                scale: scale as f32,
                causal,
            };
            return v[0].apply_op3(&v[1], &v[2], op).unwrap();
        }
        let w = (v[0].matmul(&v[1].t().unwrap()).unwrap() * scale).unwrap();
        let w = if causal {
            let l = v[0].dim(1).unwrap();
            let m = crate::prior::attention::causal_mask(l, l, &Device::Cpu)
                .unwrap()
                .to_dtype(w.dtype())
                .unwrap();
            let neg = ((m.ones_like().unwrap() - &m).unwrap() * -1e9).unwrap();
            w.broadcast_mul(&m).unwrap().broadcast_add(&neg).unwrap()
        } else {
            w
        };
        crate::ops::softmax_last_dim(&w)
            .unwrap()
            .matmul(&v[2])
            .unwrap()
    }

    fn attn_causal(v: &[Tensor], fused: bool) -> Tensor {
        attn(v, fused, true)
    }

    fn attn_full(v: &[Tensor], fused: bool) -> Tensor {
        attn(v, fused, false)
    }

    fn dense(v: &[Tensor], fused: bool) -> Tensor {
        if fused {
            v[0].apply_op3(&v[1], &v[2], DenseOp).unwrap()
        } else {
            let (b, t, n) = v[0].dims3().unwrap();
            let y = v[0].reshape((b * t, n)).unwrap().matmul(&v[1]).unwrap();
            let y = y.broadcast_add(&v[2]).unwrap();
            y.reshape((b, t, v[1].dim(1).unwrap())).unwrap()
        }
    }

    /// Targets of the cross-entropy cases (fixed, in range of 7 classes).
    fn targets(n: usize) -> Tensor {
        Tensor::from_vec(
            (0..n as u32).map(|i| (i * 5 + 3) % 7).collect::<Vec<_>>(),
            n,
            &Device::Cpu,
        )
        .unwrap()
    }

    fn cross_entropy(v: &[Tensor], fused: bool) -> Tensor {
        let (n, _) = v[0].dims2().unwrap();
        let t = targets(n);
        if fused {
            v[0].apply_op2(&t, CrossEntropyOp).unwrap()
        } else {
            let lp = crate::train::loss::log_softmax(&v[0]).unwrap();
            lp.gather(&t.reshape((n, 1)).unwrap(), 1)
                .unwrap()
                .neg()
                .unwrap()
                .reshape(n)
                .unwrap()
        }
    }

    /// (name, op, input shapes): batch ≥ 2 and more than one output channel everywhere.
    fn cases() -> Vec<(&'static str, Op, Vec<Vec<usize>>)> {
        vec![
            (
                "layer_norm",
                layer_norm,
                vec![vec![2, 5, 24], vec![24], vec![24]],
            ),
            ("quick_gelu", gelu, vec![vec![2, 5, 7]]),
            ("attention causal", attn_causal, vec![vec![3, 6, 4]; 3]),
            ("attention full", attn_full, vec![vec![3, 6, 4]; 3]),
            ("dense", dense, vec![vec![2, 5, 6], vec![6, 4], vec![4]]),
            ("cross_entropy", cross_entropy, vec![vec![6, 7]]),
        ]
    }

    fn inputs(shapes: &[Vec<usize>], dt: DType) -> Vec<Var> {
        shapes
            .iter()
            .enumerate()
            .map(|(i, s)| var(s, 10 + i as u64, 1.5, dt))
            .collect()
    }

    /// Fused and composed ops agree on outputs and on every input's gradient.
    #[test]
    fn fused_ops_match_composed_forward_and_gradients() {
        for (name, op, shapes) in cases() {
            let vs = inputs(&shapes, DType::F32);
            let ts: Vec<Tensor> = vs.iter().map(|v| v.as_tensor().clone()).collect();
            let (yf, yc) = (op(&ts, true), op(&ts, false));
            assert!(
                rel(&yf, &yc) < 1e-5,
                "{name}: forward rel err {}",
                rel(&yf, &yc)
            );
            let r = rand_scaled(yf.dims(), 99, 1.0);
            let gf = (yf * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gc = (yc * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for (i, v) in vs.iter().enumerate() {
                let (a, e) = (gf.get(v).unwrap(), gc.get(v).unwrap());
                assert!(
                    rel(a, e) < 1e-5,
                    "{name}: input {i} gradient rel err {}",
                    rel(a, e)
                );
            }
        }
    }

    /// The fused ops' f32 gradients against f64 central differences of the composed ops.
    #[test]
    fn fused_gradients_match_finite_differences() {
        for (name, op, shapes) in cases() {
            let v32 = inputs(&shapes, DType::F32);
            let v64 = inputs(&shapes, DType::F64);
            let t32: Vec<Tensor> = v32.iter().map(|v| v.as_tensor().clone()).collect();
            let y = op(&t32, true);
            let r = rand_scaled(y.dims(), 98, 1.0);
            let grads = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let r64 = r.to_dtype(DType::F64).unwrap();
            let f = |ts: &[Tensor]| -> f64 {
                (op(ts, false) * &r64)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar()
                    .unwrap()
            };
            for (i, v) in v64.iter().enumerate() {
                let base: Vec<f64> = v.flatten_all().unwrap().to_vec1().unwrap();
                let got: Vec<f32> = grads
                    .get(&v32[i])
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                for j in 0..base.len() {
                    let at = |h: f64| {
                        let mut p = base.clone();
                        p[j] += h;
                        let mut ts: Vec<Tensor> =
                            v64.iter().map(|v| v.as_tensor().clone()).collect();
                        ts[i] = Tensor::from_vec(p, v.dims(), &Device::Cpu).unwrap();
                        f(&ts)
                    };
                    let num = (at(1e-6) - at(-1e-6)) / 2e-6;
                    let err = (num - got[j] as f64).abs();
                    assert!(
                        err < 2e-4 * (1.0 + num.abs()),
                        "{name}: input {i}[{j}]: numeric {num}, fused {}",
                        got[j]
                    );
                }
            }
        }
    }

    /// Results do not depend on the thread count (fixed-chunk parameter-gradient sums).
    #[test]
    fn fused_ops_are_thread_count_independent() {
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    let mut out = vec![];
                    for (_, op, shapes) in cases() {
                        let vs = inputs(&shapes, DType::F32);
                        let ts: Vec<Tensor> = vs.iter().map(|v| v.as_tensor().clone()).collect();
                        let y = op(&ts, true);
                        let g = y.sum_all().unwrap().backward().unwrap();
                        out.extend(y.flatten_all().unwrap().to_vec1::<f32>().unwrap());
                        for v in &vs {
                            out.extend(
                                g.get(v)
                                    .unwrap()
                                    .flatten_all()
                                    .unwrap()
                                    .to_vec1::<f32>()
                                    .unwrap(),
                            );
                        }
                    }
                    out
                })
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(3));
    }
}
