//! Parity of the three priors against the HF-port fixtures (`fixtures/prior_*_io.safetensors`):
//! teacher forcing (start embedding, conditioning, transformer input, every layer, logits,
//! loss), greedy KV-cached ancestral and primed sampling (every step's logits, the tokens), and
//! the top prior's windowed greedy run as HF `sample_level` does it.

use super::Report;
use crate::checkpoint::model_dir::ModelDir;
use crate::prior::{self, Prior, Record, SampleOpts};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

const TOL: f64 = 1e-4;

/// (io file stem, official level).
pub const PRIORS: &[(&str, usize)] = &[("prior_top", 2), ("prior_up1", 1), ("prior_up2", 0)];

fn get<'a>(io: &'a HashMap<String, Tensor>, k: &str) -> Result<&'a Tensor> {
    io.get(k)
        .with_context(|| format!("io file has no tensor `{k}`"))
}

fn mismatches(a: &Tensor, b: &Tensor) -> Result<usize> {
    if a.dims() != b.dims() {
        bail!("shape mismatch: got {:?}, want {:?}", a.dims(), b.dims());
    }
    let a = a.to_dtype(DType::I64)?.flatten_all()?.to_vec1::<i64>()?;
    let b = b.to_dtype(DType::I64)?.flatten_all()?.to_vec1::<i64>()?;
    Ok(a.iter().zip(&b).filter(|(x, y)| x != y).count())
}

/// Official/HF `get_starts`: hop through the song; the last window ends at the song end.
pub fn window_starts(total: usize, n_ctx: usize, hop: usize) -> Vec<usize> {
    let mut out = vec![];
    if total < n_ctx || hop == 0 {
        return out;
    }
    let mut s = 0;
    while s < total - n_ctx + hop {
        out.push(if s + n_ctx >= total { total - n_ctx } else { s });
        s += hop;
    }
    out
}

pub fn run(dir: &Path, report: &mut Report) -> Result<()> {
    let md = match ModelDir::open(&dir.join("model")) {
        Ok(m) => m,
        Err(e) => {
            report.fail("hf_prior/model", format!("{e:#}"));
            return Ok(());
        }
    };
    for &(stem, level) in PRIORS {
        let tag = format!("hf_prior/{stem}");
        report.guard(&tag.clone(), |r| {
            check_prior(dir, &md, stem, level, &tag, r)
        });
    }
    Ok(())
}

fn check_prior(
    dir: &Path,
    md: &ModelDir,
    stem: &str,
    level: usize,
    tag: &str,
    r: &mut Report,
) -> Result<()> {
    let prior = md.prior(level, &Device::Cpu)?;
    let ip = dir.join(format!("{stem}_io.safetensors"));
    let io = candle_core::safetensors::load(&ip, &Device::Cpu)
        .with_context(|| format!("cannot read {}", ip.display()))?;
    let y = get(&io, "tf_metadata")?;
    let zc = io.get("tf_cond_tokens");
    let tokens = get(&io, "tf_tokens")?;
    let cond = prior.conditioning(Some(y), zc)?;
    let (n, w) = (y.dim(0)?, prior.cfg.width);

    // Teacher forcing.
    r.close(
        format!("{tag}/tf_start_emb"),
        &cond.start.reshape((n, w))?,
        get(&io, "tf_metadata_start_emb")?,
        TOL,
    );
    match (&cond.x_cond, io.get("tf_audio_conditioning")) {
        (Some(x), Some(want)) => r.close(format!("{tag}/tf_conditioning"), x, want, TOL),
        (None, None) => {}
        _ => r.fail(
            format!("{tag}/tf_conditioning"),
            "conditioning present on one side only",
        ),
    }
    let mut rec = Record::default();
    let seq = prior.raw_sequence(tokens, &cond)?;
    let (logits, x_in) = prior.forward_seq(&seq, &cond, Some(&mut rec), &[])?;
    r.close(
        format!("{tag}/tf_transformer_input"),
        &x_in,
        get(&io, "tf_transformer_input")?,
        TOL,
    );
    let mut worst = 0f64;
    for (i, lo) in rec.layer_outputs.iter().enumerate() {
        worst = worst.max(super::max_abs_diff(
            lo,
            get(&io, &format!("tf_layer_{i}_output"))?,
        )?);
    }
    r.value(
        format!("{tag}/tf_layer_outputs({})", rec.layer_outputs.len()),
        worst,
        TOL,
    );
    r.close(
        format!("{tag}/tf_logits"),
        &logits,
        get(&io, "tf_logits")?,
        TOL,
    );
    let loss = prior.loss_bits(&logits, tokens)?.reshape(1)?;
    r.close(
        format!("{tag}/tf_loss_bits"),
        &loss,
        get(&io, "tf_loss_bits")?,
        TOL,
    );

    // Greedy KV-cached sampling (top_k = 1, temp 1): ancestral and primed.
    let seeds: Vec<u64> = (0..n as u64).collect();
    let n_ctx = prior.cfg.n_ctx;
    for mode in ["anc", "primed"] {
        let y_s = io.get(&format!("{mode}_metadata")).unwrap_or(y);
        let cond_s = prior.conditioning(Some(y_s), zc)?;
        let (prime, chunk) = if mode == "anc" {
            (Tensor::zeros((n, 0), DType::I64, &Device::Cpu)?, 1)
        } else {
            let p = get(&io, "primed_prime")?.clone();
            // HF: the top prime in one pass (chunk_size None), upsamplers in chunks of 16.
            let c = if level == 2 { p.dim(1)? } else { 16 };
            (p, c)
        };
        let opts = SampleOpts {
            temp: 1.0,
            top_k: 1,
            chunk_size: chunk,
            keep_logits: true,
            ..Default::default()
        };
        let out = prior::sample_window(
            &prior,
            &cond_s,
            &prime,
            n_ctx - prime.dim(1)?,
            &seeds,
            &opts,
            &mut |_, _| {},
        )?;
        let lg = out.logits.context("no logits kept")?;
        r.close(
            format!("{tag}/{mode}_step_logits"),
            &lg,
            get(&io, &format!("{mode}_step_logits"))?,
            TOL,
        );
        r.exact(
            format!("{tag}/{mode}_tokens"),
            mismatches(&out.tokens, get(&io, &format!("{mode}_tokens"))?)?,
            0,
            "",
        );
    }

    if level == 2 {
        check_windowed(&prior, &io, tag, r)?;
    }
    Ok(())
}

/// HF `sample_level` over 160 tokens with hop 8: each window re-primes with the tokens it
/// already has and samples the rest; only the new tokens are appended.
fn check_windowed(
    prior: &Prior,
    io: &HashMap<String, Tensor>,
    tag: &str,
    r: &mut Report,
) -> Result<()> {
    let labels = get(io, "windowed_labels")?;
    let want = get(io, "windowed_tokens")?;
    let (n, total) = want.dims2()?;
    let n_ctx = prior.cfg.n_ctx;
    let hop = 8;
    let starts = window_starts(total, n_ctx, hop);
    let want_starts: Vec<i64> = get(io, "windowed_starts")?.to_vec1()?;
    let got_starts: Vec<i64> = starts.iter().map(|&s| s as i64).collect();
    r.exact(
        format!("{tag}/windowed_starts"),
        usize::from(got_starts != want_starts),
        0,
        "",
    );
    let want_md = get(io, "windowed_window_metadata")?;
    let hop_len = prior.cfg.raw_to_tokens as i64;
    let seeds: Vec<u64> = (0..n as u64).collect();
    let mut zs = Tensor::zeros((n, 0), DType::I64, &Device::Cpu)?;
    let mut md_bad = 0;
    for (wi, &start) in starts.iter().enumerate() {
        let have = zs.dim(1)?.saturating_sub(start).min(n_ctx);
        let prev = zs.narrow(1, start.min(zs.dim(1)?), have)?;
        let new = n_ctx - have;
        if new == 0 {
            continue;
        }
        // y for this window: offset = start · hop, sample_length = n_ctx · hop.
        let mut rows = labels.to_vec2::<i64>()?;
        for row in &mut rows {
            row[1] = start as i64 * hop_len;
            row[2] = n_ctx as i64 * hop_len;
        }
        let y = Tensor::new(rows, &Device::Cpu)?;
        if let Ok(m) = want_md.get(wi) {
            md_bad += mismatches(&y, &m)?;
        }
        let cond = prior.conditioning(Some(&y), None)?;
        let opts = SampleOpts {
            temp: 1.0,
            top_k: 1,
            chunk_size: 16,
            window: wi as u64,
            ..Default::default()
        };
        let out = prior::sample_window(prior, &cond, &prev, new, &seeds, &opts, &mut |_, _| {})?;
        let fresh = out.tokens.narrow(1, have, new)?;
        zs = Tensor::cat(&[&zs, &fresh], 1)?;
    }
    r.exact(format!("{tag}/windowed_window_metadata"), md_bad, 0, "");
    r.exact(
        format!("{tag}/windowed_tokens"),
        mismatches(&zs, want)?,
        0,
        "",
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_like_hf() {
        assert_eq!(window_starts(160, 64, 8).len(), 13);
        assert_eq!(*window_starts(160, 64, 8).last().unwrap(), 96);
        assert_eq!(window_starts(100, 64, 32), vec![0, 32, 36]);
        assert!(window_starts(10, 64, 8).is_empty());
    }
}
