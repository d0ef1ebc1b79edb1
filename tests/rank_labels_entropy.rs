//! Issue 12's model check: on a tiny model with fixed weights (the reference fixture's top
//! prior), the entropy the sampler reports for each step equals the entropy computed by hand
//! from that step's logits, before and after temperature and top-k / top-p.

use candle_core::{DType, Device, Tensor};
use jukebox::checkpoint::ModelDir;
use jukebox::labels::{Labeller, Meta};
use jukebox::prior::{sample_window, SampleOpts};
use std::path::Path;

/// Shannon entropy in bits of softmax(logits) over the entries kept (`None` = removed).
fn entropy_by_hand(logits: &[Option<f64>]) -> f64 {
    let m = logits.iter().flatten().cloned().fold(f64::MIN, f64::max);
    let z: f64 = logits.iter().flatten().map(|l| (l - m).exp()).sum();
    logits
        .iter()
        .flatten()
        .map(|l| {
            let p = (l - m).exp() / z;
            -p * p.log2()
        })
        .sum()
}

/// Temperature, then keep the k largest (ties with the k-th kept) or the top-p nucleus
/// (an entry stays while the probability before it in sorted order is at most p).
fn filtered(logits: &[f32], temp: f64, top_k: usize, top_p: f64) -> Vec<Option<f64>> {
    let l: Vec<f64> = logits.iter().map(|&x| x as f64 / temp).collect();
    let mut order: Vec<usize> = (0..l.len()).collect();
    order.sort_by(|&a, &b| l[b].total_cmp(&l[a]));
    let mut keep = vec![true; l.len()];
    if top_k > 0 {
        let kth = l[order[top_k - 1]];
        for (i, k) in keep.iter_mut().enumerate() {
            *k = l[i] >= kth;
        }
    }
    if top_p > 0.0 {
        let m = l[order[0]];
        let z: f64 = l.iter().map(|x| (x - m).exp()).sum();
        let mut before = 0.0;
        for &i in &order {
            keep[i] = before <= top_p;
            before += (l[i] - m).exp() / z;
        }
    }
    l.iter().zip(keep).map(|(&x, k)| k.then_some(x)).collect()
}

#[test]
fn step_entropy_equals_the_hand_computed_value() {
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference/fixtures/model");
    let md = ModelDir::open(&model).unwrap();
    let dev = Device::Cpu;
    let prior = md.prior(2, &dev).unwrap();
    let cfg = &md.config.priors[2];
    let mut lab = Labeller::for_model(&model, cfg, 44100.0)
        .unwrap()
        .strict(true);
    lab.quiet = true;
    let rows: Vec<Vec<i64>> = [("#3", "#2"), ("unknown", "unknown")]
        .iter()
        .map(|(a, g)| {
            let base = lab.base(&Meta::new(*a, *g, None), 60000, 0).unwrap();
            lab.get_y(&base, 0).unwrap().y
        })
        .collect();
    let y = lab.y_tensor(&rows, &dev).unwrap();
    let cond = prior.conditioning(Some(&y), None).unwrap();
    let prime = Tensor::zeros((2, 0), DType::I64, &dev).unwrap();
    let n_new = 24;
    for (temp, top_k, top_p) in [(1.0, 0, 0.0), (0.7, 4, 0.0), (1.3, 0, 0.6)] {
        let opts = SampleOpts {
            temp,
            top_k,
            top_p,
            keep_logits: true,
            ..Default::default()
        };
        let out =
            sample_window(&prior, &cond, &prime, n_new, &[5, 6], &opts, &mut |_, _| {}).unwrap();
        let logits = out.logits.unwrap().to_vec3::<f32>().unwrap();
        let tokens = out.tokens.to_vec2::<i64>().unwrap();
        let mut max_err = 0f64;
        let mut distinct = std::collections::BTreeSet::new();
        for (i, steps) in out.entropy.iter().enumerate() {
            assert_eq!(steps.len(), n_new);
            for (k, e) in steps.iter().enumerate() {
                let l = &logits[i][k];
                let raw: Vec<Option<f64>> = l.iter().map(|&x| Some(x as f64)).collect();
                let f = filtered(l, temp, top_k, top_p);
                let (hr, hf) = (entropy_by_hand(&raw), entropy_by_hand(&f));
                max_err = max_err
                    .max((e.raw_bits as f64 - hr).abs())
                    .max((e.filtered_bits as f64 - hf).abs());
                // The drawn token lies inside the filtered support.
                assert!(
                    f[tokens[i][k] as usize].is_some(),
                    "step {k}: token outside the kept set"
                );
                distinct.insert((hr * 1e4) as i64);
            }
        }
        assert!(
            max_err < 1e-4,
            "temp {temp} k {top_k} p {top_p}: entropy off by {max_err}"
        );
        // Steps differ, so a constant answer could not pass.
        assert!(distinct.len() > 5, "entropies barely vary: {distinct:?}");
    }
}
