//! Timing-label bins of the official `LabelConditioner` (three `RangeEmbedding`s).
//!
//! The official code evaluates every step in fp32 tensors, each op rounded on its own, so this
//! replays the same order of operations in `f32` (no fused multiply-add). An f64 evaluation gets a
//! few bins wrong on bin edges (`tests/fixtures/reference/timing/` counts them).

use anyhow::{bail, Result};

/// The bins a top-level prior's timing embeddings look up for one `y` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimingBins {
    /// `total_length_emb` bin (one value, broadcast over all positions).
    pub total: i64,
    /// `absolute_pos_emb` bin per position (n_time of them).
    pub absolute: Vec<i64>,
    /// `relative_pos_emb` bin per position (n_time of them).
    pub relative: Vec<i64>,
}

/// Official `RangeEmbedding` binning: `floor(bins · (pos − min) / (max − min))` in fp32.
/// `range_min`/`range_max` are Python floats in the official code; the span is taken in f64
/// (as Python does) and rounded to f32 once, like every scalar operand of a float32 tensor op.
fn bin(position: f32, range_min: f64, range_max: f64, bins: usize) -> i64 {
    let normalised = (position - range_min as f32) / ((range_max - range_min) as f32);
    (bins as f32 * normalised).floor() as i64
}

/// Official `torch.arange(0, n_time, dtype=float) / n_time`, each entry an f32 division.
fn interpolation(n_time: usize) -> impl Iterator<Item = f32> {
    let n = n_time as f32;
    (0..n_time).map(move |i| i as f32 / n)
}

fn seconds(samples: f64, sr: f64) -> f64 {
    samples / sr
}

/// Compute the timing bins exactly as the official `LabelConditioner.forward` does, with its
/// assertions turned into errors that speak seconds.
///
/// `total_length`, `offset` and `sample_length` are in samples (the first three `y` columns);
/// `n_time` is the prior's `n_ctx`, `t_bins` its `t_bins`.
#[allow(clippy::too_many_arguments)]
pub fn timing_bins(
    total_length: i64,
    offset: i64,
    sample_length: i64,
    n_time: usize,
    t_bins: usize,
    min_duration: f64,
    max_duration: f64,
    sr: f64,
) -> Result<TimingBins> {
    if n_time == 0 || t_bins == 0 {
        bail!("timing bins need n_time > 0 and t_bins > 0 (got n_time {n_time}, t_bins {t_bins})");
    }
    if !(sr > 0.0
        && min_duration.is_finite()
        && max_duration.is_finite()
        && min_duration < max_duration)
    {
        bail!("timing ranges are invalid: sr {sr}, min_duration {min_duration} s, max_duration {max_duration} s");
    }
    if sample_length < 0 {
        bail!("window length must not be negative (got {sample_length} samples)");
    }
    let (min_len, max_len) = (min_duration * sr, max_duration * sr);
    // The official code converts the int64 y entries to float32 (`.float()`) first.
    let total = total_length as f32;
    let start = offset as f32;
    let end = offset.saturating_add(sample_length) as f32;

    if total < min_len as f32 {
        bail!(
            "song length {:.2} s ({total_length} samples) is below this prior's minimum of {min_duration} s; \
             set the total length (e.g. --total-seconds) to at least {min_duration} s",
            seconds(total_length as f64, sr)
        );
    }
    if total >= max_len as f32 {
        bail!(
            "song length {:.2} s ({total_length} samples) must be below this prior's maximum of {max_duration} s",
            seconds(total_length as f64, sr)
        );
    }
    if start < 0.0 || start >= max_len as f32 {
        bail!(
            "window offset {:.2} s ({offset} samples) must lie in [0, {max_duration}) s",
            seconds(offset as f64, sr)
        );
    }
    if end > max_len as f32 {
        bail!(
            "window end {:.2} s (offset {offset} + length {sample_length} samples) passes this prior's \
             maximum of {max_duration} s",
            seconds(offset as f64 + sample_length as f64, sr)
        );
    }
    let rel_start = start / total;
    // The relative end is clamped to [0, 1]: a window may run past the song's end.
    let rel_end = (end / total).clamp(0.0, 1.0);
    if !(0.0..1.0).contains(&rel_start) {
        bail!(
            "window offset {:.2} s ({offset} samples) is not inside the song of {:.2} s ({total_length} samples)",
            seconds(offset as f64, sr),
            seconds(total_length as f64, sr)
        );
    }

    let total_bin = bin(total, min_len, max_len, t_bins);
    let span = end - start;
    let rel_span = rel_end - rel_start;
    let mut absolute = Vec::with_capacity(n_time);
    let mut relative = Vec::with_capacity(n_time);
    for interp in interpolation(n_time) {
        absolute.push(bin(start + span * interp, 0.0, max_len, t_bins));
        relative.push(bin(rel_start + rel_span * interp, 0.0, 1.0, t_bins));
    }
    Ok(TimingBins {
        total: total_bin,
        absolute,
        relative,
    })
}

/// The timing bins for a prior's label settings.
pub fn timing_bins_for(
    labels: &crate::config::LabelConfig,
    n_ctx: usize,
    sr: f64,
    total_length: i64,
    offset: i64,
    sample_length: i64,
) -> Result<TimingBins> {
    timing_bins(
        total_length,
        offset,
        sample_length,
        n_ctx,
        labels.t_bins,
        labels.min_duration,
        labels.max_duration,
        sr,
    )
}

/// The timing bins of every row of a batch of `y` rows (flattened row-major, `y_len` each).
pub fn timing_bins_rows(
    y: &[i64],
    y_len: usize,
    labels: &crate::config::LabelConfig,
    n_ctx: usize,
    sr: f64,
) -> Result<Vec<TimingBins>> {
    if y_len < 3 || !y.len().is_multiple_of(y_len) {
        bail!(
            "y has {} entries, not a whole number of rows of {y_len}",
            y.len()
        );
    }
    y.chunks(y_len)
        .enumerate()
        .map(|(b, row)| {
            timing_bins_for(labels, n_ctx, sr, row[0], row[1], row[2])
                .map_err(|e| e.context(format!("batch item {b}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SR: f64 = 44100.0;

    fn bins_1b(total: i64, offset: i64) -> Result<TimingBins> {
        timing_bins(total, offset, 6144 * 128, 6144, 64, 17.84, 600.0, SR)
    }

    #[test]
    fn rows_of_a_batch() {
        let l = crate::config::PriorConfig::official_1b_lyrics()
            .labels
            .unwrap();
        let y = [
            1_323_000, 0, 786_432, 7, 8, 26_400_000, 786_432, 786_432, 7, 8,
        ];
        let b = timing_bins_rows(&y, 5, &l, 6144, SR).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[1].total, 63);
        assert_eq!(b[1].absolute[0], 1);
        let e = timing_bins_rows(&[100, 0, 786_432, 7, 8], 5, &l, 6144, SR).unwrap_err();
        assert!(format!("{e:#}").contains("batch item 0"), "{e:#}");
        assert!(timing_bins_rows(&y[..7], 5, &l, 6144, SR).is_err());
    }

    #[test]
    fn song_start_and_shortest_song() {
        // The shortest song 1b accepts: 17.84 s = 786744 samples exactly.
        let b = bins_1b(786_744, 0).unwrap();
        assert_eq!(b.total, 0);
        assert_eq!(b.absolute[0], 0);
        assert_eq!(b.relative[0], 0);
        // One window (786432 samples) is 99.96 % of this song, so the relative bins end at 63.
        assert_eq!(*b.relative.last().unwrap(), 63);
        assert_eq!(b.absolute.len(), 6144);
        // Absolute bins: the window spans 786432 / 26460000 · 64 ≈ 1.9 bins.
        assert_eq!(*b.absolute.last().unwrap(), 1);
    }

    #[test]
    fn below_minimum_says_the_minimum() {
        let e = bins_1b(786_743, 0).unwrap_err().to_string();
        assert!(e.contains("17.84 s"), "{e}");
        let e = timing_bins(59 * 44100, 0, 8192 * 128, 8192, 128, 60.0, 600.0, SR)
            .unwrap_err()
            .to_string();
        assert!(e.contains("minimum of 60 s"), "{e}");
    }

    #[test]
    fn maximum_and_offsets() {
        // total < max is required; the last valid total lands in the last bin.
        assert!(bins_1b(26_460_000, 0).is_err());
        let b = timing_bins(26_459_998, 0, 1024, 8, 64, 17.84, 600.0, SR).unwrap();
        assert_eq!(b.total, 63);
        // Offsets must lie inside the song.
        assert!(bins_1b(10 * 44100 * 3, -1).is_err());
        assert!(bins_1b(1_323_000, 1_323_000).is_err());
        // The window end is not clamped for the absolute range.
        assert!(timing_bins(26_000_000, 25_900_000, 786_432, 8, 64, 17.84, 600.0, SR).is_err());
    }

    #[test]
    fn relative_end_is_clamped_to_one() {
        // Window reaching past the song end: relative positions stop at bin t_bins − 1.
        let total = 1_323_000; // 30 s
        let b = timing_bins(total, total - 1000, 786_432, 64, 64, 17.84, 600.0, SR).unwrap();
        assert_eq!(b.relative[0], 63);
        assert!(b.relative.iter().all(|&r| r == 63));
    }

    #[test]
    fn f32_interpolation_not_f64() {
        // interp = i / 6144 is rounded to f32 before the multiply-add, as in the official code.
        let interp: Vec<f32> = interpolation(6144).collect();
        assert_eq!(interp[3072], 0.5);
        assert_eq!(interp[1], 1.0f32 / 6144.0);
        // A relative position that f32 rounds onto a bin edge: 0.5 + 0.25·0.5 in f32 is 0.625
        // exactly, so floor(64·0.625) = 40.
        assert_eq!(bin(0.625, 0.0, 1.0, 64), 40);
        assert_eq!(bin(0.624_999_94, 0.0, 1.0, 64), 39);
    }
}
