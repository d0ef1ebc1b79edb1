//! VQ-VAE and prior training losses (`openai/jukebox@08efbbc` `jukebox/vqvae/vqvae.py` `_loss_fn`, `jukebox/utils/audio_utils.py` `multispectral_loss`; the prior's cross-entropy of `jukebox/prior/autoregressive.py`), built from differentiable candle ops.
//!
//! The STFT is framing (one `index_select`) plus a matmul with a windowed DFT basis, so it
//! trains through; candle has no differentiable FFT.

use candle_core::{DType, Device, Result, Tensor, D};

/// One STFT configuration: (n_fft, hop, window) as in `multispec_loss_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StftConfig {
    pub n_fft: usize,
    pub hop: usize,
    pub window: usize,
}

/// The three configurations of the official multispectral loss.
pub const MULTISPEC: [StftConfig; 3] = [
    StftConfig {
        n_fft: 2048,
        hop: 240,
        window: 1200,
    },
    StftConfig {
        n_fft: 1024,
        hop: 120,
        window: 600,
    },
    StftConfig {
        n_fft: 512,
        hop: 50,
        window: 240,
    },
];

/// The configuration used for the `bw_spec` dataset statistic.
pub const BANDWIDTH_STFT: StftConfig = StftConfig {
    n_fft: 2048,
    hop: 256,
    window: 1536,
};

/// Small constant inside square roots so that the gradient stays finite at exact zeros
/// (torch's `norm` backward returns 0 there; candle's `sqrt` would give inf·0 = NaN).
const SQRT_EPS: f64 = 1e-12;

/// Reflect index as `torch.stft(center=True, pad_mode='reflect')` pads, bouncing again when the
/// signal is shorter than the pad (torch refuses that case; we keep going).
fn reflect(i: i64, n: i64) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let mut j = i.rem_euclid(period);
    if j >= n {
        j = period - j;
    }
    j as usize
}

/// A windowed DFT basis for one configuration, built once and reused every step.
pub struct Stft {
    pub cfg: StftConfig,
    /// (window, 2·bins): the Hann-windowed cos columns, then the sin columns.
    basis: Tensor,
}

impl Stft {
    pub fn new(cfg: StftConfig, dtype: DType, device: &Device) -> Result<Self> {
        let StftConfig { n_fft, window, .. } = cfg;
        if window == 0 || window > n_fft {
            candle_core::bail!("stft window {window} must be in 1..={n_fft}");
        }
        let bins = n_fft / 2 + 1;
        let off = (n_fft - window) / 2; // torch centres a short window inside n_fft
        let mut b = vec![0f64; window * 2 * bins];
        for n in 0..window {
            // torch.hann_window is periodic.
            let w = 0.5 - 0.5 * (std::f64::consts::TAU * n as f64 / window as f64).cos();
            for k in 0..bins {
                let ph = std::f64::consts::TAU * ((k * (n + off)) % n_fft) as f64 / n_fft as f64;
                b[n * 2 * bins + k] = w * ph.cos();
                b[n * 2 * bins + bins + k] = -w * ph.sin();
            }
        }
        let basis = Tensor::from_vec(b, (window, 2 * bins), device)?.to_dtype(dtype)?;
        Ok(Self { cfg, basis })
    }

    pub fn bins(&self) -> usize {
        self.cfg.n_fft / 2 + 1
    }

    pub fn frames(&self, len: usize) -> usize {
        1 + len / self.cfg.hop // (len + 2·(n_fft/2) − n_fft) / hop + 1
    }

    /// The reflect-padded frames of x (B, T): (B·frames, window), and the frame count.
    fn framed(&self, x: &Tensor) -> Result<(Tensor, usize)> {
        let (b, t) = x.dims2()?;
        let StftConfig { n_fft, hop, window } = self.cfg;
        let pad = (n_fft / 2) as i64;
        let off = ((n_fft - window) / 2) as i64;
        let frames = self.frames(t);
        let mut idx = Vec::with_capacity(frames * window);
        for f in 0..frames as i64 {
            for n in 0..window as i64 {
                idx.push(reflect(f * hop as i64 + off + n - pad, t as i64) as u32);
            }
        }
        let idx = Tensor::from_vec(idx, frames * window, x.device())?;
        let framed = x.index_select(&idx, 1)?.reshape((b * frames, window))?;
        Ok((framed, frames))
    }

    /// |STFT(x)| for x of shape (B, T): (B, frames, bins). Centre-padded with reflection.
    pub fn magnitude(&self, x: &Tensor) -> Result<Tensor> {
        // The FFT op is CPU-only; on a GPU the DFT-basis matmul is the fast way anyway.
        if !x.device().is_cpu() {
            return self.magnitude_dft(x);
        }
        let b = x.dim(0)?;
        let StftConfig { n_fft, window, .. } = self.cfg;
        let off = (n_fft - window) / 2;
        let (framed, frames) = self.framed(x)?;
        // Window, centre inside n_fft, then |rfft| by FFT (the DFT-basis matmul cost n_fft² per
        // frame and dominated training time; `basis` remains as the reference in tests).
        let hann: Vec<f64> = (0..window)
            .map(|n| 0.5 - 0.5 * (std::f64::consts::TAU * n as f64 / window as f64).cos())
            .collect();
        let hann = Tensor::from_vec(hann, (1, window), x.device())?.to_dtype(x.dtype())?;
        let wf = framed.broadcast_mul(&hann)?;
        let padded = if window < n_fft {
            wf.pad_with_zeros(1, off, n_fft - window - off)?
        } else {
            wf
        };
        let mag = crate::spectral::rfft_magnitude(&padded)?;
        mag.reshape((b, frames, self.bins()))
    }
}

impl Stft {
    /// The same magnitudes by a DFT-basis matmul: the slow reference the FFT path is tested against.
    pub fn magnitude_dft(&self, x: &Tensor) -> Result<Tensor> {
        let b = x.dim(0)?;
        let (framed, frames) = self.framed(x)?;
        let spec = framed.matmul(&self.basis.to_dtype(x.dtype())?)?;
        let bins = self.bins();
        let re = spec.narrow(1, 0, bins)?;
        let im = spec.narrow(1, bins, bins)?;
        ((re.sqr()? + im.sqr()?)? + SQRT_EPS)?
            .sqrt()?
            .reshape((b, frames, bins))
    }
}

/// Per-example Frobenius norm of a (B, ...) tensor: (B,).
pub fn per_example_norm(x: &Tensor) -> Result<Tensor> {
    let b = x.dim(0)?;
    (x.reshape((b, ()))?.sqr()?.sum(1)? + SQRT_EPS)?.sqrt()
}

/// The multi-resolution STFT loss with its bases (official `multispectral_loss`).
pub struct MultiSpec {
    pub stfts: Vec<Stft>,
}

impl MultiSpec {
    pub fn new(cfgs: &[StftConfig], dtype: DType, device: &Device) -> Result<Self> {
        Ok(Self {
            stfts: cfgs
                .iter()
                .map(|c| Stft::new(*c, dtype, device))
                .collect::<Result<_>>()?,
        })
    }

    pub fn official(dtype: DType, device: &Device) -> Result<Self> {
        Self::new(&MULTISPEC, dtype, device)
    }

    /// Target magnitudes, computed once per batch and shared by every level's loss.
    pub fn target(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let x = flat(x)?.detach();
        self.stfts.iter().map(|s| s.magnitude(&x)).collect()
    }

    /// mean over the batch of (mean over configs of ‖|S(x)| − |S(x̂)|‖_F) / bw_spec.
    pub fn loss(&self, target: &[Tensor], x_hat: &Tensor, bw_spec: f64) -> Result<Tensor> {
        let x_hat = flat(x_hat)?;
        let mut acc: Option<Tensor> = None;
        for (s, tgt) in self.stfts.iter().zip(target) {
            let d = per_example_norm(&(s.magnitude(&x_hat)? - tgt)?)?;
            acc = Some(match acc {
                None => d,
                Some(a) => (a + d)?,
            });
        }
        let acc = acc.ok_or_else(|| {
            candle_core::Error::Msg("multispectral loss with no STFT configs".into())
        })?;
        ((acc / self.stfts.len() as f64)? / bw_spec)?.mean_all()
    }
}

/// (B, 1, T) or (B, T, 1) or (B, T) → (B, T).
fn flat(x: &Tensor) -> Result<Tensor> {
    let b = x.dim(0)?;
    x.reshape((b, ()))
}

/// Official `lmix`: l2·mean(r²)/bw_l2 + linf·mean(top-k of r² per example)/bw_l2.
pub fn lmix(
    x: &Tensor,
    x_hat: &Tensor,
    bw_l2: f64,
    l2: f64,
    linf: f64,
    linf_k: usize,
) -> Result<Tensor> {
    let r2 = (flat(x_hat)? - flat(x)?)?.sqr()?;
    let mut loss = ((r2.mean_all()? * l2)? / bw_l2)?;
    if linf != 0.0 {
        let top = topk_rows(&r2, linf_k)?;
        loss = (loss + ((top.mean_all()? * linf)? / bw_l2)?)?;
    }
    Ok(loss)
}

/// The `k` largest entries of each row of (B, T), as a differentiable gather (B, min(k, T)).
/// Indices are chosen on the host; ties keep the earlier index.
pub fn topk_rows(x: &Tensor, k: usize) -> Result<Tensor> {
    let (b, t) = x.dims2()?;
    let k = k.min(t).max(1);
    let host = x.detach().to_dtype(DType::F64)?.to_vec2::<f64>()?;
    let mut idx = Vec::with_capacity(b * k);
    for row in &host {
        let mut order: Vec<u32> = (0..t as u32).collect();
        let cmp = |a: &u32, c: &u32| row[*c as usize].total_cmp(&row[*a as usize]).then(a.cmp(c));
        if k < t {
            order.select_nth_unstable_by(k - 1, cmp);
            order.truncate(k);
        }
        order.sort_unstable();
        idx.extend(order);
    }
    let idx = Tensor::from_vec(idx, (b, k), x.device())?;
    x.gather(&idx, 1)
}

/// Official commitment loss ‖sg(x_d) − x‖² / numel.
pub fn commit_loss(x: &Tensor, x_d: &Tensor) -> Result<Tensor> {
    (x_d.detach() - x)?.sqr()?.mean_all()
}

/// Straight-through estimator: the value of `x_d`, the gradient of `x`.
pub fn straight_through(x: &Tensor, x_d: &Tensor) -> Result<Tensor> {
    x + (x_d - x)?.detach()
}

/// Row-wise log-softmax over the last dim, composed of differentiable ops.
pub fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let z = logits.broadcast_sub(&max)?;
    let lse = z.exp()?.sum_keepdim(D::Minus1)?.log()?;
    z.broadcast_sub(&lse)
}

#[cfg(test)]
mod tests;
