//! Audio decode / resample / write tests: every supported format and bit depth, unusual shapes.
//! Bad inputs are in `audio_bad_input.rs`.

mod audio_common;
use audio_common::*;
use jukebox::audio::{load, load_prefix, resample, write_wav_f32, write_wav_i16};

// ---------------------------------------------------------------- round trips

#[test]
fn wav_int_and_float_depths_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let x = sine(440.0, 44100, 4410, 0.5);
    for (bits, float, tol) in [
        (8, false, 1.0 / 100.0),
        (16, false, 1e-4),
        (24, false, 1e-6),
        (32, false, 1e-6),
        (32, true, 0.0),
    ] {
        let p = d.path().join(format!("x{bits}{float}.wav"));
        write_hound(&p, std::slice::from_ref(&x), 44100, bits, float);
        let a = load(&p).unwrap();
        assert_eq!(a.samples.len(), x.len(), "{bits}-bit length");
        assert_eq!(
            (a.sample_rate, a.source_rate, a.source_channels),
            (44100, 44100, 1)
        );
        let err = a
            .samples
            .iter()
            .zip(&x)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            err <= tol,
            "{bits}-bit float={float}: max error {err} > {tol}"
        );
        assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    }
}

#[test]
fn writers_round_trip_and_clamp() {
    let d = tempfile::tempdir().unwrap();
    let mut x = sine(1000.0, 44100, 2000, 0.9);
    x[10] = 1.7; // out of range: i16 clamps, f32 keeps it
    let p16 = d.path().join("o16.wav");
    let p32 = d.path().join("o32.wav");
    write_wav_i16(&p16, &x, 44100).unwrap();
    write_wav_f32(&p32, &x, 44100).unwrap();
    let r16 = hound::WavReader::open(&p16).unwrap();
    assert_eq!(r16.spec().bits_per_sample, 16);
    let s16: Vec<i16> = r16.into_samples::<i16>().map(|s| s.unwrap()).collect();
    assert_eq!(s16[10], 32767);
    assert_eq!(s16[11], (x[11] * 32767.0).round() as i16);
    let r32 = hound::WavReader::open(&p32).unwrap();
    assert_eq!(r32.spec().sample_format, hound::SampleFormat::Float);
    let s32: Vec<f32> = r32.into_samples::<f32>().map(|s| s.unwrap()).collect();
    assert_eq!(s32, x);
    // No temp files left behind.
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
    // Loading the f32 file clips to [-1, 1] with a warning.
    let a = load(&p32).unwrap();
    assert_eq!(a.samples[10], 1.0);
    assert!(
        a.warnings.iter().any(|w| w.contains("clipped")),
        "{:?}",
        a.warnings
    );
}

#[test]
fn writers_refuse_non_finite() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("nan.wav");
    let mut x = vec![0.1f32; 100];
    x[42] = f32::NAN;
    let e = format!("{:#}", write_wav_i16(&p, &x, 44100).unwrap_err());
    assert!(e.contains("index 42") && e.contains("nan.wav"), "{e}");
    x[42] = f32::INFINITY;
    assert!(write_wav_f32(&p, &x, 44100).is_err());
    assert!(!p.exists());
}

#[test]
fn flac_fixture() {
    let a = load(&fixture("tone440_48k_stereo.flac")).unwrap();
    assert_eq!((a.source_rate, a.source_channels), (48000, 2));
    assert_eq!(a.samples.len(), 35280); // 0.8 s at 44.1 kHz
    let f = peak_freq(&a.samples, 44100);
    assert!((f - 440.0).abs() < 1.0, "peak {f}");
    let peak = a.samples.iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!((peak - 0.5).abs() < 0.02, "peak amplitude {peak}");
}

#[test]
fn mp3_fixture() {
    let a = load(&fixture("tone1000_44k_mono.mp3")).unwrap();
    assert_eq!((a.source_rate, a.source_channels), (44100, 1));
    // Gapless decoding trims the encoder delay and padding.
    assert!(
        (a.samples.len() as i64 - 44100).abs() <= 1152,
        "len {}",
        a.samples.len()
    );
    let f = peak_freq(&a.samples, 44100);
    assert!((f - 1000.0).abs() < 1.5, "peak {f}");
    assert!((rms(&a.samples[4410..39690]) - 0.5 / 2f32.sqrt()).abs() < 0.02);
}

#[test]
fn ogg_fixture() {
    let a = load(&fixture("tone660_22k_stereo.ogg")).unwrap();
    assert_eq!((a.source_rate, a.source_channels), (22050, 2));
    assert_eq!(a.samples.len(), 44100);
    let f = peak_freq(&a.samples, 44100);
    assert!((f - 660.0).abs() < 1.0, "peak {f}");
    // Nothing above the source Nyquist appears after upsampling.
    assert!(band_share(&a.samples, 44100, 11500.0, 22050.0) < 1e-7);
}

// ---------------------------------------------------------------- shapes

#[test]
fn stereo_is_averaged() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("st.wav");
    let l = sine(300.0, 44100, 4410, 0.4);
    let r = sine(500.0, 44100, 4410, 0.2);
    write_hound(&p, &[l.clone(), r.clone()], 44100, 32, true);
    let a = load(&p).unwrap();
    assert_eq!(a.source_channels, 2);
    for i in 0..a.samples.len() {
        assert!(
            (a.samples[i] - 0.5 * (l[i] + r[i])).abs() < 1e-6,
            "sample {i}"
        );
    }
    assert!(
        a.warnings.is_empty(),
        "stereo is not unusual: {:?}",
        a.warnings
    );
}

#[test]
fn eight_channels_averaged_with_warning() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("8ch.wav");
    let chans: Vec<Vec<f32>> = (0..8).map(|c| vec![c as f32 / 10.0; 1000]).collect();
    write_hound(&p, &chans, 44100, 32, true);
    let a = load(&p).unwrap();
    assert_eq!(a.source_channels, 8);
    assert!(a.samples.iter().all(|&x| (x - 0.35).abs() < 1e-6));
    assert!(
        a.warnings.iter().any(|w| w.contains("8 channels")),
        "{:?}",
        a.warnings
    );
}

#[test]
fn rate_192k_is_band_limited() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("hi.wav");
    let n = 192_000;
    // 1 kHz plus a 30 kHz tone that must be filtered out, not aliased to 14.1 kHz.
    let x: Vec<f32> = sine(1000.0, 192_000, n, 0.4)
        .iter()
        .zip(sine(30_000.0, 192_000, n, 0.4))
        .map(|(a, b)| a + b)
        .collect();
    write_hound(&p, &[x], 192_000, 24, false);
    let a = load(&p).unwrap();
    assert_eq!(a.source_rate, 192_000);
    assert_eq!(a.samples.len(), 44100);
    let f = peak_freq(&a.samples, 44100);
    assert!((f - 1000.0).abs() < 0.5, "peak {f}");
    let alias = band_share(&a.samples, 44100, 13_000.0, 22_050.0);
    assert!(alias < 1e-9, "aliased energy share {alias}");
    assert!((rms(&a.samples) - 0.4 / 2f32.sqrt()).abs() < 0.005);
    assert!(
        a.warnings.iter().any(|w| w.contains("high sample rate")),
        "{:?}",
        a.warnings
    );
}

#[test]
fn rate_8k_and_odd_rates() {
    let d = tempfile::tempdir().unwrap();
    for (rate, freq) in [
        (8000u32, 1000.0f32),
        (48000, 5000.0),
        (44101, 3000.0),
        (11025, 2500.0),
        (384_000, 440.0),
    ] {
        let p = d.path().join(format!("r{rate}.wav"));
        let n = rate as usize; // 1 s
        write_hound(&p, &[sine(freq, rate, n, 0.5)], rate, 16, false);
        let a = load(&p).unwrap();
        assert_eq!(a.source_rate, rate);
        let want = (n as u64 * 44100).div_ceil(rate as u64) as usize;
        assert_eq!(a.samples.len(), want, "rate {rate}");
        let f = peak_freq(&a.samples, 44100);
        assert!((f - freq).abs() < 0.5, "rate {rate}: peak {f} want {freq}");
        let r = rms(&a.samples[2000..a.samples.len() - 2000]);
        assert!(
            (r - 0.5 / 2f32.sqrt()).abs() < 0.005,
            "rate {rate}: rms {r}"
        );
    }
    let a = load(&d.path().join("r8000.wav")).unwrap();
    assert!(
        a.warnings.iter().any(|w| w.contains("low sample rate")),
        "{:?}",
        a.warnings
    );
}

#[test]
fn resample_function() {
    let x = sine(440.0, 48000, 48000, 0.5);
    let y = resample(&x, 48000, 44100).unwrap();
    assert_eq!(y.len(), 44100);
    // Aligned: no delay between input and output.
    let want = sine(440.0, 44100, 44100, 0.5);
    let err = y[1000..43000]
        .iter()
        .zip(&want[1000..43000])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(err < 2e-3, "max error vs ideal {err}");
    assert_eq!(resample(&x, 48000, 48000).unwrap(), x);
    assert!(resample(&[], 48000, 44100).unwrap().is_empty());
    assert!(resample(&x, 0, 44100).is_err());
    assert_eq!(resample(&[0.5], 8000, 44100).unwrap().len(), 6);
}

#[test]
fn prefix_reads_only_the_start() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("long.wav");
    write_hound(&p, &[sine(700.0, 48000, 48000 * 3, 0.5)], 48000, 16, false);
    let full = load(&p).unwrap();
    let pre = load_prefix(&p, 1.0).unwrap();
    assert_eq!(pre.samples.len(), 44100);
    assert_eq!(full.samples.len(), 132300);
    let err = pre.samples[..42000]
        .iter()
        .zip(&full.samples)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(err < 1e-4, "prefix differs from the full decode by {err}");
    // Longer than the file: the whole file.
    assert_eq!(load_prefix(&p, 10.0).unwrap().samples.len(), 132300);
    assert!(load_prefix(&p, 0.0).is_err());
    assert!(load_prefix(&p, f64::NAN).is_err());
}

#[test]
fn silence_and_one_sample_are_allowed_with_warnings() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("silent.wav");
    write_hound(&p, &[vec![0.0; 4410]], 44100, 16, false);
    let a = load(&p).unwrap();
    assert_eq!(a.samples.len(), 4410);
    assert!(
        a.warnings.iter().any(|w| w.contains("silent")),
        "{:?}",
        a.warnings
    );

    let p = d.path().join("one.wav");
    write_hound(&p, &[vec![0.25]], 44100, 16, false);
    let a = load(&p).unwrap();
    assert_eq!(a.samples.len(), 1);
    assert!((a.samples[0] - 0.25).abs() < 1e-4);
    assert!(
        a.warnings.iter().any(|w| w.contains("very short")),
        "{:?}",
        a.warnings
    );
}

#[test]
fn resampler_output_is_aligned() {
    // The phase of a resampled 440 Hz tone: any delay left untrimmed shifts the prompt.
    for (from, to) in [
        (48000u32, 44100u32),
        (8000, 44100),
        (192_000, 44100),
        (22050, 44100),
        (44101, 44100),
        (96000, 44100),
        (44100, 48000),
    ] {
        let f = 440.0f64;
        let tau = 2.0 * std::f64::consts::PI;
        let x: Vec<f32> = (0..from as usize)
            .map(|i| 0.5 * (tau * f * i as f64 / from as f64).sin() as f32)
            .collect();
        let y = resample(&x, from, to).unwrap();
        let (mut s, mut c) = (0f64, 0f64);
        for (i, &v) in y.iter().enumerate().skip(2000).take(to as usize - 4000) {
            let t = tau * f * i as f64 / to as f64;
            s += v as f64 * t.sin();
            c += v as f64 * t.cos();
        }
        let delay = -c.atan2(s) / (tau * f) * to as f64;
        assert!(
            delay.abs() < 0.02,
            "{from}->{to}: output lags by {delay} samples"
        );
    }
}

#[test]
fn passband_is_flat_to_20k() {
    // A 19 kHz tone keeps its level through every resampler path (FFT and sinc).
    for rate in [48_000u32, 96_000, 192_000, 44_101] {
        let x = sine(19_000.0, rate, rate as usize, 0.5);
        let y = resample(&x, rate, 44_100).unwrap();
        let r = rms(&y[4000..40000]);
        assert!(
            (r / (0.5 / 2f32.sqrt()) - 1.0).abs() < 0.01,
            "{rate} Hz: 19 kHz rms {r}"
        );
    }
}
