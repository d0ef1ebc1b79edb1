//! Parity of the VQ-VAE against the HF-port fixtures (`vqvae_io.safetensors`, see the
//! fixtures README): per level, encoder latents, codes (ties under 1e-5 excepted),
//! dequantised latents and decoded audio, plus the chunked paths against the same references.

use super::Report;
use crate::vqvae::VqVae;
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Float tensors: max abs error (fixtures README).
const TOL: f64 = 1e-4;
/// Code mismatches are excused only where the reference's best/second-best gap is below this.
const TIE_MARGIN: f32 = 1e-5;
/// Chunk (samples) for the chunked-path checks: a multiple of every hop, several per input.
const SEAM_CHUNK: usize = 8192;

fn load_model(dir: &Path) -> Result<VqVae> {
    crate::model::vqvae_from_dir(&dir.join("model"))
}

fn get<'a>(io: &'a HashMap<String, Tensor>, name: &str, file: &Path) -> Result<&'a Tensor> {
    io.get(name)
        .with_context(|| format!("{} has no tensor `{name}`", file.display()))
}

pub fn run(dir: &Path, report: &mut Report) -> Result<()> {
    let file = dir.join("vqvae_io.safetensors");
    if !file.exists() {
        report.skip("vqvae", format!("{} is missing", file.display()));
        return Ok(());
    }
    let model = match load_model(dir) {
        Ok(m) => m,
        Err(e) => {
            report.fail("vqvae.load", format!("{e:#}"));
            return Ok(());
        }
    };
    let io = candle_core::safetensors::load(&file, &Device::Cpu)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let audio = get(&io, "input_audio", &file)?.squeeze(2)?; // (B, T, 1) -> (B, T)
    for level in 0..model.levels() {
        let name = format!("vqvae.level{level}");
        report.guard(&name, |r| check_level(&model, &io, &file, &audio, level, r));
    }
    Ok(())
}

fn check_level(
    model: &VqVae,
    io: &HashMap<String, Tensor>,
    file: &Path,
    audio: &Tensor,
    level: usize,
    r: &mut Report,
) -> Result<()> {
    let want_latent = get(io, &format!("latent_level{level}"), file)?;
    let want_codes = get(io, &format!("codes_level{level}"), file)?;
    let margin = get(io, &format!("code_margin_level{level}"), file)?;
    let want_dq = get(io, &format!("dequantised_level{level}"), file)?;
    let want_audio = get(io, &format!("decoded_level{level}"), file)?.squeeze(2)?;

    let latent = model.encode_latent(audio, level)?;
    r.close(
        format!("vqvae.latent_level{level}"),
        &latent,
        want_latent,
        TOL,
    );

    // Codes: exact, except where the reference itself is a near-tie.
    let (codes, _) = model.quantise(&latent, level)?;
    let got: Vec<i64> = codes.to_dtype(DType::I64)?.flatten_all()?.to_vec1()?;
    let want: Vec<i64> = want_codes.to_dtype(DType::I64)?.flatten_all()?.to_vec1()?;
    let gaps: Vec<f32> = margin.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    if got.len() != want.len() || gaps.len() != want.len() {
        r.fail(
            format!("vqvae.codes_level{level}"),
            format!(
                "got {} codes, reference has {} (margins {})",
                got.len(),
                want.len(),
                gaps.len()
            ),
        );
    } else {
        let (mut bad, mut ties) = (0, 0);
        for ((g, w), m) in got.iter().zip(&want).zip(&gaps) {
            if g != w {
                if *m < TIE_MARGIN {
                    ties += 1;
                } else {
                    bad += 1;
                }
            }
        }
        r.exact(
            format!("vqvae.codes_level{level}"),
            bad,
            0,
            format!(
                "{} positions, {ties} near-tie mismatches excused",
                want.len()
            ),
        );
    }
    // The chunked encoder (8192-sample chunks: several seams) gives the same codes.
    let chunked = model.encode_chunked(audio, level, SEAM_CHUNK)?;
    let chunked: Vec<i64> = chunked.to_dtype(DType::I64)?.flatten_all()?.to_vec1()?;
    let diff = chunked.iter().zip(&got).filter(|(a, b)| a != b).count();
    r.exact(
        format!("vqvae.codes_level{level}_chunked"),
        diff,
        0,
        "vs unchunked",
    );

    // Decode from the reference codes, so each stage is checked on its own inputs.
    let dq = model.dequantise(want_codes, level)?;
    r.close(format!("vqvae.dequantised_level{level}"), &dq, want_dq, TOL);
    let decoded = model.decode(want_codes, level)?;
    r.close(
        format!("vqvae.decoded_level{level}"),
        &decoded,
        &want_audio,
        TOL,
    );
    let decoded_c = model.decode_chunked(want_codes, level, SEAM_CHUNK)?;
    r.close(
        format!("vqvae.decoded_level{level}_chunked"),
        &decoded_c,
        &want_audio,
        TOL,
    );
    Ok(())
}
