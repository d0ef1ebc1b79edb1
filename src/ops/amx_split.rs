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
//! Taken by the training convolutions, per tile, when [`enabled`]; inference keeps the f32
//! micro-kernel and its bits. Each output is summed by one block over the whole K in a fixed
//! order, so results do not depend on the thread count.

mod pack;

use super::amx::tile_cfg;
use pack::{pack_a, pack_b};
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

/// An A operand (m × k) packed once and multiplied many times: a layer's weight, against
/// each of its column tiles.
pub(crate) struct PackedA {
    buf: Vec<u16>,
    m: usize,
    k: usize,
}

impl PackedA {
    /// Packs `a` (m × k, strides (column, row)) into `buf` (grown as needed).
    ///
    /// # Safety
    /// [`supported`]; `a` valid for the extents its dimensions and strides give.
    pub(crate) unsafe fn new_in(
        mut buf: Vec<u16>,
        a: *const f32,
        (m, k): (usize, usize),
        strides: (isize, isize),
    ) -> Self {
        let (mp, kp) = (m.next_multiple_of(B), k.next_multiple_of(32));
        buf.resize(buf.len().max(mp * kp * 2), 0);
        if kp > 0 {
            pack_a(&mut buf[..mp * kp * 2], a, (m, k), strides, kp);
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
    ds: (isize, isize),
    acc: bool,
    a: *const f32,
    a_s: (isize, isize),
    b: *const f32,
    b_s: (isize, isize),
    beta: f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    // The per-thread buffer is lent to the packing and taken back.
    let buf = SCRATCH.with_borrow_mut(|s| std::mem::take(&mut s.a));
    let packed = PackedA::new_in(buf, a, (m, k), a_s);
    gemm_packed(&packed, n, dst, ds, acc, b, b_s, beta);
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
    debug_assert!(pa.len() >= mp * kp * 2 && pb.len() >= np * kp && ldc >= np && kp >= 32);
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
    use crate::ops::test_util::xorshift_values as data;

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
