//! Checkpoint containers written by torch (tests/fixtures/reference/checkpoints): each file must
//! equal its source safetensors bit for bit (float16 entries: the source rounded to f16).

use candle_core::{DType, Device};
use jukebox::checkpoint::{Format, ModelDir, Store};
use std::path::{Path, PathBuf};

fn refdir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference")
}

fn index() -> serde_json::Value {
    let t = std::fs::read_to_string(refdir().join("checkpoints/index.json")).unwrap();
    serde_json::from_str(&t).unwrap()
}

/// Compare every tensor of `got` with `want` bit for bit, after rounding `want` to f16 for
/// keys stored as f16.
fn assert_same(got: &Store, want: &Store, f16_keys: &[String]) {
    assert_eq!(got.len(), want.len(), "{}: entry count", got.path.display());
    for (k, w) in &want.entries {
        let g = got
            .get(k)
            .unwrap_or_else(|| panic!("{}: missing {k}", got.path.display()));
        assert_eq!(g.shape, w.shape, "{k}");
        let wt = w.load_raw(&Device::Cpu).unwrap();
        let gt = g.load_raw(&Device::Cpu).unwrap();
        if f16_keys.contains(k) {
            assert_eq!(g.dtype, DType::F16, "{k} should be stored as f16");
            let wt = wt.to_dtype(DType::F16).unwrap();
            let a: Vec<u16> = wt
                .flatten_all()
                .unwrap()
                .to_vec1::<half::f16>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect();
            let b: Vec<u16> = gt
                .flatten_all()
                .unwrap()
                .to_vec1::<half::f16>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect();
            assert_eq!(a, b, "{k}");
        } else {
            assert_eq!(g.dtype, w.dtype, "{k}");
            assert_eq!(g.bytes().as_ref(), w.bytes().as_ref(), "{k}: bytes differ");
        }
    }
}

#[test]
fn torch_files_equal_their_sources() {
    let ix = index();
    let mut n = 0;
    for (name, spec) in ix.as_object().unwrap() {
        let Some(src) = spec.get("source").and_then(|s| s.as_str()) else {
            continue;
        };
        let want = Store::open(&refdir().join(src)).unwrap();
        let got = Store::open(&refdir().join("checkpoints").join(name)).unwrap();
        let f16: Vec<String> = spec
            .get("float16_keys")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        assert_eq!(
            got.len(),
            spec["entries"].as_u64().unwrap() as usize,
            "{name}"
        );
        let fmt = if name.ends_with('/') {
            Format::TorchZip
        } else if spec["container"] == "legacy" {
            Format::TorchLegacy
        } else {
            Format::TorchZip
        };
        assert_eq!(got.format, fmt, "{name}");
        assert_same(&got, &want, &f16);
        n += 1;
    }
    assert_eq!(n, 5);
}

#[test]
fn legacy_tied_tensors_share_one_storage() {
    let s = Store::open(&refdir().join("checkpoints/lyrics_1b.pth.tar")).unwrap();
    let a = s.get("prior.x_out.weight").unwrap();
    let b = s.get("prior.x_emb.weight").unwrap();
    assert_eq!(a.storage_id, b.storage_id);
    assert!(s.n_elements_unique() < s.n_elements());
    assert_eq!(s.n_elements() - s.n_elements_unique(), a.numel());
    // `hps` and `step` are read for display; numpy scalars in the metrics are inert.
    assert_eq!(s.metadata["step"], "1234");
    assert_eq!(s.metadata["hps.name"], "fixture");
}

#[test]
fn legacy_views_are_materialised() {
    let s = Store::open(&refdir().join("checkpoints/dense_views.pth.tar")).unwrap();
    let w = s
        .get("prior.transformer._attn_mods.0.attn.c_attn.w")
        .unwrap();
    assert!(
        !w.is_contiguous(),
        "the fixture stores this weight transposed"
    );
}

#[test]
fn sharded_hf_model_opens_as_model_dir() {
    let md = ModelDir::open(&refdir().join("checkpoints/hf_sharded")).unwrap();
    let st = ModelDir::open(&refdir().join("fixtures/model")).unwrap();
    let a = md
        .vqvae_vb(DType::F32, &Device::Cpu)
        .unwrap()
        .get((64, 16), "bottleneck.level_blocks.0.k")
        .unwrap();
    let b = st
        .vqvae_vb(DType::F32, &Device::Cpu)
        .unwrap()
        .get((64, 16), "bottleneck.level_blocks.0.k")
        .unwrap();
    let d = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(d, 0.0);
}
