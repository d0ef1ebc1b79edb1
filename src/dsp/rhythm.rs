//! Onset strength (log-mel spectral flux), tempo by onset autocorrelation, and bar-by-bar onset
//! pattern correlation: the "prompt retention" measures of the study (peers-and-data §5c).

use super::{apply_filterbank, mel_filterbank, power_to_db, stft_power};

/// Onset strength per frame and the frame rate (frames per second).
#[derive(Debug, Clone, PartialEq)]
pub struct OnsetEnvelope {
    pub values: Vec<f32>,
    pub frame_rate: f64,
}

/// A tempo and how clearly the signal shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TempoEstimate {
    pub bpm: f64,
    /// Normalised onset autocorrelation at the beat period, in [-1, 1]; near 1 for a steady
    /// click, near 0 for no periodicity.
    pub confidence: f64,
}

/// Slowest and fastest tempo considered.
const MIN_BPM: f64 = 40.0;
const MAX_BPM: f64 = 240.0;
const N_MELS: usize = 64;

/// Spectral flux of the log-mel spectrogram: the mean over bands of the positive change in dB
/// from one frame to the next (hop 256 at 44.1 kHz, about 5.8 ms; scaled for other rates).
pub fn onset_strength(samples: &[f32], sr: u32) -> OnsetEnvelope {
    let scale = sr.max(1) as f64 / 44_100.0;
    let hop = ((256.0 * scale).round() as usize).max(1);
    let n_fft = ((2048.0 * scale).round() as usize)
        .next_power_of_two()
        .max(64);
    let bank = mel_filterbank(sr, n_fft, N_MELS, 0.0, sr as f64 / 2.0);
    let mut mel = apply_filterbank(&stft_power(samples, n_fft, hop, n_fft), &bank);
    let mut top = f32::MIN;
    for v in mel.iter_mut().flatten() {
        *v = power_to_db(*v);
        top = top.max(*v);
    }
    // As librosa (top_db = 80): quiet detail far below the peak is noise, not onsets.
    let floor = top - 80.0;
    mel.iter_mut().flatten().for_each(|v| *v = v.max(floor));
    let mut values = vec![0f32; mel.len()];
    for t in 1..mel.len() {
        let s: f32 = mel[t]
            .iter()
            .zip(&mel[t - 1])
            .map(|(a, b)| (a - b).max(0.0))
            .sum();
        values[t] = s / N_MELS as f32;
    }
    OnsetEnvelope {
        values,
        frame_rate: sr as f64 / hop as f64,
    }
}

fn interp(ac: &[f64], lag: f64) -> f64 {
    let i = lag.floor() as usize;
    if i + 1 >= ac.len() {
        return 0.0;
    }
    let f = lag - i as f64;
    ac[i] * (1.0 - f) + ac[i + 1] * f
}

/// Tempo in BPM, or `None` when the signal has no usable onsets (silence, a steady tone, or
/// shorter than two beats at the slowest tempo).
///
/// The onset envelope is high-passed (1 s moving mean removed) and lightly smoothed, and its
/// autocorrelation is scored at the beat period L as a harmonic comb `Σ_k ac(kL)/k`, k = 1..4
/// (multiples sharpen the estimate to a fraction of a frame). Octave errors are handled in two
/// ways: a strong pulse at L/2 lowers the score of L (a steady click at 180 BPM is not 90 BPM),
/// and a broad log-normal preference around 120 BPM (one octave wide) settles true ties.
pub fn tempo_estimate(samples: &[f32], sr: u32) -> Option<TempoEstimate> {
    let env = onset_strength(samples, sr);
    let fps = env.frame_rate;
    let n = env.values.len();
    let max_period = 60.0 * fps / MIN_BPM;
    if (n as f64) < 2.0 * 60.0 * fps / MAX_BPM + 2.0 {
        return None;
    }
    // High-pass: remove a ~1 s moving mean, so loudness swells do not look like long periods.
    let w = (fps.round() as usize).max(1) | 1;
    let h = w / 2;
    let mut prefix = vec![0f64; n + 1];
    for (i, &v) in env.values.iter().enumerate() {
        prefix[i + 1] = prefix[i] + v as f64;
    }
    let hp: Vec<f64> = (0..n)
        .map(|i| {
            let (a, b) = (i.saturating_sub(h), (i + h + 1).min(n));
            env.values[i] as f64 - (prefix[b] - prefix[a]) / (b - a) as f64
        })
        .collect();
    // Smooth with a 3-tap binomial filter so autocorrelation peaks interpolate well.
    let e: Vec<f64> = (0..n)
        .map(|i| {
            let l = hp[i.saturating_sub(1)];
            let r = hp[(i + 1).min(n - 1)];
            0.25 * l + 0.5 * hp[i] + 0.25 * r
        })
        .collect();
    let energy: f64 = e.iter().map(|v| v * v).sum();
    if energy <= 1e-12 {
        return None;
    }
    let max_lag = ((4.0 * max_period).ceil() as usize + 2).min(n - 1);
    let ac: Vec<f64> = (0..=max_lag)
        .map(|l| {
            e[..n - l]
                .iter()
                .zip(&e[l..])
                .map(|(a, b)| a * b)
                .sum::<f64>()
                / energy
        })
        .collect();

    if let Ok(b) = std::env::var("JB_TEMPO_DEBUG") {
        let b: f64 = b.parse().unwrap_or(120.0);
        let p = 60.0 * fps / b;
        let pk = |l: f64| (-2..=2).map(|d| interp(&ac, (l + d as f64 * 0.5).max(0.0))).fold(f64::MIN, f64::max);
        eprintln!("MSG {b}: P/2 {:.3} P {:.3} 3P/2 {:.3} 2P {:.3} 4P {:.3}", pk(p / 2.0), pk(p), pk(1.5 * p), pk(2.0 * p), pk(4.0 * p));
    }
    let mut best: Option<(f64, f64, f64)> = None; // (score, bpm, ac at period)
    let steps = ((MAX_BPM - MIN_BPM) / 0.05).round() as usize;
    for s in 0..=steps {
        let bpm = MIN_BPM + s as f64 * 0.05;
        let lag = 60.0 * fps / bpm;
        if lag + 1.0 >= ac.len() as f64 {
            continue;
        }
        let mut comb = 0.0;
        for k in 1..=4 {
            let kl = k as f64 * lag;
            if kl + 1.0 < ac.len() as f64 {
                comb += interp(&ac, kl) / k as f64;
            }
        }
        let half = interp(&ac, lag / 2.0).max(0.0);
        let prior = (-0.5 * (bpm / 120.0).log2().powi(2)).exp();
        let score = (comb - 0.5 * half) * prior;

        if best.is_none_or(|b| score > b.0) {
            best = Some((score, bpm, interp(&ac, lag)));
        }
    }
    let (score, bpm, conf) = best?;
    if score <= 0.0 {
        return None;
    }
    Some(TempoEstimate {
        bpm,
        confidence: conf.clamp(-1.0, 1.0),
    })
}

/// Tempo in BPM (see [`tempo_estimate`]); 0.0 when no tempo can be found.
pub fn tempo_bpm(samples: &[f32], sr: u32) -> f64 {
    tempo_estimate(samples, sr).map_or(0.0, |t| t.bpm)
}

/// |estimate - reference| in BPM after folding octave errors (x2, x1/2, x4, x1/4), so a
/// continuation at half or double the prompt's tempo counts as keeping it.
pub fn tempo_error_folded(estimate: f64, reference: f64) -> f64 {
    if estimate <= 0.0 || !estimate.is_finite() {
        return reference.abs();
    }
    [0.25, 0.5, 1.0, 2.0, 4.0]
        .iter()
        .map(|m| (estimate * m - reference).abs())
        .fold(f64::INFINITY, f64::min)
}

/// Steps per bar in onset patterns (12 per beat in 4/4: sixteenths and triplets both land).
const STEPS: usize = 48;

/// Max-pooled onset pattern of each full bar of `env`, bars starting at frame 0.
fn bar_patterns(env: &OnsetEnvelope, bar_frames: f64) -> Vec<[f64; STEPS]> {
    let n = env.values.len();
    let mut out = Vec::new();
    let mut i = 0usize;
    while ((i + 1) as f64 * bar_frames).ceil() as usize <= n {
        let start = i as f64 * bar_frames;
        let mut p = [0f64; STEPS];
        for (j, v) in p.iter_mut().enumerate() {
            let a = (start + j as f64 * bar_frames / STEPS as f64).floor() as usize;
            let b = ((start + (j + 1) as f64 * bar_frames / STEPS as f64).ceil() as usize)
                .clamp(a + 1, n);
            *v = env.values[a.min(n - 1)..b]
                .iter()
                .fold(0f32, |m, &x| m.max(x)) as f64;
        }
        out.push(p);
        i += 1;
    }
    out
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma).powi(2);
        bb += (y - mb).powi(2);
    }
    if aa <= 1e-18 || bb <= 1e-18 {
        0.0
    } else {
        ab / (aa * bb).sqrt()
    }
}

/// For each full bar of `signal`, the Pearson correlation of its onset pattern with the mean
/// bar pattern of `reference` (e.g. the prompt). Both signals' bar grids start at their first
/// sample, `bpm` and `beats_per_bar` give the bar length. Empty when `reference` has no full
/// bar or the tempo is not a positive number.
pub fn bar_onset_correlation(
    reference: &[f32],
    signal: &[f32],
    sr: u32,
    bpm: f64,
    beats_per_bar: f64,
) -> Vec<f64> {
    if !(bpm.is_finite() && bpm > 0.0 && beats_per_bar.is_finite() && beats_per_bar > 0.0) {
        return Vec::new();
    }
    let er = onset_strength(reference, sr);
    let es = onset_strength(signal, sr);
    let bar_frames = beats_per_bar * 60.0 / bpm * er.frame_rate;
    if bar_frames < STEPS as f64 / 4.0 {
        return Vec::new();
    }
    let refs = bar_patterns(&er, bar_frames);
    if refs.is_empty() {
        return Vec::new();
    }
    let mut mean = [0f64; STEPS];
    for p in &refs {
        for (m, v) in mean.iter_mut().zip(p) {
            *m += v / refs.len() as f64;
        }
    }
    bar_patterns(&es, bar_frames)
        .iter()
        .map(|p| pearson(p, &mean))
        .collect()
}

/// The first bar whose correlation falls below `threshold`, if any ("time to divergence").
pub fn time_to_divergence(correlations: &[f64], threshold: f64) -> Option<usize> {
    correlations.iter().position(|&c| c < threshold)
}
