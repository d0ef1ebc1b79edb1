//! Small shared helpers: atomic file writes, default paths, deterministic random streams.

use anyhow::{Context, Result};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Write `bytes` to `path` atomically: a temp file in the same directory, fsync, rename.
/// A reader never sees a half-written file, and on error the previous file stays intact.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_with(path, |f| f.write_all(bytes).map_err(Into::into))
}

/// Like [`atomic_write`], but the caller streams into the temp file.
pub fn atomic_write_with(path: &Path, fill: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))?;
    let name = path
        .file_name()
        .context("output path has no file name")?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| -> Result<()> {
        let mut f = File::create(&tmp).with_context(|| {
            format!(
                "cannot create {} (is the directory writable?)",
                tmp.display()
            )
        })?;
        fill(&mut f)?;
        f.flush()?;
        f.sync_all()
            .with_context(|| format!("cannot sync {} (disk full?)", tmp.display()))?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e.context(format!(
            "writing {} failed; the previous file is untouched",
            path.display()
        )));
    }
    fs::rename(&tmp, path).with_context(|| format!("cannot rename into {}", path.display()))?;
    // Make the rename itself durable.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The crate root recorded at build time, so default paths work from anywhere in the checkout.
pub const CRATE_ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Resolve a default relative path (`models/default`, `data/prompts/amen.wav`): the current
/// directory first, then the crate root.
pub fn resolve_default(rel: &str) -> PathBuf {
    let p = PathBuf::from(rel);
    if p.exists() || p.is_absolute() {
        return p;
    }
    let q = Path::new(CRATE_ROOT).join(rel);
    if q.exists() {
        q
    } else {
        p
    }
}

/// SplitMix64 step: a small, well-mixed counter-based generator.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform draw in [0, 1) that depends only on (seed, level, window, step), never on batch
/// position, so an item samples the same whatever it is batched with (docs/CONVENTIONS.md, "Determinism").
pub fn uniform(seed: u64, level: u64, window: u64, step: u64) -> f64 {
    let mut h = splitmix64(seed);
    h = splitmix64(h ^ level.wrapping_mul(0xA24B_AED4_963E_E407));
    h = splitmix64(h ^ window.wrapping_mul(0x9FB2_1C65_1E98_DF25));
    h = splitmix64(h ^ step);
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Levenshtein distance, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let sub = prev[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Up to `n` candidates nearest to `query`: substring matches first, then by edit distance.
pub fn nearest<'a>(
    query: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    n: usize,
) -> Vec<String> {
    let q = query.to_lowercase();
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|c| {
            let cl = c.to_lowercase();
            let d = if cl.contains(&q) || q.contains(&cl) {
                0
            } else {
                edit_distance(&q, &cl)
            };
            (d, c)
        })
        .collect();
    scored.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(n)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// What the first bytes of a file look like, for error messages about the wrong kind of file
/// (`None` when nothing is recognised).
pub fn sniff_kind(head: &[u8]) -> Option<&'static str> {
    let starts = |p: &[u8]| head.starts_with(p);
    if starts(b"RIFF") && head.get(8..12) == Some(b"WAVE") {
        Some("a WAV audio file")
    } else if starts(b"fLaC") {
        Some("a FLAC audio file")
    } else if starts(b"OggS") {
        Some("an Ogg audio file")
    } else if starts(b"ID3") || (head.len() >= 2 && head[0] == 0xff && head[1] & 0xe0 == 0xe0) {
        Some("an MP3 audio file")
    } else if starts(b"PK\x03\x04") {
        Some("a zip archive")
    } else if head.first().is_some_and(|&b| b == b'{' || b == b'[') {
        Some("JSON")
    } else if !head.is_empty()
        && head.iter().all(|&b| {
            b == b'\n' || b == b'\r' || b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80
        })
    {
        Some("text")
    } else {
        None
    }
}

/// One CSV record (RFC 4180, by the csv crate): fields quoted only where needed, `\n`-terminated.
/// Every CSV file the crate writes goes through here.
pub fn csv_line<I, T>(fields: I) -> String
where
    I: IntoIterator<Item = T>,
    T: AsRef<[u8]>,
{
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    // Writing to a Vec cannot fail.
    w.write_record(fields).expect("CSV into memory");
    let bytes = w.into_inner().expect("CSV into memory");
    String::from_utf8(bytes).expect("UTF-8 fields give UTF-8 CSV")
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_lines_quote_only_what_needs_it() {
        assert_eq!(super::csv_line(["a", "b c", "1.5"]), "a,b c,1.5\n");
        assert_eq!(
            super::csv_line(["x,y", "say \"hi\"", "two\nlines"]),
            "\"x,y\",\"say \"\"hi\"\"\",\"two\nlines\"\n"
        );
        // What it writes, the csv reader reads back field for field.
        let line = super::csv_line(["rock, live", "\"q\"", ""]);
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(line.as_bytes());
        let rec = r.records().next().unwrap().unwrap();
        assert_eq!(rec.iter().collect::<Vec<_>>(), ["rock, live", "\"q\"", ""]);
    }

    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.txt");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two two");
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            1,
            "temp file left behind"
        );
    }

    #[test]
    fn uniform_is_stable_and_spread() {
        assert_eq!(uniform(1, 2, 3, 4), uniform(1, 2, 3, 4));
        assert_ne!(uniform(1, 2, 3, 4), uniform(2, 2, 3, 4));
        let mean: f64 = (0..10000).map(|i| uniform(7, 0, 0, i)).sum::<f64>() / 10000.0;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
    }

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("rock", "rokc"), 2);
        let c = ["rock", "pop", "jazz", "hip hop"];
        assert_eq!(nearest("rokc", c, 1), vec!["rock"]);
        assert_eq!(nearest("hop", c, 1), vec!["hip hop"]);
    }
}
