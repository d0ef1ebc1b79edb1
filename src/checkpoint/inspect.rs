//! `jukebox inspect`: what a checkpoint file or model directory holds.

use super::keys::Component;
use super::model_dir::{component_from_file_name, Layout, ModelDir};
use super::store::{Entry, Store};
use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Summary of one group of tensors (a component, or a whole file).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Part {
    pub name: String,
    pub kind: String,
    pub n_tensors: usize,
    /// Elements, every key counted.
    pub n_params: usize,
    /// Elements with shared storages (tied weights) counted once.
    pub n_params_unique: usize,
    pub dtypes: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Inspection {
    pub path: PathBuf,
    /// Container format(s) and layout.
    pub format: String,
    /// The detected model kind of the whole path.
    pub kind: String,
    pub parts: Vec<Part>,
    pub metadata: BTreeMap<String, String>,
    /// (key, dtype, shape) of every tensor, in key order.
    pub keys: Vec<(String, String, Vec<usize>)>,
}

fn dtype_name(e: &Entry) -> String {
    format!("{:?}", e.dtype).to_lowercase()
}

fn summarise<'a>(
    name: String,
    kind: String,
    entries: impl Iterator<Item = (&'a str, &'a Entry)>,
) -> Part {
    let (mut n, mut p, mut u) = (0, 0, 0);
    let mut dtypes = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (_, e) in entries {
        n += 1;
        p += e.numel();
        if seen.insert((e.storage_id, e.shape.clone())) {
            u += e.numel();
        }
        *dtypes.entry(dtype_name(e)).or_insert(0) += 1;
    }
    Part {
        name,
        kind,
        n_tensors: n,
        n_params: p,
        n_params_unique: u,
        dtypes,
    }
}

fn shape<'a>(keys: &'a BTreeMap<&str, &'a Entry>, k: &str) -> Option<&'a [usize]> {
    keys.get(k).map(|e| e.shape.as_slice())
}

/// Name what a set of official keys is: VQ-VAE, upsampler or which kind of top prior, and
/// whether its sizes are those of an official release.
pub fn describe_official(keys: &BTreeMap<&str, &Entry>) -> String {
    let has = |p: &str| keys.keys().any(|k| k.starts_with(p));
    if has("bottleneck.") || has("encoders.") || has("decoders.") {
        let levels = keys
            .keys()
            .filter(|k| k.starts_with("bottleneck.level_blocks."))
            .count();
        let cb = shape(keys, "bottleneck.level_blocks.0.k")
            .map(|s| format!(", codebook {s:?}"))
            .unwrap_or_default();
        let official =
            keys.len() == 669 && shape(keys, "bottleneck.level_blocks.0.k") == Some(&[2048, 64]);
        return format!(
            "VQ-VAE ({levels} levels{cb}){}",
            if official {
                ", official 5b/vqvae sizes"
            } else {
                ""
            }
        );
    }
    if !has("prior.") {
        return "unknown (neither VQ-VAE nor prior keys)".into();
    }
    let width = shape(keys, "prior.x_emb.weight")
        .and_then(|s| s.get(1).copied())
        .unwrap_or(0);
    let rows = shape(keys, "prior.x_emb.weight")
        .and_then(|s| s.first().copied())
        .unwrap_or(0);
    let depth = keys
        .keys()
        .filter_map(|k| k.strip_prefix("prior.transformer._attn_mods."))
        .filter_map(|r| r.split('.').next()?.parse::<usize>().ok())
        .collect::<BTreeSet<_>>()
        .len();
    let size = format!("width {width}, {depth} layers");
    if has("conditioner_blocks.") {
        let official = width == 1920 && depth == 72 && keys.len() == 1006;
        return format!(
            "upsampler prior ({size}){}",
            if official {
                ", official 5b upsampler sizes"
            } else {
                ""
            }
        );
    }
    if has("prime_prior.") {
        let official = width == 4800 && depth == 79 && keys.len() == 1194;
        return format!(
            "top prior, 5b_lyrics style: lyric encoder + cross-attention ({size}){}",
            if official {
                ", official 5b_lyrics sizes"
            } else {
                ""
            }
        );
    }
    // Merged lyrics put the 79-token lyric vocabulary after the music codes in one table.
    let merged = rows > 79 && (rows - 79).is_power_of_two();
    if merged {
        let official = width == 2048 && depth == 72 && rows == 2127;
        format!(
            "top prior, 1b_lyrics style: merged lyrics ({size}){}",
            if official {
                ", official 1b_lyrics sizes"
            } else {
                ""
            }
        )
    } else {
        let official = width == 4800 && depth == 72 && keys.len() == 872;
        format!(
            "top prior, 5b style: no lyrics ({size}){}",
            if official { ", official 5b sizes" } else { "" }
        )
    }
}

fn keys_of(entries: &BTreeMap<String, Entry>) -> Vec<(String, String, Vec<usize>)> {
    entries
        .iter()
        .map(|(k, e)| (k.clone(), dtype_name(e), e.shape.clone()))
        .collect()
}

/// Inspect a checkpoint file or a model directory.
pub fn inspect(path: &Path) -> Result<Inspection> {
    if path.is_dir() {
        return inspect_dir(path);
    }
    let s = path.to_string_lossy();
    if !path.exists() && super::hub::is_repo_id(&s) {
        return inspect_dir(&super::hub::resolve(&s)?);
    }
    let store = Store::open(path)?;
    let hf = store
        .entries
        .keys()
        .any(|k| k.starts_with("vqvae.") || k.starts_with("priors."));
    let mut parts = vec![];
    let kind = if hf {
        let mut groups: BTreeMap<String, Vec<(&str, &Entry)>> = BTreeMap::new();
        for (k, e) in &store.entries {
            let g = match k.split('.').collect::<Vec<_>>().as_slice() {
                ["priors", n, ..] => format!("priors.{n}"),
                [first, ..] => first.to_string(),
                [] => String::new(),
            };
            groups.entry(g).or_default().push((k.as_str(), e));
        }
        let n_priors = groups.keys().filter(|g| g.starts_with("priors.")).count();
        for (g, v) in groups {
            let kind = match g
                .strip_prefix("priors.")
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(n) if n < n_priors => {
                    format!("HF prior = official level {}", n_priors - 1 - n)
                }
                _ => "HF".into(),
            };
            parts.push(summarise(g, kind, v.into_iter()));
        }
        format!("Hugging Face Jukebox weights (VQ-VAE + {n_priors} priors); needs its config.json")
    } else {
        let keys: BTreeMap<&str, &Entry> =
            store.entries.iter().map(|(k, e)| (k.as_str(), e)).collect();
        let mut kind = describe_official(&keys);
        if let Some(Component::Prior(l)) = path
            .file_name()
            .and_then(|n| component_from_file_name(&n.to_string_lossy()))
        {
            kind = format!("{kind}; file name says level {l}");
        }
        parts.push(summarise("all".into(), kind.clone(), keys.into_iter()));
        kind
    };
    Ok(Inspection {
        path: path.to_path_buf(),
        format: store.format.to_string(),
        kind,
        parts,
        metadata: store.metadata.clone(),
        keys: keys_of(&store.entries),
    })
}

fn inspect_dir(path: &Path) -> Result<Inspection> {
    let md = ModelDir::open(path)?;
    let n = md.config.priors.len();
    let mut parts = vec![];
    let mut formats = BTreeSet::new();
    let mut keys = vec![];
    let mut metadata = BTreeMap::new();
    let comps = std::iter::once(Component::Vqvae).chain((0..n).map(Component::Prior));
    for c in comps {
        let t = match md.component(c) {
            Ok(t) => t,
            Err(e) => {
                parts.push(Part {
                    name: c.to_string(),
                    kind: format!("unavailable: {e:#}"),
                    n_tensors: 0,
                    n_params: 0,
                    n_params_unique: 0,
                    dtypes: BTreeMap::new(),
                });
                continue;
            }
        };
        formats.insert(t.store.format.to_string());
        let entries: BTreeMap<&str, &Entry> = t
            .map
            .iter()
            .filter_map(|(o, k)| t.store.get(k).map(|e| (o.as_str(), e)))
            .collect();
        let mut kind = describe_official(&entries);
        if !t.unmapped.is_empty() {
            kind = format!(
                "{kind}; {} keys with no official name, e.g. {}",
                t.unmapped.len(),
                t.unmapped[0]
            );
        }
        for (k, e) in &entries {
            keys.push((format!("[{c}] {k}"), dtype_name(e), e.shape.clone()));
        }
        if matches!(md.layout, Layout::Official { .. }) {
            for (k, v) in &t.store.metadata {
                metadata.insert(
                    format!("{}: {k}", super::model_dir::official_stem(c)),
                    v.clone(),
                );
            }
        } else {
            metadata.extend(t.store.metadata.clone());
        }
        parts.push(summarise(c.to_string(), kind, entries.into_iter()));
    }
    let kind = match &md.layout {
        Layout::Hf { weights } => format!(
            "full model, Hugging Face layout (config.json + {})",
            weights
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default()
        ),
        Layout::Official { preset, .. } => format!(
            "full model, official .pth.tar layout{}",
            preset
                .as_ref()
                .map(|p| format!(", preset {p}"))
                .unwrap_or_else(|| ", config.json".into())
        ),
    };
    Ok(Inspection {
        path: path.to_path_buf(),
        format: formats.into_iter().collect::<Vec<_>>().join(" + "),
        kind,
        parts,
        metadata,
        keys,
    })
}

fn human(n: usize) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2} M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

impl Inspection {
    /// The human-readable report; `list_keys` adds one line per tensor.
    pub fn render(&self, list_keys: bool) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "path:    {}", self.path.display());
        let _ = writeln!(s, "format:  {}", self.format);
        let _ = writeln!(s, "kind:    {}", self.kind);
        let (t, p, u): (usize, usize, usize) = self.parts.iter().fold((0, 0, 0), |a, x| {
            (a.0 + x.n_tensors, a.1 + x.n_params, a.2 + x.n_params_unique)
        });
        let _ = writeln!(
            s,
            "tensors: {t}, parameters: {p} ({}){}",
            human(p),
            if u != p {
                format!(", {u} with tied weights counted once")
            } else {
                String::new()
            }
        );
        for part in &self.parts {
            let d: Vec<String> = part
                .dtypes
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect();
            let _ = writeln!(
                s,
                "  {:<16} {:>5} tensors  {:>10} params  [{}]  {}",
                part.name,
                part.n_tensors,
                human(part.n_params),
                d.join(", "),
                part.kind
            );
        }
        if !self.metadata.is_empty() {
            let _ = writeln!(s, "metadata:");
            for (k, v) in self.metadata.iter().take(40) {
                let _ = writeln!(s, "  {k} = {v}");
            }
            if self.metadata.len() > 40 {
                let _ = writeln!(s, "  ... {} more", self.metadata.len() - 40);
            }
        }
        if list_keys {
            for (k, d, sh) in &self.keys {
                let _ = writeln!(s, "{k}\t{d}\t{sh:?}");
            }
        }
        s
    }
}
