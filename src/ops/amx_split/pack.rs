//! Splitting f32 operands into (hi, lo) bf16 parts and packing them as AMX tiles: A as rows of
//! 32 values, B as pairs of rows (the layout `tdpbf16ps` multiplies), with AVX-512 conversions
//! (`vcvtne2ps2bf16`) and a 16 × 16 transpose where B's K runs along memory. On x86_64 the
//! packing functions use AVX512-BF16 unconditionally: callers hold [`super::supported`].

use super::super::amx::to_bf16_bits;

/// `x` as its (hi, lo) bf16 bits.
#[inline(always)]
pub(super) fn split(x: f32) -> (u16, u16) {
    let hi = to_bf16_bits(x);
    let lo = to_bf16_bits(x - f32::from_bits((hi as u32) << 16));
    (hi, lo)
}

/// 32 consecutive f32 at `x` as 32 hi and 32 lo bf16.
#[inline]
unsafe fn split32(x: *const f32, hi: *mut u16, lo: *mut u16) {
    #[cfg(target_arch = "x86_64")]
    return split32_avx512(x, hi, lo);
    #[allow(unreachable_code)]
    for i in 0..32 {
        (*hi.add(i), *lo.add(i)) = split(*x.add(i));
    }
}

/// 16 columns of rows r0 and r1 as pairs (r0 low, r1 high), hi and lo.
#[inline]
unsafe fn split_pairs(r0: *const f32, r1: *const f32, hi: *mut u32, lo: *mut u32) {
    #[cfg(target_arch = "x86_64")]
    return split_pairs_avx512(r0, r1, hi, lo);
    #[allow(unreachable_code)]
    for j in 0..16 {
        let ((h0, l0), (h1, l1)) = (split(*r0.add(j)), split(*r1.add(j)));
        *hi.add(j) = h0 as u32 | (h1 as u32) << 16;
        *lo.add(j) = l0 as u32 | (l1 as u32) << 16;
    }
}

/// A B tile pair from 16 columns whose 32 values each lie consecutively (column `j` at
/// `x + j·cs`): column j's pair p goes to `hi[16 p + j]`, `lo[16 p + j]` (a transpose).
#[inline]
unsafe fn split_columns(x: *const f32, cs: isize, hi: &mut [u32], lo: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    return split_columns_avx512(x, cs, hi, lo);
    #[allow(unreachable_code)]
    for j in 0..16 {
        let c = x.offset(j as isize * cs);
        for p in 0..16 {
            let ((h0, l0), (h1, l1)) = (split(*c.add(2 * p)), split(*c.add(2 * p + 1)));
            hi[16 * p + j] = h0 as u32 | (h1 as u32) << 16;
            lo[16 * p + j] = l0 as u32 | (l1 as u32) << 16;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    pub(super) use std::arch::x86_64::*;

    /// (hi, lo) of 32 f32 as two vectors of 32 bf16 in order, nearest even (`vcvtne2ps2bf16`).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) fn split(x0: __m512, x1: __m512) -> (__m512i, __m512i) {
        let hi: __m512i = unsafe { std::mem::transmute(_mm512_cvtne2ps_pbh(x1, x0)) };
        let w0 = _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(hi)));
        let w1 = _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64::<1>(hi)));
        let r0 = _mm512_sub_ps(x0, _mm512_castsi512_ps(w0));
        let r1 = _mm512_sub_ps(x1, _mm512_castsi512_ps(w1));
        let lo: __m512i = unsafe { std::mem::transmute(_mm512_cvtne2ps_pbh(r1, r0)) };
        (hi, lo)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn split32_avx512(x: *const f32, hi: *mut u16, lo: *mut u16) {
    use avx::*;
    let (h, l) = split(_mm512_loadu_ps(x), _mm512_loadu_ps(x.add(16)));
    _mm512_storeu_si512(hi as *mut _, h);
    _mm512_storeu_si512(lo as *mut _, l);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn split_pairs_avx512(r0: *const f32, r1: *const f32, hi: *mut u32, lo: *mut u32) {
    use avx::*;
    let (h, l) = split(_mm512_loadu_ps(r0), _mm512_loadu_ps(r1));
    // [r0's 16, r1's 16] → pairs (r0[j], r1[j]).
    let idx = _mm512_set_epi16(
        31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4,
        19, 3, 18, 2, 17, 1, 16, 0,
    );
    _mm512_storeu_si512(hi as *mut _, _mm512_permutexvar_epi16(idx, h));
    _mm512_storeu_si512(lo as *mut _, _mm512_permutexvar_epi16(idx, l));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn split_columns_avx512(x: *const f32, cs: isize, hi: &mut [u32], lo: &mut [u32]) {
    use avx::*;
    assert!(hi.len() >= 256 && lo.len() >= 256);
    let mut h = [_mm512_setzero_si512(); 16];
    let mut l = [_mm512_setzero_si512(); 16];
    for j in 0..16 {
        // 32 bf16 in order are column j's 16 pairs.
        let c = x.offset(j as isize * cs);
        (h[j], l[j]) = split(_mm512_loadu_ps(c), _mm512_loadu_ps(c.add(16)));
    }
    transpose16(&mut h);
    transpose16(&mut l);
    for p in 0..16 {
        _mm512_storeu_si512(hi.as_mut_ptr().add(16 * p) as *mut _, h[p]);
        _mm512_storeu_si512(lo.as_mut_ptr().add(16 * p) as *mut _, l[p]);
    }
}

/// Transposes 16 × 16 u32 held as 16 rows.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose16(r: &mut [std::arch::x86_64::__m512i; 16]) {
    use avx::*;
    let mut t = [_mm512_setzero_si512(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for i in 0..4 {
        let b = 4 * i;
        r[b] = _mm512_unpacklo_epi64(t[b], t[b + 2]);
        r[b + 1] = _mm512_unpackhi_epi64(t[b], t[b + 2]);
        r[b + 2] = _mm512_unpacklo_epi64(t[b + 1], t[b + 3]);
        r[b + 3] = _mm512_unpackhi_epi64(t[b + 1], t[b + 3]);
    }
    for i in 0..2 {
        let b = 8 * i;
        for q in 0..4 {
            t[b + q] = _mm512_shuffle_i32x4::<0x88>(r[b + q], r[b + q + 4]);
            t[b + q + 4] = _mm512_shuffle_i32x4::<0xdd>(r[b + q], r[b + q + 4]);
        }
    }
    for q in 0..8 {
        r[q] = _mm512_shuffle_i32x4::<0x88>(t[q], t[q + 8]);
        r[q + 8] = _mm512_shuffle_i32x4::<0xdd>(t[q], t[q + 8]);
    }
}

/// A as tiles: [row group of 16][k step of 32][hi, lo][16 rows × 32], 1 KiB per tile; zero
/// beyond (m, k).
pub(super) unsafe fn pack_a(
    pa: &mut [u16],
    a: *const f32,
    (m, k): (usize, usize),
    (cs, rs): (isize, isize),
    kp: usize,
) {
    let steps = kp / 32;
    for i in 0..pa.len() / (steps * 64) {
        // Row i's 32 values of k step s start at `at(s)` in its group, its lo part 512 later.
        let at = |s: usize| (i / 16 * steps + s) * 1024 + i % 16 * 32;
        if i >= m {
            for s in 0..steps {
                pa[at(s)..][..32].fill(0);
                pa[at(s) + 512..][..32].fill(0);
            }
            continue;
        }
        let row = a.offset(i as isize * rs);
        for s in 0..steps {
            let (hi, lo) = pa[at(s)..at(s) + 544].split_at_mut(512);
            let (hi, lo) = (&mut hi[..32], &mut lo[..32]);
            let k0 = s * 32;
            if cs == 1 && k0 + 32 <= k {
                split32(row.add(k0), hi.as_mut_ptr(), lo.as_mut_ptr());
            } else {
                for t in 0..32 {
                    let kk = k0 + t;
                    (hi[t], lo[t]) = if kk < k {
                        split(*row.offset(kk as isize * cs))
                    } else {
                        (0, 0)
                    };
                }
            }
        }
    }
}

/// B as tiles: [column group of 16][k step of 32][hi, lo][16 pairs × 16 columns], each u32
/// holding rows 2p (low half) and 2p + 1 (high half) of one column: the pair layout
/// `tdpbf16ps` multiplies. Zero beyond (k, n).
pub(super) unsafe fn pack_b(
    pb: &mut [u32],
    b: *const f32,
    (k, n): (usize, usize),
    (cs, rs): (isize, isize),
    kp: usize,
) {
    let steps = kp / 32;
    let at = |kk: usize, j: usize| -> (u16, u16) {
        if kk < k && j < n {
            split(*b.offset(kk as isize * rs + j as isize * cs))
        } else {
            (0, 0)
        }
    };
    for (g, grp) in pb.chunks_exact_mut(steps * 512).enumerate() {
        let j0 = g * 16;
        for s in 0..steps {
            let (hi, lo) = grp[s * 512..s * 512 + 512].split_at_mut(256);
            if rs == 1 && j0 + 16 <= n && s * 32 + 32 <= k {
                // K runs along memory: each column's 32 values are its 16 pairs, which go
                // down the tile's column (a transpose).
                split_columns(b.offset(j0 as isize * cs).add(s * 32), cs, hi, lo);
                continue;
            }
            for p in 0..16 {
                let k0 = s * 32 + 2 * p;
                let (hi, lo) = (&mut hi[p * 16..p * 16 + 16], &mut lo[p * 16..p * 16 + 16]);
                if cs == 1 && j0 + 16 <= n && k0 + 1 < k {
                    let r0 = b.offset(k0 as isize * rs).add(j0);
                    let r1 = b.offset((k0 + 1) as isize * rs).add(j0);
                    split_pairs(r0, r1, hi.as_mut_ptr(), lo.as_mut_ptr());
                } else {
                    for jj in 0..16 {
                        let ((h0, l0), (h1, l1)) = (at(k0, j0 + jj), at(k0 + 1, j0 + jj));
                        hi[jj] = h0 as u32 | (h1 as u32) << 16;
                        lo[jj] = l0 as u32 | (l1 as u32) << 16;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::supported;
    use super::*;
    use crate::ops::test_util::xorshift_values as data;

    /// Column blocking of the kernel (the packed B is padded to it).
    const B: usize = 32;

    /// The vector packings (row-major B, and B with K along memory, which is transposed)
    /// give the scalar packing's bits.
    #[test]
    fn vector_packing_matches_scalar() {
        if !supported() {
            return;
        }
        let (k, n) = (64, 48);
        let b = data(k * n, 5);
        for (cs, rs) in [(1isize, n as isize), (k as isize, 1)] {
            let mut fast = vec![0u32; n.next_multiple_of(B) * k];
            unsafe { pack_b(&mut fast, b.as_ptr(), (k, n), (cs, rs), k) };
            for g in 0..n.next_multiple_of(B) / 16 {
                for s in 0..k / 32 {
                    for piece in 0..2 {
                        for p in 0..16 {
                            for jj in 0..16 {
                                let (kk, j) = (s * 32 + 2 * p, g * 16 + jj);
                                let want = if j < n {
                                    let f = |kk: usize| {
                                        let (h, l) =
                                            split(b[(kk as isize * rs + j as isize * cs) as usize]);
                                        (if piece == 0 { h } else { l }) as u32
                                    };
                                    f(kk) | f(kk + 1) << 16
                                } else {
                                    0
                                };
                                let at = (g * (k / 32) + s) * 512 + piece * 256 + p * 16 + jj;
                                assert_eq!(
                                    fast[at], want,
                                    "strides ({cs}, {rs}) g {g} s {s} p {p} j {jj}"
                                );
                            }
                        }
                    }
                }
            }
        }
        // A row-major (the vector path) and transposed (the element path), 40 rows: two whole
        // row groups and one padded.
        let a = data(40 * 64, 6);
        for (cs, rs) in [(1isize, 64isize), (40, 1)] {
            let mut pa = vec![0u16; 64 * 64 * 2];
            unsafe { pack_a(&mut pa, a.as_ptr(), (40, 64), (cs, rs), 64) };
            for i in 0..40 {
                for kk in 0..64 {
                    let (h, l) = split(a[(i as isize * rs + kk as isize * cs) as usize]);
                    let at = ((i / 16 * 2 + kk / 32) * 2) * 512 + (i % 16) * 32 + kk % 32;
                    assert_eq!(
                        (pa[at], pa[at + 512]),
                        (h, l),
                        "a ({i}, {kk}), strides ({cs}, {rs})"
                    );
                }
            }
        }
    }

    /// The split keeps 16 significand bits: |x − (hi + lo)| ≤ 2⁻¹⁷ |x|.
    #[test]
    fn split_keeps_sixteen_bits() {
        for x in data(100_000, 3) {
            let x = x * 1e3;
            let (h, l) = split(x);
            let back =
                f32::from_bits((h as u32) << 16) as f64 + f32::from_bits((l as u32) << 16) as f64;
            assert!(
                (back - x as f64).abs() <= x.abs() as f64 * 2f64.powi(-17),
                "{x}"
            );
        }
    }
}
