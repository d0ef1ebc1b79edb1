//! The official `ResConv1DBlock`, `y = x + r · conv1x1(relu(conv_k(relu(x))))`, as one trainable
//! CPU op: the forward is the inference kernel's single tiled pass (nothing but `y` stored), and
//! the backward recomputes each tile's hidden layer and produces every gradient in one pass,
//! then `dx` as one convolution of the hidden gradient. The graph path (two conv ops, two ReLUs
//! and an add) kept four activations per block and made as many full passes and gradient sums.
//!
//! candle custom ops take at most three operands, so the four parameters travel as one packed
//! vector `[w1 (H·C·K), b1 (H), w2 (C·H), b2 (C)]` built by a differentiable `cat`.

use super::conv::{conv1d_raw, im2col, prefetch_next_tile, res_block_raw, Geo, TILE};
use super::conv_train::relu_mask;
use super::custom::{slice, tensor, with_data, SharedOut};
use super::products::{gemm_strided, Products, Weight};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Fixed number of partial parameter gradients (independent of the thread count).
const CHUNKS: usize = 8;

/// One block's geometry: C channels, H hidden, kernel K at `dilation`, residual scale.
#[derive(Debug, Clone, Copy)]
pub struct ResBlockOp {
    pub hidden: usize,
    pub k: usize,
    pub dilation: usize,
    pub res_scale: f32,
}

impl ResBlockOp {
    fn geo(&self, c: usize, l: usize) -> Geo {
        Geo {
            c_in: c,
            l_in: l,
            k: self.k,
            stride: 1,
            pad: self.dilation * (self.k - 1) / 2,
            dil: self.dilation,
        }
    }

    /// Whether the op applies: an odd kernel ("same" padding) and a packed vector of the
    /// right length for `c` channels.
    pub fn supports(&self, c: usize, packed: usize) -> bool {
        self.k % 2 == 1 && self.dilation > 0 && packed == self.packed_len(c)
    }

    pub fn packed_len(&self, c: usize) -> usize {
        let h = self.hidden;
        h * c * self.k + h + c * h + c
    }

    /// (w1, b1, w2, b2) views of the packed vector.
    fn split<'a>(&self, p: &'a [f32], c: usize) -> (&'a [f32], &'a [f32], &'a [f32], &'a [f32]) {
        let h = self.hidden;
        let (w1, rest) = p.split_at(h * c * self.k);
        let (b1, rest) = rest.split_at(h);
        let (w2, b2) = rest.split_at(c * h);
        (w1, b1, w2, b2)
    }
}

impl CustomOp2 for ResBlockOp {
    fn name(&self) -> &'static str {
        "res-block-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, l) = l1.shape().dims3()?;
        let (x, p) = (slice(s1, l1, "res_block")?, slice(s2, l2, "res_block")?);
        if !self.supports(c, p.len()) {
            candle_core::bail!("res_block: {} packed parameters for {c} channels", p.len());
        }
        let prod = Products::training();
        let y = res_block_raw(x, n, self.geo(c, l), self.split(p, c), self.res_scale, prod);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        p: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, c, l) = x.dims3()?;
        let (h, k, r) = (self.hidden, self.k, self.res_scale);
        let pv = p.detach().to_vec1::<f32>()?;
        let (w1, b1, w2, _) = self.split(&pv, c);
        let g = self.geo(c, l);
        let ck = c * k;
        let prod = Products::training();
        let (w1t, w2t) = (
            Weight::new(prod, w1, (h, ck), (1, ck as isize)),
            Weight::new(prod, w2, (h, c), (h as isize, 1)),
        );
        let (dx, dp) = with_data(x, |xs| {
            with_data(dy, |dys| {
                // Pass 1, per tile: recompute the hidden layer, accumulate the parameter
                // gradients, store the hidden pre-activation gradient.
                let mut dhid = vec![0f32; n * h * l];
                let out = SharedOut(dhid.as_mut_ptr());
                let tiles = l.div_ceil(TILE);
                let total = n * tiles;
                let per = total.div_ceil(CHUNKS).max(1);
                let parts: Vec<Vec<f32>> = (0..total.div_ceil(per))
                    .into_par_iter()
                    .map(|chunk| {
                        // [dw1 (H·CK), db1 (H), dw2 (C·H), db2 (C)], the packed layout.
                        let mut acc = vec![0f32; self.packed_len(c)];
                        let (mut col, mut hpre) = (vec![0f32; ck * TILE], vec![0f32; h * TILE]);
                        let (mut hrelu, mut dh) = (vec![0f32; h * TILE], vec![0f32; h * TILE]);
                        for i in chunk * per..((chunk + 1) * per).min(total) {
                            let (item, ti) = (i / tiles, i % tiles);
                            let (t0, nt) = (ti * TILE, TILE.min(l - ti * TILE));
                            let xi = &xs[item * c * l..(item + 1) * c * l];
                            let dyi = &dys[item * c * l + t0..];
                            let col = &mut col[..ck * nt];
                            im2col(xi, g, t0, nt, true, col);
                            for row in dys[item * c * l..(item + 1) * c * l].chunks_exact(l) {
                                prefetch_next_tile(row, t0 + nt, nt);
                            }
                            let (hpre, hrelu, dh) =
                                (&mut hpre[..h * nt], &mut hrelu[..h * nt], &mut dh[..h * nt]);
                            for (row, &bb) in hpre.chunks_exact_mut(nt).zip(b1) {
                                row.fill(bb);
                            }
                            let (dw1, rest) = acc.split_at_mut(h * ck);
                            let (db1, rest) = rest.split_at_mut(h);
                            let (dw2, db2) = rest.split_at_mut(c * h);
                            // SAFETY: every buffer holds the extent its dimensions and strides
                            // give (tile nt ≤ TILE columns; dy rows of stride l from t0).
                            unsafe {
                                // hpre = b1 + W1·col
                                w1t.times(
                                    nt,
                                    hpre.as_mut_ptr(),
                                    (1, nt as isize),
                                    true,
                                    col.as_ptr(),
                                    (1, nt as isize),
                                    1.0,
                                );
                                for (d, &v) in hrelu.iter_mut().zip(hpre.iter()) {
                                    *d = v.max(0.0);
                                }
                                // dW2 += r·dy·reluᵀ
                                gemm_strided(
                                    (c, h, nt),
                                    dw2.as_mut_ptr(),
                                    (1, h as isize),
                                    true,
                                    dyi.as_ptr(),
                                    (1, l as isize),
                                    hrelu.as_ptr(),
                                    (nt as isize, 1),
                                    r,
                                    prod,
                                );
                                // dh = r·W2ᵀ·dy
                                w2t.times(
                                    nt,
                                    dh.as_mut_ptr(),
                                    (1, nt as isize),
                                    false,
                                    dyi.as_ptr(),
                                    (1, l as isize),
                                    r,
                                );
                            }
                            for (co, s) in db2.iter_mut().enumerate() {
                                *s += r * super::fused::sum(&dyi[co * l..co * l + nt]);
                            }
                            for (d, &v) in dh.iter_mut().zip(hpre.iter()) {
                                *d = if v > 0.0 { *d } else { 0.0 };
                            }
                            // SAFETY: as above; the tile's columns of `dhid` are its own.
                            unsafe {
                                // dW1 += dh·colᵀ
                                gemm_strided(
                                    (h, ck, nt),
                                    dw1.as_mut_ptr(),
                                    (1, ck as isize),
                                    true,
                                    dh.as_ptr(),
                                    (1, nt as isize),
                                    col.as_ptr(),
                                    (nt as isize, 1),
                                    1.0,
                                    prod,
                                );
                                for hh in 0..h {
                                    let dst = out.ptr().add((item * h + hh) * l + t0);
                                    std::ptr::copy_nonoverlapping(dh[hh * nt..].as_ptr(), dst, nt);
                                }
                            }
                            for (hh, s) in db1.iter_mut().enumerate() {
                                *s += super::fused::sum(&dh[hh * nt..(hh + 1) * nt]);
                            }
                        }
                        acc
                    })
                    .collect();
                let mut dp = vec![0f32; self.packed_len(c)];
                for part in &parts {
                    for (d, v) in dp.iter_mut().zip(part) {
                        *d += v;
                    }
                }
                // Pass 2: dx = dy + (W1ᵀ ⋆ dhid) ⊙ (x > 0), the transpose as a conv with the
                // kernel flipped (same padding, "same" length).
                let mut wf = vec![0f32; c * h * k];
                for hh in 0..h {
                    for ci in 0..c {
                        for j in 0..k {
                            wf[(ci * h + hh) * k + (k - 1 - j)] = w1[(hh * c + ci) * k + j];
                        }
                    }
                }
                let gd = Geo { c_in: h, ..g };
                let mut dx = conv1d_raw(&dhid, n, gd, &wf, &vec![0f32; c], l, false, false, prod);
                relu_mask(&mut dx, xs);
                for (d, &v) in dx.iter_mut().zip(dys) {
                    *d += v;
                }
                Ok((dx, dp))
            })
        })?;
        Ok((
            Some(tensor(dx, (n, c, l))?),
            Some(tensor(dp, p.shape().clone())?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv1d_graph;
    use crate::ops::test_util::{rand_scaled, rel_max as rel};
    use candle_core::{DType, Device, Var};

    const C: usize = 3;
    const H: usize = 4;
    const K: usize = 3;

    /// The block by the graph ops, from the packed parameter vector.
    fn graph(x: &Tensor, p: &Tensor, dil: usize, r: f64) -> Tensor {
        let w1 = p
            .narrow(0, 0, H * C * K)
            .unwrap()
            .reshape((H, C, K))
            .unwrap();
        let b1 = p.narrow(0, H * C * K, H).unwrap();
        let w2 = p
            .narrow(0, H * C * K + H, C * H)
            .unwrap()
            .reshape((C, H, 1))
            .unwrap();
        let b2 = p.narrow(0, H * C * K + H + C * H, C).unwrap();
        let h = conv1d_graph(&x.relu().unwrap(), &w1, Some(&b1), 1, dil, dil).unwrap();
        let h = conv1d_graph(&h.relu().unwrap(), &w2, Some(&b2), 1, 0, 1).unwrap();
        (x + (h * r).unwrap()).unwrap()
    }

    fn op(dil: usize, r: f64) -> ResBlockOp {
        ResBlockOp {
            hidden: H,
            k: K,
            dilation: dil,
            res_scale: r as f32,
        }
    }

    /// Output and gradients equal the graph path's (batch 2, lengths over several tiles).
    #[test]
    fn res_block_op_matches_graph_path() {
        for (dil, r, l) in [(1, 1.0, 600), (9, 0.5, 530)] {
            let x = Var::from_tensor(&rand_scaled(&[2, C, l], 1, 1.0)).unwrap();
            let p = Var::from_tensor(&rand_scaled(&[op(dil, r).packed_len(C)], 2, 0.6)).unwrap();
            let yf = x.apply_op2(&p, op(dil, r)).unwrap();
            let yg = graph(&x, &p, dil, r);
            assert!(rel(&yf, &yg) < 1e-5, "dil {dil}: forward {}", rel(&yf, &yg));
            let rr = rand_scaled(yf.dims(), 3, 1.0);
            let gf = (yf * &rr).unwrap().sum_all().unwrap().backward().unwrap();
            let gg = (yg * &rr).unwrap().sum_all().unwrap().backward().unwrap();
            for (name, v) in [("x", &x), ("params", &p)] {
                let (a, e) = (gf.get(v).unwrap(), gg.get(v).unwrap());
                assert!(rel(a, e) < 1e-5, "dil {dil}: d{name} rel err {}", rel(a, e));
            }
        }
    }

    /// The op's gradients against f64 central differences of the graph path.
    #[test]
    fn res_block_gradients_match_finite_differences() {
        let (dil, r, l) = (2, 0.7, 12);
        let np = op(dil, r).packed_len(C);
        let x32 = Var::from_tensor(&rand_scaled(&[2, C, l], 4, 1.0)).unwrap();
        let p32 = Var::from_tensor(&rand_scaled(&[np], 5, 0.6)).unwrap();
        let y = x32.apply_op2(&p32, op(dil, r)).unwrap();
        let rr = rand_scaled(y.dims(), 6, 1.0);
        let g = (y * &rr).unwrap().sum_all().unwrap().backward().unwrap();
        let r64 = rr.to_dtype(DType::F64).unwrap();
        let base = |t: &Var| -> Vec<f64> {
            t.to_dtype(DType::F64)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        let (xb, pb) = (base(&x32), base(&p32));
        let f = |xv: &[f64], pv: &[f64]| -> f64 {
            let x = Tensor::from_vec(xv.to_vec(), (2, C, l), &Device::Cpu).unwrap();
            let p = Tensor::from_vec(pv.to_vec(), np, &Device::Cpu).unwrap();
            (graph(&x, &p, dil, r) * &r64)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        for (which, v) in [(0, &x32), (1, &p32)] {
            let got: Vec<f32> = g.get(v).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let n = if which == 0 { xb.len() } else { pb.len() };
            for j in 0..n {
                let (mut xp, mut pp) = (xb.clone(), pb.clone());
                let (mut xm, mut pm) = (xb.clone(), pb.clone());
                if which == 0 {
                    xp[j] += 1e-6;
                    xm[j] -= 1e-6;
                } else {
                    pp[j] += 1e-6;
                    pm[j] -= 1e-6;
                }
                let num = (f(&xp, &pp) - f(&xm, &pm)) / 2e-6;
                let err = (num - got[j] as f64).abs();
                assert!(
                    err < 1e-4 * (1.0 + num.abs()),
                    "input {which}[{j}]: numeric {num}, op {}",
                    got[j]
                );
            }
        }
    }

    /// Output and gradients do not depend on the thread count (fixed-chunk sums).
    #[test]
    fn res_block_op_is_thread_count_independent() {
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    let x = Var::from_tensor(&rand_scaled(&[2, C, 900], 7, 1.0)).unwrap();
                    let p = Var::from_tensor(&rand_scaled(&[op(3, 1.0).packed_len(C)], 8, 0.6))
                        .unwrap();
                    let y = x.apply_op2(&p, op(3, 1.0)).unwrap();
                    let g = y.sum_all().unwrap().backward().unwrap();
                    let mut out: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
                    for v in [&x, &p] {
                        out.extend(
                            g.get(v)
                                .unwrap()
                                .flatten_all()
                                .unwrap()
                                .to_vec1::<f32>()
                                .unwrap(),
                        );
                    }
                    out
                })
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(3));
    }
}
