//! A training corpus: validated items with label ids, decoded-audio cache, train/valid split.

use super::metadata::{self, Record, MAX_GENRES};
use super::vocab::Vocab;
use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Sample rate of everything in a corpus (decoded and resampled on load).
pub const SAMPLE_RATE: u32 = crate::audio::SAMPLE_RATE;
/// Files shorter than this are reported: they cannot fill even a small training window.
pub const MIN_SECONDS: f64 = 1.0;

/// One audio file with its labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// Absolute (or corpus-relative joined) path of the audio file.
    pub path: PathBuf,
    /// The path as written in the metadata.
    pub rel: String,
    /// Normalised artist key (as in `labels/artists.txt`) and its id.
    pub artist: String,
    pub artist_id: u32,
    /// Normalised genre keys and ids (1..=5 of them).
    pub genres: Vec<String>,
    pub genre_ids: Vec<u32>,
    pub lyrics: String,
    pub license: String,
    pub source: String,
    pub author: String,
    pub title: String,
    /// Decoded length at 44.1 kHz.
    pub n_samples: u64,
    /// Where this file starts inside the original song (0 unless it is an excerpt).
    pub offset_seconds: f64,
    /// Length of the original song (the file's own length unless given).
    pub song_seconds: f64,
}

impl Item {
    pub fn seconds(&self) -> f64 {
        self.n_samples as f64 / SAMPLE_RATE as f64
    }
    /// Offset of this file inside its song, in samples (for the timing label).
    pub fn offset_samples(&self) -> u64 {
        (self.offset_seconds * SAMPLE_RATE as f64).round() as u64
    }
    /// The song's total length in samples (for the timing label).
    pub fn song_samples(&self) -> u64 {
        ((self.song_seconds * SAMPLE_RATE as f64).round() as u64)
            .max(self.offset_samples() + self.n_samples)
    }
}

/// (files, seconds) per label key.
pub type Totals = BTreeMap<String, (usize, f64)>;

/// A problem found while scanning a corpus.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// Where: `metadata.csv:12` or the audio path.
    pub at: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Train / validation item indices.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub train: Vec<usize>,
    pub valid: Vec<usize>,
}

#[derive(Clone, Debug)]
pub struct Corpus {
    pub dir: PathBuf,
    pub metadata_path: PathBuf,
    pub items: Vec<Item>,
    pub vocab: Vocab,
    /// Whether `labels/` on disk already holds every name (else `dataset check` should be run).
    pub vocab_on_disk: bool,
    cache_dir: PathBuf,
    cache_files: Vec<PathBuf>,
}

#[derive(Serialize, Deserialize, Default)]
struct CacheIndex {
    version: u32,
    entries: BTreeMap<String, CacheEntry>,
}

#[derive(Serialize, Deserialize, Clone, PartialEq)]
struct CacheEntry {
    size: u64,
    mtime_ns: u128,
    n_samples: u64,
    file: String,
}

const CACHE_VERSION: u32 = 1;

/// The result of [`scan`]: the usable items and every problem found.
pub struct Scan {
    pub corpus: Corpus,
    pub problems: Vec<Problem>,
    pub warnings: Vec<String>,
}

impl Corpus {
    /// Open a corpus folder: read its metadata, label vocabulary and audio lengths (decoding each
    /// file once into the f32 cache under `DIR/.cache/`). Any problem is an error; run
    /// `jukebox dataset check DIR` to see them all.
    pub fn open(dir: &Path) -> Result<Corpus> {
        let s = scan(dir)?;
        if !s.problems.is_empty() {
            let shown: Vec<String> = s
                .problems
                .iter()
                .take(10)
                .map(|p| format!("  {p}"))
                .collect();
            bail!(
                "corpus {} has {} problem(s):\n{}{}\n(run `jukebox dataset check {}` for the full report)",
                dir.display(),
                s.problems.len(),
                shown.join("\n"),
                if s.problems.len() > 10 { "\n  ..." } else { "" },
                dir.display()
            );
        }
        for w in &s.warnings {
            eprintln!("warning: {w}");
        }
        Ok(s.corpus)
    }

    /// Total audio in seconds.
    pub fn total_seconds(&self) -> f64 {
        self.items.iter().map(Item::seconds).sum()
    }

    /// (files, seconds) per artist key and per genre key.
    pub fn totals(&self) -> (Totals, Totals) {
        let mut a = Totals::new();
        let mut g = Totals::new();
        for it in &self.items {
            let e = a.entry(it.artist.clone()).or_default();
            e.0 += 1;
            e.1 += it.seconds();
            for k in &it.genres {
                let e = g.entry(k.clone()).or_default();
                e.0 += 1;
                e.1 += it.seconds();
            }
        }
        (a, g)
    }

    /// A deterministic split by file, stratified by artist: within each artist the files are
    /// ordered by a hash of (seed, path) and the first round(fraction · n) go to validation
    /// (at least one when the artist has two or more files, never all of them). It does not
    /// depend on the order of the metadata rows.
    pub fn split(&self, seed: u64, valid_fraction: f64) -> Split {
        let frac = if valid_fraction.is_finite() {
            valid_fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let mut by_artist: BTreeMap<u32, Vec<(u64, usize)>> = BTreeMap::new();
        for (i, it) in self.items.iter().enumerate() {
            by_artist
                .entry(it.artist_id)
                .or_default()
                .push((path_hash(seed, &it.rel), i));
        }
        let (mut train, mut valid) = (Vec::new(), Vec::new());
        for (_, mut v) in by_artist {
            v.sort();
            let n = v.len();
            let mut k = (frac * n as f64).round() as usize;
            if frac > 0.0 && n >= 2 {
                k = k.clamp(1, n - 1);
            } else if n < 2 {
                k = 0;
            }
            for (j, (_, i)) in v.into_iter().enumerate() {
                if j < k {
                    valid.push(i);
                } else {
                    train.push(i);
                }
            }
        }
        train.sort_unstable();
        valid.sort_unstable();
        Split { train, valid }
    }

    fn index_of(&self, item: &Item) -> Result<usize> {
        self.items
            .iter()
            .position(|i| i.rel == item.rel)
            .with_context(|| {
                format!(
                    "{} is not an item of corpus {}",
                    item.rel,
                    self.dir.display()
                )
            })
    }

    /// The whole decoded file (44.1 kHz mono), from the cache.
    pub fn load_audio(&self, item: &Item) -> Result<Vec<f32>> {
        self.load_window(item, 0, item.n_samples as usize)
    }

    /// `len` samples starting at `start`, zero-padded past the end of the file. Reads only that
    /// part of the cache file.
    pub fn load_window(&self, item: &Item, start: usize, len: usize) -> Result<Vec<f32>> {
        let idx = self.index_of(item)?;
        let cache = &self.cache_files[idx];
        if !cache.is_file() {
            // The cache was deleted under us: decode again.
            let a = crate::audio::load(&item.path)
                .with_context(|| format!("decoding {}", item.path.display()))?;
            write_f32(cache, &a.samples)?;
        }
        let mut out = vec![0f32; len];
        let n = item.n_samples as usize;
        if start >= n || len == 0 {
            return Ok(out);
        }
        let take = len.min(n - start);
        let mut f = std::fs::File::open(cache)
            .with_context(|| format!("cannot open audio cache {}", cache.display()))?;
        f.seek(SeekFrom::Start(start as u64 * 4))?;
        let mut bytes = vec![0u8; take * 4];
        f.read_exact(&mut bytes).with_context(|| {
            format!(
                "audio cache {} is shorter than the {} samples recorded for {} (delete {} and retry)",
                cache.display(),
                n,
                item.rel,
                self.cache_dir.display()
            )
        })?;
        for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Ok(out)
    }
}

fn path_hash(seed: u64, rel: &str) -> u64 {
    let d = Sha256::digest(rel.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    crate::util::splitmix64(seed ^ u64::from_le_bytes(b))
}

fn cache_name(rel: &str) -> String {
    let d = Sha256::digest(rel.as_bytes());
    let hex: String = d[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.f32")
}

fn write_f32(path: &Path, samples: &[f32]) -> Result<()> {
    let mut bytes = Vec::with_capacity(samples.len() * 4);
    for s in samples {
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    crate::util::atomic_write(path, &bytes)
}

fn stat(path: &Path) -> Result<(u64, u128)> {
    let m = std::fs::metadata(path)?;
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok((m.len(), mtime))
}

/// Scan a corpus folder, collecting every problem instead of stopping at the first.
/// Errors only when the metadata file itself cannot be read or parsed.
pub fn scan(dir: &Path) -> Result<Scan> {
    let metadata_path = metadata::find(dir)?;
    let records = metadata::read(&metadata_path)?;
    let mname = metadata_path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    if records.is_empty() {
        problems.push(Problem {
            at: mname.clone(),
            message: "no items".into(),
        });
    }

    let good = check_rows(&records, &mname, &mut problems);

    // Vocabulary: keep the ids already on disk, add new names.
    let labels_dir = dir.join("labels");
    let on_disk = Vocab::read(&labels_dir)?;
    let owned: Vec<Record> = good.iter().map(|r| (*r).clone()).collect();
    let vocab = Vocab::derive(&owned, on_disk.as_ref());
    let vocab_on_disk = on_disk.as_ref() == Some(&vocab);

    // Audio: lengths from the cache index, decoding what is new or changed.
    let cache_dir = dir.join(".cache").join("audio");
    let index_path = dir.join(".cache").join("index.json");
    let mut index: CacheIndex = std::fs::read(&index_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|i: &CacheIndex| i.version == CACHE_VERSION)
        .unwrap_or_default();
    let resolved: Vec<PathBuf> = good
        .iter()
        .map(|r| {
            let p = Path::new(&r.path);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            }
        })
        .collect();
    let results = decode_cached(&good, &resolved, &index, &cache_dir);

    let mut items = Vec::new();
    let mut cache_files = Vec::new();
    let mut live: HashSet<String> = HashSet::new();
    for ((r, path), res) in good.iter().zip(resolved).zip(results) {
        let at = r.path.clone();
        let entry = match res {
            Ok((e, w)) => {
                warnings.extend(w);
                e
            }
            Err(e) => {
                problems.push(Problem {
                    at,
                    message: format!("unreadable: {e:#}"),
                });
                continue;
            }
        };
        index.entries.insert(r.path.clone(), entry.clone());
        live.insert(r.path.clone());
        match item_of(r, &path, &entry, &vocab, &mname) {
            Ok(item) => {
                cache_files.push(cache_dir.join(&entry.file));
                items.push(item);
            }
            Err(p) => problems.push(p),
        }
    }
    // Forget entries of files no longer listed (their cache files stay until `.cache` is removed).
    index.entries.retain(|k, _| live.contains(k));
    index.version = CACHE_VERSION;
    if let Ok(bytes) = serde_json::to_vec_pretty(&index) {
        if let Err(e) = crate::util::atomic_write(&index_path, &bytes) {
            warnings.push(format!(
                "cannot write the cache index {}: {e:#}",
                index_path.display()
            ));
        }
    }
    Ok(Scan {
        corpus: Corpus {
            dir: dir.to_path_buf(),
            metadata_path,
            items,
            vocab,
            vocab_on_disk,
            cache_dir,
            cache_files,
        },
        problems,
        warnings,
    })
}

/// The rows of the metadata file that can be used: a path, a named artist (not the reserved
/// `unknown`), one to [`MAX_GENRES`] named genres, listed once. Each bad row is a problem.
fn check_rows<'r>(
    records: &'r [Record],
    mname: &str,
    problems: &mut Vec<Problem>,
) -> Vec<&'r Record> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut good: Vec<&Record> = Vec::new();
    for r in records {
        let at = format!("{mname}:{}", r.line);
        let mut ok = true;
        let mut bad = |m: String| {
            problems.push(Problem {
                at: at.clone(),
                message: m,
            });
            ok = false;
        };
        if r.path.is_empty() {
            bad("empty `path`".into());
        }
        if super::vocab::key(&r.artist).is_empty() {
            bad(format!("missing artist for `{}` (use the composer, performer or kit; `unknown` is reserved)", r.path));
        } else if super::vocab::key(&r.artist) == super::vocab::UNKNOWN {
            bad(format!(
                "artist `unknown` for `{}`: id 0 is reserved for label dropout; name the artist",
                r.path
            ));
        }
        if r.genres.is_empty() {
            bad(format!("missing genre for `{}`", r.path));
        }
        if r.genres.len() > MAX_GENRES {
            bad(format!(
                "{} genres for `{}`; at most {MAX_GENRES}",
                r.genres.len(),
                r.path
            ));
        }
        for g in &r.genres {
            let k = super::vocab::key(g);
            if k.is_empty() || k == super::vocab::UNKNOWN {
                bad(format!("genre `{g}` for `{}` is empty or reserved", r.path));
            }
        }
        if let Some(prev) = seen.insert(r.path.clone(), r.line) {
            bad(format!(
                "`{}` is listed twice (also on line {prev})",
                r.path
            ));
        }
        if ok {
            good.push(r);
        }
    }

    good
}

/// Each row's cache entry and decoding warnings: the cached entry when the file's size and
/// mtime still match, otherwise the file decoded again (in parallel) into the cache.
fn decode_cached(
    good: &[&Record],
    resolved: &[PathBuf],
    index: &CacheIndex,
    cache_dir: &Path,
) -> Vec<Result<(CacheEntry, Vec<String>)>> {
    good.par_iter()
        .zip(resolved.par_iter())
        .map(|(r, path)| -> Result<(CacheEntry, Vec<String>)> {
            let (size, mtime_ns) =
                stat(path).with_context(|| format!("file not found: {}", path.display()))?;
            let file = cache_name(&r.path);
            if let Some(e) = index.entries.get(&r.path) {
                let cached = cache_dir.join(&e.file);
                let cache_ok = std::fs::metadata(&cached)
                    .map(|m| m.len() == e.n_samples * 4)
                    .unwrap_or(false);
                if e.size == size && e.mtime_ns == mtime_ns && cache_ok {
                    return Ok((e.clone(), Vec::new()));
                }
            }
            let a = crate::audio::load(path)?;
            write_f32(&cache_dir.join(&file), &a.samples)?;
            let warns = a
                .warnings
                .iter()
                .map(|w| format!("{}: {w}", r.path))
                .collect();
            Ok((
                CacheEntry {
                    size,
                    mtime_ns,
                    n_samples: a.samples.len() as u64,
                    file,
                },
                warns,
            ))
        })
        .collect()
}

/// The corpus item of a good row whose audio is `entry`, or the problem with its length or
/// its offset within the song.
fn item_of(
    r: &Record,
    path: &Path,
    entry: &CacheEntry,
    vocab: &Vocab,
    mname: &str,
) -> std::result::Result<Item, Problem> {
    let seconds = entry.n_samples as f64 / SAMPLE_RATE as f64;
    if seconds < MIN_SECONDS {
        return Err(Problem {
            at: r.path.clone(),
            message: format!("only {seconds:.3} s of audio; at least {MIN_SECONDS} s needed"),
        });
    }
    let offset = r.offset_seconds.unwrap_or(0.0);
    let song = r.song_seconds.unwrap_or(offset + seconds);
    if song + 0.5 < offset + seconds {
        return Err(Problem {
            at: format!("{mname}:{}", r.line),
            message: format!(
                "offset_seconds {offset} + file length {seconds:.2} s exceeds song_seconds {song} for `{}`",
                r.path
            ),
        });
    }
    // `derive` added every name of a good row, so these lookups succeed.
    let artist_id = vocab.artist_id(&r.artist).unwrap_or(0);
    let genre_ids: Vec<u32> = r
        .genres
        .iter()
        .map(|g| vocab.genre_id(g).unwrap_or(0))
        .collect();
    Ok(Item {
        path: path.to_path_buf(),
        rel: r.path.clone(),
        artist: super::vocab::key(&r.artist),
        artist_id,
        genres: r.genres.iter().map(|g| super::vocab::key(g)).collect(),
        genre_ids,
        lyrics: r.lyrics.clone(),
        license: r.license.clone(),
        source: r.source.clone(),
        author: r.author.clone(),
        title: r.title.clone(),
        n_samples: entry.n_samples,
        offset_seconds: offset,
        song_seconds: song,
    })
}
