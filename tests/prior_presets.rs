//! Every official preset builds shape-only (no allocation) with exactly the official keys and
//! shapes of `official-keys/`.

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use jukebox::config::PriorConfig;
use jukebox::prior::Prior;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Records every requested key and hands back a zero-stride view: nothing is allocated.
#[derive(Default)]
struct Recorder(Mutex<BTreeMap<String, Vec<usize>>>);

impl SimpleBackend for Recorder {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        self.0
            .lock()
            .unwrap()
            .insert(name.to_string(), s.dims().to_vec());
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }
    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        candle_core::bail!("get_unchecked({name}) not supported by the recorder")
    }
    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

fn official(name: &str) -> BTreeMap<String, Vec<usize>> {
    let p = format!(
        "{}/tests/fixtures/reference/official-keys/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let shape = t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect();
            (t["key"].as_str().unwrap().to_string(), shape)
        })
        .collect()
}

fn check(cfg: PriorConfig, table: &str, entries: usize, elements: u64) {
    let rec = std::sync::Arc::new(Recorder::default());
    struct Shared(std::sync::Arc<Recorder>);
    impl SimpleBackend for Shared {
        fn get(
            &self,
            s: Shape,
            n: &str,
            h: candle_nn::Init,
            d: DType,
            dev: &Device,
        ) -> Result<Tensor> {
            self.0.get(s, n, h, d, dev)
        }
        fn get_unchecked(&self, n: &str, d: DType, dev: &Device) -> Result<Tensor> {
            self.0.get_unchecked(n, d, dev)
        }
        fn contains_tensor(&self, n: &str) -> bool {
            self.0.contains_tensor(n)
        }
    }
    let vb = VarBuilder::from_backend(Box::new(Shared(rec.clone())), DType::F32, Device::Cpu);
    let prior = Prior::new(&cfg, vb).unwrap();
    assert_eq!(prior.transformer.layers.len(), cfg.depth);
    let got = rec.0.lock().unwrap().clone();
    let want = official(table);
    let missing: Vec<_> = want
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<_> = got
        .keys()
        .filter(|k| !want.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{table}: missing {missing:?}, extra {extra:?}"
    );
    for (k, s) in &want {
        assert_eq!(&got[k], s, "{table}: shape of {k}");
    }
    assert_eq!(got.len(), entries, "{table}: entries");
    // Tied x_out counts once.
    let tied = !cfg.merged_decoder;
    let total: u64 = got
        .iter()
        .filter(|(k, _)| !(tied && k.as_str() == "prior.x_out.weight"))
        .map(|(_, s)| s.iter().product::<usize>() as u64)
        .sum();
    assert_eq!(total, elements, "{table}: parameter count");
}

#[test]
fn upsampler_presets_match_official_keys() {
    check(
        PriorConfig::official_upsampler(0),
        "5b_prior_level_0",
        1006,
        981_298_176,
    );
    check(
        PriorConfig::official_upsampler(1),
        "5b_prior_level_1",
        1006,
        981_298_176,
    );
}

#[test]
fn top_presets_match_official_keys() {
    check(
        PriorConfig::official_5b(),
        "5b_prior_level_2",
        872,
        5_060_452_800,
    );
    check(
        PriorConfig::official_5b_lyrics(),
        "5b_lyrics_prior_level_2",
        1194,
        5_640_506_800,
    );
    check(
        PriorConfig::official_1b_lyrics(),
        "1b_lyrics_prior_level_2",
        872,
        942_643_200,
    );
}
