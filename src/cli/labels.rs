//! `jukebox labels`: list or search the artist and genre names a model (or an official list) accepts.

use anyhow::{bail, Context, Result};
use jukebox::checkpoint::ModelDir;
use jukebox::labels::{display_name, Field, IdKind, IdSet};
use jukebox::level::Level;
use jukebox::util::resolve_default;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model directory; its prior's label lists (custom `labels/`, else v2/v3 by table size).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Which prior's labels: bottom, middle, top or 0/1/2 (default top).
    #[arg(long, default_value = "top")]
    pub level: String,
    /// An official list without a model: v2 (5b, 5b_lyrics, upsamplers) or v3 (1b_lyrics).
    #[arg(long, conflicts_with = "model", value_parser = ["v2", "v3"])]
    pub set: Option<String>,
    /// Only names containing TEXT (case-insensitive); nearest names when nothing contains it.
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
    /// Only artists.
    #[arg(long, conflicts_with = "genres")]
    pub artists: bool,
    /// Only genres.
    #[arg(long)]
    pub genres: bool,
    /// Print JSON (source, matching rule, genre slots, and per field its rows of id and name).
    #[arg(long)]
    pub json: bool,
}

fn parse_level(s: &str, n_levels: usize) -> Result<usize> {
    s.parse::<Level>()
        .map_err(|e| anyhow::anyhow!("--level: {e}"))?
        .within(n_levels)
        .context("--level")
}

/// The id lists to show and a one-line description of where they come from.
fn resolve(args: &Args) -> Result<(Arc<IdSet>, String, Option<usize>)> {
    if let Some(set) = &args.set {
        let ids = IdSet::official_by_name(set)?;
        let max = if ids.kind == IdKind::V2 { 5 } else { 1 };
        return Ok((ids, format!("official {set} lists"), Some(max)));
    }
    let model = args
        .model
        .clone()
        .unwrap_or_else(|| resolve_default("models/default"));
    let md = ModelDir::open(&model).with_context(|| {
        format!(
            "cannot open model {} (use --model DIR, or --set v2|v3 for an official list)",
            model.display()
        )
    })?;
    let n = md.config.priors.len();
    let level = parse_level(&args.level, n)?;
    let prior = &md.config.priors[level];
    let Some(lc) = &prior.labels else {
        bail!(
            "the level-{level} ({}) prior of {} takes no artist/genre labels",
            Level(level),
            model.display()
        );
    };
    let ids = IdSet::for_model(&model, prior)?;
    let desc = format!(
        "{}, level {level} ({}): {} lists, tables {} artists × {} genres",
        model.display(),
        Level(level),
        match ids.kind {
            IdKind::Custom => format!("custom ({}/labels)", model.display()),
            k => k.name().to_string(),
        },
        lc.n_artists,
        lc.n_genres
    );
    Ok((ids, desc, Some(lc.max_genres)))
}

fn how_names_match(kind: IdKind) -> &'static str {
    match kind {
        IdKind::V2 => "names: lower case, non-[a-z0-9] → _; a genre is split into words, each word one genre id",
        IdKind::V3 => "names: lower case; each genre string is one genre",
        IdKind::Custom => "names: matched ignoring case, accents and punctuation; each genre string is one genre",
        IdKind::Numeric => "no name lists: give labels as numeric ids such as #12",
    }
}

/// What `labels` shows: printed as text or, with `--json`, serialised as it is.
#[derive(serde::Serialize, Debug)]
struct Listing {
    source: String,
    search: Option<String>,
    matching: &'static str,
    /// Genre slots per item (`unknown` is id 0).
    max_genres: Option<usize>,
    fields: Vec<FieldListing>,
}

#[derive(serde::Serialize, Debug)]
struct FieldListing {
    field: &'static str,
    /// What the rows are (all names, matches of the search, or the nearest names).
    what: String,
    /// Numeric-id models: the ids run 0..count.
    id_count: Option<usize>,
    /// A v2 genre search: the words it is split into and each word's id (None = unknown).
    v2_words: Option<Vec<(String, Option<i64>)>>,
    rows: Vec<Row>,
}

#[derive(serde::Serialize, Debug)]
struct Row {
    id: i64,
    name: String,
}

fn listing(args: &Args, ids: &IdSet, desc: &str, max_genres: Option<usize>) -> Listing {
    let fields: &[Field] = if args.artists {
        &[Field::Artist]
    } else if args.genres {
        &[Field::Genre]
    } else {
        &[Field::Genre, Field::Artist]
    };
    let mut out = Vec::new();
    for &field in fields {
        let bound = match field {
            Field::Artist => ids.n_artists,
            Field::Genre => ids.n_genres,
        };
        if ids.kind == IdKind::Numeric {
            out.push(FieldListing {
                field: field.name(),
                what: format!("{}s", field.name()),
                id_count: Some(bound.unwrap_or(0)),
                v2_words: None,
                rows: Vec::new(),
            });
            continue;
        }
        // v2 looks a genre up word by word; show what each word gives.
        let v2_words = match (&args.search, field, ids.kind) {
            (Some(q), Field::Genre, IdKind::V2) => Some(
                ids.genre_keys(q)
                    .into_iter()
                    .map(|w| {
                        let id = ids.genres.get(&w);
                        (w, id)
                    })
                    .collect(),
            ),
            _ => None,
        };
        let (rows, what) = match &args.search {
            Some(q) => {
                let hits = ids.search(field, q);
                if hits.is_empty() {
                    (
                        ids.suggest(field, q, 10),
                        format!(
                            "no {} contains `{q}`; nearest {}s",
                            field.name(),
                            field.name()
                        ),
                    )
                } else {
                    (hits, format!("{}s matching `{q}`", field.name()))
                }
            }
            None => (
                ids.table(field).entries.clone(),
                format!("{}s", field.name()),
            ),
        };
        out.push(FieldListing {
            field: field.name(),
            what,
            id_count: None,
            v2_words,
            rows: rows
                .into_iter()
                .map(|(name, id)| Row {
                    id,
                    name: if name.is_empty() {
                        "(empty name)".to_string()
                    } else {
                        display_name(&name)
                    },
                })
                .collect(),
        });
    }
    Listing {
        source: desc.to_string(),
        search: args.search.clone(),
        matching: how_names_match(ids.kind),
        max_genres,
        fields: out,
    }
}

fn render(l: &Listing) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}", l.source);
    let _ = writeln!(out, "# {}", l.matching);
    if let Some(g) = l.max_genres {
        let _ = writeln!(out, "# genre slots per item: {g}; `unknown` or #0 is id 0");
    }
    for f in &l.fields {
        if let Some(n) = f.id_count {
            if n > 0 {
                let _ = writeln!(out, "# {}s: ids #0 … #{}", f.field, n - 1);
            } else {
                let _ = writeln!(out, "# {}s: none", f.field);
            }
            continue;
        }
        if let Some(words) = &f.v2_words {
            let shown: Vec<String> = words
                .iter()
                .map(|(w, id)| match id {
                    Some(id) => format!("{w}={id}"),
                    None => format!("{w}=unknown"),
                })
                .collect();
            let q = l.search.as_deref().unwrap_or("");
            let _ = writeln!(
                out,
                "# as a v2 genre, `{q}` is the bag of words: {}",
                shown.join(", ")
            );
        }
        let _ = writeln!(out, "# {}: {} (id\tname)", f.what, f.rows.len());
        for r in &f.rows {
            let _ = writeln!(out, "{}\t{}", r.id, r.name);
        }
    }
    out
}

pub fn run(args: Args) -> Result<()> {
    let (ids, desc, max_genres) = resolve(&args)?;
    let l = listing(&args, &ids, &desc, max_genres);
    let text = if args.json {
        serde_json::to_string_pretty(&l)? + "\n"
    } else {
        render(&l)
    };
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth reporting.
    match stdout.write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to stdout"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(set: &str, search: Option<&str>, artists: bool, genres: bool) -> Args {
        Args {
            model: None,
            level: "top".into(),
            set: Some(set.into()),
            search: search.map(str::to_string),
            artists,
            genres,
            json: false,
        }
    }

    #[test]
    fn search_both_official_lists() {
        for (set, want) in [("v2", "9\tjazz"), ("v3", "295\tjazz fusion")] {
            let a = args(set, Some("jazz"), false, true);
            let (ids, desc, g) = resolve(&a).unwrap();
            let text = render(&listing(&a, &ids, &desc, g));
            assert!(text.lines().any(|l| l == want), "{set}: {text}");
            assert!(!text.contains("# artists"), "{text}");
        }
        // The hidden U+200E is shown.
        let a = args("v3", Some("jazz fusion"), false, true);
        let (ids, desc, g) = resolve(&a).unwrap();
        assert!(render(&listing(&a, &ids, &desc, g)).contains("107\tjazz fusion<U+200E>"));
    }

    #[test]
    fn full_listing_has_every_name() {
        let a = args("v2", None, true, false);
        let (ids, desc, g) = resolve(&a).unwrap();
        let text = render(&listing(&a, &ids, &desc, g));
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 4111);
        assert!(text.contains("0\t(empty name)"));
    }

    #[test]
    fn json_has_the_same_rows() {
        let a = args("v2", Some("jazz"), false, true);
        let (ids, desc, g) = resolve(&a).unwrap();
        let l = listing(&a, &ids, &desc, g);
        let v: serde_json::Value = serde_json::to_value(&l).unwrap();
        assert_eq!(v["max_genres"], 5);
        assert_eq!(v["search"], "jazz");
        let f = &v["fields"][0];
        assert_eq!(f["field"], "genre");
        assert_eq!(f["v2_words"][0], serde_json::json!(["jazz", 9]));
        assert!(f["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == 9 && r["name"] == "jazz"));
        // Every text row is a JSON row.
        let text = render(&l);
        let n_text = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(n_text, f["rows"].as_array().unwrap().len());
    }

    #[test]
    fn levels_parse() {
        assert_eq!(parse_level("top", 3).unwrap(), 2);
        assert_eq!(parse_level("Bottom", 3).unwrap(), 0);
        assert_eq!(parse_level("1", 3).unwrap(), 1);
        assert!(parse_level("3", 3).is_err());
        assert!(parse_level("high", 3).is_err());
    }
}
