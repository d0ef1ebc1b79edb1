//! Step-time measurement of the small presets (ignored by default: run with
//! `cargo test --release --test train_speed -- --ignored --nocapture`).

use candle_core::{DType, Device, Module, Tensor};
use jukebox::train::config::{PriorRunConfig, VqvaeRunConfig};
use jukebox::train::loss::MultiSpec;
use jukebox::train::prior::{CodeTrack, PriorData, PriorTrainer};
use jukebox::train::stats::Bandwidth;
use jukebox::train::vqvae::VqTrainer;
use std::time::Instant;

fn audio(b: usize, t: usize) -> Tensor {
    let v: Vec<f32> = (0..b * t)
        .map(|i| 0.3 * ((i as f32) * 0.031).sin() + 0.1 * ((i as f32) * 0.17).sin())
        .collect();
    Tensor::from_vec(v, (b, t), &Device::Cpu).unwrap()
}

#[test]
#[ignore]
fn vqvae_small_step_time() {
    let c = VqvaeRunConfig::preset("small").unwrap();
    let (b, t) = (c.train.batch_size, c.train.window);
    let x = audio(b, t);
    let rows: Vec<Vec<f32>> = x.to_vec2().unwrap();
    let bw = Bandwidth::compute(rows.iter().map(|r| r.as_slice())).unwrap();
    let mut tr = VqTrainer::new(&c.model, &c.loss, &c.optim, bw, 0, &Device::Cpu).unwrap();
    let n_params: usize = tr.weights().unwrap().values().map(|t| t.elem_count()).sum();
    println!(
        "vqvae small: {:.3} M parameters (codebooks included)",
        n_params as f64 / 1e6
    );
    // Pieces.
    let t0 = Instant::now();
    let z = tr
        .model
        .encoder(0)
        .unwrap()
        .forward(&x.reshape((b, 1, t)).unwrap())
        .unwrap();
    let e0 = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let y = tr.model.decoder(0).unwrap().forward(&z).unwrap();
    let d0 = t0.elapsed().as_secs_f64();
    let ms = MultiSpec::official(DType::F32, &Device::Cpu).unwrap();
    let t0 = Instant::now();
    let tg = ms.target(&x).unwrap();
    let l = ms.loss(&tg, &y, 1.0).unwrap();
    let s0 = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let _ = l.backward().unwrap();
    let sb = t0.elapsed().as_secs_f64();
    println!("level0 encoder {e0:.3}s decoder {d0:.3}s multispec fwd {s0:.3}s multispec+dec+enc bwd {sb:.3}s");
    for step in 0..3 {
        let t0 = Instant::now();
        let s = tr.train_step(&x, step).unwrap();
        println!(
            "vqvae small step {step}: {:.3}s loss {:.3}",
            t0.elapsed().as_secs_f64(),
            s.loss
        );
    }
}

#[test]
#[ignore]
fn priors_small_step_time() {
    let vq = VqvaeRunConfig::preset("small").unwrap().model;
    let hops = vq.hop_lengths();
    for level in [2usize, 1, 0] {
        let mut c = PriorRunConfig::preset("small", level, &vq).unwrap();
        if let Some(l) = &mut c.model.labels {
            l.n_artists = 20;
            l.n_genres = 10;
        }
        let n = 44100 * 20;
        let tracks = vec![CodeTrack {
            codes: hops
                .iter()
                .map(|h| (0..n / h).map(|i| (i * 7 % 512) as u32).collect())
                .collect(),
            artist: 1,
            genres: vec![1],
            offset_samples: 0,
            total_samples: n,
            name: "x".into(),
        }];
        let data = PriorData::new(&tracks, level, &hops, level < 2).unwrap();
        let mut tr = PriorTrainer::new(&c.model, &c.optim, 0, 0.4, 0.15, &Device::Cpu).unwrap();
        let n_params: usize = tr.opt.vars().map(|(_, v)| v.elem_count()).sum();
        for step in 0..3 {
            let t0 = Instant::now();
            let (b, d) = tr.train_batch(&data, c.train.batch_size, step).unwrap();
            let s = tr.train_step(&b, d, step).unwrap();
            println!(
                "prior level {level} ({:.2} M params) step {step}: {:.3}s bits {:.3}",
                n_params as f64 / 1e6,
                t0.elapsed().as_secs_f64(),
                s.bits
            );
        }
    }
}
