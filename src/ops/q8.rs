//! Int8 weights with one f32 scale per output channel (`--dtype q8`).
//!
//! A sampling step at batch 1 reads every weight once, so its time is the weight bytes over
//! the memory bandwidth: int8 halves f16's bytes. Symmetric quantisation per output channel
//! (a column of the official `Conv1D`'s (n_in, n_out) weight): `q = round(w / s)` in
//! −127..=127 with `s = max|w| / 127`, so `x · w ≈ (x · q) · s`. The small-batch kernels
//! ([`super::gemv`]) widen the int8 values in registers and apply the scale once per output;
//! larger products dequantise to f32 first. Inference only: nothing here has a gradient.
//!
//! candle has no int8 dtype, so the values live in a `U8` tensor holding their two's
//! complement bytes; [`as_i8`] reads them back as `i8`.

use candle_core::{bail, DType, Device, Result, Tensor};

/// The largest magnitude a quantised value takes (−128 is never used, so negation is exact).
pub const QMAX: f32 = 127.0;

/// The bytes of a `U8` tensor that holds int8 values, as `i8`.
pub fn as_i8(v: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have the same size and alignment, and every bit pattern is valid.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const i8, v.len()) }
}

/// Quantise a (K, n) weight column by column: (`U8` (K, n) holding int8, `F32` (n,) scales).
/// An all-zero column gets scale 0 (its outputs stay exactly 0).
pub fn quantize_cols(w: &Tensor) -> Result<(Tensor, Tensor)> {
    let (kk, n) = w.dims2()?;
    let wf: Vec<f32> = w.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    if let Some(i) = wf.iter().position(|v| !v.is_finite()) {
        bail!("cannot quantise a weight with a non-finite value at element {i}");
    }
    let mut scale = vec![0f32; n];
    for row in wf.chunks_exact(n) {
        for (s, v) in scale.iter_mut().zip(row) {
            *s = s.max(v.abs());
        }
    }
    scale.iter_mut().for_each(|s| *s /= QMAX);
    let q: Vec<u8> = wf
        .chunks_exact(n)
        .flat_map(|row| {
            row.iter().zip(&scale).map(|(v, s)| {
                let q = if *s > 0.0 { (v / s).round() } else { 0.0 };
                q.clamp(-QMAX, QMAX) as i8 as u8
            })
        })
        .collect();
    let dev = w.device();
    Ok((
        Tensor::from_vec(q, (kk, n), &Device::Cpu)?.to_device(dev)?,
        Tensor::from_vec(scale, n, &Device::Cpu)?.to_device(dev)?,
    ))
}

/// The f32 (K, n) weight a quantised one stands for: `q[k, j] · scale[j]`.
pub fn dequantize_cols(q: &Tensor, scale: &Tensor) -> Result<Tensor> {
    let (kk, n) = q.dims2()?;
    if q.dtype() != DType::U8 || scale.dims() != [n] {
        bail!(
            "a q8 weight is U8 (K, n) with n scales, got {:?} {:?} and scales {:?}",
            q.dtype(),
            q.dims(),
            scale.dims()
        );
    }
    let qv: Vec<u8> = q.flatten_all()?.to_vec1()?;
    let s: Vec<f32> = scale.to_dtype(DType::F32)?.to_vec1()?;
    let out: Vec<f32> = as_i8(&qv)
        .chunks_exact(n)
        .flat_map(|row| row.iter().zip(&s).map(|(v, s)| *v as f32 * s))
        .collect();
    Tensor::from_vec(out, (kk, n), &Device::Cpu)?.to_device(q.device())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::rand_scaled;

    #[test]
    fn round_trip_error_is_at_most_half_a_step_per_column() {
        let w = rand_scaled(&[37, 11], 4, 0.3);
        // One column of zeros and one with a single large value.
        let mut v: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
        for k in 0..37 {
            v[k * 11 + 3] = 0.0;
        }
        v[5 * 11 + 7] = 40.0;
        let w = Tensor::from_vec(v.clone(), (37, 11), &Device::Cpu).unwrap();
        let (q, s) = quantize_cols(&w).unwrap();
        assert_eq!((q.dtype(), q.dims()), (DType::U8, &[37usize, 11][..]));
        let s: Vec<f32> = s.to_vec1().unwrap();
        assert_eq!(s[3], 0.0);
        assert!((s[7] - 40.0 / QMAX).abs() < 1e-6);
        let d: Vec<f32> = dequantize_cols(&q, &Tensor::new(s.as_slice(), &Device::Cpu).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let qv: Vec<u8> = q.flatten_all().unwrap().to_vec1().unwrap();
        for (i, (a, b)) in v.iter().zip(&d).enumerate() {
            let step = s[i % 11];
            assert!(
                (a - b).abs() <= step * 0.5 + 1e-7,
                "element {i}: {a} vs {b}"
            );
        }
        // Each non-zero column uses the full range, and −128 never appears.
        for j in [0usize, 7] {
            let m = (0..37).map(|k| (qv[k * 11 + j] as i8).unsigned_abs()).max();
            assert_eq!(m, Some(127), "column {j}");
        }
        assert!(qv.iter().all(|&b| b as i8 != i8::MIN));
    }

    #[test]
    fn rejects_non_finite_weights_and_bad_shapes() {
        let w = Tensor::new(&[[1f32, f32::NAN], [0.5, 0.25]], &Device::Cpu).unwrap();
        let e = quantize_cols(&w).unwrap_err().to_string();
        assert!(e.contains("non-finite") && e.contains("element 1"), "{e}");
        let q = Tensor::zeros((2, 3), DType::U8, &Device::Cpu).unwrap();
        let s = Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap();
        assert!(dequantize_cols(&q, &s).is_err());
    }
}
