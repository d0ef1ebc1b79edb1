//! Bad audio input: each case gives a clear error that names the file (never a panic), and
//! valid-but-odd input is accepted with a warning (docs/CONVENTIONS.md, "Lengths and audio").

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

/// What one mutated file gave.
#[derive(Debug)]
enum Outcome {
    /// Decoded: the number of samples.
    Ok(usize),
    /// A named error: the message.
    Err(String),
}

/// Load `bytes` written as `name`, checking what holds for every outcome: a decode is finite and
/// within [-1, 1]; an error names the file; the decoder never panicked (a symphonia panic is
/// caught inside `load` and turned into an "internal panic" error, which must not happen here).
fn outcome(dir: &Path, name: &str, bytes: &[u8], bad: &mut Vec<String>) -> Outcome {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    let r = std::panic::catch_unwind(|| load(&p));
    match r {
        Err(_) => {
            bad.push(format!("{name}: load panicked"));
            Outcome::Err("panic".into())
        }
        Ok(Ok(a)) => {
            if !a.samples.iter().all(|x| x.is_finite() && x.abs() <= 1.0) {
                bad.push(format!(
                    "{name}: decoded samples outside [-1, 1] or non-finite"
                ));
            }
            Outcome::Ok(a.samples.len())
        }
        Ok(Err(e)) => {
            let m = format!("{e:#}");
            if !m.contains(&p.display().to_string()) {
                bad.push(format!("{name}: error does not name the file: {m}"));
            }
            if m.contains("internal panic") {
                bad.push(format!("{name}: the decoder panicked: {m}"));
            }
            Outcome::Err(m)
        }
    }
}

#[test]
fn corrupted_fixtures_by_class() {
    // Deterministic mutations, in classes with what each class must give. Every failure is
    // collected and reported together with per-class counts.
    let d = tempfile::tempdir().unwrap();
    let mut state = 0x1234_5678u64;
    let mut next = || {
        state = jukebox::util::splitmix64(state);
        state
    };
    let mut bad: Vec<String> = Vec::new();
    let mut counts: Vec<String> = Vec::new();
    let tally = |counts: &mut Vec<String>, class: &str, outs: &[Outcome]| {
        let errs = outs.iter().filter(|o| matches!(o, Outcome::Err(_))).count();
        counts.push(format!(
            "{class}: {} mutations, {errs} errors, {} decodes",
            outs.len(),
            outs.len() - errs
        ));
    };

    // The 16-bit PCM WAV: 2000 frames, a 44-byte header.
    let frames = 2000usize;
    let wav = {
        let p = d.path().join("base.wav");
        write_hound(&p, &[sine(440.0, 44100, frames, 0.5)], 44100, 16, false);
        std::fs::read(&p).unwrap()
    };
    assert_eq!(wav.len(), 44 + 2 * frames);

    // 1. WAV truncations: the header declares 2000 frames, so every cut is an error that says
    //    the file is short (empty, truncated/malformed header, no samples, or too few frames);
    //    a cut inside "RIFF" leaves no signature, so "not an audio file" is right there.
    let mut outs = vec![];
    let cuts: Vec<usize> = (0..44)
        .chain((0..40).map(|_| 44 + (next() as usize) % (2 * frames)))
        .collect();
    for (k, &cut) in cuts.iter().enumerate() {
        let name = format!("cut{k}.wav");
        let o = outcome(d.path(), &name, &wav[..cut], &mut bad);
        match &o {
            Outcome::Err(m)
                if ["empty", "truncated", "malformed", "no audio samples"]
                    .iter()
                    .any(|w| m.contains(w))
                    || (cut < 4 && m.contains("not an audio file")) => {}
            o => bad.push(format!(
                "wav cut at {cut}: want a truncation error, got {o:?}"
            )),
        }
        outs.push(o);
    }
    tally(&mut counts, "wav truncation", &outs);

    // 2. WAV data flips: any bytes are valid 16-bit PCM, so the file decodes, same length.
    let mut outs = vec![];
    for k in 0..40 {
        let mut b = wav.clone();
        for _ in 0..1 + next() % 16 {
            let i = 44 + (next() as usize) % (2 * frames);
            b[i] = next() as u8;
        }
        let o = outcome(d.path(), &format!("data{k}.wav"), &b, &mut bad);
        if !matches!(o, Outcome::Ok(n) if n == frames) {
            bad.push(format!(
                "wav data flip {k}: want {frames} samples, got {o:?}"
            ));
        }
        outs.push(o);
    }
    tally(&mut counts, "wav data flip", &outs);

    // 3. WAV header flips: a named error, or a decode (finite, in range: checked in `outcome`).
    let mut outs = vec![];
    for k in 0..40 {
        let mut b = wav.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() as usize) % 44;
            b[i] = next() as u8;
        }
        outs.push(outcome(d.path(), &format!("hdr{k}.wav"), &b, &mut bad));
    }
    tally(&mut counts, "wav header flip", &outs);

    // 4. NaN / infinity written into a 32-bit float WAV: always the non-finite error.
    let fwav = {
        let p = d.path().join("float.wav");
        write_hound(&p, &[sine(440.0, 44100, frames, 0.5)], 44100, 32, true);
        std::fs::read(&p).unwrap()
    };
    let data = fwav.len() - 4 * frames;
    let mut outs = vec![];
    for k in 0..20 {
        let mut b = fwav.clone();
        let v = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][k % 3];
        let f = (next() as usize) % frames;
        b[data + 4 * f..data + 4 * f + 4].copy_from_slice(&v.to_le_bytes());
        let o = outcome(d.path(), &format!("nonfinite{k}.wav"), &b, &mut bad);
        match &o {
            Outcome::Err(m) if m.contains("non-finite") && m.contains(&format!("frame {f}")) => {}
            o => bad.push(format!(
                "{v} at frame {f}: want the non-finite error, got {o:?}"
            )),
        }
        outs.push(o);
    }
    tally(&mut counts, "float wav NaN/inf", &outs);

    // 5. Compressed fixtures, cut or flipped: a named error, or a decode no longer than the
    //    whole file's (a valid decode of the part that is there). FLAC declares its length
    //    (STREAMINFO), so a cut FLAC is always an error.
    for f in [
        "tone440_48k_stereo.flac",
        "tone1000_44k_mono.mp3",
        "tone660_22k_stereo.ogg",
    ] {
        let bytes = std::fs::read(fixture(f)).unwrap();
        let ext = Path::new(f).extension().unwrap().to_str().unwrap();
        let full = match outcome(d.path(), &format!("whole.{ext}"), &bytes, &mut bad) {
            Outcome::Ok(n) => n,
            o => panic!("{f} does not decode: {o:?}"),
        };
        let (mut cuts, mut flips) = (vec![], vec![]);
        for k in 0..40 {
            let mut b = bytes.clone();
            let cut = k % 2 == 0;
            if cut {
                b.truncate((next() as usize) % b.len());
            } else {
                for _ in 0..1 + next() % 16 {
                    let i = (next() as usize) % b.len().min(400 + (next() as usize) % b.len());
                    b[i] = next() as u8;
                }
            }
            let o = outcome(d.path(), &format!("m{k}.{ext}"), &b, &mut bad);
            if let Outcome::Ok(n) = o {
                if cut && ext == "flac" {
                    bad.push(format!("{f} cut {k}: a cut FLAC decoded ({n} samples)"));
                }
                if cut && n > full {
                    bad.push(format!(
                        "{f} cut {k}: {n} samples from a cut file, {full} whole"
                    ));
                }
            }
            if cut {
                cuts.push(o)
            } else {
                flips.push(o)
            }
        }
        tally(&mut counts, &format!("{ext} truncation"), &cuts);
        tally(&mut counts, &format!("{ext} byte flip"), &flips);
    }
    assert!(
        bad.is_empty(),
        "{} of the mutations broke their class's rule:\n{}\nper class:\n{}",
        bad.len(),
        bad.join("\n"),
        counts.join("\n")
    );
    eprintln!("{}", counts.join("\n"));
}
