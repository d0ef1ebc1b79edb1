//! VQ-VAE reconstruction on held-out clips, per level, against trivial codecs a reader knows:
//! silence, 8-bit µ-law, and a 4 kHz brick-wall low-pass. Also codebook usage and perplexity,
//! and how stable the codes are when the audio moves by less than a hop (a repeated bar whose
//! length is not a whole number of tokens lands on another phase of the hop grid each time).

use crate::dsp;
use crate::vqvae::VqVae;
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use realfft::RealFftPlanner;

/// Mean reconstruction quality of one codec over the clips.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconRow {
    /// "level 2 (top)", "silence", ...
    pub name: String,
    /// Mean multi-resolution STFT distance: Frobenius norm of the magnitude difference, mean
    /// over three resolutions (the official multispectral loss; grows with clip length, so
    /// compare rows, not runs). Lower is better.
    pub stft_distance: f64,
    /// Mean spectral convergence ‖|S|−|Ŝ|‖/‖|S|‖ (silence scores 1). Lower is better.
    pub spectral_convergence: f64,
    /// Mean absolute difference of the clip-mean log-mel spectra, dB. Lower is better.
    pub log_mel_db: f64,
    /// Mean SNR in dB (higher is better; silence is 0 dB).
    pub snr_db: f64,
    /// Bits per second the codec spends (None: not a fixed-rate code).
    pub kbps: Option<f64>,
    /// The level a row measures, or (for an equal-bitrate baseline) the level it matches.
    pub matches_level: Option<usize>,
}

/// Codebook usage of one level on held-out audio.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    pub level: usize,
    pub tokens: usize,
    pub distinct: usize,
    pub bins: usize,
    /// 2^(entropy of the code histogram, bits): the effective number of codes in use.
    pub perplexity: f64,
}

/// Share of one level's codes that stay the same when the clip starts `shift` samples later,
/// each shifted token compared with the original token it overlaps most.
#[derive(Debug, Clone, PartialEq)]
pub struct ShiftRow {
    pub level: usize,
    pub hop: usize,
    /// (shift in samples, share of equal codes), for hop/8, hop/4, hop/2 and a whole hop (the
    /// control: a convolutional encoder gives the same codes one token later).
    pub shares: Vec<(usize, f64)>,
    /// Share two unrelated tokens have equal: the sum of squared code frequencies.
    pub chance: f64,
    pub tokens: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReconResult {
    pub levels: Vec<ReconRow>,
    pub baselines: Vec<ReconRow>,
    pub usage: Vec<UsageRow>,
    pub shift: Vec<ShiftRow>,
}

/// 8-bit µ-law (µ = 255, as telephone audio): quantise and expand back.
pub fn mu_law_8bit(x: &[f32]) -> Vec<f32> {
    let mu = 255f64;
    x.iter()
        .map(|&v| {
            let v = (v as f64).clamp(-1.0, 1.0);
            let y = v.signum() * (1.0 + mu * v.abs()).ln() / (1.0 + mu).ln();
            // 256 levels over [-1, 1].
            let q = ((y + 1.0) / 2.0 * 255.0).round() / 255.0 * 2.0 - 1.0;
            (q.signum() * ((1.0 + mu).powf(q.abs()) - 1.0) / mu) as f32
        })
        .collect()
}

/// Zero every frequency above `cutoff_hz` (one FFT over the whole clip).
pub fn low_pass(x: &[f32], sr: u32, cutoff_hz: f64) -> Vec<f32> {
    let n = x.len();
    if n < 2 {
        return x.to_vec();
    }
    let mut planner = RealFftPlanner::<f64>::new();
    let fwd = planner.plan_fft_forward(n);
    let inv = planner.plan_fft_inverse(n);
    let mut buf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mut spec = fwd.make_output_vec();
    if fwd.process(&mut buf, &mut spec).is_err() {
        return x.to_vec();
    }
    let keep = (cutoff_hz * n as f64 / sr as f64).floor() as usize + 1;
    for c in spec.iter_mut().skip(keep) {
        *c = realfft::num_complex::Complex::new(0.0, 0.0);
    }
    // realfft wants a real DC (and Nyquist for even n) bin.
    spec[0].im = 0.0;
    if n.is_multiple_of(2) {
        if let Some(last) = spec.last_mut() {
            last.im = 0.0;
        }
    }
    let mut out = inv.make_output_vec();
    if inv.process(&mut spec, &mut out).is_err() {
        return x.to_vec();
    }
    out.iter().map(|&v| (v / n as f64) as f32).collect()
}

/// Perplexity (2^entropy) and distinct count of a code histogram.
pub fn usage(codes: &[i64], bins: usize) -> (usize, f64) {
    let mut h = vec![0usize; bins.max(1)];
    for &c in codes {
        h[(c.max(0) as usize).min(bins.max(1) - 1)] += 1;
    }
    let n = codes.len().max(1) as f64;
    let distinct = h.iter().filter(|&&c| c > 0).count();
    let ent: f64 = h
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum();
    (distinct, ent.exp2())
}

/// Seconds at either end left out of the shift comparison: tokens whose receptive field reaches
/// the clip's edge see padding where the shifted clip sees audio, which is not what the measure
/// is about (the encoder's dilated stacks reach tens of tokens at the top level).
pub const SHIFT_MARGIN_SECONDS: f64 = 0.25;

/// Share of equal codes between `a` and `b` with `b[t]` compared to `a[t + lag]`, over the tokens
/// at least `margin` from either end: (equal, compared).
pub fn equal_share(a: &[i64], b: &[i64], lag: usize, margin: usize) -> Option<(usize, usize)> {
    let n = b.len().min(a.len().saturating_sub(lag));
    let range = margin..n.saturating_sub(margin);
    if range.is_empty() {
        return None;
    }
    let equal = range.clone().filter(|&t| a[t + lag] == b[t]).count();
    Some((equal, range.len()))
}

/// Sum of squared code frequencies: how often two tokens drawn at random hold the same code.
pub fn collision_probability(codes: &[i64]) -> f64 {
    let mut h = std::collections::HashMap::new();
    for &c in codes {
        *h.entry(c).or_insert(0usize) += 1;
    }
    let n = codes.len().max(1) as f64;
    h.values().map(|&c| (c as f64 / n).powi(2)).sum()
}

fn codes_of(vq: &VqVae, x: &[f32], level: usize, dev: &Device) -> Result<Vec<i64>> {
    let t = Tensor::from_slice(x, (1, x.len()), dev)?;
    Ok(vq
        .encode(&t, level)?
        .to_dtype(DType::I64)?
        .flatten_all()?
        .to_vec1::<i64>()?)
}

/// Code stability of one level under shifts of hop/8, hop/4, hop/2 and one hop.
pub fn shift_stability(
    vq: &VqVae,
    clips: &[Vec<f32>],
    level: usize,
    dev: &Device,
) -> Result<ShiftRow> {
    let hop = vq.hop_length(level);
    let shifts = [hop / 8, hop / 4, hop / 2, hop];
    let top_hop = vq.hop_length(vq.levels() - 1);
    let margin =
        (SHIFT_MARGIN_SECONDS * vq.config().sample_rate as f64 / hop as f64).ceil() as usize;
    let mut counts = vec![(0usize, 0usize); shifts.len()];
    let mut all = Vec::new();
    for x in clips {
        let a = codes_of(vq, x, level, dev)?;
        for (k, &s) in shifts.iter().enumerate() {
            if s == 0 || s >= x.len() {
                continue;
            }
            // The encoder takes whole top-level hops.
            let len = (x.len() - s) / top_hop * top_hop;
            let b = codes_of(vq, &x[s..s + len], level, dev)?;
            // A shift under half a hop overlaps token t most; a whole hop is token t + 1.
            if let Some((e, n)) = equal_share(&a, &b, s / hop, margin) {
                counts[k].0 += e;
                counts[k].1 += n;
            }
        }
        all.extend(a);
    }
    Ok(ShiftRow {
        level,
        hop,
        shares: shifts
            .iter()
            .zip(&counts)
            .map(|(&s, &(e, n))| {
                (
                    s,
                    if n == 0 {
                        f64::NAN
                    } else {
                        e as f64 / n as f64
                    },
                )
            })
            .collect(),
        chance: collision_probability(&all),
        tokens: all.len(),
    })
}

fn mean_row(name: &str, clips: &[Vec<f32>], outs: &[Vec<f32>]) -> ReconRow {
    let n = clips.len().max(1) as f64;
    let (mut d, mut s, mut c, mut m) = (0f64, 0f64, 0f64, 0f64);
    for (x, y) in clips.iter().zip(outs) {
        d += dsp::multires_stft_distance(x, y);
        s += dsp::snr_db(x, y);
        c += dsp::spectral_convergence(x, y);
        m += dsp::log_mel_distance(x, y, 44_100);
    }
    ReconRow {
        name: name.to_string(),
        stft_distance: d / n,
        spectral_convergence: c / n,
        log_mel_db: m / n,
        snr_db: s / n,
        kbps: None,
        matches_level: None,
    }
}

/// 8-bit µ-law at `rate` Hz: resample down, quantise, resample back (a trivial codec of
/// 8·rate bit/s).
pub fn mu_law_at(x: &[f32], sr: u32, rate: u32) -> Result<Vec<f32>> {
    let down = crate::audio::resample(x, sr, rate.max(1))?;
    let mut up = crate::audio::resample(&mu_law_8bit(&down), rate.max(1), sr)?;
    up.resize(x.len(), 0.0);
    Ok(up)
}

/// kbit/s of one level's codes: tokens per second × log2(codebook size).
pub fn level_kbps(sr: u32, hop: usize, bins: usize) -> f64 {
    sr as f64 / hop.max(1) as f64 * (bins.max(2) as f64).log2() / 1000.0
}

/// `level 2 (top)`: the number and, for the three official levels, the name.
pub fn level_name(level: usize, levels: usize) -> String {
    match crate::level::Level(level) {
        l if levels == 3 => format!("level {level} ({l})"),
        _ => format!("level {level}"),
    }
}

/// Encode and decode every clip at every level; `progress(message)` per level.
pub fn measure(
    vq: &VqVae,
    clips: &[Vec<f32>],
    dev: &Device,
    progress: &mut dyn FnMut(&str),
) -> Result<ReconResult> {
    let cfg = vq.config();
    let sr = cfg.sample_rate;
    let mut levels = Vec::new();
    let mut usage_rows = Vec::new();
    for level in (0..vq.levels()).rev() {
        progress(&format!(
            "reconstruction: {} on {} clips",
            level_name(level, vq.levels()),
            clips.len()
        ));
        let mut outs = Vec::with_capacity(clips.len());
        let mut all_codes = Vec::new();
        for (i, x) in clips.iter().enumerate() {
            let t = Tensor::from_slice(x, (1, x.len()), dev)?;
            let codes = vq
                .encode(&t, level)
                .with_context(|| format!("encoding clip {i} at level {level}"))?;
            let y = vq
                .decode(&codes, level)
                .with_context(|| format!("decoding clip {i} at level {level}"))?;
            let mut y = y.squeeze(0)?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
            y.resize(x.len(), 0.0);
            outs.push(y);
            all_codes.extend(
                codes
                    .to_dtype(DType::I64)?
                    .flatten_all()?
                    .to_vec1::<i64>()?,
            );
        }
        let mut row = mean_row(&level_name(level, vq.levels()), clips, &outs);
        row.kbps = Some(level_kbps(sr, vq.hop_length(level), cfg.l_bins));
        row.matches_level = Some(level);
        levels.push(row);
        let (distinct, perplexity) = usage(&all_codes, cfg.l_bins);
        usage_rows.push(UsageRow {
            level,
            tokens: all_codes.len(),
            distinct,
            bins: cfg.l_bins,
            perplexity,
        });
    }
    progress("reconstruction: baselines");
    let silence: Vec<Vec<f32>> = clips.iter().map(|x| vec![0.0; x.len()]).collect();
    let mu: Vec<Vec<f32>> = clips.iter().map(|x| mu_law_8bit(x)).collect();
    let lp: Vec<Vec<f32>> = clips.iter().map(|x| low_pass(x, sr, 4000.0)).collect();
    let mut baselines = vec![mean_row("silence (all zeros)", clips, &silence)];
    // The same bit budget as each level, spent on plain 8-bit µ-law at a lower sample rate.
    for level in (0..vq.levels()).rev() {
        let kbps = level_kbps(sr, vq.hop_length(level), cfg.l_bins);
        let rate = (kbps * 1000.0 / 8.0).round() as u32;
        let outs: Vec<Vec<f32>> = clips
            .iter()
            .map(|x| mu_law_at(x, sr, rate))
            .collect::<Result<_>>()?;
        let mut row = mean_row(&format!("8-bit µ-law at {rate} Hz"), clips, &outs);
        row.kbps = Some(kbps);
        row.matches_level = Some(level);
        baselines.push(row);
    }
    let mut row = mean_row("8-bit µ-law at 44.1 kHz", clips, &mu);
    row.kbps = Some(sr as f64 * 8.0 / 1000.0);
    baselines.push(row);
    baselines.push(mean_row("4 kHz low-pass (unquantised)", clips, &lp));
    let mut shift = Vec::new();
    for level in (0..vq.levels()).rev() {
        progress(&format!(
            "reconstruction: code stability under shifts, level {level}"
        ));
        shift.push(shift_stability(vq, clips, level, dev)?);
    }
    Ok(ReconResult {
        levels,
        baselines,
        usage: usage_rows,
        shift,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(f: f64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (0.5 * (2.0 * std::f64::consts::PI * f * i as f64 / 44100.0).sin()) as f32)
            .collect()
    }

    #[test]
    fn low_pass_keeps_low_and_removes_high() {
        let lo = sine(441.0, 44100);
        let hi = sine(8820.0, 44100);
        let mix: Vec<f32> = lo.iter().zip(&hi).map(|(a, b)| a + b).collect();
        let out = low_pass(&mix, 44100, 4000.0);
        // Both tones sit exactly on FFT bins, so the cut is exact.
        assert!(dsp::snr_db(&lo, &out) > 80.0, "{}", dsp::snr_db(&lo, &out));
    }

    #[test]
    fn mu_law_is_close_but_not_exact() {
        let x = sine(441.0, 44100);
        let y = mu_law_8bit(&x);
        let snr = dsp::snr_db(&x, &y);
        // 8-bit µ-law gives roughly 35-40 dB on a loud tone.
        assert!((30.0..45.0).contains(&snr), "{snr}");
        let e = mu_law_8bit(&[0.0, 1.0, -1.0]);
        assert!(e[0].abs() < 1e-3 && e[1] == 1.0 && e[2] == -1.0, "{e:?}");
    }

    #[test]
    fn equal_share_aligns_and_skips_the_edges() {
        let a: Vec<i64> = (0..40).collect();
        // b is a one token later: equal everywhere at lag 1, nowhere at lag 0.
        let b: Vec<i64> = (1..40).collect();
        assert_eq!(equal_share(&a, &b, 1, 8), Some((39 - 16, 39 - 16)));
        assert_eq!(equal_share(&a, &b, 0, 8), Some((0, 39 - 16)));
        let mut c = a.clone();
        c[20] = -1;
        assert_eq!(equal_share(&a, &c, 0, 8), Some((23, 24)));
        assert_eq!(equal_share(&a, &c, 0, 0), Some((39, 40)));
        assert_eq!(equal_share(&a[..10], &b[..10], 0, 8), None);
        assert!((collision_probability(&[1, 1, 2, 3]) - (0.25 + 0.0625 * 2.0)).abs() < 1e-12);
    }

    #[test]
    fn usage_counts_and_perplexity() {
        let (d, p) = usage(&[0, 1, 2, 3, 0, 1, 2, 3], 16);
        assert_eq!(d, 4);
        assert!((p - 4.0).abs() < 1e-12);
        let (d, p) = usage(&[5; 10], 16);
        assert_eq!((d, p), (1, 1.0));
    }
}
