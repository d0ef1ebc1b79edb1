//! Shared helpers for the prior tests: label configs, random weights large enough that every
//! path matters, and logit comparison.
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use jukebox::config::{ConditionerConfig, LabelConfig, PriorConfig};
use jukebox::prior::{Conditioning, Prior};
use std::collections::HashMap;

pub fn labels(timing: bool) -> LabelConfig {
    LabelConfig {
        n_genres: 7,
        n_artists: 5,
        max_genres: 2,
        include_time_signal: timing,
        t_bins: 16,
        min_duration: 0.0,
        max_duration: 4.0,
    }
}

/// An upsampler's conditioner small enough for unit tests (two downsampling steps of 2).
pub fn small_conditioner() -> ConditionerConfig {
    ConditionerConfig {
        width: 8,
        depth: 2,
        m_conv: 1.0,
        dilation_growth_rate: 3,
        dilation_cycle: Some(2),
        res_scale: true,
        down_t: 2,
        stride_t: 2,
    }
}

/// Random weights for `cfg` (uniform, scaled by fan-in; LayerNorm gains near 1), stored in
/// `dtype` as plain tensors (as a loaded checkpoint: nothing tracked for gradients).
pub fn build(cfg: &PriorConfig, seed: u64, dtype: DType) -> Prior {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    Prior::new(cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
    let data = vm.data().lock().unwrap();
    let mut names: Vec<_> = data.keys().cloned().collect();
    names.sort();
    let mut map = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        let var = &data[name];
        let vals: Vec<f32> = (0..var.elem_count())
            .map(|j| (jukebox::util::uniform(seed, i as u64, 0, j as u64) * 2.0 - 1.0) as f32)
            .collect();
        let t = Tensor::from_vec(vals, var.shape(), &dev).unwrap();
        let t = if name.ends_with(".weight") && name.contains("ln") {
            t.affine(0.2, 1.0).unwrap()
        } else if name.ends_with(".w") {
            t.affine(1.5 / (var.dims()[0] as f64).sqrt(), 0.0).unwrap()
        } else {
            t.affine(0.5, 0.0).unwrap()
        };
        map.insert(name.clone(), t.to_dtype(dtype).unwrap());
    }
    Prior::new(cfg, VarBuilder::from_tensors(map, dtype, &dev)).unwrap()
}

pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Largest absolute value (the logit scale tolerances are relative to).
pub fn scale(t: &Tensor) -> f32 {
    t.abs().unwrap().max_all().unwrap().to_scalar().unwrap()
}

/// Labels (and, for an upsampler, level-above codes) for `n` rows, each row different.
pub fn conditioning(prior: &Prior, n: usize) -> Conditioning {
    let g = prior.cfg.labels.as_ref().unwrap().max_genres;
    let rows: Vec<Vec<i64>> = (0..n as i64)
        .map(|i| {
            let len = (prior.cfg.n_ctx * prior.cfg.raw_to_tokens) as i64;
            let mut r = vec![3 * 44100, 44100 / 2, len, i % 5, (i * 3 + 1) % 7];
            r.extend(std::iter::repeat_n(-1, g - 1));
            r
        })
        .collect();
    let y = Tensor::new(rows, &Device::Cpu).unwrap();
    let l = prior.z_cond_len();
    let z = (l > 0).then(|| {
        let v: Vec<i64> = (0..n * l).map(|i| (i * 5 % 11) as i64).collect();
        Tensor::from_vec(v, (n, l), &Device::Cpu).unwrap()
    });
    prior.conditioning(Some(&y), z.as_ref()).unwrap()
}

/// A small labelled top-level prior (width 32, 23 bins) with the given attention layout.
pub fn base(attn_order: usize, depth: usize, n_ctx: usize, blocks: Option<usize>) -> PriorConfig {
    PriorConfig {
        level: 2,
        n_ctx,
        width: 32,
        depth,
        heads: 2,
        blocks,
        attn_order,
        bins: 23,
        m_attn: 0.5,
        m_mlp: 1.0,
        merged_decoder: false,
        labels: Some(labels(true)),
        cond: None,
        lyrics: None,
        raw_to_tokens: 128,
        alignment: None,
    }
}

/// The fast paths' test models: factorised (block, transpose, previous-block layers), dense,
/// an upsampler (conditioning added before a tied head), a wide one (256 × 768 attention
/// weights, split over the threads by `gemv::row_parts`) and a one-head one (as the bundled
/// upsamplers: attention split over (row, head) pairs).
pub fn models() -> Vec<(&'static str, PriorConfig)> {
    let upsampler = PriorConfig {
        level: 0,
        labels: Some(labels(false)),
        cond: Some(small_conditioner()),
        raw_to_tokens: 8,
        ..base(2, 3, 24, Some(4))
    };
    let wide = PriorConfig {
        width: 256,
        heads: 4,
        m_attn: 1.0,
        merged_decoder: true,
        ..base(2, 3, 32, Some(4))
    };
    let one_head = PriorConfig {
        heads: 1,
        ..base(2, 3, 24, Some(4))
    };
    vec![
        ("factorised", base(2, 6, 24, Some(4))),
        ("dense", base(0, 2, 16, None)),
        ("upsampler", upsampler),
        ("wide", wide),
        ("one-head", one_head),
    ]
}
