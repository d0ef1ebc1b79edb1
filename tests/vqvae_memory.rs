//! Long audio runs in bounded memory: at official size, encoding and decoding 4× more audio
//! raises peak RSS by no more than the input/output buffers themselves plus a small slack.
//! (Its own test binary, so no other test shares the process's peak RSS.)

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use jukebox::config::VqvaeConfig;
use jukebox::vqvae::VqVae;

fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = s.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace()
        .nth(1)
        .and_then(|k| k.parse::<f64>().ok())
        .expect("kB")
        / 1024.0
}

fn run(m: &VqVae, seconds: usize) -> f64 {
    let t = seconds * 44100 / 128 * 128;
    let x = Tensor::randn(0f32, 0.3, (1, t), &Device::Cpu).expect("x");
    let c = m.encode(&x, 2).expect("encode");
    let y = m.decode(&c, 2).expect("decode");
    assert_eq!(y.dims(), &[1, t]);
    peak_rss_mib()
}

#[test]
fn long_audio_memory_is_bounded() {
    if !std::path::Path::new("/proc/self/status").exists() {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true" || v == "1"),
            "no /proc/self/status and CI=true: the memory bound cannot be checked"
        );
        eprintln!("skipped: no /proc/self/status on this system");
        return;
    }
    // Var weights (as in training): inference must still not keep an autograd graph alive.
    let vm = VarMap::new();
    let m = VqVae::new(
        &VqvaeConfig::official(),
        VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
    )
    .expect("build");
    let short = run(&m, 13); // two chunks, each as large as any
    let long = run(&m, 39); // four chunks
                            // The 39 s input, its output and the chunk outputs being joined: ~4 × 6.6 MiB.
    let buffers = 4.0 * 39.0 * 44100.0 * 4.0 / (1 << 20) as f64;
    println!("peak RSS: 13 s {short:.0} MiB, 39 s {long:.0} MiB");
    assert!(
        long < short + buffers + 64.0,
        "peak RSS grew from {short:.0} to {long:.0} MiB"
    );
    assert!(long < 1024.0, "peak RSS {long:.0} MiB over the 1 GiB bound");
}
