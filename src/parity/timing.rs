//! Parity: the official timing-label bins (`timing/`): every case of every preset, bins identical.

use super::Report;
use crate::labels::timing_bins;
use anyhow::{bail, Context, Result};
use safetensors::{Dtype, SafeTensors};
use std::path::Path;

/// An integer tensor from a safetensors file, widened to i64, with its shape.
pub(crate) fn read_ints(st: &SafeTensors, name: &str) -> Result<(Vec<i64>, Vec<usize>)> {
    let t = st
        .tensor(name)
        .with_context(|| format!("tensor `{name}` is missing"))?;
    let data = t.data();
    let v: Vec<i64> = match t.dtype() {
        Dtype::I64 => data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect(),
        Dtype::I32 => data
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
            .collect(),
        Dtype::I16 => data
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]) as i64)
            .collect(),
        other => bail!("tensor `{name}` has dtype {other:?}; expected an integer type"),
    };
    Ok((v, t.shape().to_vec()))
}

pub fn run(dir: &Path, report: &mut Report) -> Result<()> {
    let json_path = dir.join("timing_bins.json");
    let text = std::fs::read_to_string(&json_path)
        .with_context(|| format!("cannot read {}", json_path.display()))?;
    let index: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", json_path.display()))?;
    let st_path = dir.join("timing_bins.safetensors");
    let bytes =
        std::fs::read(&st_path).with_context(|| format!("cannot read {}", st_path.display()))?;
    let st = SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{} is not safetensors", st_path.display()))?;
    let sr = index.get("sr").and_then(|v| v.as_f64()).unwrap_or(44100.0);
    let presets = index
        .get("presets")
        .and_then(|p| p.as_object())
        .with_context(|| format!("{}: no `presets` object", json_path.display()))?;
    if presets.is_empty() {
        report.fail(
            "timing",
            format!("{}: `presets` is empty", json_path.display()),
        );
    }
    for (name, p) in presets {
        let check = format!("timing/{name}");
        report.guard(&check.clone(), |report| {
            let num = |k: &str| -> Result<f64> {
                p.get(k)
                    .and_then(|v| v.as_f64())
                    .with_context(|| format!("{}: preset {name} has no number `{k}`", json_path.display()))
            };
            let (min_d, max_d) = (num("min_duration")?, num("max_duration")?);
            let (t_bins, n_time) = (num("t_bins")? as usize, num("n_time")? as usize);
            let (inputs, ishape) = read_ints(&st, &format!("{name}.inputs"))?;
            let (want_total, _) = read_ints(&st, &format!("{name}.total_bin"))?;
            let (want_abs, ashape) = read_ints(&st, &format!("{name}.absolute_bins"))?;
            let (want_rel, _) = read_ints(&st, &format!("{name}.relative_bins"))?;
            if ishape.len() != 2 || ishape[1] != 3 || ashape != [ishape[0], n_time] {
                bail!("{name}: unexpected shapes inputs {ishape:?}, absolute_bins {ashape:?} (n_time {n_time})");
            }
            let n = ishape[0];
            if let Some(c) = p.get("cases").and_then(|v| v.as_u64()) {
                if c as usize != n {
                    bail!("{name}: timing_bins.json says {c} cases, the tensors hold {n}");
                }
            }
            let (mut bad_total, mut bad_abs, mut bad_rel) = (0usize, 0usize, 0usize);
            let mut first = String::new();
            for i in 0..n {
                let row = &inputs[i * 3..i * 3 + 3];
                let got = timing_bins(row[0], row[1], row[2], n_time, t_bins, min_d, max_d, sr)
                    .with_context(|| format!("{name} case {i} {row:?}"))?;
                let sl = i * n_time..(i + 1) * n_time;
                let ba = got.absolute.iter().zip(&want_abs[sl.clone()]).filter(|(a, b)| a != b).count();
                let br = got.relative.iter().zip(&want_rel[sl]).filter(|(a, b)| a != b).count();
                let bt = usize::from(got.total != want_total[i]);
                if (ba + br + bt) > 0 && first.is_empty() {
                    first = format!("; first mismatch: case {i} {row:?}");
                }
                bad_total += bt;
                bad_abs += ba;
                bad_rel += br;
            }
            report.exact(format!("{check}/total_bin"), bad_total, 0, format!("{n} cases{first}"));
            report.exact(format!("{check}/absolute_bins"), bad_abs, 0, format!("{} bins{first}", n * n_time));
            report.exact(format!("{check}/relative_bins"), bad_rel, 0, format!("{} bins{first}", n * n_time));
            Ok(())
        });
    }
    Ok(())
}
