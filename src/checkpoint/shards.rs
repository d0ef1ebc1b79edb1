//! Sharded HF weights: `pytorch_model-0000N-of-0000M.bin` or `model-0000N-of-0000M.safetensors`
//! with their `*.index.json` (`{"weight_map": {key: file}}`), and weight-file discovery in a dir.

use super::store::Store;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Weight files an HF model directory may hold, in order of preference.
pub const HF_WEIGHT_FILES: &[&str] = &[
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
];

/// The weights of an HF model directory.
pub fn find_weights(dir: &Path) -> Option<PathBuf> {
    HF_WEIGHT_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
}

pub fn open_dir(dir: &Path) -> Result<Store> {
    match find_weights(dir) {
        Some(p) => Store::open(&p),
        None => bail!(
            "{} holds no weights: expected one of {}",
            dir.display(),
            HF_WEIGHT_FILES.join(", ")
        ),
    }
}

/// Open every shard named by an index JSON and merge them into one store.
pub fn open_index(index: &Path) -> Result<Store> {
    let text = std::fs::read_to_string(index)
        .with_context(|| format!("cannot read {}", index.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", index.display()))?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .with_context(|| format!("{} has no `weight_map` object", index.display()))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut by_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, f) in map {
        let f = f.as_str().with_context(|| {
            format!("{}: weight_map[`{k}`] is not a file name", index.display())
        })?;
        // Shards live beside the index: refuse paths that would leave the directory.
        if f.is_empty() || f.contains('/') || f.contains('\\') || f == "." || f == ".." {
            bail!(
                "{}: weight_map[`{k}`] = `{f}` is not a plain file name",
                index.display()
            );
        }
        by_file.entry(f.to_string()).or_default().push(k.clone());
    }
    if by_file.is_empty() {
        bail!("{}: weight_map is empty", index.display());
    }
    let mut merged: Option<Store> = None;
    for (f, keys) in by_file {
        let p = dir.join(&f);
        let s =
            Store::open(&p).with_context(|| format!("shard {f} named by {}", index.display()))?;
        let missing: Vec<&String> = keys
            .iter()
            .filter(|k| !s.entries.contains_key(*k))
            .collect();
        if !missing.is_empty() {
            bail!(
                "{}: shard {f} lacks {} tensors that the index places there, e.g. {:?}",
                index.display(),
                missing.len(),
                &missing[..missing.len().min(5)]
            );
        }
        match &mut merged {
            None => {
                merged = Some(Store {
                    path: index.to_path_buf(),
                    ..s
                })
            }
            Some(m) => {
                if m.format != s.format {
                    bail!(
                        "{}: shards mix {} and {}",
                        index.display(),
                        m.format,
                        s.format
                    );
                }
                for (k, e) in s.entries {
                    if m.entries.insert(k.clone(), e).is_some() {
                        bail!(
                            "{}: tensor `{k}` appears in more than one shard",
                            index.display()
                        );
                    }
                }
            }
        }
    }
    merged.context("no shards")
}
