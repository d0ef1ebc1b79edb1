//! Spectral features, loudness, band energy and distances between signals.

use super::{log_mel, stft_mag, stft_mag_valid};

/// Upper edges of the energy bands (Hz); the last band runs to Nyquist.
pub const BAND_EDGES_HZ: [f64; 5] = [150.0, 400.0, 1000.0, 2500.0, 6000.0];
/// The official multispectral loss configurations (n_fft, hop, window), upstream
/// jukebox/hparams.py (`multispec_loss_n_fft`, `multispec_loss_hop_length`,
/// `multispec_loss_window_size`), used by jukebox/utils/audio_utils.py `multispectral_loss`.
pub const MULTISPEC_CONFIGS: [(usize, usize, usize); 3] =
    [(2048, 240, 1200), (1024, 120, 600), (512, 50, 240)];

const N_FFT: usize = 2048;
const HOP: usize = 512;

/// Clip-level timbre and spectrum summary.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectralFeatures {
    /// Magnitude-weighted mean frequency (Hz).
    pub centroid_hz: f64,
    /// Magnitude-weighted standard deviation around the centroid (Hz).
    pub bandwidth_hz: f64,
    /// Mean per-frame power-spectrum flatness (librosa's definition): white noise about 0.56
    /// (= e^-γ), a pure tone near 0.
    pub flatness: f64,
    /// Flatness of the time-averaged power spectrum: white noise near 1, a tone near 0.
    pub long_term_flatness: f64,
    /// RMS level in dBFS (a full-scale sine is -3.01 dBFS; silence -120).
    pub rms_dbfs: f64,
    /// Share of power in each band of [`BAND_EDGES_HZ`] (six bands, summing to 1; zeros if silent).
    pub band_energy: [f64; 6],
}

/// All [`SpectralFeatures`] from one STFT (n_fft 2048, hop 512, frames inside the signal).
pub fn spectral_features(samples: &[f32], sr: u32) -> SpectralFeatures {
    let mag = stft_mag_valid(samples, N_FFT, HOP, N_FFT);
    let (centroid_hz, bandwidth_hz) = centroid_bandwidth(&mag, sr);
    let welch = mean_power(&mag);
    SpectralFeatures {
        centroid_hz,
        bandwidth_hz,
        flatness: frame_flatness(&mag),
        long_term_flatness: flatness_of(&welch[1..]),
        rms_dbfs: rms_dbfs(samples),
        band_energy: bands_of(&welch, sr),
    }
}

fn bin_hz(k: usize, sr: u32) -> f64 {
    k as f64 * sr as f64 / N_FFT as f64
}

fn centroid_bandwidth(mag: &[Vec<f32>], sr: u32) -> (f64, f64) {
    let (mut w, mut c) = (0f64, 0f64);
    for frame in mag {
        for (k, &m) in frame.iter().enumerate() {
            w += m as f64;
            c += m as f64 * bin_hz(k, sr);
        }
    }
    if w <= 0.0 {
        return (0.0, 0.0);
    }
    let c = c / w;
    let mut v = 0f64;
    for frame in mag {
        for (k, &m) in frame.iter().enumerate() {
            v += m as f64 * (bin_hz(k, sr) - c).powi(2);
        }
    }
    (c, (v / w).sqrt())
}

fn mean_power(mag: &[Vec<f32>]) -> Vec<f64> {
    let n = mag.first().map_or(0, |f| f.len());
    let mut p = vec![0f64; n];
    for frame in mag {
        for (acc, &m) in p.iter_mut().zip(frame) {
            *acc += (m as f64) * (m as f64);
        }
    }
    let t = mag.len().max(1) as f64;
    p.iter_mut().for_each(|v| *v /= t);
    p
}

/// Geometric over arithmetic mean (librosa floor 1e-10); 0 for an all-zero spectrum.
fn flatness_of(p: &[f64]) -> f64 {
    if p.is_empty() || p.iter().all(|&v| v <= 1e-10) {
        return 0.0;
    }
    let lg: f64 = p.iter().map(|&v| v.max(1e-10).ln()).sum::<f64>() / p.len() as f64;
    let ar: f64 = p.iter().map(|&v| v.max(1e-10)).sum::<f64>() / p.len() as f64;
    lg.exp() / ar
}

fn frame_flatness(mag: &[Vec<f32>]) -> f64 {
    let (mut s, mut n) = (0f64, 0usize);
    for frame in mag {
        let p: Vec<f64> = frame.iter().map(|&m| (m as f64) * (m as f64)).collect();
        // Silent frames (mean power below -100 dB) say nothing about timbre.
        if p.iter().sum::<f64>() / p.len() as f64 > 1e-10 {
            s += flatness_of(&p);
            n += 1;
        }
    }
    if n == 0 {
        0.0
    } else {
        s / n as f64
    }
}

fn bands_of(p: &[f64], sr: u32) -> [f64; 6] {
    let mut b = [0f64; 6];
    for (k, &v) in p.iter().enumerate() {
        let f = bin_hz(k, sr);
        let i = BAND_EDGES_HZ.iter().position(|&e| f < e).unwrap_or(5);
        b[i] += v;
    }
    let tot: f64 = b.iter().sum();
    if tot > 0.0 {
        b.iter_mut().for_each(|v| *v /= tot);
    }
    b
}

/// Magnitude-weighted spectral centroid (Hz).
pub fn spectral_centroid(samples: &[f32], sr: u32) -> f64 {
    centroid_bandwidth(&stft_mag_valid(samples, N_FFT, HOP, N_FFT), sr).0
}

/// Magnitude-weighted spectral bandwidth (Hz).
pub fn spectral_bandwidth(samples: &[f32], sr: u32) -> f64 {
    centroid_bandwidth(&stft_mag_valid(samples, N_FFT, HOP, N_FFT), sr).1
}

/// Mean per-frame spectral flatness (see [`SpectralFeatures::flatness`]).
pub fn spectral_flatness(samples: &[f32]) -> f64 {
    frame_flatness(&stft_mag_valid(samples, N_FFT, HOP, N_FFT))
}

/// Flatness of the time-averaged power spectrum (see [`SpectralFeatures::long_term_flatness`]).
pub fn long_term_flatness(samples: &[f32]) -> f64 {
    let p = mean_power(&stft_mag_valid(samples, N_FFT, HOP, N_FFT));
    flatness_of(&p[1..])
}

/// RMS level in dBFS, floored at -120.
pub fn rms_dbfs(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return -120.0;
    }
    let ms = samples.iter().map(|&x| x as f64 * x as f64).sum::<f64>() / samples.len() as f64;
    (10.0 * ms.log10()).max(-120.0)
}

/// Share of power per band of [`BAND_EDGES_HZ`].
pub fn band_energy_shares(samples: &[f32], sr: u32) -> [f64; 6] {
    bands_of(&mean_power(&stft_mag_valid(samples, N_FFT, HOP, N_FFT)), sr)
}

/// Time-averaged log-mel spectrum (dB per band), the "spectral fingerprint" of a clip.
pub fn mean_log_mel(samples: &[f32], sr: u32, n_mels: usize) -> Vec<f64> {
    let m = log_mel(samples, sr, n_mels);
    let mut out = vec![0f64; n_mels];
    for f in &m {
        for (o, &v) in out.iter_mut().zip(f) {
            *o += v as f64;
        }
    }
    out.iter_mut().for_each(|v| *v /= m.len().max(1) as f64);
    out
}

/// Distance between two clips of any lengths: mean absolute difference (dB) of their
/// time-averaged 64-band log-mel spectra. 0 for identical spectra.
pub fn log_mel_distance(a: &[f32], b: &[f32], sr: u32) -> f64 {
    let (ma, mb) = (mean_log_mel(a, sr, 64), mean_log_mel(b, sr, 64));
    ma.iter().zip(&mb).map(|(x, y)| (x - y).abs()).sum::<f64>() / 64.0
}

fn frob_diff(x: &[f32], y: &[f32], n_fft: usize, hop: usize, win: usize) -> (f64, f64) {
    let (sx, sy) = (stft_mag(x, n_fft, hop, win), stft_mag(y, n_fft, hop, win));
    let (mut d, mut r) = (0f64, 0f64);
    for (fx, fy) in sx.iter().zip(&sy) {
        for (&a, &b) in fx.iter().zip(fy) {
            d += (a as f64 - b as f64).powi(2);
            r += (a as f64).powi(2);
        }
    }
    (d.sqrt(), r.sqrt())
}

/// Multi-resolution STFT distance (the official multispectral loss before `bw_spec`): the mean
/// over [`MULTISPEC_CONFIGS`] of the Frobenius norm of `|STFT(x)| - |STFT(y)|`. Signals are
/// compared over their common length.
pub fn multires_stft_distance(x: &[f32], y: &[f32]) -> f64 {
    let n = x.len().min(y.len());
    MULTISPEC_CONFIGS
        .iter()
        .map(|&(f, h, w)| frob_diff(&x[..n], &y[..n], f, h, w).0)
        .sum::<f64>()
        / MULTISPEC_CONFIGS.len() as f64
}

/// Spectral convergence as the official `audio_utils.spectral_convergence` (n_fft 2048, hop 256,
/// window 1536, eps 2e-3): `‖|S|-|Ŝ|‖_F / ‖|S|‖_F`, 0 when the reference norm is below eps.
pub fn spectral_convergence(reference: &[f32], estimate: &[f32]) -> f64 {
    let n = reference.len().min(estimate.len());
    let (d, r) = frob_diff(&reference[..n], &estimate[..n], 2048, 256, 1536);
    let eps = 2e-3;
    if r > eps {
        d / r
    } else {
        0.0
    }
}

/// Signal-to-noise ratio (dB) of `estimate` against `reference` over their common length.
pub fn snr_db(reference: &[f32], estimate: &[f32]) -> f64 {
    let (mut s, mut e) = (0f64, 0f64);
    for (&r, &x) in reference.iter().zip(estimate) {
        s += r as f64 * r as f64;
        e += (r as f64 - x as f64).powi(2);
    }
    10.0 * ((s + 1e-20) / (e + 1e-20)).log10()
}

/// Scale-invariant SNR (dB), means removed (AudioCraft's SI-SNR).
pub fn si_snr_db(reference: &[f32], estimate: &[f32]) -> f64 {
    let n = reference.len().min(estimate.len());
    if n == 0 {
        return 0.0;
    }
    let mr = reference[..n].iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let me = estimate[..n].iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let (mut dot, mut rr) = (0f64, 0f64);
    for i in 0..n {
        let (r, e) = (reference[i] as f64 - mr, estimate[i] as f64 - me);
        dot += r * e;
        rr += r * r;
    }
    let alpha = dot / (rr + 1e-20);
    let (mut t, mut noise) = (0f64, 0f64);
    for i in 0..n {
        let (r, e) = (reference[i] as f64 - mr, estimate[i] as f64 - me);
        t += (alpha * r).powi(2);
        noise += (e - alpha * r).powi(2);
    }
    10.0 * ((t + 1e-20) / (noise + 1e-20)).log10()
}
