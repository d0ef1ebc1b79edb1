//! Files of a study directory: layout, per-item records, codes files, done markers, shards.
//!
//! ```text
//! STUDY/plan.toml
//! STUDY/prompt/prompt.wav, prompt.png, level_K.wav, level_K.png, codes.safetensors
//! STUDY/cells/<cell>/cell.toml
//! STUDY/cells/<cell>/level_K/sample_I.wav, sample_I.png      (I = index of the seed)
//! STUDY/cells/<cell>/codes/sample_I.safetensors               (level_K tensors, [1, tokens])
//! STUDY/cells/<cell>/sample_I.json                            (what the model said + metrics)
//! STUDY/done/group_NNNNN.toml                                 (written last: the group is done)
//! STUDY/shards/<i>-of-<n>/...                                 (the same layout, per shard)
//! STUDY/metrics.csv, codes_hist.csv, separability.csv, claims.csv, index.html
//! ```

use super::metrics::Features;
use super::plan::BatchGroup;
use crate::util::atomic_write;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Paths inside one study (or shard) root.
#[derive(Clone, Debug)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    pub fn plan(&self) -> PathBuf {
        self.root.join("plan.toml")
    }
    pub fn prompt_dir(&self) -> PathBuf {
        self.root.join("prompt")
    }
    pub fn cell_dir(&self, cell: &str) -> PathBuf {
        self.root.join("cells").join(cell)
    }
    /// Paths relative to the study root, as the report links them.
    pub fn rel_wav(cell: &str, sample: usize, level: usize) -> String {
        format!("cells/{cell}/level_{level}/sample_{sample}.wav")
    }
    pub fn rel_png(cell: &str, sample: usize, level: usize) -> String {
        format!("cells/{cell}/level_{level}/sample_{sample}.png")
    }
    pub fn rel_item(cell: &str, sample: usize) -> String {
        format!("cells/{cell}/sample_{sample}.json")
    }
    pub fn rel_codes(cell: &str, sample: usize) -> String {
        format!("cells/{cell}/codes/sample_{sample}.safetensors")
    }
    pub fn done_dir(&self) -> PathBuf {
        self.root.join("done")
    }
    pub fn done_marker(&self, group: usize) -> PathBuf {
        self.done_dir().join(format!("group_{group:05}.toml"))
    }
    pub fn shard_root(&self, i: usize, n: usize) -> PathBuf {
        self.root.join("shards").join(format!("{i}-of-{n}"))
    }
    pub fn is_done(&self, group: usize) -> bool {
        self.done_marker(group).exists()
    }
}

/// What one level of one item produced: the model's numbers, the code histogram and metrics.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LevelRecord {
    pub level: usize,
    /// Tokens of the sample at this level and how many were generated (after the prompt).
    pub tokens: usize,
    pub generated_tokens: usize,
    /// NaN (JSON `null`) when the runner could not measure it.
    #[serde(with = "nan_as_null")]
    pub entropy_raw_bits: f64,
    #[serde(with = "nan_as_null")]
    pub entropy_filtered_bits: f64,
    #[serde(with = "nan_as_null")]
    pub bits_own: f64,
    #[serde(with = "nan_as_null")]
    pub bits_nolabel: f64,
    /// Distinct codes and code entropy over the continuation.
    pub codes_used: usize,
    pub code_entropy_bits: f64,
    /// Sparse histogram of the continuation's codes: (code, count), sorted by code.
    pub code_hist: Vec<(i64, u32)>,
    pub features: Features,
}

/// JSON has no NaN: store a missing number as `null`.
pub(crate) mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

/// One item (cell × seed).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ItemRecord {
    /// The runner that made this item; a study never mixes runner kinds.
    #[serde(default)]
    pub runner: super::plan::RunnerKind,
    pub cell: String,
    pub seed: u64,
    pub sample: usize,
    pub levels: Vec<LevelRecord>,
}

impl ItemRecord {
    pub fn level(&self, level: usize) -> Option<&LevelRecord> {
        self.levels.iter().find(|l| l.level == level)
    }
}

/// Write JSON with a trailing newline, atomically. serde_json prints floats by shortest
/// round-trip, so equal values give equal bytes.
pub fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(v).context("cannot serialise record")?;
    s.push('\n');
    atomic_write(path, s.as_bytes())
}

pub fn read_item(path: &Path) -> Result<ItemRecord> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a study item record", path.display()))
}

/// Mark a group done (written last, after all of its files).
pub fn mark_done(layout: &Layout, group: &BatchGroup) -> Result<()> {
    let cells: Vec<String> = group.cells.iter().map(|c| format!("{c:?}")).collect();
    let text = format!(
        "group = {}\nmode = \"{}\"\nseed = {}\ncells = [{}]\n",
        group.index,
        group.mode.as_str(),
        group.seed,
        cells.join(", ")
    );
    atomic_write(&layout.done_marker(group.index), text.as_bytes())
}

/// A 16-bit PCM mono WAV, clamped to [-1, 1], written atomically.
pub fn write_wav(path: &Path, samples: &[f32], sample_rate: u32) -> Result<()> {
    crate::audio::write_wav_i16(path, samples, sample_rate)
        .with_context(|| format!("cannot write audio {}", path.display()))
}

/// A codes file as docs/CONVENTIONS.md ("Codes files") defines it: int64 tensors `level_K` of shape [1, tokens], with
/// the sample rate and hop lengths in the header metadata. Written by hand so that the header's
/// key order (and so the bytes) is fixed.
pub fn write_codes(
    path: &Path,
    levels: &[(usize, &[i64])],
    sample_rate: u32,
    hops: &[usize],
) -> Result<()> {
    let mut sorted: Vec<(usize, &[i64])> = levels.to_vec();
    sorted.sort_by_key(|(l, _)| *l);
    let mut header = BTreeMap::new();
    let mut meta = BTreeMap::new();
    meta.insert(
        "sample_rate".to_string(),
        serde_json::Value::String(sample_rate.to_string()),
    );
    let hops_s: Vec<String> = hops.iter().map(|h| h.to_string()).collect();
    meta.insert(
        "hop_lengths".to_string(),
        serde_json::Value::String(hops_s.join(",")),
    );
    meta.insert(
        "format".to_string(),
        serde_json::Value::String("jukebox-codes".into()),
    );
    header.insert(
        "__metadata__".to_string(),
        serde_json::Value::Object(meta.into_iter().collect()),
    );
    let mut data = vec![];
    for (l, codes) in &sorted {
        let start = data.len();
        for c in codes.iter() {
            data.extend_from_slice(&c.to_le_bytes());
        }
        header.insert(
            format!("level_{l}"),
            serde_json::json!({"dtype": "I64", "shape": [1, codes.len()], "data_offsets": [start, data.len()]}),
        );
    }
    let mut h = serde_json::to_string(&header)
        .context("codes header")?
        .into_bytes();
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + data.len());
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&data);
    atomic_write(path, &out)
}

/// Move every file of `shard_root` into `root` (same relative path). A file that already exists
/// in `root` must be byte-identical (prompt files are written by every shard).
pub fn merge_tree(shard_root: &Path, root: &Path) -> Result<usize> {
    let mut moved = 0;
    let mut stack = vec![shard_root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()?;
        entries.sort();
        for p in entries {
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            if name.starts_with('.') && name.contains(".tmp") {
                // A temp file of a killed writer: never part of the result.
                let _ = std::fs::remove_file(&p);
                continue;
            }
            let rel = p.strip_prefix(shard_root).context("shard path")?;
            let dst = root.join(rel);
            if dst.exists() {
                let a =
                    std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
                let b = std::fs::read(&dst)
                    .with_context(|| format!("cannot read {}", dst.display()))?;
                if a != b {
                    bail!(
                        "shard file {} differs from {}: the shards were run with different settings",
                        p.display(),
                        dst.display()
                    );
                }
                std::fs::remove_file(&p)
                    .with_context(|| format!("cannot remove {}", p.display()))?;
                continue;
            }
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            if std::fs::rename(&p, &dst).is_err() {
                // Across file systems: copy atomically, then remove.
                let bytes =
                    std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
                atomic_write(&dst, &bytes)?;
                std::fs::remove_file(&p)
                    .with_context(|| format!("cannot remove {}", p.display()))?;
            }
            moved += 1;
        }
    }
    remove_empty_dirs(shard_root);
    Ok(moved)
}

fn remove_empty_dirs(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                remove_empty_dirs(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Shard folders under `STUDY/shards/`, as (i, n, path), sorted.
pub fn shard_roots(root: &Path) -> Result<Vec<(usize, usize, PathBuf)>> {
    let dir = root.join("shards");
    if !dir.exists() {
        return Ok(vec![]);
    }
    let mut out = vec![];
    for e in std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let p = e?.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if let Some((i, n)) = name.split_once("-of-") {
            if let (Ok(i), Ok(n)) = (i.parse(), n.parse()) {
                out.push((i, n, p));
                continue;
            }
        }
        bail!(
            "unexpected folder {} in shards/ (expected `<i>-of-<n>`)",
            p.display()
        );
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_file_is_valid_safetensors() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.safetensors");
        write_codes(
            &p,
            &[(2, &[1, 2, 3]), (1, &[4, 5, 6, 7, 8])],
            44100,
            &[8, 32, 128],
        )
        .unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let t = st.tensor("level_1").unwrap();
        assert_eq!(t.shape(), &[1, 5]);
        assert_eq!(t.dtype(), safetensors::Dtype::I64);
        assert_eq!(i64::from_le_bytes(t.data()[32..40].try_into().unwrap()), 8);
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(meta.metadata().as_ref().unwrap()["hop_lengths"], "8,32,128");
    }

    #[test]
    fn merge_moves_and_checks_identity() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let shard = root.join("shards/0-of-2");
        atomic_write(&shard.join("cells/a/x.txt"), b"x").unwrap();
        atomic_write(&shard.join("prompt/p.wav"), b"p").unwrap();
        atomic_write(&root.join("prompt/p.wav"), b"p").unwrap();
        assert_eq!(shard_roots(root).unwrap().len(), 1);
        assert_eq!(merge_tree(&shard, root).unwrap(), 1);
        assert_eq!(std::fs::read(root.join("cells/a/x.txt")).unwrap(), b"x");
        assert!(!shard.exists());
        atomic_write(&shard.join("prompt/p.wav"), b"q").unwrap();
        assert!(merge_tree(&shard, root)
            .unwrap_err()
            .to_string()
            .contains("differs"));
    }
}
