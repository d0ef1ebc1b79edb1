//! What the runs folder holds, as the page shows it: runs (takes per item, audio per level,
//! favourites, parent) and studies (cells done, report). Read from the directories each time,
//! so runs made or changed by the CLI show up too.

use crate::sample::{Mode, RunSpec};
use crate::util::atomic_write;
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
pub struct TakeView {
    pub index: usize,
    pub seed: u64,
    pub artist: String,
    pub genres: Vec<String>,
    pub favourite: bool,
    /// Levels with audio for this take, top first.
    pub levels: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub name: String,
    pub mode: Mode,
    pub prompt: Option<String>,
    pub prompt_seconds: f64,
    pub seconds: f64,
    pub levels: Vec<usize>,
    pub model: String,
    /// (parent run name, take), when the run extends a take of another run in this folder.
    pub parent: Option<(String, usize)>,
    pub takes: Vec<TakeView>,
    /// Whether a prompt reconstruction exists (`prompt/level_L.wav`).
    pub prompt_levels: Vec<usize>,
    pub modified: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StudyView {
    pub name: String,
    pub groups_done: usize,
    pub groups: usize,
    pub report: bool,
    pub modified: f64,
}

fn modified(p: &Path) -> f64 {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Favourite takes of a run (`RUN/favourites.json`, a list of take indices).
pub fn favourites(run: &Path) -> BTreeSet<usize> {
    std::fs::read_to_string(run.join("favourites.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

pub fn set_favourite(run: &Path, take: usize, on: bool) -> Result<()> {
    let mut f = favourites(run);
    if on {
        f.insert(take);
    } else {
        f.remove(&take);
    }
    atomic_write(
        &run.join("favourites.json"),
        serde_json::to_string(&f)?.as_bytes(),
    )
}

pub fn run_view(root: &Path, name: &str) -> Result<RunView> {
    let dir = root.join(name);
    let spec = RunSpec::load(&dir)?;
    let fav = favourites(&dir);
    let sr = spec.sample_rate as f64;
    let mut levels = spec.levels.clone();
    levels.sort_unstable_by(|a, b| b.cmp(a));
    let takes = (0..spec.items.len())
        .map(|i| {
            let it = &spec.items[i];
            TakeView {
                index: i,
                seed: it.seed,
                artist: it.artist.clone(),
                genres: it.genres.clone(),
                favourite: fav.contains(&i),
                levels: levels
                    .iter()
                    .copied()
                    .filter(|l| dir.join(format!("level_{l}/sample_{i}.wav")).exists())
                    .collect(),
            }
        })
        .collect();
    let parent = spec.parent.as_ref().and_then(|p| {
        let pname = p.run.file_name()?.to_str()?.to_string();
        let same_root = p.run.parent().and_then(|d| std::fs::canonicalize(d).ok())
            == std::fs::canonicalize(root).ok();
        same_root.then_some((pname, p.take))
    });
    Ok(RunView {
        name: name.to_string(),
        mode: spec.mode,
        prompt: spec
            .prompt
            .as_ref()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned()),
        prompt_seconds: spec.prompt_samples as f64 / sr,
        seconds: spec.sample_length as f64 / sr,
        levels,
        model: spec
            .model
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        parent,
        takes,
        prompt_levels: (0..3)
            .rev()
            .filter(|l| dir.join(format!("prompt/level_{l}.wav")).exists())
            .collect(),
        modified: modified(&RunSpec::path(&dir)),
    })
}

pub fn study_view(root: &Path, name: &str) -> Result<StudyView> {
    let dir = root.join(name);
    let plan_text = std::fs::read_to_string(dir.join("plan.toml"))
        .with_context(|| format!("{name} has no plan.toml"))?;
    let plan = crate::study::Plan::from_toml(&plan_text, &dir.join("plan.toml"))?;
    let layout = crate::study::store::Layout::new(&dir);
    let groups_done = (0..plan.groups.len())
        .filter(|&g| layout.is_done(g))
        .count();
    Ok(StudyView {
        name: name.to_string(),
        groups_done,
        groups: plan.groups.len(),
        report: dir.join("index.html").exists(),
        modified: modified(&dir.join("plan.toml")),
    })
}

/// Every run and study directly under `root`, newest first; unreadable ones are skipped.
pub fn list(root: &Path) -> (Vec<RunView>, Vec<StudyView>) {
    let mut runs = vec![];
    let mut studies = vec![];
    let Ok(rd) = std::fs::read_dir(root) else {
        return (runs, studies);
    };
    for e in rd.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if super::paths::check_name(&name).is_err() || !e.path().is_dir() {
            continue;
        }
        if e.path().join("run.toml").exists() {
            if let Ok(r) = run_view(root, &name) {
                runs.push(r);
            }
        } else if e.path().join("plan.toml").exists() {
            if let Ok(s) = study_view(root, &name) {
                studies.push(s);
            }
        }
    }
    runs.sort_by(|a, b| b.modified.total_cmp(&a.modified).then(b.name.cmp(&a.name)));
    studies.sort_by(|a, b| b.modified.total_cmp(&a.modified).then(b.name.cmp(&a.name)));
    (runs, studies)
}

/// The next free `prefix-NNNN` name under `root`.
pub fn next_name(root: &Path, prefix: &str) -> String {
    let mut n = 1;
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            if let Some(k) = e
                .file_name()
                .to_str()
                .and_then(|s| s.strip_prefix(prefix))
                .and_then(|s| s.strip_prefix('-'))
                .and_then(|s| s.parse::<usize>().ok())
            {
                n = n.max(k + 1);
            }
        }
    }
    format!("{prefix}-{n:04}")
}
