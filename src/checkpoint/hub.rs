//! Model ids from the Hugging Face hub cache: `openai/jukebox-1b-lyrics` or
//! `openai/jukebox-1b-lyrics@REVISION` (a branch, tag or commit) resolves to its snapshot folder
//! in the standard cache layout (`HF_HUB_CACHE`, else `HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`: `models--ORG--NAME/refs/REV` names a commit, and
//! `snapshots/COMMIT/` holds the files), read with the `hf-hub` crate's cache API. Nothing is
//! downloaded here: a model that is not in the cache gives an error saying how to fetch it.

use anyhow::{bail, Result};
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
