//! Audio features for the study: a thin layer over [`crate::dsp`] so that every study number has
//! one definition (tempo by onset-strength autocorrelation, per-bar onset-pattern correlation,
//! log-mel distance, timbre descriptors, fixed-scale spectrograms).

use crate::dsp;
use anyhow::Result;
use std::path::Path;

/// Number of energy-share bands (edges in [`dsp::BAND_EDGES_HZ`]; the last runs to Nyquist).
pub const N_BANDS: usize = 6;
/// Beats per bar for onset patterns (4/4).
pub const BEATS_PER_BAR: f64 = 4.0;

/// The spectrogram scale used for every image of a study, so that images compare.
pub fn spectrogram_opts() -> dsp::SpectrogramOpts {
    dsp::SpectrogramOpts::default()
}

/// Tempo in BPM; 0 when none is found.
pub fn tempo_bpm(x: &[f32], sr: u32) -> f64 {
    dsp::tempo_bpm(x, sr)
}

/// |tempo − reference| in BPM with octave errors folded.
pub fn tempo_error(bpm: f64, reference: f64) -> f64 {
    dsp::tempo_error_folded(bpm, reference)
}

/// Mean per-bar onset-pattern correlation of `x` against the prompt's mean bar pattern; `x`
/// must start on a bar line of the prompt's grid. NaN when either has no full bar.
pub fn onset_corr_per_bar(x: &[f32], prompt: &[f32], sr: u32, bpm: f64) -> f64 {
    let v = dsp::bar_onset_correlation(prompt, x, sr, bpm, BEATS_PER_BAR);
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Samples per bar at `bpm` (0 when the tempo is unknown).
pub fn bar_samples(bpm: f64, sr: u32) -> usize {
    if bpm.is_finite() && bpm > 0.0 {
        (BEATS_PER_BAR * 60.0 / bpm * sr as f64).round() as usize
    } else {
        0
    }
}

/// Spectral distance in dB (mean absolute difference of time-averaged log-mel spectra).
pub fn spectral_distance(a: &[f32], b: &[f32], sr: u32) -> f64 {
    dsp::log_mel_distance(a, b, sr)
}

/// Timbre descriptors.
pub fn timbre(x: &[f32], sr: u32) -> dsp::SpectralFeatures {
    dsp::spectral_features(x, sr)
}

/// A spectrogram PNG on the study's fixed dB scale, written atomically.
pub fn spectrogram_png(path: &Path, x: &[f32], sr: u32) -> Result<()> {
    dsp::spectrogram_png(path, x, sr, &spectrogram_opts())
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
    fn tempo_onsets_and_distance_on_known_signals() {
        let a = clicks(120.0, 8.0);
        assert!(tempo_error(tempo_bpm(&a, 44100), 120.0) < 3.0);
        assert!(onset_corr_per_bar(&a, &a, 44100, 120.0) > 0.9);
        assert_eq!(bar_samples(120.0, 44100), 88200);
        let sine: Vec<f32> = (0..44100)
            .map(|i| (i as f32 * 2.0 * std::f32::consts::PI * 1500.0 / 44100.0).sin() * 0.5)
            .collect();
        assert!(spectral_distance(&sine, &sine, 44100) < 1e-9);
        assert!(spectral_distance(&sine, &a[..44100], 44100) > 5.0);
        let t = timbre(&sine, 44100);
        assert!(
            (t.centroid_hz - 1500.0).abs() < 120.0 && t.band_energy[3] > 0.99,
            "{t:?}"
        );
    }
}
