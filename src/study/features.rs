//! Audio features for the study, computed from one STFT per signal.
//!
//! Kept as a thin layer so that the study's numbers have one definition: tempo by onset-strength
//! autocorrelation, per-bar onset-pattern correlation against the prompt, log-spectrum distance,
//! and timbre descriptors.

use anyhow::Result;
use realfft::RealFftPlanner;
use std::path::Path;

pub const N_FFT: usize = 2048;
pub const HOP: usize = 512;
/// Energy-share bands (Hz edges); the last band runs to Nyquist.
pub const BAND_EDGES: [f64; 6] = [0.0, 150.0, 400.0, 1000.0, 2500.0, 6000.0];
/// The fixed dB range of every spectrogram image, so that images compare.
pub const DB_FLOOR: f32 = -80.0;
pub const DB_CEIL: f32 = 0.0;

/// Magnitude STFT: frames × (N_FFT/2 + 1), Hann window, zero-padded at the end.
pub fn stft_mag(x: &[f32]) -> Vec<Vec<f32>> {
    let mut planner = RealFftPlanner::<f32>::new();
    let fft = planner.plan_fft_forward(N_FFT);
    let window: Vec<f32> = (0..N_FFT)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / N_FFT as f32).cos())
        .collect();
    let n_frames = if x.len() <= N_FFT { 1 } else { 1 + (x.len() - N_FFT).div_ceil(HOP) };
    let mut input = fft.make_input_vec();
    let mut out = fft.make_output_vec();
    let mut frames = Vec::with_capacity(n_frames);
    for f in 0..n_frames {
        for (i, v) in input.iter_mut().enumerate() {
            *v = x.get(f * HOP + i).copied().unwrap_or(0.0) * window[i];
        }
        if fft.process(&mut input, &mut out).is_err() {
            frames.push(vec![0.0; N_FFT / 2 + 1]);
            continue;
        }
        frames.push(out.iter().map(|c| c.norm()).collect());
    }
    frames
}

/// Spectral-flux onset strength per frame.
pub fn onset_envelope(mag: &[Vec<f32>]) -> Vec<f64> {
    let mut env = vec![0.0; mag.len()];
    for f in 1..mag.len() {
        env[f] = mag[f]
            .iter()
            .zip(&mag[f - 1])
            .map(|(a, b)| ((1.0 + 100.0 * *a as f64).ln() - (1.0 + 100.0 * *b as f64).ln()).max(0.0))
            .sum();
    }
    env
}

fn frame_rate(sr: u32) -> f64 {
    sr as f64 / HOP as f64
}

/// Tempo in BPM from the onset envelope's autocorrelation, searched in 60–200 BPM with a mild
/// preference for 90–160 BPM (limits octave errors). 0 when there are no onsets.
pub fn tempo_bpm(x: &[f32], sr: u32) -> f64 {
    let env = onset_envelope(&stft_mag(x));
    let m = env.iter().sum::<f64>() / env.len().max(1) as f64;
    let e: Vec<f64> = env.iter().map(|v| v - m).collect();
    let fr = frame_rate(sr);
    let (mut best, mut best_bpm) = (f64::MIN, 0.0);
    let min_lag = (fr * 60.0 / 200.0).floor().max(1.0) as usize;
    let max_lag = ((fr * 60.0 / 60.0).ceil() as usize).min(e.len().saturating_sub(2));
    for lag in min_lag..=max_lag {
        let ac: f64 = (0..e.len() - lag).map(|i| e[i] * e[i + lag]).sum::<f64>() / (e.len() - lag) as f64;
        let bpm = 60.0 * fr / lag as f64;
        let w = (-0.5 * ((bpm / 120.0).log2() / 0.6).powi(2)).exp();
        if ac * w > best {
            best = ac * w;
            best_bpm = bpm;
        }
    }
    if best <= 0.0 {
        return 0.0;
    }
    best_bpm
}

/// Tempo error in BPM with octave errors folded: the smallest |a·k − b| for k in {½, 1, 2}.
pub fn tempo_error(bpm: f64, reference: f64) -> f64 {
    if bpm <= 0.0 || reference <= 0.0 {
        return reference.max(bpm);
    }
    [0.5, 1.0, 2.0].iter().map(|k| (bpm * k - reference).abs()).fold(f64::INFINITY, f64::min)
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    if n < 2 {
        return 0.0;
    }
    let ma = a[..n].iter().sum::<f64>() / n as f64;
    let mb = b[..n].iter().sum::<f64>() / n as f64;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for i in 0..n {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma).powi(2);
        sbb += (b[i] - mb).powi(2);
    }
    if saa <= 1e-12 || sbb <= 1e-12 {
        return 0.0;
    }
    sab / (saa * sbb).sqrt()
}

/// Mean per-bar onset-pattern correlation of `cont` against the prompt: each bar of the
/// continuation is compared with the prompt bar at the same position in the loop (4/4 at
/// `bpm`). 0 when either has no full bar.
pub fn onset_corr_per_bar(cont: &[f32], prompt: &[f32], sr: u32, bpm: f64) -> f64 {
    if bpm <= 0.0 {
        return 0.0;
    }
    let bar = ((4.0 * 60.0 / bpm) * frame_rate(sr)).round() as usize;
    let ec = onset_envelope(&stft_mag(cont));
    let ep = onset_envelope(&stft_mag(prompt));
    if bar < 2 || ec.len() < bar || ep.len() < bar {
        return 0.0;
    }
    let np = ep.len() / bar;
    let nc = ec.len() / bar;
    let v: Vec<f64> = (0..nc)
        .map(|b| {
            let pb = b % np;
            pearson(&ec[b * bar..(b + 1) * bar], &ep[pb * bar..(pb + 1) * bar])
        })
        .collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn mean_log_spectrum(mag: &[Vec<f32>]) -> Vec<f64> {
    let bins = N_FFT / 2 + 1;
    let mut m = vec![0.0; bins];
    for f in mag {
        for (k, v) in f.iter().enumerate() {
            m[k] += (*v as f64 * *v as f64 + 1e-10).log10() * 10.0;
        }
    }
    m.iter().map(|v| v / mag.len().max(1) as f64).collect()
}

/// Spectral distance in dB: mean absolute difference of the mean log-power spectra.
pub fn spectral_distance(a: &[f32], b: &[f32]) -> f64 {
    let ma = mean_log_spectrum(&stft_mag(a));
    let mb = mean_log_spectrum(&stft_mag(b));
    ma.iter().zip(&mb).map(|(x, y)| (x - y).abs()).sum::<f64>() / ma.len() as f64
}

/// Timbre descriptors of a signal.
#[derive(Clone, Debug, PartialEq)]
pub struct Timbre {
    pub centroid_hz: f64,
    pub bandwidth_hz: f64,
    pub flatness: f64,
    pub rms_db: f64,
    /// Share of energy per band of [`BAND_EDGES`]; sums to 1 (0s for silence).
    pub bands: Vec<f64>,
}

pub fn timbre(x: &[f32], sr: u32) -> Timbre {
    let mag = stft_mag(x);
    let bins = N_FFT / 2 + 1;
    let hz = |k: usize| k as f64 * sr as f64 / N_FFT as f64;
    let (mut c_sum, mut bw_sum, mut fl_sum, mut wsum) = (0.0, 0.0, 0.0, 0.0);
    let mut bands = vec![0.0; BAND_EDGES.len()];
    for f in &mag {
        let p: Vec<f64> = f.iter().map(|v| (*v as f64).powi(2)).collect();
        let tot: f64 = p.iter().sum();
        if tot <= 1e-12 {
            continue;
        }
        let c = p.iter().enumerate().map(|(k, v)| hz(k) * v).sum::<f64>() / tot;
        let bw = (p.iter().enumerate().map(|(k, v)| (hz(k) - c).powi(2) * v).sum::<f64>() / tot).sqrt();
        let geo = (p.iter().map(|v| (v + 1e-12).ln()).sum::<f64>() / bins as f64).exp();
        let fl = geo / (tot / bins as f64);
        // Weight frames by energy so silence between hits does not dominate.
        c_sum += c * tot;
        bw_sum += bw * tot;
        fl_sum += fl * tot;
        wsum += tot;
        for (k, v) in p.iter().enumerate() {
            let b = BAND_EDGES.iter().rposition(|e| hz(k) >= *e).unwrap_or(0);
            bands[b] += v;
        }
    }
    let btot: f64 = bands.iter().sum();
    if btot > 0.0 {
        bands.iter_mut().for_each(|b| *b /= btot);
    }
    let ms = x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / x.len().max(1) as f64;
    let w = wsum.max(1e-300);
    Timbre {
        centroid_hz: if wsum > 0.0 { c_sum / w } else { 0.0 },
        bandwidth_hz: if wsum > 0.0 { bw_sum / w } else { 0.0 },
        flatness: if wsum > 0.0 { fl_sum / w } else { 0.0 },
        rms_db: 10.0 * (ms + 1e-12).log10(),
        bands,
    }
}

/// A log-power spectrogram PNG (low frequencies at the bottom) on a fixed dB scale
/// ([`DB_FLOOR`], [`DB_CEIL`] relative to full scale), so that images of different samples
/// compare. Written atomically.
pub fn spectrogram_png(path: &Path, x: &[f32]) -> Result<()> {
    const HEIGHT: usize = 160;
    let mag = stft_mag(x);
    let bins = N_FFT / 2 + 1;
    let width = mag.len().max(1);
    // Full-scale sine → 0 dB: |X| = A · sum(window) / 2 = A · N/4.
    let norm = (N_FFT as f32 / 4.0).powi(2);
    let mut img = image::RgbImage::new(width as u32, HEIGHT as u32);
    for (fx, frame) in mag.iter().enumerate() {
        for y in 0..HEIGHT {
            // Log-frequency rows from ~30 Hz to Nyquist.
            let frac = (HEIGHT - 1 - y) as f32 / (HEIGHT - 1) as f32;
            let k = ((30.0f32 / 22050.0).powf(1.0 - frac) * (bins - 1) as f32).round() as usize;
            let p = frame[k.min(bins - 1)].powi(2) / norm;
            let db = 10.0 * (p + 1e-12).log10();
            let t = ((db - DB_FLOOR) / (DB_CEIL - DB_FLOOR)).clamp(0.0, 1.0);
            img.put_pixel(fx as u32, y as u32, image::Rgb(colormap(t)));
        }
    }
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png)
        .map_err(|e| anyhow::anyhow!("cannot encode spectrogram {}: {e}", path.display()))?;
    crate::util::atomic_write(path, buf.get_ref())
}

/// A dark-blue → magenta → yellow ramp.
fn colormap(t: f32) -> [u8; 3] {
    let r = (255.0 * (1.5 * t).min(1.0)) as u8;
    let g = (255.0 * (2.0 * t - 1.0).clamp(0.0, 1.0)) as u8;
    let b = (255.0 * (0.3 + 0.7 * (1.0 - (2.0 * t - 0.6).abs())).clamp(0.0, 1.0) * (1.0 - t * 0.6)) as u8;
    [r, g, b]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clicks(bpm: f64, secs: f64) -> Vec<f32> {
        let sr = 44100.0;
        let period = (60.0 / bpm * sr) as usize;
        (0..(secs * sr) as usize)
            .map(|i| {
                let k = i % period;
                if k < 300 {
                    (1.0 - k as f32 / 300.0) * ((i as f32 * 0.9).sin())
                } else {
                    0.0
                }
            })
            .collect()
    }

    #[test]
    fn tempo_of_click_tracks() {
        for bpm in [90.0, 120.0, 137.0, 150.0] {
            let t = tempo_bpm(&clicks(bpm, 8.0), 44100);
            assert!(tempo_error(t, bpm) < 3.0, "{bpm}: got {t}");
        }
        assert_eq!(tempo_error(68.5, 137.0), 0.0);
    }

    #[test]
    fn sine_timbre_and_distance() {
        let sine: Vec<f32> = (0..44100).map(|i| (i as f32 * 2.0 * std::f32::consts::PI * 1000.0 / 44100.0).sin() * 0.5).collect();
        let t = timbre(&sine, 44100);
        assert!((t.centroid_hz - 1000.0).abs() < 30.0, "{t:?}");
        assert!(t.flatness < 0.01);
        assert!((t.rms_db - 20.0 * (0.5f64 / 2f64.sqrt()).log10()).abs() < 0.1);
        assert!(t.bands[3] > 0.95, "{:?}", t.bands);
        assert!(spectral_distance(&sine, &sine) < 1e-9);
        let c = clicks(120.0, 1.0);
        assert!(spectral_distance(&sine, &c) > 5.0);
        let a = clicks(120.0, 6.0);
        assert!(onset_corr_per_bar(&a, &a, 44100, 120.0) > 0.9);
    }
}
