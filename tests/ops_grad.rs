//! f64 central finite-difference gradient checks for every trainable op in `jukebox::ops`,
//! with batch ≥ 2 and out-channels > 1 (where candle's own conv1d weight gradient is wrong),
//! plus forward checks of our convolutions against candle's native ones.

use candle_core::{DType, Device, Tensor, Var};
use jukebox::ops;

type Res<T> = candle_core::Result<T>;

/// Deterministic values in [-1, 1).
fn rand_vec(seed: u64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 2.0 * jukebox::util::uniform(seed, 7, 0, i as u64) - 1.0)
        .collect()
}

fn rand_t(seed: u64, shape: &[usize], dt: DType) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(rand_vec(seed, n), shape, &Device::Cpu)
        .and_then(|t| t.to_dtype(dt))
        .expect("test tensor")
}

/// Check d(sum(f(inputs) * R))/d(inputs) against central differences.
/// Returns the max abs error over all inputs and elements.
fn grad_check(shapes: &[&[usize]], f: impl Fn(&[Tensor]) -> Res<Tensor>) -> f64 {
    let vars: Vec<Var> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| Var::from_tensor(&rand_t(100 + i as u64, s, DType::F64)).expect("var"))
        .collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&ts).expect("forward");
    let r = rand_t(99, y.dims(), DType::F64);
    let loss = (&y * &r).expect("mul").sum_all().expect("sum");
    let grads = loss.backward().expect("backward");
    let eval = |inputs: &[Tensor]| -> f64 {
        let y = f(inputs).expect("forward");
        (&y * &r)
            .and_then(|t| t.sum_all())
            .and_then(|t| t.to_scalar::<f64>())
            .expect("loss")
    };
    let eps = 1e-6;
    let mut max_err = 0f64;
    for (i, v) in vars.iter().enumerate() {
        let g = grads
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("input {i} received no gradient (silently detached?)"));
        let g = g
            .flatten_all()
            .and_then(|t| t.to_vec1::<f64>())
            .expect("grad");
        let base = v
            .as_tensor()
            .flatten_all()
            .and_then(|t| t.to_vec1::<f64>())
            .expect("base");
        assert_eq!(g.len(), base.len());
        for e in 0..base.len() {
            let probe = |delta: f64| {
                let mut d = base.clone();
                d[e] += delta;
                let mut inputs: Vec<Tensor> = ts.iter().map(|t| t.detach()).collect();
                inputs[i] = Tensor::from_vec(d, v.dims(), &Device::Cpu).expect("probe");
                eval(&inputs)
            };
            let num = (probe(eps) - probe(-eps)) / (2.0 * eps);
            max_err = max_err.max((num - g[e]).abs());
        }
    }
    max_err
}

const TOL: f64 = 1e-6;

#[test]
fn conv1d_grad_stride_dilation_padding_combos() {
    // (C_in, C_out, K, L, stride, padding, dilation)
    for &(ci, co, k, l, s, p, d) in &[
        (3, 4, 3, 11, 1, 1, 1),
        (3, 4, 3, 13, 1, 3, 3),
        (3, 4, 4, 12, 2, 1, 1),
        (2, 3, 1, 9, 1, 0, 1),
        (3, 2, 3, 14, 2, 2, 2),
        (2, 4, 4, 15, 3, 0, 1),
    ] {
        let err = grad_check(&[&[2, ci, l], &[co, ci, k], &[co]], |t| {
            ops::conv1d(&t[0], &t[1], Some(&t[2]), s, p, d)
        });
        assert!(
            err < TOL,
            "conv1d ci{ci} co{co} k{k} s{s} p{p} d{d}: grad err {err:e}"
        );
    }
}

/// The anti-aliased downsampling of our own VQ-VAEs (`vqvae::blocks::blur_down`: stride-1
/// convolution, [1, 2, 1] / 4 blur, subsampling), even and odd lengths.
#[test]
fn blur_down_grad() {
    use jukebox::vqvae::blocks::{blur_down, Conv1d};
    for &(ci, co, l) in &[(3, 4, 12), (2, 3, 9)] {
        let err = grad_check(&[&[2, ci, l], &[co, ci, 4], &[co]], |t| {
            let conv = Conv1d {
                weight: t[1].clone(),
                bias: t[2].clone(),
                stride: 2,
                padding: 1,
                dilation: 1,
            };
            blur_down(&conv, &t[0])
        });
        assert!(err < TOL, "blur_down ci{ci} co{co} l{l}: grad err {err:e}");
    }
}

/// `blur_down` against its definition, written out with candle's own convolution: output i is
/// ¼ y[2i−1] + ½ y[2i] + ¼ y[2i+1] of the stride-1 output y (zero outside), as many outputs as
/// the strided convolution gives.
#[test]
fn blur_down_matches_its_definition() {
    use jukebox::vqvae::blocks::{blur_down, Conv1d};
    for l in [12usize, 9, 4] {
        let x = rand_t(5, &[2, 3, l], DType::F32);
        let w = rand_t(6, &[2, 3, 4], DType::F32);
        let b = rand_t(7, &[2], DType::F32);
        let conv = Conv1d {
            weight: w.clone(),
            bias: b.clone(),
            stride: 2,
            padding: 1,
            dilation: 1,
        };
        let got = blur_down(&conv, &x).unwrap();
        let strided = x.conv1d(&w, 1, 2, 1, 1).unwrap();
        assert_eq!(got.dims(), strided.dims(), "length {l}");
        let y = x
            .conv1d(&w, 1, 1, 1, 1)
            .unwrap()
            .broadcast_add(&b.reshape((1, 2, 1)).unwrap())
            .unwrap();
        let yv: Vec<Vec<Vec<f32>>> = y.to_vec3().unwrap();
        let gv: Vec<Vec<Vec<f32>>> = got.to_vec3().unwrap();
        for (yb, gb) in yv.iter().zip(&gv) {
            for (yc, gc) in yb.iter().zip(gb) {
                let at = |j: isize| {
                    if j < 0 || j as usize >= yc.len() {
                        0.0
                    } else {
                        yc[j as usize]
                    }
                };
                for (i, g) in gc.iter().enumerate() {
                    let i = i as isize;
                    let want = 0.25 * at(2 * i - 1) + 0.5 * at(2 * i) + 0.25 * at(2 * i + 1);
                    assert!((g - want).abs() < 1e-5, "l {l} i {i}: {g} vs {want}");
                }
            }
        }
    }
    // Only stride 2 is defined.
    let conv = Conv1d {
        weight: rand_t(6, &[2, 3, 3], DType::F32),
        bias: rand_t(7, &[2], DType::F32),
        stride: 1,
        padding: 1,
        dilation: 1,
    };
    assert!(blur_down(&conv, &rand_t(5, &[2, 3, 8], DType::F32)).is_err());
}

#[test]
fn conv_transpose1d_grad() {
    for &(ci, co, k, l, s, p) in &[
        (3, 4, 4, 7, 2, 1),
        (2, 3, 3, 6, 1, 1),
        (3, 2, 5, 5, 3, 2),
        (2, 2, 4, 4, 2, 0),
    ] {
        let err = grad_check(&[&[2, ci, l], &[ci, co, k], &[co]], |t| {
            ops::conv_transpose1d(&t[0], &t[1], Some(&t[2]), s, p)
        });
        assert!(
            err < TOL,
            "conv_transpose1d ci{ci} co{co} k{k} s{s} p{p}: grad err {err:e}"
        );
    }
}

#[test]
fn layer_norm_grad() {
    let err = grad_check(&[&[2, 3, 6], &[6], &[6]], |t| {
        ops::layer_norm(&t[0], &t[1], &t[2], 1e-5)
    });
    assert!(err < TOL, "layer_norm grad err {err:e}");
}

#[test]
fn softmax_with_mask_grad() {
    // Causal mask over a (2, 5, 5) score tensor, masked scores set to -1e9 as the official code.
    let mask: Vec<u8> = (0..25).map(|i| u8::from(i % 5 <= i / 5)).collect();
    let mask = Tensor::from_vec(mask, (5, 5), &Device::Cpu).expect("mask");
    let err = grad_check(&[&[2, 5, 5]], |t| {
        let m = mask.broadcast_as(t[0].shape())?;
        let neg = Tensor::full(-1e9f64, t[0].shape(), &Device::Cpu)?;
        let s = m.where_cond(&t[0], &neg)?;
        ops::softmax_last_dim(&s)
    });
    assert!(err < TOL, "masked softmax grad err {err:e}");
    // And the masked entries really are zero.
    let x = rand_t(5, &[2, 5, 5], DType::F64);
    let m = mask.broadcast_as(x.shape()).expect("bcast");
    let neg = Tensor::full(-1e9f64, x.shape(), &Device::Cpu).expect("neg");
    let p = ops::softmax_last_dim(&m.where_cond(&x, &neg).expect("where")).expect("softmax");
    let p: Vec<f64> = p.flatten_all().and_then(|t| t.to_vec1()).expect("vec");
    assert_eq!(p[1], 0.0);
    assert!((p[0] - 1.0).abs() < 1e-12);
}

#[test]
fn quick_gelu_grad() {
    let err = grad_check(&[&[2, 3, 4]], |t| ops::quick_gelu(&t[0]));
    assert!(err < TOL, "quick_gelu grad err {err:e}");
}

#[test]
fn dense_grad() {
    let err = grad_check(&[&[2, 3, 5], &[5, 4], &[4]], |t| {
        ops::dense(&t[0], &t[1], &t[2])
    });
    assert!(err < TOL, "dense grad err {err:e}");
}

#[test]
fn embedding_grad() {
    let ids = Tensor::new(&[[0u32, 3, 3], [1, 0, 4]], &Device::Cpu).expect("ids");
    let err = grad_check(&[&[5, 3]], |t| ops::embedding(&ids, &t[0]));
    assert!(err < TOL, "embedding grad err {err:e}");
}

#[test]
fn conv1d_matches_candle_native() {
    for &(n, ci, co, k, l, s, p, d) in &[
        (2, 3, 5, 3, 40, 1, 1, 1),
        (2, 4, 4, 3, 50, 1, 9, 9),
        (3, 1, 6, 4, 64, 2, 1, 1),
        (2, 6, 3, 1, 33, 1, 0, 1),
        (2, 5, 7, 5, 41, 3, 2, 2),
    ] {
        let x = rand_t(1, &[n, ci, l], DType::F32);
        let w = rand_t(2, &[co, ci, k], DType::F32);
        let b = rand_t(3, &[co], DType::F32);
        let ours = ops::conv1d(&x, &w, Some(&b), s, p, d).expect("ours");
        let native = x
            .conv1d(&w, p, s, d, 1)
            .and_then(|y| y.broadcast_add(&b.reshape((1, co, 1))?))
            .expect("native");
        assert_eq!(ours.dims(), native.dims());
        let err = (ours - native)
            .and_then(|t| t.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>())
            .expect("diff");
        assert!(err <= 1e-5, "conv1d vs native k{k} s{s} p{p} d{d}: {err:e}");
    }
}

/// Direct-loop reference: y[o, l·s + k − p] += x[i, l] · w[i, o, k].
fn naive_conv_transpose1d(x: &Tensor, w: &Tensor, b: &Tensor, s: usize, p: usize) -> Tensor {
    let (n, ci, l) = x.dims3().expect("x");
    let (_, co, k) = w.dims3().expect("w");
    let xv: Vec<f32> = x.flatten_all().and_then(|t| t.to_vec1()).expect("x");
    let wv: Vec<f32> = w.flatten_all().and_then(|t| t.to_vec1()).expect("w");
    let bv: Vec<f32> = b.to_vec1().expect("b");
    let lo = (l - 1) * s + k - 2 * p;
    let mut y = vec![0f32; n * co * lo];
    for bi in 0..n {
        for o in 0..co {
            for t in 0..lo {
                y[(bi * co + o) * lo + t] = bv[o];
            }
            for i in 0..ci {
                for li in 0..l {
                    for kk in 0..k {
                        let t = (li * s + kk) as isize - p as isize;
                        if t >= 0 && (t as usize) < lo {
                            y[(bi * co + o) * lo + t as usize] +=
                                xv[(bi * ci + i) * l + li] * wv[(i * co + o) * k + kk];
                        }
                    }
                }
            }
        }
    }
    Tensor::from_vec(y, (n, co, lo), &Device::Cpu).expect("y")
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|t| t.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>())
        .expect("diff")
}

#[test]
fn conv_transpose1d_matches_direct_loop() {
    for &(n, ci, co, k, l, s, p) in &[
        (2, 3, 5, 4, 20, 2, 1),
        (2, 4, 4, 3, 17, 1, 1),
        (3, 2, 6, 5, 9, 3, 2),
        (2, 3, 2, 4, 8, 2, 0),
    ] {
        let x = rand_t(4, &[n, ci, l], DType::F32);
        let w = rand_t(5, &[ci, co, k], DType::F32);
        let b = rand_t(6, &[co], DType::F32);
        let ours = ops::conv_transpose1d(&x, &w, Some(&b), s, p).expect("ours");
        let err = max_diff(&ours, &naive_conv_transpose1d(&x, &w, &b, s, p));
        assert!(
            err <= 1e-5,
            "conv_transpose1d vs direct loop k{k} s{s} p{p}: {err:e}"
        );
    }
}

/// Against candle's native conv-transpose (padding 0 only at batch 1): candle 0.11.1's padding-0 (col2im)
/// path is wrong for batch > 1 with C_in > 1 (seen here: errors ~7 for (2, 3, 8) inputs), so
/// never use it as the fast inference path; the direct-loop test above covers padding 0.
#[test]
fn conv_transpose1d_matches_candle_native() {
    for &(n, ci, co, k, l, s, p) in &[
        (2, 3, 5, 4, 20, 2, 1),
        (2, 4, 4, 3, 17, 1, 1),
        (3, 2, 6, 5, 9, 3, 2),
        (1, 3, 2, 4, 8, 2, 0),
    ] {
        let x = rand_t(4, &[n, ci, l], DType::F32);
        let w = rand_t(5, &[ci, co, k], DType::F32);
        let b = rand_t(6, &[co], DType::F32);
        let ours = ops::conv_transpose1d(&x, &w, Some(&b), s, p).expect("ours");
        let native = x
            .conv_transpose1d(&w, p, 0, s, 1, 1)
            .and_then(|y| y.broadcast_add(&b.reshape((1, co, 1))?))
            .expect("native");
        assert_eq!(ours.dims(), native.dims());
        assert_eq!(ours.dim(2).expect("len"), (l - 1) * s + k - 2 * p);
        let err = (ours - native)
            .and_then(|t| t.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>())
            .expect("diff");
        assert!(
            err <= 1e-5,
            "conv_transpose1d vs native k{k} s{s} p{p}: {err:e}"
        );
    }
}

#[test]
fn conv1d_rejects_bad_shapes() {
    let x = rand_t(1, &[2, 3, 10], DType::F32);
    let w = rand_t(2, &[4, 2, 3], DType::F32);
    assert!(
        ops::conv1d(&x, &w, None, 1, 1, 1).is_err(),
        "channel mismatch must be an error"
    );
    let w = rand_t(2, &[4, 3, 3], DType::F32);
    assert!(
        ops::conv1d(&x, &w, None, 1, 0, 9).is_err(),
        "kernel span longer than input"
    );
    assert!(ops::conv1d(&x, &w, None, 0, 0, 1).is_err(), "stride 0");
}
