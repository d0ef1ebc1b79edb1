//! Training products on AMX tiles, each f32 operand split into two bf16 parts: opt-in
//! (`jukebox train --amx-split`), because it does not keep f32's numbers.
//!
//! `x = hi + lo` with `hi = bf16(x)` and `lo = bf16(x − hi)` keeps 16 of f32's 24 significand
//! bits (relative error ≤ 2⁻¹⁷); `a·b ≈ hi_a·hi_b + hi_a·lo_b + lo_a·hi_b` drops only `lo_a·lo_b`
//! (≤ 2⁻¹⁸ of the product). The three products are summed in f32 by `tdpbf16ps`, which does
//! 16 × 16 × 32 multiply-adds per instruction where an AVX-512 FMA does 16. A dot product is then
//! off by up to ~2e-5 of its terms' norm (tested below against f64), where f32 is off by ~1e-7.
//! That is the precision of mixed-precision training, but not "the same numbers": through a
//! VQ-VAE's backward pass, where gradients are sums that cancel, the `tiny` config's first-step
//! gradients differ from the f32 path's by up to ~4e-3 (relative L2; f32 paths agree to 4e-6;
//! `tests/train_fast_path.rs`). So the default stays f32 and this path is a choice.
//!
//! Taken by the training convolutions only, when [`enabled`]; inference keeps the f32
//! micro-kernel and its bits. Single-threaded: callers split the work into tiles. Each output is
//! summed in a fixed order, so results do not depend on the thread count.

use super::amx::{tile_cfg, to_bf16_bits};
use std::sync::atomic::{AtomicBool, Ordering};

/// Off unless [`set_enabled`] turned it on.
static ON: AtomicBool = AtomicBool::new(false);

/// Whether training products take this path: [`set_enabled`] turned it on (where
/// [`supported`]) and training's fast path is on.
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed) && super::train_fast()
}

/// Whether this CPU can run the kernel: AMX-BF16 granted (see [`super::amx::supported`]) and
/// the AVX-512 BF16 conversions the packing uses.
pub fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::amx::supported()
            && is_x86_feature_detected!("avx512bf16")
            && is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Turns the path on (where [`supported`]; returns whether it is on) or off.
pub fn set_enabled(on: bool) -> bool {
    let on = on && supported();
    ON.store(on, Ordering::Relaxed);
    on
}

/// Row (and column) blocking: the kernel computes 32 × 32 outputs per pass over K.
const B: usize = 32;

/// Scratch kept per thread between calls (the products come by the thousand per step).
#[derive(Default)]
struct Scratch {
    a: Vec<u16>,
    b: Vec<u32>,
    c: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = Default::default();
}

/// `x` as its (hi, lo) bf16 bits.
#[inline(always)]
fn split(x: f32) -> (u16, u16) {
    let hi = to_bf16_bits(x);
    let lo = to_bf16_bits(x - f32::from_bits((hi as u32) << 16));
    (hi, lo)
}

/// An A operand (m × k) packed once and multiplied many times: a layer's weight, against
/// each of its column tiles.
pub(crate) struct PackedA {
    buf: Vec<u16>,
    m: usize,
    k: usize,
}

impl PackedA {
    /// Packs `a` (m × k, strides (column, row)).
    ///
    /// # Safety
    /// `a` valid for the extents its dimensions and strides give.
    pub(crate) unsafe fn new(
        a: *const f32,
        (m, k): (usize, usize),
        strides: (isize, isize),
    ) -> Self {
        let (mp, kp) = (m.next_multiple_of(B), k.next_multiple_of(32));
        let mut buf = vec![0u16; mp * kp * 2];
        if kp > 0 {
            pack_a(&mut buf, a, (m, k), strides, kp);
        }
        PackedA { buf, m, k }
    }
}

/// `dst (m × n, strides (dcs, drs)) = [dst +] beta · a · b`, `a` (m × k, strides (acs, ars)),
/// `b` (k × n, strides (bcs, brs)), the same contract as `gemm::gemm` with alpha 1.
///
/// # Safety
/// [`supported`] must hold; every pointer valid for the extents its dimensions and strides
/// give; `dst` not aliasing `a` or `b`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    (dcs, drs): (isize, isize),
    acc: bool,
    a: *const f32,
    (acs, ars): (isize, isize),
    b: *const f32,
    (bcs, brs): (isize, isize),
    beta: f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    let (mp, kp) = (m.next_multiple_of(B), k.next_multiple_of(32));
    let mut pa = SCRATCH.with_borrow_mut(|s| std::mem::take(&mut s.a));
    pa.resize(pa.len().max(mp * kp * 2), 0);
    if kp > 0 {
        pack_a(&mut pa[..mp * kp * 2], a, (m, k), (acs, ars), kp);
    }
    let packed = PackedA { buf: pa, m, k };
    gemm_packed(&packed, n, dst, (dcs, drs), acc, b, (bcs, brs), beta);
    SCRATCH.with_borrow_mut(|s| s.a = packed.buf);
}

/// [`gemm`] with A packed already.
///
/// # Safety
/// As [`gemm`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_packed(
    a: &PackedA,
    n: usize,
    dst: *mut f32,
    (dcs, drs): (isize, isize),
    acc: bool,
    b: *const f32,
    (bcs, brs): (isize, isize),
    beta: f32,
) {
    let (m, k) = (a.m, a.k);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // No products (the kernel's loop runs at least one step).
        if !acc {
            for i in 0..m {
                for j in 0..n {
                    *dst.offset(i as isize * drs + j as isize * dcs) = 0.0;
                }
            }
        }
        return;
    }
    let (mp, np, kp) = (
        m.next_multiple_of(B),
        n.next_multiple_of(B),
        k.next_multiple_of(32),
    );
    let pa = &a.buf[..mp * kp * 2];
    SCRATCH.with_borrow_mut(|s| {
        s.b.resize(s.b.len().max(np * kp), 0);
        s.c.resize(s.c.len().max(mp * np), 0.0);
        let (pb, pc) = (&mut s.b[..np * kp], &mut s.c[..mp * np]);
        pack_b(pb, b, (k, n), (bcs, brs), kp);
        // Straight into `dst` where it is plain row-major in whole blocks and unscaled (the
        // convolutions' common case); else through `c` and a scaled copy.
        if dcs == 1 && beta == 1.0 && mp == m && np == n && drs > 0 {
            kernel(pa, pb, dst, drs as usize, mp, np, kp, acc);
            return;
        }
        kernel(pa, pb, pc.as_mut_ptr(), np, mp, np, kp, false);
        for i in 0..m {
            let row = &pc[i * np..i * np + n];
            let d = dst.offset(i as isize * drs);
            if dcs == 1 {
                let d = std::slice::from_raw_parts_mut(d, n);
                if acc {
                    d.iter_mut().zip(row).for_each(|(d, v)| *d += beta * v);
                } else {
                    d.iter_mut().zip(row).for_each(|(d, v)| *d = beta * v);
                }
            } else {
                for (j, v) in row.iter().enumerate() {
                    let p = d.offset(j as isize * dcs);
                    *p = if acc { *p + beta * v } else { beta * v };
                }
            }
        }
    });
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
unsafe fn pack_a(
    pa: &mut [u16],
    a: *const f32,
    (m, k): (usize, usize),
    (cs, rs): (isize, isize),
    kp: usize,
) {
    let steps = kp / 32;
    for (g, grp) in pa.chunks_exact_mut(steps * 1024).enumerate() {
        for r in 0..16 {
            let i = g * 16 + r;
            if i >= m {
                for s in 0..steps {
                    grp[s * 1024 + r * 32..][..32].fill(0);
                    grp[s * 1024 + 512 + r * 32..][..32].fill(0);
                }
                continue;
            }
            let row = a.offset(i as isize * rs);
            for s in 0..steps {
                let (hi, lo) = grp[s * 1024..s * 1024 + 1024].split_at_mut(512);
                let (hi, lo) = (&mut hi[r * 32..r * 32 + 32], &mut lo[r * 32..r * 32 + 32]);
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
}

/// B as tiles: [column group of 16][k step of 32][hi, lo][16 pairs × 16 columns], each u32
/// holding rows 2p (low half) and 2p + 1 (high half) of one column: the pair layout
/// `tdpbf16ps` multiplies. Zero beyond (k, n).
unsafe fn pack_b(
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
                // K runs along memory: each column's 32 values are its 16 pairs, which go down
                // the tile's column (a transpose).
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

/// `c (mp × np, row stride ldc floats) = [c +] A · B` from the packed parts, 32 × 32 blocks of
/// four C tiles: per k step hi·hi, lo·hi, hi·lo, ten tile loads for twelve products.
///
/// # Safety
/// [`supported`]; `c` valid for mp rows of ldc floats (np used); `pa`, `pb` packed for (mp,
/// np, kp).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(
    pa: &[u16],
    pb: &[u32],
    c: *mut f32,
    ldc: usize,
    mp: usize,
    np: usize,
    kp: usize,
    load: bool,
) {
    use std::arch::asm;
    debug_assert!(pa.len() >= mp * kp * 2 && pb.len() >= np * kp && ldc >= np);
    let cfg = tile_cfg();
    asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack));
    let steps = kp / 32;
    let ldc_f = ldc;
    let ldc = ldc * 4;
    // Bytes per row group of A and per column group of B.
    let (ga, gb) = (steps * 2048, steps * 2048);
    for row in (0..mp).step_by(B) {
        let a0 = (pa.as_ptr() as *const u8).add(row / 16 * ga);
        let a1 = a0.add(ga);
        for col in (0..np).step_by(B) {
            let b0 = (pb.as_ptr() as *const u8).add(col / 16 * gb);
            let b1 = b0.add(gb);
            let cp = c.add(row * ldc_f + col);
            if load {
                asm!(
                    "tileloadd tmm0, [{c0} + {ldc}*1]",
                    "tileloadd tmm1, [{c0} + {ldc}*1 + 64]",
                    "tileloadd tmm2, [{c1} + {ldc}*1]",
                    "tileloadd tmm3, [{c1} + {ldc}*1 + 64]",
                    ldc = in(reg) ldc,
                    c0 = in(reg) cp,
                    c1 = in(reg) cp.add(16 * ldc_f),
                    options(nostack),
                );
            } else {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    options(nostack, nomem)
                );
            }
            asm!(
                "2:",
                "tileloadd tmm4, [{a0} + {s64}*1]",
                "tileloadd tmm5, [{a1} + {s64}*1]",
                "tileloadd tmm6, [{b0} + {s64}*1]",
                "tileloadd tmm7, [{b1} + {s64}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                "tileloadd tmm4, [{a0} + {s64}*1 + 1024]",
                "tileloadd tmm5, [{a1} + {s64}*1 + 1024]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                "tileloadd tmm4, [{a0} + {s64}*1]",
                "tileloadd tmm5, [{a1} + {s64}*1]",
                "tileloadd tmm6, [{b0} + {s64}*1 + 1024]",
                "tileloadd tmm7, [{b1} + {s64}*1 + 1024]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                "add {a0}, 2048",
                "add {a1}, 2048",
                "add {b0}, 2048",
                "add {b1}, 2048",
                "dec {n}",
                "jnz 2b",
                "tilestored [{c0} + {ldc}*1], tmm0",
                "tilestored [{c0} + {ldc}*1 + 64], tmm1",
                "tilestored [{c1} + {ldc}*1], tmm2",
                "tilestored [{c1} + {ldc}*1 + 64], tmm3",
                s64 = in(reg) 64usize,
                a0 = inout(reg) a0 => _,
                a1 = inout(reg) a1 => _,
                b0 = inout(reg) b0 => _,
                b1 = inout(reg) b1 => _,
                n = inout(reg) steps => _,
                ldc = in(reg) ldc,
                c0 = in(reg) cp,
                c1 = in(reg) cp.add(16 * ldc_f),
                options(nostack),
            );
        }
    }
    asm!("tilerelease", options(nostack, nomem));
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(
    _: &[u16],
    _: &[u32],
    _: *mut f32,
    _: usize,
    _: usize,
    _: usize,
    _: usize,
    _: bool,
) {
    unreachable!("AMX is x86_64 only")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

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
        let a = data(40 * 64, 6);
        let mut pa = vec![0u16; 64 * 64 * 2];
        unsafe { pack_a(&mut pa, a.as_ptr(), (40, 64), (1, 64), 64) };
        for i in 0..40 {
            for kk in 0..64 {
                let (h, l) = split(a[i * 64 + kk]);
                let at = ((i / 16 * 2 + kk / 32) * 2) * 512 + (i % 16) * 32 + kk % 32;
                assert_eq!((pa[at], pa[at + 512]), (h, l), "a ({i}, {kk})");
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

    /// Against the f64 product, on padded and aligned shapes, every stride pattern the training
    /// convolutions use (row-major, transposed A, transposed B), with and without accumulation.
    #[test]
    fn matches_the_f64_product() {
        if !supported() {
            eprintln!("no AMX-BF16 on this CPU: the split kernel is not run");
            return;
        }
        for &(m, n, k) in &[
            (64, 256, 192),
            (17, 40, 70),
            (32, 33, 256),
            (5, 300, 9),
            (96, 64, 1),
            (8, 40, 0),
        ] {
            for &(ta, tb, acc, beta) in &[
                (false, false, false, 1.0f32),
                (true, false, true, 0.5),
                (false, true, true, 1.0),
                (true, true, false, -2.0),
            ] {
                let a = data(m * k, 1);
                let b = data(k * n, 2);
                let d0 = data(m * n, 3);
                let (acs, ars) = if ta { (m as isize, 1) } else { (1, k as isize) };
                let (bcs, brs) = if tb { (k as isize, 1) } else { (1, n as isize) };
                let mut d = d0.clone();
                unsafe {
                    gemm(
                        (m, n, k),
                        d.as_mut_ptr(),
                        (1, n as isize),
                        acc,
                        a.as_ptr(),
                        (acs, ars),
                        b.as_ptr(),
                        (bcs, brs),
                        beta,
                    )
                };
                let mut worst = 0f64;
                for i in 0..m {
                    for j in 0..n {
                        let (mut s, mut mag) = (0f64, 0f64);
                        for t in 0..k {
                            let p = a[(i as isize * ars + t as isize * acs) as usize] as f64
                                * b[(t as isize * brs + j as isize * bcs) as usize] as f64;
                            s += p;
                            mag += p * p;
                        }
                        let want = if acc { d0[i * n + j] as f64 } else { 0.0 } + beta as f64 * s;
                        let base = if acc { d0[i * n + j].abs() as f64 } else { 0.0 };
                        let err = (d[i * n + j] as f64 - want).abs()
                            / (base + beta.abs() as f64 * mag.sqrt() + 1e-30);
                        worst = worst.max(err);
                    }
                }
                // One product is off by up to ~2⁻¹⁶ of itself (k = 1); sums average the
                // errors down. f32's own product gives ~1e-7 here, bf16 alone ~4e-3.
                let tol = if k == 1 { 4e-5 } else { 2e-5 };
                assert!(
                    worst < tol,
                    "({m}, {n}, {k}) ta {ta} tb {tb}: error {worst:e} of the terms' norm"
                );
            }
        }
    }
}
