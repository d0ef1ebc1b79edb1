//! `RUN_DIR/state.safetensors`: the codes sampled so far, the prompt's codes and the running
//! entropy sums, in one file written atomically after every window, so a run killed at any
//! point resumes from its last finished window.

use crate::util::atomic_write;
use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Per-item sums of the sampling entropy (bits) over generated tokens at one level.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntropySums {
    pub raw: Vec<f64>,
    pub filtered: Vec<f64>,
    pub count: Vec<i64>,
    /// Sums of the drawn tokens' bits (raw distribution); empty in states written before it
    /// was recorded, which then get scored instead.
    pub token: Vec<f64>,
}

impl EntropySums {
    pub fn new(n: usize) -> Self {
        Self {
            raw: vec![0.0; n],
            filtered: vec![0.0; n],
            count: vec![0; n],
            token: vec![0.0; n],
        }
    }

    /// Mean bits per generated token for item `i` (raw, filtered).
    pub fn mean(&self, i: usize) -> (f64, f64) {
        let c = self.count[i].max(1) as f64;
        (self.raw[i] / c, self.filtered[i] / c)
    }
}

/// Codes of one level: `rows[i]` is the token list of the i-th item sampled at this level.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LevelCodes {
    pub rows: Vec<Vec<i64>>,
}

impl LevelCodes {
    pub fn len(&self) -> usize {
        self.rows.first().map_or(0, Vec::len)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunState {
    /// Sampled codes per level (index = official level).
    pub levels: BTreeMap<usize, LevelCodes>,
    /// The prompt's own codes per level (one row), when primed.
    pub prompt: BTreeMap<usize, Vec<i64>>,
    pub entropy: BTreeMap<usize, EntropySums>,
}

impl RunState {
    pub fn path(run_dir: &Path) -> PathBuf {
        run_dir.join("state.safetensors")
    }

    pub fn load_or_default(run_dir: &Path) -> Result<RunState> {
        let p = Self::path(run_dir);
        if !p.exists() {
            return Ok(RunState::default());
        }
        let bytes = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
        Self::from_bytes(&bytes).with_context(|| format!("{} is corrupted", p.display()))
    }

    fn from_bytes(bytes: &[u8]) -> Result<RunState> {
        let st = SafeTensors::deserialize(bytes)?;
        let mut s = RunState::default();
        for (name, view) in st.tensors() {
            let (kind, level) = name
                .rsplit_once('_')
                .and_then(|(k, l)| l.parse::<usize>().ok().map(|l| (k.to_string(), l)))
                .with_context(|| format!("unexpected tensor `{name}`"))?;
            let shape = view.shape().to_vec();
            let data = view.data();
            match (kind.as_str(), view.dtype()) {
                ("level", Dtype::I64) => {
                    let v = le_i64(data);
                    let (n, t) = dims2(&shape)?;
                    s.levels.insert(
                        level,
                        LevelCodes {
                            rows: (0..n).map(|i| v[i * t..(i + 1) * t].to_vec()).collect(),
                        },
                    );
                }
                ("prompt", Dtype::I64) => {
                    s.prompt.insert(level, le_i64(data));
                }
                ("entraw", Dtype::F64) => s.entropy.entry(level).or_default().raw = le_f64(data),
                ("entfilt", Dtype::F64) => {
                    s.entropy.entry(level).or_default().filtered = le_f64(data)
                }
                ("enttok", Dtype::F64) => s.entropy.entry(level).or_default().token = le_f64(data),
                ("entcount", Dtype::I64) => {
                    s.entropy.entry(level).or_default().count = le_i64(data)
                }
                _ => bail!("unexpected tensor `{name}` of type {:?}", view.dtype()),
            }
        }
        Ok(s)
    }

    pub fn save(&self, run_dir: &Path) -> Result<()> {
        let mut bufs: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for (l, c) in &self.levels {
            let flat: Vec<i64> = c.rows.iter().flatten().copied().collect();
            bufs.push((
                format!("level_{l}"),
                Dtype::I64,
                vec![c.rows.len(), c.len()],
                i64_le(&flat),
            ));
        }
        for (l, p) in &self.prompt {
            bufs.push((format!("prompt_{l}"), Dtype::I64, vec![p.len()], i64_le(p)));
        }
        for (l, e) in &self.entropy {
            bufs.push((
                format!("entraw_{l}"),
                Dtype::F64,
                vec![e.raw.len()],
                f64_le(&e.raw),
            ));
            if !e.token.is_empty() {
                bufs.push((
                    format!("enttok_{l}"),
                    Dtype::F64,
                    vec![e.token.len()],
                    f64_le(&e.token),
                ));
            }
            bufs.push((
                format!("entfilt_{l}"),
                Dtype::F64,
                vec![e.filtered.len()],
                f64_le(&e.filtered),
            ));
            bufs.push((
                format!("entcount_{l}"),
                Dtype::I64,
                vec![e.count.len()],
                i64_le(&e.count),
            ));
        }
        let views: Vec<(String, TensorView)> = bufs
            .iter()
            .map(|(n, d, s, b)| Ok((n.clone(), TensorView::new(*d, s.clone(), b)?)))
            .collect::<Result<_>>()?;
        let bytes = safetensors::serialize(views, None)?;
        atomic_write(&Self::path(run_dir), &bytes)
    }
}

fn dims2(s: &[usize]) -> Result<(usize, usize)> {
    match s {
        [n, t] => Ok((*n, *t)),
        _ => bail!("expected a 2-d tensor, got shape {s:?}"),
    }
}
fn le_i64(b: &[u8]) -> Vec<i64> {
    b.chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect()
}
fn le_f64(b: &[u8]) -> Vec<f64> {
    b.chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect()
}
fn i64_le(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn f64_le(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_roundtrip() {
        let d = tempfile::tempdir().unwrap();
        let mut s = RunState::default();
        s.levels.insert(
            2,
            LevelCodes {
                rows: vec![vec![1, 2, 3], vec![4, 5, 6]],
            },
        );
        s.levels.insert(
            1,
            LevelCodes {
                rows: vec![vec![], vec![]],
            },
        );
        s.prompt.insert(2, vec![7, 8]);
        s.entropy.insert(
            2,
            EntropySums {
                raw: vec![1.5, 2.5],
                filtered: vec![1.0, 2.0],
                count: vec![3, 3],
                token: vec![4.25, 6.5],
            },
        );
        s.save(d.path()).unwrap();
        let back = RunState::load_or_default(d.path()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.entropy[&2].mean(1), (2.5 / 3.0, 2.0 / 3.0));
    }

    #[test]
    fn corrupted_state_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(RunState::path(d.path()), b"garbage").unwrap();
        let e = RunState::load_or_default(d.path()).unwrap_err();
        assert!(format!("{e:#}").contains("corrupted"), "{e:#}");
    }
}
