//! Signal analysis on CPU, deterministic: STFT, mel spectra, spectral features, distances,
//! onset strength and tempo, and spectrogram images. Used by the study report and by training
//! and quality metrics (`models/default/QUALITY.md` describes each).
//!
//! Conventions: the STFT matches `torch.stft(center=True, pad_mode="reflect")` with a periodic Hann
//! window of length `win` centred in `n_fft`, as the official Jukebox code uses; magnitudes are
//! `|X|`, not power, unless a name says power.

mod features;
mod image;
mod rhythm;

pub use features::{
    band_energy_shares, log_mel_distance, long_term_flatness, mean_log_mel, multires_stft_distance,
    rms_dbfs, si_snr_db, snr_db, spectral_bandwidth, spectral_centroid, spectral_convergence,
    spectral_features, spectral_flatness, SpectralFeatures, BAND_EDGES_HZ, MULTISPEC_CONFIGS,
};
pub use image::{spectrogram_image, spectrogram_png, SpectrogramOpts};
pub use rhythm::{
    bar_onset_correlation, onset_strength, tempo_bpm, tempo_error_folded, tempo_estimate,
    time_to_divergence, OnsetEnvelope, TempoEstimate,
};

use rayon::prelude::*;
use realfft::RealFftPlanner;

/// Periodic Hann window (as `torch.hann_window(n)`, the official code's window).
pub fn hann(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()) as f32)
        .collect()
}

/// Number of STFT frames for `len` samples (centre padding): `1 + len / hop`.
pub fn n_frames(len: usize, hop: usize) -> usize {
    1 + len / hop.max(1)
}

/// Magnitude STFT, `frames x (n_fft / 2 + 1)`. Centre-padded by reflection (zero padding when the
/// signal is too short to reflect), Hann window of length `win` (clamped to `n_fft`) centred in
/// the frame. Frames are computed in parallel; the result does not depend on the thread count.
pub fn stft_mag(samples: &[f32], n_fft: usize, hop: usize, win: usize) -> Vec<Vec<f32>> {
    stft_impl(samples, n_fft, hop, win, true)
}

/// Magnitude STFT over frames that lie wholly inside the signal (no padding, so no reflection
/// artefacts at the edges); a signal shorter than `n_fft` gives one zero-padded frame. Used for
/// clip-level features.
pub fn stft_mag_valid(samples: &[f32], n_fft: usize, hop: usize, win: usize) -> Vec<Vec<f32>> {
    stft_impl(samples, n_fft, hop, win, false)
}

fn stft_impl(samples: &[f32], n_fft: usize, hop: usize, win: usize, center: bool) -> Vec<Vec<f32>> {
    let n_fft = n_fft.max(2);
    let hop = hop.max(1);
    let win = win.clamp(1, n_fft);
    let pad = if center { n_fft / 2 } else { 0 };
    let len = samples.len();
    // Reflect-padded signal value at padded index j.
    let at = |j: usize| -> f32 {
        let i = j as i64 - pad as i64;
        let n = len as i64;
        if n == 0 {
            return 0.0;
        }
        let k = if center && n > pad as i64 {
            // torch reflect: -1 -> 1, n -> n - 2
            if i < 0 {
                -i
            } else if i >= n {
                2 * (n - 1) - i
            } else {
                i
            }
        } else if (0..n).contains(&i) {
            i
        } else {
            return 0.0;
        };
        samples[k as usize]
    };
    let mut window = vec![0f32; n_fft];
    let off = (n_fft - win) / 2;
    window[off..off + win].copy_from_slice(&hann(win));
    let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n_fft);
    let frames = if center {
        n_frames(len, hop)
    } else {
        1 + len.saturating_sub(n_fft) / hop
    };
    (0..frames)
        .into_par_iter()
        .map_init(
            || {
                (
                    fft.make_input_vec(),
                    fft.make_output_vec(),
                    fft.make_scratch_vec(),
                )
            },
            |(inp, out, scratch), t| {
                let start = t * hop;
                for (k, v) in inp.iter_mut().enumerate() {
                    *v = if window[k] == 0.0 {
                        0.0
                    } else {
                        at(start + k) * window[k]
                    };
                }
                // Lengths match the plan, so this cannot fail.
                let _ = fft.process_with_scratch(inp, out, scratch);
                out.iter().map(|c| c.norm()).collect()
            },
        )
        .collect()
}

/// Power spectrogram (`|X|^2`), same layout as [`stft_mag`].
pub fn stft_power(samples: &[f32], n_fft: usize, hop: usize, win: usize) -> Vec<Vec<f32>> {
    let mut s = stft_mag(samples, n_fft, hop, win);
    s.iter_mut().flatten().for_each(|v| *v *= *v);
    s
}

/// `10 log10(max(p, 1e-10))`: power to dB with librosa's floor.
pub fn power_to_db(p: f32) -> f32 {
    10.0 * p.max(1e-10).log10()
}

/// Slaney mel scale (librosa's default, `htk=False`).
pub fn hz_to_mel(f: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let logstep = 6.4f64.ln() / 27.0;
    if f >= min_log_hz {
        min_log_hz / f_sp + (f / min_log_hz).ln() / logstep
    } else {
        f / f_sp
    }
}

/// Inverse of [`hz_to_mel`].
pub fn mel_to_hz(m: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if m >= min_log_mel {
        min_log_hz * (logstep * (m - min_log_mel)).exp()
    } else {
        m * f_sp
    }
}

/// Triangular mel filters, `n_mels x (n_fft / 2 + 1)`, Slaney area normalisation (as
/// `librosa.filters.mel` defaults).
pub fn mel_filterbank(sr: u32, n_fft: usize, n_mels: usize, fmin: f64, fmax: f64) -> Vec<Vec<f32>> {
    let n_bins = n_fft / 2 + 1;
    let fmax = fmax.min(sr as f64 / 2.0);
    let (mlo, mhi) = (hz_to_mel(fmin), hz_to_mel(fmax));
    let pts: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(mlo + (mhi - mlo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let bin_hz: Vec<f64> = (0..n_bins)
        .map(|k| k as f64 * sr as f64 / n_fft as f64)
        .collect();
    (0..n_mels)
        .map(|m| {
            let (l, c, r) = (pts[m], pts[m + 1], pts[m + 2]);
            let norm = 2.0 / (r - l);
            bin_hz
                .iter()
                .map(|&f| {
                    let up = (f - l) / (c - l);
                    let down = (r - f) / (r - c);
                    (up.min(down).max(0.0) * norm) as f32
                })
                .collect()
        })
        .collect()
}

/// Apply a filterbank to each frame of a (power or magnitude) spectrogram. Each filter is summed
/// over its nonzero span only (a mel filter covers a few bins of ~1 000): the same terms in the
/// same order as the dense product, since the skipped terms are exact zeros, at a fraction of
/// the cost (the dense product was two thirds of a study's metrics time).
pub fn apply_filterbank(spec: &[Vec<f32>], bank: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let spans: Vec<(usize, usize)> = bank
        .iter()
        .map(|f| match f.iter().position(|&w| w != 0.0) {
            Some(lo) => (lo, f.iter().rposition(|&w| w != 0.0).map_or(lo, |h| h + 1)),
            None => (0, 0),
        })
        .collect();
    spec.iter()
        .map(|frame| {
            bank.iter()
                .zip(&spans)
                .map(|(filt, &(lo, hi))| {
                    let hi = hi.min(frame.len());
                    let lo = lo.min(hi);
                    filt[lo..hi]
                        .iter()
                        .zip(&frame[lo..hi])
                        .map(|(w, p)| w * p)
                        .sum()
                })
                .collect()
        })
        .collect()
}

/// Mel power spectrogram, `frames x n_mels` (Hann window of `n_fft`).
pub fn mel_spectrogram(
    samples: &[f32],
    sr: u32,
    n_fft: usize,
    hop: usize,
    n_mels: usize,
) -> Vec<Vec<f32>> {
    let bank = mel_filterbank(sr, n_fft, n_mels, 0.0, sr as f64 / 2.0);
    apply_filterbank(&stft_power(samples, n_fft, hop, n_fft), &bank)
}

/// Log-mel spectrogram in dB (`n_fft` 2048, hop 512, power, floor -100 dB), `frames x n_mels`.
pub fn log_mel(samples: &[f32], sr: u32, n_mels: usize) -> Vec<Vec<f32>> {
    let mut m = mel_spectrogram(samples, sr, 2048, 512, n_mels);
    m.iter_mut().flatten().for_each(|v| *v = power_to_db(*v));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stft_matches_direct_dft() {
        let x: Vec<f32> = (0..300)
            .map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * 0.3)
            .collect();
        let (n_fft, hop, win) = (64, 16, 48);
        let s = stft_mag(&x, n_fft, hop, win);
        assert_eq!(s.len(), 1 + 300 / 16);
        assert_eq!(s[0].len(), 33);
        // Frame 5 by a direct DFT.
        let w = hann(win);
        let t = 5;
        for k in [0usize, 3, 17, 32] {
            let (mut re, mut im) = (0f64, 0f64);
            for j in 0..n_fft {
                let wi = j as i64 - ((n_fft - win) / 2) as i64;
                if wi < 0 || wi >= win as i64 {
                    continue;
                }
                let idx = (t * hop + j) as i64 - (n_fft / 2) as i64;
                let v = x[idx.unsigned_abs() as usize] as f64 * w[wi as usize] as f64;
                let ph = -2.0 * std::f64::consts::PI * (k * j) as f64 / n_fft as f64;
                re += v * ph.cos();
                im += v * ph.sin();
            }
            let want = (re * re + im * im).sqrt() as f32;
            assert!(
                (s[t][k] - want).abs() < 1e-4,
                "bin {k}: {} vs {want}",
                s[t][k]
            );
        }
        // Frame 0 uses reflection: x[-1] = x[1].
        let s0 = stft_mag(&x, 4, 1, 4);
        // Frame 0 covers x[2], x[1], x[0], x[1] under the window [0, 0.5, 1, 0.5].
        let dc = 0.5 * x[1] + x[0] + 0.5 * x[1];
        assert!((s0[0][0] - dc.abs()).abs() < 1e-6);
    }

    #[test]
    fn valid_frames_stay_inside() {
        let x: Vec<f32> = (0..5000).map(|i| (i as f32 * 0.01).sin()).collect();
        let v = stft_mag_valid(&x, 1024, 256, 1024);
        assert_eq!(v.len(), 1 + (5000 - 1024) / 256);
        // Frame 2 of the valid STFT is frame 2 + n_fft/(2 hop) of the centred one.
        let c = stft_mag(&x, 1024, 256, 1024);
        for k in [0, 5, 100] {
            assert!((v[2][k] - c[4][k]).abs() < 1e-3);
        }
        assert_eq!(stft_mag_valid(&x[..100], 1024, 256, 1024).len(), 1);
    }

    #[test]
    fn short_and_empty_signals() {
        assert_eq!(stft_mag(&[], 512, 128, 512).len(), 1);
        let s = stft_mag(&[0.5; 10], 512, 128, 512);
        assert_eq!(s.len(), 1);
        assert!(s[0][0] > 0.0);
    }

    #[test]
    fn sparse_filterbank_equals_the_dense_product_bit_for_bit() {
        let bank = mel_filterbank(44100, 2048, 40, 0.0, 22050.0);
        let mut x = 0x9e3779b9u32;
        let spec: Vec<Vec<f32>> = (0..5)
            .map(|_| {
                (0..1025)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        (x % 10_000) as f32 * 1e-3
                    })
                    .collect()
            })
            .collect();
        let dense: Vec<Vec<f32>> = spec
            .iter()
            .map(|fr| {
                bank.iter()
                    .map(|f| f.iter().zip(fr).map(|(w, p)| w * p).sum::<f32>())
                    .collect()
            })
            .collect();
        let sparse = apply_filterbank(&spec, &bank);
        assert_eq!(sparse.len(), 5);
        for (a, b) in sparse.iter().flatten().zip(dense.iter().flatten()) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
        assert!(sparse[0].iter().all(|v| *v > 0.0));
        // A frame shorter than the filters sums what it has, as the dense zip did.
        let short = apply_filterbank(&[vec![1.0; 10]], &bank);
        assert_eq!(short[0].len(), 40);
    }

    #[test]
    fn mel_scale_round_trip_and_bank() {
        for f in [0.0, 100.0, 999.0, 1000.0, 4000.0, 20000.0] {
            assert!((mel_to_hz(hz_to_mel(f)) - f).abs() < 1e-6);
        }
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-9);
        let bank = mel_filterbank(44100, 2048, 40, 0.0, 22050.0);
        assert_eq!((bank.len(), bank[0].len()), (40, 1025));
        // Slaney norm: each filter's area in Hz-weighted bins is about 1 per (bin width).
        let bin = 44100.0 / 2048.0;
        for f in &bank[5..] {
            let area: f32 = f.iter().sum::<f32>() * bin;
            assert!((area - 1.0).abs() < 0.1, "area {area}");
        }
        // A 1 kHz tone lands in the band whose centre is nearest 1 kHz.
        let x: Vec<f32> = (0..8192)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 44100.0).sin())
            .collect();
        let m = mel_spectrogram(&x, 44100, 2048, 512, 40);
        let frame = &m[8];
        let best = (0..40)
            .max_by(|&a, &b| frame[a].total_cmp(&frame[b]))
            .unwrap();
        let mhi = hz_to_mel(22050.0);
        let centre = mel_to_hz(mhi * (best + 1) as f64 / 41.0);
        assert!(
            (centre - 1000.0).abs() < 150.0,
            "band {best} centre {centre}"
        );
    }
}
