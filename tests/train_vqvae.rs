//! VQ-VAE training: gradients reach every parameter, the loss falls on generated audio.

use candle_core::{Device, Tensor};
use jukebox::config::VqvaeConfig;
use jukebox::train::loss::StftConfig;
use jukebox::train::optim::OptimConfig;
use jukebox::train::stats::Bandwidth;
use jukebox::train::vqvae::{VqLossConfig, VqTrainer};

fn tiny_cfg() -> VqvaeConfig {
    VqvaeConfig {
        downs_t: vec![1, 1, 1],
        emb_width: 8,
        l_bins: 16,
        width: 8,
        depth: 2,
        multipliers: vec![1, 1, 1],
        ..VqvaeConfig::official()
    }
}

fn small_loss() -> VqLossConfig {
    VqLossConfig {
        linf_k: 32,
        multispec: vec![(64, 16, 48), (32, 8, 24)],
        ..VqLossConfig::default()
    }
}

/// Two different tones per batch, slightly varying by step.
fn batch(step: u64, b: usize, t: usize) -> Tensor {
    let mut v = Vec::with_capacity(b * t);
    for i in 0..b {
        let f = 0.05 + 0.03 * i as f32 + 0.002 * (step % 5) as f32;
        for n in 0..t {
            v.push(0.5 * (n as f32 * f).sin() + 0.2 * (n as f32 * f * 3.1).sin());
        }
    }
    Tensor::from_vec(v, (b, t), &Device::Cpu).unwrap()
}

fn trainer(lr: f64) -> VqTrainer {
    let dev = Device::Cpu;
    let x = batch(0, 2, 256);
    let rows: Vec<Vec<f32>> = x.to_vec2().unwrap();
    let bw = Bandwidth::compute(rows.iter().map(|r| r.as_slice())).unwrap();
    let optim = OptimConfig {
        lr,
        lr_warmup: 5,
        ..OptimConfig::default()
    };
    VqTrainer::new(&tiny_cfg(), &small_loss(), &optim, bw, 11, &dev).unwrap()
}

#[test]
fn every_vqvae_parameter_receives_a_gradient() {
    let mut tr = trainer(1e-3);
    let x = batch(0, 2, 256);
    let (loss, parts) = tr.loss(&x, 0).unwrap();
    assert!(loss.to_scalar::<f32>().unwrap().is_finite());
    assert_eq!(parts.recons.len(), 3);
    let grads = loss.backward().unwrap();
    let mut missing = vec![];
    let mut n = 0;
    for (name, var) in tr.opt.vars() {
        n += 1;
        match grads.get(var.as_tensor()) {
            Some(g) => {
                let s = g
                    .abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                if !(s > 0.0 && s.is_finite()) {
                    missing.push(format!("{name} (|g| = {s})"));
                }
            }
            None => missing.push(format!("{name} (none)")),
        }
    }
    assert!(n > 20, "only {n} trainable tensors");
    assert!(missing.is_empty(), "no gradient for: {missing:?}");
    assert!(
        tr.opt.names().all(|k| !k.starts_with("bottleneck.")),
        "codebooks must not be optimised"
    );
}

#[test]
fn vqvae_loss_falls_and_codebooks_are_used() {
    let mut tr = trainer(3e-3);
    let mut first = 0.0;
    let mut last = 0.0;
    for step in 0..40u64 {
        let s = tr.train_step(&batch(step, 2, 256), step).unwrap();
        assert!(s.loss.is_finite() && s.opt.applied, "step {step}: {s:?}");
        if step < 3 {
            first += s.loss / 3.0;
        }
        if step >= 37 {
            last += s.loss / 3.0;
        }
    }
    assert!(last < 0.8 * first, "loss did not fall: {first} -> {last}");
    let ev = tr.evaluate(&[batch(100, 2, 256)]).unwrap();
    assert_eq!(ev.snr_db.len(), 3);
    assert!(ev.snr_db.iter().all(|s| s.is_finite()));
    assert!(ev.codes_used.iter().all(|&u| u >= 2), "{ev:?}");
    let _ = StftConfig {
        n_fft: 8,
        hop: 2,
        window: 8,
    };
}
