//! Matrix × few-vectors products for KV-cached sampling, where a step multiplies 1–16 rows
//! by every weight matrix and the cost is reading the weights once from memory.
//!
//! candle's gemm runs these on one thread and needs f32 weights (an f16 model would be cast
//! to f32 on every step, reading 2 + 4 + 4 bytes per weight instead of 2). Here the weights
//! are read once, in their storage dtype (f32, f16, bf16 or int8, widened in registers), split in
//! contiguous row ranges over the rayon threads, with f32 accumulation. Inference only: the
//! result carries no gradient, so callers use it only when nothing is tracked.

use candle_core::{CpuStorage, DType, Device, Layout, Result, Storage, Tensor};
use half::{bf16, f16};
use rayon::prelude::*;

pub use super::wt::Wt;

/// Rows up to which the small-batch path is used (beyond, gemm's blocking wins).
pub const MAX_ROWS: usize = 16;

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `y (m, n) += x[:, k0..k0+rows] · w` where `w` holds rows k0..k0+rows of a (K, n) matrix.
pub(crate) fn axpy_rows<T: Wt>(
    w: &[T],
    n: usize,
    x: &[f32],
    kk: usize,
    k0: usize,
    m: usize,
    y: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if m > 0 && super::gemv512::available() {
        use super::gemv512::axpy_rows as k;
        // Up to four batch rows per pass over the weights: beyond that the multipliers no
        // longer fit in registers, and a second pass mostly hits the cache (small models).
        for m0 in (0..m).step_by(4) {
            let mc = (m - m0).min(4);
            let (xs, ys) = (&x[m0 * kk..], &mut y[m0 * n..]);
            // SAFETY: the features were checked just above; slices bound every access.
            let done = unsafe {
                match mc {
                    1 => k::<T, 1>(w, n, xs, kk, k0, ys),
                    2 => k::<T, 2>(w, n, xs, kk, k0, ys),
                    3 => k::<T, 3>(w, n, xs, kk, k0, ys),
                    _ => k::<T, 4>(w, n, xs, kk, k0, ys),
                }
            };
            if done * n < w.len() {
                axpy_rows_scalar(&w[done * n..], n, xs, kk, k0 + done, mc, ys);
            }
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the features were detected just above; slices bound every access.
        unsafe { axpy_rows_avx2(w, n, x, kk, k0, m, y) };
        return;
    }
    axpy_rows_scalar(w, n, x, kk, k0, m, y);
}

fn axpy_rows_scalar<T: Wt>(
    w: &[T],
    n: usize,
    x: &[f32],
    kk: usize,
    k0: usize,
    m: usize,
    y: &mut [f32],
) {
    for (r, row) in w.chunks_exact(n).enumerate() {
        for mi in 0..m {
            let a = x[mi * kk + k0 + r];
            for (yv, wv) in y[mi * n..(mi + 1) * n].iter_mut().zip(row) {
                *yv += a * wv.to_f32();
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn axpy_rows_avx2<T: Wt>(
    w: &[T],
    n: usize,
    x: &[f32],
    kk: usize,
    k0: usize,
    m: usize,
    y: &mut [f32],
) {
    use std::arch::x86_64::*;
    let rows = w.len() / n;
    assert!(y.len() >= m * n && x.len() >= (m - 1) * kk + k0 + rows);
    let n8 = n / 8 * 8;
    let wp = w.as_ptr();
    let yp = y.as_mut_ptr();
    let mut r = 0;
    // Four weight rows at a time: each 8-column slice of them is loaded (and widened) once
    // and used for every batch row.
    // Broadcast multipliers of the current 4 rows, one set per batch row, hoisted out of
    // the column loop (no index arithmetic or bounds checks in the hot loop).
    let mut av = vec![[_mm256_setzero_ps(); 4]; m];
    while r + 4 <= rows {
        let xa = |mi: usize, q: usize| x[mi * kk + k0 + r + q];
        for (mi, a) in av.iter_mut().enumerate() {
            for (q, v) in a.iter_mut().enumerate() {
                *v = _mm256_set1_ps(xa(mi, q));
            }
        }
        // Software prefetch two row groups ahead: the loop keeps too few cache lines in
        // flight on its own (f16 weights ran at a quarter of the copy bandwidth). Into L2
        // (T1), not L1: the lines two groups ahead (16–128 KB) would not stay in L1 anyway,
        // and on the project's EPYC T1 made mid-prior steps 1.1–1.3× (f32) and 1.4–1.6×
        // (f16, bf16) faster than T0 (bench/RESULTS.md, 2026-12-07).
        let pf = r + 8 + 4 <= rows;
        let line = (64 / std::mem::size_of::<T>()).max(8);
        let mut j = 0;
        while j < n8 {
            if pf && j % line == 0 {
                for q in 8..12 {
                    _mm_prefetch::<_MM_HINT_T1>(wp.add((r + q) * n + j) as *const i8);
                }
            }
            let w0 = T::load8(wp.add(r * n + j));
            let w1 = T::load8(wp.add((r + 1) * n + j));
            let w2 = T::load8(wp.add((r + 2) * n + j));
            let w3 = T::load8(wp.add((r + 3) * n + j));
            for (mi, a) in av.iter().enumerate() {
                let p = yp.add(mi * n + j);
                // Two chains instead of one of four dependent FMAs.
                let s0 = _mm256_fmadd_ps(a[0], w0, _mm256_loadu_ps(p));
                let s1 = _mm256_mul_ps(a[1], w1);
                let s0 = _mm256_fmadd_ps(a[2], w2, s0);
                let s1 = _mm256_fmadd_ps(a[3], w3, s1);
                _mm256_storeu_ps(p, _mm256_add_ps(s0, s1));
            }
            j += 8;
        }
        for j in n8..n {
            for mi in 0..m {
                let mut s = y[mi * n + j];
                for q in 0..4 {
                    s += xa(mi, q) * w[(r + q) * n + j].to_f32();
                }
                y[mi * n + j] = s;
            }
        }
        r += 4;
    }
    if r < rows {
        axpy_rows_scalar(&w[r * n..], n, x, kk, k0 + r, m, y);
    }
}

/// Contiguous slice of a CPU tensor's elements, or None (other device/dtype, strided).
fn with_slice<R>(t: &Tensor, f: impl FnOnce(WSlice<'_>) -> Result<R>) -> Result<Option<R>> {
    let (st, l): (_, &Layout) = t.storage_and_layout();
    match slice_of(&st, l) {
        Some(s) => f(s).map(Some),
        None => Ok(None),
    }
}

/// `f(x, w)` on the elements of an f32 tensor and a bf16 one, read in place; None where either
/// is not a contiguous CPU tensor of that dtype (or `f` declines).
pub(crate) fn with_f32_bf16<R>(
    x: &Tensor,
    w: &Tensor,
    f: impl FnOnce(&[f32], &[bf16]) -> Option<R>,
) -> Result<Option<R>> {
    let r = with_slice(x, |xs| {
        let WSlice::F32(xs) = xs else {
            return Ok(None);
        };
        let r = with_slice(w, |ws| {
            Ok(match ws {
                WSlice::BF16(ws) => f(xs, ws),
                _ => None,
            })
        })?;
        Ok(r.flatten())
    })?;
    Ok(r.flatten())
}

/// The elements a contiguous layout covers in a CPU f32/f16/bf16 storage.
pub(crate) fn slice_of<'a>(st: &'a Storage, l: &Layout) -> Option<WSlice<'a>> {
    let (a, b) = l.contiguous_offsets()?;
    match st {
        Storage::Cpu(CpuStorage::F32(v)) => Some(WSlice::F32(&v[a..b])),
        Storage::Cpu(CpuStorage::F16(v)) => Some(WSlice::F16(&v[a..b])),
        Storage::Cpu(CpuStorage::BF16(v)) => Some(WSlice::BF16(&v[a..b])),
        // Int8 weights (`super::q8`), meaningful only with their scales.
        Storage::Cpu(CpuStorage::U8(v)) => Some(WSlice::I8(super::q8::as_i8(&v[a..b]))),
        _ => None,
    }
}

#[derive(Clone, Copy)]
pub(crate) enum WSlice<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    BF16(&'a [bf16]),
    /// Int8 values of a `super::q8` weight; every output is then multiplied by its scale.
    I8(&'a [i8]),
}

/// `$body` with `$v` bound to the typed slice of a [`WSlice`], whatever its element type
/// (one monomorphised copy per type).
macro_rules! with_elems {
    ($s:expr, $v:ident => $body:expr) => {
        match $s {
            $crate::ops::gemv::WSlice::F32($v) => $body,
            $crate::ops::gemv::WSlice::F16($v) => $body,
            $crate::ops::gemv::WSlice::BF16($v) => $body,
            $crate::ops::gemv::WSlice::I8($v) => $body,
        }
    };
}
pub(crate) use with_elems;

/// How a (K, n) weight is split into contiguous row ranges: (parts, rows per part). Part p
/// holds rows `p·per..min((p+1)·per, K)` (none when `p·per ≥ K`). The split depends only on
/// the pool's thread count, so every path that uses it sums the same partials.
pub(crate) fn row_parts(kk: usize) -> (usize, usize) {
    let parts = rayon::current_num_threads().max(1);
    (parts, kk.div_ceil(parts).div_ceil(4) * 4)
}

/// Below ~64k weights a rayon fork costs more than it saves: [`matmul_rows`] then computes
/// the same parts one after the other (the persistent step still spreads them).
const FORK_MIN: usize = 1 << 16;

/// `x (m, K) · w (K, n)` with the K rows split over threads; partial sums are added in a
/// fixed order, so the result depends only on the thread count.
fn matmul_rows<T: Wt>(x: &[f32], m: usize, w: &[T], n: usize) -> Vec<f32> {
    let kk = w.len() / n;
    let (parts, per) = row_parts(kk);
    let part = |p: usize| {
        let k0 = p * per;
        if k0 >= kk {
            return None;
        }
        let k1 = (k0 + per).min(kk);
        let mut y = vec![0f32; m * n];
        axpy_rows(&w[k0 * n..k1 * n], n, x, kk, k0, m, &mut y);
        Some(y)
    };
    let partials: Vec<Vec<f32>> = if w.len() < FORK_MIN {
        (0..parts).filter_map(part).collect()
    } else {
        (0..parts).into_par_iter().filter_map(part).collect()
    };
    let mut it = partials.into_iter();
    let mut y = it.next().unwrap_or_else(|| vec![0f32; m * n]);
    for p in it {
        for (a, b) in y.iter_mut().zip(&p) {
            *a += b;
        }
    }
    y
}

/// Small-batch `x · w + b` for the official `Conv1D` layout (`w` is (n_in, n_out)), with `w`
/// and `b` in f32, f16 or bf16 and `x` in f32, or `w` int8 with its per-column `scale`
/// (`super::q8`). Returns None where it does not apply (more than [`MAX_ROWS`] rows, not on
/// the CPU, gradients tracked, other dtypes): use the general path then.
pub fn dense_small(
    x: &Tensor,
    w: &Tensor,
    scale: Option<&Tensor>,
    b: &Tensor,
) -> Result<Option<Tensor>> {
    if !matches!(x.device(), Device::Cpu)
        || x.dtype() != DType::F32
        || x.track_op()
        || w.track_op()
        || b.track_op()
        || w.rank() != 2
    {
        return Ok(None);
    }
    let dims = x.dims().to_vec();
    let (kk, n) = w.dims2()?;
    if dims.last() != Some(&kk) {
        return Ok(None);
    }
    let m = x.elem_count() / kk.max(1);
    if m == 0 || m > MAX_ROWS {
        return Ok(None);
    }
    let x = x.contiguous()?;
    let xs = match with_slice(&x, |s| match s {
        WSlice::F32(v) => Ok(v.to_vec()),
        _ => Ok(vec![]),
    })? {
        Some(v) if v.len() == m * kk => v,
        _ => return Ok(None),
    };
    let bias = b.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    let scale = match scale {
        Some(s) => Some(s.to_dtype(DType::F32)?.to_vec1::<f32>()?),
        None => None,
    };
    if bias.len() != n || scale.as_ref().is_some_and(|s| s.len() != n) {
        return Ok(None);
    }
    let y = with_slice(w, |s| {
        // Int8 values without their scales (or scales for a float weight) mean nothing.
        if matches!(s, WSlice::I8(_)) != scale.is_some() {
            return Ok(None);
        }
        Ok(Some(with_elems!(s, v => matmul_rows(&xs, m, v, n))))
    })?;
    let Some(Some(mut y)) = y else {
        return Ok(None);
    };
    for row in y.chunks_exact_mut(n) {
        if let Some(sc) = &scale {
            row.iter_mut().zip(sc).for_each(|(v, s)| *v *= s);
        }
        for (v, bb) in row.iter_mut().zip(&bias) {
            *v += bb;
        }
    }
    let mut out = dims;
    let last = out.len() - 1;
    out[last] = n;
    Tensor::from_vec(y, out, &Device::Cpu).map(Some)
}

/// Dot products of `x (m, K)` with rows `n0..` of `w (n, K)` into `y[mi][n0 + i]`.
pub(crate) fn dot_rows<T: Wt>(w: &[T], kk: usize, x: &[f32], m: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() && kk.is_multiple_of(8) {
        // SAFETY: features detected just above; K is a multiple of 8 and slices bound
        // every access (checked inside).
        unsafe { dot_rows_avx2(w, kk, x, m, out) };
        return;
    }
    dot_rows_scalar(w, kk, x, m, out);
}

/// [`dot_rows`] with each 8-wide weight slice widened once in registers and used for every
/// batch row (the scalar version converted f16 weights one by one: 10 % of an f16 step).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_rows_avx2<T: Wt>(w: &[T], kk: usize, x: &[f32], m: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let rows = w.len() / kk;
    assert!(x.len() >= m * kk && out.len() >= rows * m && kk.is_multiple_of(8));
    let xp = x.as_ptr();
    let mut acc = vec![_mm256_setzero_ps(); m];
    for r in 0..rows {
        let wp = w.as_ptr().add(r * kk);
        acc.iter_mut().for_each(|a| *a = _mm256_setzero_ps());
        let mut j = 0;
        while j < kk {
            let wv = T::load8(wp.add(j));
            for (mi, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(mi * kk + j)), wv, *a);
            }
            j += 8;
        }
        for (mi, a) in acc.iter().enumerate() {
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), *a);
            out[r * m + mi] = lanes.iter().sum();
        }
    }
}

fn dot_rows_scalar<T: Wt>(w: &[T], kk: usize, x: &[f32], m: usize, out: &mut [f32]) {
    // out is (rows, m): row-major per weight row, transposed back by the caller.
    for (row, o) in w.chunks_exact(kk).zip(out.chunks_exact_mut(m)) {
        let mut wf = [0f32; 64];
        let mut acc = vec![[0f32; 8]; m];
        for (c, wc) in row.chunks(64).enumerate() {
            for (d, s) in wf.iter_mut().zip(wc) {
                *d = s.to_f32();
            }
            let len = wc.len();
            for (mi, a) in acc.iter_mut().enumerate() {
                let xr = &x[mi * kk + c * 64..mi * kk + c * 64 + len];
                for (q, (xv, wv)) in xr.iter().zip(&wf[..len]).enumerate() {
                    a[q % 8] += xv * wv;
                }
            }
        }
        for (mi, a) in acc.iter().enumerate() {
            o[mi] = a.iter().sum();
        }
    }
}

/// Small-batch `x · wᵀ` for a (n, K) table (the tied/untied output head). Same conditions
/// as [`dense_small`].
pub fn linear_nt_small(x: &Tensor, w: &Tensor) -> Result<Option<Tensor>> {
    if !matches!(x.device(), Device::Cpu)
        || x.dtype() != DType::F32
        || x.track_op()
        || w.track_op()
        || w.rank() != 2
    {
        return Ok(None);
    }
    let dims = x.dims().to_vec();
    let (n, kk) = w.dims2()?;
    if dims.last() != Some(&kk) {
        return Ok(None);
    }
    let m = x.elem_count() / kk.max(1);
    if m == 0 || m > MAX_ROWS {
        return Ok(None);
    }
    let xs: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let rows_per = 64;
    let run = |out: &mut Vec<f32>, s: WSlice<'_>| {
        let f = |chunk: (usize, &mut [f32])| {
            let (ci, o) = chunk;
            let r0 = ci * rows_per;
            let r1 = (r0 + rows_per).min(n);
            with_elems!(&s, v => dot_rows(&v[r0 * kk..r1 * kk], kk, &xs, m, o))
        };
        out.par_chunks_mut(rows_per * m).enumerate().for_each(f);
    };
    let mut t = vec![0f32; n * m];
    // Output tables are never quantised (no scales here): int8 takes the general path.
    let ran = with_slice(w, |s| {
        if matches!(s, WSlice::I8(_)) {
            return Ok(false);
        }
        run(&mut t, s);
        Ok(true)
    })?;
    if ran != Some(true) {
        return Ok(None);
    }
    // (n, m) → (m, n)
    let mut y = vec![0f32; m * n];
    for r in 0..n {
        for mi in 0..m {
            y[mi * n + r] = t[r * m + mi];
        }
    }
    let mut out = dims;
    let last = out.len() - 1;
    out[last] = n;
    Tensor::from_vec(y, out, &Device::Cpu).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ops::test_util::{max_err, rand_scaled};

    fn rand(shape: (usize, usize), seed: u64) -> Tensor {
        rand_scaled(&[shape.0, shape.1], seed, 1.0)
    }

    #[test]
    fn dense_small_matches_matmul_for_every_dtype_and_shape() {
        // Odd K (row tail) and n (column tail), 1..16 rows, and a size that splits over threads.
        for &(m, kk, n) in &[
            (1, 7, 5),
            (3, 64, 24),
            (4, 301, 67),
            (16, 300, 260),
            (2, 512, 256),
        ] {
            let x = rand((m, kk), 1);
            let w = rand((kk, n), 2);
            let b = rand((1, n), 3).squeeze(0).unwrap();
            for dt in [DType::F32, DType::F16, DType::BF16] {
                let (wd, bd) = (w.to_dtype(dt).unwrap(), b.to_dtype(dt).unwrap());
                let want = x
                    .matmul(&wd.to_dtype(DType::F32).unwrap())
                    .unwrap()
                    .broadcast_add(&bd.to_dtype(DType::F32).unwrap())
                    .unwrap();
                let got = dense_small(&x, &wd, None, &bd).unwrap().expect("fast path");
                assert_eq!(got.dims(), &[m, n]);
                let e = max_err(&got, &want);
                assert!(e < 1e-4, "{dt:?} {m}x{kk}x{n}: {e}");
            }
        }
        // 3-D input keeps its leading dims.
        let x = rand((2, 24), 4).reshape((2, 1, 24)).unwrap();
        let w = rand((24, 8), 5);
        let b = Tensor::zeros(8, DType::F32, &Device::Cpu).unwrap();
        let got = dense_small(&x, &w, None, &b).unwrap().unwrap();
        assert_eq!(got.dims(), &[2, 1, 8]);
        // Too many rows, or tracked weights: not applicable.
        let big = rand((17, 24), 6);
        assert!(dense_small(&big, &w, None, &b).unwrap().is_none());
        let var = candle_core::Var::from_tensor(&w).unwrap();
        assert!(dense_small(&x, var.as_tensor(), None, &b)
            .unwrap()
            .is_none());
    }

    #[test]
    fn dense_small_q8_matches_the_dequantised_product() {
        use crate::ops::q8::{dequantize_cols, quantize_cols};
        for &(m, kk, n) in &[(1, 7, 5), (4, 301, 67), (16, 300, 260), (2, 512, 256)] {
            let x = rand((m, kk), 11);
            let w = rand((kk, n), 12);
            let b = rand((1, n), 13).squeeze(0).unwrap();
            let (q, s) = quantize_cols(&w).unwrap();
            let want = x
                .matmul(&dequantize_cols(&q, &s).unwrap())
                .unwrap()
                .broadcast_add(&b)
                .unwrap();
            let got = dense_small(&x, &q, Some(&s), &b)
                .unwrap()
                .expect("fast path");
            let e = max_err(&got, &want);
            assert!(e < 1e-4, "{m}x{kk}x{n}: {e}");
            // And it is a product with the quantised weights, not the original ones.
            let exact = x.matmul(&w).unwrap().broadcast_add(&b).unwrap();
            assert!(max_err(&got, &exact) > 1e-4);
            // Int8 values without scales, or scales for a float weight: not applicable.
            assert!(dense_small(&x, &q, None, &b).unwrap().is_none());
            assert!(dense_small(&x, &w, Some(&s), &b).unwrap().is_none());
        }
    }

    /// The AVX-512 kernel (1–4 batch rows per pass) gives the AVX2 kernel's bits: 16-, 8- and
    /// 1-column tails, leftover rows, every dtype, 1..=9 batch rows.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_kernel_matches_avx2_bit_for_bit() {
        if !super::super::gemv512::available() {
            eprintln!("no AVX-512 on this CPU: nothing to compare");
            return;
        }
        fn check<T: Wt>(w: &[T], n: usize, x: &[f32], kk: usize, m: usize) {
            let k0 = 2;
            let rows = w.len() / n;
            let mut a = vec![0.25f32; m * n];
            let mut b = a.clone();
            axpy_rows(w, n, x, kk, k0, m, &mut a);
            // SAFETY: AVX2/FMA/F16C are implied by the AVX-512 check above.
            unsafe { axpy_rows_avx2(w, n, x, kk, k0, m, &mut b) };
            assert!(rows > 0 && a == b, "m {m} n {n} rows {rows}");
        }
        for &(m, rows, n) in &[
            (1, 8, 16),
            (2, 7, 27),
            (3, 13, 40),
            (4, 9, 71),
            (5, 6, 33),
            (9, 11, 24),
            (1, 14, 64),
            (2, 13, 123),
            (4, 16, 96),
        ] {
            let kk = rows + 5;
            let x: Vec<f32> = (0..m * kk)
                .map(|i| ((i * 37 % 19) as f32 - 9.0) / 7.0)
                .collect();
            let w: Vec<f32> = (0..rows * n)
                .map(|i| ((i * 53 % 23) as f32 - 11.0) / 5.0)
                .collect();
            check(&w, n, &x, kk, m);
            let h: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
            check(&h, n, &x, kk, m);
            let bh: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
            check(&bh, n, &x, kk, m);
            let q: Vec<i8> = w.iter().map(|&v| (v * 20.0) as i8).collect();
            check(&q, n, &x, kk, m);
        }
    }

    #[test]
    fn linear_nt_small_matches_matmul() {
        for &(m, kk, n) in &[(1, 70, 9), (4, 128, 200), (16, 64, 33), (1, 1024, 130)] {
            let x = rand((m, kk), 7);
            let w = rand((n, kk), 8);
            for dt in [DType::F32, DType::F16, DType::BF16] {
                let wd = w.to_dtype(dt).unwrap();
                let want = x
                    .matmul(&wd.to_dtype(DType::F32).unwrap().t().unwrap())
                    .unwrap();
                let got = linear_nt_small(&x, &wd).unwrap().expect("fast path");
                let e = max_err(&got, &want);
                assert!(e < 1e-4, "{dt:?} {m}x{kk}x{n}: {e}");
            }
        }
    }
}
