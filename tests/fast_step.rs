//! The persistent sampling step (`prior::fast_step`) against the graph path it replaces: the
//! same tokens and logits (to float rounding) for every attention type it takes, f32, f16 and
//! int8 (`q8`) weights, weights split over threads or not, upsamplers (conditioning added before a tied
//! head), and a prefill between steps (the cache's keys move back into tensors). One test
//! function: the switch is process-wide.

mod prior_support;

use candle_core::{DType, Device, Tensor};
use jukebox::config::PriorConfig;
use jukebox::prior::{self, fast_step, Prior, SampleOpts, WeightFormat};
use prior_support::{build, conditioning, max_diff, models, scale};
use std::collections::BTreeSet;

/// A window sampled with a prime: (tokens, logits, fast steps taken).
fn sample(prior: &Prior, n: usize, n_prime: usize, fast: bool) -> (Vec<Vec<i64>>, Tensor, usize) {
    fast_step::set_enabled(fast);
    let cond = conditioning(prior, n);
    let v: Vec<i64> = (0..n * n_prime)
        .map(|i| ((i * 7 + i / 3) % prior.cfg.bins) as i64)
        .collect();
    let prime = Tensor::from_vec(v, (n, n_prime), &Device::Cpu).unwrap();
    let n_new = prior.cfg.n_ctx - n_prime;
    let opts = SampleOpts {
        keep_logits: true,
        chunk_size: 5,
        ..Default::default()
    };
    let seeds: Vec<u64> = (0..n as u64).map(|i| 40 + i).collect();
    let before = fast_step::steps_run();
    let out =
        prior::sample_window(prior, &cond, &prime, n_new, &seeds, &opts, &mut |_, _| {}).unwrap();
    let taken = fast_step::steps_run() - before;
    (out.tokens.to_vec2().unwrap(), out.logits.unwrap(), taken)
}

/// Steps, then a prefill (graph path, reading the keys the fast steps stored), then steps.
fn steps_prefill_steps(prior: &Prior, fast: bool) -> Tensor {
    fast_step::set_enabled(fast);
    let n = 2;
    let cond = conditioning(prior, n);
    let mut cache = prior.new_cache(n).unwrap();
    let mut rows = vec![];
    let tok = |k: usize| Tensor::new(vec![(k % 5) as i64, (k % 7) as i64], &Device::Cpu).unwrap();
    for k in 0..6 {
        rows.push(prior.step(&mut cache, &cond).unwrap().unsqueeze(1).unwrap());
        cache.accept(&tok(k)).unwrap();
    }
    let chunk = Tensor::new(vec![vec![1i64, 2, 3, 4], vec![4, 3, 2, 1]], &Device::Cpu).unwrap();
    rows.push(prior.prefill(&mut cache, &cond, &chunk).unwrap());
    for k in 0..5 {
        rows.push(prior.step(&mut cache, &cond).unwrap().unsqueeze(1).unwrap());
        cache.accept(&tok(k + 3)).unwrap();
    }
    Tensor::cat(&rows, 1).unwrap()
}

#[test]
fn persistent_step_matches_the_graph_path() {
    let mut kinds = BTreeSet::new();
    for (name, cfg) in models() {
        for dtype in ["f32", "f16", "q8"] {
            let prior = match dtype {
                "f16" => build(&cfg, 3, DType::F16),
                "q8" => quantized(&cfg, 3),
                _ => build(&cfg, 3, DType::F32),
            };
            // The weights really are in the format under test (an f16 source stays f16).
            assert_eq!(prior.weight_format(), WeightFormat::parse(dtype).unwrap());
            kinds.extend(prior.transformer.layers.iter().map(|l| l.kind.id()));
            for n in [1, 3] {
                let (want_tok, want_logits, slow) = sample(&prior, n, 5, false);
                let (got_tok, got_logits, fast) = sample(&prior, n, 5, true);
                let new = cfg.n_ctx - 5;
                assert_eq!(slow, 0, "{name}: the switch did not turn the fast path off");
                assert!(fast >= new, "{name}: {fast} fast steps of {new}");
                let s = scale(&want_logits);
                assert!(s > 0.5, "{name}: logits too small to test ({s})");
                let e = max_diff(&got_logits, &want_logits);
                assert!(
                    e <= 1e-5 * s.max(1.0),
                    "{name} {dtype:?} batch {n}: logits differ by {e} (scale {s})"
                );
                assert_eq!(got_tok, want_tok, "{name} {dtype:?} batch {n}: tokens");
            }
            let want = steps_prefill_steps(&prior, false);
            let got = steps_prefill_steps(&prior, true);
            let e = max_diff(&got, &want);
            assert!(
                e <= 1e-5 * scale(&want).max(1.0),
                "{name} {dtype:?}: steps, prefill, steps differ by {e}"
            );
        }
    }
    fast_step::set_enabled(true);
    // Dense, block, transpose and previous-block layers.
    assert_eq!(kinds, [0, 1, 2, 3].into_iter().collect());
    q8_sampling_is_deterministic_and_close_to_f32();
}

fn quantized(cfg: &PriorConfig, seed: u64) -> Prior {
    let mut p = build(cfg, seed, DType::F32);
    p.set_weight_format(WeightFormat::Q8).unwrap();
    p
}

/// Int8 weights: the same tokens for the same seed every time, teacher-forced logits (which
/// dequantise) equal to the sampled ones (int8 kernels) to rounding, and logits within a few
/// percent of the f32 model's.
fn q8_sampling_is_deterministic_and_close_to_f32() {
    let (_, cfg) = models().remove(3);
    let q = quantized(&cfg, 5);
    let f = build(&cfg, 5, DType::F32);
    assert_eq!(q.weight_format(), WeightFormat::Q8);
    assert_eq!(f.weight_format(), WeightFormat::F32);
    let (tok_a, logits_a, fast) = sample(&q, 2, 5, true);
    let (tok_b, logits_b, _) = sample(&q, 2, 5, true);
    assert!(fast > 0);
    assert_eq!(tok_a, tok_b, "q8 sampling is not deterministic");
    assert_eq!(max_diff(&logits_a, &logits_b), 0.0);
    // Teacher forcing over the sampled window gives the sampled logits.
    let cond = conditioning(&q, 2);
    let toks = Tensor::new(tok_a.clone(), &Device::Cpu).unwrap();
    assert_eq!(
        toks.dims(),
        &[2, cfg.n_ctx],
        "sampled window with its prime"
    );
    let tf = q.forward_cond(&toks, &cond).unwrap();
    let e = max_diff(&tf, &logits_a);
    assert!(
        e <= 1e-4 * scale(&tf).max(1.0),
        "teacher-forced vs sampled: {e}"
    );
    // Against f32 on the same tokens: close, not equal.
    let tf32 = f.forward_cond(&toks, &cond).unwrap();
    let rms = |t: &Tensor| {
        let ms = t.sqr().unwrap().mean_all().unwrap();
        ms.to_scalar::<f32>().unwrap().sqrt()
    };
    let rel = rms(&(&tf - &tf32).unwrap()) / rms(&tf32);
    assert!(rel > 1e-5 && rel < 0.05, "q8 vs f32 relative RMS {rel}");
    // Half precision from int8 is refused (the f32 values are gone).
    let mut q2 = quantized(&cfg, 5);
    let err = q2
        .set_weight_format(WeightFormat::F16)
        .unwrap_err()
        .to_string();
    assert!(err.contains("already int8"), "{err}");
    // So is f32: the model would claim f32 while holding int8 values.
    assert!(q2.set_weight_format(WeightFormat::F32).is_err());
    assert_eq!(q2.weight_format(), WeightFormat::Q8);
    // Float formats convert both ways.
    let mut h = build(&cfg, 5, DType::F32);
    h.set_weight_format(WeightFormat::BF16).unwrap();
    assert_eq!(h.weight_format(), WeightFormat::BF16);
    h.set_weight_format(WeightFormat::F32).unwrap();
    assert_eq!(h.weight_format(), WeightFormat::F32);
}
