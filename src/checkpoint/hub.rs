//! Model ids from the Hugging Face hub cache: `openai/jukebox-1b-lyrics` or
//! `openai/jukebox-1b-lyrics@REVISION` (a branch, tag or commit) resolves to its snapshot folder
//! in the standard cache layout (`HF_HUB_CACHE`, else `HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`: `models--ORG--NAME/refs/REV` names a commit, and
//! `snapshots/COMMIT/` holds the files), read with the `hf-hub` crate's cache API. A model that is
//! not cached is downloaded into that cache (config, then the weights in whichever layout the repo
//! has), from `HF_ENDPOINT` (default huggingface.co), unless `HF_HUB_OFFLINE` is set.

use anyhow::{bail, Context, Result};
use hf_hub::{Cache, Repo, RepoType};
use std::path::{Path, PathBuf};

/// Whether `s` looks like a hub id (`org/name`, optional `@revision`) rather than a path.
pub fn is_repo_id(s: &str) -> bool {
    let id = s.split('@').next().unwrap_or("");
    let parts: Vec<&str> = id.split('/').collect();
    parts.len() == 2
        && !s.starts_with('.')
        && !s.starts_with('/')
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

/// The hub cache folder this process uses.
pub fn cache_dir() -> PathBuf {
    if let Ok(p) = std::env::var("HF_HUB_CACHE") {
        return PathBuf::from(p);
    }
    Cache::from_env().path().clone()
}

/// The snapshot folder of `id[@revision]` in the hub cache.
pub fn resolve(spec: &str) -> Result<PathBuf> {
    let (id, rev) = match spec.split_once('@') {
        Some((id, rev)) => (id, rev),
        None => (spec, "main"),
    };
    let root = cache_dir();
    let cache = Cache::new(root.clone());
    let repo = Repo::with_revision(id.to_string(), RepoType::Model, rev.to_string());
    let snapshot = match cache.repo(repo).get("config.json") {
        Some(cfg) => cfg.parent().map(Path::to_path_buf),
        // A commit hash names its snapshot directly (no ref file points at it).
        None if rev.len() == 40 && rev.chars().all(|c| c.is_ascii_hexdigit()) => {
            let d = root
                .join(format!("models--{}", id.replace('/', "--")))
                .join("snapshots")
                .join(rev);
            d.join("config.json").exists().then_some(d)
        }
        None => None,
    };
    match snapshot {
        Some(d) => Ok(d),
        None if !offline() => download(id, rev, &root).with_context(|| {
            format!(
                "`{spec}` is neither a model directory nor in the Hugging Face cache ({}), and \
                 downloading it failed (set HF_HUB_OFFLINE=1 to only use the cache)",
                root.display()
            )
        }),
        None => bail!(
            "`{spec}` is neither a model directory nor in the Hugging Face cache ({}): fetch it \
             with `huggingface-cli download {id}{}` (or set HF_HUB_CACHE / HF_HOME), or pass a \
             directory",
            root.display(),
            if rev == "main" {
                String::new()
            } else {
                format!(" --revision {rev}")
            }
        ),
    }
}

/// `HF_HUB_OFFLINE` set to a true value: use the cache only.
fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// Fetch `id@rev` into the cache at `root`: `config.json`, then the weights of the first layout
/// the repo has (a safetensors or torch index with its shards, or a single file), and this
/// project's label lists when present. Returns the snapshot folder.
fn download(id: &str, rev: &str, root: &Path) -> Result<PathBuf> {
    use hf_hub::api::sync::ApiBuilder;
    let api = ApiBuilder::from_env()
        .with_cache_dir(root.to_path_buf())
        .with_progress(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .build()
        .context("cannot set up the Hugging Face client")?;
    let repo = api.repo(Repo::with_revision(
        id.to_string(),
        RepoType::Model,
        rev.to_string(),
    ));
    eprintln!("downloading {id}@{rev} into {}", root.display());
    let cfg = repo
        .get("config.json")
        .with_context(|| format!("{id}@{rev}: no config.json"))?;
    let snapshot = cfg
        .parent()
        .map(Path::to_path_buf)
        .context("snapshot folder")?;
    let mut weights = false;
    for index in [
        "model.safetensors.index.json",
        "pytorch_model.bin.index.json",
    ] {
        let Ok(p) = repo.get(index) else { continue };
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p)?)
            .with_context(|| format!("{index} is not JSON"))?;
        let mut shards: Vec<&str> = v["weight_map"]
            .as_object()
            .with_context(|| format!("{index} has no weight_map"))?
            .values()
            .filter_map(|s| s.as_str())
            .collect();
        shards.sort_unstable();
        shards.dedup();
        for s in shards {
            repo.get(s)
                .with_context(|| format!("{id}@{rev}: cannot fetch the shard {s}"))?;
        }
        weights = true;
        break;
    }
    if !weights {
        weights = ["model.safetensors", "pytorch_model.bin"]
            .iter()
            .any(|f| repo.get(f).is_ok());
    }
    if !weights {
        bail!("{id}@{rev} has config.json but no weights (model.safetensors, pytorch_model.bin or an index of shards)");
    }
    for f in ["labels/artists.txt", "labels/genres.txt"] {
        let _ = repo.get(f);
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_paths_are_told_apart() {
        for id in ["openai/jukebox-1b-lyrics", "a/b@main", "a_b/c.d@0123abc"] {
            assert!(is_repo_id(id), "{id}");
        }
        for p in [
            "models/default/x",
            "models",
            "./a/b",
            "/a/b",
            "a//b",
            "a/b c",
        ] {
            assert!(!is_repo_id(p), "{p}");
        }
    }
}
