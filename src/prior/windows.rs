//! Lengths and window starts, as the official `sample.py` / `sample_level` compute them.

use anyhow::{bail, Result};

/// Round a length in seconds down to a whole number of top-level tokens, in samples
/// (official: `floor(seconds·sr / hop)·hop`).
pub fn seconds_to_samples(seconds: f64, sample_rate: u32, top_hop: usize) -> Result<usize> {
    if !seconds.is_finite() || seconds <= 0.0 {
        bail!("length must be a positive number of seconds, got {seconds}");
    }
    // Far beyond any model's song length; also keeps `seconds * rate` inside usize/i64.
    if seconds > crate::audio::MAX_SECONDS {
        bail!(
            "length {seconds:e} s is longer than the {} s limit",
            crate::audio::MAX_SECONDS
        );
    }
    let raw = (seconds * sample_rate as f64).floor() as usize;
    let n = raw / top_hop * top_hop;
    if n == 0 {
        bail!(
            "{seconds} s is shorter than one top-level token ({top_hop} samples = {:.4} s)",
            top_hop as f64 / sample_rate as f64
        );
    }
    Ok(n)
}

/// Window starts over `total` tokens with context `n_ctx` and hop `hop`
/// (official `get_starts`): `range(0, total - n_ctx + hop, hop)`, each start clamped so the
/// window ends at `total`.
pub fn get_starts(total: usize, n_ctx: usize, hop: usize) -> Vec<usize> {
    let mut starts = Vec::new();
    if total < n_ctx || hop == 0 {
        return vec![0];
    }
    let mut s = 0;
    while s < total - n_ctx + hop {
        starts.push(if s + n_ctx >= total { total - n_ctx } else { s });
        s += hop;
    }
    starts
}

/// One window of sampling at a level: tokens [start, end), of which the first `existing - start`
/// are already known (the window's prompt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub index: usize,
    pub start: usize,
    pub end: usize,
}

/// The windows needed to take a level from `have` tokens to `total` tokens (official
/// `sample_level`): full windows when total ≥ n_ctx, otherwise one partial window from 0.
/// Windows whose tokens all exist already are skipped, so no token is ever resampled.
pub fn plan_windows(have: usize, total: usize, n_ctx: usize, hop: usize) -> Vec<Window> {
    if total <= have {
        return vec![];
    }
    if total < n_ctx {
        return vec![Window {
            index: 0,
            start: 0,
            end: total,
        }];
    }
    let mut out = Vec::new();
    let mut covered = have;
    for (index, start) in get_starts(total, n_ctx, hop).into_iter().enumerate() {
        let end = start + n_ctx;
        if end <= covered {
            continue;
        }
        out.push(Window { index, start, end });
        covered = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_match_official() {
        // Official: range(0, 160 - 64 + 8, 8) with the last clamped to 96.
        let s = get_starts(160, 64, 8);
        assert_eq!(s.len(), 13);
        assert_eq!(s[0], 0);
        assert_eq!(s[11], 88);
        assert_eq!(s[12], 96);
        assert_eq!(get_starts(64, 64, 8), vec![0]);
        // 5b top level: 20 s = 6890 tokens < 8192 → a single partial window.
        assert_eq!(plan_windows(0, 6890, 8192, 1024).len(), 1);
    }

    #[test]
    fn windows_never_resample() {
        let w = plan_windows(0, 160, 64, 8);
        assert_eq!(
            w[0],
            Window {
                index: 0,
                start: 0,
                end: 64
            }
        );
        assert_eq!(
            w[1],
            Window {
                index: 1,
                start: 8,
                end: 72
            }
        );
        assert_eq!(w.last().unwrap().end, 160);
        // With a 100-token prompt the first window to sample is the one ending after 100.
        let w = plan_windows(100, 160, 64, 8);
        assert_eq!(w[0].start, 40);
        assert_eq!(w[0].end, 104);
        assert!(plan_windows(160, 160, 64, 8).is_empty());
    }

    #[test]
    fn seconds_round_down_to_top_hop() {
        assert_eq!(seconds_to_samples(20.0, 44100, 128).unwrap(), 881_920);
        assert!(seconds_to_samples(0.0, 44100, 128).is_err());
        assert!(seconds_to_samples(-1.0, 44100, 128).is_err());
        assert!(seconds_to_samples(0.001, 44100, 128).is_err());
    }
}
