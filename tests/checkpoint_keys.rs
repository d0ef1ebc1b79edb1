//! The HF ↔ official key map against the reference fixtures and the official key tables.

use candle_core::{DType, Device};
use jukebox::checkpoint::keys::{official_pattern, PRIOR_GRAMMAR, VQVAE_GRAMMAR};
use jukebox::checkpoint::{Component, KeyMap, ModelDir, Store};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

fn refdir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference")
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn fixture_hf_keys_map_bijectively_onto_official_grammar() {
    let manifest = json(&refdir().join("fixtures/manifest.json"));
    let weights = manifest["weights"].as_object().unwrap();
    assert_eq!(weights.len(), 585);
    let md = ModelDir::open(&refdir().join("fixtures/model")).unwrap();
    let km = &md.keymap;
    let mut seen = HashSet::new();
    let mut per_comp: HashMap<Component, usize> = HashMap::new();
    for hf in weights.keys() {
        let (c, off) = km
            .hf_to_official(hf)
            .unwrap_or_else(|e| panic!("{hf}: {e:#}"));
        assert!(
            official_pattern(c, &off).is_some(),
            "{hf} -> {off} breaks the official grammar"
        );
        assert_eq!(
            &km.official_to_hf(c, &off).unwrap(),
            hf,
            "round trip of {off}"
        );
        assert!(
            seen.insert((c, off.clone())),
            "two HF keys map to {c} {off}"
        );
        *per_comp.entry(c).or_default() += 1;
    }
    // HF priors.0 is the top: official level 2 holds the timing tables and no conditioner.
    let top = md.component(Component::Prior(2)).unwrap();
    assert!(top.map.contains_key("y_emb.total_length_emb.emb.weight"));
    assert!(!top.map.keys().any(|k| k.starts_with("conditioner_blocks")));
    let bottom = md.component(Component::Prior(0)).unwrap();
    assert_eq!(
        bottom.map["conditioner_blocks.0.x_emb.weight"],
        "priors.2.conditioner_blocks.embed_tokens.weight"
    );
    let total: usize = [
        Component::Vqvae,
        Component::Prior(0),
        Component::Prior(1),
        Component::Prior(2),
    ]
    .iter()
    .map(|&c| {
        let t = md.component(c).unwrap();
        assert!(t.unmapped.is_empty(), "{c}: {:?}", t.unmapped);
        assert_eq!(t.map.len(), per_comp[&c]);
        t.map.len()
    })
    .sum();
    assert_eq!(total, 585);
}

fn official_tables() -> Vec<(String, Component, serde_json::Value)> {
    let ix = json(&refdir().join("official-keys/index.json"));
    ix.as_object()
        .unwrap()
        .keys()
        .map(|name| {
            let c = if name == "vqvae" {
                Component::Vqvae
            } else {
                Component::Prior(name.rsplit('_').next().unwrap().parse().unwrap())
            };
            (
                name.clone(),
                c,
                json(&refdir().join(format!("official-keys/{name}.json"))),
            )
        })
        .collect()
}

#[test]
fn official_tables_follow_the_grammar_and_round_trip() {
    let km = KeyMap {
        n_priors: 3,
        downs_t: vec![3, 2, 2],
    };
    let mut used = BTreeSet::new();
    let tables = official_tables();
    assert_eq!(tables.len(), 6);
    for (name, c, t) in tables {
        let tensors = t["tensors"].as_array().unwrap();
        assert_eq!(
            tensors.len() as u64,
            t["entries"].as_u64().unwrap(),
            "{name}"
        );
        let mut hf_seen = HashSet::new();
        for e in tensors {
            let k = e["key"].as_str().unwrap();
            let p = official_pattern(c, k)
                .unwrap_or_else(|| panic!("{name}: {k} matches no grammar rule"));
            used.insert(p);
            let hf = km
                .official_to_hf(c, k)
                .unwrap_or_else(|e| panic!("{name}: {k}: {e:#}"));
            assert_eq!(
                km.hf_to_official(&hf).unwrap(),
                (c, k.to_string()),
                "{name}: {k} -> {hf}"
            );
            assert!(hf_seen.insert(hf.clone()), "{name}: two keys map to {hf}");
        }
    }
    // Every grammar rule is exercised by the official tables (the grammar is not wider than needed).
    for p in VQVAE_GRAMMAR.iter().chain(PRIOR_GRAMMAR) {
        assert!(used.contains(p), "grammar rule {p} matches no official key");
    }
}

#[test]
fn official_lyrics_fixture_keys_round_trip() {
    let km = KeyMap {
        n_priors: 3,
        downs_t: vec![3, 2, 2],
    };
    for f in ["model_lyrics_1b", "model_lyrics_5b", "model_dense"] {
        let s = Store::open(&refdir().join(format!("fixtures-lyrics/{f}.safetensors"))).unwrap();
        assert!(s.len() > 40);
        for k in s.entries.keys() {
            let c = Component::Prior(2);
            assert!(official_pattern(c, k).is_some(), "{f}: {k}");
            let hf = km.official_to_hf(c, k).unwrap();
            assert_eq!(km.hf_to_official(&hf).unwrap().1, *k);
        }
    }
}

#[test]
fn model_dir_var_builders_use_official_keys() {
    let md = ModelDir::open(&refdir().join("fixtures/model")).unwrap();
    let raw = Store::open(&refdir().join("fixtures/model/model.safetensors")).unwrap();
    let dev = Device::Cpu;
    let vb = md.prior_vb(2, DType::F32, &dev).unwrap();
    let a = vb.get((64, 64), "prior.x_emb.weight").unwrap();
    let b = raw
        .load("priors.0.prior.embed_tokens.weight", DType::F32, &dev)
        .unwrap();
    assert_eq!(a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());
    // Conversion on load.
    let h = md
        .prior_vb(2, DType::F16, &dev)
        .unwrap()
        .get((64, 64), "prior.x_emb.weight")
        .unwrap();
    assert_eq!(h.dtype(), DType::F16);
    let w = md.prior_vb(0, DType::F32, &dev).unwrap();
    assert!(w.contains_tensor("conditioner_blocks.0.cond.model.1.0.blocks.0.model.1.weight"));
    let vq = md.vqvae_vb(DType::F32, &dev).unwrap();
    assert!(vq.contains_tensor("encoders.0.level_blocks.0.model.0.0.weight"));
    assert!(vq.contains_tensor("encoders.0.level_blocks.0.model.3.weight"));
    // A shape mismatch names the key, both shapes and the file.
    let e = vb
        .get((64, 63), "prior.x_emb.weight")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("prior.x_emb.weight") && e.contains("[64, 64]") && e.contains("[64, 63]"),
        "{e}"
    );
    assert!(e.contains("model.safetensors"), "{e}");
    let e = vb.get(3, "prior.nope").unwrap_err().to_string();
    assert!(e.contains("prior.nope"), "{e}");
    assert!(md.prior_vb(3, DType::F32, &dev).is_err());
}
