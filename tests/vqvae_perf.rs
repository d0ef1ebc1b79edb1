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
    // Trainable (Var) weights on purpose: inference must not keep their graph alive.
    let vm = VarMap::new();
    let m = VqVae::new(
        &VqvaeConfig::official(),
        VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
    )
    .expect("build");
    let secs: usize = std::env::var("VQ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let t = secs * 44100 / 128 * 128;
    let x = (Tensor::randn(0f32, 0.3, (1, t), &Device::Cpu).expect("x"))
        .clamp(-1f32, 1f32)
        .expect("clamp");
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
