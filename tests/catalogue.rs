//! The bad-input catalogue (docs/RELIABILITY.md): every case runs the `jukebox` binary on a hostile or
//! broken input and checks a clear message, a non-zero exit code, and no panic or backtrace.
//! The few inputs docs/CONVENTIONS.md calls valid-but-unusual (silence, 8 channels, 192 kHz) must
//! succeed with a warning instead.
//!
//! Builders for the hostile files live in `catalogue/support.rs`.

#[path = "catalogue/support.rs"]
mod support;

use std::fs;
use std::path::Path;
use support::*;

// ---------------------------------------------------------------------------------------------
// Audio (`jukebox encode`)

#[test]
fn audio_empty_file() {
    let t = tmp();
    let p = t.path().join("empty.wav");
    fs::write(&p, b"").unwrap();
    expect_err(&encode(&t, &p), &["empty.wav", "empty", "0 bytes"]);
}

#[test]
fn audio_truncated_header() {
    let t = tmp();
    let p = t.path().join("cut.wav");
    fs::write(&p, &wav_pcm16(44_100, 1, &tone(4410, 1))[..20]).unwrap();
    expect_err(&encode(&t, &p), &["cut.wav", "truncated"]);
}

#[test]
fn audio_header_lies_about_size() {
    let t = tmp();
    let p = t.path().join("lie.wav");
    let data = tone(1000, 1);
    fs::write(&p, wav_raw(44_100, 1, 16, 1, &data, Some(2_000_000))).unwrap();
    expect_err(
        &encode(&t, &p),
        &[
            "lie.wav",
            "header lies about its size",
            "1000000 frames",
            "only 1000",
        ],
    );
}

#[test]
fn audio_huge_declared_length_is_not_allocated() {
    // The header declares ~4 GiB of samples; the file holds 2 kB. Run under a 1.5 GiB address
    // space limit: allocating what the header says would abort instead of a clean error.
    let t = tmp();
    let p = t.path().join("huge.wav");
    fs::write(
        &p,
        wav_raw(44_100, 1, 16, 1, &tone(1000, 1), Some(0xFFFF_FFC0)),
    )
    .unwrap();
    let o = run_limited_memory(
        &t,
        1536 * 1024,
        &["encode", "--model", model(), "-o", "o.st", path_str(&p)],
    );
    expect_err(&o, &["huge.wav", "truncated"]);
}

#[test]
fn audio_unsupported_codec() {
    let t = tmp();
    let p = t.path().join("mpeg_in_wav.wav");
    // WAVE_FORMAT_MPEGLAYER3 (0x55), which no reader here decodes.
    fs::write(&p, wav_raw(44_100, 1, 16, 0x55, &[0u8; 1000], None)).unwrap();
    expect_err(
        &encode(&t, &p),
        &["mpeg_in_wav.wav", "unsupported", "supported: WAV"],
    );
}

#[test]
fn audio_text_renamed_to_wav() {
    let t = tmp();
    let p = t.path().join("notes.wav");
    fs::write(&p, "These are my lyrics, not audio.\nSecond line.\n").unwrap();
    expect_err(
        &encode(&t, &p),
        &["notes.wav", "not an audio file", "text file"],
    );
}

#[test]
fn audio_nan_samples() {
    let t = tmp();
    let p = t.path().join("nan.wav");
    let mut d: Vec<u8> = (0..400).flat_map(|_| 0.1f32.to_le_bytes()).collect();
    d.extend(f32::NAN.to_le_bytes());
    fs::write(&p, wav_raw(44_100, 1, 32, 3, &d, None)).unwrap();
    expect_err(&encode(&t, &p), &["nan.wav", "non-finite", "frame 400"]);
}

#[test]
fn audio_infinite_samples() {
    let t = tmp();
    let p = t.path().join("inf.wav");
    let d: Vec<u8> = (0..300)
        .flat_map(|i| if i % 7 == 3 { f32::INFINITY } else { 0.2 }.to_le_bytes())
        .collect();
    fs::write(&p, wav_raw(44_100, 1, 32, 3, &d, None)).unwrap();
    expect_err(&encode(&t, &p), &["inf.wav", "non-finite", "corrupt"]);
}

#[test]
fn audio_absurd_float_values() {
    // Finite but enormous float samples at 48 kHz: the resampler's FFT would overflow (a
    // fuzzer find); the file is refused instead.
    let t = tmp();
    let p = t.path().join("loud.wav");
    let d: Vec<u8> = (0..4800)
        .flat_map(|i| if i % 2 == 0 { 3e38f32 } else { -3e38 }.to_le_bytes())
        .collect();
    fs::write(&p, wav_raw(48_000, 1, 32, 3, &d, None)).unwrap();
    expect_err(&encode(&t, &p), &["loud.wav", "resampling", "corrupt"]);
}

#[test]
fn audio_all_silence_is_allowed_with_a_warning() {
    let t = tmp();
    let p = t.path().join("silent.wav");
    fs::write(&p, wav_raw(44_100, 1, 16, 1, &vec![0u8; 2 * 4410], None)).unwrap();
    let o = encode(&t, &p);
    expect_ok_warn(&o, &["silent.wav", "completely silent"]);
    assert!(t.path().join("o.st").is_file());
}

#[test]
fn audio_one_sample_long() {
    let t = tmp();
    let p = t.path().join("one.wav");
    fs::write(&p, wav_pcm16(44_100, 1, &tone(1, 1))).unwrap();
    expect_err(&encode(&t, &p), &["1 samples", "fewer than one token"]);
}

#[test]
fn audio_eight_channels_is_mixed_down_with_a_warning() {
    let t = tmp();
    let p = t.path().join("eight.wav");
    fs::write(&p, wav_pcm16(44_100, 8, &tone(4410, 8))).unwrap();
    expect_ok_warn(&encode(&t, &p), &["8 channels", "mono"]);
}

#[test]
fn audio_192_khz_is_resampled_with_a_warning() {
    let t = tmp();
    let p = t.path().join("hi.wav");
    fs::write(&p, wav_pcm16(192_000, 1, &tone(19_200, 1))).unwrap();
    expect_ok_warn(&encode(&t, &p), &["192000 Hz", "resampled"]);
}

#[test]
fn audio_rate_outside_range() {
    let t = tmp();
    let p = t.path().join("slow.wav");
    fs::write(&p, wav_pcm16(1000, 1, &tone(1000, 1))).unwrap();
    expect_err(&encode(&t, &p), &["1000 Hz", "outside the supported range"]);
}

#[test]
fn audio_too_many_channels() {
    let t = tmp();
    let p = t.path().join("many.wav");
    fs::write(&p, wav_pcm16(44_100, 40, &tone(100, 40))).unwrap();
    expect_err(
        &encode(&t, &p),
        // symphonia's WAV reader refuses it itself, naming the channel count.
        &["many.wav", "channel count"],
    );
}

#[test]
fn audio_truncated_flac() {
    let t = tmp();
    let p = t.path().join("cut.flac");
    let src = fs::read(crate_path("tests/fixtures/audio/tone440_48k_stereo.flac")).unwrap();
    fs::write(&p, &src[..60]).unwrap();
    expect_err(&encode(&t, &p), &["cut.flac"]);
}

#[test]
fn audio_missing_file_and_directory() {
    let t = tmp();
    expect_err(
        &encode(&t, &t.path().join("nope.wav")),
        &["nope.wav", "cannot open"],
    );
    expect_err(&encode(&t, t.path()), &["is a directory"]);
}

// ---------------------------------------------------------------------------------------------
// Checkpoints (`jukebox inspect`, model directories)

#[test]
fn safetensors_header_length_overflows() {
    let t = tmp();
    let p = t.path().join("x.safetensors");
    let mut b = u64::MAX.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    fs::write(&p, &b).unwrap();
    expect_err(
        &inspect(&t, &p),
        &["x.safetensors", "not a valid safetensors file"],
    );
    // A length past the end of the file.
    let mut b = 1_000_000u64.to_le_bytes().to_vec();
    b.extend_from_slice(b"{\"a\":1}");
    fs::write(&p, &b).unwrap();
    expect_err(&inspect(&t, &p), &["not a valid safetensors file"]);
}

#[test]
fn safetensors_overlapping_offsets() {
    let t = tmp();
    let p = t.path().join("overlap.safetensors");
    let h = r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#;
    fs::write(&p, safetensors_bytes(h, 24)).unwrap();
    expect_err(
        &inspect(&t, &p),
        &[
            "overlap.safetensors",
            "not a valid safetensors file",
            "Offset",
        ],
    );
}

#[test]
fn safetensors_out_of_bounds_offsets() {
    let t = tmp();
    let p = t.path().join("oob.safetensors");
    let h = r#"{"a":{"dtype":"F32","shape":[250],"data_offsets":[0,1000]}}"#;
    fs::write(&p, safetensors_bytes(h, 16)).unwrap();
    expect_err(
        &inspect(&t, &p),
        &["oob.safetensors", "not a valid safetensors file"],
    );
}

#[test]
fn zip_pickle_missing_data_file() {
    let t = tmp();
    let p = t.path().join("missing.pth");
    let mut w = small_writer();
    w.omit_storage = Some(1);
    w.write_zip(&p).unwrap();
    expect_err(&inspect(&t, &p), &["missing.pth", "archive/data/1"]);
}

#[test]
fn legacy_pickle_wrong_storage_size() {
    let t = tmp();
    let p = t.path().join("sizes.pth.tar");
    let mut w = small_writer();
    w.declared_numel_delta = 5;
    w.write_legacy(&p).unwrap();
    expect_err(
        &inspect(&t, &p),
        &[
            "sizes.pth.tar",
            "holds 6 elements in the file but the pickle declares 11",
        ],
    );
}

#[test]
fn legacy_pickle_truncated() {
    let t = tmp();
    let p = t.path().join("short.pth.tar");
    let b = small_writer().to_legacy_bytes().unwrap();
    fs::write(&p, &b[..b.len() - 7]).unwrap();
    expect_err(&inspect(&t, &p), &["short.pth.tar", "truncated"]);
}

fn evil_checkpoint(
    t: &tempfile::TempDir,
    zip: bool,
    module: &str,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let marker = t.path().join(format!("pwned-{module}-{name}"));
    let p = t.path().join(if zip { "evil.pth" } else { "evil.pth.tar" });
    let mut w = small_writer();
    w.model_call = Some((
        "prior.evil".into(),
        module.into(),
        name.into(),
        format!("touch {}", marker.display()),
    ));
    if zip {
        w.write_zip(&p).unwrap();
    } else {
        w.write_legacy(&p).unwrap();
    }
    (p, marker)
}

#[test]
fn pickle_calling_os_system_is_refused_and_never_run() {
    for zip in [false, true] {
        let t = tmp();
        let (p, marker) = evil_checkpoint(&t, zip, "os", "system");
        expect_err(&inspect(&t, &p), &["os.system", "allow-list", "prior.evil"]);
        assert!(!marker.exists(), "the pickle was executed");
        // The same file inside a model directory, through `encode`.
        let md = t.path().join("model");
        fs::create_dir_all(&md).unwrap();
        fs::write(md.join("preset"), "5b\n").unwrap();
        fs::copy(&p, md.join("vqvae.pth.tar")).unwrap();
        let wavp = t.path().join("a.wav");
        fs::write(&wavp, wav_pcm16(44_100, 1, &tone(4410, 1))).unwrap();
        let o = jb(
            &t,
            &[
                "encode",
                "--model",
                path_str(&md),
                "-o",
                "o.st",
                path_str(&wavp),
            ],
        );
        expect_err(&o, &["os.system"]);
        assert!(!marker.exists(), "the pickle was executed");
    }
}

#[test]
fn pickle_with_other_unlisted_globals_is_refused() {
    for (m, n) in [
        ("subprocess", "Popen"),
        ("builtins", "eval"),
        ("posix", "system"),
        ("torch", "load"),
    ] {
        let t = tmp();
        let (p, marker) = evil_checkpoint(&t, false, m, n);
        expect_err(&inspect(&t, &p), &[&format!("{m}.{n}"), "allow-list"]);
        assert!(!marker.exists());
    }
}

#[test]
fn not_a_checkpoint_and_empty_checkpoint() {
    let t = tmp();
    let p = t.path().join("weights.bin");
    fs::write(&p, "just some text, definitely not weights").unwrap();
    expect_err(&inspect(&t, &p), &["weights.bin", "not a checkpoint"]);
    fs::write(&p, b"").unwrap();
    expect_err(&inspect(&t, &p), &["weights.bin", "empty"]);
}

#[test]
fn wrong_model_kind_for_the_command() {
    // A top prior checkpoint where the VQ-VAE is expected.
    let t = tmp();
    let md = t.path().join("m");
    fs::create_dir_all(&md).unwrap();
    fs::write(md.join("preset"), "1b_lyrics\n").unwrap();
    fs::copy(
        crate_path("tests/fixtures/reference/checkpoints/lyrics_1b.pth.tar"),
        md.join("vqvae.pth.tar"),
    )
    .unwrap();
    let wavp = t.path().join("a.wav");
    fs::write(&wavp, wav_pcm16(44_100, 1, &tone(4410, 1))).unwrap();
    let o = jb(
        &t,
        &[
            "encode",
            "--model",
            path_str(&md),
            "-o",
            "o.st",
            path_str(&wavp),
        ],
    );
    expect_err(
        &o,
        &["vqvae", "different kind of checkpoint", "jukebox inspect"],
    );
    assert!(
        o.stderr.len() < 8000,
        "a thousand-line error is not clear:\n{}",
        o.stderr.len()
    );
}

#[test]
fn shape_mismatch_names_the_key() {
    let t = tmp();
    let md = t.path().join("m");
    model_with_tensor_replaced(&md, "vqvae.bottleneck.level_blocks.1.codebook", &[64, 15]);
    let wavp = t.path().join("a.wav");
    fs::write(&wavp, wav_pcm16(44_100, 1, &tone(4410, 1))).unwrap();
    let o = jb(
        &t,
        &[
            "encode",
            "--model",
            path_str(&md),
            "-o",
            "o.st",
            path_str(&wavp),
        ],
    );
    expect_err(&o, &["bottleneck.level_blocks.1.k", "[64, 16]", "[64, 15]"]);
}

#[test]
fn model_dir_missing_or_with_broken_config() {
    let t = tmp();
    let o = jb(
        &t,
        &[
            "sample",
            "--model",
            "no/such/model",
            "-o",
            "r",
            "--seconds",
            "1",
        ],
    );
    expect_err(&o, &["no/such/model", "does not exist"]);
    let md = t.path().join("m");
    fs::create_dir_all(&md).unwrap();
    fs::write(
        md.join("config.json"),
        "{\"model_type\": \"jukebox\", \"nb_priors\": ",
    )
    .unwrap();
    fs::copy(
        crate_path(&format!("{}/model.safetensors", model())),
        md.join("model.safetensors"),
    )
    .unwrap();
    let o = jb(
        &t,
        &[
            "sample",
            "--model",
            path_str(&md),
            "-o",
            "r",
            "--seconds",
            "1",
        ],
    );
    expect_err(&o, &["config.json"]);
}

// ---------------------------------------------------------------------------------------------
// CLI and config

#[test]
fn unknown_artist_suggests_names() {
    let t = tmp();
    let md = labelled_model(&t);
    let o = sample_new(&t, &md, &["--artist", "the beatls"]);
    expect_err(
        &o,
        &[
            "unknown artist",
            "the beatls",
            "nearest: the beatles",
            "jukebox labels",
        ],
    );
}

#[test]
fn unknown_genre_suggests_names() {
    let t = tmp();
    let md = labelled_model(&t);
    let o = sample_new(&t, &md, &["--genre", "rokc"]);
    expect_err(&o, &["unknown genre", "rokc", "nearest: rock"]);
}

#[test]
fn zero_negative_and_absurd_lengths() {
    let t = tmp();
    for (s, words) in [
        ("0", &["positive", "got 0"][..]),
        ("-3", &["positive", "got -3"]),
        ("nan", &["positive", "NaN"]),
        ("1e300", &["1e300 s", "3600 s limit"]),
        ("0.001", &["shorter than one top-level token"]),
    ] {
        let o = jb(
            &t,
            &[
                "sample",
                "--model",
                model(),
                "-o",
                "r",
                &format!("--seconds={s}"),
                "--levels",
                "top",
            ],
        );
        expect_err(&o, words);
    }
    let o = jb(
        &t,
        &[
            "sample",
            "--model",
            model(),
            "-o",
            "r",
            "--seconds",
            "1",
            "--total-seconds=-1",
        ],
    );
    expect_err(&o, &["--total-seconds", "positive"]);
    let o = jb(
        &t,
        &[
            "sample",
            "--model",
            model(),
            "-o",
            "r",
            "--seconds",
            "1",
            "--total-seconds",
            "9",
        ],
    );
    expect_err(&o, &["song length 9.00 s", "outside this prior's range"]);
    assert!(
        !t.path().join("r/run.toml").exists(),
        "a refused run must not leave a run behind"
    );
}

#[test]
fn prompt_longer_than_target() {
    let t = tmp();
    let wavp = t.path().join("p.wav");
    fs::write(&wavp, wav_pcm16(44_100, 1, &tone(44_100 * 3, 1))).unwrap();
    let o = jb(
        &t,
        &[
            "sample",
            "--model",
            model(),
            "-o",
            "r",
            "--seconds",
            "1",
            "--prompt",
            path_str(&wavp),
            "--prompt-seconds",
            "2",
        ],
    );
    expect_err(&o, &["prompt", "must be shorter", "--seconds 1"]);
    // And a prompt file shorter than --prompt-seconds.
    let short = t.path().join("short.wav");
    fs::write(&short, wav_pcm16(44_100, 1, &tone(4410, 1))).unwrap();
    let o = jb(
        &t,
        &[
            "sample",
            "--model",
            model(),
            "-o",
            "r",
            "--seconds",
            "1.5",
            "--total-seconds",
            "1.6",
            "--prompt",
            path_str(&short),
            "--prompt-seconds",
            "1",
        ],
    );
    expect_err(&o, &["short.wav", "shorter than the 1 s"]);
}

#[test]
fn resume_with_another_model() {
    let t = tmp();
    let run = finished_top_run(&t);
    // Another model: same weights, different hyperparameters in config.json.
    let other = t.path().join("other");
    fs::create_dir_all(&other).unwrap();
    let cfg = fs::read_to_string(crate_path(&format!("{}/config.json", model()))).unwrap();
    fs::write(
        other.join("config.json"),
        cfg.replacen("0.125,", "0.25,", 1),
    )
    .unwrap();
    fs::copy(
        crate_path(&format!("{}/model.safetensors", model())),
        other.join("model.safetensors"),
    )
    .unwrap();
    let o = jb(
        &t,
        &[
            "sample",
            "--resume",
            path_str(&run),
            "--model",
            path_str(&other),
        ],
    );
    expect_err(&o, &["another model", "--model"]);
}

#[test]
fn corrupted_run_toml() {
    let t = tmp();
    let run = finished_top_run(&t);
    let toml = fs::read_to_string(run.join("run.toml")).unwrap();
    fs::write(run.join("run.toml"), &toml[..toml.len() / 3]).unwrap();
    let o = jb(&t, &["sample", "--resume", path_str(&run)]);
    expect_err(&o, &["run.toml", "corrupted"]);
    // Valid TOML that is not a run.
    fs::write(run.join("run.toml"), "title = \"my song\"\n").unwrap();
    let o = jb(&t, &["sample", "--resume", path_str(&run)]);
    expect_err(&o, &["run.toml"]);
}

#[test]
fn corrupted_state_file() {
    let t = tmp();
    let run = finished_top_run(&t);
    fs::write(
        run.join("state.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":",
    )
    .unwrap();
    let o = jb(&t, &["sample", "--resume", path_str(&run)]);
    expect_err(&o, &["state.safetensors", "corrupted"]);
}

#[test]
fn resume_of_a_directory_that_is_not_a_run() {
    let t = tmp();
    fs::create_dir_all(t.path().join("empty")).unwrap();
    let o = jb(&t, &["sample", "--resume", "empty"]);
    expect_err(&o, &["empty", "run.toml", "run directory"]);
}

#[test]
fn new_run_over_an_existing_run() {
    let t = tmp();
    let run = finished_top_run(&t);
    let o = jb(
        &t,
        &[
            "sample",
            "--model",
            model(),
            "-o",
            path_str(&run),
            "--seconds",
            "1",
            "--total-seconds",
            "1.5",
        ],
    );
    expect_err(&o, &["already holds a run", "--resume"]);
}

#[test]
fn output_directory_not_writable() {
    let t = tmp();
    let Some(ro) = read_only_dir(&t) else {
        return;
    };
    let o = jb(
        &t,
        &[
            "sample",
            "--model",
            model(),
            "-o",
            path_str(&ro.path().join("run")),
            "--seconds",
            "1",
            "--total-seconds",
            "1.5",
            "--levels",
            "top",
        ],
    );
    expect_err(&o, &["cannot create"]);
    let wavp = t.path().join("a.wav");
    fs::write(&wavp, wav_pcm16(44_100, 1, &tone(4410, 1))).unwrap();
    let o = jb(
        &t,
        &[
            "encode",
            "--model",
            model(),
            "-o",
            path_str(&ro.path().join("c.st")),
            path_str(&wavp),
        ],
    );
    expect_err(&o, &["c.st"]);
}

#[test]
fn bad_levels_and_hop_fraction() {
    let t = tmp();
    let base = [
        "sample",
        "--model",
        model(),
        "-o",
        "r",
        "--seconds",
        "1",
        "--total-seconds",
        "1.5",
    ];
    let o = jb(&t, &[&base[..], &["--levels", "top,sideways"]].concat());
    expect_err(&o, &["unknown level `sideways`"]);
    let o = jb(&t, &[&base[..], &["--levels", "7"]].concat());
    expect_err(&o, &["level 7 does not exist"]);
    let o = jb(&t, &[&base[..], &["--hop-fraction", "0.5,2,0.5"]].concat());
    expect_err(&o, &["--hop-fraction", "(0, 1]"]);
}

#[test]
fn corrupt_codes_file_for_decode() {
    let t = tmp();
    let p = t.path().join("codes.safetensors");
    fs::write(
        &p,
        safetensors_bytes(
            r#"{"level_2":{"dtype":"F32","shape":[1,4],"data_offsets":[0,16]}}"#,
            16,
        ),
    )
    .unwrap();
    let o = jb(
        &t,
        &[
            "decode",
            "--model",
            model(),
            "--level",
            "top",
            "-o",
            "x.wav",
            path_str(&p),
        ],
    );
    expect_err(&o, &["codes.safetensors"]);
}

// ---------------------------------------------------------------------------------------------
// The memory guard

#[test]
fn memory_guard_refuses_a_model_that_does_not_fit() {
    let t = tmp();
    let wavp = t.path().join("a.wav");
    fs::write(&wavp, wav_pcm16(44_100, 1, &tone(4410, 1))).unwrap();
    let o = jb_env(
        &t,
        &["encode", "--model", model(), "-o", "o.st", path_str(&wavp)],
        &[("JUKEBOX_MEMORY_LIMIT", "100K")],
    );
    expect_err(
        &o,
        &[
            "not enough memory for the VQ-VAE",
            "806.6 KiB",
            "100.0 KiB",
            "parameters fit",
            "JUKEBOX_MEMORY_LIMIT",
        ],
    );
    assert!(!t.path().join("o.st").exists());
    // A generous limit lets the same command through.
    let o = jb_env(
        &t,
        &["encode", "--model", model(), "-o", "o.st", path_str(&wavp)],
        &[("JUKEBOX_MEMORY_LIMIT", "1G")],
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
}

#[test]
fn memory_guard_refuses_a_kv_cache_and_says_what_fits() {
    let t = tmp();
    let o = jb_env(
        &t,
        &[
            "sample",
            "--model",
            model(),
            "-o",
            "r",
            "--seconds",
            "1",
            "--total-seconds",
            "1.5",
            "--levels",
            "top",
            "--n-samples",
            "64",
            "--max-batch",
            "64",
            "--quiet",
        ],
        &[("JUKEBOX_MEMORY_LIMIT", "500K")],
    );
    // The top prior (268 KiB) fits; 64 caches of 12 KiB do not, 41 would.
    expect_err(&o, &["level-2 KV cache", "768.0 KiB", "--max-batch 41"]);
}

#[test]
fn memory_guard_rejects_a_malformed_limit() {
    let t = tmp();
    let wavp = t.path().join("a.wav");
    fs::write(&wavp, wav_pcm16(44_100, 1, &tone(4410, 1))).unwrap();
    let o = jb_env(
        &t,
        &["encode", "--model", model(), "-o", "o.st", path_str(&wavp)],
        &[("JUKEBOX_MEMORY_LIMIT", "lots")],
    );
    expect_err(&o, &["JUKEBOX_MEMORY_LIMIT", "`lots` is not a size"]);
}

#[test]
fn catalogue_has_at_least_thirty_cases() {
    let src = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/catalogue.rs"))
        .unwrap();
    let n = src.matches("#[test]").count() - 1;
    assert!(n >= 30, "only {n} catalogue cases");
}
