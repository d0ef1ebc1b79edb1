//! Replays every committed fuzz input (`fuzz/corpus/<target>/` and the crash regressions in
//! `fuzz/regressions/<target>/`) through the same entry points the fuzz targets call, on stable,
//! so CI checks them without a nightly toolchain. See docs/RELIABILITY.md.
//!
//! `cargo test --release --test fuzz_corpus_replay -- --ignored write_seed_corpus` regenerates the
//! hand-made seed files (`seed-*`) from the torch-free writers.

use std::path::{Path, PathBuf};

include!("../fuzz/entry.rs");

type Entry = fn(&[u8]);

const TARGETS: [(&str, Entry); 5] = [
    ("audio", fuzz_audio),
    ("legacy_pickle", fuzz_legacy_pickle),
    ("zip_pickle", fuzz_zip_pickle),
    ("safetensors_config", fuzz_safetensors_config),
    ("labels_lyrics", fuzz_labels_lyrics),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => vec![],
    };
    v.sort();
    v
}

fn replay(target: &str, f: fn(&[u8]), sub: &str) -> usize {
    let files = files_in(&fuzz_dir().join(sub).join(target));
    for p in &files {
        let data = std::fs::read(p).unwrap();
        // A panic here names the file, which reproduces it with `cargo fuzz run TARGET FILE`.
        let r = std::panic::catch_unwind(|| f(&data));
        assert!(r.is_ok(), "{target}: {} panicked", p.display());
    }
    files.len()
}

#[test]
fn corpus_replays_without_panics() {
    let mut total = 0;
    for (name, f) in TARGETS {
        let n = replay(name, f, "corpus");
        // Every target has a committed corpus with at least its seeds.
        assert!(n >= 3, "fuzz/corpus/{name} holds only {n} files");
        total += n;
    }
    eprintln!("replayed {total} corpus files");
}

#[test]
fn crash_regressions_replay_without_panics() {
    for (name, f) in TARGETS {
        replay(name, f, "regressions");
    }
}

#[test]
fn seeds_exercise_the_success_paths() {
    // The seeds are valid files: the entry points must accept them, or the fuzzers start from
    // nothing but error paths.
    let seed = |t: &str, n: &str| std::fs::read(fuzz_dir().join("corpus").join(t).join(n)).unwrap();
    let b = seed("legacy_pickle", "seed-legacy.pth.tar");
    let s = jukebox::checkpoint::torch::open_legacy(
        Path::new("x"),
        Arc::new(jukebox::checkpoint::store::Buf::Owned(b)),
    )
    .unwrap();
    assert_eq!(s.len(), 4);
    let b = seed("zip_pickle", "seed-zip.pth");
    let s = jukebox::checkpoint::torch::open_zip(
        Path::new("x"),
        Arc::new(jukebox::checkpoint::store::Buf::Owned(b)),
    )
    .unwrap();
    assert_eq!(s.len(), 4);
    let b = seed("safetensors_config", "seed-tensors.safetensors");
    assert_eq!(b[0] % 2, 0);
    let s = jukebox::checkpoint::safetensors_io::open(
        Path::new("x"),
        Arc::new(jukebox::checkpoint::store::Buf::Owned(b[1..].to_vec())),
    )
    .unwrap();
    assert_eq!(s.len(), 2);
    let b = seed("safetensors_config", "seed-config.json");
    assert_eq!(b[0] % 2, 1);
    jukebox::config::JukeboxConfig::from_hf_json(std::str::from_utf8(&b[1..]).unwrap()).unwrap();
    let b = seed("audio", "seed-tone.wav");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.wav");
    std::fs::write(&p, &b[1..]).unwrap();
    let a = jukebox::audio::load(&p).unwrap();
    assert_eq!(a.source_rate, 22_050);
    assert_eq!(a.samples.len(), 8820);
}

/// Regenerate the hand-made seeds. Run once after changing the writers; the fuzzers' own
/// discoveries (hash-named files) are kept as they are.
#[test]
#[ignore]
fn write_seed_corpus() {
    use candle_core::{DType, Device, Tensor};
    use jukebox::checkpoint::writer::{HpsValue, LegacyWriter};
    let dev = Device::Cpu;
    let put = |t: &str, n: &str, b: &[u8]| {
        let d = fuzz_dir().join("corpus").join(t);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(n), b).unwrap();
    };
    let writer = || {
        let mut w = LegacyWriter::new();
        let a = Tensor::arange(0f32, 6., &dev)
            .unwrap()
            .reshape((2, 3))
            .unwrap();
        w.add_tensor("prior.x_emb.weight", &a).unwrap();
        w.tie("prior.x_out.weight", "prior.x_emb.weight").unwrap();
        let h = Tensor::new(&[0.5f32, -1.25], &dev)
            .unwrap()
            .to_dtype(DType::F16)
            .unwrap();
        w.add_tensor("bottleneck.level_blocks.0.k", &h).unwrap();
        let s = w
            .add_storage(
                DType::F32,
                (0..6).flat_map(|x| (x as f32).to_le_bytes()).collect(),
            )
            .unwrap();
        w.add_view("transposed", s, 0, &[3, 2], &[1, 3]).unwrap();
        w.hps = vec![
            ("name".into(), HpsValue::Str("tiny".into())),
            ("lr".into(), HpsValue::Float(3e-4)),
        ];
        w.step = 7;
        w
    };
    put(
        "legacy_pickle",
        "seed-legacy.pth.tar",
        &writer().to_legacy_bytes().unwrap(),
    );
    let mut w = writer();
    w.model_call = Some((
        "prior.evil".into(),
        "os".into(),
        "system".into(),
        "true".into(),
    ));
    put(
        "legacy_pickle",
        "seed-evil.pth.tar",
        &w.to_legacy_bytes().unwrap(),
    );
    put(
        "legacy_pickle",
        "seed-list.pkl",
        b"\x80\x02]q\x00(K\x01K\x02X\x01\x00\x00\x00ae.",
    );
    put(
        "zip_pickle",
        "seed-zip.pth",
        &writer().to_zip_bytes().unwrap(),
    );
    let mut w = writer();
    w.module_prefix = true;
    w.wrap_model = false;
    put(
        "zip_pickle",
        "seed-bare-ddp.pth",
        &w.to_zip_bytes().unwrap(),
    );
    let mut w = writer();
    w.omit_storage = Some(0);
    put("zip_pickle", "seed-missing.pth", &w.to_zip_bytes().unwrap());

    // Safetensors through the crate's own writer, prefixed with the selector byte 0.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.safetensors");
    let a = Tensor::new(&[1f32, 2., 3.], &dev).unwrap();
    let b = Tensor::new(&[[1i64, 2], [3, 4]], &dev).unwrap();
    let meta = [("format".to_string(), "pt".to_string())]
        .into_iter()
        .collect();
    jukebox::checkpoint::safetensors_io::write(
        &p,
        vec![
            jukebox::checkpoint::WriteItem::from_tensor("a", &a),
            jukebox::checkpoint::WriteItem::from_tensor("b", &b),
        ],
        &meta,
    )
    .unwrap();
    let mut st = vec![0u8];
    st.extend(std::fs::read(&p).unwrap());
    put("safetensors_config", "seed-tensors.safetensors", &st);
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reference/fixtures/model/config.json");
    let mut c = vec![1u8];
    c.extend(std::fs::read(cfg).unwrap());
    put("safetensors_config", "seed-config.json", &c);
    put("safetensors_config", "seed-empty-object.json", b"\x01{}");

    // Audio: a short WAV of each common shape, the fixture's compressed files, and junk.
    let wav = |rate: u32, ch: u16, bits: u16, fmt: u16, frames: usize| {
        let ba = ch * bits / 8;
        let data: Vec<u8> = (0..frames * ch as usize)
            .flat_map(|i| {
                let x = (i as f32 * 0.05).sin() * 0.3;
                match (fmt, bits) {
                    (3, 32) => x.to_le_bytes().to_vec(),
                    (_, 16) => ((x * 32767.0) as i16).to_le_bytes().to_vec(),
                    _ => vec![((x * 127.0) as i8 as u8).wrapping_add(128)],
                }
            })
            .collect();
        let mut v = vec![0u8]; // selector: .wav
        v.extend(b"RIFF");
        v.extend(((36 + data.len()) as u32).to_le_bytes());
        v.extend(b"WAVEfmt ");
        v.extend(16u32.to_le_bytes());
        v.extend(fmt.to_le_bytes());
        v.extend(ch.to_le_bytes());
        v.extend(rate.to_le_bytes());
        v.extend((rate * ba as u32).to_le_bytes());
        v.extend(ba.to_le_bytes());
        v.extend(bits.to_le_bytes());
        v.extend(b"data");
        v.extend((data.len() as u32).to_le_bytes());
        v.extend(data);
        v
    };
    put("audio", "seed-tone.wav", &wav(22_050, 1, 16, 1, 4410));
    put(
        "audio",
        "seed-stereo-float.wav",
        &wav(48_000, 2, 32, 3, 2000),
    );
    put("audio", "seed-8bit-8ch.wav", &wav(8_000, 8, 8, 1, 500));
    for (sel, f) in [
        (3u8, "tone660_22k_stereo.ogg"),
        (2, "tone1000_44k_mono.mp3"),
        (1, "tone440_48k_stereo.flac"),
    ] {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/audio")
            .join(f);
        let mut v = vec![sel];
        v.extend(std::fs::read(src).unwrap());
        put("audio", &format!("seed-{f}"), &v);
    }

    put(
        "labels_lyrics",
        "seed-names",
        b"the beatles\xffrock pop\xffHello, world!\nLa la la",
    );
    let mut l = b"Ella Fitzgerald".to_vec();
    l.push(0xff);
    l.extend(b"jazz");
    l.push(0xff);
    l.extend([16, 30, 5, 4]);
    l.extend("Caf\u{e9} na\u{ef}ve \u{201c}quotes\u{201d} \u{4e2d}\u{6587} [chorus]".as_bytes());
    put("labels_lyrics", "seed-unicode", &l);
    put("labels_lyrics", "seed-numeric", b"#12\xff#3\xff");
}
