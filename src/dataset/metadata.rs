//! Corpus metadata: `metadata.csv` (RFC 4180, header row) or `metadata.jsonl`.
//!
//! Columns (any order; names are case-insensitive):
//! - `path` (required): audio file, relative to the corpus folder;
//! - `artist` (required): composer / performer / kit;
//! - `genres` or `genre` (required): one or more genres separated by `|`;
//! - optional: `lyrics`, `license`, `source` (e.g. the Debian package), `author`, `title`,
//!   `offset_seconds` (where this file starts inside the original song) and `song_seconds`
//!   (the original song's length), used for the timing labels when a file is an excerpt.
//!
//! Unknown columns are kept in `extra` and otherwise ignored.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// Most genres one item may carry (the official `max_bow_genre_size`).
pub const MAX_GENRES: usize = 5;

/// One row, as written (names not yet normalised).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    /// 1-based line (CSV) where the record starts, for error messages.
    pub line: usize,
    pub path: String,
    pub artist: String,
    pub genres: Vec<String>,
    pub lyrics: String,
    pub license: String,
    pub source: String,
    pub author: String,
    pub title: String,
    pub offset_seconds: Option<f64>,
    pub song_seconds: Option<f64>,
    pub extra: BTreeMap<String, String>,
}

/// The canonical CSV header written by this crate.
pub const CSV_HEADER: [&str; 10] = [
    "path",
    "artist",
    "genres",
    "lyrics",
    "license",
    "source",
    "author",
    "title",
    "offset_seconds",
    "song_seconds",
];

/// Find the metadata file of a corpus folder.
pub fn find(dir: &Path) -> Result<std::path::PathBuf> {
    for name in ["metadata.csv", "metadata.jsonl"] {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    if !dir.is_dir() {
        bail!("corpus folder {} does not exist", dir.display());
    }
    bail!(
        "{} has no metadata.csv or metadata.jsonl (columns: path, artist, genres, and optionally lyrics, license, source, author)",
        dir.display()
    )
}

/// Read a metadata file (CSV or JSONL by extension).
pub fn read(path: &Path) -> Result<Vec<Record>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let origin = path.display().to_string();
    if path.extension().and_then(|e| e.to_str()) == Some("jsonl") {
        parse_jsonl(&text, &origin)
    } else {
        parse_csv(&text, &origin)
    }
}

/// Split genres written as `a|b|c` (empty parts dropped).
pub fn split_genres(s: &str) -> Vec<String> {
    s.split('|')
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty())
        .collect()
}

fn parse_f64(v: &str, what: &str, at: &str) -> Result<Option<f64>> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
        _ => bail!("{at}: `{what}` must be a non-negative number of seconds, got `{v}`"),
    }
}

/// Parse CSV text: a header row, then one record per row. Quoted fields may hold commas,
/// doubled quotes and newlines.
pub fn parse_csv(text: &str, origin: &str) -> Result<Vec<Record>> {
    let rows = csv_rows(text, origin)?;
    let Some((hline, header)) = rows.first() else {
        bail!(
            "{origin}: empty file (expected a header row: {})",
            CSV_HEADER.join(",")
        );
    };
    let header: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
    let col = |name: &str| header.iter().position(|h| h == name);
    let path_c = col("path")
        .with_context(|| format!("{origin}:{hline}: the header has no `path` column"))?;
    let artist_c = col("artist")
        .with_context(|| format!("{origin}:{hline}: the header has no `artist` column"))?;
    let genres_c = col("genres").or_else(|| col("genre")).with_context(|| {
        format!("{origin}:{hline}: the header has no `genres` (or `genre`) column")
    })?;
    let mut out = Vec::new();
    for (line, row) in rows.iter().skip(1) {
        if row.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let at = format!("{origin}:{line}");
        if row.len() != header.len() {
            bail!(
                "{at}: {} fields, but the header has {} (quote fields that contain commas)",
                row.len(),
                header.len()
            );
        }
        let get = |c: Option<usize>| c.map(|c| row[c].clone()).unwrap_or_default();
        let mut extra = BTreeMap::new();
        for (i, h) in header.iter().enumerate() {
            if !CSV_HEADER.contains(&h.as_str()) && h != "genre" {
                extra.insert(h.clone(), row[i].clone());
            }
        }
        out.push(Record {
            line: *line,
            path: row[path_c].trim().to_string(),
            artist: row[artist_c].trim().to_string(),
            genres: split_genres(&row[genres_c]),
            lyrics: get(col("lyrics")),
            license: get(col("license")).trim().to_string(),
            source: get(col("source")).trim().to_string(),
            author: get(col("author")).trim().to_string(),
            title: get(col("title")).trim().to_string(),
            offset_seconds: parse_f64(&get(col("offset_seconds")), "offset_seconds", &at)?,
            song_seconds: parse_f64(&get(col("song_seconds")), "song_seconds", &at)?,
            extra,
        });
    }
    Ok(out)
}

/// RFC 4180 rows with the 1-based line each starts on.
fn csv_rows(text: &str, origin: &str) -> Result<Vec<(usize, Vec<String>)>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut at_field_start = true;
    let mut line = 1usize;
    let mut row_line = 1usize;
    let mut quote_line = 0usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => {
                    quoted = false;
                    if let Some(&n) = chars.peek() {
                        if n != ',' && n != '\n' && n != '\r' {
                            bail!("{origin}:{line}: unexpected `{n}` after a closing quote");
                        }
                    }
                }
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                quoted = true;
                quote_line = line;
                at_field_start = false;
            }
            ',' => {
                row.push(std::mem::take(&mut field));
                at_field_start = true;
            }
            '\r' => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push((row_line, std::mem::take(&mut row)));
                line += 1;
                row_line = line;
                at_field_start = true;
            }
            _ => {
                field.push(c);
                at_field_start = false;
            }
        }
    }
    if quoted {
        bail!("{origin}:{quote_line}: a quoted field is never closed");
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push((row_line, row));
    }
    Ok(rows)
}

/// Records as CSV text with the canonical header.
pub fn to_csv(records: &[Record]) -> String {
    let mut s = CSV_HEADER.join(",");
    s.push('\n');
    let num = |x: Option<f64>| x.map(|v| format!("{v}")).unwrap_or_default();
    for r in records {
        let fields = [
            r.path.clone(),
            r.artist.clone(),
            r.genres.join("|"),
            r.lyrics.clone(),
            r.license.clone(),
            r.source.clone(),
            r.author.clone(),
            r.title.clone(),
            num(r.offset_seconds),
            num(r.song_seconds),
        ];
        s.push_str(&crate::util::csv_line(&fields));
    }
    s
}

/// Parse JSONL: one object per line with the same keys; `genres` may be a string (`a|b`) or a
/// list, `genre` a string.
pub fn parse_jsonl(text: &str, origin: &str) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let line = i + 1;
        let l = l.trim();
        if l.is_empty() {
            continue;
        }
        let at = format!("{origin}:{line}");
        let v: serde_json::Value =
            serde_json::from_str(l).with_context(|| format!("{at}: not a JSON object"))?;
        let obj = v
            .as_object()
            .with_context(|| format!("{at}: expected a JSON object"))?;
        let s = |k: &str| -> Result<String> {
            match obj.get(k) {
                None | Some(serde_json::Value::Null) => Ok(String::new()),
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(other) => bail!("{at}: `{k}` must be a string, got {other}"),
            }
        };
        let n = |k: &str| -> Result<Option<f64>> {
            match obj.get(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::Number(x)) => parse_f64(&x.to_string(), k, &at),
                Some(serde_json::Value::String(x)) => parse_f64(x, k, &at),
                Some(other) => bail!("{at}: `{k}` must be a number, got {other}"),
            }
        };
        let genres = match obj.get("genres").or_else(|| obj.get("genre")) {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::String(g)) => split_genres(g),
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .map(|g| g.as_str().map(|s| s.trim().to_string()))
                .collect::<Option<Vec<_>>>()
                .with_context(|| format!("{at}: `genres` must be a list of strings"))?
                .into_iter()
                .filter(|g| !g.is_empty())
                .collect(),
            Some(other) => {
                bail!("{at}: `genres` must be a string or a list of strings, got {other}")
            }
        };
        let known = CSV_HEADER
            .iter()
            .chain(["genre"].iter())
            .copied()
            .collect::<Vec<_>>();
        let extra = obj
            .iter()
            .filter(|(k, _)| !known.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        out.push(Record {
            line,
            path: s("path")?.trim().to_string(),
            artist: s("artist")?.trim().to_string(),
            genres,
            lyrics: s("lyrics")?,
            license: s("license")?.trim().to_string(),
            source: s("source")?.trim().to_string(),
            author: s("author")?.trim().to_string(),
            title: s("title")?.trim().to_string(),
            offset_seconds: n("offset_seconds")?,
            song_seconds: n("song_seconds")?,
            extra,
        });
    }
    Ok(out)
}
