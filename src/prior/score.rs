//! Teacher-forced scoring of a token sequence longer than one window (`jukebox logits`,
//! label ranking): windows of n_ctx tokens with hop n_ctx; the last window ends at the sequence
//! end and contributes only the positions not scored yet.

use super::Prior;
use candle_core::{bail, DType, Result, Tensor};

/// Window starts covering `total` tokens: 0, n_ctx, 2·n_ctx, …, the last one ending at `total`.
/// A sequence shorter than one window gives the single start 0.
pub fn score_starts(total: usize, n_ctx: usize) -> Vec<usize> {
    if total <= n_ctx {
        return vec![0];
    }
    let mut s: Vec<usize> = (0..total)
        .step_by(n_ctx)
        .filter(|&s| s + n_ctx <= total)
        .collect();
    if s.last().is_none_or(|&l| l + n_ctx < total) {
        s.push(total - n_ctx);
    }
    s
}

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
        self.nll_bits.mean_all()?.to_scalar::<f32>()
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
    let starts = score_starts(total, n_ctx);
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
    fn starts_cover_everything_once() {
        assert_eq!(score_starts(10, 64), vec![0]);
        assert_eq!(score_starts(64, 64), vec![0]);
        assert_eq!(score_starts(128, 64), vec![0, 64]);
        assert_eq!(score_starts(150, 64), vec![0, 64, 86]);
    }
}
