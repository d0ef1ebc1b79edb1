//! Bad audio input: each case gives a clear error that names the file (never a panic), and
//! valid-but-odd input is accepted with a warning (conventions: "Audio input").

mod audio_common;
use audio_common::*;
use jukebox::audio::{self, load};
use std::path::Path;

// ---------------------------------------------------------------- bad input

#[test]
fn empty_file() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("empty.wav");
    std::fs::write(&p, b"").unwrap();
    assert_err(&p, &["empty"]);
}

#[test]
fn missing_file_and_directory() {
    let d = tempfile::tempdir().unwrap();
    assert_err(&d.path().join("nope.wav"), &["cannot open"]);
    assert_err(d.path(), &["directory"]);
}

#[test]
fn text_renamed_to_wav() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("notes.wav");
    std::fs::write(
        &p,
        "These are my lyrics, not audio.\nSecond line.\n".repeat(20),
    )
    .unwrap();
    assert_err(&p, &["not an audio file", "text"]);
    let p = d.path().join("blob.mp3");
    std::fs::write(
        &p,
        (0..4000u32).map(|i| (i * 7 % 13) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    assert_err(&p, &["not an audio file"]);
}

#[test]
fn truncated_header() {
    let d = tempfile::tempdir().unwrap();
    let full = raw_wav(1, 1, 44100, 16, 200, &[0u8; 200]);
    for cut in [4usize, 12, 20, 30, 43] {
        let p = d.path().join(format!("cut{cut}.wav"));
        std::fs::write(&p, &full[..cut]).unwrap();
        let msg = err_of(&p);
        assert!(msg.contains("cut"), "{msg}");
        assert!(
            msg.contains("truncated") || msg.contains("malformed"),
            "cut at {cut}: {msg}"
        );
    }
}

#[test]
fn truncated_data_and_lying_header() {
    let d = tempfile::tempdir().unwrap();
    let x = pcm16(&sine(440.0, 44100, 4410, 0.5));
    // A valid file cut in the middle of its data.
    let p = d.path().join("half.wav");
    std::fs::write(
        &p,
        &raw_wav(1, 1, 44100, 16, x.len() as u32, &x)[..44 + x.len() / 2],
    )
    .unwrap();
    assert_err(&p, &["truncated", "declares 4410 frames", "only 2205"]);
    // A header that claims ten times the data that is there.
    let p = d.path().join("lies.wav");
    std::fs::write(&p, raw_wav(1, 1, 44100, 16, 10 * x.len() as u32, &x)).unwrap();
    assert_err(&p, &["header lies", "44100 frames"]);
}

#[test]
fn huge_declared_length_does_not_allocate() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("huge.wav");
    let x = pcm16(&sine(440.0, 44100, 441, 0.5));
    std::fs::write(&p, raw_wav(1, 2, 44100, 16, 0xFFFF_FFF0, &x)).unwrap();
    let t = std::time::Instant::now();
    assert_err(&p, &["header"]);
    assert!(t.elapsed().as_secs_f64() < 5.0);
    // A 4 GiB allocation would show in the peak RSS of this test process.
    // A missing VmHWM must not read as a peak of 0: skip only outside CI.
    let hwm: Option<u64> = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        });
    match hwm {
        Some(hwm) => assert!(hwm < 1_500_000, "peak RSS {hwm} kB"),
        None => assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true" || v == "1"),
            "no VmHWM in /proc/self/status and CI=true: the peak-memory bound cannot be checked"
        ),
    }
}

#[test]
fn streamed_wav_with_unknown_length() {
    // ffmpeg writing to a pipe leaves the data size as 0xFFFFFFFF: decode to the end, with a warning.
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("pipe.wav");
    let x = sine(440.0, 44100, 4410, 0.5);
    let mut bytes = raw_wav(1, 1, 44100, 16, u32::MAX, &pcm16(&x));
    bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&p, bytes).unwrap();
    match load(&p) {
        Ok(a) => {
            assert_eq!(a.samples.len(), 4410);
            assert!(
                a.warnings.iter().any(|w| w.contains("streamed")),
                "{:?}",
                a.warnings
            );
        }
        Err(e) => panic!("streamed WAV refused: {e:#}"),
    }
}

#[test]
fn unsupported_codec() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("wma.wav");
    // Format tag 0x0161 (Windows Media Audio) inside a WAV container.
    std::fs::write(&p, raw_wav(0x0161, 2, 44100, 16, 400, &[0u8; 400])).unwrap();
    assert_err(&p, &["unsupported"]);
}

#[test]
fn nan_and_inf_samples() {
    let d = tempfile::tempdir().unwrap();
    for (name, bad) in [("nan.wav", f32::NAN), ("inf.wav", f32::NEG_INFINITY)] {
        let p = d.path().join(name);
        let mut x = sine(440.0, 44100, 1000, 0.5);
        x[441] = bad;
        x[500] = bad;
        write_hound(&p, &[x], 44100, 32, true);
        assert_err(
            &p,
            &["non-finite", "2 non-finite", "frame 441", "0.010000 s"],
        );
    }
}

#[test]
fn zero_length_audio() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("zero.wav");
    std::fs::write(&p, raw_wav(1, 1, 44100, 16, 0, &[])).unwrap();
    assert_err(&p, &["no audio samples", "zero-length"]);
}

#[test]
fn rate_and_channels_out_of_range() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("slow.wav");
    std::fs::write(&p, raw_wav(1, 1, 4000, 16, 200, &[0u8; 200])).unwrap();
    assert_err(&p, &["4000 Hz", "8000..=384000"]);
    let p = d.path().join("fast.wav");
    let rate = audio::MAX_SOURCE_RATE + 16_000;
    std::fs::write(&p, raw_wav(1, 1, rate, 16, 200, &[0u8; 200])).unwrap();
    assert_err(&p, &[&format!("{rate} Hz"), "outside the supported range"]);
}

#[test]
fn corrupted_fixtures_never_panic() {
    // Deterministic mutations of every fixture: truncations and byte flips. Each load must return
    // (Ok or a named error), never panic or hang.
    let d = tempfile::tempdir().unwrap();
    let mut wav = Vec::new();
    {
        let p = d.path().join("base.wav");
        write_hound(&p, &[sine(440.0, 44100, 2000, 0.5)], 44100, 16, false);
        wav.push(("base.wav", std::fs::read(&p).unwrap()));
    }
    for f in [
        "tone440_48k_stereo.flac",
        "tone1000_44k_mono.mp3",
        "tone660_22k_stereo.ogg",
    ] {
        wav.push((f, std::fs::read(fixture(f)).unwrap()));
    }
    let mut state = 0x1234_5678u64;
    let mut next = || {
        state = jukebox::util::splitmix64(state);
        state
    };
    let mut errors = 0;
    for (name, bytes) in &wav {
        let ext = Path::new(name).extension().unwrap().to_str().unwrap();
        for k in 0..40 {
            let mut b = bytes.clone();
            if k % 2 == 0 {
                b.truncate((next() as usize) % b.len());
            } else {
                for _ in 0..1 + next() % 16 {
                    let i = (next() as usize) % b.len().min(400 + (next() as usize) % b.len());
                    b[i] = next() as u8;
                }
            }
            let p = d.path().join(format!("m{k}.{ext}"));
            std::fs::write(&p, &b).unwrap();
            match load(&p) {
                Ok(a) => assert!(a.samples.iter().all(|x| x.is_finite() && x.abs() <= 1.0)),
                Err(e) => {
                    errors += 1;
                    assert!(format!("{e:#}").contains(&p.display().to_string()), "{e:#}");
                }
            }
        }
    }
    assert!(errors > 20, "only {errors} of 160 mutations were rejected");
}
