//! Label vocabularies for study plans: strict name lookup with suggestions.

use crate::labels::norm_v2 as normalise;
use crate::labels::UNKNOWN;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// Label vocabulary for strict name lookup (a model's `labels/*.txt`, or numeric ids only).
#[derive(Clone, Debug, Default)]
pub struct Vocab {
    /// (name, id), in file order; id 0 is `unknown`.
    pub genres: Vec<(String, i64)>,
    pub artists: Vec<(String, i64)>,
    /// Table sizes, to check numeric `#N` ids.
    pub n_genres: usize,
    pub n_artists: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelKind {
    Genre,
    Artist,
}

impl LabelKind {
    fn noun(self) -> &'static str {
        match self {
            LabelKind::Genre => "genre",
            LabelKind::Artist => "artist",
        }
    }
}

/// Strict label lookup for plans: the CLI uses the model's [`crate::labels::IdSet`]; tests use
/// a small [`Vocab`].
pub trait LabelResolver {
    /// Ids of one genre entry (a v2 genre string may be a bag of words, so several ids).
    fn genre_ids(&self, genre: &str) -> Result<Vec<i64>>;
    fn artist_id(&self, artist: &str) -> Result<i64>;
    /// The first `n` real (non-unknown) names in id order, for the default sweep.
    fn first_names(&self, kind: LabelKind, n: usize) -> Vec<String>;
}

impl LabelResolver for Vocab {
    fn genre_ids(&self, genre: &str) -> Result<Vec<i64>> {
        Ok(vec![self.resolve(LabelKind::Genre, genre)?])
    }
    fn artist_id(&self, artist: &str) -> Result<i64> {
        self.resolve(LabelKind::Artist, artist)
    }
    fn first_names(&self, kind: LabelKind, n: usize) -> Vec<String> {
        Vocab::first_names(self, kind, n)
    }
}

impl LabelResolver for crate::labels::IdSet {
    fn genre_ids(&self, genre: &str) -> Result<Vec<i64>> {
        self.genre_ids_strict(genre)
    }
    fn artist_id(&self, artist: &str) -> Result<i64> {
        self.artist_id_strict(artist)
    }
    fn first_names(&self, kind: LabelKind, n: usize) -> Vec<String> {
        let field = match kind {
            LabelKind::Genre => crate::labels::Field::Genre,
            LabelKind::Artist => crate::labels::Field::Artist,
        };
        let mut ids: Vec<i64> = self
            .table(field)
            .entries
            .iter()
            .map(|(_, id)| *id)
            .filter(|id| *id != 0)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        // The first name listed for an id is the one a user would type.
        ids.into_iter()
            .take(n)
            .filter_map(|id| {
                self.table(field)
                    .entries
                    .iter()
                    .find(|(name, i)| *i == id && !name.is_empty())
            })
            .map(|(name, _)| name.clone())
            .collect()
    }
}

impl Vocab {
    fn list(&self, kind: LabelKind) -> &[(String, i64)] {
        match kind {
            LabelKind::Genre => &self.genres,
            LabelKind::Artist => &self.artists,
        }
    }

    /// Strict lookup: a name, `#N`, or literally `unknown`; anything else is an error that
    /// suggests the nearest names.
    pub fn resolve(&self, kind: LabelKind, name: &str) -> Result<i64> {
        let name = name.trim();
        if name.eq_ignore_ascii_case(UNKNOWN) {
            return Ok(0);
        }
        if let Some(num) = name.strip_prefix('#') {
            let id: i64 = num.parse().with_context(|| {
                format!("{} id `{name}` is not a number after `#`", kind.noun())
            })?;
            let n = match kind {
                LabelKind::Genre => self.n_genres,
                LabelKind::Artist => self.n_artists,
            };
            if id < 0 || (n > 0 && id as usize >= n) {
                bail!(
                    "{} id {id} is out of range: the model has ids 0..{}",
                    kind.noun(),
                    n.saturating_sub(1)
                );
            }
            return Ok(id);
        }
        let norm = normalise(name);
        let list = self.list(kind);
        if let Some((_, id)) = list.iter().find(|(n, _)| normalise(n) == norm) {
            return Ok(*id);
        }
        if list.is_empty() {
            let message = format!(
                "unknown {} `{name}`: this model has no label names; give numeric ids like `#1`",
                kind.noun()
            );
            return Err(crate::error::UnknownLabel::new(kind.noun(), name, vec![], message).into());
        }
        let near = crate::util::nearest(name, list.iter().map(|(n, _)| n.as_str()), 5);
        let message = format!(
            "unknown {} `{name}`; nearest names: {}",
            kind.noun(),
            near.join(", ")
        );
        Err(crate::error::UnknownLabel::new(kind.noun(), name, near, message).into())
    }

    /// Display name for an id (the first name listed with it), or `#N`.
    pub fn name_of(&self, kind: LabelKind, id: i64) -> String {
        self.list(kind)
            .iter()
            .find(|(_, i)| *i == id)
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| {
                if id == 0 {
                    UNKNOWN.to_string()
                } else {
                    format!("#{id}")
                }
            })
    }

    /// The first `n` real (non-unknown) names, in id order, for the default sweep.
    pub fn first_names(&self, kind: LabelKind, n: usize) -> Vec<String> {
        let mut v: Vec<&(String, i64)> =
            self.list(kind).iter().filter(|(_, id)| *id != 0).collect();
        v.sort_by_key(|(name, id)| (*id, name.clone()));
        v.dedup_by_key(|(_, id)| *id);
        v.into_iter()
            .take(n)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Names matching `search` (case-insensitive substring), or all names.
    pub fn search(&self, kind: LabelKind, search: Option<&str>) -> Vec<(String, i64)> {
        let q = search.map(|s| s.to_lowercase());
        self.list(kind)
            .iter()
            .filter(|(n, _)| {
                q.as_ref()
                    .is_none_or(|q| n.to_lowercase().contains(q.as_str()))
            })
            .cloned()
            .collect()
    }

    /// Read `labels/genres.txt` and `labels/artists.txt` (`name;id` lines) beside a model.
    pub fn from_model_dir(dir: &Path, n_genres: usize, n_artists: usize) -> Result<Self> {
        let read = |file: &str| -> Result<Vec<(String, i64)>> {
            let p = dir.join("labels").join(file);
            if !p.exists() {
                return Ok(vec![]);
            }
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            let mut out = vec![];
            for (i, line) in text.lines().enumerate() {
                let line = line.trim_end_matches('\r');
                if line.trim().is_empty() {
                    continue;
                }
                let (name, id) = line.rsplit_once(';').with_context(|| {
                    format!(
                        "{}:{}: expected `name;id`, got `{line}`",
                        p.display(),
                        i + 1
                    )
                })?;
                let id: i64 = id.trim().parse().with_context(|| {
                    format!("{}:{}: id `{id}` is not a number", p.display(), i + 1)
                })?;
                out.push((name.to_string(), id));
            }
            Ok(out)
        };
        Ok(Self {
            genres: read("genres.txt")?,
            artists: read("artists.txt")?,
            n_genres,
            n_artists,
        })
    }
}
