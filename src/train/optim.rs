//! Adam(W) over named variables, with the official Jukebox learning-rate schedule and global
//! gradient-norm clipping. candle ships AdamW without schedules or clipping, so this is our own.

use crate::ops::custom::{uninit_then, uninit_with, with_data};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Result, Tensor, Var};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Optimiser hyperparameters, named as in the official `hparams.py` where it has them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled (AdamW) weight decay; 0 in every official run.
    pub weight_decay: f64,
    /// Linear warmup over this many steps (`lr_warmup`).
    pub lr_warmup: u64,
    /// Step decay: lr · gamma^(step / lr_decay) (`lr_gamma`, `lr_decay`).
    pub lr_gamma: f64,
    pub lr_decay: u64,
    /// Linear decay to 0 over `lr_decay` steps, starting at `lr_start_linear_decay`
    /// (`lr_use_linear_decay`), instead of the step decay.
    pub lr_use_linear_decay: bool,
    pub lr_start_linear_decay: u64,
    /// Global gradient-norm clip (`clip`); 0 disables it.
    pub clip: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: 3e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            lr_warmup: 100,
            lr_gamma: 1.0,
            lr_decay: 10_000_000_000,
            lr_use_linear_decay: false,
            lr_start_linear_decay: 0,
            clip: 1.0,
        }
    }
}

impl OptimConfig {
    /// Learning rate for 0-based `step`. The official LambdaLR gives lr 0 at step 0 (a wasted
    /// step); we count warmup from step 1 so the first update already moves.
    pub fn lr_at(&self, step: u64) -> f64 {
        let s = step + 1;
        let warm = if self.lr_warmup == 0 {
            1.0
        } else {
            (s as f64 / self.lr_warmup as f64).min(1.0)
        };
        let decay_span = self.lr_decay.max(1);
        let decay = if self.lr_use_linear_decay {
            let past = s.saturating_sub(self.lr_start_linear_decay) as f64;
            (1.0 - past / decay_span as f64).max(0.0)
        } else {
            self.lr_gamma.powf((s / decay_span) as f64)
        };
        self.lr * warm * decay
    }
}

/// What one optimiser step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    pub lr: f64,
    /// Global L2 norm of the gradients before clipping.
    pub grad_norm: f64,
    /// false when the gradient was not finite and the update was skipped (as the official loop does).
    pub applied: bool,
}

struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
}

/// Adam(W) state for a fixed list of named variables.
pub struct Adam {
    pub cfg: OptimConfig,
    slots: Vec<Slot>,
    /// Number of updates applied so far (Adam's bias-correction t).
    pub t: u64,
    /// Update f32 CPU variables in one pass ([`fused_update`]) instead of composed tensor ops.
    fused: bool,
}

/// Elements per parallel task of the fused update and norm.
const CHUNK: usize = 16384;

/// An Adam step's constants, rounded to f32 as candle's `tensor * f64` rounds them.
#[derive(Debug, Clone, Copy)]
struct Step {
    scale: f32,
    b1: f32,
    one_minus_b1: f32,
    b2: f32,
    one_minus_b2: f32,
    inv_bc1: f32,
    inv_bc2: f32,
    eps: f32,
    weight_decay: Option<f32>,
    lr: f32,
}

impl Step {
    /// One element: (m, v, θ) after the update. The same f32 operations, in the same order, as
    /// the composed path of [`Adam::step`] (`tensor * c` is `x·c + 0` in candle, which only
    /// differs from `x·c` on the sign of a zero), so both give the same bits.
    #[inline(always)]
    fn apply(&self, g: f32, m: f32, v: f32, theta: f32) -> (f32, f32, f32) {
        let g = g * self.scale + 0.0;
        let m = (m * self.b1 + 0.0) + (g * self.one_minus_b1 + 0.0);
        let v = (v * self.b2 + 0.0) + ((g * g) * self.one_minus_b2 + 0.0);
        let mhat = m * self.inv_bc1 + 0.0;
        let denom = (v * self.inv_bc2 + 0.0).sqrt() + self.eps;
        let mut upd = mhat / denom;
        if let Some(wd) = self.weight_decay {
            upd += theta * wd + 0.0;
        }
        (m, v, theta - (upd * self.lr + 0.0))
    }
}

/// Whether [`fused_update`] applies: f32 variable, gradient and moments on the CPU.
fn fusable(var: &Var, g: &Tensor) -> bool {
    matches!(var.device(), Device::Cpu)
        && matches!(g.device(), Device::Cpu)
        && var.dtype() == DType::F32
        && g.dtype() == DType::F32
}

/// Sum of squares of an f32 CPU tensor in f64, over fixed chunks summed in order (the same
/// for any thread count).
fn sum_sq(g: &Tensor) -> Result<f64> {
    with_data(g, |gs| {
        let parts: Vec<f64> = gs
            .par_chunks(CHUNK)
            .map(|c| c.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>())
            .collect();
        Ok(parts.iter().sum())
    })
}

/// One Adam update of an f32 CPU variable in a single parallel pass over (g, m, v, θ): the
/// composed path makes about a dozen tensors per variable per step, each a full pass and an
/// allocation on the calling thread (2.4 % of a prior training step, `perf`).
fn fused_update(slot: &mut Slot, g: &Tensor, c: Step) -> Result<()> {
    let n = slot.var.elem_count();
    let shape = slot.var.shape().clone();
    let (m_new, (v_new, t_new)) = with_data(g, |gs| {
        with_data(&slot.m, |ms| {
            with_data(&slot.v, |vs| {
                with_data(slot.var.as_tensor(), |ts| {
                    if gs.len() != n || ms.len() != n || vs.len() != n || ts.len() != n {
                        candle_core::bail!("adam: gradient or moments do not match the variable");
                    }
                    // SAFETY: the four inputs and three outputs are cut into the same chunks
                    // of n elements, and every element of each output is written.
                    Ok(unsafe {
                        uninit_then(n, |mo| {
                            uninit_then(n, |vo| {
                                uninit_with(n, |to| {
                                    mo.par_chunks_mut(CHUNK)
                                        .zip(vo.par_chunks_mut(CHUNK))
                                        .zip(to.par_chunks_mut(CHUNK))
                                        .zip(gs.par_chunks(CHUNK))
                                        .zip(ms.par_chunks(CHUNK))
                                        .zip(vs.par_chunks(CHUNK))
                                        .zip(ts.par_chunks(CHUNK))
                                        .for_each(|((((((mo, vo), to), g), m), v), t)| {
                                            for i in 0..mo.len() {
                                                let (a, b, c) = c.apply(g[i], m[i], v[i], t[i]);
                                                mo[i].write(a);
                                                vo[i].write(b);
                                                to[i].write(c);
                                            }
                                        })
                                })
                            })
                        })
                    })
                })
            })
        })
    })?;
    slot.m = Tensor::from_vec(m_new, shape.clone(), &Device::Cpu)?;
    slot.v = Tensor::from_vec(v_new, shape.clone(), &Device::Cpu)?;
    slot.var.set(&Tensor::from_vec(t_new, shape, &Device::Cpu)?)
}

impl Adam {
    /// `vars` in a fixed order (sorted by name, so that state files and norms are deterministic).
    pub fn new(mut vars: Vec<(String, Var)>, cfg: OptimConfig) -> Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let z = var.as_tensor().zeros_like()?.to_dtype(DType::F32)?;
                Ok(Slot {
                    name,
                    var,
                    m: z.clone(),
                    v: z,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg,
            slots,
            t: 0,
            fused: true,
        })
    }

    /// Use the fused update where it applies (the default), or the composed tensor ops, which
    /// stay the reference (`tests`: both give the same bits).
    pub fn set_fused(&mut self, on: bool) {
        self.fused = on;
    }

    /// Whether this step takes the fused update for the variables it applies to.
    fn fused_now(&self) -> bool {
        self.fused && crate::ops::train_fast()
    }

    /// Number of trained scalars.
    pub fn num_params(&self) -> usize {
        self.slots.iter().map(|s| s.var.elem_count()).sum()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(|s| s.name.as_str())
    }

    pub fn vars(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.slots.iter().map(|s| (s.name.as_str(), &s.var))
    }

    /// Global L2 norm of the gradients of our variables (missing gradients count as zero).
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut sq = 0f64;
        let fused = self.fused_now();
        for s in &self.slots {
            if let Some(g) = grads.get(s.var.as_tensor()) {
                if fused && fusable(&s.var, g) {
                    sq += sum_sq(g)?;
                    continue;
                }
                sq += g
                    .to_dtype(DType::F64)?
                    .sqr()?
                    .sum_all()?
                    .to_scalar::<f64>()?;
            }
        }
        Ok(sq.sqrt())
    }

    /// One update at schedule position `step` (0-based). Clips the global norm to `cfg.clip`.
    pub fn step(&mut self, grads: &GradStore, step: u64) -> Result<StepInfo> {
        let lr = self.cfg.lr_at(step);
        let grad_norm = self.grad_norm(grads)?;
        if !grad_norm.is_finite() {
            return Ok(StepInfo {
                lr,
                grad_norm,
                applied: false,
            });
        }
        let scale = if self.cfg.clip > 0.0 && grad_norm > self.cfg.clip {
            self.cfg.clip / grad_norm
        } else {
            1.0
        };
        self.t += 1;
        let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
        let bc1 = 1.0 - b1.powi(self.t as i32);
        let bc2 = 1.0 - b2.powi(self.t as i32);
        let consts = Step {
            scale: scale as f32,
            b1: b1 as f32,
            one_minus_b1: (1.0 - b1) as f32,
            b2: b2 as f32,
            one_minus_b2: (1.0 - b2) as f32,
            inv_bc1: (1.0 / bc1) as f32,
            inv_bc2: (1.0 / bc2) as f32,
            eps: self.cfg.eps as f32,
            weight_decay: (self.cfg.weight_decay > 0.0).then_some(self.cfg.weight_decay as f32),
            lr: lr as f32,
        };
        let fused = self.fused_now();
        for s in self.slots.iter_mut() {
            let Some(g) = grads.get(s.var.as_tensor()) else {
                continue;
            };
            if fused && fusable(&s.var, g) {
                fused_update(s, g, consts)?;
                continue;
            }
            // Gradients carry the op graph of the backward pass, which references the whole
            // forward graph: detach, or the moments would keep every step's graph alive.
            let g = (g.detach().to_dtype(DType::F32)? * scale)?;
            s.m = ((&s.m * b1)? + (&g * (1.0 - b1))?)?.detach();
            s.v = ((&s.v * b2)? + (g.sqr()? * (1.0 - b2))?)?.detach();
            let mhat = (&s.m / bc1)?;
            let denom = ((&s.v / bc2)?.sqrt()? + self.cfg.eps)?;
            let mut upd = (mhat / denom)?;
            let theta = s.var.as_tensor().detach().to_dtype(DType::F32)?;
            if self.cfg.weight_decay > 0.0 {
                upd = (upd + (&theta * self.cfg.weight_decay)?)?;
            }
            let new = (theta - (upd * lr)?)?.to_dtype(s.var.dtype())?;
            s.var.set(&new)?;
        }
        Ok(StepInfo {
            lr,
            grad_norm,
            applied: true,
        })
    }

    /// The moment tensors as `m.<name>` / `v.<name>`, for a checkpoint.
    pub fn state_tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for s in &self.slots {
            out.insert(format!("m.{}", s.name), s.m.clone());
            out.insert(format!("v.{}", s.name), s.v.clone());
        }
        out
    }

    /// Restore moments written by [`Self::state_tensors`]. Every variable must be present with
    /// the same shape; the error names every one that is not.
    pub fn load_state(&mut self, t: u64, state: &HashMap<String, Tensor>) -> anyhow::Result<()> {
        let keys: Vec<(String, Vec<usize>)> = self
            .slots
            .iter()
            .flat_map(|s| {
                [("m", &s.m), ("v", &s.v)]
                    .map(|(kind, x)| (format!("{kind}.{}", s.name), x.dims().to_vec()))
            })
            .collect();
        super::ckpt::check_present(
            "the optimizer state",
            keys.iter().map(|(k, s)| (k.as_str(), s.as_slice())),
            state,
        )?;
        for s in self.slots.iter_mut() {
            for (kind, slot) in [("m", &mut s.m), ("v", &mut s.v)] {
                let x = &state[&format!("{kind}.{}", s.name)];
                *slot = x.to_dtype(DType::F32)?.to_device(slot.device())?;
            }
        }
        self.t = t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn schedule_warmup_and_decay() {
        let c = OptimConfig {
            lr: 1.0,
            lr_warmup: 10,
            ..Default::default()
        };
        assert!((c.lr_at(0) - 0.1).abs() < 1e-12);
        assert!((c.lr_at(9) - 1.0).abs() < 1e-12);
        assert!((c.lr_at(1000) - 1.0).abs() < 1e-12);
        let lin = OptimConfig {
            lr: 1.0,
            lr_warmup: 0,
            lr_use_linear_decay: true,
            lr_start_linear_decay: 100,
            lr_decay: 100,
            ..Default::default()
        };
        assert!((lin.lr_at(99) - 1.0).abs() < 1e-12);
        assert!((lin.lr_at(149) - 0.5).abs() < 1e-12);
        assert_eq!(lin.lr_at(500), 0.0);
        let g = OptimConfig {
            lr: 1.0,
            lr_warmup: 0,
            lr_gamma: 0.5,
            lr_decay: 10,
            ..Default::default()
        };
        assert!((g.lr_at(8) - 1.0).abs() < 1e-12);
        assert!((g.lr_at(9) - 0.5).abs() < 1e-12);
        assert!((g.lr_at(29) - 0.125).abs() < 1e-12);
    }

    #[test]
    fn adam_matches_hand_computation_and_clips() -> Result<()> {
        let dev = Device::Cpu;
        let w = Var::from_vec(vec![1.0f32, -2.0], 2, &dev)?;
        let cfg = OptimConfig {
            lr: 0.1,
            lr_warmup: 0,
            clip: 0.0,
            ..Default::default()
        };
        let mut opt = Adam::new(vec![("w".into(), w.clone())], cfg)?;
        // loss = sum(w^2) → grad 2w; first Adam step moves each weight by lr·sign(g).
        let loss = w.as_tensor().sqr()?.sum_all()?;
        let info = opt.step(&loss.backward()?, 0)?;
        assert!((info.grad_norm - (4.0f64 + 16.0).sqrt()).abs() < 1e-6);
        let v = w.as_tensor().to_vec1::<f32>()?;
        assert!(
            (v[0] - 0.9).abs() < 1e-6 && (v[1] + 1.9).abs() < 1e-6,
            "{v:?}"
        );

        // Clipping: a huge gradient with clip 1 gives the same first step (Adam is scale-free),
        // but the stored moment is the clipped gradient.
        let w2 = Var::from_vec(vec![1000.0f32], 1, &dev)?;
        let cfg = OptimConfig {
            lr: 0.1,
            lr_warmup: 0,
            clip: 1.0,
            ..Default::default()
        };
        let mut opt = Adam::new(vec![("w".into(), w2.clone())], cfg)?;
        let loss = w2.as_tensor().sqr()?.sum_all()?;
        let info = opt.step(&loss.backward()?, 0)?;
        assert!((info.grad_norm - 2000.0).abs() < 1e-3);
        let m = opt.state_tensors()["m.w"].to_vec1::<f32>()?;
        assert!((m[0] - 0.1).abs() < 1e-6, "clipped first moment {m:?}");
        Ok(())
    }

    /// The fused update gives the same bits as the composed tensor ops: several steps, clipping
    /// on (the norm is far above `clip`), weight decay, a variable longer than one chunk.
    #[test]
    fn fused_update_matches_the_composed_ops_bit_for_bit() -> Result<()> {
        let dev = Device::Cpu;
        let vals = |n: usize, seed: u64| -> Vec<f32> {
            crate::ops::test_util::rand_scaled(&[n], seed, 2.0)
                .to_vec1::<f32>()
                .unwrap()
        };
        let sizes = [(3usize, 1usize), (CHUNK + 77, 1), (8, 5)];
        let run = |fused: bool| -> Result<Vec<Vec<f32>>> {
            let vars: Vec<(String, Var)> = sizes
                .iter()
                .enumerate()
                .map(|(i, &(a, b))| {
                    let v = Var::from_vec(vals(a * b, i as u64 + 1), (a, b), &dev)?;
                    Ok((format!("p{i}"), v))
                })
                .collect::<Result<_>>()?;
            let cfg = OptimConfig {
                lr: 0.01,
                lr_warmup: 2,
                weight_decay: 0.1,
                clip: 1.0,
                ..Default::default()
            };
            let mut opt = Adam::new(vars.clone(), cfg)?;
            opt.set_fused(fused);
            let mut norms = Vec::new();
            for step in 0..4u64 {
                // loss = Σ c·w² with fixed random c: gradients of both signs and many sizes.
                let mut loss = Tensor::zeros((), DType::F32, &dev)?;
                for (i, (_, v)) in vars.iter().enumerate() {
                    let c =
                        Tensor::from_vec(vals(v.elem_count(), 100 + i as u64), v.shape(), &dev)?;
                    loss = (loss + (v.as_tensor().sqr()? * c)?.sum_all()?)?;
                }
                norms.push(opt.step(&loss.backward()?, step)?.grad_norm as f32);
            }
            let mut out = vec![norms];
            for (_, v) in &vars {
                out.push(v.as_tensor().flatten_all()?.to_vec1::<f32>()?);
            }
            let st = opt.state_tensors();
            let mut keys: Vec<&String> = st.keys().collect();
            keys.sort();
            for k in keys {
                out.push(st[k].flatten_all()?.to_vec1::<f32>()?);
            }
            Ok(out)
        };
        let (a, b) = (run(true)?, run(false)?);
        assert!(a[0][0] > 10.0, "clipping must be active: norm {}", a[0][0]);
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            let xb: Vec<u32> = x.iter().map(|v| v.to_bits()).collect();
            let yb: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
            assert!(xb == yb, "fused and composed differ");
        }
        // And the update moved the weights.
        assert_ne!(a[1], vals(3, 1));
        Ok(())
    }

    #[test]
    fn non_finite_gradient_skips_update() -> Result<()> {
        let dev = Device::Cpu;
        let w = Var::from_vec(vec![0.0f32], 1, &dev)?;
        let mut opt = Adam::new(vec![("w".into(), w.clone())], OptimConfig::default())?;
        let loss = w.as_tensor().sqrt()?.sum_all()?; // d/dw sqrt(w) at 0 = inf
        let info = opt.step(&loss.backward()?, 0)?;
        assert!(!info.applied);
        assert_eq!(w.as_tensor().to_vec1::<f32>()?, vec![0.0]);
        assert_eq!(opt.t, 0);
        Ok(())
    }

    #[test]
    fn a_state_that_does_not_fit_names_every_key() -> Result<()> {
        let dev = Device::Cpu;
        let vars = vec![
            ("a".to_string(), Var::zeros(3, DType::F32, &dev)?),
            ("b".to_string(), Var::zeros((2, 2), DType::F32, &dev)?),
        ];
        let mut opt = Adam::new(vars, OptimConfig::default())?;
        let mut st = opt.state_tensors();
        st.remove("v.a");
        st.insert("m.b".into(), Tensor::zeros(4, DType::F32, &dev)?);
        let e = opt.load_state(5, &st).unwrap_err();
        let m = e.downcast_ref::<crate::error::TensorMismatch>().unwrap();
        assert_eq!(m.missing, vec![("v.a".to_string(), vec![3])]);
        assert_eq!(m.mis_shaped, vec![("m.b".to_string(), vec![2, 2], vec![4])]);
        assert!(
            format!("{e:#}").starts_with("the optimizer state does not fit this model: 1 missing")
        );
        assert_eq!(opt.t, 0, "a failed load changes nothing");
        Ok(())
    }

    #[test]
    fn state_roundtrip_continues_identically() -> Result<()> {
        let dev = Device::Cpu;
        let run = |split: bool| -> Result<Vec<f32>> {
            let w = Var::from_vec(vec![0.5f32, -1.5, 3.0], 3, &dev)?;
            let cfg = OptimConfig {
                lr: 0.05,
                lr_warmup: 3,
                ..Default::default()
            };
            let mut opt = Adam::new(vec![("w".into(), w.clone())], cfg.clone())?;
            for step in 0..6u64 {
                if split && step == 3 {
                    let st = opt.state_tensors();
                    let t = opt.t;
                    let w_saved = w.as_tensor().copy()?;
                    let w_new = Var::from_tensor(&w_saved)?;
                    opt = Adam::new(vec![("w".into(), w_new.clone())], cfg.clone())?;
                    opt.load_state(t, &st).unwrap();
                    return continue_from(opt, w_new, step);
                }
                let loss = (w.as_tensor().sqr()? * 0.5)?.sum_all()?;
                opt.step(&loss.backward()?, step)?;
            }
            w.as_tensor().to_vec1::<f32>()
        };
        fn continue_from(mut opt: Adam, w: Var, from: u64) -> Result<Vec<f32>> {
            for step in from..6 {
                let loss = (w.as_tensor().sqr()? * 0.5)?.sum_all()?;
                opt.step(&loss.backward()?, step)?;
            }
            w.as_tensor().to_vec1::<f32>()
        }
        assert_eq!(run(false)?, run(true)?);
        Ok(())
    }
}
