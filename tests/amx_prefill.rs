//! The AMX path of bf16 prefill (`ops::amx`): on a CPU with AMX-BF16 its logits stay within
//! the activations' bf16 rounding of the f32-compute path and repeat bit for bit; elsewhere
//! it is never taken, and the logits are exactly those of the path without it.
//!
//! One test function: the path is switched with a process-wide flag.

mod prior_support;

use candle_core::{DType, Device, Tensor};
use jukebox::config::PriorConfig;
use jukebox::ops::amx;
use jukebox::prior::WeightFormat;
use prior_support::{base, build, conditioning, max_diff, scale};

fn prefill_logits(cfg: &PriorConfig, amx_on: bool) -> Tensor {
    amx::set_enabled(amx_on);
    let mut prior = build(cfg, 11, DType::F32);
    prior.set_weight_format(WeightFormat::BF16).unwrap();
    let (n, t) = (2, 96);
    let cond = conditioning(&prior, n);
    let ids: Vec<i64> = (0..n * t)
        .map(|i| ((i * 7 + i / 5) % cfg.bins) as i64)
        .collect();
    let toks = Tensor::from_vec(ids, (n, t), &Device::Cpu).unwrap();
    let mut cache = prior.new_cache(n).unwrap();
    // Chunks of 32 tokens: 64 rows per product, above the GEMV's row limit.
    prior.prefill_chunked(&mut cache, &cond, &toks, 32).unwrap()
}

#[test]
fn amx_prefill_matches_the_f32_compute_path() {
    // Width 64 (products without padding: the epilogues run per block) and 48 (padded).
    for width in [64, 48] {
        let cfg = PriorConfig {
            width,
            heads: 2,
            ..base(2, 3, 128, Some(4))
        };
        let plain = prefill_logits(&cfg, false);
        let fast = prefill_logits(&cfg, true);
        if !amx::supported() {
            assert!(!amx::enabled(), "the AMX path must stay off without AMX");
            assert_eq!(max_diff(&plain, &fast), 0.0, "width {width}");
            eprintln!("no AMX-BF16 here: checked that the path is not taken");
            continue;
        }
        assert!(amx::enabled());
        let (err, s) = (max_diff(&plain, &fast), scale(&plain));
        // bf16 activations (8 bits of mantissa) through three layers: well under 2 % of the
        // logit scale; a wrong tile layout or epilogue is off by the scale itself.
        assert!(err > 0.0, "width {width}: the AMX path was not taken");
        assert!(
            err < 0.02 * s,
            "width {width}: max error {err} against scale {s}"
        );
        let again = prefill_logits(&cfg, true);
        assert_eq!(
            max_diff(&fast, &again),
            0.0,
            "width {width}: not deterministic"
        );
        let agree = plain
            .argmax(2)
            .unwrap()
            .eq(&fast.argmax(2).unwrap())
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            agree > 0.9,
            "width {width}: most likely token agrees at {agree}"
        );
        eprintln!("width {width}: max error {err:.2e} of scale {s:.2}, argmax agrees {agree:.3}");
    }
    amx::set_enabled(true);
}
