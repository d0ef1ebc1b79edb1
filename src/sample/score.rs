//! Teacher-forced bits per token of existing codes, window by window exactly as they were
//! sampled, so a sample can be scored under its own labels or under any other labels.

use crate::labels::{BaseLabel, Labeller};
use crate::prior::windows::plan_windows;
use crate::prior::{nll_bits, Prior};
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};

/// Bits of each item's tokens at positions `from..total`, scored in the windows the sampler
/// uses (`plan_windows(from, total, n_ctx, hop)`), under each label set of `sets` (one
/// `BaseLabel` per row). Returns (per set, the sum of bits per item; number of scored tokens).
/// All sets go through the transformer as one batch per window.
#[allow(clippy::too_many_arguments)]
pub fn score_rows(
    prior: &Prior,
    lab: &Labeller,
    sets: &[&[BaseLabel]],
    rows: &[Vec<i64>],
    upper: Option<&[Vec<i64>]>,
    from: usize,
    hop: usize,
    dev: &Device,
) -> Result<(Vec<Vec<f64>>, usize)> {
    let n = rows.len();
    let total = rows.first().map_or(0, Vec::len);
    let n_ctx = prior.cfg.n_ctx;
    let k = sets.len();
    let bases: Vec<BaseLabel> = sets.iter().flat_map(|s| s.iter().cloned()).collect();
    if bases.len() != k * n {
        anyhow::bail!(
            "score_rows: every label set needs one label per row ({n} rows, {} labels)",
            bases.len()
        );
    }
    let mut sums = vec![vec![0f64; n]; k];
    let mut counted = 0usize;
    let mut have = from;
    for w in plan_windows(from, total, n_ctx, hop) {
        let (flat, _) = lab.get_y_batch(&bases, w.start as i64)?;
        let y = Tensor::from_vec(flat, (k * n, lab.y_len()), dev)?;
        let z = match upper {
            Some(up) => {
                let f = w.start / (n_ctx / prior.z_cond_len());
                let z: Vec<i64> = (0..k)
                    .flat_map(|_| up.iter())
                    .flat_map(|r| r[f..f + prior.z_cond_len()].to_vec())
                    .collect();
                Some(Tensor::from_vec(z, (k * n, prior.z_cond_len()), dev)?)
            }
            None => None,
        };
        let toks: Vec<i64> = (0..k)
            .flat_map(|_| rows.iter())
            .flat_map(|r| r[w.start..w.end].to_vec())
            .collect();
        let toks = Tensor::from_vec(toks, (k * n, w.end - w.start), dev)?;
        let y_opt = prior.cfg.labels.is_some().then_some(&y);
        // Only the window's new tokens count: the head and the bits skip the others.
        let first = have.max(w.start) - w.start;
        let len = w.end - w.start - first;
        let at = || format!("scoring window {}..{}", w.start, w.end);
        let cond = prior.conditioning(y_opt, z.as_ref()).with_context(at)?;
        let logits = prior
            .forward_cond_from(&toks, &cond, first)
            .with_context(at)?;
        let targets =
            (toks.narrow(1, first, len)?.to_dtype(DType::I64)? + prior.music_shift() as f64)?;
        let part = nll_bits(&logits, &targets)?
            .sum(1)?
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?;
        for (i, p) in part.into_iter().enumerate() {
            sums[i / n][i % n] += p;
        }
        counted += len;
        have = w.end;
    }
    Ok((sums, counted))
}
