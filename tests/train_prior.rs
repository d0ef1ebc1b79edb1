//! Prior training: gradients reach every parameter (top prior with labels and timing, and an
//! upsampler with its conditioner), label dropout, and the loss falls on structured codes.

use candle_core::Device;
use jukebox::config::{ConditionerConfig, LabelConfig, PriorConfig};
use jukebox::train::optim::OptimConfig;
use jukebox::train::prior::{CodeTrack, PriorData, PriorTrainer};

fn labels(timing: bool) -> LabelConfig {
    LabelConfig {
        n_genres: 4,
        n_artists: 3,
        max_genres: 2,
        include_time_signal: timing,
        t_bins: 16,
        min_duration: 0.0,
        max_duration: 600.0,
    }
}

fn top_cfg() -> PriorConfig {
    PriorConfig {
        level: 2,
        n_ctx: 32,
        width: 32,
        depth: 3,
        heads: 2,
        blocks: Some(4),
        attn_order: 2,
        bins: 16,
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

fn up_cfg() -> PriorConfig {
    PriorConfig {
        level: 1,
        raw_to_tokens: 32,
        merged_decoder: false,
        labels: Some(labels(false)),
        cond: Some(ConditionerConfig {
            // Equal to the prior width: `prior::conditioner` sizes the transposed conv's bias
            // by its input channels, which only works when the two widths agree.
            width: 32,
            depth: 2,
            m_conv: 1.0,
            dilation_growth_rate: 3,
            dilation_cycle: None,
            res_scale: true,
            down_t: 2,
            stride_t: 2,
        }),
        ..top_cfg()
    }
}

/// Codes with a learnable pattern: level 1 repeats a 4-cycle that depends on the artist, level
/// 2 is level 1 subsampled.
fn tracks() -> Vec<CodeTrack> {
    (0..4)
        .map(|i| {
            let artist = 1 + (i % 2) as u32;
            let l1: Vec<u32> = (0..200u32).map(|t| (t % 4) * 3 + artist).collect();
            let l2: Vec<u32> = l1.iter().step_by(4).map(|&c| (c + 1) % 16).collect();
            CodeTrack {
                codes: vec![vec![], l1, l2],
                artist,
                genres: vec![1 + (i % 3) as u32],
                offset_samples: 0,
                total_samples: 200 * 32,
                name: format!("t{i}"),
            }
        })
        .collect()
}

const HOPS: [usize; 3] = [8, 32, 128];

fn check_all_grads(cfg: PriorConfig, level: usize) {
    let tr = PriorTrainer::new(&cfg, &OptimConfig::default(), 5, 1.0, 0.0, &Device::Cpu).unwrap();
    let data = PriorData::new(&tracks(), level, &HOPS, cfg.cond.is_some()).unwrap();
    let (b, _) = tr.train_batch(&data, 2, 0).unwrap();
    let (loss, count) = tr.loss(&b).unwrap();
    assert!(count > 0.0);
    let grads = loss.backward().unwrap();
    let mut missing = vec![];
    let mut n = 0;
    for (name, var) in tr.opt.vars() {
        n += 1;
        let ok = grads
            .get(var.as_tensor())
            .map(|g| {
                g.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            })
            .is_some_and(|s| s > 0.0 && s.is_finite());
        // Embedding rows: only the rows used get gradient, but the table as a whole must.
        if !ok {
            missing.push(name.to_string());
        }
    }
    assert!(n > 10, "only {n} tensors");
    assert!(
        missing.is_empty(),
        "level {level}: no gradient for {missing:?}"
    );
}

#[test]
fn every_top_prior_parameter_receives_a_gradient() {
    check_all_grads(top_cfg(), 2);
}

#[test]
fn every_upsampler_parameter_receives_a_gradient() {
    check_all_grads(up_cfg(), 1);
}

#[test]
fn label_dropout_rate_and_rows() {
    let tr = PriorTrainer::new(
        &top_cfg(),
        &OptimConfig::default(),
        5,
        1.0,
        0.15,
        &Device::Cpu,
    )
    .unwrap();
    let data = PriorData::new(&tracks(), 2, &HOPS, false).unwrap();
    let mut dropped = 0;
    let mut total = 0;
    for step in 0..200 {
        let (b, d) = tr.train_batch(&data, 4, step).unwrap();
        let y: Vec<Vec<i64>> = b.y.unwrap().to_vec2().unwrap();
        let zero = y
            .iter()
            .filter(|r| r[3] == 0 && r[4] == 0 && r[5] == -1)
            .count();
        assert_eq!(zero, d, "dropped rows must have artist 0, genre [0, -1]");
        for r in &y {
            assert_eq!(r[0], 200 * 32, "total length in samples");
            assert_eq!(r[2], 32 * 128, "sample length = n_ctx · hop");
            assert_eq!(r[1] % 128, 0);
        }
        dropped += d;
        total += 4;
    }
    let rate = dropped as f64 / total as f64;
    assert!((0.10..=0.20).contains(&rate), "dropout rate {rate}");
}

#[test]
fn prior_loss_falls() {
    for (cfg, level) in [(top_cfg(), 2usize), (up_cfg(), 1)] {
        let optim = OptimConfig {
            lr: 3e-3,
            lr_warmup: 5,
            ..OptimConfig::default()
        };
        let mut tr = PriorTrainer::new(&cfg, &optim, 1, 1.0, 0.15, &Device::Cpu).unwrap();
        let data = PriorData::new(&tracks(), level, &HOPS, cfg.cond.is_some()).unwrap();
        let valid = tr.valid_batches(&data, 4, 2).unwrap();
        let (before, count) = tr.evaluate(&valid).unwrap();
        assert!(count > 0.0);
        assert!(
            (before - 4.0).abs() < 0.5,
            "untrained model is near uniform over 16 codes: {before}"
        );
        for step in 0..60 {
            let (b, d) = tr.train_batch(&data, 4, step).unwrap();
            let s = tr.train_step(&b, d, step).unwrap();
            assert!(s.bits.is_finite());
        }
        let (after, _) = tr.evaluate(&valid).unwrap();
        assert!(
            after < 0.6 * before,
            "level {level}: {before} -> {after} bits/token"
        );
    }
}
