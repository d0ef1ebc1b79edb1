//! `jukebox encode` / `jukebox decode` end to end on the fixture model and a synthetic sine.

use std::path::Path;
use std::process::Command;

const MODEL: &str = "tests/fixtures/reference/fixtures/model";

fn jukebox(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_jukebox"))
        .args(args)
        .output()
        .expect("run jukebox")
}

fn sine(path: &Path, seconds: f64) {
    let n = (44100.0 * seconds) as usize;
    let s: Vec<f32> = (0..n)
        .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 44100.0).sin())
        .collect();
    jukebox::audio::write_wav_i16(path, &s, 44100).expect("write sine");
}

#[test]
fn encode_decode_round_trip_on_a_sine() {
    let dir = tempfile::tempdir().expect("tmp");
    let wav = dir.path().join("sine.wav");
    sine(&wav, 0.5); // 22050 samples -> 22016 after cutting to a multiple of 128
    let codes = dir.path().join("codes.safetensors");
    let s = |p: &Path| p.to_str().expect("utf8").to_string();
    let out = jukebox(&["encode", "--model", MODEL, &s(&wav), "-o", &s(&codes)]);
    assert!(
        out.status.success(),
        "encode failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = jukebox::vqvae::load_codes(&codes).expect("codes");
    assert_eq!(c.hop_lengths, vec![8, 32, 128]);
    assert_eq!(c.sample_rate, 44100);
    for (l, hop) in [(0, 8), (1, 32), (2, 128)] {
        assert_eq!(c.level(l).expect("level").dims(), &[1, 22016 / hop]);
    }
    for level in ["top", "0"] {
        let wav_out = dir.path().join(format!("out_{level}.wav"));
        let out = jukebox(&[
            "decode",
            "--model",
            MODEL,
            &s(&codes),
            "--level",
            level,
            "-o",
            &s(&wav_out),
        ]);
        assert!(
            out.status.success(),
            "decode failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let a = jukebox::audio::load(&wav_out).expect("decoded wav");
        assert_eq!(a.samples.len(), 22016);
        assert!(a.samples.iter().all(|x| x.is_finite()));
    }
    // Only one level.
    let top = dir.path().join("top.safetensors");
    let out = jukebox(&[
        "encode",
        "--model",
        MODEL,
        &s(&wav),
        "-o",
        &s(&top),
        "--level",
        "middle",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = jukebox::vqvae::load_codes(&top).expect("codes");
    assert!(c.level(0).is_err() && c.level(2).is_err());
    assert_eq!(c.level(1).expect("l1").dims(), &[1, 22016 / 32]);
    // Decoding a level the file lacks names the levels it has.
    let out = jukebox(&[
        "decode",
        "--model",
        MODEL,
        &s(&top),
        "--level",
        "0",
        "-o",
        &s(&dir.path().join("x.wav")),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no level 0") && err.contains("[1]"), "{err}");
}

#[test]
fn bad_inputs_give_clear_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = |p: &Path| p.to_str().expect("utf8").to_string();
    let wav = dir.path().join("sine.wav");
    sine(&wav, 0.1);
    let codes = dir.path().join("c.safetensors");
    let out = jukebox(&[
        "encode",
        "--model",
        MODEL,
        &s(&wav),
        "-o",
        &s(&codes),
        "--level",
        "5",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--level 5"));
    let out = jukebox(&[
        "encode",
        "--model",
        MODEL,
        &s(&wav),
        "-o",
        &s(&codes),
        "--level",
        "sideways",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bottom, middle, top"));
    let out = jukebox(&[
        "encode",
        "--model",
        "/nonexistent/model",
        &s(&wav),
        "-o",
        &s(&codes),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/model"));
    // Too short for one top-level token.
    let tiny = dir.path().join("tiny.wav");
    jukebox::audio::write_wav_i16(&tiny, &[0.1; 100], 44100).expect("tiny");
    let out = jukebox(&["encode", "--model", MODEL, &s(&tiny), "-o", &s(&codes)]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fewer than one token"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!codes.exists(), "no output file on failure");
    // Out-of-range codes in a file.
    let bad = dir.path().join("bad.safetensors");
    let t = candle_core::Tensor::new(&[[0u32, 64]], &candle_core::Device::Cpu).expect("t");
    jukebox::vqvae::save_codes(&bad, &[None, None, Some(t)], 44100, &[8, 32, 128]).expect("save");
    let out = jukebox(&[
        "decode",
        "--model",
        MODEL,
        &s(&bad),
        "--level",
        "2",
        "-o",
        &s(&dir.path().join("y.wav")),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("[0, 64)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn real_music_round_trip_amen_break() {
    // Real drum samples from Debian's hydrogen-drumkits (see data/prompts/amen.md), 7 s.
    let dir = tempfile::tempdir().expect("tmp");
    let s = |p: &Path| p.to_str().expect("utf8").to_string();
    let codes = dir.path().join("amen.safetensors");
    let out = jukebox(&[
        "encode",
        "--model",
        MODEL,
        "data/prompts/amen.wav",
        "-o",
        &s(&codes),
    ]);
    assert!(
        out.status.success(),
        "encode: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = jukebox::vqvae::load_codes(&codes).expect("codes");
    let n = 309_022 / 128 * 128;
    for (l, hop) in [(0, 8), (1, 32), (2, 128)] {
        let t = c.level(l).expect("level");
        assert_eq!(t.dims(), &[1, n / hop]);
        // Real music uses more than one code.
        let v: Vec<u32> = t.flatten_all().and_then(|t| t.to_vec1()).expect("v");
        let distinct: std::collections::BTreeSet<u32> = v.into_iter().collect();
        assert!(distinct.len() > 1, "level {l} uses a single code");
    }
    let wav = dir.path().join("amen_bottom.wav");
    let out = jukebox(&[
        "decode",
        "--model",
        MODEL,
        &s(&codes),
        "--level",
        "bottom",
        "-o",
        &s(&wav),
    ]);
    assert!(
        out.status.success(),
        "decode: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = jukebox::audio::load(&wav).expect("wav");
    assert_eq!(a.samples.len(), n);
    assert!(a.samples.iter().all(|x| x.is_finite()));
    assert!(
        a.samples.iter().any(|x| x.abs() > 1e-3),
        "decoded audio is silent"
    );
}

#[test]
fn encodes_a_stereo_48k_flac() {
    let dir = tempfile::tempdir().expect("tmp");
    let codes = dir.path().join("flac.safetensors");
    let out = jukebox(&[
        "encode",
        "--model",
        MODEL,
        "tests/fixtures/audio/tone440_48k_stereo.flac",
        "-o",
        codes.to_str().expect("utf8"),
        "--level",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 0.8 s at 48 kHz -> 35280 samples at 44.1 kHz -> 275 top tokens.
    let c = jukebox::vqvae::load_codes(&codes).expect("codes");
    let t = c.level(2).expect("top").dim(1).expect("dim");
    assert!((274..=276).contains(&t), "top tokens {t}");
}
