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
fn corrupted_files_never_panic() {
    // Flip bytes and truncate the torch fixtures at many places: every outcome is Ok or a clean
    // error, and whatever opens can be fully materialised.
    for name in ["dense_views.pth.tar", "dense_module_zip.pth"] {
        let orig = std::fs::read(refdir().join("checkpoints").join(name)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        let mut state = 0x9e3779b97f4a7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..150 {
            let mut b = orig.clone();
            if i % 3 == 0 {
                b.truncate((next() as usize) % b.len());
            } else {
                // Corrupt inside the pickle region most of the time: that is where parsing happens.
                let span = if i % 2 == 0 {
                    7000.min(b.len())
                } else {
                    b.len()
                };
                for _ in 0..4 {
                    let at = (next() as usize) % span;
                    b[at] = next() as u8;
                }
            }
            std::fs::write(&p, &b).unwrap();
            if let Ok(s) = Store::open(&p) {
                for e in s.entries.values() {
                    let _ = e.load(DType::F32, &Device::Cpu);
                }
            }
        }
    }
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

#[test]
fn random_bytes_never_panic() {
    let mut state = 0x2545f4914f6cdd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..3000 {
        let n = (next() % 200) as usize;
        let mut b: Vec<u8> = (0..n).map(|_| next() as u8).collect();
        if i % 2 == 0 && !b.is_empty() {
            b[0] = 0x80; // look like a pickle
        }
        let _ = jukebox::checkpoint::pickle::parse(&b);
    }
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
