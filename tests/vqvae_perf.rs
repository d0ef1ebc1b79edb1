//! Official-size VQ-VAE throughput and memory. Slow on 2 cores, so `#[ignore]`d:
//! `cargo test --release --test vqvae_perf -- --ignored --nocapture`.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use jukebox::config::VqvaeConfig;
use jukebox::vqvae::VqVae;
use std::time::Instant;

fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[test]
#[ignore]
fn official_size_throughput() {
    let vm = VarMap::new();
    let m = VqVae::new(&VqvaeConfig::official(), VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).expect("build");
    let secs: usize = std::env::var("VQ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let t = secs * 44100 / 128 * 128;
    let x = (Tensor::randn(0f32, 0.3, (1, t), &Device::Cpu).expect("x")).clamp(-1f32, 1f32).expect("clamp");
    for l in 0..3 {
        let t0 = Instant::now();
        let c = m.encode(&x, l).expect("encode");
        let te = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let y = m.decode(&c, l).expect("decode");
        let td = t0.elapsed().as_secs_f64();
        assert_eq!(y.dims(), &[1, t]);
        println!(
            "level {l}: {secs} s of audio: encode {te:.2} s ({:.1}x real time), decode {td:.2} s ({:.1}x real time), peak RSS {:.0} MiB",
            secs as f64 / te,
            secs as f64 / td,
            peak_rss_mib().unwrap_or(f64::NAN)
        );
    }
}

#[test]
#[ignore]
fn conv_micro() {
    let x = Tensor::randn(0f32, 1., (1, 64, 220_000), &Device::Cpu).expect("x");
    let w = Tensor::randn(0f32, 1., (64, 64, 3), &Device::Cpu).expect("w");
    for d in [1usize, 27, 2187] {
        let t0 = Instant::now();
        for _ in 0..5 {
            let _y = jukebox::ops::conv1d(&x, &w, None, 1, d, d).expect("conv");
        }
        println!("dil {d}: {:.1} ms per conv, peak RSS {:.0} MiB", t0.elapsed().as_secs_f64() * 200.0, peak_rss_mib().unwrap_or(0.0));
    }
    let x2 = Tensor::randn(0f32, 1., (1, 32, 220_000), &Device::Cpu).expect("x");
    let w2 = Tensor::randn(0f32, 1., (32, 32, 3), &Device::Cpu).expect("w");
    let t0 = Instant::now();
    for _ in 0..5 {
        let _y = jukebox::ops::conv1d(&x2, &w2, None, 1, 1, 1).expect("conv");
    }
    println!("w32: {:.1} ms per conv", t0.elapsed().as_secs_f64() * 200.0);
    let t0 = Instant::now();
    for _ in 0..5 {
        let _y = x.matmul(&Tensor::zeros((1, 220_000, 1), DType::F32, &Device::Cpu).unwrap()).unwrap();
    }
    let wj = w.narrow(2, 0, 1).unwrap().squeeze(2).unwrap();
    let t0 = Instant::now();
    for _ in 0..5 {
        let _y = wj.broadcast_left(1).unwrap().matmul(&x).unwrap();
    }
    println!("one contiguous matmul 64x64x220k: {:.1} ms", t0.elapsed().as_secs_f64() * 200.0);
    let wc = wj.contiguous().unwrap();
    let t0 = Instant::now();
    for _ in 0..5 {
        let _y = wc.broadcast_left(1).unwrap().matmul(&x).unwrap();
    }
    println!("contiguous w matmul: {:.1} ms", t0.elapsed().as_secs_f64() * 200.0);
}

#[test]
#[ignore]
fn conv_im2col_micro() {
    let x = Tensor::randn(0f32, 1., (1, 64, 220_000), &Device::Cpu).expect("x");
    let w = Tensor::randn(0f32, 1., (64, 64, 3), &Device::Cpu).expect("w");
    let d = 27;
    let t0 = Instant::now();
    for _ in 0..5 {
        let _y = jukebox::ops::conv1d(&x, &w, None, 1, d, d).expect("conv");
    }
    println!("shifted: {:.1} ms per conv", t0.elapsed().as_secs_f64() * 200.0);
    let t0 = Instant::now();
    let mut y2 = None;
    for _ in 0..5 {
        let xp = x.pad_with_zeros(2, d, d).unwrap();
        let cols: Vec<Tensor> = (0..3).map(|j| xp.narrow(2, j * d, 220_000).unwrap()).collect();
        let xc = Tensor::cat(&cols, 1).unwrap();
        let wc = w.permute((0, 2, 1)).unwrap().contiguous().unwrap().reshape((64, 192)).unwrap();
        y2 = Some(wc.broadcast_left(1).unwrap().matmul(&xc).unwrap());
    }
    println!("im2col: {:.1} ms per conv", t0.elapsed().as_secs_f64() * 200.0);
    let y1 = jukebox::ops::conv1d(&x, &w, None, 1, d, d).expect("conv");
    let e = (y1 - y2.unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    println!("diff {e}");
    let t0 = Instant::now();
    for _ in 0..5 {
        let _ = x.pad_with_zeros(2, d, d).unwrap();
    }
    println!("pad: {:.1} ms", t0.elapsed().as_secs_f64() * 200.0);
    let t0 = Instant::now();
    for _ in 0..5 {
        let _ = (&x + &x).unwrap();
    }
    println!("add: {:.1} ms", t0.elapsed().as_secs_f64() * 200.0);
    let t0 = Instant::now();
    for _ in 0..5 {
        let _ = x.relu().unwrap();
    }
    println!("relu: {:.1} ms", t0.elapsed().as_secs_f64() * 200.0);
}
