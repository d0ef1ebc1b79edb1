//! VQ-VAE throughput per level, in seconds of audio per wall second (random weights).

use super::{random_vb, reset_peak_rss, sys, time_reps, Measurement};
use crate::config::VqvaeConfig;
use crate::util::uniform;
use crate::vqvae::VqVae;
use candle_core::{DType, Device, Result, Tensor};

#[derive(Debug, Clone)]
pub struct VqvaeBenchOpts {
    /// `official` (the released VQ-VAE) or `small` (the fixture one).
    pub preset: String,
    pub cfg: VqvaeConfig,
    /// Seconds of audio per pass (rounded down to a multiple of the top hop).
    pub seconds: f64,
    pub reps: usize,
}

/// The fixture VQ-VAE (bench.py's `small`).
pub fn small_vqvae() -> VqvaeConfig {
    VqvaeConfig {
        emb_width: 16,
        l_bins: 64,
        width: 16,
        depth: 2,
        ..VqvaeConfig::official()
    }
}

pub fn bench_vqvae(
    o: &VqvaeBenchOpts,
    dev: &Device,
    emit: &mut dyn FnMut(Measurement),
) -> Result<()> {
    let cfg = &o.cfg;
    let top = cfg.hop_length(cfg.levels - 1);
    let n = ((o.seconds * cfg.sample_rate as f64) as usize / top).max(1) * top;
    let audio_s = n as f64 / cfg.sample_rate as f64;
    let vq = VqVae::new(cfg, random_vb(2, DType::F32, dev))?;
    // Gaussian-ish audio at 0.3 RMS (sum of 4 uniforms), as bench.py's 0.3·randn.
    let x: Vec<f32> = (0..n as u64)
        .map(|i| {
            let s: f64 = (0..4).map(|k| uniform(4, k, 0, i) - 0.5).sum();
            (0.3 * s * 3f64.sqrt()) as f32
        })
        .collect();
    let audio = Tensor::from_vec(x, (1, n), dev)?;
    let mut record = |kind: String, best: f64, med: f64| {
        let mut m = Measurement::new(&kind, &o.preset, "f32");
        m.batch = Some(1);
        m.wall_s = best;
        m.wall_s_median = Some(med);
        m.audio_s_per_wall_s = Some(audio_s / best);
        m.peak_rss = sys::peak_rss();
        emit(m);
    };
    reset_peak_rss();
    let (b, md) = time_reps(o.reps, || vq.encode_all(&audio))?;
    record("vqvae_encode_all_levels".into(), b, md);
    let mut codes = Vec::with_capacity(cfg.levels);
    for l in 0..cfg.levels {
        reset_peak_rss();
        let (b, md) = time_reps(o.reps, || vq.encode(&audio, l))?;
        record(format!("vqvae_encode_level{l}"), b, md);
        codes.push(vq.encode(&audio, l)?);
    }
    for (l, c) in codes.iter().enumerate() {
        reset_peak_rss();
        let (b, md) = time_reps(o.reps, || vq.decode(c, l))?;
        record(format!("vqvae_decode_level{l}"), b, md);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vqvae_harness_smoke() {
        let o = VqvaeBenchOpts {
            preset: "small".into(),
            cfg: small_vqvae(),
            seconds: 0.05,
            reps: 1,
        };
        let mut got = vec![];
        bench_vqvae(&o, &Device::Cpu, &mut |m| got.push(m)).unwrap();
        let kinds: Vec<&str> = got.iter().map(|m| m.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "vqvae_encode_all_levels",
                "vqvae_encode_level0",
                "vqvae_encode_level1",
                "vqvae_encode_level2",
                "vqvae_decode_level0",
                "vqvae_decode_level1",
                "vqvae_decode_level2"
            ]
        );
        // 0.05 s rounds down to 17 hops of 128 samples.
        let audio_s = 17.0 * 128.0 / 44100.0;
        for m in &got {
            let r = m.audio_s_per_wall_s.unwrap();
            assert!((r * m.wall_s - audio_s).abs() < 1e-9, "{}", m.kind);
        }
    }
}
