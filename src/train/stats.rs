//! Dataset statistics that normalise the VQ-VAE losses (official `calculate_bandwidth`).

use super::loss::{Stft, BANDWIDTH_STFT};
use candle_core::{DType, Device, Result, Tensor};
use serde::{Deserialize, Serialize};

/// `bw_l2` (sample variance), `bw_l1` (mean |x|), `bw_spec` (mean Frobenius norm of |STFT|
/// per window, n_fft 2048, hop 256, window 1536).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bandwidth {
    pub l2: f64,
    pub l1: f64,
    pub spec: f64,
}

impl Bandwidth {
    /// Over a set of audio windows. Floors keep a silent corpus from dividing by zero.
    pub fn compute<'a>(windows: impl IntoIterator<Item = &'a [f32]>) -> Result<Self> {
        let stft = Stft::new(BANDWIDTH_STFT, DType::F64, &Device::Cpu)?;
        let (mut n, mut sum, mut sq, mut l1) = (0f64, 0f64, 0f64, 0f64);
        let (mut spec_total, mut spec_n) = (0f64, 0f64);
        for w in windows {
            if w.is_empty() {
                continue;
            }
            for &v in w {
                let v = v as f64;
                sum += v;
                sq += v * v;
                l1 += v.abs();
            }
            n += w.len() as f64;
            let x = Tensor::from_vec(
                w.iter().map(|&v| v as f64).collect::<Vec<_>>(),
                (1, w.len()),
                &Device::Cpu,
            )?;
            let mag = stft.magnitude(&x)?;
            spec_total += mag.sqr()?.sum_all()?.to_scalar::<f64>()?.sqrt();
            spec_n += 1.0;
        }
        if n == 0.0 {
            return Err(candle_core::Error::Msg(
                "no audio to compute bandwidths from".into(),
            ));
        }
        let mean = sum / n;
        Ok(Self {
            l2: (sq / n - mean * mean).max(1e-8),
            l1: (l1 / n).max(1e-8),
            spec: (spec_total / spec_n).max(1e-6),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidth_of_a_sine() -> Result<()> {
        let sr = 44100.0;
        let w: Vec<f32> = (0..8192)
            .map(|i| (0.5 * (std::f64::consts::TAU * 441.0 * i as f64 / sr).sin()) as f32)
            .collect();
        let bw = Bandwidth::compute([w.as_slice()])?;
        assert!((bw.l2 - 0.125).abs() < 1e-3, "var {}", bw.l2); // A²/2
        assert!(
            (bw.l1 - 0.5 * 2.0 / std::f64::consts::PI).abs() < 2e-3,
            "l1 {}",
            bw.l1
        );
        assert!(bw.spec > 1.0);
        // Doubling the amplitude doubles the spectral norm.
        let w2: Vec<f32> = w.iter().map(|v| v * 2.0).collect();
        let bw2 = Bandwidth::compute([w2.as_slice()])?;
        assert!((bw2.spec / bw.spec - 2.0).abs() < 1e-6);
        assert!(Bandwidth::compute(std::iter::empty::<&[f32]>()).is_err());
        let silent = vec![0f32; 4096];
        assert!(Bandwidth::compute([silent.as_slice()])?.l2 > 0.0);
        Ok(())
    }
}
