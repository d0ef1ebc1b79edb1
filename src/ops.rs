//! Tensor ops we can both run fast and train through.
//!
//! candle 0.11.1's fused `layer_norm` and `softmax_last_dim` silently detach from the graph, and
//! its CPU conv1d weight gradient is wrong for batch > 1 (candle 0.11.1 `cpu_backend` conv1d copies a strided kernel but multiplies the original; measured by `tests/ops_grad.rs`). Everything
//! here is composed from differentiable primitives and checked by finite differences.

use candle_core::{DType, Result, Tensor, D};

pub mod amx;
pub mod amx_split;
pub mod attn_train;
pub mod conv;
pub mod conv_train;
pub(crate) mod custom;
pub mod fused;
pub mod fused_train;
pub mod gemv;
mod gemv512;
mod products;
pub mod q8;
pub mod resblock_train;
#[cfg(test)]
pub(crate) mod test_util;
mod wt;

/// LayerNorm over the last dimension, computed in f32 (or f64) whatever the input dtype,
/// as the official code does (it upcasts, normalises, casts back).
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    if let Some(y) = fused::layer_norm(x, w, b, eps)? {
        return Ok(y);
    }
    if train_fast() && fused_train::applicable(&[x, w, b]) {
        let op = fused_train::LayerNormOp { eps: eps as f32 };
        return x.contiguous()?.apply_op3(w, b, op);
    }
    let dt = x.dtype();
    let xf = if dt == DType::F64 {
        x.clone()
    } else {
        x.to_dtype(DType::F32)?
    };
    let mean = xf.mean_keepdim(D::Minus1)?;
    let xc = xf.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let y = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    let y = y
        .broadcast_mul(&w.to_dtype(y.dtype())?)?
        .broadcast_add(&b.to_dtype(y.dtype())?)?;
    y.to_dtype(dt)
}

/// Softmax over the last dimension (max-subtracted, differentiable).
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    let s = e.sum_keepdim(D::Minus1)?;
    e.broadcast_div(&s)
}

/// `z · σ(1.702 z)`, the official MLP activation.
pub fn quick_gelu(x: &Tensor) -> Result<Tensor> {
    if let Some(y) = fused::quick_gelu(x)? {
        return Ok(y);
    }
    if train_fast() && fused_train::applicable(&[x]) {
        return x.contiguous()?.apply_op1(fused_train::QuickGeluOp);
    }
    x.mul(&candle_nn::ops::sigmoid(&(x * 1.702)?)?)
}

/// Official `Conv1D` dense layer: `y = x · w + b` with `w` stored (n_in, n_out).
/// `x` is (.., n_in).
pub fn dense(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let tracked = x.track_op() || w.track_op() || b.track_op();
    if tracked && train_fast() && fused_train::applicable(&[x, w, b]) && x.rank() >= 2 {
        let (n_in, n_out) = w.dims2()?;
        if x.dims()[x.rank() - 1] == n_in && b.dims() == [n_out] {
            return x.contiguous()?.apply_op3(w, b, fused_train::DenseOp);
        }
    }
    let dims = x.dims().to_vec();
    let n_in = dims[dims.len() - 1];
    let rows = x.elem_count() / n_in;
    let y = x.reshape((rows, n_in))?.matmul(w)?.broadcast_add(b)?;
    let mut out = dims;
    let last = out.len() - 1;
    out[last] = w.dim(1)?;
    y.reshape(out)
}

/// Embedding lookup `table[ids]`: `ids` any shape of integer ids, result `ids.shape ++ [dim]`.
/// `index_select` has a correct backward (scatter-add into the table).
pub fn embedding(ids: &Tensor, table: &Tensor) -> Result<Tensor> {
    let mut shape = ids.dims().to_vec();
    shape.push(table.dim(1)?);
    table.index_select(&ids.flatten_all()?, 0)?.reshape(shape)
}

/// Output length of [`conv1d`] for input channels `c_in`, weight input channels `wc_in`,
/// length `l` and kernel size `k`, or the error both of its paths give.
fn conv1d_out_len(
    c_in: usize,
    wc_in: usize,
    l: usize,
    k: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Result<usize> {
    if wc_in != c_in {
        candle_core::bail!("conv1d: input has {c_in} channels, weight expects {wc_in}");
    }
    if stride == 0 || dilation == 0 || k == 0 {
        candle_core::bail!("conv1d: stride, dilation and kernel size must be positive");
    }
    let span = dilation * (k - 1) + 1;
    let lp = l + 2 * padding;
    if lp < span {
        candle_core::bail!(
            "conv1d: input length {l} (padding {padding}) is shorter than the kernel span {span}"
        );
    }
    Ok((lp - span) / stride + 1)
}

/// Output length of [`conv_transpose1d`], or the error both of its paths give.
fn conv_transpose1d_out_len(
    c_in: usize,
    wc_in: usize,
    l: usize,
    k: usize,
    stride: usize,
    padding: usize,
) -> Result<usize> {
    if wc_in != c_in {
        candle_core::bail!("conv_transpose1d: input has {c_in} channels, weight expects {wc_in}");
    }
    if stride == 0 || k == 0 || l == 0 {
        candle_core::bail!("conv_transpose1d: stride, kernel size and length must be positive");
    }
    let full = (l - 1) * stride + k;
    if full < 2 * padding + 1 {
        candle_core::bail!("conv_transpose1d: padding {padding} leaves no output for length {l}");
    }
    Ok(full - 2 * padding)
}

/// 1-D convolution (cross-correlation) as in PyTorch `Conv1d`: `x` (N, C_in, L), `w`
/// (C_out, C_in, K), optional bias (C_out). On the CPU in f32 with nothing tracked for
/// gradients this is [`conv::conv1d`] (one GEMM per tile); otherwise [`conv1d_graph`].
pub fn conv1d(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Result<Tensor> {
    conv1d_ex(x, w, b, stride, padding, dilation, false)
}

/// Whether training takes the custom-op convolutions of [`conv_train`] (default) rather than the
/// graph ops; the graph path stays as the reference that tests compare against.
static TRAIN_FAST: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turns the training fast path on or off (process-wide; for tests and comparisons).
pub fn set_train_fast(on: bool) {
    TRAIN_FAST.store(on, std::sync::atomic::Ordering::SeqCst);
}

pub(crate) fn train_fast() -> bool {
    TRAIN_FAST.load(std::sync::atomic::Ordering::SeqCst)
}

/// [`conv1d`] of `relu(x)` when `pre_relu` (fused into the gather on the fast paths). Inference
/// on the CPU takes [`conv::conv1d`]; training on the CPU the custom op [`conv_train::Conv1dOp`]
/// (its backward is a few GEMMs); anything else [`conv1d_graph`].
#[allow(clippy::too_many_arguments)]
pub fn conv1d_ex(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    padding: usize,
    dilation: usize,
    pre_relu: bool,
) -> Result<Tensor> {
    if let Some(y) = conv::conv1d(x, w, b, stride, padding, dilation, pre_relu, false)? {
        return Ok(y);
    }
    let (_, c_in, l) = x.dims3()?;
    let (_, wc_in, k) = w.dims3()?;
    conv1d_out_len(c_in, wc_in, l, k, stride, padding, dilation)?;
    if let Some(b) = b {
        let op = conv_train::Conv1dOp {
            stride,
            padding,
            dilation,
            pre_relu,
        };
        if train_fast() && conv_train::applicable(&[x, w, b]) && op.supports(l, k) {
            return x.contiguous()?.apply_op3(w, b, op);
        }
    }
    let x = if pre_relu { x.relu()? } else { x.clone() };
    conv1d_graph(&x, w, b, stride, padding, dilation)
}

/// [`conv1d`] written as K shifted matmuls: differentiable (with a correct gradient for any
/// batch size, unlike candle's CPU conv1d) and on any device.
pub fn conv1d_graph(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Result<Tensor> {
    let (_, c_in, l) = x.dims3()?;
    let (c_out, wc_in, k) = w.dims3()?;
    let l_out = conv1d_out_len(c_in, wc_in, l, k, stride, padding, dilation)?;
    let lp = l + 2 * padding;
    // Pad once: `padding` each side plus zeros on the right so that every tap's strided
    // window fits and the length is a multiple of the stride. The extra zeros are never read.
    let max_q = (k - 1) * dilation / stride;
    let need = ((max_q + l_out) * stride).max(lp);
    let extra = need.div_ceil(stride) * stride - lp;
    let xp = if padding + extra > 0 {
        x.pad_with_zeros(2, padding, padding + extra)?
    } else {
        x.clone()
    };
    let (n, _, lpp) = xp.dims3()?;
    // Polyphase view (N, C, L/s, s): tap start j·d = q·s + r reads phase r from offset q.
    let xr = xp.reshape((n, c_in, lpp / stride, stride))?;
    let mut y: Option<Tensor> = None;
    for j in 0..k {
        let (q, r) = ((j * dilation) / stride, (j * dilation) % stride);
        let xs = if stride == 1 {
            xp.narrow(2, q, l_out)?
        } else {
            xr.narrow(3, r, 1)?.squeeze(3)?.narrow(2, q, l_out)?
        };
        // (C_out, C_in) view of tap j; broadcast over the batch (stride 0, no copy).
        let wj = w.narrow(2, j, 1)?.squeeze(2)?.broadcast_left(n)?;
        // cuBLAS takes neither a stride-0 batch nor a strided (polyphase) time axis: copy there.
        let t = if x.device().is_cpu() {
            wj.matmul(&xs)?
        } else {
            wj.contiguous()?.matmul(&xs.contiguous()?)?
        };
        y = Some(match y {
            None => t,
            Some(acc) => (acc + t)?,
        });
    }
    let y = match y {
        Some(y) => y,
        None => candle_core::bail!("conv1d: empty kernel"),
    };
    match b {
        Some(b) => y.broadcast_add(&b.reshape((1, c_out, 1))?),
        None => Ok(y),
    }
}

/// Transposed 1-D convolution as in PyTorch `ConvTranspose1d` (no output padding, dilation 1):
/// `x` (N, C_in, L), `w` (C_in, C_out, K), output length `(L-1)·stride − 2·padding + K`.
/// On the CPU in f32 with nothing tracked, [`conv::conv_transpose1d`]; otherwise
/// [`conv_transpose1d_graph`].
pub fn conv_transpose1d(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    if let Some(y) = conv::conv_transpose1d(x, w, b, stride, padding)? {
        return Ok(y);
    }
    if let Some(b) = b {
        let (_, c_in, l) = x.dims3()?;
        let (wc_in, _, k) = w.dims3()?;
        conv_transpose1d_out_len(c_in, wc_in, l, k, stride, padding)?;
        if train_fast() && conv_train::applicable(&[x, w, b]) {
            let op = conv_train::ConvTranspose1dOp { stride, padding };
            return x.contiguous()?.apply_op3(w, b, op);
        }
    }
    conv_transpose1d_graph(x, w, b, stride, padding)
}

/// [`conv_transpose1d`] in polyphase form: output phase r (t ≡ r mod stride) is a sum of
/// shifted matmuls with the taps k ≡ r; phases are then interleaved and cropped.
/// Differentiable (candle's has no backward).
pub fn conv_transpose1d_graph(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let (n, c_in, l) = x.dims3()?;
    let (wc_in, c_out, k) = w.dims3()?;
    let l_out = conv_transpose1d_out_len(c_in, wc_in, l, k, stride, padding)?;
    let m = k.div_ceil(stride); // taps per phase (at most)
    let q = l + m - 1; // outputs per phase; q·stride ≥ full
    let xp = if m > 1 {
        x.pad_with_zeros(2, m - 1, m - 1)?
    } else {
        x.clone()
    };
    let mut phases = Vec::with_capacity(stride);
    for r in 0..stride {
        let mut acc: Option<Tensor> = None;
        let mut mi = 0;
        while r + mi * stride < k {
            let kk = r + mi * stride;
            // y_r[q] += W_k^T · x[q − mi]  →  x_pad offset (m − 1 − mi).
            let wk = w.narrow(2, kk, 1)?.squeeze(2)?.t()?.broadcast_left(n)?; // (C_out, C_in)
            let xs = xp.narrow(2, m - 1 - mi, q)?;
            let t = if x.device().is_cpu() {
                wk.matmul(&xs)?
            } else {
                wk.contiguous()?.matmul(&xs.contiguous()?)?
            };
            acc = Some(match acc {
                None => t,
                Some(a) => (a + t)?,
            });
            mi += 1;
        }
        phases.push(match acc {
            Some(a) => a,
            None => Tensor::zeros((n, c_out, q), x.dtype(), x.device())?,
        });
    }
    let y = if stride == 1 {
        phases.remove(0)
    } else {
        Tensor::stack(&phases, 3)?.reshape((n, c_out, q * stride))?
    };
    let y = y.narrow(2, padding, l_out)?;
    match b {
        Some(b) => y.broadcast_add(&b.reshape((1, c_out, 1))?),
        None => Ok(y),
    }
}

/// Fix the thread count in `RAYON_NUM_THREADS` (to the available cores) unless the user set
/// it. candle 0.11.1 otherwise calls `num_cpus::get_physical()`, which parses /proc/cpuinfo,
/// on *every* matmul: 15–50 µs each, which made small-model sampling ~40× slower. Call it
/// first thing in `main`, before any thread pool starts.
///
/// It also runs candle's elementwise ops on the calling thread (`CANDLE_NUM_THREADS=1`) unless
/// the user set it: its barrier pool spin-waits for a worker that a busy 2-core machine
/// deschedules; measured on a study at load 9, scoring took 26.5 s with the pool and 2.8 s
/// without, and half the CPU time. Matmuls still use every core (they follow the rayon count).
pub fn init_threads() {
    init_threads_for(false)
}

/// [`init_threads`], except that `training` gives candle's elementwise pool every core: a
/// training step's elementwise ops are large (a VQ-VAE activation is ~20 MB), so the pool's
/// spin-wait costs little against the work it splits (measured: VQ-VAE step 0.83 → 0.92 audio
/// s/s, prior step 2495 → 3031 tokens/s on an idle 2-core machine). On a machine busy with other
/// jobs, `CANDLE_NUM_THREADS=1` is still the better choice.
///
/// For training its workers also park as soon as an op ends (`CANDLE_BARRIER_POOL_SPIN_LIMIT`
/// 0 unless set; candle spins 25 000 times first): the prior's step runs most of its work in
/// our own rayon ops between candle's, and a spinning candle worker took 4.6 % of the step's
/// samples from them (`perf`). Measured alternating on an idle 2-core machine: prior 7 219 →
/// 8 200 tokens/s (three rounds), the VQ-VAE unchanged (0.94 either way); commands and raw
/// figures in `bench/RESULTS.md`, "Serial work off the calling thread".
///
/// It also keeps freed blocks in the heap (glibc `M_MMAP_THRESHOLD` at its 32 MiB maximum and
/// `M_TRIM_THRESHOLD` at 1 GiB): by default every tensor above 128 KiB–32 MiB is a fresh `mmap`
/// and freed memory goes back to the kernel, so a training step spent 11 % of its time in page
/// faults zeroing the same pages again (VQ-VAE step 0.74 → 0.95 audio s/s). Blocks above
/// 32 MiB are taken from the heap too (`M_MMAP_MAX` 0): the default study decodes 16 items at
/// once, and every conv layer's output (hundreds of MB) was a fresh mapping, ~75 GB of page
/// faults per study; without them the study ran 314 s instead of 360–378 s, with a peak RSS of
/// 3.6 GB instead of 2.7–2.9 GB (freed blocks stay resident for reuse). `MALLOC_MMAP_MAX_`
/// set in the environment keeps glibc's own choice.
pub fn init_threads_for(training: bool) {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        let n = if training {
            std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "1".into())
        } else {
            "1".into()
        };
        std::env::set_var("CANDLE_NUM_THREADS", n);
    }
    if training && std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "0");
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only changes allocator parameters; called before any other thread runs.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        }
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_MAX_").is_none() {
        // SAFETY: as above.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
        }
    }
}
