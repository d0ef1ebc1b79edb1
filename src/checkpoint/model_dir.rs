//! A model directory: config + weights, handed out as VarBuilders with **official** keys.
//!
//! Layouts (checked in this order):
//! 1. **Hugging Face**: `config.json` plus `model.safetensors`, `model.safetensors.index.json`
//!    (+ shards), `pytorch_model.bin`, or `pytorch_model.bin.index.json` (+ shards). Keys are
//!    translated to official names by [`KeyMap`]; HF `priors.0` is official level 2.
//! 2. **Official files**: `vqvae.pth.tar` and `prior_level_{0,1,2}.pth.tar`. The hyperparameters
//!    come from `config.json` if present, otherwise from a preset (`5b`, `5b_lyrics`, `1b_lyrics`),
//!    named by
//!    - a file `preset` in the directory holding the name (e.g. `5b_lyrics`), or
//!    - the directory's own name, as in the official download cache
//!      `~/.cache/jukebox/models/{5b,5b_lyrics,1b_lyrics}/`.
//!
//!    The files shared by all presets (`vqvae.pth.tar`, `prior_level_0.pth.tar`,
//!    `prior_level_1.pth.tar`) are looked up in the directory first, then in its sibling `../5b/`,
//!    so pointing at `~/.cache/jukebox/models/5b_lyrics` finds the official cache as downloaded.
//!    Official files are opened lazily: a VQ-VAE-only job never touches the 10 GB top prior.
//!    Each file may also be a safetensors file with the same official keys
//!    (`vqvae.safetensors`, `prior_level_N.safetensors`), as `jukebox convert FILE.pth.tar` writes.

use super::keys::{Component, KeyMap};
use super::store::{Entry, Store};
use crate::config::{JukeboxConfig, PRESETS};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Where a model's weights are.
#[derive(Debug, Clone)]
pub enum Layout {
    /// HF layout: one store (possibly sharded) for everything.
    Hf { weights: PathBuf },
    /// Official `.pth.tar` files: `files[0]` is the VQ-VAE, `files[1 + L]` prior level L.
    Official {
        preset: Option<String>,
        files: Vec<Option<PathBuf>>,
    },
}

/// Official file stem of a component: `vqvae` or `prior_level_{L}`.
pub fn official_stem(c: Component) -> String {
    match c {
        Component::Vqvae => "vqvae".into(),
        Component::Prior(l) => format!("prior_level_{l}"),
    }
}

/// Official file name of a component (`vqvae.pth.tar`, `prior_level_{L}.pth.tar`).
pub fn official_file_name(c: Component) -> String {
    format!("{}.pth.tar", official_stem(c))
}

/// The component an official file name stands for (`prior_level_2.pth.tar` → level 2).
pub fn component_from_file_name(name: &str) -> Option<Component> {
    let stem = name.split('.').next()?;
    if stem == "vqvae" {
        return Some(Component::Vqvae);
    }
    stem.strip_prefix("prior_level_")?
        .parse()
        .ok()
        .map(Component::Prior)
}

/// The file for component `c` in `dir`: `.pth.tar` first, then `.safetensors`.
fn find_official(dir: &Path, c: Component) -> Option<PathBuf> {
    let stem = official_stem(c);
    [format!("{stem}.pth.tar"), format!("{stem}.safetensors")]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// The tensors of one component, keyed by official name.
#[derive(Clone)]
pub struct ComponentTensors {
    pub component: Component,
    pub store: Arc<Store>,
    /// official key → key in `store`.
    pub map: BTreeMap<String, String>,
    /// Keys in the store that belong to this component's prefix but follow no rule.
    pub unmapped: Vec<String>,
}

impl ComponentTensors {
    pub fn entry(&self, official: &str) -> Option<&Entry> {
        self.map.get(official).and_then(|k| self.store.get(k))
    }

    /// official key → shape.
    pub fn shapes(&self) -> HashMap<String, Vec<usize>> {
        self.map
            .iter()
            .filter_map(|(o, k)| self.store.get(k).map(|e| (o.clone(), e.shape.clone())))
            .collect()
    }

    /// A VarBuilder over these tensors, converting to `dtype` on load.
    pub fn var_builder(&self, dtype: DType, dev: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), dtype, dev.clone())
    }
}

impl SimpleBackend for ComponentTensors {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        // The loaders check every key and shape first (a typed `TensorMismatch` naming them
        // all); these messages are for a model built on the backend directly.
        let Some(e) = self.entry(name) else {
            candle_core::bail!(
                "{}: the {} has no tensor `{name}`",
                self.store.path.display(),
                self.component
            );
        };
        if e.shape != s.dims() {
            candle_core::bail!(
                "{}: `{name}` of the {} has shape {:?}, the model expects {:?}",
                e.file.display(),
                self.component,
                e.shape,
                s.dims()
            );
        }
        e.load(dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        match self.entry(name) {
            Some(e) => e.load(dtype, dev),
            None => candle_core::bail!(
                "{}: the {} has no tensor `{name}`",
                self.store.path.display(),
                self.component
            ),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.entry(name).is_some()
    }
}

pub struct ModelDir {
    pub path: PathBuf,
    pub config: JukeboxConfig,
    pub layout: Layout,
    pub keymap: KeyMap,
    /// HF layout: the single store. Official layout: one lazily opened store per file.
    hf_store: Option<Arc<Store>>,
    official: Vec<OnceLock<Arc<Store>>>,
}

fn read_preset(dir: &Path) -> Result<Option<String>> {
    let f = dir.join("preset");
    if f.is_file() {
        let t =
            std::fs::read_to_string(&f).with_context(|| format!("cannot read {}", f.display()))?;
        let name = t.lines().next().unwrap_or("").trim().to_string();
        if !PRESETS.contains(&name.as_str()) {
            bail!(
                "{} names preset `{name}`; expected one of {}",
                f.display(),
                PRESETS.join(", ")
            );
        }
        return Ok(Some(name));
    }
    let own = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()));
    Ok(own.filter(|n| PRESETS.contains(&n.as_str())))
}

impl ModelDir {
    /// Open a model directory in any supported layout (see the module docs).
    pub fn open(path: &Path) -> Result<ModelDir> {
        if path.is_file() {
            bail!(
                "{} is a file, not a model directory: give the folder that holds config.json and \
                 the weights (or the official .pth.tar files)",
                path.display()
            );
        }
        if !path.is_dir() {
            let s = path.to_string_lossy();
            if super::hub::is_repo_id(&s) {
                return ModelDir::open(&super::hub::resolve(&s)?);
            }
            bail!("model directory {} does not exist", path.display());
        }
        let cfg_path = path.join("config.json");
        let config = if cfg_path.is_file() {
            let t = std::fs::read_to_string(&cfg_path)
                .with_context(|| format!("cannot read {}", cfg_path.display()))?;
            Some(
                JukeboxConfig::from_hf_json(&t)
                    .with_context(|| format!("invalid {}", cfg_path.display()))?,
            )
        } else {
            None
        };
        if let (Some(config), Some(weights)) = (&config, super::shards::find_weights(path)) {
            let store = Arc::new(Store::open(&weights)?);
            return Ok(ModelDir {
                path: path.to_path_buf(),
                keymap: KeyMap::new(config),
                config: config.clone(),
                layout: Layout::Hf { weights },
                hf_store: Some(store),
                official: vec![],
            });
        }
        let preset = read_preset(path)?;
        let config = match (config, &preset) {
            (Some(c), _) => c,
            (None, Some(p)) => JukeboxConfig::preset(p)?,
            (None, None) => bail!(
                "{} is not a model directory: it needs config.json with model.safetensors / pytorch_model.bin, \
                 or official .pth.tar files with a `preset` file (one of {}) or a directory named after a preset",
                path.display(),
                PRESETS.join(", ")
            ),
        };
        let n = config.priors.len();
        let comps = std::iter::once(Component::Vqvae).chain((0..n).map(Component::Prior));
        // The sibling `5b/` of the official cache; lexical when the path ends in a name.
        let shared = match (path.file_name(), path.parent()) {
            (Some(_), Some(parent)) => parent.join("5b"),
            _ => path
                .canonicalize()
                .map(|p| p.join("..").join("5b"))
                .unwrap_or_else(|_| path.join("../5b")),
        };
        let files: Vec<Option<PathBuf>> = comps
            .map(|c| {
                let is_shared = !matches!(c, Component::Prior(l) if l + 1 == n);
                find_official(path, c).or_else(|| {
                    if is_shared {
                        find_official(&shared, c)
                    } else {
                        None
                    }
                })
            })
            .collect();
        if files.iter().all(Option::is_none) {
            bail!(
                "{}: no weights found (expected model.safetensors, pytorch_model.bin or the official \
                 vqvae.pth.tar / prior_level_N.pth.tar files)",
                path.display()
            );
        }
        Ok(ModelDir {
            path: path.to_path_buf(),
            keymap: KeyMap::new(&config),
            official: (0..files.len()).map(|_| OnceLock::new()).collect(),
            config,
            layout: Layout::Official { preset, files },
            hf_store: None,
        })
    }

    fn check_level_exists(&self, c: Component) -> Result<()> {
        if let Component::Prior(l) = c {
            if l >= self.config.priors.len() {
                bail!(
                    "prior level {l} does not exist: {} has {} priors",
                    self.path.display(),
                    self.config.priors.len()
                );
            }
        }
        Ok(())
    }

    /// The tensors of one component with official keys.
    pub fn component(&self, c: Component) -> Result<ComponentTensors> {
        self.check_level_exists(c)?;
        match &self.layout {
            Layout::Hf { .. } => {
                let store = self.hf_store.clone().context("HF store missing")?;
                let prefix = self.keymap.hf_prefix(c)?;
                let mut map = BTreeMap::new();
                let mut unmapped = vec![];
                for k in store.entries.keys().filter(|k| k.starts_with(&prefix)) {
                    match self.keymap.hf_to_official(k) {
                        Ok((cc, o)) if cc == c => {
                            map.insert(o, k.clone());
                        }
                        _ => unmapped.push(k.clone()),
                    }
                }
                Ok(ComponentTensors {
                    component: c,
                    store,
                    map,
                    unmapped,
                })
            }
            Layout::Official { files, .. } => {
                let idx = match c {
                    Component::Vqvae => 0,
                    Component::Prior(l) => l + 1,
                };
                let file = files.get(idx).cloned().flatten().with_context(|| {
                    format!(
                        "{}: the {c} needs {} (looked in the directory and in ../5b/)",
                        self.path.display(),
                        official_file_name(c)
                    )
                })?;
                let cell = &self.official[idx];
                let store = match cell.get() {
                    Some(s) => s.clone(),
                    None => {
                        let s = Arc::new(Store::open(&file)?);
                        cell.get_or_init(|| s).clone()
                    }
                };
                let map = store
                    .entries
                    .keys()
                    .map(|k| (k.clone(), k.clone()))
                    .collect();
                Ok(ComponentTensors {
                    component: c,
                    store,
                    map,
                    unmapped: vec![],
                })
            }
        }
    }

    /// VarBuilder whose keys are the official VQ-VAE state-dict keys
    /// (`encoders.0.level_blocks.0.model.0.0.weight`, `bottleneck.level_blocks.2.k`, ...).
    pub fn vqvae_vb(&self, dtype: DType, dev: &Device) -> Result<VarBuilder<'static>> {
        Ok(self.component(Component::Vqvae)?.var_builder(dtype, dev))
    }

    /// VarBuilder with the official prior keys of official level `level` (0 bottom .. 2 top):
    /// `prior.x_emb.weight`, `y_emb.artist_emb.emb.weight`, `conditioner_blocks.0.ln.weight`, ...
    pub fn prior_vb(
        &self,
        level: usize,
        dtype: DType,
        dev: &Device,
    ) -> Result<VarBuilder<'static>> {
        Ok(self
            .component(Component::Prior(level))?
            .var_builder(dtype, dev))
    }

    /// Check one component's tensors against the key/shape table a model expects: one error
    /// listing every missing, unexpected and mis-shaped key.
    pub fn check_component_against(
        &self,
        c: Component,
        expected: &[(String, Vec<usize>)],
    ) -> Result<()> {
        let t = self.component(c)?;
        let mut found = t.shapes();
        for k in &t.unmapped {
            if let Some(e) = t.store.get(k) {
                found.insert(format!("{k} (no official name)"), e.shape.clone());
            }
        }
        super::validate::check_tensors(expected, &found)
            .with_context(|| format!("{}: the {c} does not match its config", self.path.display()))
    }
}
