//! VQ-VAE: official keys, chunked = unchunked, quantiser rules, codes files, gradients.

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use jukebox::config::VqvaeConfig;
use jukebox::vqvae::{self, bottleneck, VqVae};

fn tiny_cfg() -> VqvaeConfig {
    VqvaeConfig {
        emb_width: 8,
        l_bins: 16,
        width: 8,
        depth: 2,
        ..VqvaeConfig::official()
    }
}

fn rand_vec(seed: u64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (2.0 * jukebox::util::uniform(seed, 3, 0, i as u64) - 1.0) as f32)
        .collect()
}

/// A random model. `VarMap` draws from candle's RNG, so re-seed every tensor deterministically.
fn random_model(cfg: &VqvaeConfig, dt: DType) -> (VarMap, VqVae) {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, dt, &Device::Cpu);
    let _ = VqVae::new(cfg, vb.clone()).expect("build");
    {
        let data = vm.data().lock().expect("lock");
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for (i, name) in names.into_iter().enumerate() {
            let v = &data[name];
            let scale = if name.ends_with(".k") { 1.0 } else { 0.5 };
            let t = Tensor::from_vec(
                rand_vec(1000 + i as u64, v.elem_count()),
                v.dims(),
                &Device::Cpu,
            )
            .and_then(|t| (t * scale)?.to_dtype(dt))
            .expect("init");
            v.set(&t).expect("set");
        }
    }
    let m = VqVae::new(cfg, vb).expect("rebuild");
    (vm, m)
}

fn audio(n: usize, t: usize, seed: u64) -> Tensor {
    Tensor::from_vec(rand_vec(seed, n * t), (n, t), &Device::Cpu).expect("audio")
}

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .and_then(|t| {
            t.abs()?
                .flatten_all()?
                .max(0)?
                .to_dtype(DType::F32)?
                .to_scalar::<f32>()
        })
        .expect("diff")
}

#[test]
fn official_config_builds_exactly_the_official_keys() {
    let text = std::fs::read_to_string("tests/fixtures/reference/official-keys/vqvae.json")
        .expect("keys file");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    let want: Vec<(String, Vec<usize>)> = v["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .map(|e| {
            let shape = e["shape"]
                .as_array()
                .expect("shape")
                .iter()
                .map(|d| d.as_u64().expect("dim") as usize);
            (e["key"].as_str().expect("key").to_string(), shape.collect())
        })
        .collect();
    assert_eq!(want.len(), 669);
    let vm = VarMap::new();
    let _m = VqVae::new(
        &VqvaeConfig::official(),
        VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
    )
    .expect("build");
    let data = vm.data().lock().expect("lock");
    let mut got: Vec<(String, Vec<usize>)> = data
        .iter()
        .map(|(k, v)| (k.clone(), v.dims().to_vec()))
        .collect();
    got.sort();
    let mut want = want;
    want.sort();
    assert_eq!(got, want);
    let elements: usize = got.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
    assert_eq!(elements, 1_878_979);
}

#[test]
fn decoder_dilations_are_reversed_and_receptive_fields_cover_official_sizes() {
    let vm = VarMap::new();
    let m = VqVae::new(
        &VqvaeConfig::official(),
        VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
    )
    .expect("build");
    let enc = m.encoder(0).expect("enc");
    let dil: Vec<usize> = enc.level_blocks[0].downs[0]
        .1
        .blocks
        .iter()
        .map(|b| b.dilation)
        .collect();
    assert_eq!(dil, vec![1, 3, 9, 27, 81, 243, 729, 2187]);
    let dec = m.decoder(0).expect("dec");
    let dil: Vec<usize> = dec.level_blocks[0].ups[0]
        .0
        .blocks
        .iter()
        .map(|b| b.dilation)
        .collect();
    assert_eq!(dil, vec![2187, 729, 243, 81, 27, 9, 3, 1]);
    // Level 0 encoder reaches 3280 positions per resnet at strides 2, 4, 8 (+ the convs).
    assert!(
        enc.radius >= 3280 * (2 + 4 + 8),
        "encoder radius {}",
        enc.radius
    );
    assert!(
        enc.radius < 50_000,
        "encoder radius {} is needlessly large",
        enc.radius
    );
    assert!(dec.radius_tokens * 8 >= 3280 * (8 + 4 + 2));
    assert_eq!(m.decoder(2).expect("dec").level_blocks.len(), 3);
    assert!(m.encoder(3).is_err());
}

#[test]
fn shapes_and_hops() {
    let cfg = tiny_cfg();
    let (_vm, m) = random_model(&cfg, DType::F32);
    let x = audio(2, 1024, 1);
    for (l, hop) in [(0, 8), (1, 32), (2, 128)] {
        let z = m.encode_latent(&x, l).expect("latent");
        assert_eq!(z.dims(), &[2, 8, 1024 / hop]);
        let c = m.encode(&x, l).expect("codes");
        assert_eq!(c.dims(), &[2, 1024 / hop]);
        assert_eq!(c.dtype(), DType::U32);
        let y = m.decode(&c, l).expect("decode");
        assert_eq!(y.dims(), &[2, 1024]);
        let v: Vec<f32> = y.flatten_all().and_then(|t| t.to_vec1()).expect("vec");
        assert!(v.iter().all(|s| s.is_finite()));
    }
    assert_eq!(m.encode_all(&x).expect("all").len(), 3);
    // Length must be a multiple of the hop.
    assert!(m.encode(&audio(1, 1000, 2), 2).is_err());
    assert!(m.encode(&audio(1, 1000, 2), 0).is_ok());
}

#[test]
fn chunked_encode_and_decode_equal_unchunked() {
    chunked_equals_unchunked(&tiny_cfg());
}

/// With the encoders' anti-aliasing blur (our own models' option) the chunked pass still
/// equals the whole one (the blur widens the receptive field the chunk margins cover), the
/// codes have the same lengths, and they differ from the unblurred model's.
#[test]
fn antialiased_encoder_chunks_like_the_plain_one() {
    let cfg = VqvaeConfig {
        antialias: true,
        ..tiny_cfg()
    };
    chunked_equals_unchunked(&cfg);
    let (_vm, a) = random_model(&cfg, DType::F32);
    let (_vm2, p) = random_model(&tiny_cfg(), DType::F32);
    let x = audio(2, 128 * 8, 3);
    for l in 0..3 {
        let za = a.encode_latent_chunked(&x, l, 1 << 20).expect("a");
        let zp = p.encode_latent_chunked(&x, l, 1 << 20).expect("p");
        assert_eq!(za.dims(), zp.dims(), "level {l}");
        assert!(
            max_abs(&za, &zp) > 1e-3,
            "level {l}: the blur changed nothing"
        );
    }
    assert!(
        a.encoder(2).unwrap().radius > p.encoder(2).unwrap().radius,
        "the blur must widen the receptive field"
    );
}

fn chunked_equals_unchunked(cfg: &VqvaeConfig) {
    let cfg = cfg.clone();
    let (_vm, m) = random_model(&cfg, DType::F32);
    let t = 128 * 40;
    let x = audio(2, t, 5);
    for l in 0..3 {
        let hop = m.hop_length(l);
        // Inference weights (detached), as the chunked pass uses: both sides then take the
        // same conv kernels and the comparison isolates chunking.
        let enc = m.encoder(l).expect("enc").detach();
        // Unchunked reference: the encoder on the whole input at once.
        let full = enc.forward(&x.unsqueeze(1).expect("unsq")).expect("full");
        let chunk = 4 * hop; // far below the radius: many chunks, each with margins
        let z = m
            .encode_latent_chunked(&x, l, chunk)
            .expect("chunked latent");
        let err = max_abs(&z, &full);
        assert!(err < 1e-5, "level {l}: chunked latent differs by {err:e}");
        let c_full = bottleneck::quantise(&full, m.codebook(l).expect("k")).expect("q");
        let c = m.encode_chunked(&x, l, chunk).expect("chunked codes");
        assert_eq!(
            c.to_vec2::<u32>().expect("c"),
            c_full.to_vec2::<u32>().expect("c")
        );
        // Decode: whole vs chunked with a tiny chunk.
        let dec = m.decoder(l).expect("dec").detach();
        let y_full = dec
            .forward(
                &bottleneck::dequantise(&c_full, &m.codebook(l).expect("k").detach()).expect("dq"),
            )
            .and_then(|y| y.squeeze(1))
            .expect("full decode");
        let y = m
            .decode_chunked(&c_full, l, 2 * hop)
            .expect("chunked decode");
        let err = max_abs(&y, &y_full);
        assert!(err < 1e-4, "level {l}: chunked decode differs by {err:e}");
    }
}

/// A batch whose rows share a long prefix decodes the prefix once and equals the plain decode;
/// rows without a common prefix take the plain path, bit for bit.
#[test]
fn shared_prefix_decode_equals_the_plain_decode() {
    let (_vm, m) = random_model(&tiny_cfg(), DType::F32);
    for l in 0..3 {
        let r = m.decoder(l).expect("dec").radius_tokens;
        let (n, t, shared) = (3, 12 * r + 7, 10 * r);
        let v: Vec<u32> = (0..n * t)
            .map(|i| {
                let (row, j) = (i / t, i % t);
                let salt = if j < shared { 0 } else { row * 7 };
                ((j * 5 + salt + j / 3) % 16) as u32
            })
            .collect();
        let codes = Tensor::from_vec(v, (n, t), &Device::Cpu).expect("codes");
        let plain = m.decode(&codes, l).expect("plain");
        let fast = m.decode_shared_prefix(&codes, l).expect("shared");
        assert_eq!(fast.dims(), plain.dims());
        let err = max_abs(&fast, &plain);
        assert!(
            err < 1e-5,
            "level {l}: shared-prefix decode differs by {err:e}"
        );
        // The rows really differ after the prefix (the test would not see a wrong splice
        // otherwise), and one row alone, or rows differing from the start, take the plain path.
        let tail = |y: &Tensor, i: usize| {
            y.get(i)
                .expect("row")
                .narrow(0, shared * m.hop_length(l), 8)
                .expect("tail")
                .to_vec1::<f32>()
                .expect("v")
        };
        assert_ne!(tail(&plain, 0), tail(&plain, 1));
        let one = codes.narrow(0, 1, 1).expect("row");
        assert_eq!(
            m.decode_shared_prefix(&one, l)
                .expect("one")
                .to_vec2::<f32>()
                .expect("v"),
            m.decode(&one, l).expect("one").to_vec2::<f32>().expect("v")
        );
    }
}

#[test]
fn quantiser_uses_expanded_distance_and_first_index_on_ties() {
    // Codes 1 and 3 are equal: the first must win. Code 0 is far.
    let k = Tensor::new(&[[5f32, 5.], [1., 0.], [0., 2.], [1., 0.]], &Device::Cpu).expect("k");
    let x = Tensor::new(&[[0.9f32, 0.1], [0.1, 1.9], [4., 4.]], &Device::Cpu).expect("x");
    let (codes, margin) = bottleneck::nearest_codes(&x, &k).expect("nearest");
    assert_eq!(codes, vec![1, 2, 0]);
    assert_eq!(margin[0], 0.0, "tie gives zero margin");
    assert!(margin[1] > 1.0);
    // Against a brute-force search on random data with many rows (crosses row blocks).
    let (rows, w, bins) = (5000, 6, 37);
    let xv = rand_vec(11, rows * w);
    let kv = rand_vec(12, bins * w);
    let x = Tensor::from_vec(xv.clone(), (rows, w), &Device::Cpu).expect("x");
    let k = Tensor::from_vec(kv.clone(), (bins, w), &Device::Cpu).expect("k");
    let (codes, _) = bottleneck::nearest_codes(&x, &k).expect("nearest");
    for r in 0..rows {
        let mut best = (f64::INFINITY, 0);
        for j in 0..bins {
            let d: f64 = (0..w)
                .map(|c| (xv[r * w + c] as f64 - kv[j * w + c] as f64).powi(2))
                .sum();
            if d < best.0 {
                best = (d, j);
            }
        }
        assert_eq!(codes[r] as usize, best.1, "row {r}");
    }
}

#[test]
fn dequantise_rejects_out_of_range_codes() {
    let cfg = tiny_cfg();
    let (_vm, m) = random_model(&cfg, DType::F32);
    let bad = Tensor::new(&[[0u32, 16]], &Device::Cpu).expect("codes");
    let e = m.decode(&bad, 0).expect_err("code 16 of 16 bins");
    assert!(format!("{e}").contains("[0, 16)"), "{e}");
    let neg = Tensor::new(&[[0i64, -1]], &Device::Cpu).expect("codes");
    assert!(m.decode(&neg, 0).is_err());
    let ok = Tensor::new(&[[0i64, 15]], &Device::Cpu).expect("codes");
    assert_eq!(m.decode(&ok, 0).expect("decode").dims(), &[1, 16]);
}

#[test]
fn codes_file_round_trip() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("codes.safetensors");
    let c0 = Tensor::new(&[[1u32, 2, 3, 4], [5, 6, 7, 2047]], &Device::Cpu).expect("c0");
    let c2 = Tensor::new(&[[9u32], [10]], &Device::Cpu).expect("c2");
    vqvae::save_codes(
        &p,
        &[Some(c0.clone()), None, Some(c2.clone())],
        44100,
        &[8, 32, 128],
    )
    .expect("save");
    let codes = vqvae::load_codes(&p).expect("load");
    assert_eq!(codes.sample_rate, 44100);
    assert_eq!(codes.hop_lengths, vec![8, 32, 128]);
    assert_eq!(
        codes.level(0).expect("l0").to_vec2::<u32>().expect("v"),
        c0.to_vec2::<u32>().expect("v")
    );
    assert_eq!(
        codes.level(2).expect("l2").to_vec2::<u32>().expect("v"),
        c2.to_vec2::<u32>().expect("v")
    );
    let e = codes.level(1).expect_err("no level 1");
    assert!(format!("{e}").contains("[0, 2]"), "{e}");
    // Stored as int64, as docs/CONVENTIONS.md ("Codes files") requires.
    let bytes = std::fs::read(&p).expect("read");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("st");
    assert_eq!(
        st.tensor("level_0").expect("t").dtype(),
        safetensors::Dtype::I64
    );
    // Garbage is an error naming the file.
    let g = dir.path().join("junk.safetensors");
    std::fs::write(&g, b"not a safetensors file").expect("write");
    let e = vqvae::load_codes(&g).expect_err("junk");
    assert!(format!("{e:#}").contains("junk.safetensors"), "{e:#}");
    assert!(vqvae::save_codes(&p, &[None, None], 44100, &[8]).is_err());
}

#[test]
fn every_parameter_receives_a_gradient() {
    let cfg = tiny_cfg();
    let (vm, m) = random_model(&cfg, DType::F32);
    let x = audio(2, 256, 9).unsqueeze(1).expect("x");
    let mut loss = Tensor::zeros((), DType::F32, &Device::Cpu).expect("zero");
    for l in 0..3 {
        let z = m.encoder(l).expect("enc").forward(&x).expect("enc fwd");
        // Straight-through: decoder sees z + (dequantised − z).detach(), codebook via lookup.
        let (codes, _) = m.quantise(&z, l).expect("q");
        let zq = m.dequantise(&codes, l).expect("dq");
        let st = (&z + (&zq - &z).expect("sub").detach()).expect("st");
        let y = m.decoder(l).expect("dec").forward(&st).expect("dec fwd");
        let rec = (y - &x).and_then(|d| d.sqr()?.mean_all()).expect("rec");
        let commit = (&z - zq.detach())
            .and_then(|d| d.sqr()?.mean_all())
            .expect("commit");
        let cb = (zq - z.detach())
            .and_then(|d| d.sqr()?.mean_all())
            .expect("cb");
        loss = (loss + rec + commit + cb).expect("sum");
    }
    let grads = loss.backward().expect("backward");
    let data = vm.data().lock().expect("lock");
    let mut missing = vec![];
    for (name, v) in data.iter() {
        match grads.get(v.as_tensor()) {
            Some(g) => {
                let s = g
                    .abs()
                    .and_then(|a| a.sum_all()?.to_scalar::<f32>())
                    .expect("sum");
                if s.is_nan() || s <= 0.0 {
                    missing.push(format!("{name} (zero)"));
                }
            }
            None => missing.push(name.clone()),
        }
    }
    assert!(
        missing.is_empty(),
        "parameters without gradient: {missing:?}"
    );
}

#[test]
fn resnet_and_level_blocks_finite_difference_f64() {
    // Whole level-1 encoder + decoder in f64: check a sample of weight gradients numerically.
    let cfg = VqvaeConfig {
        emb_width: 3,
        l_bins: 4,
        width: 3,
        depth: 2,
        ..VqvaeConfig::official()
    };
    let (vm, m) = random_model(&cfg, DType::F64);
    let x = audio(2, 64, 4)
        .to_dtype(DType::F64)
        .and_then(|t| t.unsqueeze(1))
        .expect("x");
    let f = |m: &VqVae| -> Tensor {
        let z = m.encoder(1).expect("e").forward(&x).expect("enc");
        let y = m.decoder(1).expect("d").forward(&z).expect("dec");
        y.sqr().and_then(|t| t.sum_all()).expect("loss")
    };
    let loss = f(&m);
    let grads = loss.backward().expect("backward");
    let data = vm.data().lock().expect("lock");
    let names = [
        "encoders.1.level_blocks.0.model.0.0.weight",
        "encoders.1.level_blocks.1.model.1.1.model.1.model.1.weight",
        "encoders.1.level_blocks.1.model.2.bias",
        "decoders.1.level_blocks.1.model.2.1.weight",
        "decoders.1.level_blocks.0.model.1.0.model.0.model.3.weight",
        "decoders.1.out.weight",
    ];
    let mut max_err = 0f64;
    for name in names {
        let v: &Var = data.get(name).unwrap_or_else(|| panic!("no var {name}"));
        let g: Vec<f64> = grads
            .get(v.as_tensor())
            .expect("grad")
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("g");
        let base: Vec<f64> = v
            .as_tensor()
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("base");
        for e in [0, base.len() / 2, base.len() - 1] {
            let probe = |d: f64| {
                let mut b = base.clone();
                b[e] += d;
                v.set(&Tensor::from_vec(b, v.dims(), &Device::Cpu).expect("t"))
                    .expect("set");
                let r = f(&m).to_scalar::<f64>().expect("s");
                v.set(&Tensor::from_vec(base.clone(), v.dims(), &Device::Cpu).expect("t"))
                    .expect("reset");
                r
            };
            let num = (probe(1e-6) - probe(-1e-6)) / 2e-6;
            let err = (num - g[e]).abs() / (1.0 + g[e].abs());
            max_err = max_err.max(err);
        }
    }
    assert!(max_err < 1e-5, "VQ-VAE finite-difference error {max_err:e}");
}
