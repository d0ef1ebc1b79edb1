//! KV-cached sampling equals teacher forcing, for every attention type (0, 1, 2, 3, 6, 7),
//! chunked prefill at several chunk sizes equals one pass, and an item's samples do not depend
//! on what it is batched with.

mod prior_support;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use jukebox::config::{LyricsConfig, PriorConfig};
use jukebox::prior::{self, AttnKind, Prior, SampleOpts};
use prior_support::{labels, max_diff, small_conditioner};
use std::collections::BTreeSet;

fn base(attn_order: usize, depth: usize, n_ctx: usize, blocks: Option<usize>) -> PriorConfig {
    PriorConfig {
        level: 2,
        n_ctx,
        width: 16,
        depth,
        heads: 2,
        blocks,
        attn_order,
        bins: 11,
        m_attn: 0.25,
        m_mlp: 1.0,
        merged_decoder: true,
        labels: Some(labels(true)),
        cond: None,
        lyrics: None,
        raw_to_tokens: 128,
        alignment: None,
    }
}

/// All the small models under test, each with the attention kinds it covers.
fn models() -> Vec<(&'static str, PriorConfig)> {
    let factorised = PriorConfig {
        merged_decoder: false,
        ..base(2, 3, 24, Some(4))
    };
    let dense = base(0, 2, 16, None);
    let merged = PriorConfig {
        merged_decoder: false,
        lyrics: Some(LyricsConfig::Merged {
            n_tokens: 10,
            n_vocab: 5,
        }),
        ..base(12, 48, 30, Some(4))
    };
    let encdec = PriorConfig {
        lyrics: Some(LyricsConfig::Encoder {
            n_tokens: 8,
            n_vocab: 6,
            width: 8,
            depth: 3,
            heads: 2,
            blocks: 2,
            attn_order: 2,
        }),
        ..base(10, 19, 24, Some(4))
    };
    let upsampler = PriorConfig {
        level: 0,
        merged_decoder: false,
        labels: Some(labels(false)),
        cond: Some(small_conditioner()),
        raw_to_tokens: 8,
        ..base(2, 3, 24, Some(4))
    };
    vec![
        ("factorised", factorised),
        ("dense", dense),
        ("merged", merged),
        ("encdec", encdec),
        ("upsampler", upsampler),
    ]
}

/// Build with random weights large enough that every path matters.
fn build(cfg: &PriorConfig, seed: u64) -> Prior {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let prior = Prior::new(cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
    let data = vm.data().lock().unwrap();
    let mut names: Vec<_> = data.keys().cloned().collect();
    names.sort();
    for (i, name) in names.iter().enumerate() {
        let var = &data[name];
        let n = var.elem_count();
        let vals: Vec<f32> = (0..n)
            .map(|j| (jukebox::util::uniform(seed, i as u64, 0, j as u64) * 2.0 - 1.0) as f32)
            .collect();
        let t = Tensor::from_vec(vals, var.shape(), &dev).unwrap();
        let std = if name.ends_with(".weight") && (name.contains("ln") || name.contains("state_ln"))
        {
            t.affine(0.2, 1.0).unwrap()
        } else if name.ends_with(".w") {
            let fan_in = var.dims()[0] as f64;
            t.affine(1.5 / fan_in.sqrt(), 0.0).unwrap()
        } else {
            t.affine(0.5, 0.0).unwrap()
        };
        var.set(&std).unwrap();
    }
    drop(data);
    prior
}

fn y_rows(prior: &Prior, n: usize, seed: u64) -> Tensor {
    let g = prior.cfg.labels.as_ref().unwrap().max_genres;
    let mut rows = vec![];
    for i in 0..n as i64 {
        let mut r = vec![
            3 * 44100,
            44100 / 2,
            (prior.cfg.n_ctx * prior.cfg.raw_to_tokens) as i64,
            (i + seed as i64) % 5,
        ];
        r.push((i * 3 + 1) % 7);
        r.extend(std::iter::repeat_n(-1, g - 1));
        for k in 0..prior.n_lyric_tokens() as i64 {
            let v = prior.cfg.lyrics.as_ref().unwrap().n_vocab() as i64;
            r.push((k * 7 + i * 3 + seed as i64) % v);
        }
        rows.push(r);
    }
    Tensor::new(rows, &Device::Cpu).unwrap()
}

fn z_cond(prior: &Prior, n: usize) -> Option<Tensor> {
    let l = prior.z_cond_len();
    if l == 0 {
        return None;
    }
    let v: Vec<i64> = (0..n * l).map(|i| (i * 5 % 11) as i64).collect();
    Some(Tensor::from_vec(v, (n, l), &Device::Cpu).unwrap())
}

fn tokens(prior: &Prior, n: usize, t: usize) -> Tensor {
    let v: Vec<i64> = (0..n * t)
        .map(|i| ((i * 7 + i / 3) % prior.cfg.bins) as i64)
        .collect();
    Tensor::from_vec(v, (n, t), &Device::Cpu).unwrap()
}

#[test]
fn step_logits_equal_teacher_forcing_for_every_attention_type() {
    let mut covered = BTreeSet::new();
    for (name, cfg) in models() {
        let prior = build(&cfg, 1);
        covered.extend(prior.transformer.layers.iter().map(|l| l.kind.id()));
        let n = 2;
        let y = y_rows(&prior, n, 0);
        let cond = prior
            .conditioning(Some(&y), z_cond(&prior, n).as_ref())
            .unwrap();
        let music = tokens(&prior, n, cfg.n_ctx);
        let seq = prior.raw_sequence(&music, &cond).unwrap();
        let (tf, _) = prior.forward_seq(&seq, &cond, None, &[]).unwrap();
        let scale = tf
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(scale > 0.5, "{name}: logits too small to test ({scale})");
        let mut cache = prior.new_cache(n).unwrap();
        for t in 0..seq.dim(1).unwrap() {
            let l = prior.step(&mut cache, &cond).unwrap();
            let want = tf.narrow(1, t, 1).unwrap().squeeze(1).unwrap();
            let e = max_diff(&l, &want);
            // 1e-5 relative to the logit scale (48 random layers accumulate f32 rounding).
            assert!(
                e <= 1e-5 * scale.max(1.0),
                "{name}: position {t}: step vs teacher forcing {e} (scale {scale})"
            );
            cache
                .accept(&seq.narrow(1, t, 1).unwrap().squeeze(1).unwrap())
                .unwrap();
        }
        assert!(
            prior.step(&mut cache, &cond).is_err(),
            "{name}: stepping past the window must fail"
        );
    }
    let want: BTreeSet<usize> = [0, 1, 2, 3, 6, 7].into_iter().collect();
    assert_eq!(covered, want);
}

#[test]
fn chunked_prefill_equals_one_pass() {
    for (name, cfg) in models() {
        let prior = build(&cfg, 2);
        let n = 2;
        let y = y_rows(&prior, n, 1);
        let cond = prior
            .conditioning(Some(&y), z_cond(&prior, n).as_ref())
            .unwrap();
        let seq = prior
            .raw_sequence(&tokens(&prior, n, cfg.n_ctx), &cond)
            .unwrap();
        let (tf, _) = prior.forward_seq(&seq, &cond, None, &[]).unwrap();
        let tol = 1e-5
            * tf.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                .max(1.0);
        let l = seq.dim(1).unwrap();
        for chunk in [1, 3, 7, 8, 16, l] {
            let mut cache = prior.new_cache(n).unwrap();
            // Prefill part, then steps for the rest.
            let k = l - 5;
            let got = prior
                .prefill_chunked(&mut cache, &cond, &seq.narrow(1, 0, k).unwrap(), chunk)
                .unwrap();
            let e = max_diff(&got, &tf.narrow(1, 0, k).unwrap());
            assert!(e <= tol, "{name}: chunk {chunk}: prefill error {e}");
            // Filling the cache without the logits (as primed sampling does) leaves the same
            // cache: the steps after it give the same bits.
            let mut filled = prior.new_cache(n).unwrap();
            prior
                .fill_cache(&mut filled, &cond, &seq.narrow(1, 0, k).unwrap(), chunk)
                .unwrap();
            assert_eq!(filled.pos, k);
            for t in k..l {
                let s = prior.step(&mut cache, &cond).unwrap();
                let e = max_diff(&s, &tf.narrow(1, t, 1).unwrap().squeeze(1).unwrap());
                assert!(
                    e <= tol,
                    "{name}: chunk {chunk}: step {t} after prefill {e}"
                );
                let s2 = prior.step(&mut filled, &cond).unwrap();
                let d = max_diff(&s, &s2);
                assert_eq!(d, 0.0, "{name}: chunk {chunk}: step {t} after fill_cache");
                let tok = seq.narrow(1, t, 1).unwrap().squeeze(1).unwrap();
                cache.accept(&tok).unwrap();
                filled.accept(&tok).unwrap();
            }
        }
    }
}

#[test]
fn items_sample_the_same_alone_or_batched_with_other_labels() {
    for (name, cfg) in models() {
        let prior = build(&cfg, 3);
        let y = y_rows(&prior, 3, 2);
        let zc = z_cond(&prior, 3);
        let cond = prior.conditioning(Some(&y), zc.as_ref()).unwrap();
        let prime = tokens(&prior, 3, 5);
        let opts = SampleOpts {
            temp: 0.9,
            top_p: 0.95,
            chunk_size: 4,
            keep_logits: true,
            level: 2,
            window: 1,
            ..Default::default()
        };
        let seeds = [10, 11, 12];
        let n_new = (cfg.n_ctx - 5).min(12);
        let all = prior::sample_window(&prior, &cond, &prime, n_new, &seeds, &opts, &mut |_, _| {})
            .unwrap();
        assert_eq!(all.tokens.dims(), &[3, 5 + n_new]);
        assert_eq!(all.entropy[0].len(), n_new);
        assert!(all.entropy[0]
            .iter()
            .all(|e| e.filtered_bits <= e.raw_bits + 1e-4 || opts.temp > 1.0));
        let i = 1;
        let y1 = y.narrow(0, i, 1).unwrap();
        let z1 = zc.as_ref().map(|z| z.narrow(0, i, 1).unwrap());
        let c1 = prior.conditioning(Some(&y1), z1.as_ref()).unwrap();
        let one = prior::sample_window(
            &prior,
            &c1,
            &prime.narrow(0, i, 1).unwrap(),
            n_new,
            &seeds[i..=i],
            &opts,
            &mut |_, _| {},
        )
        .unwrap();
        let a: Vec<i64> = all.tokens.get(i).unwrap().to_vec1().unwrap();
        let b: Vec<i64> = one.tokens.get(0).unwrap().to_vec1().unwrap();
        assert_eq!(a, b, "{name}: batched and alone differ");
        // Different labels actually change the distribution.
        let l0 = all.logits.as_ref().unwrap().get(0).unwrap();
        let l1 = all.logits.as_ref().unwrap().get(1).unwrap();
        assert!(max_diff(&l0, &l1) > 1e-3, "{name}: labels have no effect");
        // Prime is kept.
        let p: Vec<i64> = all
            .tokens
            .get(0)
            .unwrap()
            .narrow(0, 0, 5)
            .unwrap()
            .to_vec1()
            .unwrap();
        let want: Vec<i64> = prime.get(0).unwrap().to_vec1().unwrap();
        assert_eq!(p, want);
    }
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let (_, cfg) = models().remove(0);
    let prior = build(&cfg, 4);
    let y = y_rows(&prior, 1, 0);
    let cond = prior.conditioning(Some(&y), None).unwrap();
    // Token outside the vocabulary.
    let bad = Tensor::new(&[[0i64, 99]], &Device::Cpu).unwrap();
    assert!(prior.forward_cond(&bad, &cond).is_err());
    // Wrong label width.
    assert!(prior
        .conditioning(Some(&y.narrow(1, 0, 3).unwrap()), None)
        .is_err());
    // Artist id out of range.
    let mut rows: Vec<Vec<i64>> = y.to_vec2().unwrap();
    rows[0][3] = 1000;
    assert!(prior
        .conditioning(Some(&Tensor::new(rows, &Device::Cpu).unwrap()), None)
        .is_err());
    // Too many tokens for the window.
    let opts = SampleOpts::default();
    let prime = tokens(&prior, 1, 20);
    assert!(prior::sample_window(&prior, &cond, &prime, 10, &[0], &opts, &mut |_, _| {}).is_err());
    // accept twice.
    let mut cache = prior.new_cache(1).unwrap();
    prior.step(&mut cache, &cond).unwrap();
    let t = Tensor::new(&[1i64], &Device::Cpu).unwrap();
    cache.accept(&t).unwrap();
    assert!(cache.accept(&t).is_err());
    assert!(AttnKind::from_id(4).is_err());
}
