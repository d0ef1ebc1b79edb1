//! `x · w + b` for bf16 weights on Intel AMX tiles: prefill and teacher forcing with
//! `--dtype bf16` on CPUs that have AMX-BF16 (Sapphire Rapids and later).
//!
//! One `tdpbf16ps` multiplies a 16 × 32 bf16 tile by a 32 × 16 one into 16 × 16 f32 sums:
//! 8 192 multiply-adds, where an AVX-512 FMA does 16. The weights are bf16 already; the
//! activations are rounded to bf16 (nearest even) on the way in, which is the only numeric
//! difference from the f32 product of the same weights (its logits error is measured in
//! `bench/RESULTS.md`); sums stay in f32. Every output is summed by one tile over the whole
//! K in a fixed order, so results do not depend on the thread count.
//!
//! Rust has no stable AMX intrinsics, so the five instructions used are inline assembly.
//! `JUKEBOX_AMX=0` (or [`set_enabled`]) turns the path off; machines without AMX never take it.

use super::custom::SharedOut;
use candle_core::{DType, Device, Result, Tensor};
use half::bf16;
use rayon::prelude::*;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Rows (tokens) per task: its A block (`MC` rows × K bf16) stays in L2 while the task walks
/// the output columns.
const MC: usize = 128;
/// Output columns per task.
const NC: usize = 256;

/// 0: not decided yet, 1: off, 2: on.
static STATE: AtomicU8 = AtomicU8::new(0);

/// Whether the AMX path is taken: the CPU has AMX-BF16 and AMX-TILE, the kernel granted the
/// tile state, and neither `JUKEBOX_AMX=0` nor [`set_enabled`] turned it off.
pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        0 => {
            let on = std::env::var("JUKEBOX_AMX").map_or(true, |v| v != "0") && supported();
            STATE.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
        s => s == 2,
    }
}

/// Turn the path on (where [`supported`]) or off, for comparisons and tests.
pub fn set_enabled(on: bool) {
    STATE.store(if on && supported() { 2 } else { 1 }, Ordering::Relaxed);
}

/// Whether this CPU and kernel can run the AMX kernel (checked once).
pub fn supported() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(detect)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> bool {
    use std::arch::x86_64::__cpuid_count;
    // Leaf 7 is read only where the CPU has it.
    let max = __cpuid_count(0, 0).eax;
    let edx = if max >= 7 { __cpuid_count(7, 0).edx } else { 0 };
    let (amx_bf16, amx_tile) = (edx >> 22 & 1 == 1, edx >> 24 & 1 == 1);
    if max < 7 || !amx_bf16 || !amx_tile {
        return false;
    }
    // Linux hands out the 8 KiB tile state only to processes that ask for it
    // (arch_prctl ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA); it refuses where the OS or a
    // hypervisor does not support it.
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain syscall with integer arguments.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> bool {
    false
}

/// A weight's packed B tiles, kept between the products of one prefill (a prompt in chunks of
/// 32 tokens would otherwise repack every weight for every 32 rows). Clones share it. Freed by
/// [`PackCache::release`]; all caches together hold at most [`CACHE_BUDGET`] bytes, beyond
/// which weights are packed per call as without a cache.
#[derive(Debug, Clone, Default)]
pub struct PackCache(Arc<Mutex<Option<Held>>>);

/// Bytes all [`PackCache`]s may hold at once (the packed copy is as large as the bf16 weight).
pub const CACHE_BUDGET: usize = 4 << 30;
static CACHED: AtomicUsize = AtomicUsize::new(0);

/// A kept copy, counted in [`CACHED`] from [`PackCache::get_or_pack`] until it is dropped
/// (released, replaced, or gone with its weight's last `Conv1D`).
#[derive(Debug)]
struct Held(Arc<Vec<u32>>);

impl Drop for Held {
    fn drop(&mut self) {
        CACHED.fetch_sub(self.0.len() * 4, Ordering::Relaxed);
    }
}

impl PackCache {
    /// Free the packed copy (the weight is packed again on its next AMX product).
    pub fn release(&self) {
        let held = self.0.lock().ok().and_then(|mut g| g.take());
        drop(held);
    }

    /// The packed tiles of `w` (k, n): the kept copy, or packed now (and kept within the
    /// budget).
    fn get_or_pack(&self, w: &[bf16], k: usize, n: usize) -> Arc<Vec<u32>> {
        let (kp, np) = (k.next_multiple_of(32), n.next_multiple_of(32));
        let len = kp / 2 * np;
        if let Some(v) = self
            .0
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(|h| h.0.clone()))
        {
            if v.len() == len {
                return v;
            }
        }
        let mut b = vec![0u32; len];
        pack_b(&mut b, w, k, n, kp, np);
        let b = Arc::new(b);
        let bytes = len * 4;
        // Counted before it is stored, so that two threads cannot both pass the budget.
        if CACHED.fetch_add(bytes, Ordering::Relaxed) + bytes <= CACHE_BUDGET {
            let held = Held(b.clone());
            if let Ok(mut g) = self.0.lock() {
                // A copy it replaces is uncounted as it drops.
                *g = Some(held);
            }
            return b;
        }
        CACHED.fetch_sub(bytes, Ordering::Relaxed);
        b
    }
}

/// What is done to each output block while it is still in cache: the transformer's residual
/// adds and its GELU, which would otherwise be separate passes over the whole product.
#[derive(Clone, Copy)]
pub enum Epilogue<'a> {
    None,
    /// `quick_gelu(x · w + b)` ([`super::fused::quick_gelu_f32`]).
    Gelu,
    /// `r + (x · w + b)`: the tiles start from `r + b` (f32 sums in a different order from the
    /// separate add).
    Add(&'a Tensor),
}

/// `x · w + b` for `w` bf16 in the official `Conv1D` layout (n_in, n_out), `x` f32 with more
/// than [`super::gemv::MAX_ROWS`] rows (fewer go through the GEMV), on the CPU and without
/// gradients. None where it does not apply: take the general path then.
pub fn dense(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Option<Tensor>> {
    dense_ep(x, w, b, None, Epilogue::None, None)
}

/// A LayerNorm applied to each row of `x` as it is packed (its gain, bias and eps): the
/// normalised activations are never written out. The same arithmetic as
/// [`super::fused::layer_norm_rows`], then the bf16 rounding.
#[derive(Clone, Copy)]
pub struct RowNorm<'a> {
    pub w: &'a Tensor,
    pub b: &'a Tensor,
    pub eps: f32,
}

/// [`dense`] followed by `ep`. None where it does not apply (also where the residual is not a
/// contiguous f32 CPU tensor of the output's shape).
pub fn dense_ep(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    ln: Option<RowNorm>,
    ep: Epilogue,
    cache: Option<&PackCache>,
) -> Result<Option<Tensor>> {
    if !enabled()
        || !matches!(x.device(), Device::Cpu)
        || x.dtype() != DType::F32
        || w.dtype() != DType::BF16
        || w.rank() != 2
        || x.track_op()
        || w.track_op()
        || b.track_op()
    {
        return Ok(None);
    }
    let (k, n) = w.dims2()?;
    let dims = x.dims().to_vec();
    if dims.last() != Some(&k) || b.dims() != [n] {
        return Ok(None);
    }
    let m = x.elem_count() / k.max(1);
    if m <= super::gemv::MAX_ROWS {
        return Ok(None);
    }
    let mut out = dims.clone();
    let last = out.len() - 1;
    out[last] = n;
    let res = match ep {
        Epilogue::Add(r) => {
            if r.dims() != out.as_slice() || r.dtype() != DType::F32 || r.track_op() {
                return Ok(None);
            }
            Some(r.contiguous()?)
        }
        _ => None,
    };
    let ln = match ln {
        Some(l) if l.w.dims() == [k] && l.b.dims() == [k] => Some((
            l.w.to_dtype(DType::F32)?.to_vec1::<f32>()?,
            l.b.to_dtype(DType::F32)?.to_vec1::<f32>()?,
            l.eps,
        )),
        Some(_) => return Ok(None),
        None => None,
    };
    let ln = ln
        .as_ref()
        .map(|(w, b, e)| (w.as_slice(), b.as_slice(), *e));
    let x = x.contiguous()?;
    let w = w.contiguous()?;
    let bias = b.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    // Read the operands in place: copying an 8 MiB weight per call costs more than its packing.
    let y = super::gemv::with_f32_bf16(&x, &w, |xs, ws| {
        if xs.len() != m * k || ws.len() != k * n {
            return None;
        }
        let guard = res.as_ref().map(|r| r.storage_and_layout());
        let ep = match (&guard, ep) {
            (Some((st, l)), _) => match super::gemv::slice_of(st, l)? {
                super::gemv::WSlice::F32(r) => Ep::Add(r),
                _ => return None,
            },
            (None, Epilogue::Gelu) => Ep::Gelu,
            (None, _) => Ep::None,
        };
        let packed = cache.map(|c| c.get_or_pack(ws, k, n));
        let bt = packed.as_ref().map(|v| v.as_slice());
        Some(product_of(xs, m, k, ws, n, bt, &bias, ln, ep))
    })?;
    let Some(y) = y else {
        return Ok(None);
    };
    Tensor::from_vec(y, out, &Device::Cpu).map(Some)
}

/// [`Epilogue`] on slices: the residual is (m, n) row-major.
#[derive(Clone, Copy)]
pub enum Ep<'a> {
    None,
    Gelu,
    Add(&'a [f32]),
}

/// `x (m, k) · w (k, n) + bias` with `x` rounded to bf16; row-major. Needs [`supported`].
pub fn matmul_bias(x: &[f32], m: usize, k: usize, w: &[bf16], n: usize, bias: &[f32]) -> Vec<f32> {
    matmul_bias_ep(x, m, k, w, n, bias, Ep::None)
}

/// [`matmul_bias`] followed by `ep`.
pub fn matmul_bias_ep(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[bf16],
    n: usize,
    bias: &[f32],
    ep: Ep,
) -> Vec<f32> {
    product_of(x, m, k, w, n, None, bias, None, ep)
}

/// A row LayerNorm's gain, bias and eps, on slices.
type Norm<'a> = Option<(&'a [f32], &'a [f32], f32)>;

#[allow(clippy::too_many_arguments)]
fn product_of(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[bf16],
    n: usize,
    packed: Option<&[u32]>,
    bias: &[f32],
    ln: Norm,
    ep: Ep,
) -> Vec<f32> {
    if let Ep::Add(r) = ep {
        assert_eq!(r.len(), m * n, "residual of the wrong size");
    }
    assert!(supported(), "the AMX kernel needs AMX-BF16");
    assert_eq!((x.len(), w.len(), bias.len()), (m * k, k * n, n));
    let (mp, kp, np) = (
        m.next_multiple_of(32),
        k.next_multiple_of(32),
        n.next_multiple_of(32),
    );
    // Packed operands are kept between calls (a prefill makes hundreds of equal-sized ones).
    thread_local! {
        static SCRATCH: std::cell::RefCell<(Vec<u16>, Vec<u32>)> = Default::default();
    }
    SCRATCH.with_borrow_mut(|(a, bt)| {
        a.resize(a.len().max(mp * kp), 0);
        pack_a(&mut a[..mp * kp], x, m, k, kp, ln);
        let bt = match packed {
            Some(p) => p,
            None => {
                bt.resize(bt.len().max(kp / 2 * np), 0);
                pack_b(&mut bt[..kp / 2 * np], w, k, n, kp, np);
                &bt[..kp / 2 * np]
            }
        };
        product(&a[..mp * kp], bt, bias, (m, mp), kp, (n, np), ep)
    })
}

/// The packed product plus the bias, unpadded to (m, n).
fn product(
    a: &[u16],
    bt: &[u32],
    bias: &[f32],
    (m, mp): (usize, usize),
    kp: usize,
    (n, np): (usize, usize),
    ep: Ep,
) -> Vec<f32> {
    let mut bias_p = bias.to_vec();
    bias_p.resize(np, 0.0);
    let direct = mp == m && np == n;
    // Unpadded, the epilogue runs on each task's block while it is in cache; padded (rare:
    // odd chunk or layer sizes), on the copy out.
    let (task_ep, out_ep) = if direct {
        (ep, Ep::None)
    } else {
        (Ep::None, ep)
    };
    // Every element of the padded product is written by a tile store before it is read.
    let mut c: Vec<f32> = Vec::with_capacity(mp * np);
    let tasks: Vec<(usize, usize)> = (0..mp)
        .step_by(MC)
        .flat_map(|r| (0..np).step_by(NC).map(move |col| (r, col)))
        .collect();
    let cp = SharedOut(c.as_mut_ptr());
    tasks.into_par_iter().for_each(|(r0, c0)| {
        let (r1, c1) = ((r0 + MC).min(mp), (c0 + NC).min(np));
        // SAFETY: AMX is supported (asserted above); the tasks' (row, column) rectangles are
        // disjoint, every tile load stays inside `a`, `bt` and `bias_p` (their sizes follow
        // from mp, kp, np), and every store inside `c` (mp × np).
        unsafe {
            let res = match task_ep {
                Ep::Add(r) => {
                    // The block starts as residual + bias.
                    for row in r0..r1 {
                        let dst =
                            std::slice::from_raw_parts_mut(cp.ptr().add(row * np + c0), c1 - c0);
                        let src = &r[row * n + c0..row * n + c1];
                        for ((d, r), b) in dst.iter_mut().zip(src).zip(&bias_p[c0..c1]) {
                            *d = r + b;
                        }
                    }
                    true
                }
                _ => false,
            };
            block(a, bt, &bias_p, cp, kp, np, (r0, r1), (c0, c1), res);
            if let Ep::Gelu = task_ep {
                for row in r0..r1 {
                    let y = std::slice::from_raw_parts_mut(cp.ptr().add(row * np + c0), c1 - c0);
                    y.iter_mut()
                        .for_each(|v| *v = super::fused::quick_gelu_f32(*v));
                }
            }
        }
    });
    // SAFETY: the tasks above stored all mp × np elements (their rectangles tile the product).
    unsafe { c.set_len(mp * np) };
    if direct {
        return c;
    }
    let mut y = Vec::with_capacity(m * n);
    for row in c.chunks_exact(np).take(m) {
        y.extend_from_slice(&row[..n]);
    }
    match out_ep {
        Ep::None => {}
        Ep::Gelu => super::fused::quick_gelu_par(&mut y),
        Ep::Add(r) => y.iter_mut().zip(r).for_each(|(v, r)| *v += r),
    }
    y
}

/// `x` rounded to bf16 as A tiles: [row group of 16][k step of 32][16 rows × 32], each tile
/// 1 KiB contiguous. Padding columns (k..kp) are zero; padding rows (m..mp) are left as they
/// are: their products are dropped.
fn pack_a(a: &mut [u16], x: &[f32], m: usize, k: usize, kp: usize, ln: Norm) {
    a.par_chunks_mut(16 * kp)
        .enumerate()
        .for_each_init(Vec::new, |buf, (g, grp)| {
            for r in 0..16.min(m.saturating_sub(g * 16)) {
                let row = g * 16 + r;
                let mut src = &x[row * k..(row + 1) * k];
                if let Some((w, b, eps)) = ln {
                    buf.clear();
                    buf.extend_from_slice(src);
                    super::fused::layer_norm_rows(buf, w, b, eps);
                    src = buf;
                }
                for s in 0..kp / 32 {
                    let dst: &mut [u16; 32] =
                        (&mut grp[s * 512 + r * 32..][..32]).try_into().unwrap();
                    if let Some(v) = src.get(s * 32..s * 32 + 32) {
                        let v: &[f32; 32] = v.try_into().unwrap();
                        for (d, v) in dst.iter_mut().zip(v) {
                            *d = to_bf16_bits(*v);
                        }
                    } else {
                        dst.fill(0);
                        for (d, v) in dst.iter_mut().zip(&src[s * 32..]) {
                            *d = to_bf16_bits(*v);
                        }
                    }
                }
            }
        });
}

/// `v` rounded to bf16, nearest even (NaN stays NaN): `half::bf16::from_f32`'s result, in a
/// form that vectorises.
#[inline(always)]
pub(crate) fn to_bf16_bits(v: f32) -> u16 {
    let b = v.to_bits();
    let rounded = (b.wrapping_add(0x7fff + (b >> 16 & 1)) >> 16) as u16;
    let nan = (b >> 16) as u16 | 0x40;
    if b & 0x7fff_ffff > 0x7f80_0000 {
        nan
    } else {
        rounded
    }
}

/// `w (k, n)` as B tiles: [column group of 16][k pair][16 columns] of two bf16 (rows 2p and
/// 2p+1 of one column: the pair layout `tdpbf16ps` multiplies). One k step (16 pairs) of a
/// column group is a 1 KiB tile. Padding rows (k..kp) are zero; padding columns are left.
fn pack_b(b: &mut [u32], w: &[bf16], k: usize, n: usize, kp: usize, np: usize) {
    let pairs = kp / 2;
    let groups = np / 16;
    let bp = SharedOut(b.as_mut_ptr());
    let one = |p: usize| {
        let row = |r: usize| (r < k).then(|| &w[r * n..(r + 1) * n]);
        let (lo, hi) = (row(2 * p), row(2 * p + 1));
        for g in 0..groups {
            let mut t = [0u32; 16];
            let c0 = g * 16;
            match (lo, hi) {
                // Both rows and all 16 columns: the common case, in a form that vectorises.
                (Some(l), Some(h)) if c0 + 16 <= n => {
                    for ((t, l), h) in t.iter_mut().zip(&l[c0..c0 + 16]).zip(&h[c0..c0 + 16]) {
                        *t = l.to_bits() as u32 | (h.to_bits() as u32) << 16;
                    }
                }
                _ => {
                    for (j, t) in t.iter_mut().enumerate() {
                        let col = c0 + j;
                        if col < n {
                            let l = lo.map_or(0, |r| r[col].to_bits() as u32);
                            let h = hi.map_or(0, |r| r[col].to_bits() as u32);
                            *t = l | h << 16;
                        }
                    }
                }
            }
            // SAFETY: (g, p) addresses 16 u32 inside the (pairs × np) buffer; each p writes
            // its own rows only.
            unsafe {
                let dst = bp.ptr().add((g * pairs + p) * 16);
                std::ptr::copy_nonoverlapping(t.as_ptr(), dst, 16);
            }
        }
    };
    (0..pairs).into_par_iter().with_min_len(16).for_each(one);
}

/// The tile shapes: eight tiles of 16 rows × 64 bytes (C: 0–3, A: 4–5, B: 6–7).
#[repr(C, align(64))]
pub(crate) struct TileCfg(pub(crate) [u8; 64]);

pub(crate) fn tile_cfg() -> TileCfg {
    let mut c = [0u8; 64];
    c[0] = 1; // palette 1
    for t in 0..8 {
        c[16 + 2 * t] = 64; // bytes per row (u16, little-endian)
        c[48 + t] = 16; // rows
    }
    TileCfg(c)
}

/// Output rows `r0..r1` × columns `c0..c1` (multiples of 32) over the whole K, in 32 × 32
/// blocks of four C tiles.
///
/// # Safety
/// AMX must be [`supported`]; `a`, `bt`, `bias` packed for (mp, kp, np) with `r1 ≤ mp`,
/// `c1 ≤ np`, and `c` pointing at mp × np f32 that no other thread writes in this rectangle.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn block(
    a: &[u16],
    bt: &[u32],
    bias: &[f32],
    c: SharedOut,
    kp: usize,
    np: usize,
    (r0, r1): (usize, usize),
    (c0, c1): (usize, usize),
    from_c: bool,
) {
    use std::arch::asm;
    let cfg = tile_cfg();
    asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack));
    let steps = kp / 32;
    let ldc = np * 4;
    for col in (c0..c1).step_by(32) {
        let b0 = bt.as_ptr().add(col / 16 * (kp / 2) * 16);
        let b1 = bt.as_ptr().add((col / 16 + 1) * (kp / 2) * 16);
        let bias0 = bias.as_ptr().add(col);
        for row in (r0..r1).step_by(32) {
            let a0 = a.as_ptr().add(row / 16 * 16 * kp);
            let a1 = a.as_ptr().add((row / 16 + 1) * 16 * kp);
            let cp = c.ptr().add(row * np + col);
            // C tiles start as the bias (a row stride of 0 repeats it on every row) or as
            // what `c` holds, then take `steps` products of (A 16 × 32) · (B 32 × 16) each.
            let (i0, i1, istride) = if from_c {
                (cp as *const f32, cp.add(16 * np) as *const f32, ldc)
            } else {
                (bias0, bias0, 0)
            };
            asm!(
                "tileloadd tmm0, [{i0} + {is}*1]",
                "tileloadd tmm1, [{i0} + {is}*1 + 64]",
                "tileloadd tmm2, [{i1} + {is}*1]",
                "tileloadd tmm3, [{i1} + {is}*1 + 64]",
                "2:",
                "tileloadd tmm4, [{a0} + {s64}*1]",
                "tileloadd tmm5, [{a1} + {s64}*1]",
                "tileloadd tmm6, [{b0} + {s64}*1]",
                "tileloadd tmm7, [{b1} + {s64}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                "add {a0}, 1024",
                "add {a1}, 1024",
                "add {b0}, 1024",
                "add {b1}, 1024",
                "dec {n}",
                "jnz 2b",
                "tilestored [{c0} + {ldc}*1], tmm0",
                "tilestored [{c0} + {ldc}*1 + 64], tmm1",
                "tilestored [{c1} + {ldc}*1], tmm2",
                "tilestored [{c1} + {ldc}*1 + 64], tmm3",
                i0 = in(reg) i0,
                i1 = in(reg) i1,
                is = in(reg) istride,
                s64 = in(reg) 64usize,
                a0 = inout(reg) a0 => _,
                a1 = inout(reg) a1 => _,
                b0 = inout(reg) b0 => _,
                b1 = inout(reg) b1 => _,
                n = inout(reg) steps => _,
                ldc = in(reg) ldc,
                c0 = in(reg) cp,
                c1 = in(reg) cp.add(16 * np),
                options(nostack),
            );
        }
    }
    asm!("tilerelease", options(nostack, nomem));
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn block(
    _: &[u16],
    _: &[u32],
    _: &[f32],
    _: SharedOut,
    _: usize,
    _: usize,
    _: (usize, usize),
    _: (usize, usize),
    _: bool,
) {
    unreachable!("AMX is x86_64 only")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::xorshift_values as data;

    /// The f64 product of bf16-rounded x and the bf16 weights, plus the bias.
    fn reference(x: &[f32], m: usize, k: usize, w: &[bf16], n: usize, bias: &[f32]) -> Vec<f32> {
        let mut y = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = bias[j] as f64;
                for t in 0..k {
                    let xv = bf16::from_f32(x[i * k + t]).to_f32() as f64;
                    s += xv * w[t * n + j].to_f32() as f64;
                }
                y[i * n + j] = s as f32;
            }
        }
        y
    }

    #[test]
    fn matches_the_rounded_product_on_padded_and_aligned_shapes() {
        if !supported() {
            eprintln!("no AMX-BF16 on this CPU: the kernel is not run (its dispatch is tested in tests/amx_prefill.rs)");
            return;
        }
        // Aligned, every dimension padded, several tasks in both directions, K over 32 steps.
        for &(m, k, n) in &[(32, 32, 32), (17, 40, 20), (300, 1056, 600), (129, 64, 257)] {
            let x = data(m * k, 1);
            let w: Vec<bf16> = data(k * n, 2).into_iter().map(bf16::from_f32).collect();
            let bias = data(n, 3);
            let got = matmul_bias(&x, m, k, &w, n, &bias);
            let want = reference(&x, m, k, &w, n, &bias);
            let tol = 1e-5 * (k as f32).sqrt() * 4.0;
            let err = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(err <= tol, "({m}, {k}, {n}): max error {err} > {tol}");
            // A wrong pair order or column group would be off by O(1), not by rounding.
            assert!(want.iter().any(|v| v.abs() > 1.0));
        }
    }

    /// Both epilogues, on a shape that runs them per task and on one that runs them on the copy
    /// out (padded), against the plain product followed by the separate op.
    #[test]
    fn epilogues_match_the_separate_ops() {
        if !supported() {
            return;
        }
        for &(m, k, n) in &[(160, 64, 288), (50, 40, 70)] {
            let x = data(m * k, 7);
            let w: Vec<bf16> = data(k * n, 8).into_iter().map(bf16::from_f32).collect();
            let bias = data(n, 9);
            let r: Vec<f32> = data(m * n, 10).iter().map(|v| v * 30.0).collect();
            let plain = matmul_bias(&x, m, k, &w, n, &bias);
            let gelu = matmul_bias_ep(&x, m, k, &w, n, &bias, Ep::Gelu);
            for (g, p) in gelu.iter().zip(&plain) {
                assert_eq!(
                    g.to_bits(),
                    super::super::fused::quick_gelu_f32(*p).to_bits()
                );
            }
            let add = matmul_bias_ep(&x, m, k, &w, n, &bias, Ep::Add(&r));
            let err = add
                .iter()
                .zip(&plain)
                .zip(&r)
                .map(|((a, p), r)| (a - (p + r)).abs())
                .fold(0f32, f32::max);
            // Summed in another order than the separate add; residuals up to 30.
            assert!(err < 2e-5, "({m}, {k}, {n}): residual add off by {err}");
            assert!(plain.iter().zip(&add).any(|(p, a)| (p - a).abs() > 1.0));
        }
    }

    /// The cache hands out the same packed copy until released, and it equals a fresh
    /// packing (padded shape: k 40 → 64, n 20 → 32). Runs without AMX too.
    #[test]
    fn pack_cache_keeps_its_copy_until_released() {
        let (k, n) = (40, 20);
        let w: Vec<bf16> = data(k * n, 12).into_iter().map(bf16::from_f32).collect();
        let c = PackCache::default();
        let a = c.get_or_pack(&w, k, n);
        assert!(Arc::ptr_eq(&a, &c.get_or_pack(&w, k, n)));
        let mut fresh = vec![0u32; 32 * 32];
        pack_b(&mut fresh, &w, k, n, 64, 32);
        assert_eq!(*a, fresh);
        // Pairs of rows: row 2p in the low half, 2p + 1 in the high half, column j of group 0.
        assert_eq!(
            fresh[16 + 3],
            w[2 * n + 3].to_bits() as u32 | (w[3 * n + 3].to_bits() as u32) << 16
        );
        c.release();
        let d = c.get_or_pack(&w, k, n);
        assert!(!Arc::ptr_eq(&a, &d));
        assert_eq!(*a, *d);
        c.release();
    }

    #[test]
    fn rounding_matches_half() {
        for v in [
            0.0f32,
            -0.0,
            1.0,
            f32::from_bits(0x3f80_8000),
            1.0117188,
            -3.3e-39,
            3.4e38,
            f32::INFINITY,
            f32::NAN,
            -f32::NAN,
            65504.0,
            0.1,
            -0.7,
        ] {
            let want = bf16::from_f32(v).to_bits();
            assert_eq!(to_bf16_bits(v), want, "{v}");
        }
        for v in data(100_000, 9) {
            assert_eq!(to_bf16_bits(v * 1e3), bf16::from_f32(v * 1e3).to_bits());
        }
    }

    #[test]
    fn thread_count_does_not_change_a_bit() {
        if !supported() {
            return;
        }
        let (m, k, n) = (200, 96, 544);
        let x = data(m * k, 4);
        let w: Vec<bf16> = data(k * n, 5).into_iter().map(bf16::from_f32).collect();
        let bias = data(n, 6);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let a = one.install(|| matmul_bias(&x, m, k, &w, n, &bias));
        let b = matmul_bias(&x, m, k, &w, n, &bias);
        assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
    }
}
