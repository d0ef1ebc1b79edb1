//! One VQ-VAE training step, validation and checkpoint state (`openai/jukebox@08efbbc` `jukebox/vqvae/vqvae.py` `VQVAE.forward`).

use super::ckpt::{Checkpoint, LoopState};
use super::ema::{CodebookStats, EmaCodebook};
use super::init::init_varmap;
use super::loss::{commit_loss, lmix, straight_through, MultiSpec, StftConfig, MULTISPEC};
use super::optim::{Adam, OptimConfig, StepInfo};
use super::stats::Bandwidth;
use crate::config::VqvaeConfig;
use crate::vqvae::VqVae;
use candle_core::{DType, Device, Module, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Loss weights (official names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VqLossConfig {
    pub lmix_l2: f64,
    pub lmix_linf: f64,
    pub linf_k: usize,
    pub multispectral: f64,
    /// (n_fft, hop, window) triples; the official three by default.
    pub multispec: Vec<(usize, usize, usize)>,
    /// Weight of the shift-consistency term (not in the official code; 0 = off): each step the
    /// batch is also encoded starting `s` samples later (1 ≤ s ≤ `shift_max`, drawn per step),
    /// and each level's latents are pulled towards the unshifted latents of the tokens they
    /// overlap most (mean squared difference relative to the unshifted side's mean square, that
    /// side detached). Codes that change
    /// when the audio moves by a fraction of a hop make a repeated bar a new code sequence each
    /// time (`jukebox quality`, "Code stability under small shifts").
    pub shift_consistency: f64,
    /// Largest shift in samples; 0 = half the top level's hop.
    pub shift_max: usize,
    /// What the shifted latents are pulled towards: `embedding`, the unshifted latents, or
    /// `code`, the codebook vectors the unshifted window chose (as the commitment loss pulls
    /// latents to their own code), so that the code itself is what a shift keeps. Pulling
    /// embeddings left the top level's codes as unstable as before (models/default/TRAINING.md,
    /// "Toward v3"): its codes lie close together and small moves still cross a boundary.
    pub shift_target: ShiftTarget,
    /// The term's weight per level, multiplying `shift_consistency` (empty = 1 for every level),
    /// e.g. `[0, 0, 10]` to train the top level's stability alone.
    pub shift_level_weights: Vec<f64>,
}

/// The target of the shift-consistency term ([`VqLossConfig::shift_target`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShiftTarget {
    #[default]
    Embedding,
    Code,
}

impl Default for VqLossConfig {
    fn default() -> Self {
        Self {
            lmix_l2: 1.0,
            lmix_linf: 0.02,
            linf_k: 2048,
            multispectral: 1.0,
            multispec: MULTISPEC
                .iter()
                .map(|c| (c.n_fft, c.hop, c.window))
                .collect(),
            shift_consistency: 0.0,
            shift_max: 0,
            shift_target: ShiftTarget::Embedding,
            shift_level_weights: vec![],
        }
    }
}

/// The parts of one batch's loss, per level.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VqParts {
    pub recons: Vec<f64>,
    pub spectral: Vec<f64>,
    pub commit: Vec<f64>,
    /// Shift-consistency term per level (empty when it is off).
    pub shift: Vec<f64>,
    pub codebook: Vec<CodebookStats>,
}

/// Per-step numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct VqStep {
    pub loss: f64,
    pub recons: Vec<f64>,
    pub spectral: Vec<f64>,
    pub commit: Vec<f64>,
    pub shift: Vec<f64>,
    pub codebook: Vec<CodebookStats>,
    pub opt: StepInfo,
}

impl VqStep {
    pub fn values(&self) -> BTreeMap<String, f64> {
        let mut v = BTreeMap::from([
            ("loss".to_string(), self.loss),
            ("lr".to_string(), self.opt.lr),
            ("grad_norm".to_string(), self.opt.grad_norm),
        ]);
        for l in 0..self.recons.len() {
            // NaN: a level left out of decoder-only fine-tuning (no loss computed).
            for (name, x) in [
                ("recons", self.recons[l]),
                ("spectral", self.spectral[l]),
                ("commit", self.commit[l]),
            ] {
                if !x.is_nan() {
                    v.insert(format!("{name}_l{l}"), x);
                }
            }
            if let Some(x) = self.shift.get(l) {
                v.insert(format!("shift_l{l}"), *x);
            }
            v.insert(format!("usage_l{l}"), self.codebook[l].usage as f64);
            v.insert(format!("perplexity_l{l}"), self.codebook[l].perplexity());
        }
        v
    }
}

/// Validation numbers per level.
#[derive(Debug, Clone, PartialEq)]
pub struct VqEval {
    /// Reconstruction SNR in dB: 10·log10(Σx² / Σ(x − x̂)²).
    pub snr_db: Vec<f64>,
    /// Multi-resolution STFT distance (mean per-window Frobenius norm, not normalised).
    pub spec_dist: Vec<f64>,
    /// Distinct codes used on the validation windows.
    pub codes_used: Vec<usize>,
    /// exp(entropy) of the validation code histogram.
    pub perplexity: Vec<f64>,
    /// Share of codes unchanged when the windows start an eighth of the level's hop later.
    pub shift_share: Vec<f64>,
}

impl VqEval {
    pub fn values(&self) -> BTreeMap<String, f64> {
        let mut v = BTreeMap::new();
        for l in 0..self.snr_db.len() {
            v.insert(format!("snr_db_l{l}"), self.snr_db[l]);
            v.insert(format!("spec_dist_l{l}"), self.spec_dist[l]);
            v.insert(format!("usage_l{l}"), self.codes_used[l] as f64);
            v.insert(format!("perplexity_l{l}"), self.perplexity[l]);
            v.insert(format!("shift_share_l{l}"), self.shift_share[l]);
        }
        v
    }
}

/// Column names of the VQ-VAE log for `levels` levels.
pub fn log_columns(levels: usize) -> Vec<String> {
    let mut c: Vec<String> = ["loss", "lr", "grad_norm", "step_s"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for l in 0..levels {
        for m in [
            "recons",
            "spectral",
            "commit",
            "shift",
            "usage",
            "perplexity",
            "snr_db",
            "spec_dist",
            "shift_share",
        ] {
            c.push(format!("{m}_l{l}"));
        }
    }
    c
}

/// The VQ-VAE with its optimiser and codebooks.
pub struct VqTrainer {
    pub cfg: VqvaeConfig,
    pub loss_cfg: VqLossConfig,
    pub varmap: VarMap,
    pub model: VqVae,
    pub codebooks: Vec<EmaCodebook>,
    pub opt: Adam,
    pub bw: Bandwidth,
    ms: MultiSpec,
    pub seed: u64,
    pub device: Device,
    /// Decoder-only fine-tuning ([`Self::freeze_codes`]): the levels whose decoders train.
    frozen: Option<Vec<usize>>,
}

/// The variables of `varmap` whose names pass `keep`, for the optimiser.
fn named_vars(varmap: &VarMap, keep: impl Fn(&str) -> bool) -> Result<Vec<(String, Var)>> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("VarMap lock poisoned".into()))?;
    Ok(data
        .iter()
        .filter(|(k, _)| keep(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect())
}

fn codebook_key(l: usize) -> String {
    format!("bottleneck.level_blocks.{l}.k")
}

impl VqTrainer {
    /// A freshly initialised model (weights from `seed`, codebooks filled on the first batch).
    pub fn new(
        cfg: &VqvaeConfig,
        loss_cfg: &VqLossConfig,
        optim: &OptimConfig,
        bw: Bandwidth,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let w = &loss_cfg.shift_level_weights;
        if !(w.is_empty() || w.len() == cfg.levels) {
            candle_core::bail!(
                "[loss] shift_level_weights has {} values; give one per level ({}) or none",
                w.len(),
                cfg.levels
            );
        }
        if let Some(x) = std::iter::once(&loss_cfg.shift_consistency)
            .chain(w)
            .find(|x| !(x.is_finite() && **x >= 0.0))
        {
            candle_core::bail!("[loss] shift weights must be finite and >= 0, got {x}");
        }
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let model = VqVae::new(cfg, vb)?;
        init_varmap(&varmap, seed, 1.0)?;
        let opt = Adam::new(
            named_vars(&varmap, |k| !k.starts_with("bottleneck."))?,
            optim.clone(),
        )?;
        let codebooks = (0..cfg.levels)
            .map(|_| EmaCodebook::new(cfg.l_bins, cfg.emb_width, cfg.l_mu))
            .collect();
        let stfts: Vec<StftConfig> = loss_cfg
            .multispec
            .iter()
            .map(|&(n_fft, hop, window)| StftConfig { n_fft, hop, window })
            .collect();
        let ms = MultiSpec::new(&stfts, DType::F32, device)?;
        Ok(Self {
            cfg: cfg.clone(),
            loss_cfg: loss_cfg.clone(),
            varmap,
            model,
            codebooks,
            opt,
            bw,
            ms,
            seed,
            device: device.clone(),
            frozen: None,
        })
    }

    /// Train only the decoders of `levels` (every level when empty) from now on: the encoders
    /// and codebooks stay as loaded, so every code the model gives stays the same and priors
    /// trained on those codes stay valid. The optimiser is rebuilt over those decoders alone;
    /// call this before [`Self::restore`]. The commitment and shift terms have no trainable
    /// input here and are left out of the loss (commitment is still reported).
    pub fn freeze_codes(&mut self, levels: &[usize]) -> Result<()> {
        if self.loss_cfg.shift_consistency > 0.0 {
            candle_core::bail!(
                "[finetune] decoders_only keeps every code as it is: set [loss] shift_consistency = 0"
            );
        }
        let levels: Vec<usize> = if levels.is_empty() {
            (0..self.cfg.levels).collect()
        } else {
            levels.to_vec()
        };
        if let Some(l) = levels.iter().find(|&&l| l >= self.cfg.levels) {
            candle_core::bail!(
                "[finetune] levels: the VQ-VAE has no level {l} (it has {})",
                self.cfg.levels
            );
        }
        let prefixes: Vec<String> = levels.iter().map(|l| format!("decoders.{l}.")).collect();
        let vars = named_vars(&self.varmap, |k| prefixes.iter().any(|p| k.starts_with(p)))?;
        self.opt = Adam::new(vars, self.opt.cfg.clone())?;
        self.frozen = Some(levels);
        Ok(())
    }

    /// Whether level `l`'s loss is computed this step (every level unless fine-tuning others).
    fn trains_level(&self, l: usize) -> bool {
        self.frozen.as_ref().is_none_or(|ls| ls.contains(&l))
    }

    fn set_codebook_var(&self, l: usize) -> Result<()> {
        let data = self
            .varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("VarMap lock poisoned".into()))?;
        let key = codebook_key(l);
        let Some(var) = data.get(&key) else {
            candle_core::bail!("model has no `{key}`");
        };
        var.set(&self.codebooks[l].k_tensor(&self.device)?)
    }

    /// Start from trained weights (fine-tuning): every model key must be present.
    pub fn load_weights(
        &mut self,
        weights: &HashMap<String, Tensor>,
        tokens_per_batch: &[usize],
    ) -> anyhow::Result<()> {
        let data = self
            .varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("VarMap lock poisoned".into()))?;
        let mut want: Vec<(&str, &[usize])> =
            data.iter().map(|(k, v)| (k.as_str(), v.dims())).collect();
        let cb_keys: Vec<(String, Vec<usize>)> = (0..self.cfg.levels)
            .map(|l| (codebook_key(l), vec![self.cfg.l_bins, self.cfg.emb_width]))
            .collect();
        want.extend(cb_keys.iter().map(|(k, s)| (k.as_str(), s.as_slice())));
        super::ckpt::check_present("the initial weights", want, weights)?;
        for (k, var) in data.iter() {
            var.set(&weights[k].to_dtype(DType::F32)?.to_device(&self.device)?)?;
        }
        drop(data);
        for l in 0..self.cfg.levels {
            let k = weights[&codebook_key(l)]
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            self.codebooks[l] = EmaCodebook::restore(
                k,
                self.cfg.l_bins,
                self.cfg.emb_width,
                self.cfg.l_mu,
                tokens_per_batch[l],
            );
        }
        Ok(())
    }

    /// Encode, quantise (updating the codebooks when `train`), decode: per level
    /// (latent, dequantised latent, codes, stats).
    fn forward_level(
        &mut self,
        x: &Tensor,
        l: usize,
        step: u64,
        train: bool,
    ) -> Result<(Tensor, Tensor, Tensor, Option<CodebookStats>)> {
        let (b, t) = x.dims2()?;
        let z = self.model.encoder(l)?.forward(&x.reshape((b, 1, t))?)?; // (B, W, T_l)
        let (_, w, tl) = z.dims3()?;
        let zf = z.transpose(1, 2)?.reshape((b * tl, w))?.detach();
        let cb = &mut self.codebooks[l];
        let mut stats = None;
        if train {
            if !cb.init {
                cb.init_from(&zf, self.seed, l as u64, step)?;
            }
            let codes = cb.quantise(&zf)?;
            stats = Some(cb.update(&zf, &codes, self.seed, l as u64, step)?);
            self.set_codebook_var(l)?;
        }
        let cb = &self.codebooks[l];
        // The official code dequantises with the freshly updated codebook.
        let codes = cb.quantise(&zf)?;
        let k = cb.k_tensor(&self.device)?;
        let zd = k
            .index_select(&codes, 0)?
            .reshape((b, tl, w))?
            .transpose(1, 2)?
            .contiguous()?;
        Ok((z, zd, codes, stats))
    }

    /// The total training loss of a batch (B, T) at 0-based `step`, with its parts. Updates
    /// the codebooks (EMA) as a side effect, as the official forward pass does.
    pub fn loss(&mut self, x: &Tensor, step: u64) -> Result<(Tensor, VqParts)> {
        let levels = self.cfg.levels;
        let target = self.ms.target(x)?;
        let mut total: Option<Tensor> = None;
        let mut parts = VqParts::default();
        let shifted = self.shifted_batch(x, step)?;
        let frozen = self.frozen.is_some();
        for l in 0..levels {
            if !self.trains_level(l) {
                for v in [&mut parts.recons, &mut parts.spectral, &mut parts.commit] {
                    v.push(f64::NAN);
                }
                parts.codebook.push(self.codebooks[l].frozen_stats(&[]));
                continue;
            }
            let (z, zd, codes, stats) = self.forward_level(x, l, step, !frozen)?;
            // Frozen codes: no gradient reaches the encoder, so none is traced through it.
            let z = if frozen { z.detach() } else { z };
            // A training pass updates the codebook and returns its stats; frozen, they are
            // this batch's codes against the codebook as it stands.
            let stats = match stats {
                Some(s) => s,
                None => self.codebooks[l].frozen_stats(&codes.to_vec1::<u32>()?),
            };
            let c = commit_loss(&z, &zd)?;
            let shift_term = match &shifted {
                Some((xs, s)) => {
                    let target = match self.loss_cfg.shift_target {
                        ShiftTarget::Embedding => &z,
                        ShiftTarget::Code => &zd,
                    };
                    let t = self.shift_loss(target, xs, *s, l)?;
                    parts.shift.push(t.to_scalar::<f32>()? as f64);
                    Some(t)
                }
                None => None,
            };
            let q = if frozen {
                zd.clone()
            } else {
                straight_through(&z, &zd)?
            };
            let x_hat = self.model.decoder(l)?.forward(&q)?;
            let r = lmix(
                x,
                &x_hat,
                self.bw.l2,
                self.loss_cfg.lmix_l2,
                self.loss_cfg.lmix_linf,
                self.loss_cfg.linf_k,
            )?;
            let s = self.ms.loss(&target, &x_hat, self.bw.spec)?;
            let mut lv = (&r + (&s * self.loss_cfg.multispectral)?)?;
            if !frozen {
                lv = (lv + (&c * self.cfg.commit)?)?;
            }
            if let Some(t) = shift_term {
                let w = self
                    .loss_cfg
                    .shift_level_weights
                    .get(l)
                    .copied()
                    .unwrap_or(1.0);
                lv = (lv + (t * (self.loss_cfg.shift_consistency * w))?)?;
            }
            parts.recons.push(r.to_scalar::<f32>()? as f64);
            parts.spectral.push(s.to_scalar::<f32>()? as f64);
            parts.commit.push(c.to_scalar::<f32>()? as f64);
            parts.codebook.push(stats);
            total = Some(match total {
                None => lv,
                Some(t) => (t + lv)?,
            });
        }
        let total = total.ok_or_else(|| candle_core::Error::Msg("VQ-VAE has no levels".into()))?;
        Ok((total, parts))
    }

    /// The batch started `s` samples later (cut to whole top-level hops), with `s`, when the
    /// shift-consistency term is on; `s` is drawn from (seed, step), so a resumed run repeats it.
    fn shifted_batch(&self, x: &Tensor, step: u64) -> Result<Option<(Tensor, usize)>> {
        if self.loss_cfg.shift_consistency <= 0.0 {
            return Ok(None);
        }
        let top_hop = self.model.hop_length(self.cfg.levels - 1);
        let max = match self.loss_cfg.shift_max {
            0 => top_hop / 2,
            m => m,
        }
        .max(1);
        let s = 1 + super::rng::CounterRng::new(self.seed, super::rng::Stream::Shift, 0, step)
            .below(max as u64) as usize;
        let t = x.dim(1)?;
        let len = t.saturating_sub(s) / top_hop * top_hop;
        if len == 0 {
            return Ok(None);
        }
        Ok(Some((x.narrow(1, s, len)?, s)))
    }

    /// Mean squared difference between level `l`'s latents of the shifted batch and the
    /// (detached) target `z` (latents or their codes) of the tokens they overlap most, divided
    /// by the target's mean square.
    fn shift_loss(&self, z: &Tensor, xs: &Tensor, s: usize, l: usize) -> Result<Tensor> {
        let (b, t) = xs.dims2()?;
        let zs = self.model.encoder(l)?.forward(&xs.reshape((b, 1, t))?)?;
        let hop = self.model.hop_length(l);
        let lag = (s + hop / 2) / hop;
        let n = zs.dim(2)?.min(z.dim(2)?.saturating_sub(lag));
        let target = z.detach().narrow(2, lag, n)?;
        // Relative to the target's mean square: a plain squared difference can be made small by
        // shrinking every latent (and, through the EMA, every code) without making the codes
        // any more stable; this is what the unnormalised term did at the top level.
        let scale = (target.sqr()?.mean_all()? + 1e-8)?.detach();
        (zs.narrow(2, 0, n)? - target)?
            .sqr()?
            .mean_all()?
            .broadcast_div(&scale)
    }

    /// Share of level `l`'s codes that stay the same when the batch starts `hop_l / 8` samples
    /// later (at least one), each compared with the code of the token it overlaps most.
    fn shift_share(&mut self, x: &Tensor, codes: &Tensor, l: usize) -> Result<(usize, usize)> {
        let hop = self.model.hop_length(l);
        let top_hop = self.model.hop_length(self.cfg.levels - 1);
        let s = (hop / 8).max(1);
        let (b, t) = x.dims2()?;
        let len = t.saturating_sub(s) / top_hop * top_hop;
        if len == 0 {
            return Ok((0, 0));
        }
        let (_, _, shifted, _) = self.forward_level(&x.narrow(1, s, len)?, l, 0, false)?;
        let a = codes.to_vec1::<u32>()?;
        let c = shifted.to_vec1::<u32>()?;
        let (ta, tc) = (a.len() / b, c.len() / b);
        let lag = (s + hop / 2) / hop;
        let (mut equal, mut n) = (0, 0);
        for i in 0..b {
            for j in 0..tc.min(ta.saturating_sub(lag)) {
                equal += usize::from(a[i * ta + j + lag] == c[i * tc + j]);
                n += 1;
            }
        }
        Ok((equal, n))
    }

    /// One optimisation step on a batch of windows (B, T) at 0-based `step`.
    pub fn train_step(&mut self, x: &Tensor, step: u64) -> Result<VqStep> {
        let t0 = std::time::Instant::now();
        let (total, p) = self.loss(x, step)?;
        let loss = total.to_scalar::<f32>()? as f64;
        let t1 = std::time::Instant::now();
        let grads = total.backward()?;
        let t2 = std::time::Instant::now();
        let opt = self.opt.step(&grads, step)?;
        if std::env::var_os("JUKEBOX_PROFILE").is_some() {
            eprintln!(
                "forward {:.3} s, backward {:.3} s, optimiser {:.3} s",
                (t1 - t0).as_secs_f64(),
                (t2 - t1).as_secs_f64(),
                t2.elapsed().as_secs_f64()
            );
        }
        Ok(VqStep {
            loss,
            recons: p.recons,
            spectral: p.spectral,
            commit: p.commit,
            shift: p.shift,
            codebook: p.codebook,
            opt,
        })
    }

    /// Validation over batches of fixed windows; nothing is updated.
    pub fn evaluate(&mut self, batches: &[Tensor]) -> Result<VqEval> {
        let levels = self.cfg.levels;
        let mut sig = vec![0f64; levels];
        let mut err = vec![0f64; levels];
        let mut spec = vec![0f64; levels];
        let mut n_win = 0usize;
        let mut codes_all: Vec<Vec<u32>> = vec![vec![]; levels];
        let mut shift_counts = vec![(0usize, 0usize); levels];
        for x in batches {
            let target = self.ms.target(x)?;
            let b = x.dim(0)?;
            n_win += b;
            for l in 0..levels {
                if !self.codebooks[l].init {
                    return Err(candle_core::Error::Msg(
                        "validation before the first training step".into(),
                    ));
                }
                let (_z, zd, codes, _) = self.forward_level(x, l, 0, false)?;
                let x_hat = self
                    .model
                    .decoder(l)?
                    .forward(&zd)?
                    .reshape(x.dims())?
                    .detach();
                sig[l] += x.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
                err[l] += (&x_hat - x)?.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
                spec[l] +=
                    self.ms.loss(&target, &x_hat, 1.0)?.to_scalar::<f32>()? as f64 * b as f64;
                let (e, n) = self.shift_share(x, &codes, l)?;
                shift_counts[l].0 += e;
                shift_counts[l].1 += n;
                codes_all[l].extend(codes.to_vec1::<u32>()?);
            }
        }
        let mut out = VqEval {
            snr_db: vec![],
            spec_dist: vec![],
            codes_used: vec![],
            perplexity: vec![],
            shift_share: shift_counts
                .iter()
                .map(|&(e, n)| {
                    if n == 0 {
                        f64::NAN
                    } else {
                        e as f64 / n as f64
                    }
                })
                .collect(),
        };
        for l in 0..levels {
            out.snr_db
                .push(10.0 * (sig[l].max(1e-12) / err[l].max(1e-12)).log10());
            out.spec_dist.push(spec[l] / n_win.max(1) as f64);
            let (ppl, used) = self.codebooks[l].code_stats(&codes_all[l]);
            out.codes_used.push(used);
            out.perplexity.push(ppl);
        }
        Ok(out)
    }

    /// All model tensors under official keys (codebooks included), as f32.
    pub fn weights(&self) -> Result<HashMap<String, Tensor>> {
        let data = self
            .varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("VarMap lock poisoned".into()))?;
        data.iter()
            .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?)))
            .collect()
    }

    /// The full training state after `step` completed steps.
    pub fn checkpoint(&self, step: u64) -> Result<Checkpoint> {
        let mut buffers = HashMap::new();
        let mut extra = HashMap::from([
            ("bw_l2".to_string(), self.bw.l2),
            ("bw_l1".to_string(), self.bw.l1),
            ("bw_spec".to_string(), self.bw.spec),
        ]);
        for (l, cb) in self.codebooks.iter().enumerate() {
            let (k, w) = (cb.bins, cb.width);
            buffers.insert(
                format!("bottleneck.level_blocks.{l}.k_sum"),
                Tensor::from_vec(cb.k_sum.clone(), (k, w), &Device::Cpu)?,
            );
            buffers.insert(
                format!("bottleneck.level_blocks.{l}.k_elem"),
                Tensor::from_vec(cb.k_elem.clone(), k, &Device::Cpu)?,
            );
            buffers.insert(
                format!("bottleneck.level_blocks.{l}.k"),
                Tensor::from_vec(cb.k.clone(), (k, w), &Device::Cpu)?,
            );
            extra.insert(
                format!("codebook_init_l{l}"),
                if cb.init { 1.0 } else { 0.0 },
            );
        }
        Ok(Checkpoint {
            model: self.weights()?,
            optimizer: self.opt.state_tensors(),
            buffers,
            state: LoopState {
                step,
                adam_t: self.opt.t,
                seed: self.seed,
                rng: "counter".into(),
                extra,
            },
        })
    }

    /// Restore everything written by [`Self::checkpoint`]; returns the step to continue from.
    pub fn restore(&mut self, ck: &Checkpoint) -> anyhow::Result<u64> {
        {
            let data = self
                .varmap
                .data()
                .lock()
                .map_err(|_| candle_core::Error::Msg("VarMap lock poisoned".into()))?;
            super::ckpt::check_present(
                "the checkpoint",
                data.iter().map(|(k, v)| (k.as_str(), v.dims())),
                &ck.model,
            )?;
            for (k, var) in data.iter() {
                var.set(&ck.model[k].to_dtype(var.dtype())?.to_device(&self.device)?)?;
            }
        }
        self.opt.load_state(ck.state.adam_t, &ck.optimizer)?;
        let (bins, width) = (self.cfg.l_bins, self.cfg.emb_width);
        let buffers: Vec<(String, Vec<usize>)> = (0..self.cfg.levels)
            .flat_map(|l| {
                [
                    ("k", vec![bins, width]),
                    ("k_sum", vec![bins, width]),
                    ("k_elem", vec![bins]),
                ]
                .map(|(b, s)| (format!("bottleneck.level_blocks.{l}.{b}"), s))
            })
            .collect();
        super::ckpt::check_present(
            "the checkpoint's codebook buffers",
            buffers.iter().map(|(k, s)| (k.as_str(), s.as_slice())),
            &ck.buffers,
        )?;
        let get = |k: &str| -> Result<Vec<f32>> {
            ck.buffers[k]
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()
        };
        for l in 0..self.cfg.levels {
            let cb = &mut self.codebooks[l];
            cb.k = get(&format!("bottleneck.level_blocks.{l}.k"))?;
            cb.k_sum = get(&format!("bottleneck.level_blocks.{l}.k_sum"))?;
            cb.k_elem = get(&format!("bottleneck.level_blocks.{l}.k_elem"))?;
            cb.init = ck
                .state
                .extra
                .get(&format!("codebook_init_l{l}"))
                .copied()
                .unwrap_or(1.0)
                > 0.5;
        }
        let bw = |k: &str| ck.state.extra.get(k).copied();
        if let (Some(l2), Some(l1), Some(spec)) = (bw("bw_l2"), bw("bw_l1"), bw("bw_spec")) {
            self.bw = Bandwidth { l2, l1, spec };
        }
        self.seed = ck.state.seed;
        Ok(ck.state.step)
    }
}
