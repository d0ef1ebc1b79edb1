//! Inference-only 1-D convolutions for the CPU, each one GEMM per column tile.
//!
//! The differentiable convolutions in [`crate::ops`] are K shifted matmuls whose partial
//! products candle adds with its parallel elementwise kernels; on 2 cores a third of the
//! VQ-VAE's time went to the main thread waiting on that pool (`BarrierGuard::drop`), and most
//! of the rest to temporaries. Here a layer is computed tile by tile along time: the K taps of
//! a tile are gathered (im2col, with the input ReLU fused into the copy) into a buffer that
//! stays in cache, one `gemm` call multiplies it by the weight as stored by PyTorch
//! ((C_out, C_in·K) row-major), starting from the bias, and the output ReLU or the residual
//! add is applied while the tile is still in cache. A whole `ResConv1DBlock`
//! (`x + r·conv1x1(relu(conv3(relu(x))))`) is one pass. Tiles are split over the rayon
//! threads; each tile's arithmetic is independent of the others, so the result does not
//! depend on the thread count.
//!
//! Every entry point returns `Ok(None)` where it does not apply (not CPU f32, or a gradient
//! is tracked on any operand): the caller then takes the differentiable path.

use super::custom::SharedOut;
pub(crate) use super::products::Products;
use super::products::{gemm_strided, Weight};
use candle_core::{CpuStorage, DType, Device, Result, Storage, Tensor};
use rayon::prelude::*;

/// Output columns per tile: the gathered taps (C_in·K × TILE) of a 64-channel, 3-tap layer
/// take 192 KiB, which stays in L2 together with the weights and the output tile.
pub(crate) const TILE: usize = 256;

/// Whether the fast path may run on these operands.
fn applicable(ts: &[&Tensor]) -> bool {
    ts.iter()
        .all(|t| matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32 && !t.track_op())
}

/// The elements of a (small) f32 tensor, contiguous.
fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

/// Runs `f` on the contiguous f32 elements of `t` (copied only if `t` is strided).
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<Option<R>> {
    let t = t.contiguous()?;
    let (st, l) = t.storage_and_layout();
    let Some((a, b)) = l.contiguous_offsets() else {
        return Ok(None);
    };
    match &*st {
        Storage::Cpu(CpuStorage::F32(v)) => f(&v[a..b]).map(Some),
        _ => Ok(None),
    }
}

/// `dst (m × n, row stride ldd) = [dst +] beta · a (m × k, row stride lda) · b (k × n, row
/// stride ldb)`, single-threaded, on gemm's f32 micro-kernel.
///
/// # Safety
/// Every pointer must be valid for the extents its dimensions and strides give.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    ldd: usize,
    read_dst: bool,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    beta: f32,
) {
    gemm_strided(
        (m, n, k),
        dst,
        (1, ldd as isize),
        read_dst,
        a,
        (1, lda as isize),
        b,
        (1, ldb as isize),
        beta,
        Products::F32,
    );
}

/// Geometry of a strided, dilated, padded convolution over one item.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geo {
    pub c_in: usize,
    pub l_in: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub dil: usize,
}

/// Gathers the taps of output columns `t0..t0 + nt` into `col` ((C_in·K) × nt, row
/// `ci·K + j` = input `x[ci, t·stride + j·dil − pad]`, zero outside the input), applying
/// ReLU on the way when `relu`.
pub(crate) fn im2col(xs: &[f32], g: Geo, t0: usize, nt: usize, relu: bool, col: &mut [f32]) {
    let f = |v: f32| if relu { v.max(0.0) } else { v };
    for ci in 0..g.c_in {
        let xr = &xs[ci * g.l_in..(ci + 1) * g.l_in];
        prefetch_next_tile(xr, (t0 + nt) * g.stride, nt * g.stride);
        for j in 0..g.k {
            let row = &mut col[(ci * g.k + j) * nt..(ci * g.k + j + 1) * nt];
            let off = (j * g.dil) as isize - g.pad as isize;
            // Output column t reads p = (t0 + t)·stride + off; valid for lo ≤ t < hi.
            let s = g.stride as isize;
            let base = t0 as isize * s + off;
            let lo = if base >= 0 {
                0
            } else {
                ((-base) as usize).div_ceil(g.stride)
            }
            .min(nt);
            let hi = if (g.l_in as isize) > base {
                ((g.l_in as isize - base) as usize).div_ceil(g.stride)
            } else {
                0
            }
            .clamp(lo, nt);
            row[..lo].fill(0.0);
            row[hi..].fill(0.0);
            if lo == hi {
                continue;
            }
            let start = (base + lo as isize * s) as usize;
            if g.stride == 1 {
                for (d, &v) in row[lo..hi].iter_mut().zip(&xr[start..start + (hi - lo)]) {
                    *d = f(v);
                }
            } else {
                for (i, d) in row[lo..hi].iter_mut().enumerate() {
                    *d = f(xr[start + i * g.stride]);
                }
            }
        }
    }
}

/// Asks for `row[from..from + len]` in L2: the next tile's part of one input row. A tile reads
/// one stretch from each of C_in rows an item-length apart, more streams than the hardware
/// prefetcher follows, so without this each of them waits on memory.
#[inline]
pub(crate) fn prefetch_next_tile(row: &[f32], from: usize, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        let end = (from + len).min(row.len());
        for i in (from..end).step_by(16) {
            // SAFETY: a prefetch of an in-bounds address; it moves no data.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(row.as_ptr().add(i) as *const i8) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (row, from, len);
}

/// Runs `tile(item, t0, nt, scratch)` for every tile of `n` items × `l_out` columns in
/// parallel; `scratch` is a per-task buffer of `scratch_len` floats.
pub(crate) fn for_tiles(
    n: usize,
    l_out: usize,
    scratch_len: usize,
    tile: impl Fn(usize, usize, usize, &mut [f32]) + Sync,
) {
    let tiles = l_out.div_ceil(TILE);
    // gemm takes another kernel (another summation order) for a 1-column product: never
    // leave a 1-column last tile, so that a column's value does not depend on where the
    // input window starts (chunked passes equal unchunked ones bit for bit).
    let short_tail = l_out > 1 && l_out % TILE == 1;
    (0..n * tiles).into_par_iter().for_each_init(
        || vec![0f32; scratch_len],
        |scratch, i| {
            let (item, ti) = (i / tiles, i % tiles);
            let (mut t0, mut end) = (ti * TILE, (ti * TILE + TILE).min(l_out));
            if short_tail && ti + 2 == tiles {
                end -= 1;
            }
            if short_tail && ti + 1 == tiles {
                t0 -= 1;
            }
            tile(item, t0, end - t0, scratch);
        },
    );
}

/// Fast `conv1d` (PyTorch `Conv1d`: `x` (N, C_in, L), `w` (C_out, C_in, K), optional bias
/// (C_out)), with ReLU optionally applied to the input (`pre_relu`) and to the output
/// (`post_relu`). `None` where not applicable (see the module docs).
#[allow(clippy::too_many_arguments)]
pub fn conv1d(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    padding: usize,
    dilation: usize,
    pre_relu: bool,
    post_relu: bool,
) -> Result<Option<Tensor>> {
    let mut ops = vec![x, w];
    ops.extend(b);
    if !applicable(&ops) {
        return Ok(None);
    }
    let (n, c_in, l) = x.dims3()?;
    let (c_out, wc_in, k) = w.dims3()?;
    let l_out = super::conv1d_out_len(c_in, wc_in, l, k, stride, padding, dilation)?;
    let wv = to_vec(w)?;
    let bv = match b {
        Some(b) => to_vec(b)?,
        None => vec![0f32; c_out],
    };
    if bv.len() != c_out {
        candle_core::bail!("conv1d: bias has {} entries for {c_out} channels", bv.len());
    }
    let g = Geo {
        c_in,
        l_in: l,
        k,
        stride,
        pad: padding,
        dil: dilation,
    };
    let out = with_f32(x, |xs| {
        Ok(conv1d_raw(
            xs,
            n,
            g,
            &wv,
            &bv,
            l_out,
            pre_relu,
            post_relu,
            Products::F32,
        ))
    })?;
    match out {
        Some(out) => Tensor::from_vec(out, (n, c_out, l_out), &Device::Cpu).map(Some),
        None => Ok(None),
    }
}

/// [`conv1d`] on raw row-major slices: `xs` (n, g.c_in, g.l_in), `wv` (C_out, C_in·K), `bv`
/// (C_out); returns (n, C_out, l_out).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv1d_raw(
    xs: &[f32],
    n: usize,
    g: Geo,
    wv: &[f32],
    bv: &[f32],
    l_out: usize,
    pre_relu: bool,
    post_relu: bool,
    prod: Products,
) -> Vec<f32> {
    let (c_in, l, c_out) = (g.c_in, g.l_in, bv.len());
    let kk = c_in * g.k;
    debug_assert_eq!(wv.len(), c_out * kk);
    let mut out = Vec::<f32>::with_capacity(n * c_out * l_out);
    // Every tile writes only its own columns of the output (disjoint element sets).
    let op = SharedOut(out.as_mut_ptr());
    let wt = Weight::new(prod, wv, (c_out, kk), (1, kk as isize));
    for_tiles(n, l_out, kk * TILE, |item, t0, nt, col| {
        let xi = &xs[item * c_in * l..(item + 1) * c_in * l];
        im2col(xi, g, t0, nt, pre_relu, &mut col[..kk * nt]);
        // SAFETY: rows co of this item at columns t0..t0+nt belong to this tile only.
        unsafe {
            let dst = op.ptr().add(item * c_out * l_out + t0);
            for (co, &bb) in bv.iter().enumerate() {
                let d = dst.add(co * l_out);
                for i in 0..nt {
                    d.add(i).write(bb);
                }
            }
            wt.times(
                nt,
                dst,
                (1, l_out as isize),
                true,
                col.as_ptr(),
                (1, nt as isize),
                1.0,
            );
            if post_relu {
                for co in 0..c_out {
                    for v in std::slice::from_raw_parts_mut(dst.add(co * l_out), nt) {
                        *v = v.max(0.0);
                    }
                }
            }
        }
    });
    // SAFETY: the tiles wrote every element (each column range of every row, see above).
    unsafe { out.set_len(n * c_out * l_out) };
    out
}

/// Fast official `ResConv1DBlock`: `x + r · (conv1x1(relu(conv_k(relu(x)))))`, where
/// `w1` (H, C, K) is the dilated conv (padding `dilation·(K−1)/2`, same length) and `w2`
/// (C, H, 1) the 1×1 conv. `None` where not applicable.
pub fn res_block(
    x: &Tensor,
    w1: &Tensor,
    b1: &Tensor,
    w2: &Tensor,
    b2: &Tensor,
    dilation: usize,
    res_scale: f64,
) -> Result<Option<Tensor>> {
    if !applicable(&[x, w1, b1, w2, b2]) {
        return Ok(None);
    }
    let (n, c, l) = x.dims3()?;
    let (h, wc, k) = w1.dims3()?;
    let (c2, h2, k2) = w2.dims3()?;
    if wc != c || c2 != c || h2 != h || k2 != 1 || k % 2 == 0 || dilation == 0 {
        return Ok(None);
    }
    let g = Geo {
        c_in: c,
        l_in: l,
        k,
        stride: 1,
        pad: dilation * (k - 1) / 2,
        dil: dilation,
    };
    let (w1v, b1v, w2v, b2v) = (to_vec(w1)?, to_vec(b1)?, to_vec(w2)?, to_vec(b2)?);
    if b1v.len() != h || b2v.len() != c {
        return Ok(None);
    }
    let out = with_f32(x, |xs| {
        Ok(res_block_raw(
            xs,
            n,
            g,
            (&w1v, &b1v, &w2v, &b2v),
            res_scale as f32,
            Products::F32,
        ))
    })?;
    match out {
        Some(out) => Tensor::from_vec(out, (n, c, l), &Device::Cpu).map(Some),
        None => Ok(None),
    }
}

/// [`res_block`] on raw row-major slices: `xs` (n, g.c_in, g.l_in), weights as PyTorch stores
/// them (w1 (H, C·K), b1 (H), w2 (C, H), b2 (C)), residual scale `r`.
pub(crate) fn res_block_raw(
    xs: &[f32],
    n: usize,
    g: Geo,
    (w1v, b1v, w2v, b2v): (&[f32], &[f32], &[f32], &[f32]),
    r: f32,
    prod: Products,
) -> Vec<f32> {
    let (c, l, h) = (g.c_in, g.l_in, b1v.len());
    let kk = c * g.k;
    let mut out = Vec::<f32>::with_capacity(n * c * l);
    // Every tile writes only its own columns of the output (disjoint element sets).
    let op = SharedOut(out.as_mut_ptr());
    let (w1, w2) = (
        Weight::new(prod, w1v, (h, kk), (1, kk as isize)),
        Weight::new(prod, w2v, (c, h), (1, h as isize)),
    );
    for_tiles(n, l, (kk + h) * TILE, |item, t0, nt, scratch| {
        let xi = &xs[item * c * l..(item + 1) * c * l];
        let (col, hid) = scratch.split_at_mut(kk * TILE);
        let (col, hid) = (&mut col[..kk * nt], &mut hid[..h * nt]);
        im2col(xi, g, t0, nt, true, col);
        for (row, &bb) in hid.chunks_exact_mut(nt).zip(b1v) {
            row.fill(bb);
        }
        // SAFETY: the buffers hold the extents given; the output columns t0..t0+nt of
        // this item belong to this tile only.
        unsafe {
            w1.times(
                nt,
                hid.as_mut_ptr(),
                (1, nt as isize),
                true,
                col.as_ptr(),
                (1, nt as isize),
                1.0,
            );
            for v in hid.iter_mut() {
                *v = v.max(0.0);
            }
            let dst = op.ptr().add(item * c * l + t0);
            for (co, &bb) in b2v.iter().enumerate() {
                let d = dst.add(co * l);
                let src = &xi[co * l + t0..co * l + t0 + nt];
                let rb = r * bb;
                for (i, &xv) in src.iter().enumerate() {
                    d.add(i).write(xv + rb);
                }
            }
            w2.times(
                nt,
                dst,
                (1, l as isize),
                true,
                hid.as_ptr(),
                (1, nt as isize),
                r,
            );
        }
    });
    // SAFETY: the tiles wrote every element (each column range of every row).
    unsafe { out.set_len(n * c * l) };
    out
}

/// Fast `conv_transpose1d` (PyTorch `ConvTranspose1d`, no output padding, dilation 1: `x`
/// (N, C_in, L), `w` (C_in, C_out, K), output length `(L−1)·stride − 2·padding + K`).
///
/// Output phase r (positions ≡ r mod stride, before cropping) at index q is
/// `Σ_mi W[:, :, r + mi·stride]ᵀ · x[q − mi]`; all phases come from one GEMM of the packed
/// weight ((stride·C_out) × (M·C_in), zeros where a phase has fewer taps) with the gathered
/// inputs `x[q − mi]`, then are interleaved into the output with the bias. `None` where not
/// applicable.
pub fn conv_transpose1d(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Option<Tensor>> {
    let mut ops = vec![x, w];
    ops.extend(b);
    if !applicable(&ops) {
        return Ok(None);
    }
    let (n, c_in, l) = x.dims3()?;
    let (wc_in, c_out, k) = w.dims3()?;
    let l_out = super::conv_transpose1d_out_len(c_in, wc_in, l, k, stride, padding)?;
    let wv = to_vec(w)?;
    let bv = match b {
        Some(b) => to_vec(b)?,
        None => vec![0f32; c_out],
    };
    if bv.len() != c_out {
        candle_core::bail!(
            "conv_transpose1d: bias has {} entries for {c_out} channels",
            bv.len()
        );
    }
    let out = with_f32(x, |xs| {
        Ok(conv_transpose1d_raw(
            xs,
            n,
            c_in,
            l,
            &wv,
            &bv,
            k,
            stride,
            padding,
            l_out,
            Products::F32,
        ))
    })?;
    match out {
        Some(out) => Tensor::from_vec(out, (n, c_out, l_out), &Device::Cpu).map(Some),
        None => Ok(None),
    }
}

/// [`conv_transpose1d`] on raw row-major slices: `xs` (n, c_in, l), `wv` (C_in, C_out, K),
/// `bv` (C_out); returns (n, C_out, l_out).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_transpose1d_raw(
    xs: &[f32],
    n: usize,
    c_in: usize,
    l: usize,
    wv: &[f32],
    bv: &[f32],
    k: usize,
    stride: usize,
    padding: usize,
    l_out: usize,
    prod: Products,
) -> Vec<f32> {
    let c_out = bv.len();
    let m = k.div_ceil(stride);
    let q_len = l + m - 1; // q·stride + r covers 0..full
                           // Packed weight: row (r·C_out + co), column (mi·C_in + ci) = W[ci, co, r + mi·stride].
    let (rows, kk) = (stride * c_out, m * c_in);
    let mut wp = vec![0f32; rows * kk];
    for r in 0..stride {
        for mi in 0..m {
            let tap = r + mi * stride;
            if tap >= k {
                continue;
            }
            for ci in 0..c_in {
                for co in 0..c_out {
                    wp[(r * c_out + co) * kk + mi * c_in + ci] = wv[(ci * c_out + co) * k + tap];
                }
            }
        }
    }
    // Gathering x[ci, q − mi] is an im2col with taps reversed: column q reads
    // p = q + (m − 1 − mi) − (m − 1); rows are ordered (ci, mi') with mi' = m − 1 − mi.
    // The packed weight is ordered (mi, ci); reorder it to (ci, mi') to match.
    let mut wq = vec![0f32; rows * kk];
    for row in 0..rows {
        for mi in 0..m {
            for ci in 0..c_in {
                wq[row * kk + ci * m + (m - 1 - mi)] = wp[row * kk + mi * c_in + ci];
            }
        }
    }
    let g = Geo {
        c_in,
        l_in: l,
        k: m,
        stride: 1,
        pad: m - 1,
        dil: 1,
    };
    let mut out = Vec::<f32>::with_capacity(n * c_out * l_out);
    // Every tile writes only its own columns of the output (disjoint element sets).
    let op = SharedOut(out.as_mut_ptr());
    let wt = Weight::new(prod, &wq, (rows, kk), (1, kk as isize));
    for_tiles(n, q_len, (kk + rows) * TILE, |item, q0, nq, scratch| {
        let xi = &xs[item * c_in * l..(item + 1) * c_in * l];
        let (col, tmp) = scratch.split_at_mut(kk * TILE);
        let (col, tmp) = (&mut col[..kk * nq], &mut tmp[..rows * nq]);
        im2col(xi, g, q0, nq, false, col);
        // SAFETY: buffer extents as given; output positions (q0..q0+nq)·stride + r − pad
        // are this tile's alone.
        unsafe {
            wt.times(
                nq,
                tmp.as_mut_ptr(),
                (1, nq as isize),
                false,
                col.as_ptr(),
                (1, nq as isize),
                1.0,
            );
            for r in 0..stride {
                for (co, &bb) in bv.iter().enumerate() {
                    let src = &tmp[(r * c_out + co) * nq..(r * c_out + co + 1) * nq];
                    let dst = op.ptr().add((item * c_out + co) * l_out);
                    // Columns i with padding ≤ (q0 + i)·stride + r < padding + l_out.
                    let first = q0 * stride + r;
                    let i_lo = padding.saturating_sub(first).div_ceil(stride).min(nq);
                    let i_hi = (padding + l_out)
                        .saturating_sub(first)
                        .div_ceil(stride)
                        .clamp(i_lo, nq);
                    if i_lo < i_hi {
                        let d = dst.add(first + i_lo * stride - padding);
                        for (i, &v) in src[i_lo..i_hi].iter().enumerate() {
                            d.add(i * stride).write(v + bb);
                        }
                    }
                }
            }
        }
    });
    // SAFETY: the tiles wrote every element (each column range of every row, see above).
    unsafe { out.set_len(n * c_out * l_out) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ops::test_util::{max_err, rand_scaled};

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        rand_scaled(shape, seed, 1.0)
    }

    /// Direct definition of PyTorch's Conv1d, in f64.
    fn conv_ref(x: &Tensor, w: &Tensor, b: &Tensor, s: usize, p: usize, d: usize) -> Tensor {
        let (n, ci, l) = x.dims3().unwrap();
        let (co, _, k) = w.dims3().unwrap();
        let lo = (l + 2 * p - d * (k - 1) - 1) / s + 1;
        let xv: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let wv: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
        let bv: Vec<f32> = b.to_vec1().unwrap();
        let mut y = vec![0f32; n * co * lo];
        for b_ in 0..n {
            for o in 0..co {
                for t in 0..lo {
                    let mut acc = bv[o] as f64;
                    for i in 0..ci {
                        for j in 0..k {
                            let pos = (t * s + j * d) as isize - p as isize;
                            if pos >= 0 && (pos as usize) < l {
                                acc += wv[(o * ci + i) * k + j] as f64
                                    * xv[(b_ * ci + i) * l + pos as usize] as f64;
                            }
                        }
                    }
                    y[(b_ * co + o) * lo + t] = acc as f32;
                }
            }
        }
        Tensor::from_vec(y, (n, co, lo), &Device::Cpu).unwrap()
    }

    /// Direct definition of PyTorch's ConvTranspose1d, in f64.
    fn conv_t_ref(x: &Tensor, w: &Tensor, b: &Tensor, s: usize, p: usize) -> Tensor {
        let (n, ci, l) = x.dims3().unwrap();
        let (_, co, k) = w.dims3().unwrap();
        let full = (l - 1) * s + k;
        let lo = full - 2 * p;
        let xv: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let wv: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
        let bv: Vec<f32> = b.to_vec1().unwrap();
        let mut acc = vec![0f64; n * co * full];
        for b_ in 0..n {
            for i in 0..ci {
                for t in 0..l {
                    for o in 0..co {
                        for j in 0..k {
                            acc[(b_ * co + o) * full + t * s + j] +=
                                wv[(i * co + o) * k + j] as f64 * xv[(b_ * ci + i) * l + t] as f64;
                        }
                    }
                }
            }
        }
        let mut y = vec![0f32; n * co * lo];
        for b_ in 0..n {
            for o in 0..co {
                for t in 0..lo {
                    y[(b_ * co + o) * lo + t] =
                        (acc[(b_ * co + o) * full + t + p] + bv[o] as f64) as f32;
                }
            }
        }
        Tensor::from_vec(y, (n, co, lo), &Device::Cpu).unwrap()
    }

    #[test]
    fn ops_conv_fast_matches_definition() {
        // (n, c_in, l, c_out, k, stride, pad, dil): strided encoder downs, dilated resnet
        // taps wider than a tile, a 1-channel input, an output shorter than one tile and one
        // spanning several tiles with a ragged last tile.
        for (case, &(n, ci, l, co, k, s, p, d)) in [
            (1, 1, 40, 8, 4, 2, 1, 1),
            (2, 5, 600, 7, 3, 1, 27, 27),
            (1, 6, 1031, 4, 3, 1, 300, 300),
            (2, 3, 17, 5, 4, 2, 1, 1),
            (1, 4, 9, 3, 1, 1, 0, 1),
            (1, 3, 530, 2, 5, 3, 2, 2),
        ]
        .iter()
        .enumerate()
        {
            let x = rand(&[n, ci, l], 10 + case as u64);
            let w = rand(&[co, ci, k], 20 + case as u64);
            let b = rand(&[co], 30 + case as u64);
            let want = conv_ref(&x, &w, &b, s, p, d);
            let got = conv1d(&x, &w, Some(&b), s, p, d, false, false)
                .unwrap()
                .expect("fast path");
            assert!(max_err(&got, &want) < 1e-5, "case {case}");
            // Fused ReLUs = the same conv of relu(x), then relu.
            let want = conv_ref(&x.relu().unwrap(), &w, &b, s, p, d)
                .relu()
                .unwrap();
            let got = conv1d(&x, &w, Some(&b), s, p, d, true, true)
                .unwrap()
                .unwrap();
            assert!(max_err(&got, &want) < 1e-5, "case {case} relu");
            // It also agrees with the differentiable path it replaces.
            let slow = crate::ops::conv1d_graph(&x.relu().unwrap(), &w, Some(&b), s, p, d)
                .unwrap()
                .relu()
                .unwrap();
            assert!(max_err(&got, &slow) < 1e-5, "case {case} vs ops::conv1d");
        }
    }

    #[test]
    fn ops_conv_transpose_fast_matches_definition() {
        for (case, &(n, ci, l, co, k, s, p)) in [
            (1, 4, 300, 5, 4, 2, 1),
            (2, 3, 7, 2, 4, 2, 1),
            (1, 2, 5, 3, 3, 2, 0),
            (1, 3, 6, 2, 5, 2, 2),
            (1, 2, 301, 3, 6, 3, 1),
            (1, 2, 4, 2, 1, 1, 0),
        ]
        .iter()
        .enumerate()
        {
            let x = rand(&[n, ci, l], 40 + case as u64);
            let w = rand(&[ci, co, k], 50 + case as u64);
            let b = rand(&[co], 60 + case as u64);
            let want = conv_t_ref(&x, &w, &b, s, p);
            let got = conv_transpose1d(&x, &w, Some(&b), s, p)
                .unwrap()
                .expect("fast");
            assert!(max_err(&got, &want) < 1e-5, "case {case}");
            let slow = crate::ops::conv_transpose1d_graph(&x, &w, Some(&b), s, p).unwrap();
            assert!(max_err(&got, &slow) < 1e-5, "case {case} vs the graph path");
        }
    }

    #[test]
    fn ops_res_block_fast_matches_composition() {
        for (case, &(n, c, h, l, d, r)) in [
            (1, 6, 5, 700, 9, 1.0),
            (2, 4, 4, 31, 3, 0.5),
            (1, 3, 2, 5, 27, 1.0),
        ]
        .iter()
        .enumerate()
        {
            let x = rand(&[n, c, l], 70 + case as u64);
            let w1 = rand(&[h, c, 3], 80 + case as u64);
            let b1 = rand(&[h], 90 + case as u64);
            let w2 = rand(&[c, h, 1], 100 + case as u64);
            let b2 = rand(&[c], 110 + case as u64);
            let hid = conv_ref(&x.relu().unwrap(), &w1, &b1, 1, d, d)
                .relu()
                .unwrap();
            let want = (&x + (conv_ref(&hid, &w2, &b2, 1, 0, 1) * r).unwrap()).unwrap();
            let got = res_block(&x, &w1, &b1, &w2, &b2, d, r)
                .unwrap()
                .expect("fast");
            assert!(max_err(&got, &want) < 1e-5, "case {case}");
        }
    }

    #[test]
    fn ops_conv_fast_is_independent_of_the_window() {
        // A window of the input gives bit-identical outputs to the same columns of the whole
        // (what chunked encode/decode rely on): tiles start at other offsets, the last one
        // is ragged, and the result must not depend on it.
        let scale = |t: Tensor| (t * 30.0).unwrap();
        let l = 1000;
        for &(ci, co) in &[(8usize, 1usize), (8, 8), (64, 64)] {
            let x = scale(rand(&[1, ci, l], 1));
            let w = rand(&[co, ci, 3], 2);
            let full = conv1d(&x, &w, None, 1, 1, 1, false, false)
                .unwrap()
                .unwrap();
            let wt = rand(&[ci, co, 4], 3);
            let full_t = conv_transpose1d(&x, &wt, None, 2, 1).unwrap().unwrap();
            for (s, len) in [(100usize, 37usize), (3, 300), (500, 7), (1, 600), (2, 257)] {
                let xw = x.narrow(2, s - 1, len + 2).unwrap();
                let part = conv1d(&xw, &w, None, 1, 0, 1, false, false)
                    .unwrap()
                    .unwrap();
                assert_eq!(max_err(&part, &full.narrow(2, s, len).unwrap()), 0.0);
                // Transposed: window output u is full output u + 2(s − 1).
                let part = conv_transpose1d(&xw, &wt, None, 2, 1).unwrap().unwrap();
                let want = full_t.narrow(2, 2 * s, 2 * len).unwrap();
                assert_eq!(max_err(&part.narrow(2, 2, 2 * len).unwrap(), &want), 0.0);
            }
        }
        let (c, h) = (16, 16);
        let x = scale(rand(&[1, c, l], 4));
        let (w1, b1) = (rand(&[h, c, 3], 5), rand(&[h], 6));
        let (w2, b2) = (rand(&[c, h, 1], 7), rand(&[c], 8));
        let full = res_block(&x, &w1, &b1, &w2, &b2, 3, 1.0).unwrap().unwrap();
        for (s, len) in [(100usize, 37usize), (3, 300), (500, 7)] {
            let xw = x.narrow(2, s - 3, len + 6).unwrap();
            let part = res_block(&xw, &w1, &b1, &w2, &b2, 3, 1.0).unwrap().unwrap();
            let got = part.narrow(2, 3, len).unwrap();
            assert_eq!(
                max_err(&got, &full.narrow(2, s, len).unwrap()),
                0.0,
                "{s} {len}"
            );
        }
    }

    #[test]
    fn ops_conv_fast_declines_tracked_and_other_dtypes() {
        let x = rand(&[1, 2, 8], 1);
        let w = rand(&[3, 2, 3], 2);
        let var = candle_core::Var::from_tensor(&w).unwrap();
        assert!(conv1d(&x, var.as_tensor(), None, 1, 1, 1, false, false)
            .unwrap()
            .is_none());
        let xh = x.to_dtype(DType::F16).unwrap();
        let wh = w.to_dtype(DType::F16).unwrap();
        assert!(conv1d(&xh, &wh, None, 1, 1, 1, false, false)
            .unwrap()
            .is_none());
        let wt = rand(&[2, 3, 4], 3);
        let vt = candle_core::Var::from_tensor(&wt).unwrap();
        assert!(conv_transpose1d(&x, vt.as_tensor(), None, 2, 1)
            .unwrap()
            .is_none());
        // Bad geometry is an error, as on the general path.
        assert!(conv1d(&x, &rand(&[3, 2, 20], 4), None, 1, 0, 1, false, false).is_err());
    }
}
