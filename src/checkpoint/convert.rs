//! `jukebox convert`: any supported checkpoint → safetensors.
//!
//! - A **model directory** (HF layout in any weight format, or official `.pth.tar` files with a
//!   preset) becomes an HF-layout directory: `config.json` (from the model's config) and one
//!   `model.safetensors` with HF key names, the form `ModelDir` loads fastest (mmap).
//! - A **single official file** (`vqvae.pth.tar`, `prior_level_N.pth.tar`, or any torch
//!   checkpoint with official keys) cannot become an HF model on its own (HF stores whole
//!   models), so it becomes `DIR/<stem>.safetensors` with its official keys unchanged
//!   (`module.` stripped). A directory of such files, plus a `preset` file or `config.json`, is an
//!   official-layout model directory (see [`super::model_dir`]). Converting every official file
//!   of a download this way avoids re-parsing multi-GB pickles on each load.
//!
//! Tensors keep their stored dtype (an fp16 Conv1D weight stays fp16, bit for bit) unless
//! `dtype` asks for one float type; integer tensors are never converted.

use super::keys::Component;
use super::model_dir::{component_from_file_name, official_stem, ModelDir};
use super::safetensors_io::{self, WriteItem};
use super::store::{Entry, Store};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What `convert` wrote.
#[derive(Debug, Clone)]
pub struct Converted {
    pub files: Vec<PathBuf>,
    pub n_tensors: usize,
}

fn item<'a>(name: String, e: &'a Entry, dtype: Option<DType>) -> WriteItem<'a> {
    let target = match dtype {
        Some(d) if e.dtype.is_float() => d,
        _ => e.dtype,
    };
    WriteItem {
        name,
        dtype: target,
        shape: e.shape.clone(),
        bytes: Box::new(move || {
            if target == e.dtype {
                Ok(e.bytes().into_owned())
            } else {
                safetensors_io::tensor_bytes(&e.load(target, &Device::Cpu)?)
            }
        }),
    }
}

/// Convert `src` (a file or model directory) into `out_dir`. `dtype`: `None` keeps every
/// tensor's stored dtype.
pub fn convert(src: &Path, out_dir: &Path, dtype: Option<DType>) -> Result<Converted> {
    if let Some(d) = dtype {
        if !d.is_float() {
            bail!("--dtype must be a float type, got {d:?}");
        }
    }
    if src.is_dir() {
        if src.canonicalize().ok() == out_dir.canonicalize().ok() {
            bail!(
                "the output directory {} is the input directory",
                out_dir.display()
            );
        }
        return convert_dir(src, out_dir, dtype);
    }
    let store = Store::open(src)?;
    if store
        .entries
        .keys()
        .any(|k| k.starts_with("vqvae.") || k.starts_with("priors."))
    {
        bail!(
            "{} holds Hugging Face weights: convert the directory that holds it and its config.json",
            src.display()
        );
    }
    let name = src
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let stem = match component_from_file_name(&name) {
        Some(c) => official_stem(c),
        None => name
            .split('.')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("weights")
            .to_string(),
    };
    let out = out_dir.join(format!("{stem}.safetensors"));
    if out.canonicalize().ok().is_some() && out.canonicalize().ok() == src.canonicalize().ok() {
        bail!("refusing to overwrite the input {}", src.display());
    }
    let items: Vec<WriteItem> = store
        .entries
        .iter()
        .map(|(k, e)| item(k.clone(), e, dtype))
        .collect();
    let n = items.len();
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert("jukebox.keys".to_string(), "official".to_string());
    meta.insert("jukebox.source".to_string(), name);
    safetensors_io::write(&out, items, &meta)?;
    Ok(Converted {
        files: vec![out],
        n_tensors: n,
    })
}

fn convert_dir(src: &Path, out_dir: &Path, dtype: Option<DType>) -> Result<Converted> {
    let md = ModelDir::open(src)?;
    let n = md.config.priors.len();
    let comps: Vec<Component> = std::iter::once(Component::Vqvae)
        .chain((0..n).map(Component::Prior))
        .collect();
    let mut tensors = vec![];
    for &c in &comps {
        tensors.push(
            md.component(c)
                .with_context(|| format!("cannot convert {}", src.display()))?,
        );
    }
    for t in &tensors {
        if !t.unmapped.is_empty() {
            bail!(
                "{}: {} keys of the {} have no official name (e.g. `{}`); refusing a lossy conversion",
                src.display(),
                t.unmapped.len(),
                t.component,
                t.unmapped[0]
            );
        }
    }
    let mut items = vec![];
    for t in &tensors {
        for (official, key) in &t.map {
            let e = t.store.get(key).context("entry vanished")?;
            items.push(item(
                md.keymap.official_to_hf(t.component, official)?,
                e,
                dtype,
            ));
        }
    }
    items.sort_by(|a, b| a.name.cmp(&b.name));
    let n_tensors = items.len();
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let weights = out_dir.join("model.safetensors");
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    safetensors_io::write(&weights, items, &meta)?;
    let cfg = out_dir.join("config.json");
    let text = serde_json::to_vec_pretty(&md.config.to_hf_value())?;
    crate::util::atomic_write(&cfg, &text)?;
    // Labels travel with the model.
    let mut files = vec![cfg, weights];
    for f in ["labels/artists.txt", "labels/genres.txt"] {
        let p = src.join(f);
        if p.is_file() {
            let b = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
            let o = out_dir.join(f);
            crate::util::atomic_write(&o, &b)?;
            files.push(o);
        }
    }
    Ok(Converted { files, n_tensors })
}
