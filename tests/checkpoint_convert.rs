//! Model directories in every layout, `convert` round trips, and the inspect/convert CLI.

use candle_core::{DType, Device};
use jukebox::checkpoint::convert::convert;
use jukebox::checkpoint::writer::LegacyWriter;
use jukebox::checkpoint::{Component, Layout, ModelDir, Store};
use jukebox::config::JukeboxConfig;
use std::path::{Path, PathBuf};

fn refdir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference")
}

fn assert_bit_equal(a: &Store, b: &Store) {
    assert_eq!(
        a.entries.keys().collect::<Vec<_>>(),
        b.entries.keys().collect::<Vec<_>>()
    );
    for (k, e) in &a.entries {
        let f = b.get(k).unwrap();
        assert_eq!((e.dtype, &e.shape), (f.dtype, &f.shape), "{k}");
        assert_eq!(e.bytes().as_ref(), f.bytes().as_ref(), "{k}");
    }
}

/// Write the fixture model as official files (`vqvae.pth.tar`, `prior_level_N.pth.tar`).
fn write_official(dir: &Path, with_config: bool) -> ModelDir {
    let hf = ModelDir::open(&refdir().join("fixtures/model")).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    for c in [
        Component::Vqvae,
        Component::Prior(0),
        Component::Prior(1),
        Component::Prior(2),
    ] {
        let t = hf.component(c).unwrap();
        let mut w = LegacyWriter::new();
        for (official, key) in &t.map {
            let x = t.store.load(key, DType::F32, &Device::Cpu).unwrap();
            w.add_tensor(official, &x).unwrap();
        }
        let name = match c {
            Component::Vqvae => "vqvae.pth.tar".to_string(),
            Component::Prior(l) => format!("prior_level_{l}.pth.tar"),
        };
        w.write_legacy(&dir.join(name)).unwrap();
    }
    if with_config {
        std::fs::copy(
            refdir().join("fixtures/model/config.json"),
            dir.join("config.json"),
        )
        .unwrap();
    }
    hf
}

#[test]
fn hf_shards_convert_to_the_same_model() {
    let out = tempfile::tempdir().unwrap();
    let done = convert(&refdir().join("checkpoints/hf_sharded"), out.path(), None).unwrap();
    assert_eq!(done.n_tensors, 585);
    let a = Store::open(&out.path().join("model.safetensors")).unwrap();
    let b = Store::open(&refdir().join("fixtures/model/model.safetensors")).unwrap();
    assert_bit_equal(&a, &b);
    let m1 = ModelDir::open(out.path()).unwrap();
    let m2 = ModelDir::open(&refdir().join("fixtures/model")).unwrap();
    assert_eq!(m1.config, m2.config);
}

#[test]
fn official_layout_loads_and_converts_back_to_hf() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("official");
    let hf = write_official(&dir, true);
    let md = ModelDir::open(&dir).unwrap();
    assert!(matches!(md.layout, Layout::Official { preset: None, .. }));
    assert_eq!(md.config, hf.config);
    for c in [
        Component::Vqvae,
        Component::Prior(0),
        Component::Prior(1),
        Component::Prior(2),
    ] {
        let (a, b) = (md.component(c).unwrap(), hf.component(c).unwrap());
        assert_eq!(a.shapes(), b.shapes(), "{c}");
    }
    let k = md
        .vqvae_vb(DType::F32, &Device::Cpu)
        .unwrap()
        .get((64, 16), "bottleneck.level_blocks.1.k")
        .unwrap();
    let r = hf
        .vqvae_vb(DType::F32, &Device::Cpu)
        .unwrap()
        .get((64, 16), "bottleneck.level_blocks.1.k")
        .unwrap();
    assert_eq!(k.to_vec2::<f32>().unwrap(), r.to_vec2::<f32>().unwrap());
    // official → HF reproduces the reference HF file bit for bit.
    let out = tmp.path().join("hf");
    convert(&dir, &out, None).unwrap();
    let a = Store::open(&out.join("model.safetensors")).unwrap();
    let b = Store::open(&refdir().join("fixtures/model/model.safetensors")).unwrap();
    assert_bit_equal(&a, &b);
    // A component check against the HF table passes, and a wrong table lists the problems.
    let expected: Vec<(String, Vec<usize>)> = hf
        .component(Component::Prior(2))
        .unwrap()
        .shapes()
        .into_iter()
        .collect();
    md.check_component_against(Component::Prior(2), &expected)
        .unwrap();
    let mut wrong = expected.clone();
    wrong.retain(|(k, _)| k != "prior.x_out.weight");
    wrong.push(("prior.extra".into(), vec![1]));
    let e = format!(
        "{:#}",
        md.check_component_against(Component::Prior(2), &wrong)
            .unwrap_err()
    );
    assert!(
        e.contains("missing     prior.extra") && e.contains("unexpected  prior.x_out.weight"),
        "{e}"
    );
}

#[test]
fn preset_from_directory_name_and_official_cache_siblings() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    // ~/.cache/jukebox/models/{5b,5b_lyrics}: shared files under 5b/, the top prior beside.
    std::fs::create_dir_all(models.join("5b")).unwrap();
    std::fs::create_dir_all(models.join("5b_lyrics")).unwrap();
    let mut w = LegacyWriter::new();
    w.add_tensor(
        "bottleneck.level_blocks.0.k",
        &candle_core::Tensor::zeros((4, 2), DType::F32, &Device::Cpu).unwrap(),
    )
    .unwrap();
    w.write_legacy(&models.join("5b/vqvae.pth.tar")).unwrap();
    w.write_legacy(&models.join("5b_lyrics/prior_level_2.pth.tar"))
        .unwrap();
    let md = ModelDir::open(&models.join("5b_lyrics")).unwrap();
    assert_eq!(md.config, JukeboxConfig::preset("5b_lyrics").unwrap());
    match &md.layout {
        Layout::Official { preset, files } => {
            assert_eq!(preset.as_deref(), Some("5b_lyrics"));
            assert_eq!(
                files[0].as_deref(),
                Some(models.join("5b/vqvae.pth.tar").as_path())
            );
            assert!(files[1].is_none() && files[2].is_none());
            assert_eq!(
                files[3].as_deref(),
                Some(models.join("5b_lyrics/prior_level_2.pth.tar").as_path())
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(md
        .vqvae_vb(DType::F32, &Device::Cpu)
        .unwrap()
        .contains_tensor("bottleneck.level_blocks.0.k"));
    let e = format!(
        "{:#}",
        md.prior_vb(1, DType::F32, &Device::Cpu).err().unwrap()
    );
    assert!(e.contains("prior_level_1.pth.tar"), "{e}");
    // The top prior is never taken from ../5b/ (it differs per preset).
    let md5 = ModelDir::open(&models.join("5b")).unwrap();
    assert_eq!(md5.config, JukeboxConfig::preset("5b").unwrap());
    assert!(md5.prior_vb(2, DType::F32, &Device::Cpu).is_err());
    // A `preset` file names the preset in any directory; a wrong name lists the choices.
    let other = tmp.path().join("mine");
    std::fs::create_dir_all(&other).unwrap();
    w.write_legacy(&other.join("vqvae.pth.tar")).unwrap();
    std::fs::write(other.join("preset"), "1b_lyrics\n").unwrap();
    assert_eq!(
        ModelDir::open(&other).unwrap().config,
        JukeboxConfig::preset("1b_lyrics").unwrap()
    );
    std::fs::write(other.join("preset"), "2b\n").unwrap();
    let e = format!("{:#}", ModelDir::open(&other).err().unwrap());
    assert!(e.contains("`2b`") && e.contains("5b_lyrics"), "{e}");
    std::fs::remove_file(other.join("preset")).unwrap();
    let e = format!("{:#}", ModelDir::open(&other).err().unwrap());
    assert!(e.contains("preset"), "{e}");
}

#[test]
fn single_official_file_converts_to_official_safetensors() {
    let tmp = tempfile::tempdir().unwrap();
    let src = refdir().join("checkpoints/lyrics_5b_fp16.pth.tar");
    let done = convert(&src, tmp.path(), None).unwrap();
    assert_eq!(
        done.files,
        vec![tmp.path().join("lyrics_5b_fp16.safetensors")]
    );
    let a = Store::open(&done.files[0]).unwrap();
    let b = Store::open(&src).unwrap();
    assert_bit_equal(&a, &b);
    assert_eq!(a.metadata["jukebox.keys"], "official");
    // --dtype f32 upcasts the f16 weights exactly.
    let out = tmp.path().join("f32");
    let done = convert(&src, &out, Some(DType::F32)).unwrap();
    let c = Store::open(&done.files[0]).unwrap();
    let k = "prime_state_proj.w";
    assert_eq!(b.get(k).unwrap().dtype, DType::F16);
    assert_eq!(c.get(k).unwrap().dtype, DType::F32);
    let x = c
        .load(k, DType::F32, &Device::Cpu)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let y = b
        .load(k, DType::F32, &Device::Cpu)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(x, y);
    // An official-layout directory may hold converted safetensors files.
    let dir = tmp.path().join("1b_lyrics");
    std::fs::create_dir_all(&dir).unwrap();
    let done = convert(&refdir().join("checkpoints/lyrics_1b.pth.tar"), &dir, None).unwrap();
    std::fs::rename(&done.files[0], dir.join("prior_level_2.safetensors")).unwrap();
    let md = ModelDir::open(&dir).unwrap();
    let vb = md.prior_vb(2, DType::F32, &Device::Cpu).unwrap();
    assert!(vb.contains_tensor("prior.x_out.weight"));
}

fn jukebox(args: &[&str]) -> (bool, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_jukebox"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn cli_inspect_and_convert() {
    let r = refdir();
    let (ok, out) = jukebox(&["inspect", r.join("fixtures/model").to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(
        out.contains("full model, Hugging Face layout") && out.contains("tensors: 585"),
        "{out}"
    );
    assert!(
        out.contains("prior level 2") && out.contains("top prior, 5b style"),
        "{out}"
    );
    // --json: the same facts, machine-readable; keys only with --keys.
    let (ok, out) = jukebox(&[
        "inspect",
        "--json",
        r.join("fixtures/model").to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("inspect --json is JSON");
    assert_eq!(v["format"], "safetensors");
    assert!(
        v["kind"].as_str().unwrap().contains("Hugging Face layout"),
        "{v}"
    );
    let n: u64 = v["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["n_tensors"].as_u64().unwrap())
        .sum();
    assert_eq!(n, 585);
    assert!(v["keys"].as_array().unwrap().is_empty());
    let (ok, out) = jukebox(&[
        "inspect",
        "--json",
        "--keys",
        r.join("fixtures/model").to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["keys"].as_array().unwrap().len(), 585);
    let (ok, out) = jukebox(&[
        "inspect",
        "--keys",
        r.join("checkpoints/lyrics_1b.pth.tar").to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("legacy torch pickle") && out.contains("1b_lyrics style"),
        "{out}"
    );
    assert!(
        out.contains("tied weights counted once") && out.contains("prior.x_out.weight\tf32"),
        "{out}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("x.safetensors");
    std::fs::write(&bad, b"\xff\xff\xff\xff\xff\xff\xff\xff{}").unwrap();
    let (ok, out) = jukebox(&["inspect", bad.to_str().unwrap()]);
    assert!(
        !ok && out.contains("not a valid safetensors file") && !out.contains("panicked"),
        "{out}"
    );
    let o = tmp.path().join("out");
    let (ok, out) = jukebox(&[
        "convert",
        r.join("checkpoints/hf_sharded").to_str().unwrap(),
        "-o",
        o.to_str().unwrap(),
    ]);
    assert!(ok && out.contains("converted 585 tensors"), "{out}");
    assert!(o.join("config.json").is_file() && o.join("model.safetensors").is_file());
    let (ok, out) = jukebox(&[
        "convert",
        "--dtype",
        "f8",
        r.join("fixtures/model").to_str().unwrap(),
        "--out",
        "x",
    ]);
    assert!(!ok && out.contains("--dtype `f8`"), "{out}");
}
