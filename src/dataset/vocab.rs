//! The label vocabulary of a corpus: `labels/artists.txt` and `labels/genres.txt`, one `name;id`
//! line each (the official id-file format), with id 0 = `unknown` reserved for label dropout.

use super::metadata::Record;
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::path::Path;

/// The reserved name of id 0.
pub use crate::labels::UNKNOWN;

/// The lookup key of a name, as `labels::IdSet` computes it for custom lists: transliterate to
/// ASCII, lower-case, then the official v2 normalisation ("Céline Dion" → `celine_dion`).
pub fn key(name: &str) -> String {
    crate::labels::norm_v2(&crate::labels::lyrics::to_ascii(&name.to_lowercase()))
}

/// Names by id (`artists[id]`); index 0 is always `unknown`. An empty string is an unused id.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Vocab {
    pub artists: Vec<String>,
    pub genres: Vec<String>,
}

fn lookup(list: &[String], name: &str) -> Option<u32> {
    let k = key(name);
    if k.is_empty() {
        return None;
    }
    list.iter()
        .position(|n| !n.is_empty() && *n == k)
        .map(|i| i as u32)
}

impl Vocab {
    /// Ids for every artist and genre in `records`: the ids in `existing` are kept (so a model
    /// trained on an older vocabulary stays valid), new names get the next ids in sorted order.
    pub fn derive(records: &[Record], existing: Option<&Vocab>) -> Vocab {
        let mut v = existing.cloned().unwrap_or_default();
        for list in [&mut v.artists, &mut v.genres] {
            if list.is_empty() {
                list.push(UNKNOWN.to_string());
            }
        }
        let artists: BTreeSet<String> = records
            .iter()
            .map(|r| key(&r.artist))
            .filter(|k| !k.is_empty())
            .collect();
        let genres: BTreeSet<String> = records
            .iter()
            .flat_map(|r| r.genres.iter().map(|g| key(g)))
            .filter(|k| !k.is_empty())
            .collect();
        for (list, names) in [(&mut v.artists, artists), (&mut v.genres, genres)] {
            for n in names {
                if !list.contains(&n) {
                    list.push(n);
                }
            }
        }
        v
    }

    pub fn artist_id(&self, name: &str) -> Option<u32> {
        lookup(&self.artists, name)
    }

    pub fn genre_id(&self, name: &str) -> Option<u32> {
        lookup(&self.genres, name)
    }

    /// Read `dir/artists.txt` and `dir/genres.txt`; `Ok(None)` when neither exists.
    pub fn read(dir: &Path) -> Result<Option<Vocab>> {
        let (pa, pg) = (dir.join("artists.txt"), dir.join("genres.txt"));
        if !pa.exists() && !pg.exists() {
            return Ok(None);
        }
        Ok(Some(Vocab {
            artists: read_list(&pa)?,
            genres: read_list(&pg)?,
        }))
    }

    /// Write both lists atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        crate::util::atomic_write(
            &dir.join("artists.txt"),
            list_text(&self.artists).as_bytes(),
        )?;
        crate::util::atomic_write(&dir.join("genres.txt"), list_text(&self.genres).as_bytes())?;
        Ok(())
    }
}

fn list_text(list: &[String]) -> String {
    let mut s = String::new();
    for (id, n) in list.iter().enumerate() {
        if !n.is_empty() {
            s.push_str(&format!("{n};{id}\n"));
        }
    }
    s
}

fn read_list(path: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut list: Vec<String> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let (name, id) = line
            .rsplit_once(';')
            .with_context(|| format!("{}: expected `name;id`, got `{line}`", at()))?;
        let id: usize = id
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{}: id `{id}` is not a non-negative integer", at()))?;
        if id > 1_000_000 {
            bail!("{}: id {id} is implausibly large (limit 1000000)", at());
        }
        if list.len() <= id {
            list.resize(id + 1, String::new());
        }
        // Several names may share an id (official files); the first is the canonical one.
        if list[id].is_empty() {
            list[id] = key(name);
        }
    }
    match list.first() {
        Some(n) if n == UNKNOWN => Ok(list),
        _ => bail!(
            "{}: id 0 must be `{UNKNOWN}` (reserved for label dropout)",
            path.display()
        ),
    }
}
