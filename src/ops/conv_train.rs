//! Trainable 1-D convolutions for the CPU: candle custom ops whose forward is the tiled GEMM of
//! [`super::conv`] and whose backward is written out, so that a VQ-VAE training step runs as a
//! few large GEMMs per layer instead of K shifted matmuls plus candle's elementwise adds.
//!
//! For `y = conv1d(relu?(x), W) + b` (W: C_out × C_in × K):
//! - `dx` is itself a convolution of `dy`: for stride 1 a conv1d with the kernel transposed and
//!   flipped (padding `(K−1)·d − p`), for stride s a transposed convolution with the same W;
//!   masked by `x > 0` when the input ReLU is fused;
//! - `dW = Σ_items dy · im2col(relu?(x))ᵀ`, accumulated over a fixed number of column chunks and
//!   summed in chunk order, so the result is the same for any thread count;
//! - `db = Σ dy`.
//!
//! For `y = conv_transpose1d(x, W) + b` (W: C_in × C_out × K) the roles swap: `dx` is a conv1d
//! of `dy` with W read as (C_in, C_out, K), and `dW = Σ x · im2col(dy)ᵀ`.
//!
//! Each op checks that its backward geometry is exact (output lengths match); callers fall back
//! to the differentiable graph ops elsewhere (see `ops::conv1d`). `tests` compare both paths and
//! check the gradients by f64 finite differences through the graph ops.

use super::conv::{conv1d_raw, conv_transpose1d_raw, im2col, Geo};
pub use super::custom::applicable;
use super::custom::{slice, tensor, with_data};
use super::products::{gemm_strided, Products};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Column tile of the weight-gradient pass.
const TILE: usize = 256;
/// Fixed number of partial weight gradients (independent of the thread count, for determinism).
const CHUNKS: usize = 8;

/// `Σ_items a_item (A × T) · im2col(src_item)ᵀ (T × C·K)` → (A × C·K), with `src` (n, g.c_in,
/// g.l_in) gathered by `g` for T = `t` output columns (ReLU applied to `src` when `relu`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn weight_grad_raw(
    a: &[f32],
    src: &[f32],
    n: usize,
    rows: usize,
    t: usize,
    g: Geo,
    relu: bool,
    prod: Products,
) -> Vec<f32> {
    let ck = g.c_in * g.k;
    let tiles = t.div_ceil(TILE);
    let total = n * tiles;
    let per = total.div_ceil(CHUNKS).max(1);
    let partial: Vec<Vec<f32>> = (0..total.div_ceil(per))
        .into_par_iter()
        .map(|c| {
            let mut acc = vec![0f32; rows * ck];
            let mut col = vec![0f32; ck * TILE];
            for i in c * per..((c + 1) * per).min(total) {
                let (item, ti) = (i / tiles, i % tiles);
                let (t0, nt) = (ti * TILE, TILE.min(t - ti * TILE));
                let si = &src[item * g.c_in * g.l_in..(item + 1) * g.c_in * g.l_in];
                im2col(si, g, t0, nt, relu, &mut col[..ck * nt]);
                let ai = &a[item * rows * t + t0..];
                // SAFETY: acc is rows × ck; ai rows of stride t hold nt columns from t0; col
                // is ck × nt read transposed (column stride nt, row stride 1).
                unsafe {
                    gemm_strided(
                        (rows, ck, nt),
                        acc.as_mut_ptr(),
                        (1, ck as isize),
                        true,
                        ai.as_ptr(),
                        (1, t as isize),
                        col.as_ptr(),
                        (nt as isize, 1),
                        1.0,
                        prod,
                    );
                }
            }
            acc
        })
        .collect();
    let mut out = vec![0f32; rows * ck];
    for p in &partial {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
    out
}

/// Σ over items and time of `dy` (n, c, t) per channel.
fn bias_grad(dy: &[f32], n: usize, c: usize, t: usize) -> Vec<f32> {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            (0..n)
                .map(|item| {
                    crate::ops::fused::sum(&dy[(item * c + ch) * t..(item * c + ch + 1) * t])
                })
                .sum()
        })
        .collect()
}

/// `dx ⊙ (x > 0)`, in place (a select, not a branch: the sign pattern is unpredictable).
pub(crate) fn relu_mask(dx: &mut [f32], x: &[f32]) {
    dx.par_chunks_mut(1 << 14)
        .zip(x.par_chunks(1 << 14))
        .for_each(|(d, x)| {
            for (d, &x) in d.iter_mut().zip(x) {
                *d = if x > 0.0 { *d } else { 0.0 };
            }
        });
}

/// Trainable `conv1d(relu?(x), w) + b` (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Conv1dOp {
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub pre_relu: bool,
}

impl Conv1dOp {
    fn geo(&self, c_in: usize, l: usize, k: usize) -> Geo {
        Geo {
            c_in,
            l_in: l,
            k,
            stride: self.stride,
            pad: self.padding,
            dil: self.dilation,
        }
    }

    /// Whether the backward of this geometry is exact: the input gradient as a (transposed)
    /// convolution of `dy` has exactly the input's length.
    pub fn supports(&self, l: usize, k: usize) -> bool {
        let Some(span) = (k - 1).checked_mul(self.dilation) else {
            return false;
        };
        if l + 2 * self.padding <= span {
            return false;
        }
        let l_out = (l + 2 * self.padding - span - 1) / self.stride + 1;
        if self.stride == 1 {
            span >= self.padding && l_out + 2 * (span - self.padding) - span == l
        } else {
            self.dilation == 1
                && (l_out - 1) * self.stride + k > 2 * self.padding
                && (l_out - 1) * self.stride + k - 2 * self.padding == l
        }
    }
}

impl CustomOp3 for Conv1dOp {
    fn name(&self) -> &'static str {
        "conv1d-train"
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
        let (n, c_in, l) = l1.shape().dims3()?;
        let (c_out, _, k) = l2.shape().dims3()?;
        let (x, w, b) = (
            slice(s1, l1, "conv1d")?,
            slice(s2, l2, "conv1d")?,
            slice(s3, l3, "conv1d")?,
        );
        let g = self.geo(c_in, l, k);
        let l_out = (l + 2 * self.padding - self.dilation * (k - 1) - 1) / self.stride + 1;
        let y = conv1d_raw(
            x,
            n,
            g,
            w,
            b,
            l_out,
            self.pre_relu,
            false,
            Products::training(),
        );
        Ok((CpuStorage::F32(y), Shape::from((n, c_out, l_out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, c_in, l) = x.dims3()?;
        let (c_out, _, k) = w.dims3()?;
        let l_out = dy.dim(2)?;
        let wv = w.detach().flatten_all()?.to_vec1::<f32>()?;
        let zero = vec![0f32; c_in];
        let prod = Products::training();
        let (dx, dw, db) = with_data(dy, |dys| {
            let dx = if self.stride == 1 {
                // dx = conv1d(dy, W'), W'[ci, co, j] = W[co, ci, K−1−j].
                let mut wf = vec![0f32; c_in * c_out * k];
                for co in 0..c_out {
                    for ci in 0..c_in {
                        for j in 0..k {
                            wf[(ci * c_out + co) * k + (k - 1 - j)] = wv[(co * c_in + ci) * k + j];
                        }
                    }
                }
                let span = (k - 1) * self.dilation;
                let g = Geo {
                    c_in: c_out,
                    l_in: l_out,
                    k,
                    stride: 1,
                    pad: span - self.padding,
                    dil: self.dilation,
                };
                conv1d_raw(dys, n, g, &wf, &zero, l, false, false, prod)
            } else {
                // dx = conv_transpose1d(dy, W) with W read as (C_out → C_in).
                conv_transpose1d_raw(
                    dys,
                    n,
                    c_out,
                    l_out,
                    &wv,
                    &zero,
                    k,
                    self.stride,
                    self.padding,
                    l,
                    prod,
                )
            };
            let (dx, dw) = with_data(x, |xs| {
                let mut dx = dx;
                if self.pre_relu {
                    relu_mask(&mut dx, xs);
                }
                let g = self.geo(c_in, l, k);
                Ok((
                    dx,
                    weight_grad_raw(dys, xs, n, c_out, l_out, g, self.pre_relu, prod),
                ))
            })?;
            Ok((dx, dw, bias_grad(dys, n, c_out, l_out)))
        })?;
        Ok((
            Some(tensor(dx, (n, c_in, l))?),
            Some(tensor(dw, (c_out, c_in, k))?),
            Some(tensor(db, c_out)?),
        ))
    }
}

/// Trainable `conv_transpose1d(x, w) + b` (no output padding, dilation 1).
#[derive(Debug, Clone, Copy)]
pub struct ConvTranspose1dOp {
    pub stride: usize,
    pub padding: usize,
}

impl CustomOp3 for ConvTranspose1dOp {
    fn name(&self) -> &'static str {
        "conv-transpose1d-train"
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
        let (n, c_in, l) = l1.shape().dims3()?;
        let (_, c_out, k) = l2.shape().dims3()?;
        let (x, w, b) = (
            slice(s1, l1, "conv_transpose1d")?,
            slice(s2, l2, "conv_transpose1d")?,
            slice(s3, l3, "conv_transpose1d")?,
        );
        let l_out = (l - 1) * self.stride + k - 2 * self.padding;
        let y = conv_transpose1d_raw(
            x,
            n,
            c_in,
            l,
            w,
            b,
            k,
            self.stride,
            self.padding,
            l_out,
            Products::training(),
        );
        Ok((CpuStorage::F32(y), Shape::from((n, c_out, l_out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, c_in, l) = x.dims3()?;
        let (_, c_out, k) = w.dims3()?;
        let l_out = dy.dim(2)?;
        let wv = w.detach().flatten_all()?.to_vec1::<f32>()?;
        // Gathering dy as the forward conv1d of the adjoint reads it: stride s, padding p.
        let g = Geo {
            c_in: c_out,
            l_in: l_out,
            k,
            stride: self.stride,
            pad: self.padding,
            dil: 1,
        };
        let zero = vec![0f32; c_in];
        let prod = Products::training();
        let (dx, dw, db) = with_data(dy, |dys| {
            let dx = conv1d_raw(dys, n, g, &wv, &zero, l, false, false, prod);
            let dw = with_data(x, |xs| {
                Ok(weight_grad_raw(xs, dys, n, c_in, l, g, false, prod))
            })?;
            Ok((dx, dw, bias_grad(dys, n, c_out, l_out)))
        })?;
        Ok((
            Some(tensor(dx, (n, c_in, l))?),
            Some(tensor(dw, (c_in, c_out, k))?),
            Some(tensor(db, c_out)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{rand_scaled, rel_max as rel};
    use crate::ops::{conv1d_graph, conv_transpose1d_graph};
    use candle_core::{DType, Device, Var};

    /// (x, w, b) as variables, with shapes for a conv1d (`transpose` false) or a transposed one.
    fn vars(
        n: usize,
        ci: usize,
        co: usize,
        l: usize,
        k: usize,
        transpose: bool,
        dt: DType,
    ) -> [Var; 3] {
        let w = if transpose { [ci, co, k] } else { [co, ci, k] };
        [
            Var::from_tensor(&rand_scaled(&[n, ci, l], 1, 1.0).to_dtype(dt).unwrap()).unwrap(),
            Var::from_tensor(&rand_scaled(&w, 2, 0.5).to_dtype(dt).unwrap()).unwrap(),
            Var::from_tensor(&rand_scaled(&[co], 3, 0.5).to_dtype(dt).unwrap()).unwrap(),
        ]
    }

    #[derive(Clone, Copy, Debug)]
    enum Case {
        Conv(Conv1dOp),
        ConvT(ConvTranspose1dOp),
    }

    /// The op through the graph (reference) path.
    fn graph(c: Case, x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
        match c {
            Case::Conv(o) => {
                let x = if o.pre_relu {
                    x.relu().unwrap()
                } else {
                    x.clone()
                };
                conv1d_graph(&x, w, Some(b), o.stride, o.padding, o.dilation).unwrap()
            }
            Case::ConvT(o) => conv_transpose1d_graph(x, w, Some(b), o.stride, o.padding).unwrap(),
        }
    }

    fn custom(c: Case, x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
        match c {
            Case::Conv(o) => x.apply_op3(w, b, o).unwrap(),
            Case::ConvT(o) => x.apply_op3(w, b, o).unwrap(),
        }
    }

    fn cases() -> Vec<(Case, usize, usize)> {
        let conv = |stride, padding, dilation, pre_relu| {
            Case::Conv(Conv1dOp {
                stride,
                padding,
                dilation,
                pre_relu,
            })
        };
        // (case, kernel size, input length): the VQ-VAE's layers (dilated "same" k3, 1×1,
        // the stride-2 k4 downsampler, the stride-2 k4 transposed upsampler) at lengths that
        // span several column tiles.
        vec![
            (conv(1, 1, 1, false), 3, 600),
            (conv(1, 9, 9, true), 3, 530),
            (conv(1, 0, 1, true), 1, 300),
            (conv(2, 1, 1, false), 4, 640),
            (
                Case::ConvT(ConvTranspose1dOp {
                    stride: 2,
                    padding: 1,
                }),
                4,
                300,
            ),
        ]
    }

    /// The custom op's output and gradients equal the graph path's (batch 2, 3 → 5 channels).
    #[test]
    fn matches_graph_path_forward_and_gradients() {
        for (c, k, l) in cases() {
            let (ci, co) = (3, 5);
            let [x, w, b] = vars(2, ci, co, l, k, matches!(c, Case::ConvT(_)), DType::F32);
            let r = rand_scaled(graph(c, &x, &w, &b).dims(), 4, 1.0);
            let yg = graph(c, &x, &w, &b);
            let yc = custom(c, &x, &w, &b);
            assert!(
                rel(&yc, &yg) < 1e-5,
                "{c:?}: forward rel err {}",
                rel(&yc, &yg)
            );
            let gg = (yg * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gc = (yc * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for (name, v) in [("x", &x), ("w", &w), ("b", &b)] {
                let (a, e) = (gc.get(v).unwrap(), gg.get(v).unwrap());
                assert!(rel(a, e) < 1e-5, "{c:?}: d{name} rel err {}", rel(a, e));
            }
        }
    }

    /// f64 central differences of Σ r·op(x, w, b), evaluated through the graph path, against
    /// the custom op's (f32) gradients.
    #[test]
    fn gradients_match_finite_differences() {
        for (c, k, _) in cases() {
            let (ci, co, l) = (2, 3, 20);
            let t = matches!(c, Case::ConvT(_));
            let v64 = vars(2, ci, co, l, k, t, DType::F64);
            let v32 = vars(2, ci, co, l, k, t, DType::F32);
            let y = custom(c, &v32[0], &v32[1], &v32[2]);
            let r = rand_scaled(y.dims(), 5, 1.0);
            let grads = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let r64 = r.to_dtype(DType::F64).unwrap();
            let f = |vs: &[Tensor]| -> f64 {
                (graph(c, &vs[0], &vs[1], &vs[2]) * &r64)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar()
                    .unwrap()
            };
            for (i, name) in ["x", "w", "b"].iter().enumerate() {
                let base: Vec<f64> = v64[i].flatten_all().unwrap().to_vec1().unwrap();
                let got: Vec<f32> = grads
                    .get(&v32[i])
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                let h = 1e-6;
                // Every element of w and b; a spread of x (including ReLU-negative entries).
                let idx: Vec<usize> = (0..base.len())
                    .step_by(if i == 0 { 7 } else { 1 })
                    .collect();
                for j in idx {
                    let mut ts: Vec<Tensor> = v64.iter().map(|v| v.as_tensor().clone()).collect();
                    let shape = ts[i].dims().to_vec();
                    let mut p = base.clone();
                    p[j] += h;
                    ts[i] = Tensor::from_vec(p.clone(), shape.as_slice(), &Device::Cpu).unwrap();
                    let fp = f(&ts);
                    p[j] -= 2.0 * h;
                    ts[i] = Tensor::from_vec(p, shape.as_slice(), &Device::Cpu).unwrap();
                    let fm = f(&ts);
                    let num = (fp - fm) / (2.0 * h);
                    let err = (num - got[j] as f64).abs();
                    assert!(
                        err < 1e-4 * (1.0 + num.abs()),
                        "{c:?} d{name}[{j}]: numeric {num}, custom op {}",
                        got[j]
                    );
                }
            }
        }
    }

    /// The weight gradient does not depend on the thread count.
    #[test]
    fn weight_gradient_is_thread_count_independent() {
        let (n, ci, co, l, k) = (3, 4, 6, 2000, 3);
        let x: Vec<f32> = rand_scaled(&[n, ci, l], 6, 1.0)
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let dy: Vec<f32> = rand_scaled(&[n, co, l], 7, 1.0)
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let g = Geo {
            c_in: ci,
            l_in: l,
            k,
            stride: 1,
            pad: 1,
            dil: 1,
        };
        // Both kernels (`Split` runs as F32 where the CPU has no AMX).
        for p in [Products::F32, Products::Split] {
            let run = |threads: usize| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| weight_grad_raw(&dy, &x, n, co, l, g, true, p))
            };
            let one = run(1);
            assert_eq!(one, run(2), "{p:?}");
            assert_eq!(one, run(3), "{p:?}");
            assert!(one.iter().any(|v| v.abs() > 1.0));
        }
    }
}
