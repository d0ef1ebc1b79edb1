//! Nearest-code quantisation and codebook lookup (official `BottleneckBlock.quantise` and
//! `dequantise`). Training's EMA update lives in `train`; this side is inference only.

use candle_core::{DType, Result, Tensor};
use rayon::prelude::*;

/// Rows handled per matmul: bounds the (rows × bins) distance block to 16 MiB at 2048 bins.
const ROWS_PER_BLOCK: usize = 2048;

/// Nearest code for each row of `x` (rows × w, f32) under codebook `k` (bins × w).
/// Distances use the official expanded fp32 form `(‖x‖² − 2·x·k) + ‖k‖²`, evaluated in that
/// order; ties go to the first index, as `torch.min`. Returns the codes and, per row, the gap
/// between the best and second-best distance (the fixtures' `code_margin`).
pub fn nearest_codes(x: &Tensor, k: &Tensor) -> Result<(Vec<u32>, Vec<f32>)> {
    let (rows, w) = x.dims2()?;
    let (bins, kw) = k.dims2()?;
    if w != kw {
        candle_core::bail!("quantise: latent width {w} differs from codebook width {kw}");
    }
    if bins == 0 {
        candle_core::bail!("quantise: empty codebook");
    }
    let x = x.to_dtype(DType::F32)?.contiguous()?;
    let k = k.to_dtype(DType::F32)?.contiguous()?;
    let kk: Vec<f32> = k.sqr()?.sum(1)?.to_vec1()?;
    let kt = k.t()?;
    let mut codes = Vec::with_capacity(rows);
    let mut margins = Vec::with_capacity(rows);
    let mut start = 0;
    while start < rows {
        let n = ROWS_PER_BLOCK.min(rows - start);
        let xb = x.narrow(0, start, n)?;
        let xx: Vec<f32> = xb.sqr()?.sum(1)?.to_vec1()?;
        let xk: Vec<f32> = xb.matmul(&kt)?.flatten_all()?.to_vec1()?;
        let out: Vec<(u32, f32)> = xk
            .par_chunks(bins)
            .zip(xx.par_iter())
            .map(|(row, &xx)| {
                let (mut best, mut bi, mut second) = (f32::INFINITY, 0usize, f32::INFINITY);
                for (j, (&dot, &kj)) in row.iter().zip(&kk).enumerate() {
                    let d = (xx - 2.0 * dot) + kj;
                    // Strict `<` keeps the first index on ties; NaN never wins.
                    if d < best {
                        second = best;
                        best = d;
                        bi = j;
                    } else if d < second {
                        second = d;
                    }
                }
                (bi as u32, second - best)
            })
            .collect();
        for (c, m) in out {
            codes.push(c);
            margins.push(m);
        }
        start += n;
    }
    Ok((codes, margins))
}

/// Latents (N, w, T) → codes (N, T) as u32.
pub fn quantise(latent: &Tensor, k: &Tensor) -> Result<Tensor> {
    Ok(quantise_with_margin(latent, k)?.0)
}

/// Latents (N, w, T) → (codes (N, T) u32, margin (N, T) f32).
pub fn quantise_with_margin(latent: &Tensor, k: &Tensor) -> Result<(Tensor, Tensor)> {
    let (n, w, t) = latent.dims3()?;
    let rows = latent.transpose(1, 2)?.contiguous()?.reshape((n * t, w))?;
    let (codes, margins) = nearest_codes(&rows, k)?;
    let dev = latent.device();
    Ok((
        Tensor::from_vec(codes, (n, t), dev)?,
        Tensor::from_vec(margins, (n, t), dev)?,
    ))
}

/// Codes (N, T) of any integer dtype → latents (N, w, T) = `k[codes]`, differentiable in `k`.
/// Out-of-range codes are an error (never an out-of-bounds read).
pub fn dequantise(codes: &Tensor, k: &Tensor) -> Result<Tensor> {
    let (n, t) = codes.dims2()?;
    let (bins, w) = k.dims2()?;
    let ids = match codes.dtype() {
        DType::U32 => codes.clone(),
        DType::I64 | DType::U8 => codes.to_dtype(DType::I64)?,
        dt => candle_core::bail!("dequantise: codes must be integers, got {dt:?}"),
    };
    if n * t > 0 {
        let ids64 = ids.to_dtype(DType::I64)?.flatten_all()?;
        let lo = ids64.min(0)?.to_scalar::<i64>()?;
        let hi = ids64.max(0)?.to_scalar::<i64>()?;
        if lo < 0 || hi >= bins as i64 {
            candle_core::bail!("codes must lie in [0, {bins}), found values in [{lo}, {hi}]");
        }
    }
    let ids = ids.to_dtype(DType::U32)?.flatten_all()?;
    k.index_select(&ids, 0)?
        .reshape((n, t, w))?
        .transpose(1, 2)?
        .contiguous()
}
