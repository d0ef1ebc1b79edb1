//! AVX-512 form of [`super::gemv`]'s `axpy_rows` for 1–4 batch rows (sampling steps): 16
//! columns per instruction and the batch rows' multipliers in registers (a const batch size,
//! where the AVX2 kernel keeps them in a heap vector). Every output element gets the same
//! operations in the same order as the AVX2 kernel (the lane width only groups columns, and
//! the ragged columns go through the same 8-wide and scalar steps), so the two agree bit for
//! bit and every parity figure stays as it was.

#![cfg(target_arch = "x86_64")]

use super::wt::Wt;
use std::arch::x86_64::*;

pub(crate) fn available() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
        && std::is_x86_feature_detected!("f16c")
}

/// `y (M, n) += x[:, k0..k0+rows] · w` for rows of a (K, n) matrix; rows in groups of four
/// as the AVX2 kernel (its leftover rows: the caller's scalar loop). Returns the rows done.
///
/// # Safety
/// [`available`] is true; `w` holds whole rows of length `n`, `x` is (M, kk) with
/// `k0 + rows <= kk`, `y` is (M, n).
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub(crate) unsafe fn axpy_rows<T: Wt, const M: usize>(
    w: &[T],
    n: usize,
    x: &[f32],
    kk: usize,
    k0: usize,
    y: &mut [f32],
) -> usize {
    let rows = w.len() / n;
    assert!(y.len() >= M * n && x.len() >= (M - 1) * kk + k0 + rows);
    let (n16, n8) = (n / 16 * 16, n / 8 * 8);
    let (wp, yp) = (w.as_ptr(), y.as_mut_ptr());
    let line = (64 / std::mem::size_of::<T>()).max(16);
    // bf16: whole 32-column blocks as even and odd columns (`Wt::load32_eo`), so `y`'s
    // blocks are held de-interleaved during the call. Each column still gets the same
    // operations in the same order.
    let n32 = if T::EVEN_ODD { n / 32 * 32 } else { 0 };
    for mi in 0..M {
        deinterleave(yp.add(mi * n), n32);
    }
    let mut r = 0;
    while r + 4 <= rows {
        let mut a = [[_mm512_setzero_ps(); 4]; M];
        for (mi, am) in a.iter_mut().enumerate() {
            for (q, v) in am.iter_mut().enumerate() {
                *v = _mm512_set1_ps(x[mi * kk + k0 + r + q]);
            }
        }
        let pf = r + 12 <= rows;
        // y[p..p + 16] += the four rows' 16 widened weights times their multipliers, in the
        // AVX2 kernel's order (two chains), for one batch row.
        let acc = |am: &[__m512; 4], p: *mut f32, w: [__m512; 4]| {
            let s0 = _mm512_fmadd_ps(am[0], w[0], _mm512_loadu_ps(p));
            let s1 = _mm512_mul_ps(am[1], w[1]);
            let s0 = _mm512_fmadd_ps(am[2], w[2], s0);
            let s1 = _mm512_fmadd_ps(am[3], w[3], s1);
            _mm512_storeu_ps(p, _mm512_add_ps(s0, s1));
        };
        let mut j = 0;
        while j < n32 {
            if pf {
                for q in 8..12 {
                    _mm_prefetch::<_MM_HINT_T1>(wp.add((r + q) * n + j) as *const i8);
                }
            }
            let (e0, o0) = T::load32_eo(wp.add(r * n + j));
            let (e1, o1) = T::load32_eo(wp.add((r + 1) * n + j));
            let (e2, o2) = T::load32_eo(wp.add((r + 2) * n + j));
            let (e3, o3) = T::load32_eo(wp.add((r + 3) * n + j));
            for (mi, am) in a.iter().enumerate() {
                acc(am, yp.add(mi * n + j), [e0, e1, e2, e3]);
                acc(am, yp.add(mi * n + j + 16), [o0, o1, o2, o3]);
            }
            j += 32;
        }
        while j < n16 {
            // Two row groups ahead, into L2: see the AVX2 kernel.
            if pf && j % line == 0 {
                for q in 8..12 {
                    _mm_prefetch::<_MM_HINT_T1>(wp.add((r + q) * n + j) as *const i8);
                }
            }
            let w0 = T::load16(wp.add(r * n + j));
            let w1 = T::load16(wp.add((r + 1) * n + j));
            let w2 = T::load16(wp.add((r + 2) * n + j));
            let w3 = T::load16(wp.add((r + 3) * n + j));
            for (mi, am) in a.iter().enumerate() {
                acc(am, yp.add(mi * n + j), [w0, w1, w2, w3]);
            }
            j += 16;
        }
        // Columns n16..n8: the AVX2 kernel's 8-wide step; n8..n: its scalar step.
        while j < n8 {
            let w0 = T::load8(wp.add(r * n + j));
            let w1 = T::load8(wp.add((r + 1) * n + j));
            let w2 = T::load8(wp.add((r + 2) * n + j));
            let w3 = T::load8(wp.add((r + 3) * n + j));
            for mi in 0..M {
                let p = yp.add(mi * n + j);
                let b = |q: usize| _mm256_set1_ps(x[mi * kk + k0 + r + q]);
                let s0 = _mm256_fmadd_ps(b(0), w0, _mm256_loadu_ps(p));
                let s1 = _mm256_mul_ps(b(1), w1);
                let s0 = _mm256_fmadd_ps(b(2), w2, s0);
                let s1 = _mm256_fmadd_ps(b(3), w3, s1);
                _mm256_storeu_ps(p, _mm256_add_ps(s0, s1));
            }
            j += 8;
        }
        for j in n8..n {
            for mi in 0..M {
                let mut s = y[mi * n + j];
                for q in 0..4 {
                    s += x[mi * kk + k0 + r + q] * w[(r + q) * n + j].to_f32();
                }
                y[mi * n + j] = s;
            }
        }
        r += 4;
    }
    for mi in 0..M {
        interleave(yp.add(mi * n), n32);
    }
    r
}

/// Lane indices that gather the even (then odd) elements of two 16-lane vectors.
#[target_feature(enable = "avx512f")]
unsafe fn eo_index(odd: bool) -> __m512i {
    let mut ix = [0i32; 16];
    for (k, v) in ix.iter_mut().enumerate() {
        *v = (2 * k + odd as usize) as i32;
    }
    _mm512_loadu_si512(ix.as_ptr() as *const __m512i)
}

/// Each 32-float block of `y[..n32]` as (its 16 even elements, its 16 odd elements).
#[target_feature(enable = "avx512f")]
unsafe fn deinterleave(y: *mut f32, n32: usize) {
    if n32 == 0 {
        return;
    }
    let (ie, io) = (eo_index(false), eo_index(true));
    for j in (0..n32).step_by(32) {
        let (a, b) = (_mm512_loadu_ps(y.add(j)), _mm512_loadu_ps(y.add(j + 16)));
        _mm512_storeu_ps(y.add(j), _mm512_permutex2var_ps(a, ie, b));
        _mm512_storeu_ps(y.add(j + 16), _mm512_permutex2var_ps(a, io, b));
    }
}

/// The inverse of [`deinterleave`].
#[target_feature(enable = "avx512f")]
unsafe fn interleave(y: *mut f32, n32: usize) {
    if n32 == 0 {
        return;
    }
    let mut lo = [0i32; 16];
    let mut hi = [0i32; 16];
    for k in 0..16 {
        // Output k reads even k/2 (lane k/2 of the first vector) or odd k/2 (lane 16 + k/2).
        lo[k] = ((k % 2) * 16 + k / 2) as i32;
        hi[k] = (((k + 16) % 2) * 16 + (k + 16) / 2) as i32;
    }
    let il = _mm512_loadu_si512(lo.as_ptr() as *const __m512i);
    let ih = _mm512_loadu_si512(hi.as_ptr() as *const __m512i);
    for j in (0..n32).step_by(32) {
        let (e, o) = (_mm512_loadu_ps(y.add(j)), _mm512_loadu_ps(y.add(j + 16)));
        _mm512_storeu_ps(y.add(j), _mm512_permutex2var_ps(e, il, o));
        _mm512_storeu_ps(y.add(j + 16), _mm512_permutex2var_ps(e, ih, o));
    }
}
