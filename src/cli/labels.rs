//! `jukebox labels`: list or search the artist and genre names a model (or an official list) accepts.

use anyhow::{bail, Context, Result};
use jukebox::checkpoint::ModelDir;
use jukebox::labels::{display_name, Field, IdKind, IdSet};
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
}

fn parse_level(s: &str, n_levels: usize) -> Result<usize> {
    let l = match s.trim().to_ascii_lowercase().as_str() {
        "top" => n_levels.saturating_sub(1),
        "middle" => 1,
        "bottom" => 0,
        t => t.parse::<usize>().map_err(|_| {
            anyhow::anyhow!("--level `{s}` is not a level: use 0, 1, 2 or bottom, middle, top")
        })?,
    };
    if l >= n_levels {
        bail!(
            "--level {s}: this model has {n_levels} levels (0..{})",
            n_levels.saturating_sub(1)
        );
    }
    Ok(l)
}

fn level_name(l: usize, n: usize) -> &'static str {
    if l + 1 == n {
        "top"
    } else if l == 0 {
        "bottom"
    } else {
        "middle"
    }
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
            level_name(level, n),
            model.display()
        );
    };
    let ids = IdSet::for_model(&model, prior)?;
    let desc = format!(
        "{}, level {level} ({}): {} lists, tables {} artists × {} genres",
        model.display(),
        level_name(level, n),
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

fn render(args: &Args, ids: &IdSet, desc: &str, max_genres: Option<usize>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {desc}");
    let _ = writeln!(out, "# {}", how_names_match(ids.kind));
    if let Some(g) = max_genres {
        let _ = writeln!(out, "# genre slots per item: {g}; `unknown` or #0 is id 0");
    }
    let fields: &[Field] = if args.artists {
        &[Field::Artist]
    } else if args.genres {
        &[Field::Genre]
    } else {
        &[Field::Genre, Field::Artist]
    };
    for &field in fields {
        let bound = match field {
            Field::Artist => ids.n_artists,
            Field::Genre => ids.n_genres,
        };
        if ids.kind == IdKind::Numeric {
            match bound {
                Some(n) if n > 0 => {
                    let _ = writeln!(out, "# {}s: ids #0 … #{}", field.name(), n - 1);
                }
                _ => {
                    let _ = writeln!(out, "# {}s: none", field.name());
                }
            }
            continue;
        }
        if let (Some(q), Field::Genre, IdKind::V2) = (&args.search, field, ids.kind) {
            // v2 looks a genre up word by word; show what each word gives.
            let words: Vec<String> = ids
                .genre_keys(q)
                .into_iter()
                .map(|w| match ids.genres.get(&w) {
                    Some(id) => format!("{w}={id}"),
                    None => format!("{w}=unknown"),
                })
                .collect();
            let _ = writeln!(
                out,
                "# as a v2 genre, `{q}` is the bag of words: {}",
                words.join(", ")
            );
        }
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
        let _ = writeln!(out, "# {what}: {} (id\tname)", rows.len());
        for (name, id) in rows {
            let shown = if name.is_empty() {
                "(empty name)".to_string()
            } else {
                display_name(&name)
            };
            let _ = writeln!(out, "{id}\t{shown}");
        }
    }
    out
}

pub fn run(args: Args) -> Result<()> {
    let (ids, desc, max_genres) = resolve(&args)?;
    let text = render(&args, &ids, &desc, max_genres);
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
        }
    }

    #[test]
    fn search_both_official_lists() {
        for (set, want) in [("v2", "9\tjazz"), ("v3", "295\tjazz fusion")] {
            let a = args(set, Some("jazz"), false, true);
            let (ids, desc, g) = resolve(&a).unwrap();
            let text = render(&a, &ids, &desc, g);
            assert!(text.lines().any(|l| l == want), "{set}: {text}");
            assert!(!text.contains("# artists"), "{text}");
        }
        // The hidden U+200E is shown.
        let a = args("v3", Some("jazz fusion"), false, true);
        let (ids, desc, g) = resolve(&a).unwrap();
        assert!(render(&a, &ids, &desc, g).contains("107\tjazz fusion<U+200E>"));
    }

    #[test]
    fn full_listing_has_every_name() {
        let a = args("v2", None, true, false);
        let (ids, desc, g) = resolve(&a).unwrap();
        let text = render(&a, &ids, &desc, g);
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 4111);
        assert!(text.contains("0\t(empty name)"));
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
