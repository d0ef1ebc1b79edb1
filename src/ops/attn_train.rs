//! Trainable factorised self-attention for the CPU, straight from the fused `c_attn` output.
//!
//! The graph path splits `c` (B, L, 3S) into q, k, v with three `narrow`s, splits heads and
//! regroups positions into blocks with transposes and copies, attends, and undoes it all; in the
//! backward pass each `narrow` becomes a full-size zero-padded tensor that is then summed. Here
//! one custom op reads q, k and v of every (item, head, group) problem directly from `c` by
//! index, attends, and writes the output (forward) or `dc` (backward) in place: the official
//! patterns' problems cover disjoint positions, so the writes never overlap.
//!
//! Groups (`bc` = block length, `nb` = L / bc blocks), as `prior::attention` defines them:
//! - block: group g is positions g·bc … g·bc + bc − 1, causal;
//! - transpose-block: group g is positions g, g + bc, g + 2·bc, …, causal;
//! - previous-block: queries of block g attend to all keys of block g − 1 (block 0 to zeros,
//!   which gives exactly zero output and no gradient).

use super::custom::{slice, SharedOut};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Softmax weights of one (len × d) problem into `p` (len × len); `causal` keeps key j ≤ i.
/// The official mask sets hidden scores to −1e9, which is exactly a zero weight here since every
/// causal row keeps its diagonal.
pub(crate) fn weights(
    q: &[f32],
    k: &[f32],
    l: usize,
    d: usize,
    causal: bool,
    scale: f32,
    p: &mut [f32],
) {
    for i in 0..l {
        let row = &mut p[i * l..(i + 1) * l];
        let kmax = if causal { i + 1 } else { l };
        let qi = &q[i * d..(i + 1) * d];
        let mut m = f32::NEG_INFINITY;
        for j in 0..kmax {
            let s = crate::ops::fused::dot(qi, &k[j * d..(j + 1) * d]) * scale;
            row[j] = s;
            m = m.max(s);
        }
        for v in &mut row[..kmax] {
            *v = crate::ops::fused::exp(*v - m);
        }
        let z = crate::ops::fused::sum(&row[..kmax]);
        for v in &mut row[..kmax] {
            *v /= z;
        }
        row[kmax..].fill(0.0);
    }
}

/// `o = p · v` for one problem.
pub(crate) fn apply(p: &[f32], v: &[f32], l: usize, d: usize, o: &mut [f32]) {
    for a in 0..l {
        let orow = &mut o[a * d..(a + 1) * d];
        orow.fill(0.0);
        for (j, &pj) in p[a * l..(a + 1) * l].iter().enumerate() {
            if pj != 0.0 {
                for (ov, &vj) in orow.iter_mut().zip(&v[j * d..(j + 1) * d]) {
                    *ov += pj * vj;
                }
            }
        }
    }
}

/// Gradients of one problem given the output gradient `g` and the weights `p`: writes `dq`,
/// `dk`, `dv` (each len × d, overwritten); `ds` is scratch (len × len).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    g: &[f32],
    p: &[f32],
    (l, d, scale): (usize, usize, f32),
    ds: &mut [f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    dq.fill(0.0);
    dk.fill(0.0);
    dv.fill(0.0);
    // dp = g·vᵀ; ds = p ⊙ (dp − Σ_j p·dp)·scale; dv = pᵀ·g.
    for a in 0..l {
        let ga = &g[a * d..(a + 1) * d];
        let pr = &p[a * l..(a + 1) * l];
        let mut dot = 0f32;
        for j in 0..l {
            let dp = if pr[j] != 0.0 {
                crate::ops::fused::dot(ga, &v[j * d..(j + 1) * d])
            } else {
                0.0
            };
            ds[a * l + j] = dp;
            dot += pr[j] * dp;
        }
        for j in 0..l {
            ds[a * l + j] = pr[j] * (ds[a * l + j] - dot) * scale;
            if pr[j] != 0.0 {
                for (x, &y) in dv[j * d..(j + 1) * d].iter_mut().zip(ga) {
                    *x += pr[j] * y;
                }
            }
        }
    }
    // dq = ds·k; dk = dsᵀ·q.
    for a in 0..l {
        for j in 0..l {
            let s = ds[a * l + j];
            if s != 0.0 {
                for (x, &y) in dq[a * d..(a + 1) * d]
                    .iter_mut()
                    .zip(&k[j * d..(j + 1) * d])
                {
                    *x += s * y;
                }
                for (x, &y) in dk[j * d..(j + 1) * d]
                    .iter_mut()
                    .zip(&q[a * d..(a + 1) * d])
                {
                    *x += s * y;
                }
            }
        }
    }
}

/// Which factorised pattern a layer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    Block,
    Transpose,
    PrevBlock,
}

/// Factorised self-attention from `c` (B, L, 3S) (q, k, v channel blocks, heads head-major
/// inside each) to (B, L, S). Requires L to be a multiple of `bc`.
#[derive(Debug, Clone, Copy)]
pub struct QkvAttnOp {
    pub pattern: Pattern,
    pub bc: usize,
    pub heads: usize,
    pub scale: f32,
}

impl QkvAttnOp {
    /// (groups, problem length, causal) for sequence length `l`.
    fn shape(&self, l: usize) -> (usize, usize, bool) {
        let nb = l / self.bc;
        match self.pattern {
            Pattern::Block => (nb, self.bc, true),
            Pattern::Transpose => (self.bc, nb, true),
            Pattern::PrevBlock => (nb, self.bc, false),
        }
    }

    /// Sequence positions of a group's queries and of its keys (`None`: zero keys).
    fn positions(&self, g: usize, a: usize) -> (usize, Option<usize>) {
        match self.pattern {
            Pattern::Block => (g * self.bc + a, Some(g * self.bc + a)),
            Pattern::Transpose => (a * self.bc + g, Some(a * self.bc + g)),
            Pattern::PrevBlock => (g * self.bc + a, g.checked_sub(1).map(|h| h * self.bc + a)),
        }
    }

    /// Whether the op applies to a sequence of length `l` and `s3` channels.
    pub fn supports(&self, l: usize, s3: usize) -> bool {
        self.bc > 0 && l.is_multiple_of(self.bc) && s3.is_multiple_of(3 * self.heads) && l > 0
    }

    /// Runs `f(item, head, group)` over every problem in parallel, each with per-task buffers.
    fn for_problems(
        &self,
        b: usize,
        l: usize,
        f: impl Fn(usize, usize, usize, &mut Scratch) + Sync,
    ) {
        let (groups, len, _) = self.shape(l);
        (0..b * self.heads * groups).into_par_iter().for_each_init(
            || Scratch::new(len, 0),
            |sc, i| {
                f(
                    i / (self.heads * groups),
                    (i / groups) % self.heads,
                    i % groups,
                    sc,
                )
            },
        );
    }
}

/// Per-task buffers: q, k, v, g, o / dq, dk, dv (len × d each), p and ds (len × len).
struct Scratch {
    bufs: Vec<Vec<f32>>,
    len: usize,
}

impl Scratch {
    fn new(len: usize, d: usize) -> Self {
        Self {
            bufs: vec![vec![0f32; len * d]; 7]
                .into_iter()
                .chain([vec![0f32; len * len], vec![0f32; len * len]])
                .collect(),
            len,
        }
    }

    fn ensure(&mut self, d: usize) {
        if self.bufs[0].len() != self.len * d {
            *self = Self::new(self.len, d);
        }
    }
}

impl QkvAttnOp {
    /// Gathers channel block `which` (0 q, 1 k, 2 v) of one problem into `dst` (len × d).
    #[allow(clippy::too_many_arguments)]
    fn gather(
        &self,
        c: &[f32],
        (l, s): (usize, usize),
        item: usize,
        head: usize,
        g: usize,
        which: usize,
        dst: &mut [f32],
    ) {
        let (_, len, _) = self.shape(l);
        let d = s / self.heads;
        for a in 0..len {
            let (qp, kp) = self.positions(g, a);
            let pos = if which == 0 { Some(qp) } else { kp };
            let row = &mut dst[a * d..(a + 1) * d];
            match pos {
                Some(p) => {
                    let off = (item * l + p) * 3 * s + which * s + head * d;
                    row.copy_from_slice(&c[off..off + d]);
                }
                None => row.fill(0.0),
            }
        }
    }

    /// The forward pass on `c` (b, l, s3) as a slice: the output (b, l, s3 / 3). Also the
    /// inference path of the teacher-forced prior pass (`prior::fast_forward`).
    pub(crate) fn forward_slice(&self, c: &[f32], b: usize, l: usize, s3: usize) -> Vec<f32> {
        let (s, d) = (s3 / 3, s3 / 3 / self.heads);
        let (_, len, causal) = self.shape(l);
        let mut o = vec![0f32; b * l * s];
        let op = SharedOut(o.as_mut_ptr());
        self.for_problems(b, l, |item, head, g, sc| {
            sc.ensure(d);
            let [q, k, v, _, out, _, _, p, _] = &mut sc.bufs[..] else {
                return;
            };
            self.gather(c, (l, s), item, head, g, 0, q);
            self.gather(c, (l, s), item, head, g, 1, k);
            self.gather(c, (l, s), item, head, g, 2, v);
            weights(q, k, len, d, causal, self.scale, p);
            apply(p, v, len, d, out);
            for a in 0..len {
                let pos = self.positions(g, a).0;
                // SAFETY: (item, pos, head) rows belong to this problem alone.
                unsafe {
                    let dst = op.ptr().add((item * l + pos) * s + head * d);
                    std::ptr::copy_nonoverlapping(out[a * d..].as_ptr(), dst, d);
                }
            }
        });
        o
    }
}

impl CustomOp1 for QkvAttnOp {
    fn name(&self) -> &'static str {
        "qkv-attention-train"
    }

    fn cpu_fwd(&self, st: &CpuStorage, lay: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, l, s3) = lay.shape().dims3()?;
        let o = self.forward_slice(slice(st, lay, "qkv attention")?, b, l, s3);
        Ok((CpuStorage::F32(o), Shape::from((b, l, s3 / 3))))
    }

    fn bwd(&self, c: &Tensor, _o: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let (b, l, s3) = c.dims3()?;
        let (s, d) = (s3 / 3, s3 / 3 / self.heads);
        let (_, len, causal) = self.shape(l);
        let cv = c.detach().flatten_all()?.to_vec1::<f32>()?;
        let gv = g.detach().flatten_all()?.to_vec1::<f32>()?;
        let mut dc = vec![0f32; cv.len()];
        let op = SharedOut(dc.as_mut_ptr());
        self.for_problems(b, l, |item, head, grp, sc| {
            sc.ensure(d);
            let [q, k, v, go, dq, dk, dv, p, ds] = &mut sc.bufs[..] else {
                return;
            };
            self.gather(&cv, (l, s), item, head, grp, 0, q);
            self.gather(&cv, (l, s), item, head, grp, 1, k);
            self.gather(&cv, (l, s), item, head, grp, 2, v);
            for a in 0..len {
                let off = (item * l + self.positions(grp, a).0) * s + head * d;
                go[a * d..(a + 1) * d].copy_from_slice(&gv[off..off + d]);
            }
            weights(q, k, len, d, causal, self.scale, p);
            backward(q, k, v, go, p, (len, d, self.scale), ds, dq, dk, dv);
            for a in 0..len {
                let (qp, kp) = self.positions(grp, a);
                // SAFETY: this problem's query rows (q block) and key rows (k, v blocks) of
                // `dc` are written by no other problem (module docs).
                unsafe {
                    let base = op.ptr().add((item * l + qp) * s3 + head * d);
                    std::ptr::copy_nonoverlapping(dq[a * d..].as_ptr(), base, d);
                    if let Some(kp) = kp {
                        let base = op.ptr().add((item * l + kp) * s3 + head * d);
                        std::ptr::copy_nonoverlapping(dk[a * d..].as_ptr(), base.add(s), d);
                        std::ptr::copy_nonoverlapping(dv[a * d..].as_ptr(), base.add(2 * s), d);
                    }
                }
            }
        });
        super::custom::tensor(dc, (b, l, s3)).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{rand_scaled, rel_max as rel};
    use crate::prior::attention::{allowed, score_scale, self_attention_full, AttnGeom, AttnKind};
    use candle_core::{DType, Var};

    const HEADS: usize = 2;
    const BLOCKS: usize = 4;

    fn pattern(kind: AttnKind) -> Pattern {
        match kind {
            AttnKind::Block => Pattern::Block,
            AttnKind::Transpose => Pattern::Transpose,
            _ => Pattern::PrevBlock,
        }
    }

    /// The graph path: narrow q, k, v out of `c` and run `self_attention_full`.
    fn graph(kind: AttnKind, c: &Tensor) -> Tensor {
        let (_, l, s3) = c.dims3().unwrap();
        let s = s3 / 3;
        let g = AttnGeom::new(l, Some(BLOCKS), None).unwrap();
        let (q, k, v) = (
            c.narrow(2, 0, s).unwrap(),
            c.narrow(2, s, s).unwrap(),
            c.narrow(2, 2 * s, s).unwrap(),
        );
        self_attention_full(kind, &g, &q, &k, &v, HEADS).unwrap().0
    }

    fn fused(kind: AttnKind, c: &Tensor) -> Tensor {
        let (_, l, s3) = c.dims3().unwrap();
        let op = QkvAttnOp {
            pattern: pattern(kind),
            bc: l / BLOCKS,
            heads: HEADS,
            scale: score_scale(s3 / 3 / HEADS) as f32,
        };
        assert!(op.supports(l, s3));
        c.apply_op1(op).unwrap()
    }

    const KINDS: [AttnKind; 3] = [AttnKind::Block, AttnKind::Transpose, AttnKind::PrevBlock];

    /// Output and `dc` equal the graph path's (batch 2, 2 heads of 4 channels, 16 positions).
    #[test]
    fn qkv_attention_matches_graph_path() {
        for kind in KINDS {
            let c = Var::from_tensor(&rand_scaled(&[2, 16, 24], 3, 1.5)).unwrap();
            let (yf, yg) = (fused(kind, &c), graph(kind, &c));
            assert!(rel(&yf, &yg) < 1e-5, "{kind:?} forward {}", rel(&yf, &yg));
            let r = rand_scaled(yf.dims(), 4, 1.0);
            let gf = (yf * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gg = (yg * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let (a, e) = (gf.get(&c).unwrap(), gg.get(&c).unwrap());
            assert!(rel(a, e) < 1e-5, "{kind:?} dc {}", rel(a, e));
        }
    }

    /// The patterns by their definition (`attention::allowed`), in f64: (B, L, S) from c.
    fn brute(kind: AttnKind, c: &[f64], (b, l, s3): (usize, usize, usize)) -> Vec<f64> {
        let s = s3 / 3;
        let d = s / HEADS;
        let g = AttnGeom::new(l, Some(BLOCKS), None).unwrap();
        let scale = score_scale(d);
        let at = |i: usize, p: usize, blk: usize, h: usize, e: usize| {
            c[(i * l + p) * s3 + blk * s + h * d + e]
        };
        let mut o = vec![0f64; b * l * s];
        for i in 0..b {
            for h in 0..HEADS {
                for qp in 0..l {
                    let keys: Vec<usize> = (0..l).filter(|&k| allowed(kind, &g, qp, k)).collect();
                    let sc: Vec<f64> = keys
                        .iter()
                        .map(|&k| {
                            (0..d)
                                .map(|e| at(i, qp, 0, h, e) * at(i, k, 1, h, e))
                                .sum::<f64>()
                                * scale
                        })
                        .collect();
                    let m = sc.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = sc.iter().map(|x| (x - m).exp()).sum();
                    for (&k, x) in keys.iter().zip(&sc) {
                        let w = (x - m).exp() / z;
                        for e in 0..d {
                            o[(i * l + qp) * s + h * d + e] += w * at(i, k, 2, h, e);
                        }
                    }
                }
            }
        }
        o
    }

    /// `dc` against f64 central differences of the patterns' definition.
    #[test]
    fn qkv_attention_gradient_matches_finite_differences() {
        for kind in KINDS {
            let shape = [2, 8, 12];
            let c32 = Var::from_tensor(&rand_scaled(&shape, 5, 1.5)).unwrap();
            let y = fused(kind, &c32);
            let r = rand_scaled(y.dims(), 6, 1.0);
            let got: Vec<f32> = (y * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
                .get(&c32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let base: Vec<f64> = rand_scaled(&shape, 5, 1.5)
                .to_dtype(DType::F64)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let rv: Vec<f64> = r
                .to_dtype(DType::F64)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let f = |v: &[f64]| -> f64 {
                brute(kind, v, (2, 8, 12))
                    .iter()
                    .zip(&rv)
                    .map(|(a, b)| a * b)
                    .sum()
            };
            for j in 0..base.len() {
                let (mut p, mut m) = (base.clone(), base.clone());
                p[j] += 1e-6;
                m[j] -= 1e-6;
                let num = (f(&p) - f(&m)) / 2e-6;
                let err = (num - got[j] as f64).abs();
                assert!(
                    err < 1e-4 * (1.0 + num.abs()),
                    "{kind:?} dc[{j}]: numeric {num}, fused {}",
                    got[j]
                );
            }
        }
    }
}
