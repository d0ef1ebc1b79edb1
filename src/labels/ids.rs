//! Artist and genre id lists (official `ArtistGenreProcessor`) and name lookup.
//!
//! - v2 (5b, 5b_lyrics, upsamplers): a name is normalised (lower case, every char outside
//!   [a-z0-9] → `_`, runs collapsed, ends stripped) and a genre is split on `_` into a bag of words.
//! - v3 (1b_lyrics): plain lower case; the whole genre string is one genre.
//! - custom (`labels/artists.txt` + `labels/genres.txt` beside a model): names are matched after
//!   transliteration to ASCII and the v2 normalisation, so `Hip-Hop`, `hip hop` and `HIP_HOP` are
//!   one name; each genre string is one genre.
//! - numeric only: models without name lists take `#12` ids.
//!
//! Every kind accepts `#12` for id 12.

use super::lyrics::to_ascii;
use super::search::{display_name, plausible};
use crate::config::PriorConfig;
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

const V2_ARTISTS: &str = include_str!("../../data/labels/v2_artist_ids.txt");
const V2_GENRES: &str = include_str!("../../data/labels/v2_genre_ids.txt");
const V3_ARTISTS: &str = include_str!("../../data/labels/v3_artist_ids.txt");
const V3_GENRES: &str = include_str!("../../data/labels/v3_genre_ids.txt");

/// Which id lists an [`IdSet`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    V2,
    V3,
    Custom,
    /// No name lists: only `#id` labels.
    Numeric,
}

impl IdKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::V2 => "v2",
            Self::V3 => "v3",
            Self::Custom => "custom",
            Self::Numeric => "numeric",
        }
    }
}

/// Artist or genre.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    Artist,
    Genre,
}

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Self::Artist => "artist",
            Self::Genre => "genre",
        }
    }
}

/// Official v2 `norm`: lower case, chars outside [a-z0-9] → `_`, runs of `_` collapsed, `_`
/// stripped at both ends ("Céline Dion" → `c_line_dion`).
pub fn norm_v2(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.to_lowercase().chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '_'
        };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    out.trim_matches('_').to_string()
}

/// One list: `name;id` lines.
#[derive(Debug, Clone, Default)]
pub struct NameTable {
    /// (name as written in the file, id), in file order.
    pub entries: Vec<(String, i64)>,
    /// Lookup key → id; a later line with the same key wins, as in the official dict.
    keys: HashMap<String, i64>,
    /// id → names, in file order.
    by_id: BTreeMap<i64, Vec<String>>,
}

impl NameTable {
    fn parse(text: &str, source: &str, key: impl Fn(&str) -> String) -> Result<Self> {
        let mut t = NameTable::default();
        for (i, line) in text.lines().enumerate() {
            // Official: `line.strip().split(';')`.
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (name, id) = line
                .rsplit_once(';')
                .with_context(|| format!("{source}:{}: expected `name;id`, got `{line}`", i + 1))?;
            let id: i64 = id
                .trim()
                .parse()
                .with_context(|| format!("{source}:{}: id `{id}` is not an integer", i + 1))?;
            if id < 0 {
                bail!("{source}:{}: id {id} is negative", i + 1);
            }
            t.keys.insert(key(name), id);
            t.by_id.entry(id).or_default().push(name.to_string());
            t.entries.push((name.to_string(), id));
        }
        Ok(t)
    }

    /// Largest id + 1 (0 when empty).
    pub fn id_bound(&self) -> i64 {
        self.by_id.keys().next_back().map_or(0, |m| m + 1)
    }

    pub fn get(&self, key: &str) -> Option<i64> {
        self.keys.get(key).copied()
    }

    /// Every name of an id, joined by `_` (empty names left out).
    pub fn name_of(&self, id: i64) -> Option<String> {
        let names = self.by_id.get(&id)?;
        let names: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| !n.is_empty())
            .collect();
        Some(names.join("_"))
    }
}

/// The artist and genre lists a prior accepts, with the official normalisation.
#[derive(Debug, Clone)]
pub struct IdSet {
    pub kind: IdKind,
    /// Where the lists came from, for messages.
    pub source: String,
    pub artists: NameTable,
    pub genres: NameTable,
    /// Rows of the model's embedding tables (ids must be below these); None when unknown.
    pub n_artists: Option<usize>,
    pub n_genres: Option<usize>,
}

/// Parse `#12` → 12.
fn numeric_id(s: &str) -> Option<i64> {
    s.trim()
        .strip_prefix('#')?
        .trim()
        .parse::<u32>()
        .ok()
        .map(i64::from)
}

fn custom_key(s: &str) -> String {
    norm_v2(&to_ascii(&s.to_lowercase()))
}

fn v3_key(s: &str) -> String {
    s.to_lowercase()
}

fn official(kind: IdKind) -> Arc<IdSet> {
    static V2: OnceLock<Arc<IdSet>> = OnceLock::new();
    static V3: OnceLock<Arc<IdSet>> = OnceLock::new();
    let build = |artists: &str, genres: &str, name: &str| -> Arc<IdSet> {
        // The embedded lists are the official files; a parse failure is a build defect that
        // the unit tests catch, so fall back to an empty table rather than panic.
        let a = NameTable::parse(artists, &format!("{name}_artist_ids.txt"), v3_key)
            .unwrap_or_default();
        let g =
            NameTable::parse(genres, &format!("{name}_genre_ids.txt"), v3_key).unwrap_or_default();
        Arc::new(IdSet {
            kind,
            source: format!("official {name} lists"),
            n_artists: Some(a.id_bound() as usize),
            n_genres: Some(g.id_bound() as usize),
            artists: a,
            genres: g,
        })
    };
    match kind {
        IdKind::V2 => V2
            .get_or_init(|| build(V2_ARTISTS, V2_GENRES, "v2"))
            .clone(),
        _ => V3
            .get_or_init(|| build(V3_ARTISTS, V3_GENRES, "v3"))
            .clone(),
    }
}

impl IdSet {
    /// The official v2 lists (4111 artists, 120 genres).
    pub fn v2() -> Arc<IdSet> {
        official(IdKind::V2)
    }

    /// The official v3 lists (7898 artists, 604 genres).
    pub fn v3() -> Arc<IdSet> {
        official(IdKind::V3)
    }

    /// `v2` or `v3` by name.
    pub fn official_by_name(name: &str) -> Result<Arc<IdSet>> {
        match name.to_ascii_lowercase().as_str() {
            "v2" => Ok(Self::v2()),
            "v3" => Ok(Self::v3()),
            other => bail!("unknown label set `{other}`; expected v2 or v3"),
        }
    }

    /// Ids only, below the given table sizes.
    pub fn numeric(n_artists: Option<usize>, n_genres: Option<usize>) -> IdSet {
        IdSet {
            kind: IdKind::Numeric,
            source: "no name lists (use #id labels)".into(),
            artists: NameTable::default(),
            genres: NameTable::default(),
            n_artists,
            n_genres,
        }
    }

    /// Custom lists from `labels/artists.txt` and `labels/genres.txt` (`name;id` lines).
    pub fn custom(dir: &Path, n_artists: Option<usize>, n_genres: Option<usize>) -> Result<IdSet> {
        let read = |file: &str| -> Result<(PathBuf, String)> {
            let p = dir.join(file);
            let t = std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read label list {}", p.display()))?;
            Ok((p, t))
        };
        let (pa, ta) = read("artists.txt")?;
        let (pg, tg) = read("genres.txt")?;
        let artists = NameTable::parse(&ta, &pa.display().to_string(), custom_key)?;
        let genres = NameTable::parse(&tg, &pg.display().to_string(), custom_key)?;
        for (table, path, bound) in [(&artists, &pa, n_artists), (&genres, &pg, n_genres)] {
            if let Some(n) = bound {
                if table.id_bound() > n as i64 {
                    bail!(
                        "{}: id {} is outside the model's embedding table of {n} rows",
                        path.display(),
                        table.id_bound() - 1
                    );
                }
            }
        }
        Ok(IdSet {
            kind: IdKind::Custom,
            source: dir.display().to_string(),
            artists,
            genres,
            n_artists,
            n_genres,
        })
    }

    /// The lists for one prior of a model: custom lists when `labels/` sits beside the model,
    /// else v2 for 120×4111 tables, v3 for 604×7898, else numeric ids only.
    pub fn for_model(model_dir: &Path, prior: &PriorConfig) -> Result<Arc<IdSet>> {
        let (na, ng) = match &prior.labels {
            Some(l) => (Some(l.n_artists), Some(l.n_genres)),
            None => (None, None),
        };
        let dir = if model_dir.is_file() {
            model_dir.parent().unwrap_or(Path::new(".")).join("labels")
        } else {
            model_dir.join("labels")
        };
        if dir.join("artists.txt").exists() || dir.join("genres.txt").exists() {
            return Ok(Arc::new(Self::custom(&dir, na, ng)?));
        }
        Ok(match (ng, na) {
            (Some(120), Some(4111)) => Self::v2(),
            (Some(604), Some(7898)) => Self::v3(),
            _ => Arc::new(Self::numeric(na, ng)),
        })
    }

    pub fn table(&self, field: Field) -> &NameTable {
        match field {
            Field::Artist => &self.artists,
            Field::Genre => &self.genres,
        }
    }

    fn bound(&self, field: Field) -> Option<usize> {
        match field {
            Field::Artist => self.n_artists,
            Field::Genre => self.n_genres,
        }
    }

    fn file_name(&self, field: Field) -> String {
        match self.kind {
            IdKind::V2 | IdKind::V3 => format!("{}_{}_ids.txt", self.kind.name(), field.name()),
            _ => format!("{}/{}s.txt", self.source, field.name()),
        }
    }

    /// The key a name from the list file is stored under.
    fn file_key(&self, name: &str) -> String {
        match self.kind {
            IdKind::V2 | IdKind::V3 => v3_key(name),
            IdKind::Custom | IdKind::Numeric => custom_key(name),
        }
    }

    /// The lookup key of an artist name.
    pub fn artist_key(&self, name: &str) -> String {
        match self.kind {
            IdKind::V2 => norm_v2(name),
            IdKind::V3 => v3_key(name),
            IdKind::Custom | IdKind::Numeric => custom_key(name),
        }
    }

    /// The lookup keys of a genre string: v2 splits it into a bag of words.
    pub fn genre_keys(&self, genre: &str) -> Vec<String> {
        match self.kind {
            IdKind::V2 => norm_v2(genre).split('_').map(str::to_string).collect(),
            IdKind::V3 => vec![v3_key(genre)],
            IdKind::Custom | IdKind::Numeric => vec![custom_key(genre)],
        }
    }

    fn check_numeric(&self, field: Field, id: i64, text: &str) -> Result<i64> {
        if id < 0 {
            bail!("{} `{text}`: ids are non-negative", field.name());
        }
        if let Some(n) = self.bound(field) {
            if id >= n as i64 {
                bail!(
                    "{} `{text}`: id {id} is outside this model's {n} {}s (0..{})",
                    field.name(),
                    field.name(),
                    n - 1
                );
            }
        }
        Ok(id)
    }

    /// Official lookup, with the warning the official code prints for an unknown name (id 0).
    /// `#id` is taken as given.
    pub fn artist_lookup(&self, name: &str) -> (i64, Option<String>) {
        if let Some(id) = numeric_id(name) {
            return match self.check_numeric(Field::Artist, id, name) {
                Ok(id) => (id, None),
                Err(e) => (0, Some(format!("{e}; using id 0 (unknown)"))),
            };
        }
        let key = self.artist_key(name);
        match self.artists.get(&key) {
            Some(id) => (id, None),
            None => (
                0,
                Some(format!(
                    "artist `{name}` maps to `{key}`, which is not in {}; using id 0 (unknown)",
                    self.file_name(Field::Artist)
                )),
            ),
        }
    }

    /// Official lookup of one genre string (v2: one id per word; unknown words map to 0), with
    /// a warning per unknown word.
    pub fn genre_lookup(&self, genre: &str) -> (Vec<i64>, Vec<String>) {
        if let Some(id) = numeric_id(genre) {
            return match self.check_numeric(Field::Genre, id, genre) {
                Ok(id) => (vec![id], vec![]),
                Err(e) => (vec![0], vec![format!("{e}; using id 0 (unknown)")]),
            };
        }
        let mut warnings = Vec::new();
        let ids = self
            .genre_keys(genre)
            .into_iter()
            .map(|key| {
                self.genres.get(&key).unwrap_or_else(|| {
                    warnings.push(format!(
                        "genre `{genre}` gives the word `{key}`, which is not in {}; using id 0 (unknown)",
                        self.file_name(Field::Genre)
                    ));
                    0
                })
            })
            .collect();
        (ids, warnings)
    }

    /// Official `get_artist_id`: an unknown name maps to id 0 with a warning on stderr.
    pub fn artist_id(&self, name: &str) -> i64 {
        let (id, warning) = self.artist_lookup(name);
        if let Some(w) = warning {
            eprintln!("warning: {w}");
        }
        id
    }

    /// Official `get_genre_ids`: unknown words map to id 0 with a warning on stderr.
    pub fn genre_ids(&self, genre: &str) -> Vec<i64> {
        let (ids, warnings) = self.genre_lookup(genre);
        for w in warnings {
            eprintln!("warning: {w}");
        }
        ids
    }

    fn unknown_error(&self, field: Field, input: &str, key: &str) -> anyhow::Error {
        let table = self.table(field);
        if self.kind == IdKind::Numeric {
            let message = format!(
                "{} `{input}`: this model has no {} name list ({}); give a numeric id such as #12",
                field.name(),
                field.name(),
                self.source
            );
            return crate::error::UnknownLabel::new(field.name(), input, vec![], message).into();
        }
        // Compare keys with keys (the file's names under the same normalisation).
        let keyed: Vec<(String, &str)> = table
            .entries
            .iter()
            .filter(|(n, _)| plausible(n, key))
            .map(|(n, _)| (self.file_key(n), n.as_str()))
            .collect();
        let near: Vec<String> = crate::util::nearest(key, keyed.iter().map(|(k, _)| k.as_str()), 5)
            .into_iter()
            .filter_map(|k| {
                keyed
                    .iter()
                    .find(|(kk, _)| *kk == k)
                    .map(|(_, n)| display_name(n))
            })
            .collect();
        let message = format!(
            "unknown {} `{input}` (looked up as `{key}` in {}); nearest: {}. \
             Use `jukebox labels --search` to list names, `unknown` for id 0, or a numeric id like #12",
            field.name(),
            self.file_name(field),
            if near.is_empty() { "none".to_string() } else { near.join(", ") }
        );
        crate::error::UnknownLabel::new(field.name(), input, near, message).into()
    }

    fn is_literally_unknown(s: &str) -> bool {
        s.trim().eq_ignore_ascii_case(super::UNKNOWN)
    }

    /// Strict lookup for the CLI: a name that is not in the list is an error suggesting the
    /// nearest names, unless it is literally `unknown` (id 0).
    pub fn artist_id_strict(&self, name: &str) -> Result<i64> {
        if let Some(id) = numeric_id(name) {
            return self.check_numeric(Field::Artist, id, name);
        }
        if Self::is_literally_unknown(name) {
            return Ok(0);
        }
        let key = self.artist_key(name);
        match self.artists.get(&key) {
            Some(id) if !key.is_empty() => Ok(id),
            _ => Err(self.unknown_error(Field::Artist, name, &key)),
        }
    }

    /// Strict genre lookup: every word (v2) must be in the list.
    pub fn genre_ids_strict(&self, genre: &str) -> Result<Vec<i64>> {
        if let Some(id) = numeric_id(genre) {
            return Ok(vec![self.check_numeric(Field::Genre, id, genre)?]);
        }
        if Self::is_literally_unknown(genre) {
            return Ok(vec![0]);
        }
        self.genre_keys(genre)
            .into_iter()
            .map(|key| match self.genres.get(&key) {
                Some(id) if !key.is_empty() => Ok(id),
                _ => Err(self.unknown_error(Field::Genre, genre, &key)),
            })
            .collect()
    }

    /// Reverse lookup: every name of an id joined by `_`; `#id` when the list has none.
    pub fn name_of(&self, field: Field, id: i64) -> String {
        match self.table(field).name_of(id) {
            Some(n) if !n.is_empty() => n,
            _ => format!("#{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_lists_are_the_official_files() {
        use sha2::{Digest, Sha256};
        // sha256 of the official files (fixtures-lyrics/manifest.json `official_files_sha256`).
        for (text, want) in [
            (
                V2_ARTISTS,
                "fce2ecc0c7b00838cf8cc90273609c5460fa1ec8d3211ce9f6546ed792feb001",
            ),
            (
                V2_GENRES,
                "04d7c5e5f0002c74789ee2a72a1e33f11057eb6c183ed0cf8f4b140164197e48",
            ),
            (
                V3_ARTISTS,
                "85ab98ca035945a917ec3d3e1f06bcd938767196281cfb8caecf058872a9e9ed",
            ),
            (
                V3_GENRES,
                "f85f72dca1e6052da129041bb927e29eb143e5f1450951006565f4a8af6f31cb",
            ),
        ] {
            let got: String = Sha256::digest(text.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn official_lists_load() {
        let v2 = IdSet::v2();
        assert_eq!(v2.artists.entries.len(), 4111);
        assert_eq!(v2.genres.entries.len(), 120);
        assert_eq!(v2.n_genres, Some(120));
        let v3 = IdSet::v3();
        assert_eq!(v3.artists.entries.len(), 7898);
        assert_eq!(v3.genres.entries.len(), 604);
        assert_eq!((v3.n_artists, v3.n_genres), (Some(7898), Some(604)));
    }

    #[test]
    fn v2_normalisation() {
        assert_eq!(norm_v2("Céline Dion"), "c_line_dion");
        assert_eq!(norm_v2("  The   Beatles!! "), "the_beatles");
        assert_eq!(norm_v2("R&B"), "r_b");
        let v2 = IdSet::v2();
        assert_eq!(v2.artist_id("Céline Dion"), 557);
        assert_eq!(v2.genre_ids("Blues Rock"), vec![2, 8]);
        assert_eq!(v2.genre_ids("Jazz Fusion"), vec![9, 0]);
        assert_eq!(v2.artist_id("Nobody At All 123"), 0);
    }

    #[test]
    fn v3_lower_and_the_hidden_mark() {
        let v3 = IdSet::v3();
        assert_eq!(v3.artist_id("Céline Dion"), 5220);
        assert_eq!(v3.genre_ids("Blues Rock"), vec![282]);
        // Two "jazz fusion" lines; the one with U+200E is id 107, the plain one 295.
        assert_eq!(v3.genre_ids("Jazz Fusion"), vec![295]);
        assert_eq!(v3.genre_ids("jazz fusion\u{200e}"), vec![107]);
        assert_eq!(
            display_name(&v3.name_of(Field::Genre, 107)),
            "jazz fusion<U+200E>"
        );
    }

    #[test]
    fn strict_lookup_suggests() {
        let v2 = IdSet::v2();
        let e = v2.genre_ids_strict("Jazz Fuson").unwrap_err().to_string();
        assert!(e.contains("fuson") && e.contains("nearest"), "{e}");
        assert_eq!(v2.genre_ids_strict("unknown").unwrap(), vec![0]);
        assert_eq!(v2.artist_id_strict("Unknown").unwrap(), 0);
        assert_eq!(v2.artist_id_strict("#12").unwrap(), 12);
        assert!(v2.artist_id_strict("#4111").is_err());
        // The official lookup maps an out-of-range id to 0 with a warning, never past the table.
        let (id, w) = v2.artist_lookup("#4111");
        assert_eq!(id, 0);
        assert!(w.is_some_and(|w| w.contains("outside")));
        assert_eq!(v2.genre_lookup("#119").0, vec![119]);
        let e = v2.artist_id_strict("Celine Dionn").unwrap_err().to_string();
        assert!(
            e.contains("celine_dion") || e.contains("c_line_dion"),
            "{e}"
        );
        assert!(v2.artist_id_strict("").is_err());
    }

    #[test]
    fn reverse_lookup_joins_names() {
        let v2 = IdSet::v2();
        assert_eq!(v2.name_of(Field::Artist, 0), "unknown_various");
        assert_eq!(v2.name_of(Field::Genre, 2), "blues");
        assert_eq!(v2.name_of(Field::Genre, 9999), "#9999");
    }

    #[test]
    fn search_finds_substrings() {
        let v3 = IdSet::v3();
        let hits = v3.search(Field::Genre, "fusion");
        assert!(hits.iter().any(|(_, id)| *id == 295), "{hits:?}");
        let v2 = IdSet::v2();
        for q in ["Céline", "celine dion", "C_LINE"] {
            let hits = v2.search(Field::Artist, q);
            assert!(hits.iter().any(|(_, id)| *id == 557), "{q}: {hits:?}");
        }
        assert!(v2.search(Field::Artist, "zzxqzzxq").is_empty());
        let near = v2.suggest(Field::Genre, "rokc", 3);
        assert!(near.iter().any(|(n, _)| n == "rock"), "{near:?}");
    }

    #[test]
    fn custom_lists_beside_a_model() {
        let d = tempfile::tempdir().unwrap();
        let l = d.path().join("labels");
        std::fs::create_dir_all(&l).unwrap();
        std::fs::write(l.join("artists.txt"), "unknown;0\nBjörk;1\nAC/DC;2\n").unwrap();
        std::fs::write(
            l.join("genres.txt"),
            "unknown;0\nHip Hop;1\ndrum and bass;2\n",
        )
        .unwrap();
        let s = IdSet::custom(&l, Some(3), Some(3)).unwrap();
        assert_eq!(s.kind, IdKind::Custom);
        assert_eq!(s.artist_id_strict("bjork").unwrap(), 1);
        assert_eq!(s.artist_id_strict("ac-dc").unwrap(), 2);
        assert_eq!(s.genre_ids_strict("hip-hop").unwrap(), vec![1]);
        let e = s.genre_ids_strict("Drum & Bass").unwrap_err().to_string();
        assert!(e.contains("drum and bass"), "{e}");
        // Ids beyond the model's table are refused.
        assert!(IdSet::custom(&l, Some(2), Some(3)).is_err());
    }
}
