//! The EMA codebook with random restarts (`openai/jukebox@08efbbc` `jukebox/vqvae/bottleneck.py` `BottleneckBlock`).
//!
//! Buffers live on the host, outside the autodiff graph. Quantisation uses the official distance
//! expansion ‖x‖² − 2x·k + ‖k‖² in f32 and takes the first minimum.

use super::rng::{CounterRng, Stream};
use candle_core::{DType, Device, Result, Tensor};

/// Codebook statistics after one update (official `update_k` metrics).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodebookStats {
    /// Entropy (nats) of this batch's code histogram.
    pub entropy: f64,
    /// Codes used at least `threshold` times in this batch.
    pub used_curr: usize,
    /// Codes whose EMA count is at or above the threshold (the rest were restarted).
    pub usage: usize,
    /// RMS change of the codebook.
    pub dk: f64,
}

impl CodebookStats {
    /// exp(entropy): the effective number of codes in use.
    pub fn perplexity(&self) -> f64 {
        self.entropy.exp()
    }
}

/// One level's codebook `k` with its EMA sums.
#[derive(Debug, Clone, PartialEq)]
pub struct EmaCodebook {
    pub bins: usize,
    pub width: usize,
    pub mu: f64,
    pub threshold: f64,
    /// (bins × width), row-major.
    pub k: Vec<f32>,
    pub k_sum: Vec<f32>,
    pub k_elem: Vec<f32>,
    /// false until the first batch fills the codebook (official `self.init`).
    pub init: bool,
}

impl EmaCodebook {
    pub fn new(bins: usize, width: usize, mu: f64) -> Self {
        Self {
            bins,
            width,
            mu,
            threshold: 1.0,
            k: vec![0.0; bins * width],
            k_sum: vec![0.0; bins * width],
            k_elem: vec![0.0; bins],
            init: false,
        }
    }

    /// Start from a trained codebook (fine-tuning). Like the official `restore_k`, the EMA sums
    /// are set to the expected usage `expected = tokens per batch / bins` so codes are not all
    /// restarted on the first step.
    pub fn restore(
        k: Vec<f32>,
        bins: usize,
        width: usize,
        mu: f64,
        tokens_per_batch: usize,
    ) -> Self {
        let expected = (tokens_per_batch as f32 / bins as f32).max(1.0);
        let k_sum = k.iter().map(|v| v * expected).collect();
        Self {
            bins,
            width,
            mu,
            threshold: 1.0,
            k,
            k_sum,
            k_elem: vec![expected; bins],
            init: true,
        }
    }

    pub fn k_tensor(&self, device: &Device) -> Result<Tensor> {
        Tensor::from_vec(self.k.clone(), (self.bins, self.width), device)
    }

    /// Nearest code for each row of x (N, width): u32 (N,).
    pub fn quantise(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.detach().to_dtype(DType::F32)?;
        let n = x.dim(0)?;
        // The inference quantiser: same fp32 expansion, blocked and parallel.
        let (codes, _) = crate::vqvae::bottleneck::nearest_codes(&x, &self.k_tensor(x.device())?)?;
        Tensor::from_vec(codes, n, x.device())
    }

    /// Encoder outputs tiled up to `bins` rows with noise when there are fewer, then `bins`
    /// rows drawn without replacement (official `_tile` + `randperm[:k_bins]`).
    fn random_rows(&self, x: &[f32], n: usize, seed: u64, level: u64, step: u64) -> Vec<f32> {
        let w = self.width;
        let reps = if n < self.bins {
            self.bins.div_ceil(n)
        } else {
            1
        };
        let std = 0.01 / (w as f64).sqrt();
        let mut pick = CounterRng::new(seed, Stream::Restart, level, step);
        let rows = pick.choose(n * reps, self.bins);
        let mut noise = CounterRng::new(seed, Stream::Noise, level, step);
        let mut out = Vec::with_capacity(self.bins * w);
        for r in rows {
            let src = &x[(r % n) * w..(r % n + 1) * w];
            if reps > 1 {
                out.extend(src.iter().map(|v| v + (noise.normal() * std) as f32));
            } else {
                out.extend_from_slice(src);
            }
        }
        out
    }

    /// Fill the codebook from a batch of encoder outputs (official `init_k`).
    pub fn init_from(&mut self, x: &Tensor, seed: u64, level: u64, step: u64) -> Result<()> {
        let (n, w) = x.dims2()?;
        self.check_width(w)?;
        let host = x
            .detach()
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        self.k = self.random_rows(&host, n, seed, level, step);
        self.k_sum = self.k.clone();
        self.k_elem = vec![1.0; self.bins];
        self.init = true;
        Ok(())
    }

    fn check_width(&self, w: usize) -> Result<()> {
        if w != self.width {
            candle_core::bail!("codebook width {} but encoder output width {w}", self.width);
        }
        Ok(())
    }

    /// EMA update with random restarts (official `update_k`). `x` (N, width) are the encoder
    /// outputs of this batch and `codes` their nearest codes under the old codebook.
    pub fn update(
        &mut self,
        x: &Tensor,
        codes: &Tensor,
        seed: u64,
        level: u64,
        step: u64,
    ) -> Result<CodebookStats> {
        let (n, w) = x.dims2()?;
        self.check_width(w)?;
        if n == 0 {
            return Err(candle_core::Error::Msg(
                "codebook update on an empty batch".into(),
            ));
        }
        let xs = x
            .detach()
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let cs = codes.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        let mut bsum = vec![0f64; self.bins * w];
        let mut belem = vec![0f64; self.bins];
        for (i, &c) in cs.iter().enumerate() {
            let c = c as usize;
            belem[c] += 1.0;
            for j in 0..w {
                bsum[c * w + j] += xs[i * w + j] as f64;
            }
        }
        let rand = self.random_rows(&xs, n, seed, level, step);
        let mu = self.mu as f32;
        let old_k = std::mem::take(&mut self.k);
        let mut k = vec![0f32; self.bins * w];
        let mut usage = 0;
        for c in 0..self.bins {
            self.k_elem[c] = mu * self.k_elem[c] + (1.0 - mu) * belem[c] as f32;
            let used = self.k_elem[c] as f64 >= self.threshold;
            usage += used as usize;
            for j in 0..w {
                let s = &mut self.k_sum[c * w + j];
                *s = mu * *s + (1.0 - mu) * bsum[c * w + j] as f32;
                k[c * w + j] = if used {
                    *s / self.k_elem[c]
                } else {
                    rand[c * w + j]
                };
            }
        }
        let entropy = -belem
            .iter()
            .map(|&e| {
                let p = e / n as f64;
                p * (p + 1e-8).ln()
            })
            .sum::<f64>();
        let used_curr = belem.iter().filter(|&&e| e >= self.threshold).count();
        let dk = (k
            .iter()
            .zip(&old_k)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            / k.len() as f64)
            .sqrt();
        self.k = k;
        Ok(CodebookStats {
            entropy,
            used_curr,
            usage,
            dk,
        })
    }

    /// Stats of `codes` for a codebook that is not being updated (decoder-only fine-tuning):
    /// no restarts and no change.
    pub fn frozen_stats(&self, codes: &[u32]) -> CodebookStats {
        let (ppl, used) = self.code_stats(codes);
        CodebookStats {
            entropy: ppl.max(1.0).ln(),
            used_curr: used,
            usage: self
                .k_elem
                .iter()
                .filter(|&&e| e as f64 >= self.threshold)
                .count(),
            dk: 0.0,
        }
    }

    /// Batch statistics of a set of codes without updating anything (validation).
    pub fn code_stats(&self, codes: &[u32]) -> (f64, usize) {
        let mut h = vec![0f64; self.bins];
        for &c in codes {
            if (c as usize) < self.bins {
                h[c as usize] += 1.0;
            }
        }
        let n = codes.len().max(1) as f64;
        let ent = -h
            .iter()
            .filter(|&&e| e > 0.0)
            .map(|&e| (e / n) * (e / n).ln())
            .sum::<f64>();
        (ent.exp(), h.iter().filter(|&&e| e > 0.0).count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: Vec<f32>, n: usize, w: usize) -> Tensor {
        Tensor::from_vec(v, (n, w), &Device::Cpu).unwrap()
    }

    #[test]
    fn quantise_takes_nearest_and_first_minimum() -> Result<()> {
        let mut cb = EmaCodebook::new(3, 2, 0.99);
        cb.k = vec![0.0, 0.0, 1.0, 1.0, 1.0, 1.0]; // codes 1 and 2 identical
        let x = t(vec![0.1, -0.1, 0.9, 1.2, 5.0, 5.0], 3, 2);
        assert_eq!(cb.quantise(&x)?.to_vec1::<u32>()?, vec![0, 1, 1]);
        Ok(())
    }

    #[test]
    fn init_tiles_small_batches_with_noise() -> Result<()> {
        let mut cb = EmaCodebook::new(8, 2, 0.99);
        let x = t(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3, 2);
        cb.init_from(&x, 7, 0, 0)?;
        assert!(cb.init);
        assert_eq!(cb.k_elem, vec![1.0; 8]);
        // Every code is a batch row plus noise of std 0.01/√2.
        for c in 0..8 {
            let row = &cb.k[c * 2..c * 2 + 2];
            let best = (0..3)
                .map(|i| {
                    ((row[0] - x.get(i).unwrap().to_vec1::<f32>().unwrap()[0]).abs())
                        .max((row[1] - (2 * i + 2) as f32).abs())
                })
                .fold(f32::MAX, f32::min);
            assert!(best < 0.05, "code {c} {row:?} is not a noised batch row");
        }
        // Distinct codes: the noise breaks ties between tiled copies.
        let mut rows: Vec<(u32, u32)> = (0..8)
            .map(|c| (cb.k[2 * c].to_bits(), cb.k[2 * c + 1].to_bits()))
            .collect();
        rows.sort();
        rows.dedup();
        assert_eq!(rows.len(), 8);
        Ok(())
    }

    #[test]
    fn ema_update_and_restart_of_dead_codes() -> Result<()> {
        let mut cb = EmaCodebook::new(2, 1, 0.5);
        cb.k = vec![0.0, 10.0];
        cb.k_sum = vec![0.0, 10.0];
        cb.k_elem = vec![1.0, 1.0];
        cb.init = true;
        // Four vectors, all nearest to code 0.
        let x = t(vec![1.0, 1.0, 3.0, 3.0], 4, 1);
        let codes = cb.quantise(&x)?;
        assert_eq!(codes.to_vec1::<u32>()?, vec![0, 0, 0, 0]);
        let st = cb.update(&x, &codes, 1, 0, 0)?;
        // code 0: k_elem = .5·1 + .5·4 = 2.5, k_sum = .5·0 + .5·8 = 4 → k = 1.6
        assert!((cb.k_elem[0] - 2.5).abs() < 1e-6);
        assert!((cb.k[0] - 1.6).abs() < 1e-6);
        // code 1: k_elem = 0.5 < 1 → restarted to one of the batch vectors (no tiling: 4 ≥ 2).
        assert!((cb.k_elem[1] - 0.5).abs() < 1e-6);
        assert!(cb.k[1] == 1.0 || cb.k[1] == 3.0, "restart {}", cb.k[1]);
        assert_eq!(st.usage, 1);
        assert_eq!(st.used_curr, 1);
        assert!(st.entropy.abs() < 1e-6);
        assert!((st.perplexity() - 1.0).abs() < 1e-6);
        // Same inputs, same seed/step → same restart; another step may differ but stays valid.
        let mut again = EmaCodebook {
            k: vec![0.0, 10.0],
            k_sum: vec![0.0, 10.0],
            k_elem: vec![1.0, 1.0],
            ..cb.clone()
        };
        again.update(&x, &codes, 1, 0, 0)?;
        assert_eq!(again.k, cb.k);
        Ok(())
    }

    #[test]
    fn restore_sets_expected_usage() {
        let cb = EmaCodebook::restore(vec![1.0, 2.0, 3.0, 4.0], 2, 2, 0.99, 100);
        assert_eq!(cb.k_elem, vec![50.0, 50.0]);
        assert_eq!(cb.k_sum, vec![50.0, 100.0, 150.0, 200.0]);
        assert_eq!(cb.code_stats(&[0, 0, 1, 1]).1, 2);
        assert!((cb.code_stats(&[0, 0, 1, 1]).0 - 2.0).abs() < 1e-9);
    }
}
