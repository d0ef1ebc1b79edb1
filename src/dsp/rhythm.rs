//! Onset strength (log-mel spectral flux), tempo by onset autocorrelation, and bar-by-bar onset
//! pattern correlation: the "prompt retention" measures of the study (the study report explains each beside its table).

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
/// Octave choice: the slowest tempo preferred, and how strong a pulse at double the tempo must
/// be (relative to the current one) to move up.
const PREFERRED_MIN_BPM: f64 = 70.0;
const FASTER_RATIO: f64 = 0.88;
/// Tempo prior: log-normal around 120 BPM, this many octaves wide (one standard deviation).
const PRIOR_CENTRE_BPM: f64 = 120.0;
const PRIOR_OCTAVES: f64 = 1.0;
/// Weight of the eighth- and sixteenth-note lags in the metrical comb.
const SUBDIV_WEIGHT: f64 = 1.0;

/// Full-band and low-band (below 250 Hz: kick, snare body, bass) log-mel flux.
struct Flux {
    full: Vec<f32>,
    low: Vec<f32>,
    fps: f64,
}

fn flux(samples: &[f32], sr: u32) -> Flux {
    let scale = sr.max(1) as f64 / 44_100.0;
    let hop = ((256.0 * scale).round() as usize).max(1);
    let n_fft = ((2048.0 * scale).round() as usize)
        .next_power_of_two()
        .max(64);
    let bank = mel_filterbank(sr, n_fft, N_MELS, 0.0, sr as f64 / 2.0);
    let n_low = (0..N_MELS)
        .take_while(|&m| {
            super::mel_to_hz(
                super::hz_to_mel(sr as f64 / 2.0) * (m + 1) as f64 / (N_MELS + 1) as f64,
            ) < 250.0
        })
        .count()
        .max(1);
    let mut mel = apply_filterbank(&stft_power(samples, n_fft, hop, n_fft), &bank);
    let mut top = f32::MIN;
    for v in mel.iter_mut().flatten() {
        *v = power_to_db(*v);
        top = top.max(*v);
    }
    // As librosa (top_db = 80): quiet detail far below the peak is noise, not onsets.
    let floor = top - 80.0;
    mel.iter_mut().flatten().for_each(|v| *v = v.max(floor));
    let n = mel.len();
    let (mut full, mut low) = (vec![0f32; n], vec![0f32; n]);
    // A centred frame sees an onset up to half a window early; the rise of the flux leads the
    // onset by about a quarter window, so shift the envelope back by that much.
    let lead = (n_fft / 4).div_ceil(hop);
    for t in 1..n {
        let d: Vec<f32> = mel[t]
            .iter()
            .zip(&mel[t - 1])
            .map(|(a, b)| (a - b).max(0.0))
            .collect();
        let at = (t + lead).min(n - 1);
        if t + lead < n {
            full[at] = d.iter().sum::<f32>() / N_MELS as f32;
            low[at] = d[..n_low].iter().sum::<f32>() / n_low as f32;
        }
    }
    Flux {
        full,
        low,
        fps: sr as f64 / hop as f64,
    }
}

/// Spectral flux of the log-mel spectrogram: the mean over 64 bands of the positive change in dB
/// from one frame to the next (hop 256 at 44.1 kHz, about 5.8 ms; scaled for other rates),
/// aligned so that a peak sits on its onset.
pub fn onset_strength(samples: &[f32], sr: u32) -> OnsetEnvelope {
    let f = flux(samples, sr);
    OnsetEnvelope {
        values: f.full,
        frame_rate: f.fps,
    }
}

/// High-pass (remove a ~1 s moving mean, so loudness swells do not look like long periods),
/// smooth with a 3-tap binomial (so autocorrelation peaks interpolate well), scale to unit RMS.
fn prepare(values: &[f32], fps: f64) -> Option<Vec<f64>> {
    let n = values.len();
    let w = (fps.round() as usize).max(1) | 1;
    let h = w / 2;
    let mut prefix = vec![0f64; n + 1];
    for (i, &v) in values.iter().enumerate() {
        prefix[i + 1] = prefix[i] + v as f64;
    }
    let hp: Vec<f64> = (0..n)
        .map(|i| {
            let (a, b) = (i.saturating_sub(h), (i + h + 1).min(n));
            values[i] as f64 - (prefix[b] - prefix[a]) / (b - a) as f64
        })
        .collect();
    let mut e: Vec<f64> = (0..n)
        .map(|i| 0.25 * hp[i.saturating_sub(1)] + 0.5 * hp[i] + 0.25 * hp[(i + 1).min(n - 1)])
        .collect();
    let rms = (e.iter().map(|v| v * v).sum::<f64>() / n.max(1) as f64).sqrt();
    if rms.is_nan() || rms <= 1e-6 {
        return None;
    }
    e.iter_mut().for_each(|v| *v /= rms);
    Some(e)
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
/// The onset envelope (full band plus low band, so kick and snare weigh more than hi-hats) is
/// high-passed and lightly smoothed. Its autocorrelation is scored at each beat period L as a
/// metrical comb `Σ_k ac(kL)/k + ac(L/2) + ac(L/4)`, k = 1..4 (multiples: a steady beat;
/// halves and quarters: eighths and sixteenths on the grid), under a log-normal prior around
/// 120 BPM (one octave wide); this picks the metrical family even on syncopated breaks. The
/// period is refined with the multiples alone, and the octave is then chosen from the pulse
/// strengths: the slowest octave at or above 70 BPM, doubled while the doubled pulse is at least
/// 0.88 as strong (a steady 180 BPM click stays 180; a rock beat at 80 with eighth-note hats stays
/// 80). Tempos below 70 BPM are therefore reported doubled; compare with
/// [`tempo_error_folded`].
pub fn tempo_estimate(samples: &[f32], sr: u32) -> Option<TempoEstimate> {
    let f = flux(samples, sr);
    let fps = f.fps;
    let n = f.full.len();
    let max_period = 60.0 * fps / MIN_BPM;
    if (n as f64) < 2.0 * 60.0 * fps / MAX_BPM + 2.0 {
        return None;
    }
    // Accent weighting: onsets with low-frequency energy (kick, snare) count twice, so the beat
    // level stands out from a regular hi-hat pulse.
    let mut e = prepare(&f.full, fps)?;
    if let Some(low) = prepare(&f.low, fps) {
        e.iter_mut().zip(&low).for_each(|(a, b)| *a += b);
    }
    let energy: f64 = e.iter().map(|v| v * v).sum();
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

    // Harmonic comb over the beat period's multiples (sharpens the period estimate).
    let comb = |bpm: f64| -> f64 {
        let lag = 60.0 * fps / bpm;
        (1..=4)
            .map(|k| k as f64 * lag)
            .take_while(|&kl| kl + 1.0 < ac.len() as f64)
            .enumerate()
            .map(|(i, kl)| interp(&ac, kl) / (i + 1) as f64)
            .sum()
    };
    // Metrical comb: the beat's multiples plus its subdivisions (eighths and sixteenths). A
    // syncopated break (the Amen's snares 3 and 5 sixteenths apart) has strong periodicities at
    // off-beat lags such as 5 sixteenths, but only the true beat also has its halves and
    // quarters on the grid, so the subdivisions single out the metrical family.
    let metric = |bpm: f64| -> f64 {
        let lag = 60.0 * fps / bpm;
        comb(bpm) + SUBDIV_WEIGHT * (interp(&ac, lag / 2.0) + interp(&ac, lag / 4.0))
    };
    let prior = |bpm: f64| (-0.5 * ((bpm / PRIOR_CENTRE_BPM).log2() / PRIOR_OCTAVES).powi(2)).exp();
    // Best tempo on a 0.05 BPM grid within [lo, hi].
    let search = |lo: f64, hi: f64, score_of: &dyn Fn(f64) -> f64| -> Option<(f64, f64)> {
        let (lo, hi) = (lo.max(MIN_BPM), hi.min(MAX_BPM));
        let steps = ((hi - lo) / 0.05).floor() as usize;
        let mut best: Option<(f64, f64)> = None;
        for s in 0..=steps {
            let bpm = lo + s as f64 * 0.05;
            if 60.0 * fps / bpm + 1.0 >= ac.len() as f64 {
                continue;
            }
            let score = score_of(bpm);
            if best.is_none_or(|b| score > b.0) {
                best = Some((score, bpm));
            }
        }
        best
    };
    // Pulse strength at a period: the autocorrelation peak within a frame of it.
    let pulse = |bpm: f64| -> f64 {
        let lag = 60.0 * fps / bpm;
        (-2..=2)
            .map(|d| interp(&ac, (lag + d as f64 * 0.5).max(0.0)))
            .fold(f64::MIN, f64::max)
    };
    let (score, mut bpm) = search(MIN_BPM, MAX_BPM, &|b| metric(b) * prior(b))?;
    if score <= 0.0 {
        return None;
    }
    // Octave choice: start from the slowest octave at or above PREFERRED_MIN_BPM, then double
    // while the faster pulse is nearly as strong as the slower one. A steady click (every beat
    // equal) goes up to its own rate; a beat with weaker off-beats (hi-hats between kick and
    // snare) stays at the kick/snare level.
    while bpm / 2.0 >= PREFERRED_MIN_BPM {
        bpm = search(bpm / 2.0 * 0.97, bpm / 2.0 * 1.03, &comb).map_or(bpm / 2.0, |b| b.1);
    }
    while bpm * 2.0 <= MAX_BPM && pulse(bpm * 2.0) >= FASTER_RATIO * pulse(bpm) {
        bpm = search(bpm * 2.0 * 0.97, bpm * 2.0 * 1.03, &comb).map_or(bpm * 2.0, |b| b.1);
    }
    Some(TempoEstimate {
        bpm,
        confidence: pulse(bpm).clamp(-1.0, 1.0),
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
