//! Parity: checkpoint containers written by torch (`checkpoints/` with `index.json`). Every file
//! must equal its source safetensors bit for bit; `float16_keys` equal the source rounded to f16
//! (round to nearest even); `tied` keys share one storage; `module.` prefixes are stripped.

use super::Report;
use crate::checkpoint::Store;
use anyhow::{Context, Result};
use candle_core::{DType, Device};
use std::collections::HashSet;
use std::path::Path;

/// Compare `got` with `want` tensor by tensor; returns one line per problem (missing, extra,
/// dtype, shape or any differing bit).
pub fn compare_stores(
    got: &Store,
    want: &Store,
    f16_keys: &HashSet<String>,
) -> Result<Vec<String>> {
    let mut bad = vec![];
    for k in got
        .entries
        .keys()
        .filter(|k| !want.entries.contains_key(*k))
    {
        bad.push(format!("unexpected `{k}`"));
    }
    for (k, w) in &want.entries {
        let Some(g) = got.get(k) else {
            bad.push(format!("missing `{k}`"));
            continue;
        };
        if g.shape != w.shape {
            bad.push(format!("`{k}`: shape {:?}, source {:?}", g.shape, w.shape));
            continue;
        }
        let want_dtype = if f16_keys.contains(k) {
            DType::F16
        } else {
            w.dtype
        };
        if g.dtype != want_dtype {
            bad.push(format!(
                "`{k}`: dtype {:?}, expected {want_dtype:?}",
                g.dtype
            ));
            continue;
        }
        let same = if want_dtype == w.dtype {
            g.bytes() == w.bytes()
        } else {
            // Round the source to f16 (candle converts with round-to-nearest-even).
            let r = w.load(DType::F16, &Device::Cpu)?;
            crate::checkpoint::safetensors_io::tensor_bytes(&r)? == g.bytes().as_ref()
        };
        if !same {
            bad.push(format!("`{k}`: values differ"));
        }
    }
    Ok(bad)
}

pub fn run(dir: &Path, report: &mut Report) -> Result<()> {
    let ix_path = dir.join("index.json");
    let text = std::fs::read_to_string(&ix_path)
        .with_context(|| format!("cannot read {}", ix_path.display()))?;
    let ix: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", ix_path.display()))?;
    let root = dir.parent().unwrap_or(Path::new("."));
    let Some(obj) = ix.as_object() else {
        report.fail("checkpoints/index", "index.json is not an object");
        return Ok(());
    };
    for (name, spec) in obj {
        let Some(src) = spec.get("source").and_then(|s| s.as_str()) else {
            continue;
        };
        let check = format!("checkpoints/{}", name.trim_end_matches('/'));
        report.guard(&check.clone(), |report| {
            let got = Store::open(&dir.join(name))?;
            let want = Store::open(&root.join(src))?;
            if let Some(n) = spec.get("entries").and_then(|v| v.as_u64()) {
                report.exact(
                    format!("{check}/entries"),
                    got.len().abs_diff(n as usize),
                    0,
                    format!("{} entries", got.len()),
                );
            }
            let f16: HashSet<String> = spec
                .get("float16_keys")
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let bad = compare_stores(&got, &want, &f16)?;
            let detail = match bad.first() {
                Some(b) => format!("{} of {} tensors differ, e.g. {b}", bad.len(), want.len()),
                None => format!("{} tensors bit-exact vs {src} ({})", want.len(), got.format),
            };
            report.exact(format!("{check}/values"), bad.len(), 0, detail);
            if let Some(t) = spec.get("tied").and_then(|v| v.as_array()) {
                let ids: Vec<_> = t
                    .iter()
                    .filter_map(|k| k.as_str())
                    .map(|k| got.get(k).map(|e| e.storage_id))
                    .collect();
                let shared = ids.len() >= 2 && ids.iter().all(|i| i.is_some() && *i == ids[0]);
                report.exact(
                    format!("{check}/tied"),
                    usize::from(!shared),
                    0,
                    "tied keys share one storage",
                );
            }
            Ok(())
        });
    }
    Ok(())
}
