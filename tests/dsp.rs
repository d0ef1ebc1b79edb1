// dsp tests on synthetic signals with known answers.

use jukebox::dsp::{self, SpectrogramOpts};
use jukebox::util::splitmix64;

const SR: u32 = 44_100;

fn sine(freq: f64, n: usize, amp: f32) -> Vec<f32> {
    let w = 2.0 * std::f64::consts::PI * freq / SR as f64;
    (0..n).map(|i| amp * (w * i as f64).sin() as f32).collect()
}

/// Deterministic white noise, uniform in [-amp, amp].
fn noise(n: usize, amp: f32, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = splitmix64(s);
            amp * ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

fn add_at(dst: &mut [f32], at: usize, src: &[f32]) {
    let at = at.min(dst.len());
    for (d, s) in dst[at..].iter_mut().zip(src) {
        *d += s;
    }
}

/// A click track: 5 ms 2 kHz bursts on every beat.
fn clicks(bpm: f64, seconds: f64) -> Vec<f32> {
    let n = (seconds * SR as f64) as usize;
    let mut x = vec![0f32; n];
    let click: Vec<f32> = sine(2000.0, 220, 0.8)
        .iter()
        .enumerate()
        .map(|(i, v)| v * (-(i as f32) / 60.0).exp())
        .collect();
    let mut t = 0.0;
    while t < seconds {
        add_at(&mut x, (t * SR as f64).round() as usize, &click);
        t += 60.0 / bpm;
    }
    x
}

fn kick() -> Vec<f32> {
    let n = 6000;
    let mut ph = 0f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / SR as f64;
            ph += 2.0 * std::f64::consts::PI * (45.0 + 60.0 * (-t / 0.03).exp()) / SR as f64;
            (0.9 * ph.sin() * (-t / 0.12).exp()) as f32
        })
        .collect()
}

fn snare(seed: u64) -> Vec<f32> {
    let nz = noise(6000, 0.5, seed);
    let tone = sine(190.0, 6000, 0.3);
    (0..6000)
        .map(|i| (nz[i] + tone[i]) * (-(i as f32) / (0.06 * SR as f32)).exp())
        .collect()
}

fn hat(seed: u64) -> Vec<f32> {
    let nz = noise(1500, 0.2, seed);
    (0..1500)
        .map(|i| {
            (nz[i] - if i > 0 { nz[i - 1] } else { 0.0 })
                * (-(i as f32) / (0.012 * SR as f32)).exp()
        })
        .collect()
}

/// A drum loop: 16 steps per 4/4 bar; `pattern` picks which of kick/snare/hat sound per step.
fn drums(bpm: f64, bars: usize, pattern: &dyn Fn(usize) -> (bool, bool, bool)) -> Vec<f32> {
    let step = 60.0 / bpm / 4.0;
    let n = ((bars * 16) as f64 * step * SR as f64) as usize + 1;
    let mut x = vec![0f32; n];
    let (k, h) = (kick(), hat(7));
    for s in 0..bars * 16 {
        let at = (s as f64 * step * SR as f64).round() as usize;
        let (dk, ds, dh) = pattern(s % 16);
        if dk {
            add_at(&mut x, at, &k);
        }
        if ds {
            add_at(&mut x, at, &snare(s as u64));
        }
        if dh {
            add_at(&mut x, at, &h);
        }
    }
    x
}

fn rock(s: usize) -> (bool, bool, bool) {
    (
        s == 0 || s == 8 || s == 10,
        s == 4 || s == 12,
        s.is_multiple_of(2),
    )
}

fn other(s: usize) -> (bool, bool, bool) {
    (s == 3 || s == 6 || s == 11, s == 9 || s == 14, s % 4 == 1)
}

// ---------------------------------------------------------------- spectral features

#[test]
fn sine_centroid_and_bandwidth() {
    for f in [440.0, 1000.0, 5000.0] {
        let x = sine(f, SR as usize, 0.5);
        let c = dsp::spectral_centroid(&x, SR);
        assert!((c - f).abs() / f < 0.02, "centroid {c} for {f} Hz");
        let b = dsp::spectral_bandwidth(&x, SR);
        assert!(b < 150.0, "bandwidth {b} for a pure {f} Hz tone");
    }
}

#[test]
fn white_noise_statistics() {
    let x = noise(SR as usize * 2, 0.5, 1);
    let f = dsp::spectral_features(&x, SR);
    // Flat spectrum over [0, 22050]: centroid at the middle, std of a uniform = width / sqrt(12).
    assert!(
        (f.centroid_hz - 11025.0).abs() < 300.0,
        "centroid {}",
        f.centroid_hz
    );
    assert!(
        (f.bandwidth_hz - 22050.0 / 12f64.sqrt()).abs() < 300.0,
        "bandwidth {}",
        f.bandwidth_hz
    );
    // Per-frame power flatness of white noise is e^-γ ≈ 0.561; the averaged spectrum is flat.
    assert!(
        (f.flatness - 0.5615).abs() < 0.03,
        "flatness {}",
        f.flatness
    );
    assert!(
        f.long_term_flatness > 0.95,
        "long-term flatness {}",
        f.long_term_flatness
    );
    // Uniform in [-a, a] has rms a / sqrt(3).
    let want = 20.0 * (0.5 / 3f64.sqrt()).log10();
    assert!(
        (f.rms_dbfs - want).abs() < 0.05,
        "rms {} want {want}",
        f.rms_dbfs
    );
    // Band shares follow band widths for a flat spectrum.
    let widths = [150.0, 250.0, 600.0, 1500.0, 3500.0, 16050.0];
    for (s, w) in f.band_energy.iter().zip(widths) {
        assert!(
            (s - w / 22050.0).abs() < 0.01,
            "band share {s} vs {}",
            w / 22050.0
        );
    }
    assert!((f.band_energy.iter().sum::<f64>() - 1.0).abs() < 1e-9);
}

#[test]
fn tone_flatness_loudness_and_bands() {
    let x = sine(700.0, SR as usize, 1.0);
    let f = dsp::spectral_features(&x, SR);
    assert!(f.flatness < 0.01 && f.long_term_flatness < 0.01, "{f:?}");
    assert!(
        (f.rms_dbfs + 3.0103).abs() < 0.01,
        "full-scale sine rms {}",
        f.rms_dbfs
    );
    assert!(
        f.band_energy[2] > 0.99,
        "700 Hz belongs to the 400-1000 Hz band: {:?}",
        f.band_energy
    );
    assert!(dsp::band_energy_shares(&sine(100.0, 44100, 0.5), SR)[0] > 0.99);
    assert!(dsp::band_energy_shares(&sine(10000.0, 44100, 0.5), SR)[5] > 0.99);
    assert!((dsp::rms_dbfs(&sine(700.0, 44100, 0.1)) + 23.0103).abs() < 0.01);
    assert_eq!(dsp::rms_dbfs(&[0.0; 100]), -120.0);
    let s = dsp::spectral_features(&[0.0; 4096], SR);
    assert_eq!(
        (s.centroid_hz, s.flatness, s.band_energy),
        (0.0, 0.0, [0.0; 6])
    );
}

// ---------------------------------------------------------------- distances

#[test]
fn distances_have_known_values() {
    let x: Vec<f32> = sine(440.0, 30000, 0.4)
        .iter()
        .zip(noise(30000, 0.1, 3))
        .map(|(a, b)| a + b)
        .collect();
    let half: Vec<f32> = x.iter().map(|v| v * 0.5).collect();
    let zero = vec![0f32; x.len()];
    assert_eq!(dsp::multires_stft_distance(&x, &x), 0.0);
    // |STFT| is linear in the gain, so the distance to half the signal is half that to silence.
    let d_half = dsp::multires_stft_distance(&x, &half);
    let d_zero = dsp::multires_stft_distance(&x, &zero);
    assert!(d_zero > 1.0);
    assert!((d_half / d_zero - 0.5).abs() < 1e-6, "{d_half} vs {d_zero}");
    assert!((dsp::spectral_convergence(&x, &half) - 0.5).abs() < 1e-6);
    assert_eq!(dsp::spectral_convergence(&zero, &x), 0.0);
    // SNR: a 1% interfering tone is 40 dB down.
    let y: Vec<f32> = sine(440.0, 44100, 1.0)
        .iter()
        .zip(sine(1234.0, 44100, 0.01))
        .map(|(a, b)| a + b)
        .collect();
    let clean = sine(440.0, 44100, 1.0);
    assert!(
        (dsp::snr_db(&clean, &y) - 40.0).abs() < 0.05,
        "snr {}",
        dsp::snr_db(&clean, &y)
    );
    let twice: Vec<f32> = clean.iter().map(|v| v * 2.0).collect();
    assert!(dsp::snr_db(&clean, &twice).abs() < 1e-3);
    assert!(dsp::si_snr_db(&clean, &twice) > 100.0);
    assert!((dsp::si_snr_db(&clean, &y) - 40.0).abs() < 0.05);
}

#[test]
fn log_mel_distance_separates_timbres() {
    let a = sine(440.0, 44100, 0.5);
    let b = sine(440.0, 30000, 0.5);
    let n = noise(44100, 0.5, 9);
    assert_eq!(dsp::log_mel_distance(&a, &a, SR), 0.0);
    let same = dsp::log_mel_distance(&a, &b, SR);
    let diff = dsp::log_mel_distance(&a, &n, SR);
    assert!(same < 1.0, "same tone, other length: {same} dB");
    assert!(diff > 20.0, "tone vs noise: {diff} dB");
    // 6 dB quieter moves every band by 6 dB (above the -100 dB floor).
    let q: Vec<f32> = n.iter().map(|v| v * 0.5).collect();
    let d = dsp::log_mel_distance(&n, &q, SR);
    assert!((d - 6.0206).abs() < 0.05, "gain step {d}");
}

// ---------------------------------------------------------------- tempo

#[test]
fn click_track_tempo() {
    for bpm in [80.0, 95.0, 110.0, 120.0, 137.0, 150.0, 165.0, 180.0] {
        let est = dsp::tempo_estimate(&clicks(bpm, 12.0), SR).unwrap();
        assert!(
            (est.bpm - bpm).abs() <= 2.0,
            "click track at {bpm}: got {}",
            est.bpm
        );
        assert!(est.confidence > 0.5, "confidence {}", est.confidence);
    }
}

#[test]
fn drum_loop_tempo() {
    for bpm in [80.0, 100.0, 120.0, 137.0, 160.0, 180.0] {
        let got = dsp::tempo_bpm(&drums(bpm, 6, &rock), SR);
        assert!((got - bpm).abs() <= 2.0, "rock loop at {bpm}: got {got}");
    }
}

#[test]
fn tempo_of_nothing() {
    assert_eq!(dsp::tempo_bpm(&vec![0.0; 44100 * 4], SR), 0.0);
    assert!(dsp::tempo_estimate(&[0.1; 100], SR).is_none());
    let tone = dsp::tempo_estimate(&sine(440.0, 44100 * 4, 0.5), SR);
    assert!(
        tone.is_none_or(|t| t.confidence < 0.2),
        "steady tone: {tone:?}"
    );
}

#[test]
fn tempo_error_folds_octaves() {
    assert!((dsp::tempo_error_folded(69.0, 137.5) - 0.5).abs() < 1e-12);
    assert_eq!(dsp::tempo_error_folded(275.0, 137.5), 0.0);
    assert_eq!(dsp::tempo_error_folded(140.0, 137.0), 3.0);
    assert_eq!(dsp::tempo_error_folded(0.0, 137.0), 137.0);
}

#[test]
fn onset_envelope_peaks_on_clicks() {
    let env = dsp::onset_strength(&clicks(120.0, 4.0), SR);
    assert!((env.frame_rate - 44100.0 / 256.0).abs() < 1e-9);
    // The strongest frames sit within 2 frames of a beat (every 0.5 s).
    let mut idx: Vec<usize> = (0..env.values.len()).collect();
    idx.sort_by(|&a, &b| env.values[b].total_cmp(&env.values[a]));
    for &i in &idx[..6] {
        let t = i as f64 / env.frame_rate;
        let off = (t / 0.5 - (t / 0.5).round()).abs() * 0.5;
        assert!(
            off < 2.0 / env.frame_rate,
            "peak at {t} s is {off} s off the beat"
        );
    }
}

#[test]
fn bar_correlation_tracks_the_pattern() {
    let bpm = 137.0;
    let prompt = drums(bpm, 2, &rock);
    let same = drums(bpm, 4, &rock);
    let c = dsp::bar_onset_correlation(&prompt, &same, SR, bpm, 4.0);
    assert_eq!(c.len(), 4);
    assert!(c.iter().all(|&v| v > 0.9), "same pattern: {c:?}");
    let diff = dsp::bar_onset_correlation(&prompt, &drums(bpm, 4, &other), SR, bpm, 4.0);
    assert!(diff.iter().all(|&v| v < 0.5), "other pattern: {diff:?}");
    // Two bars kept, then a change: divergence at bar 2.
    let mut cont = drums(bpm, 2, &rock);
    cont.extend(drums(bpm, 2, &other));
    let c = dsp::bar_onset_correlation(&prompt, &cont, SR, bpm, 4.0);
    assert_eq!(dsp::time_to_divergence(&c, 0.5), Some(2), "{c:?}");
    assert!(dsp::bar_onset_correlation(&prompt, &same, SR, 0.0, 4.0).is_empty());
    assert!(dsp::bar_onset_correlation(&[0.0; 100], &same, SR, bpm, 4.0).is_empty());
}

// ---------------------------------------------------------------- images

#[test]
fn spectrogram_png_fixed_scale() {
    let d = tempfile::tempdir().unwrap();
    let opts = SpectrogramOpts::default();
    let loud = sine(1000.0, 44100, 1.0);
    let quiet: Vec<f32> = loud.iter().map(|v| v * 0.01).collect(); // -40 dB
    let p = d.path().join("s.png");
    dsp::spectrogram_png(&p, &loud, SR, &opts).unwrap();
    let img = image::open(&p).unwrap().to_rgb8();
    assert_eq!(img.height(), opts.height);
    assert_eq!(img.width() as usize, 1 + 44100 / opts.hop);
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    // The brightest row is where 1 kHz sits on the mel axis.
    let lum = |img: &image::RgbImage, x: u32, y: u32| {
        img.get_pixel(x, y).0.iter().map(|&c| c as u32).sum::<u32>()
    };
    let x = img.width() / 2;
    let row = (0..img.height()).max_by_key(|&y| lum(&img, x, y)).unwrap();
    let (lo, hi) = (dsp::hz_to_mel(20.0), dsp::hz_to_mel(22050.0));
    let want = opts.height as f64 * (1.0 - (dsp::hz_to_mel(1000.0) - lo) / (hi - lo));
    assert!(
        (row as f64 - want).abs() <= 2.0,
        "1 kHz at row {row}, want {want}"
    );
    // The same colour scale for every image: the quiet tone is darker at the same pixel.
    let q = dsp::spectrogram_image(&quiet, SR, &opts).unwrap();
    assert!(lum(&q, x, row) < lum(&img, x, row));
    // Silence is the bottom of the scale everywhere.
    let s = dsp::spectrogram_image(&[0.0; 8192], SR, &opts).unwrap();
    assert!(s.pixels().all(|p| p.0 == s.get_pixel(0, 0).0));
    assert_eq!(s.get_pixel(0, 0).0, [0, 0, 4]);
    // Long audio is pooled to fit.
    let small = SpectrogramOpts {
        max_width: 30,
        ..opts.clone()
    };
    assert!(dsp::spectrogram_image(&loud, SR, &small).unwrap().width() <= 30);
    let bad = SpectrogramOpts {
        db_min: 0.0,
        db_max: -10.0,
        ..opts
    };
    assert!(dsp::spectrogram_png(&d.path().join("bad.png"), &loud, SR, &bad).is_err());
}
