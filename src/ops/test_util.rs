//! Helpers shared by the ops unit tests.

use crate::util::uniform;
use candle_core::{Device, Tensor};

/// Deterministic values uniform in [−scale, scale).
pub fn rand_scaled(shape: &[usize], seed: u64, scale: f64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| ((uniform(seed, 0, 0, i as u64) * 2.0 - 1.0) * scale) as f32)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Largest absolute difference of two tensors of the same shape.
pub fn max_err(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// max |a − b| / max |b| (f64), for comparing a fast op with its reference.
pub fn rel_max(a: &Tensor, b: &Tensor) -> f64 {
    let f = |t: Tensor| -> f64 {
        t.to_dtype(candle_core::DType::F64)
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    let d = f((a - b).unwrap().abs().unwrap().max_all().unwrap());
    d / f(b.abs().unwrap().max_all().unwrap()).max(1e-12)
}

/// `len` values uniform in [-1, 1) with 24 random bits each (xorshift64 from `seed`): plain
/// slices for the kernels' tests, the same on every machine.
pub fn xorshift_values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}
