//! What the trainable custom ops (`conv_train`, `fused_train`, `attn_train`) share: reading
//! operands out of candle's storage and building result tensors.

use candle_core::{CpuStorage, DType, Device, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

/// The contiguous f32 elements of a storage under a layout (`what` names the op in the error).
pub(crate) fn slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("{what}: operand is not contiguous");
    };
    Ok(&s.as_slice::<f32>()?[a..b])
}

/// A copy of a tensor's elements as f32 (detached, contiguous).
pub(crate) fn data(t: &Tensor) -> Result<Vec<f32>> {
    t.detach().flatten_all()?.to_vec1::<f32>()
}

/// Runs `f` on a tensor's contiguous f32 elements without copying where possible.
pub(crate) fn with_data<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.detach().contiguous()?;
    let (st, l) = t.storage_and_layout();
    match &*st {
        Storage::Cpu(c) => f(slice(c, l, "custom op backward")?),
        _ => candle_core::bail!("custom op backward: not a CPU tensor"),
    }
}

/// A vector of `n` floats that `init` writes, every element, without zero-filling it first. A
/// zeroed output buffer costs a serial memset on the calling thread before the op's parallel
/// pass overwrites it anyway: 2.3 % of a prior training step's samples (`perf`), with the
/// dense layer's serial bias fill another 1.7 %.
///
/// # Safety
/// `init` must write all `n` elements (a `MaybeUninit::write`, or a write through the raw
/// pointer such as a GEMM that does not read its destination).
pub(crate) unsafe fn uninit_with(
    n: usize,
    init: impl FnOnce(&mut [std::mem::MaybeUninit<f32>]),
) -> Vec<f32> {
    // SAFETY: passed on to the caller.
    unsafe { uninit_then(n, init).0 }
}

/// [`uninit_with`] for an `init` that also returns something (per-chunk partial sums, or
/// further buffers written in the same pass).
///
/// # Safety
/// As [`uninit_with`]: `init` must write all `n` elements.
pub(crate) unsafe fn uninit_then<R>(
    n: usize,
    init: impl FnOnce(&mut [std::mem::MaybeUninit<f32>]) -> R,
) -> (Vec<f32>, R) {
    let mut v = Vec::with_capacity(n);
    let r = init(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: the caller wrote all n elements.
    unsafe { v.set_len(n) };
    (v, r)
}

/// A CPU f32 tensor of `shape` from `v`.
pub(crate) fn tensor(v: Vec<f32>, shape: impl Into<Shape>) -> Result<Tensor> {
    Tensor::from_vec(v, shape, &Device::Cpu)
}

/// Whether the custom ops may run on these operands (CPU, f32).
pub fn applicable(ts: &[&Tensor]) -> bool {
    ts.iter()
        .all(|t| matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32)
}

/// Column sums of a row-major (rows × n) matrix: `chunks` fixed blocks of rows summed in
/// parallel, then added in order, so the result does not depend on the thread count.
pub(crate) fn column_sums(m: &[f32], n: usize, chunks: usize) -> Vec<f32> {
    let rows = m.len() / n.max(1);
    let per = rows.div_ceil(chunks.max(1)).max(1);
    let parts: Vec<Vec<f32>> = m
        .par_chunks(n * per)
        .map(|c| {
            let mut s = vec![0f32; n];
            for r in c.chunks_exact(n) {
                for (s, v) in s.iter_mut().zip(r) {
                    *s += v;
                }
            }
            s
        })
        .collect();
    let mut out = vec![0f32; n];
    for p in &parts {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
    out
}

/// A pointer that parallel tasks write through at disjoint elements (each op says which).
#[derive(Clone, Copy)]
pub(crate) struct SharedOut<T = f32>(pub(crate) *mut T);
// SAFETY: users write only element sets that no other task touches, into a buffer that outlives
// the parallel loop (each use states its partition).
unsafe impl<T> Send for SharedOut<T> {}
unsafe impl<T> Sync for SharedOut<T> {}

impl<T> SharedOut<T> {
    /// Through a method, so that closures capture the whole (Sync) wrapper, not the field.
    pub(crate) fn ptr(self) -> *mut T {
        self.0
    }
}
