//! The torch-free writer, and hostile or broken files: each gives a clear error, never a panic,
//! and nothing in a pickle is ever executed.

use candle_core::{DType, Device, Tensor};
use jukebox::checkpoint::writer::{HpsValue, LegacyWriter};
use jukebox::checkpoint::{Format, Store};
use std::path::{Path, PathBuf};

fn refdir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference")
}

fn open_err(p: &Path) -> String {
    match Store::open(p) {
        Ok(_) => panic!("{} opened but should have been refused", p.display()),
        Err(e) => format!("{e:#}"),
    }
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn sample_writer() -> LegacyWriter {
    let dev = Device::Cpu;
    let mut w = LegacyWriter::new();
    let a = Tensor::arange(0f32, 12., &dev)
        .unwrap()
        .reshape((3, 4))
        .unwrap();
    w.add_tensor("prior.x_emb.weight", &a).unwrap();
    w.tie("prior.x_out.weight", "prior.x_emb.weight").unwrap();
    // f16 Conv1D weight, as in the official fp16 top priors.
    let h = Tensor::new(&[[0.5f32, -1.25], [3.0, 1e-3]], &dev)
        .unwrap()
        .to_dtype(DType::F16)
        .unwrap();
    w.add_tensor("prior.transformer._attn_mods.0.attn.c_attn.w", &h)
        .unwrap();
    let b = Tensor::new(&[1.5f64, 2.5], &dev).unwrap();
    w.add_tensor("prior.pos_emb.pos_emb", &b).unwrap();
    let bf = Tensor::new(&[7f32, 8.], &dev)
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap();
    w.add_tensor("y_emb.artist_emb.emb.weight", &bf).unwrap();
    let i = Tensor::new(&[1i64, -2, 3], &dev).unwrap();
    w.add_tensor("counts", &i).unwrap();
    // A transposed view and an offset slice of one storage.
    let s = w
        .add_storage(
            DType::F32,
            (0..10).flat_map(|x| (x as f32).to_le_bytes()).collect(),
        )
        .unwrap();
    w.add_view("transposed", s, 0, &[2, 3], &[1, 2]).unwrap();
    w.add_view("slice", s, 7, &[3], &[1]).unwrap();
    w.hps = vec![
        ("name".into(), HpsValue::Str("tiny".into())),
        ("lr".into(), HpsValue::Float(3e-4)),
        ("levels".into(), HpsValue::Int(3)),
        // An unlisted global outside `model` is an inert placeholder, never called.
        (
            "evil".into(),
            HpsValue::Call(
                "os".into(),
                "system".into(),
                "touch /tmp/jukebox-pwned-hps".into(),
            ),
        ),
    ];
    w.step = 12345;
    w
}

fn check_sample(s: &Store) {
    let dev = Device::Cpu;
    assert_eq!(s.len(), 8);
    let x = s.load("prior.x_emb.weight", DType::F32, &dev).unwrap();
    assert_eq!(f32s(&x), (0..12).map(|v| v as f32).collect::<Vec<_>>());
    assert_eq!(
        s.get("prior.x_out.weight").unwrap().storage_id,
        s.get("prior.x_emb.weight").unwrap().storage_id
    );
    let h = s
        .get("prior.transformer._attn_mods.0.attn.c_attn.w")
        .unwrap();
    assert_eq!(h.dtype, DType::F16);
    assert_eq!(
        f32s(&h.load(DType::F32, &dev).unwrap()),
        vec![0.5, -1.25, 3.0, half::f16::from_f32(1e-3).to_f32()]
    );
    assert_eq!(s.get("prior.pos_emb.pos_emb").unwrap().dtype, DType::F64);
    assert_eq!(
        f32s(&s.load("prior.pos_emb.pos_emb", DType::F32, &dev).unwrap()),
        vec![1.5, 2.5]
    );
    assert_eq!(
        f32s(
            &s.load("y_emb.artist_emb.emb.weight", DType::F32, &dev)
                .unwrap()
        ),
        vec![7., 8.]
    );
    let c = s.load("counts", DType::I64, &dev).unwrap();
    assert_eq!(c.to_vec1::<i64>().unwrap(), vec![1, -2, 3]);
    // transposed: element [i][j] = storage[i + 2j]
    assert_eq!(
        f32s(&s.load("transposed", DType::F32, &dev).unwrap()),
        vec![0., 2., 4., 1., 3., 5.]
    );
    assert_eq!(
        f32s(&s.load("slice", DType::F32, &dev).unwrap()),
        vec![7., 8., 9.]
    );
}

#[test]
fn legacy_writer_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("prior_level_2.pth.tar");
    sample_writer().write_legacy(&p).unwrap();
    let s = Store::open(&p).unwrap();
    assert_eq!(s.format, Format::TorchLegacy);
    check_sample(&s);
    assert_eq!(s.metadata["hps.name"], "tiny");
    assert_eq!(s.metadata["hps.levels"], "3");
    assert_eq!(s.metadata["step"], "12345");
    assert!(!Path::new("/tmp/jukebox-pwned-hps").exists());
}

#[test]
fn zip_writer_round_trips_and_strips_module_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ddp.pth");
    let mut w = sample_writer();
    w.module_prefix = true;
    w.write_zip(&p).unwrap();
    let s = Store::open(&p).unwrap();
    assert_eq!(s.format, Format::TorchZip);
    check_sample(&s);
    // A bare state dict (HF pytorch_model.bin) works too.
    let mut w = sample_writer();
    w.wrap_model = false;
    w.write_zip(&p).unwrap();
    check_sample(&Store::open(&p).unwrap());
}

#[test]
fn forbidden_global_in_model_is_refused_and_named() {
    let dir = tempfile::tempdir().unwrap();
    for zip in [false, true] {
        let p = dir
            .path()
            .join(if zip { "evil.pth" } else { "evil.pth.tar" });
        let mut w = sample_writer();
        let marker = dir.path().join("pwned");
        w.model_call = Some((
            "prior.evil".into(),
            "os".into(),
            "system".into(),
            format!("touch {}", marker.display()),
        ));
        if zip {
            w.write_zip(&p).unwrap()
        } else {
            w.write_legacy(&p).unwrap()
        }
        let e = open_err(&p);
        assert!(
            e.contains("os.system") && e.contains("allow-list") && e.contains("prior.evil"),
            "{e}"
        );
        assert!(!marker.exists(), "the pickle was executed");
    }
}

#[test]
fn pickle_that_is_only_a_call_is_refused() {
    // data.pkl = os.system('echo pwned'), in a torch zip container.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("evil.bin");
    let mut pk = b"\x80\x02cos\nsystem\n(X\x0a\x00\x00\x00echo pwnedtR.".to_vec();
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let o =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("archive/data.pkl", o).unwrap();
    std::io::Write::write_all(&mut z, &pk).unwrap();
    std::fs::write(&p, z.finish().unwrap().into_inner()).unwrap();
    let e = open_err(&p);
    assert!(e.contains("os.system"), "{e}");
    // As a bare legacy-looking stream it fails at the magic number.
    std::fs::write(&p, &pk).unwrap();
    let e = open_err(&p);
    assert!(e.contains("magic number"), "{e}");
    // An allow-listed rebuild called with junk is an error too, not a panic.
    pk = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(K\x01K\x02tR.".to_vec();
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    z.start_file("archive/data.pkl", o).unwrap();
    std::io::Write::write_all(&mut z, &pk).unwrap();
    std::fs::write(&p, z.finish().unwrap().into_inner()).unwrap();
    let e = open_err(&p);
    assert!(
        e.contains("_rebuild_tensor_v2") && e.contains("not a storage"),
        "{e}"
    );
}

#[test]
fn legacy_with_wrong_storage_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.pth.tar");
    let mut w = sample_writer();
    w.declared_numel_delta = 5;
    w.write_legacy(&p).unwrap();
    let e = open_err(&p);
    assert!(
        e.contains("holds 12 elements in the file but the pickle declares 17"),
        "{e}"
    );
    // A storage that claims more data than the file has.
    let mut b = sample_writer().to_legacy_bytes().unwrap();
    b.truncate(b.len() - 10);
    std::fs::write(&p, &b).unwrap();
    let e = open_err(&p);
    assert!(e.contains("truncated"), "{e}");
    // A view that reaches past its storage.
    let mut w = LegacyWriter::new();
    let s = w.add_storage(DType::F32, vec![0u8; 16]).unwrap();
    w.add_view("w", s, 2, &[3], &[1]).unwrap();
    w.write_legacy(&p).unwrap();
    let e = open_err(&p);
    assert!(e.contains("`w`") && e.contains("needs 20 bytes"), "{e}");
}

#[test]
fn zip_with_missing_data_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("missing.pth");
    let mut w = sample_writer();
    w.omit_storage = Some(1);
    w.write_zip(&p).unwrap();
    let e = open_err(&p);
    assert!(e.contains("archive/data/1"), "{e}");
    // The same with a file torch wrote: drop one member of the fixture.
    let src = std::fs::File::open(refdir().join("checkpoints/dense_module_zip.pth")).unwrap();
    let mut za = zip::ZipArchive::new(src).unwrap();
    let mut zw = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..za.len() {
        let f = za.by_index_raw(i).unwrap();
        if f.name() != "dense_module_zip/data/3" {
            zw.raw_copy_file(f).unwrap();
        }
    }
    std::fs::write(&p, zw.finish().unwrap().into_inner()).unwrap();
    let e = open_err(&p);
    assert!(e.contains("dense_module_zip/data/3"), "{e}");
}

fn safetensors_bytes(header: &str, data_len: usize) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend(std::iter::repeat_n(0u8, data_len));
    b
}

#[test]
fn hostile_safetensors_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.safetensors");
    // Header length that overflows / exceeds the file.
    let mut b = u64::MAX.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    std::fs::write(&p, &b).unwrap();
    assert!(open_err(&p).contains("not a valid safetensors file"));
    let mut b = 1_000_000u64.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    std::fs::write(&p, &b).unwrap();
    assert!(open_err(&p).contains("not a valid safetensors file"));
    // Overlapping offsets.
    let h = r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#;
    std::fs::write(&p, safetensors_bytes(h, 24)).unwrap();
    let e = open_err(&p);
    assert!(e.contains("InvalidOffset"), "{e}");
    // Out of bounds.
    let h = r#"{"a":{"dtype":"F32","shape":[250],"data_offsets":[0,1000]}}"#;
    std::fs::write(&p, safetensors_bytes(h, 16)).unwrap();
    let e = open_err(&p);
    assert!(e.contains("not a valid safetensors file"), "{e}");
    // Shape that does not fit its byte range.
    let h = r#"{"a":{"dtype":"F32","shape":[5],"data_offsets":[0,16]}}"#;
    std::fs::write(&p, safetensors_bytes(h, 16)).unwrap();
    assert!(open_err(&p).contains("TensorInvalidInfo"));
    // Not a checkpoint at all / empty.
    std::fs::write(&p, b"hello world, not weights").unwrap();
    assert!(open_err(&p).contains("not a checkpoint"));
    std::fs::write(&p, b"").unwrap();
    assert!(open_err(&p).contains("empty"));
}

#[test]
fn pickle_bombs_are_cheap_or_refused() {
    use jukebox::checkpoint::pickle::parse;
    // A 1 MB string fetched from the memo 500k times: values are shared, not copied.
    let mut p = vec![0x80, 2, b'X'];
    p.extend_from_slice(&(1u32 << 20).to_le_bytes());
    p.extend(std::iter::repeat_n(b'a', 1 << 20));
    p.extend_from_slice(&[b'q', 0, b'(']);
    for _ in 0..500_000 {
        p.extend_from_slice(&[b'h', 0]);
    }
    p.extend_from_slice(b"l.");
    let t = std::time::Instant::now();
    let v = parse(&p).unwrap();
    assert_eq!(v.value.items().unwrap().len(), 500_000);
    assert!(t.elapsed().as_secs() < 10);
    // Lengths larger than the data are refused before allocating.
    for op in [b'X', b'B', 0x8d, 0x8e, 0x96, 0x8b] {
        let mut p = vec![0x80, 2, op];
        p.extend_from_slice(&[0xff; 8]);
        let e = format!("{:#}", parse(&p).unwrap_err());
        assert!(
            e.contains("truncated") || e.contains("exceeds") || e.contains("fit"),
            "{op:#x}: {e}"
        );
    }
    // Unknown opcodes, stack underflow, missing memo, MARK misuse, EXT and text persids.
    for bad in [
        &b"\x80\x02\xff."[..],
        b"\x80\x02.",
        b"\x80\x02h\x05.",
        b"\x80\x02(t0.",
        b"\x80\x02\x82\x01.",
        b"\x80\x02Pfoo\n.",
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
}

/// xorshift64: the mutation stream, fixed per seed.
fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown".into())
}

/// Open a mutated checkpoint (and load every tensor of whatever opens) under `catch_unwind`,
/// recording in `bad` every broken rule: a panic; an error with an empty message, or (for
/// `Store::open`) one that does not name the file; a tensor that loads with a
/// shape other than its entry's; and, when `intact` is given (a truncation keeps every byte it
/// keeps), a tensor whose values differ from the intact file's. Returns whether the open failed.
fn check_mutant(p: &Path, what: &str, intact: Option<&Store>, bad: &mut Vec<String>) -> bool {
    let opened = std::panic::catch_unwind(|| Store::open(p));
    let store = match opened {
        Err(x) => {
            bad.push(format!("{what}: Store::open panicked: {}", panic_text(x)));
            return true;
        }
        Ok(Err(e)) => {
            let m = format!("{e:#}");
            let file = p.file_name().unwrap().to_str().unwrap();
            let names_it = m.contains(file);
            if m.trim().is_empty() || !names_it {
                bad.push(format!("{what}: unclear error: {m:?}"));
            }
            return true;
        }
        Ok(Ok(s)) => s,
    };
    for (k, e) in &store.entries {
        match std::panic::catch_unwind(|| e.load(DType::F32, &Device::Cpu)) {
            Err(x) => bad.push(format!("{what}: loading `{k}` panicked: {}", panic_text(x))),
            Ok(Err(err)) => {
                if format!("{err}").trim().is_empty() {
                    bad.push(format!("{what}: loading `{k}`: empty error"));
                }
            }
            Ok(Ok(t)) => {
                if t.dims() != e.shape.as_slice() {
                    bad.push(format!(
                        "{what}: `{k}` loaded as {:?}, entry says {:?}",
                        t.dims(),
                        e.shape
                    ));
                }
                if let Some(good) = intact.and_then(|s| s.entries.get(k)) {
                    let want = good.load(DType::F32, &Device::Cpu).unwrap();
                    if good.shape == e.shape
                        && f32s(&want)
                            .iter()
                            .zip(f32s(&t))
                            .any(|(a, b)| a.to_bits() != b.to_bits())
                    {
                        bad.push(format!("{what}: `{k}` loaded with wrong values"));
                    }
                }
            }
        }
    }
    false
}

/// Offsets of every `sig` in `b`.
fn find_all(b: &[u8], sig: &[u8]) -> Vec<usize> {
    b.windows(sig.len())
        .enumerate()
        .filter(|(_, w)| *w == sig)
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn random_bytes_give_clear_errors() {
    // 200 seeds of random bytes, as each kind of checkpoint file and straight into the pickle
    // reader: always a clear error, never a panic.
    use jukebox::checkpoint::pickle::parse;
    let dir = tempfile::tempdir().unwrap();
    let mut bad = vec![];
    let mut refused = 0;
    for seed in 0..200u64 {
        let mut next = xorshift(0x2545f4914f6cdd1d ^ (seed * 0x9e3779b97f4a7c15 + 1));
        let n = (next() % 4096) as usize;
        let mut b: Vec<u8> = (0..n).map(|_| next() as u8).collect();
        // Start like each format half the time, so the parsers behind the sniffing run too.
        match (seed % 8, b.len()) {
            (0, 2..) => b[..2].copy_from_slice(&[0x80, 2]),
            (2, 4..) => b[..4].copy_from_slice(b"PK\x03\x04"),
            (4, 8..) => {
                let h = (next() % (n as u64 + 16)).to_le_bytes();
                b[..8].copy_from_slice(&h);
                if n > 9 {
                    b[8] = b'{';
                }
            }
            (6, 12..) => b[..12].copy_from_slice(b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8"),
            _ => {}
        }
        for ext in ["pth.tar", "pth", "safetensors"] {
            let p = dir.path().join(format!("rand{seed}.{ext}"));
            std::fs::write(&p, &b).unwrap();
            let what = format!("random seed {seed} as .{ext}");
            if check_mutant(&p, &what, None, &mut bad) {
                refused += 1;
            } else {
                bad.push(format!("{what}: random bytes opened as a checkpoint"));
            }
        }
        match std::panic::catch_unwind(|| parse(&b)) {
            Err(x) => bad.push(format!(
                "seed {seed}: pickle::parse panicked: {}",
                panic_text(x)
            )),
            Ok(Err(e)) if format!("{e:#}").trim().is_empty() => {
                bad.push(format!("seed {seed}: pickle::parse gave an empty error"))
            }
            _ => {}
        }
    }
    assert!(
        bad.is_empty(),
        "{} broken rules ({refused} of 600 files refused):\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn mutated_fixtures_give_clear_errors_or_correct_loads() {
    // Structured mutations of real checkpoints: truncation at many offsets (including every
    // signature boundary), byte flips in headers, corrupt zip local/central entries, corrupt
    // pickle opcodes, and wrong safetensors header lengths.
    let dir = tempfile::tempdir().unwrap();
    let st_path = dir.path().join("fixture.safetensors");
    {
        let dev = Device::Cpu;
        let mut m = std::collections::HashMap::new();
        m.insert(
            "a".to_string(),
            Tensor::arange(0f32, 96., &dev)
                .unwrap()
                .reshape((8, 12))
                .unwrap(),
        );
        m.insert(
            "b".to_string(),
            Tensor::arange(0f32, 7., &dev)
                .unwrap()
                .to_dtype(DType::F16)
                .unwrap(),
        );
        candle_core::safetensors::save(&m, &st_path).unwrap();
    }
    let ck = refdir().join("checkpoints");
    let files = [
        ck.join("dense_views.pth.tar"),
        ck.join("dense_module_zip.pth"),
        ck.join("hf_sharded/pytorch_model-00001-of-00002.bin"),
        st_path.clone(),
    ];
    let mut bad = vec![];
    let mut summary = vec![];
    for (fi, src) in files.iter().enumerate() {
        let orig = std::fs::read(src).unwrap();
        let intact = Store::open(src).unwrap();
        let name = src.file_name().unwrap().to_str().unwrap();
        let p = dir.path().join(format!("m_{name}"));
        let mut next = xorshift(0x9e3779b97f4a7c15 + fi as u64);
        let len = orig.len();
        let mut mutants: Vec<(String, Vec<u8>, bool)> = vec![];
        // Truncations: 60 random offsets, the first 64 bytes, and around every zip signature.
        let mut cuts: Vec<usize> = (0..60).map(|_| (next() as usize) % len).collect();
        cuts.extend(0..64.min(len));
        for sig in [&b"PK\x03\x04"[..], b"PK\x01\x02", b"PK\x05\x06"] {
            for at in find_all(&orig, sig) {
                cuts.extend([at, at + 2, at + 30]);
            }
        }
        cuts.retain(|&c| c < len);
        for c in cuts {
            mutants.push((format!("cut at {c}"), orig[..c].to_vec(), true));
        }
        // Header flips: 1-4 bytes in the first 512.
        for k in 0..60 {
            let mut b = orig.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % 512.min(len);
                b[at] ^= 1 + (next() % 255) as u8;
            }
            mutants.push((format!("header flip {k}"), b, false));
        }
        // Zip entries: corrupt fields of every local and central record.
        for sig in [&b"PK\x03\x04"[..], b"PK\x01\x02"] {
            for (k, at) in find_all(&orig, sig).into_iter().enumerate() {
                let mut b = orig.clone();
                let f = at + 4 + (next() as usize) % 42;
                if f < len {
                    b[f] ^= 0xff;
                    mutants.push((format!("zip record {k} byte {}", f - at), b, false));
                }
            }
        }
        // Pickle opcodes: in the first pickle (legacy) or data.pkl (zip), change opcodes to
        // other opcodes, to garbage, and lengths to huge values.
        let pk = if orig.starts_with(&[0x80]) {
            Some(0)
        } else {
            find_all(&orig, b"data.pkl").first().map(|&i| i + 8)
        };
        if let Some(start) = pk {
            let end = (start + 4000).min(len);
            for k in 0..80 {
                let mut b = orig.clone();
                let at = start + (next() as usize) % (end - start);
                b[at] = match k % 4 {
                    0 => b"(tq}h]X\x8a\x81R.sbceu"[(next() % 16) as usize],
                    1 => 0xff,
                    2 => next() as u8,
                    _ => {
                        for j in 1..5.min(len - at) {
                            b[at + j] = 0xff;
                        }
                        b[at]
                    }
                };
                mutants.push((format!("pickle byte {k} at {at}"), b, false));
            }
        }
        // Safetensors header length: off by one, zero, past the end, huge.
        if src == &st_path {
            let h = u64::from_le_bytes(orig[..8].try_into().unwrap());
            for v in [
                0,
                1,
                h - 1,
                h + 1,
                len as u64 - 8,
                len as u64,
                u64::MAX,
                1 << 40,
            ] {
                let mut b = orig.clone();
                b[..8].copy_from_slice(&v.to_le_bytes());
                mutants.push((format!("header length {v}"), b, false));
            }
        }
        let mut refused = 0;
        for (what, b, is_cut) in &mutants {
            std::fs::write(&p, b).unwrap();
            let what = format!("{name} {what}");
            if check_mutant(&p, &what, is_cut.then_some(&intact), &mut bad) {
                refused += 1;
            }
        }
        summary.push(format!(
            "{name}: {} mutants, {refused} refused at open",
            mutants.len()
        ));
    }
    eprintln!("{}", summary.join("\n"));
    assert!(
        bad.is_empty(),
        "{} broken rules:\n{}\n{}",
        bad.len(),
        bad.join("\n"),
        summary.join("\n")
    );
}

#[test]
fn zero_stride_view_cannot_request_a_huge_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("expand.pth.tar");
    let mut w = LegacyWriter::new();
    let s = w.add_storage(DType::F32, vec![0u8; 4]).unwrap();
    w.add_view("huge", s, 0, &[1 << 20, 1 << 20], &[0, 0])
        .unwrap();
    w.write_legacy(&p).unwrap();
    let e = open_err(&p);
    assert!(
        e.contains("`huge`") && e.contains("more elements than its storage"),
        "{e}"
    );
}
