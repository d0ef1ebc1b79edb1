//! Random weights without a checkpoint, generated straight into the storage dtype.
//!
//! A `VarMap` would keep every weight as an f32 `Var` (3.6 GB for the 1b-size prior, and a
//! second copy to cast to f16); this backend fills each tensor in parallel with a counter RNG
//! and builds it in its final dtype, so peak memory is one copy of the weights. Values are
//! uniform with the std the init hint asks for: throughput does not depend on the distribution.

use candle_core::{bail, DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use half::{bf16, f16};
use rayon::prelude::*;

use crate::util::splitmix64;

/// A `VarBuilder` backend that invents every tensor it is asked for.
#[derive(Debug, Clone, Copy)]
pub struct RandomInit {
    pub seed: u64,
}

/// A VarBuilder of random weights stored in `dtype`.
pub fn random_vb(seed: u64, dtype: DType, dev: &Device) -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::new(RandomInit { seed }), dtype, dev.clone())
}

fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// (centre, half-width) of the uniform distribution standing in for `init`.
fn uniform_params(init: Init, shape: &Shape) -> (f64, f64) {
    let sqrt3 = 3f64.sqrt();
    match init {
        Init::Const(c) => (c, 0.0),
        Init::Randn { mean, stdev } => (mean, stdev * sqrt3),
        Init::Uniform { lo, up } => ((lo + up) / 2.0, (up - lo) / 2.0),
        Init::Kaiming { .. } => {
            // PyTorch fan-in: every dimension after the first.
            let fan_in: usize = shape.dims().iter().skip(1).product::<usize>().max(1);
            (0.0, sqrt3 / (fan_in as f64).sqrt())
        }
    }
}

const CHUNK: usize = 1 << 16;

/// Fill `out` with `centre + half·(2u − 1)`, u from a counter RNG keyed by (seed, index).
fn fill<T: Send>(out: &mut [T], seed: u64, centre: f64, half: f64, conv: impl Fn(f32) -> T + Sync) {
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(ci, c)| {
        let mut s = splitmix64(seed ^ (ci as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        for x in c.iter_mut() {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let u = (splitmix64(s) >> 40) as f64 / (1u64 << 24) as f64;
            *x = conv((centre + half * (2.0 * u - 1.0)) as f32);
        }
    });
}

impl SimpleBackend for RandomInit {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let n = s.elem_count();
        let seed = splitmix64(self.seed ^ name_hash(name));
        let (c, half) = uniform_params(h, &s);
        match dtype {
            DType::F32 => {
                let mut v = vec![0f32; n];
                fill(&mut v, seed, c, half, |x| x);
                Tensor::from_vec(v, s, dev)
            }
            DType::F16 => {
                let mut v = vec![f16::ZERO; n];
                fill(&mut v, seed, c, half, f16::from_f32);
                Tensor::from_vec(v, s, dev)
            }
            DType::BF16 => {
                let mut v = vec![bf16::ZERO; n];
                fill(&mut v, seed, c, half, bf16::from_f32);
                Tensor::from_vec(v, s, dev)
            }
            other => bail!("random weights are f32, f16 or bf16, not {other:?} ({name})"),
        }
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        bail!("random weights need a shape: `{name}` was asked for without one")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_weights_have_the_asked_statistics() {
        let vb = random_vb(7, DType::F32, &Device::Cpu);
        let w = vb
            .get_with_hints(
                (256, 512),
                "w",
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )
            .unwrap();
        let v: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 1e-3, "mean {mean}");
        assert!((var.sqrt() - 0.02).abs() < 1e-3, "std {}", var.sqrt());
        // Deterministic per name, different across names.
        let randn = Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let again: Vec<f32> = vb
            .get_with_hints((256, 512), "w", randn)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(again, v);
        let other: Vec<f32> = vb
            .get_with_hints((256, 512), "w2", randn)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_ne!(other, v);
        let b = vb.get_with_hints(3, "b", Init::Const(1.5)).unwrap();
        assert_eq!(b.to_vec1::<f32>().unwrap(), vec![1.5; 3]);
        let h = random_vb(7, DType::F16, &Device::Cpu)
            .get_with_hints(
                (256, 512),
                "w",
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )
            .unwrap();
        assert_eq!(h.dtype(), DType::F16);
        let hv: Vec<f32> = h
            .to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let err = hv
            .iter()
            .zip(&v)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-4, "f16 copy differs by {err}");
    }
}
