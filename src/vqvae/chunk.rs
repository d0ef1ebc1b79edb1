//! Running a convolutional stack over long inputs in overlapping chunks.
//!
//! Each chunk is extended by a margin at least the stack's receptive radius on both sides,
//! so the kept core of every chunk sees exactly what the unchunked pass would: the result
//! equals the unchunked one (up to float rounding), while memory stays bounded by the chunk.

use candle_core::{Result, Tensor};

/// How a chunked pass maps input positions to output positions on the last dimension.
#[derive(Debug, Clone, Copy)]
pub struct ChunkPlan {
    /// Core input positions per chunk (a multiple of `align`).
    pub chunk: usize,
    /// Extra input positions read on each side (a multiple of `align`).
    pub margin: usize,
    /// Chunk boundaries must fall on multiples of this (the hop, for strided encoders).
    pub align: usize,
    /// Output positions per input position is `num / den`.
    pub num: usize,
    pub den: usize,
}

impl ChunkPlan {
    fn out_len(&self, n_in: usize) -> usize {
        n_in * self.num / self.den
    }
}

/// Apply `f` to `x` (last dimension = time) chunk by chunk and concatenate the outputs along
/// their last dimension. Runs `f` once on the whole input when it fits in one chunk.
pub fn run_chunked(
    x: &Tensor,
    plan: ChunkPlan,
    f: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let dim = x.rank() - 1;
    let t = x.dim(dim)?;
    let align = plan.align.max(1);
    let chunk = (plan.chunk / align).max(1) * align;
    let margin = plan.margin.div_ceil(align) * align;
    if t <= chunk + 2 * margin {
        return f(x);
    }
    let mut outs = Vec::with_capacity(t.div_ceil(chunk));
    let mut s = 0;
    while s < t {
        let e = (s + chunk).min(t);
        let ws = s.saturating_sub(margin);
        let we = (e + margin).min(t);
        let y = f(&x.narrow(dim, ws, we - ws)?)?;
        let ydim = y.rank() - 1;
        let off = plan.out_len(s - ws);
        let len = plan.out_len(e - s);
        if y.dim(ydim)? < off + len {
            candle_core::bail!(
                "chunked pass: a chunk of {} inputs gave {} outputs, expected at least {}",
                we - ws,
                y.dim(ydim)?,
                off + len
            );
        }
        outs.push(y.narrow(ydim, off, len)?);
        s = e;
    }
    Tensor::cat(&outs, outs[0].rank() - 1)
}
