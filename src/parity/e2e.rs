//! End-to-end parity (`fixtures/e2e_io.safetensors`): greedy top → middle (conditioned on the
//! first n_ctx/4 top tokens) → bottom (on the first middle tokens), then each level decoded.

use super::Report;
use crate::checkpoint::ModelDir;
use crate::prior::sampler::{sample_window, SampleOpts};
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use std::path::Path;

const TOL: f64 = 1e-4;

pub fn run(dir: &Path, report: &mut Report) -> Result<()> {
    let path = dir.join("e2e_io.safetensors");
    if !path.exists() {
        report.fail("e2e", format!("{} is missing", path.display()));
        return Ok(());
    }
    report.guard("e2e", |r| check(dir, &path, r));
    Ok(())
}

fn check(dir: &Path, path: &Path, report: &mut Report) -> Result<()> {
    let dev = Device::Cpu;
    let io = candle_core::safetensors::load(path, &dev)?;
    let get = |k: &str| {
        io.get(k)
            .with_context(|| format!("{} has no `{k}`", path.display()))
    };
    let md = ModelDir::open(&dir.join("model"))?;
    let vq = md.vqvae(&dev)?;
    let greedy = |level: usize| SampleOpts {
        temp: 0.0,
        level: level as u64,
        ..Default::default()
    };
    // (level, metadata key, tokens key, audio key, conditioning tokens)
    let mut upper: Option<Tensor> = None;
    for (level, meta, toks, audio) in [
        (2usize, "metadata_top", "tokens_top", "audio_from_top"),
        (1, "metadata_up1", "tokens_mid", "audio_from_mid"),
        (0, "metadata_up2", "tokens_bottom", "audio_from_bottom"),
    ] {
        let prior = md.prior(level, &dev)?;
        let y = get(meta)?.to_dtype(DType::I64)?;
        let n = y.dim(0)?;
        let z_cond = match &upper {
            Some(u) => Some(u.narrow(1, 0, prior.z_cond_len())?),
            None => None,
        };
        let cond = prior.conditioning(Some(&y), z_cond.as_ref())?;
        let prime = Tensor::zeros((n, 0), DType::I64, &dev)?;
        let seeds = vec![0u64; n];
        let out = sample_window(
            &prior,
            &cond,
            &prime,
            prior.cfg.n_ctx,
            &seeds,
            &greedy(level),
            &mut |_, _| {},
        )?;
        let want = get(toks)?.to_dtype(DType::I64)?;
        let got = out.tokens.to_dtype(DType::I64)?;
        let a = got.flatten_all()?.to_vec1::<i64>()?;
        let b = want.flatten_all()?.to_vec1::<i64>()?;
        let bad = a.iter().zip(&b).filter(|(x, y)| x != y).count() + a.len().abs_diff(b.len());
        report.exact(format!("e2e/{toks}"), bad, 0, "greedy tokens");
        // Decode the fixture's tokens, so a token mismatch does not hide a decoder check.
        let dec = vq.decode(&want, level)?;
        let want_audio = get(audio)?.squeeze(2)?;
        report.close(format!("e2e/{audio}"), &dec, &want_audio, TOL);
        upper = Some(want);
    }
    Ok(())
}
