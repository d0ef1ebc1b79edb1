//! Training checkpoints: weights, optimiser moments, EMA buffers and the loop state, written
//! atomically under `OUT/checkpoints/step_NNNNNNNN/`; `OUT/latest` names the newest complete one.

use crate::util::atomic_write;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Everything besides tensors that a resumed run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// Steps completed.
    pub step: u64,
    /// Adam's update count (differs from `step` when non-finite steps were skipped).
    pub adam_t: u64,
    pub seed: u64,
    /// "counter": every random draw is a pure function of (seed, stream, key, step).
    pub rng: String,
    /// Free-form numbers the loop keeps (bandwidths, codebook `init` flags, skipped steps).
    #[serde(default)]
    pub extra: HashMap<String, f64>,
}

/// Check that `have` holds every tensor of `want` (name, shape) with that shape: one typed
/// [`TensorMismatch`](crate::error::TensorMismatch) naming every missing and mis-shaped key, under
/// `what` ("the checkpoint", "the optimizer state"). Extra tensors are allowed.
pub fn check_present<'a>(
    what: &str,
    want: impl IntoIterator<Item = (&'a str, &'a [usize])>,
    have: &HashMap<String, Tensor>,
) -> Result<()> {
    let want: Vec<(String, Vec<usize>)> = want
        .into_iter()
        .map(|(k, s)| (k.to_string(), s.to_vec()))
        .collect();
    // Only the wanted keys are compared: a checkpoint may hold more (buffers, other state).
    let found: HashMap<String, Vec<usize>> = want
        .iter()
        .filter_map(|(k, _)| have.get(k).map(|t| (k.clone(), t.dims().to_vec())))
        .collect();
    crate::checkpoint::validate::check_tensors(&want, &found)
        .with_context(|| format!("{what} does not fit this model"))
}

/// Serialize tensors (sorted by name) with string metadata to safetensors bytes.
pub fn safetensors_bytes(
    tensors: &HashMap<String, Tensor>,
    meta: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let mut items: Vec<(&String, &Tensor)> = tensors.iter().collect();
    items.sort_by(|a, b| a.0.cmp(b.0));
    let contiguous: Vec<(String, Tensor)> = items
        .into_iter()
        .map(|(k, t)| Ok((k.clone(), t.contiguous()?)))
        .collect::<candle_core::Result<_>>()?;
    safetensors::serialize(contiguous.iter().map(|(k, t)| (k.as_str(), t)), Some(meta))
        .context("serialising safetensors")
}

/// Write tensors atomically.
pub fn write_safetensors(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
    meta: HashMap<String, String>,
) -> Result<()> {
    atomic_write(path, &safetensors_bytes(tensors, meta)?)
}

/// Read every tensor of a safetensors file to `device`.
pub fn read_safetensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, device)
        .with_context(|| format!("cannot read tensors from {}", path.display()))
}

/// One checkpoint's content.
pub struct Checkpoint {
    pub model: HashMap<String, Tensor>,
    pub optimizer: HashMap<String, Tensor>,
    pub buffers: HashMap<String, Tensor>,
    pub state: LoopState,
}

fn step_dir(out: &Path, step: u64) -> PathBuf {
    out.join("checkpoints").join(format!("step_{step:08}"))
}

/// Write a checkpoint, point `OUT/latest` at it, and keep only the newest `keep` checkpoints.
pub fn save(out: &Path, ck: &Checkpoint, keep: usize) -> Result<PathBuf> {
    let dir = step_dir(out, ck.state.step);
    let meta = HashMap::from([("step".to_string(), ck.state.step.to_string())]);
    write_safetensors(&dir.join("model.safetensors"), &ck.model, meta.clone())?;
    write_safetensors(
        &dir.join("optimizer.safetensors"),
        &ck.optimizer,
        meta.clone(),
    )?;
    write_safetensors(&dir.join("buffers.safetensors"), &ck.buffers, meta)?;
    // state.json last: a directory without it is incomplete and never named by `latest`.
    atomic_write(
        &dir.join("state.json"),
        serde_json::to_string_pretty(&ck.state)?.as_bytes(),
    )?;
    let rel = format!("checkpoints/step_{:08}", ck.state.step);
    atomic_write(&out.join("latest"), format!("{rel}\n").as_bytes())?;
    prune(out, keep.max(1))?;
    Ok(dir)
}

fn prune(out: &Path, keep: usize) -> Result<()> {
    let root = out.join("checkpoints");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .with_context(|| format!("cannot list {}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("step_"))
        })
        .collect();
    dirs.sort();
    if dirs.len() > keep {
        for d in &dirs[..dirs.len() - keep] {
            std::fs::remove_dir_all(d)
                .with_context(|| format!("cannot remove old checkpoint {}", d.display()))?;
        }
    }
    Ok(())
}

/// The newest complete checkpoint directory of a training output folder.
pub fn latest(out: &Path) -> Result<PathBuf> {
    let p = out.join("latest");
    let rel = std::fs::read_to_string(&p).with_context(|| {
        format!(
            "{} has no checkpoint to resume (missing {})",
            out.display(),
            p.display()
        )
    })?;
    let dir = out.join(rel.trim());
    if !dir.join("state.json").is_file() {
        bail!(
            "{} names {}, which has no state.json (incomplete checkpoint)",
            p.display(),
            dir.display()
        );
    }
    Ok(dir)
}

/// Load the checkpoint `dir` (as returned by [`latest`]).
pub fn load(dir: &Path, device: &Device) -> Result<Checkpoint> {
    let sp = dir.join("state.json");
    let state: LoopState = serde_json::from_str(
        &std::fs::read_to_string(&sp).with_context(|| format!("cannot read {}", sp.display()))?,
    )
    .with_context(|| format!("{} is not a valid training state", sp.display()))?;
    Ok(Checkpoint {
        model: read_safetensors(&dir.join("model.safetensors"), device)?,
        optimizer: read_safetensors(&dir.join("optimizer.safetensors"), device)?,
        buffers: read_safetensors(&dir.join("buffers.safetensors"), device)?,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_prune() -> Result<()> {
        let d = tempfile::tempdir()?;
        let dev = Device::Cpu;
        for step in [10u64, 20, 30] {
            let ck = Checkpoint {
                model: HashMap::from([("w".into(), Tensor::new(&[step as f32, 2.0], &dev)?)]),
                optimizer: HashMap::from([("m.w".into(), Tensor::new(&[0.5f32, 0.25], &dev)?)]),
                buffers: HashMap::new(),
                state: LoopState {
                    step,
                    adam_t: step - 1,
                    seed: 3,
                    rng: "counter".into(),
                    extra: HashMap::from([("bw_l2".into(), 0.1)]),
                },
            };
            save(d.path(), &ck, 2)?;
        }
        let dir = latest(d.path())?;
        assert!(dir.ends_with("step_00000030"));
        let ck = load(&dir, &dev)?;
        assert_eq!(ck.state.step, 30);
        assert_eq!(ck.state.adam_t, 29);
        assert_eq!(ck.state.extra["bw_l2"], 0.1);
        assert_eq!(ck.model["w"].to_vec1::<f32>()?, vec![30.0, 2.0]);
        assert_eq!(
            std::fs::read_dir(d.path().join("checkpoints"))?.count(),
            2,
            "pruned to 2"
        );
        // A pointer to an incomplete checkpoint is refused with a message naming it.
        atomic_write(&d.path().join("latest"), b"checkpoints/step_00000099")?;
        let e = latest(d.path()).unwrap_err().to_string();
        assert!(e.contains("step_00000099"), "{e}");
        assert!(latest(&d.path().join("nope")).is_err());
        Ok(())
    }
}
