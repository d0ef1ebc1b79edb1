//! The persistent sampling step: one KV-cached position (batch ≤ [`MAX_ROWS`]) run as plain
//! loops over the weights by every thread of the rayon pool at once, between spin barriers.
//!
//! The graph path dispatches about two dozen candle ops per layer per token on the calling
//! thread and wakes the pool for every matrix product (at batch 1 the bundled model's one-item
//! study group sampled in 7.0 s that way, 4.1 s here). Here the pool is woken once per step.
//! Each thread multiplies its fixed row range of every weight matrix (the split of [`gemv::row_parts`], so the partial sums and the
//! order they are added in are the graph path's: dense layers, LayerNorms and GELUs give the
//! same bits), then the threads reduce column slices and attend head by head. Only the attention
//! sums run in another order (they agree to float rounding; `tests/fast_step.rs`).
//!
//! Inference on the CPU only; cross and prime attention (the lyrics priors), other devices and
//! larger batches take the graph path. `JUKEBOX_FAST_STEP=0` (or [`set_enabled`]) turns it off.

use super::attention::{score_scale, AttnKind};
use super::cache::{OutParams, PriorCache, Widened};
use super::chunk_attn::{attend_one, key_range};
use super::transformer::Conv1D;
use super::{Conditioning, Prior};
use crate::ops::fused;
use crate::ops::gemv::{self, with_elems, WSlice, Wt, MAX_ROWS};
use candle_core::{bail, Layout, Result, StorageRef, Tensor};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

fn enabled_flag() -> &'static AtomicBool {
    static ON: OnceLock<AtomicBool> = OnceLock::new();
    ON.get_or_init(|| AtomicBool::new(std::env::var("JUKEBOX_FAST_STEP").as_deref() != Ok("0")))
}

/// Turns the persistent step on or off (process-wide; for tests and benchmarks).
pub fn set_enabled(on: bool) {
    enabled_flag().store(on, Ordering::SeqCst);
}

pub fn enabled() -> bool {
    enabled_flag().load(Ordering::SeqCst)
}

static STEPS_RUN: AtomicUsize = AtomicUsize::new(0);

/// Steps this process has run on the persistent path (tests check that it was taken).
pub fn steps_run() -> usize {
    STEPS_RUN.load(Ordering::Relaxed)
}

/// Whether [`step`] can run this prior, cache and conditioning.
pub(crate) fn applies(prior: &Prior, cache: &PriorCache, cond: &Conditioning) -> bool {
    enabled()
        && prior.device().is_cpu()
        && cond.encoder_kv.is_none()
        && cache.batch() <= MAX_ROWS
        && prior.transformer.layers.iter().all(|l| {
            matches!(
                l.kind,
                AttnKind::Dense | AttnKind::Block | AttnKind::PrevBlock | AttnKind::Transpose
            )
        })
}

/// Element i of a float table (embeddings, conditioning; never int8, see [`step`]).
fn at(s: &WSlice<'_>, i: usize) -> f32 {
    with_elems!(s, v => v[i].to_f32())
}

fn len(s: &WSlice<'_>) -> usize {
    with_elems!(s, v => v.len())
}

/// A shared f32 buffer that threads write in disjoint parts between barriers.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: every write goes to a range no other thread touches until the next barrier, and
// reads of another thread's range happen only after a barrier (acquire/release).
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// # Safety
    /// `off..off + len` is in bounds and, until the next barrier, no other thread writes it
    /// (for `mut_at`: no other thread reads or writes it).
    #[allow(clippy::mut_from_ref)]
    unsafe fn mut_at<'a>(self, off: usize, len: usize) -> &'a mut [f32] {
        std::slice::from_raw_parts_mut(self.0.add(off), len)
    }
    unsafe fn at<'a>(self, off: usize, len: usize) -> &'a [f32] {
        std::slice::from_raw_parts(self.0.add(off), len)
    }
}

/// A sense-counting barrier for the threads of one step: spins (the threads are the pool's
/// own, one per core), yielding after a while so that a loaded machine still makes progress.
struct SpinBarrier {
    n: usize,
    count: AtomicUsize,
    gen: AtomicUsize,
    /// Set when a thread of the step panicked: the others stop waiting for it.
    poisoned: AtomicBool,
}

impl SpinBarrier {
    fn new(n: usize) -> Self {
        Self {
            n,
            count: AtomicUsize::new(0),
            gen: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
        }
    }

    fn wait(&self) {
        if self.n == 1 {
            return;
        }
        let g = self.gen.load(Ordering::Acquire);
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            self.count.store(0, Ordering::Relaxed);
            self.gen.store(g + 1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.gen.load(Ordering::Acquire) == g {
            if self.poisoned.load(Ordering::Relaxed) {
                panic!("another thread of the sampling step panicked");
            }
            if spins < 4000 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// Run `body(thread, threads)` on every pool thread at once, or on this thread alone when it
/// is itself a pool worker (a nested team could wait on a thread that waits on it) or the
/// pool has one thread. One team at a time: two would spin against each other.
fn run_team(nt: usize, barrier: &SpinBarrier, body: &(dyn Fn(usize) + Sync)) {
    static TEAM: Mutex<()> = Mutex::new(());
    if nt <= 1 {
        body(0);
        return;
    }
    let _one = TEAM.lock().unwrap_or_else(|e| e.into_inner());
    rayon::broadcast(|ctx| {
        // A panicking thread must not leave the others spinning at a barrier forever.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(ctx.index())));
        if let Err(e) = r {
            barrier.poisoned.store(true, Ordering::Relaxed);
            std::panic::resume_unwind(e);
        }
    });
}

struct LayerW<'a> {
    kind: AttnKind,
    cap: usize,
    k: Shared,
    v: Shared,
    attn: WSlice<'a>,
    proj: WSlice<'a>,
    fc: WSlice<'a>,
    mproj: WSlice<'a>,
    p: &'a Widened,
}

fn widen(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1()
}

fn out_params(c: &Conv1D) -> Result<OutParams> {
    Ok(OutParams {
        bias: widen(&c.b)?,
        scale: c.scale.as_ref().map(widen).transpose()?,
    })
}

fn widened(prior: &Prior) -> Result<Vec<Widened>> {
    prior
        .transformer
        .layers
        .iter()
        .map(|l| {
            Ok(Widened {
                attn_b: out_params(&l.c_attn)?,
                proj_b: out_params(&l.c_proj)?,
                fc_b: out_params(&l.mlp_fc)?,
                mproj_b: out_params(&l.mlp_proj)?,
                ln0: (widen(&l.ln_0.w)?, widen(&l.ln_0.b)?),
                ln1: (widen(&l.ln_1.w)?, widen(&l.ln_1.b)?),
            })
        })
        .collect()
}

/// Sizes and shared buffers of one step.
struct Step<'a> {
    n: usize,
    w: usize,
    s: usize,
    heads: usize,
    mlp: usize,
    vocab: usize,
    pos: usize,
    block_ctx: usize,
    scale: f32,
    layers: Vec<LayerW<'a>>,
    head_w: WSlice<'a>,
    /// Added to the residual stream before the head (upsamplers with a tied head).
    head_add: Option<Vec<f32>>,
    h: Shared,
    o: Shared,
    m: Shared,
    partial: Shared,
    part_len: usize,
    logits: Shared,
    barrier: SpinBarrier,
}

/// `x (n, kk) · w (kk, nn)`: this thread's parts of the row split into `partial`.
fn partial_gemv(st: &Step, w: &WSlice, kk: usize, nn: usize, x: &[f32], t: usize, nt: usize) {
    let (parts, per) = gemv::row_parts(kk);
    for p in (t..parts).step_by(nt) {
        let k0 = p * per;
        if k0 >= kk {
            continue;
        }
        let k1 = (k0 + per).min(kk);
        // SAFETY: part p's region is written by this thread only (p ≡ t mod nt).
        let y = unsafe { st.partial.mut_at(p * st.part_len, st.n * nn) };
        y.fill(0.0);
        with_elems!(w, v => gemv::axpy_rows(&v[k0 * nn..k1 * nn], nn, x, kk, k0, st.n, y));
    }
}

/// The parts of a (kk, nn) product that hold rows (see [`gemv::row_parts`]).
fn used_parts(kk: usize) -> usize {
    let (parts, per) = gemv::row_parts(kk);
    (0..parts).filter(|p| p * per < kk).count()
}

/// Column j of batch row b of a product with `nn` columns: the first `parts` partials summed
/// in order, then the scale and bias (as `gemv::dense_small` applies them).
fn reduced(st: &Step, parts: usize, nn: usize, out: &OutParams, b: usize, j: usize) -> f32 {
    let off = b * nn + j;
    // SAFETY: written before the last barrier; nobody writes partials until the next.
    let mut acc = unsafe { st.partial.at(off, 1)[0] };
    for p in 1..parts {
        acc += unsafe { st.partial.at(p * st.part_len + off, 1)[0] };
    }
    out.apply(acc, j)
}

/// LayerNorm of every row of `x` (n, w) into `out` (`ops::fused::layer_norm`'s arithmetic).
fn layer_norm(x: &[f32], ln: &(Vec<f32>, Vec<f32>), out: &mut [f32]) {
    out.copy_from_slice(x);
    fused::layer_norm_rows(out, &ln.0, &ln.1, 1e-5);
}

fn cols(nn: usize, t: usize, nt: usize) -> std::ops::Range<usize> {
    nn * t / nt..nn * (t + 1) / nt
}

/// (Batch row, head) pairs `t, t + nt, …` of one layer (pair i = row i / heads, head
/// i % heads): reduce their q, k, v, store k and v at this position, attend, and write the
/// head's output columns of the row in `o`. Split by pairs, not heads, so that a one-head
/// prior (the bundled upsamplers) keeps every thread busy.
fn attend_heads(st: &Step, l: &LayerW, t: usize, nt: usize) {
    let (s, n, hs) = (st.s, st.n, st.heads);
    let d = s / hs;
    let (w3, p) = (3 * s, st.pos);
    let parts = used_parts(st.w);
    let mut q = vec![0f32; d];
    let mut scores = Vec::new();
    for i in (t..n * hs).step_by(nt) {
        let (b, hh) = (i / hs, i % hs);
        let base = ((b * hs + hh) * l.cap + p % l.cap) * d;
        // SAFETY: this pair's cache rows are touched by this thread only.
        let (kc, vc) = unsafe { (l.k.mut_at(base, d), l.v.mut_at(base, d)) };
        for c in 0..d {
            q[c] = reduced(st, parts, w3, &l.p.attn_b, b, hh * d + c);
            kc[c] = reduced(st, parts, w3, &l.p.attn_b, b, s + hh * d + c);
            vc[c] = reduced(st, parts, w3, &l.p.attn_b, b, 2 * s + hh * d + c);
        }
        // SAFETY: head hh's columns of row b are written by this thread only.
        let out = unsafe { st.o.mut_at(b * s + hh * d, d) };
        out.fill(0.0);
        let Some((k0, k1, stride)) = key_range(l.kind, p, st.block_ctx) else {
            continue;
        };
        let row0 = (b * hs + hh) * l.cap;
        // SAFETY: this pair's cache rows are touched by this thread only.
        let key = |kp: usize| unsafe { l.k.at((row0 + kp % l.cap) * d, d) };
        let val = |kp: usize| unsafe { l.v.at((row0 + kp % l.cap) * d, d) };
        let keys = (k0..k1).step_by(stride);
        attend_one(&q, keys, key, val, st.scale, &mut scores, out);
    }
}

/// `dst[b, j] = f(reduced product)` (or `+=`) for this thread's columns.
#[allow(clippy::too_many_arguments)]
fn reduce_into(
    st: &Step,
    kk: usize,
    nn: usize,
    out: &OutParams,
    dst: Shared,
    t: usize,
    nt: usize,
    f: impl Fn(f32, f32) -> f32,
) {
    let parts = used_parts(kk);
    for b in 0..st.n {
        let r = cols(nn, t, nt);
        // SAFETY: this thread's columns of row b.
        let row = unsafe { dst.mut_at(b * nn + r.start, r.len()) };
        for (j, v) in r.clone().zip(row.iter_mut()) {
            *v = f(*v, reduced(st, parts, nn, out, b, j));
        }
    }
}

/// Everything one thread does in a step.
fn run_thread(st: &Step, t: usize, nt: usize) {
    let (n, w, s, mlp) = (st.n, st.w, st.s, st.mlp);
    let mut xa = vec![0f32; n * w];
    for l in &st.layers {
        // SAFETY (all reads of shared buffers below): written before the preceding barrier.
        layer_norm(unsafe { st.h.at(0, n * w) }, &l.p.ln0, &mut xa);
        partial_gemv(st, &l.attn, w, 3 * s, &xa, t, nt);
        st.barrier.wait();
        attend_heads(st, l, t, nt);
        st.barrier.wait();
        partial_gemv(st, &l.proj, s, w, unsafe { st.o.at(0, n * s) }, t, nt);
        st.barrier.wait();
        reduce_into(st, s, w, &l.p.proj_b, st.h, t, nt, |h, a| h + a);
        st.barrier.wait();
        layer_norm(unsafe { st.h.at(0, n * w) }, &l.p.ln1, &mut xa);
        partial_gemv(st, &l.fc, w, mlp, &xa, t, nt);
        st.barrier.wait();
        reduce_into(st, w, mlp, &l.p.fc_b, st.m, t, nt, |_, y| {
            fused::quick_gelu_f32(y)
        });
        st.barrier.wait();
        partial_gemv(st, &l.mproj, mlp, w, unsafe { st.m.at(0, n * mlp) }, t, nt);
        st.barrier.wait();
        reduce_into(st, mlp, w, &l.p.mproj_b, st.h, t, nt, |h, a| h + a);
        st.barrier.wait();
    }
    let mut hx = unsafe { st.h.at(0, n * w) }.to_vec();
    if let Some(add) = &st.head_add {
        hx.iter_mut().zip(add).for_each(|(h, c)| *h += c);
    }
    let rows = cols(st.vocab, t, nt);
    let mut tmp = vec![0f32; rows.len() * n];
    with_elems!(&st.head_w, v => {
        gemv::dot_rows(&v[rows.start * w..rows.end * w], w, &hx, n, &mut tmp)
    });
    for b in 0..n {
        // SAFETY: this thread's vocabulary rows of batch row b.
        let out = unsafe { st.logits.mut_at(b * st.vocab + rows.start, rows.len()) };
        for (i, o) in out.iter_mut().enumerate() {
            *o = tmp[i * n + b];
        }
    }
}

/// One step on the persistent path: logits (N, vocab) predicting token `cache.pos`, or `None`
/// when a weight is not a plain CPU f32/f16/bf16 tensor (take the graph path then).
pub(crate) fn step(
    prior: &Prior,
    cache: &mut PriorCache,
    cond: &Conditioning,
) -> Result<Option<Tensor>> {
    let tr = &prior.transformer;
    let (n, p) = (cache.batch(), cache.pos);
    let (w, s, mlp) = (tr.cfg.width, tr.cfg.n_state, tr.cfg.mlp_width);
    let vocab = prior.x_out.as_ref().unwrap_or(&prior.x_emb).dim(0)?;
    // One read guard per tensor (a tied head is the embedding's, not a second lock).
    let mut ts: Vec<&Tensor> = vec![&prior.x_emb, &prior.pos_emb, &cond.start];
    let head_i = match &prior.x_out {
        Some(xo) => {
            ts.push(xo);
            ts.len() - 1
        }
        None => 0,
    };
    let xc_i = cond.x_cond.as_ref().map(|xc| {
        ts.push(xc);
        ts.len() - 1
    });
    let layer0 = ts.len();
    for l in &tr.layers {
        ts.extend([&l.c_attn.w, &l.c_proj.w, &l.mlp_fc.w, &l.mlp_proj.w]);
    }
    let guards: Vec<(StorageRef, &Layout)> = ts.iter().map(|t| t.storage_and_layout()).collect();
    let mut views = Vec::with_capacity(guards.len());
    for (i, (g, l)) in guards.iter().enumerate() {
        match gemv::slice_of(g, l) {
            // Int8 is read as weights with scales only; tables are never quantised.
            Some(WSlice::I8(_)) if i < layer0 => return Ok(None),
            Some(v) => views.push(v),
            None => return Ok(None),
        }
    }
    if cache.layers.len() != tr.layers.len() {
        bail!(
            "cache has {} layers, model {}",
            cache.layers.len(),
            tr.layers.len()
        );
    }

    // Input of position p: start vector or the previous token's embedding, plus the position
    // embedding and the conditioning (in the order `Prior::chunk_input` adds them).
    let last: Vec<i64> = match (&cache.last, p) {
        (_, 0) => vec![],
        (Some(t), _) => t.to_vec1::<i64>()?,
        (None, _) => bail!(
            "the token at position {} is not known yet: call accept after step",
            p - 1
        ),
    };
    let (emb, pos_emb, start) = (&views[0], &views[1], &views[2]);
    if last
        .iter()
        .any(|&t| t < 0 || (t as usize + 1) * w > len(emb))
    {
        bail!("previous token outside the vocabulary");
    }
    let xcond = xc_i.map(|i| &views[i]);
    let xc_len = cond.x_cond.as_ref().map_or(Ok(0), |x| x.dim(1))?;
    let mut h = vec![0f32; n * w];
    let mut head_add = (prior.x_out.is_none() && xcond.is_some()).then(|| vec![0f32; n * w]);
    for b in 0..n {
        for j in 0..w {
            let x = if p == 0 {
                at(start, b * w + j)
            } else {
                at(emb, last[b] as usize * w + j)
            };
            let mut x = x + at(pos_emb, p * w + j);
            if let Some(xc) = xcond {
                let c = at(xc, (b * xc_len + p) * w + j);
                x += c;
                if let Some(add) = head_add.as_mut() {
                    add[b * w + j] = c;
                }
            }
            h[b * w + j] = x;
        }
    }

    if cache.widened.is_none() {
        cache.widened = Some(widened(prior)?);
    }
    let Some(params) = &cache.widened else {
        bail!("layer parameters missing")
    };
    let mut layers = Vec::with_capacity(tr.layers.len());
    let per_layer = tr.layers.iter().zip(cache.layers.iter_mut()).zip(params);
    for (i, ((l, lc), par)) in per_layer.enumerate() {
        let v = &views[layer0 + 4 * i..layer0 + 4 * (i + 1)];
        let cap = lc.cap();
        let (k, vv) = lc.raw_mut()?;
        layers.push(LayerW {
            kind: l.kind,
            cap,
            k: Shared(k.as_mut_ptr()),
            v: Shared(vv.as_mut_ptr()),
            attn: v[0],
            proj: v[1],
            fc: v[2],
            mproj: v[3],
            p: par,
        });
    }
    let threads = rayon::current_num_threads().max(1);
    // The team: every pool thread, or this one alone (see `run_team`).
    let nt = if threads > 1 && rayon::current_thread_index().is_none() {
        threads
    } else {
        1
    };
    let part_len = n * (3 * s).max(w).max(mlp);
    let mut partial = vec![0f32; threads * part_len];
    let mut o = vec![0f32; n * s];
    let mut m = vec![0f32; n * mlp];
    let mut logits = vec![0f32; n * vocab];
    let st = Step {
        n,
        w,
        s,
        heads: tr.cfg.heads,
        mlp,
        vocab,
        pos: p,
        block_ctx: tr.geom.block_ctx,
        scale: score_scale(s / tr.cfg.heads) as f32,
        layers,
        head_w: views[head_i],
        head_add,
        h: Shared(h.as_mut_ptr()),
        o: Shared(o.as_mut_ptr()),
        m: Shared(m.as_mut_ptr()),
        partial: Shared(partial.as_mut_ptr()),
        part_len,
        logits: Shared(logits.as_mut_ptr()),
        barrier: SpinBarrier::new(nt),
    };
    run_team(nt, &st.barrier, &|t| run_thread(&st, t, nt));
    drop(st);
    drop(views);
    drop(guards);
    cache.pos = p + 1;
    cache.last = None;
    STEPS_RUN.fetch_add(1, Ordering::Relaxed);
    Tensor::from_vec(logits, (n, vocab), prior.device()).map(Some)
}
