use super::*;
use candle_core::{Device, Var};
use realfft::RealFftPlanner;

fn signal(b: usize, t: usize, seed: u64) -> Vec<f64> {
    let mut r = crate::train::rng::CounterRng::new(seed, crate::train::rng::Stream::Noise, 0, 0);
    (0..b * t)
        .map(|i| (i as f64 * 0.37).sin() * 0.5 + 0.3 * r.normal())
        .collect()
}

/// torch.stft(center=True, reflect) magnitude, computed with a real FFT on the host.
fn reference_mag(x: &[f64], cfg: StftConfig) -> Vec<Vec<f64>> {
    let t = x.len() as i64;
    let pad = (cfg.n_fft / 2) as i64;
    let off = (cfg.n_fft - cfg.window) / 2;
    let mut window = vec![0f64; cfg.n_fft];
    for n in 0..cfg.window {
        window[off + n] = 0.5 - 0.5 * (std::f64::consts::TAU * n as f64 / cfg.window as f64).cos();
    }
    let frames = 1 + x.len() / cfg.hop;
    let mut planner = RealFftPlanner::<f64>::new();
    let fft = planner.plan_fft_forward(cfg.n_fft);
    (0..frames)
        .map(|f| {
            let mut buf: Vec<f64> = (0..cfg.n_fft)
                .map(|n| x[reflect((f * cfg.hop + n) as i64 - pad, t)] * window[n])
                .collect();
            let mut out = fft.make_output_vec();
            fft.process(&mut buf, &mut out).unwrap();
            out.iter().map(|c| c.norm()).collect()
        })
        .collect()
}

#[test]
fn reflect_matches_torch_padding() {
    // torch reflect pad of [0,1,2,3] by 2: [2,1,0,1,2,3,2,1]
    let got: Vec<usize> = (-2..6).map(|i| reflect(i, 4)).collect();
    assert_eq!(got, vec![2, 1, 0, 1, 2, 3, 2, 1]);
}

#[test]
fn stft_magnitude_matches_fft() -> Result<()> {
    let dev = Device::Cpu;
    for cfg in [
        MULTISPEC[2],
        StftConfig {
            n_fft: 64,
            hop: 10,
            window: 40,
        },
    ] {
        let t = 1000;
        let x = signal(2, t, 1);
        let st = Stft::new(cfg, DType::F64, &dev)?;
        let mag = st.magnitude(&Tensor::from_vec(x.clone(), (2, t), &dev)?)?;
        let got = mag.to_vec3::<f64>()?;
        for b in 0..2 {
            let want = reference_mag(&x[b * t..(b + 1) * t], cfg);
            assert_eq!(got[b].len(), want.len(), "frame count");
            for (gf, wf) in got[b].iter().zip(&want) {
                for (g, w) in gf.iter().zip(wf) {
                    assert!((g - w).abs() < 1e-9, "{cfg:?}: {g} vs {w}");
                }
            }
        }
    }
    Ok(())
}

/// Central-difference check of d(loss)/dx̂ in f64, batch 2.
fn fd_check(
    loss_fn: &dyn Fn(&Tensor) -> Result<Tensor>,
    x0: &[f64],
    shape: (usize, usize),
    tol: f64,
) -> Result<()> {
    let dev = Device::Cpu;
    let v = Var::from_vec(x0.to_vec(), shape, &dev)?;
    let loss = loss_fn(v.as_tensor())?;
    let g = loss
        .backward()?
        .get(v.as_tensor())
        .expect("gradient")
        .flatten_all()?
        .to_vec1::<f64>()?;
    let eps = 1e-6;
    let mut worst = 0f64;
    for i in 0..x0.len() {
        let mut p = x0.to_vec();
        p[i] += eps;
        let lp = loss_fn(&Tensor::from_vec(p.clone(), shape, &dev)?)?.to_scalar::<f64>()?;
        p[i] -= 2.0 * eps;
        let lm = loss_fn(&Tensor::from_vec(p, shape, &dev)?)?.to_scalar::<f64>()?;
        let fd = (lp - lm) / (2.0 * eps);
        worst = worst.max((fd - g[i]).abs() / (1.0 + fd.abs()));
    }
    assert!(worst < tol, "finite-difference mismatch {worst}");
    assert!(g.iter().any(|x| x.abs() > 1e-6), "gradient is all zero");
    Ok(())
}

#[test]
fn multispec_gradient_finite_difference_batch2() -> Result<()> {
    let dev = Device::Cpu;
    let cfgs = [
        StftConfig {
            n_fft: 16,
            hop: 4,
            window: 12,
        },
        StftConfig {
            n_fft: 8,
            hop: 3,
            window: 8,
        },
    ];
    let ms = MultiSpec::new(&cfgs, DType::F64, &dev)?;
    let t = 37;
    let x = Tensor::from_vec(signal(2, t, 2), (2, 1, t), &dev)?;
    let target = ms.target(&x)?;
    let x_hat0 = signal(2, t, 3);
    fd_check(
        &|xh: &Tensor| ms.loss(&target, &xh.reshape((2, 1, t))?, 0.7),
        &x_hat0,
        (2, t),
        1e-6,
    )
}

#[test]
fn lmix_gradient_finite_difference_and_value() -> Result<()> {
    let dev = Device::Cpu;
    let t = 30;
    let x = Tensor::from_vec(signal(2, t, 4), (2, t), &dev)?;
    fd_check(
        &|xh: &Tensor| lmix(&x, xh, 0.5, 1.0, 0.02, 5),
        &signal(2, t, 5),
        (2, t),
        1e-6,
    )?;

    // Hand value: residuals [1,2,3] and [0,0,4]; l2 mean = (1+4+9+16)/6 = 5; top-2 = {9,4},{16,0}
    let x = Tensor::zeros((2, 3), DType::F64, &dev)?;
    let xh = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 0.0, 0.0, 4.0], (2, 3), &dev)?;
    let l = lmix(&x, &xh, 2.0, 1.0, 0.5, 2)?.to_scalar::<f64>()?;
    let want = 5.0 / 2.0 + 0.5 * ((9.0 + 4.0 + 16.0 + 0.0) / 4.0) / 2.0;
    assert!((l - want).abs() < 1e-12, "{l} vs {want}");
    Ok(())
}

#[test]
fn topk_picks_largest_per_row() -> Result<()> {
    let dev = Device::Cpu;
    let x = Tensor::from_vec(vec![5f32, 1., 7., 3., 0., 2., 2., 9.], (2, 4), &dev)?;
    let mut r = topk_rows(&x, 2)?.to_vec2::<f32>()?;
    for row in r.iter_mut() {
        row.sort_by(|a, b| b.total_cmp(a));
    }
    assert_eq!(r, vec![vec![7., 5.], vec![9., 2.]]);
    Ok(())
}

#[test]
fn commit_and_straight_through() -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], (2, 2), &dev)?;
    let xd = Tensor::from_vec(vec![1.5f64, 2.0, 2.0, 4.0], (2, 2), &dev)?;
    let c = commit_loss(x.as_tensor(), &xd)?;
    assert!((c.to_scalar::<f64>()? - (0.25 + 1.0) / 4.0).abs() < 1e-12);
    let st = straight_through(x.as_tensor(), &xd)?;
    assert_eq!(st.to_vec2::<f64>()?, xd.to_vec2::<f64>()?);
    let g = (st * 3.0)?.sum_all()?.backward()?;
    assert_eq!(
        g.get(x.as_tensor())
            .unwrap()
            .flatten_all()?
            .to_vec1::<f64>()?,
        vec![3.0; 4]
    );
    Ok(())
}

#[test]
fn cross_entropy_in_bits() -> Result<()> {
    let dev = Device::Cpu;
    // Uniform logits over 8 classes: exactly 3 bits per token.
    let logits = Tensor::zeros((2, 5, 8), DType::F32, &dev)?;
    let tgt = Tensor::from_vec(vec![0u32, 1, 2, 3, 4, 5, 6, 7, 0, 1], (2, 5), &dev)?;
    let xent = |l: &Tensor, t: &Tensor| crate::prior::nll_bits(l, t)?.mean_all();
    let b = xent(&logits, &tgt)?.to_scalar::<f32>()?;
    assert!((b - 3.0).abs() < 1e-6, "{b}");
    // A confident correct prediction costs almost nothing; the wrong class costs a lot.
    let mut v = vec![0f32; 8];
    v[3] = 20.0;
    let l = Tensor::from_vec(v, (1, 8), &dev)?;
    let good = xent(&l, &Tensor::new(&[3u32], &dev)?)?.to_scalar::<f32>()?;
    let bad = xent(&l, &Tensor::new(&[2u32], &dev)?)?.to_scalar::<f32>()?;
    assert!(good < 1e-6 && bad > 28.0, "{good} {bad}");
    assert_eq!(crate::prior::nll_bits(&logits, &tgt)?.dims(), &[2, 5]);
    // Gradient check in f64.
    let t3 = Tensor::new(&[1u32, 0, 2], &dev)?;
    let x0: Vec<f64> = signal(3, 4, 7);
    fd_check(&|l: &Tensor| xent(l, &t3), &x0, (3, 4), 1e-6)
}

#[test]
fn fft_magnitude_equals_dft_basis_reference() {
    let dev = candle_core::Device::Cpu;
    let x: Vec<f64> = (0..2 * 3000)
        .map(|i| ((i * 7919 % 1000) as f64 / 500.0 - 1.0) * 0.5)
        .collect();
    let x = candle_core::Tensor::from_vec(x, (2, 3000), &dev).unwrap();
    for cfg in [
        super::StftConfig {
            n_fft: 512,
            hop: 50,
            window: 240,
        },
        super::StftConfig {
            n_fft: 1024,
            hop: 120,
            window: 600,
        },
        super::StftConfig {
            n_fft: 256,
            hop: 64,
            window: 256,
        },
    ] {
        let s = super::Stft::new(cfg, candle_core::DType::F64, &dev).unwrap();
        let a = s.magnitude(&x).unwrap();
        let b = s.magnitude_dft(&x).unwrap();
        let d = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(d < 1e-9, "{cfg:?}: {d}");
    }
}
