//! The fast teacher-forced pass (`prior::fast_forward`) against the composed graph ops it
//! replaces: the same logits to float rounding for every factorised attention pattern, an
//! upsampler (conditioning added before a tied head), a wide model and a one-head model; the
//! graph path where it does not apply (dense attention, half weights, a partial block); and the
//! logits of a window's tail equal to the tail of the whole window's. One test function: the
//! switches are process-wide.

mod prior_support;

use candle_core::{DType, Device, Tensor};
use jukebox::prior::{fast_forward, nll_bits, Prior};
use prior_support::{build, conditioning, max_diff, models, scale};

fn tokens(prior: &Prior, n: usize, len: usize) -> Tensor {
    let v: Vec<i64> = (0..n * len)
        .map(|i| ((i * 7 + i / 3) % prior.cfg.bins) as i64)
        .collect();
    Tensor::from_vec(v, (n, len), &Device::Cpu).unwrap()
}

/// Logits of `len` tokens of 3 rows on the fast path (`fast`) or the composed graph ops, and
/// how many fast passes ran.
fn logits(prior: &Prior, len: usize, fast: bool) -> (Tensor, usize) {
    fast_forward::set_enabled(fast);
    // The graph path's own fused attention is a training op: off, the reference is composed.
    jukebox::ops::set_train_fast(fast);
    let cond = conditioning(prior, 3);
    let before = fast_forward::passes_run();
    let out = prior.forward_cond(&tokens(prior, 3, len), &cond).unwrap();
    (out, fast_forward::passes_run() - before)
}

#[test]
fn fast_teacher_forced_pass_matches_the_graph_path() {
    // (name, config, weight dtype, sequence length, whether the fast path takes it): every
    // test model over its whole window (dense attention is not taken), then a one-head model
    // over two whole blocks, a partial block, and with f16 weights.
    let mut cases: Vec<_> = models()
        .into_iter()
        .map(|(name, cfg)| {
            let l = cfg.n_ctx;
            (name, cfg, DType::F32, l, name != "dense")
        })
        .collect();
    let one_head = models().remove(4).1;
    assert_eq!(one_head.heads, 1);
    cases.push(("short", one_head.clone(), DType::F32, 12, true));
    cases.push(("partial block", one_head.clone(), DType::F32, 14, false));
    cases.push(("f16 weights", one_head, DType::F16, 24, false));
    for (name, cfg, dtype, len, takes) in cases {
        let prior = build(&cfg, 3, dtype);
        let (want, slow) = logits(&prior, len, false);
        let (got, fast) = logits(&prior, len, true);
        assert_eq!(slow, 0, "{name}: the switch did not turn the fast path off");
        assert_eq!(fast, usize::from(takes), "{name}: fast passes");
        let s = scale(&want);
        assert!(s > 0.5, "{name}: logits too small to test ({s})");
        let e = max_diff(&got, &want);
        assert!(
            e <= 2e-5 * s.max(1.0),
            "{name}: logits differ by {e} (scale {s})"
        );
        // The same sequence scored from position k on: the tail of the whole pass.
        let cond = conditioning(&prior, 3);
        let toks = tokens(&prior, 3, len);
        let k = len / 2 + 1;
        let tail = prior.forward_cond_from(&toks, &cond, k).unwrap();
        let full = prior.forward_cond(&toks, &cond).unwrap();
        assert_eq!(tail.dims(), &[3, len - k, cfg.bins]);
        let e = max_diff(&tail, &full.narrow(1, k, len - k).unwrap());
        // (The head's GEMM over fewer rows may block the sums differently: rounding only.)
        assert!(
            e <= 1e-6 * s,
            "{name}: the tail's logits differ from the whole pass's by {e}"
        );
        // Per-token bits: the fused kernel against the composed ops (forced by tracking).
        let t = toks.narrow(1, k, len - k).unwrap();
        let fast_bits = nll_bits(&tail, &t).unwrap();
        let var = candle_core::Var::from_tensor(&tail).unwrap();
        let slow_bits = nll_bits(var.as_tensor(), &t).unwrap();
        let e = max_diff(&fast_bits, &slow_bits);
        assert!(e < 1e-5, "{name}: bits differ by {e}");
        assert!(scale(&fast_bits) > 1.0, "{name}: bits too small to test");
    }
    fast_forward::set_enabled(true);
    jukebox::ops::set_train_fast(true);
}
