//! Teacher-forced scoring of a token sequence longer than one window (`jukebox logits`,
//! label ranking): windows of n_ctx tokens with hop n_ctx; the last window ends at the sequence
//! end and contributes only the positions not scored yet.

use super::windows::get_starts;
use super::Prior;
use anyhow::{bail, Result};
use candle_core::{DType, Tensor};

#[derive(Debug, Clone)]
pub struct ScoreOutput {
    /// Negative log-likelihood of every token, bits (N, T).
    pub nll_bits: Tensor,
    /// Logits (N, T, vocab) when asked for.
    pub logits: Option<Tensor>,
}

impl ScoreOutput {
    /// Mean bits per token over everything.
    pub fn mean_bits(&self) -> Result<f32> {
        Ok(self.nll_bits.mean_all()?.to_scalar::<f32>()?)
    }
}

/// Score `tokens` (N, T). `y_at(start)` gives the label rows (N, y_dim) of the window starting
/// at token `start`; `upper` holds the level-above codes (N, ≥ T / factor) for upsamplers.
/// `progress(done, windows)` after each window.
pub fn score_sequence(
    prior: &Prior,
    tokens: &Tensor,
    y_at: &mut dyn FnMut(usize) -> Result<Option<Tensor>>,
    upper: Option<&Tensor>,
    keep_logits: bool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ScoreOutput> {
    let (n, total) = tokens.dims2()?;
    if total == 0 {
        bail!("no tokens to score");
    }
    let n_ctx = prior.cfg.n_ctx;
    let starts = get_starts(total, n_ctx, n_ctx);
    let factor = prior.conditioner.as_ref().map(|c| c.upsample_factor());
    if factor.is_some() && total < n_ctx {
        bail!(
            "an upsampler needs at least one whole window: {total} tokens given, {n_ctx} needed at this level"
        );
    }
    let mut nll_parts = vec![];
    let mut logit_parts = vec![];
    let mut done = 0usize;
    for (wi, &start) in starts.iter().enumerate() {
        let len = n_ctx.min(total - start);
        let win = tokens.narrow(1, start, len)?;
        let y = y_at(start)?;
        let zc = match (factor, upper) {
            (Some(f), Some(u)) => {
                let (a, l) = (start / f, n_ctx / f);
                if u.dim(1)? < a + l {
                    bail!(
                        "level-above codes too short: window at token {start} needs {} of them, the file has {}",
                        a + l,
                        u.dim(1)?
                    );
                }
                Some(u.narrow(1, a, l)?)
            }
            (Some(_), None) => bail!("an upsampler needs the level-above codes"),
            _ => None,
        };
        let cond = prior.conditioning(y.as_ref(), zc.as_ref())?;
        let logits = prior.forward_cond(&win, &cond)?;
        let t = (win.to_dtype(DType::I64)? + prior.music_shift() as f64)?;
        let nll = super::nll_bits(&logits, &t)?;
        // Only positions not scored by an earlier window.
        let skip = done.saturating_sub(start);
        let keep = len - skip;
        nll_parts.push(nll.narrow(1, skip, keep)?);
        if keep_logits {
            logit_parts.push(logits.narrow(1, skip, keep)?);
        }
        done = start + len;
        progress(wi + 1, starts.len());
    }
    let nll_bits = Tensor::cat(&nll_parts, 1)?;
    debug_assert_eq!(nll_bits.dims2()?, (n, total));
    let logits = if keep_logits {
        Some(Tensor::cat(&logit_parts, 1)?)
    } else {
        None
    };
    Ok(ScoreOutput { nll_bits, logits })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoring_windows_hop_by_a_whole_context() {
        // Scoring uses the sampler's planner with hop = n_ctx: every token once, the last
        // window ending at the sequence end.
        assert_eq!(get_starts(10, 64, 64), vec![0]);
        assert_eq!(get_starts(64, 64, 64), vec![0]);
        assert_eq!(get_starts(128, 64, 64), vec![0, 64]);
        assert_eq!(get_starts(150, 64, 64), vec![0, 64, 86]);
        assert_eq!(get_starts(192, 64, 64), vec![0, 64, 128]);
    }
}
