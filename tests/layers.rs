//! The crate's modules import in the order of the data flow (docs/DESIGN.md, "Module graph"):
//! a module may use only modules listed before it in [`LAYERS`], and the files inside a folder
//! module form no import cycle except the few in [`ALLOWED_CYCLES`], each with its reason.
//! Test modules (`#[cfg(test)]` to the end of a file) and comments are not counted: tests may
//! reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules, lowest first. The binary's `cli` sits above all of them.
const LAYERS: &[&str] = &[
    // Foundations: no model knowledge. `error` is the library's error type, which every layer
    // may raise.
    "error",
    "util",
    "level",
    "config",
    "spectral",
    "dsp",
    "ops",
    // Inputs: audio files, label lists, the corpus on disk, checkpoint files.
    "audio",
    "labels",
    "dataset",
    "checkpoint",
    // The models, in the data flow's order, then the one loader that builds them from a
    // model directory (with the memory guard it consults).
    "vqvae",
    "prior",
    "guard",
    "model",
    // Using the models: sampling, then the study built on it.
    "sample",
    "study",
    // The library in a few calls (`Jukebox`), for programs and the Python package.
    "facade",
    // The web app: runs the CLI for its jobs and reads run and study directories.
    "serve",
    // Making models, then the tools that measure them (not on the product's data path).
    "train",
    "drums",
    "quality",
    "parity",
    "bench",
];

/// Folder-internal import cycles that are kept, as (folder, a, b).
const ALLOWED_CYCLES: &[(&str, &str, &str)] = &[
    // Name lookup reports unknown names with near matches from `search`, and the search runs
    // over the id tables `ids` defines: one concept split in two files for length.
    ("labels", "ids", "search"),
    // The transformer reads and writes the KV cache, and the cache is sized per layer from the
    // transformer's geometry.
    ("prior", "cache", "transformer"),
    // `glance` is the report's summary section, kept in its own file for length; it reads the
    // report's data and the report places it.
    ("study", "glance", "report"),
    // A stored item carries its measured features, and the metrics are computed from stored
    // items.
    ("study", "metrics", "store"),
];

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without comments and without its trailing test module.
fn code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        out.push_str(line.split("//").next().unwrap());
        out.push('\n');
    }
    out
}

fn ident_at(s: &str) -> Option<&str> {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    (end > 0).then(|| &s[..end])
}

/// First path segments after every `prefix` (`crate::x`, `use crate::{x, y::z}`).
fn segments_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let after = &rest[i + prefix.len()..];
        let word_start = i == 0 || {
            let c = rest[..i].chars().last().unwrap();
            !(c.is_ascii_alphanumeric() || c == '_' || c == ':')
        };
        if word_start {
            if let Some(list) = after.strip_prefix('{') {
                // Names at depth 0 of the brace list.
                let mut depth = 0usize;
                let mut at_name = true;
                for (j, c) in list.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => at_name = true,
                        c if at_name && depth == 0 && !c.is_whitespace() => {
                            if let Some(id) = ident_at(&list[j..]) {
                                out.insert(id.to_string());
                            }
                            at_name = false;
                        }
                        _ => {}
                    }
                }
            } else if let Some(id) = ident_at(after) {
                out.insert(id.to_string());
            }
        }
        rest = after;
    }
    out
}

struct SrcFile {
    rel: Vec<String>,
    code: String,
}

fn sources() -> Vec<SrcFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rs_files(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(&root).unwrap().with_extension("");
            SrcFile {
                rel: rel
                    .iter()
                    .map(|s| s.to_string_lossy().into_owned())
                    .collect(),
                code: code(&std::fs::read_to_string(&p).unwrap()),
            }
        })
        .collect()
}

#[test]
fn every_module_is_placed_in_a_layer() {
    let mut tops = BTreeSet::new();
    for f in sources() {
        let top = &f.rel[0];
        if !["lib", "main", "cli"].contains(&top.as_str()) {
            tops.insert(top.clone());
        }
    }
    let listed: BTreeSet<String> = LAYERS.iter().map(|s| s.to_string()).collect();
    assert_eq!(tops, listed, "src/ and LAYERS disagree");
}

#[test]
fn imports_follow_the_layers() {
    let rank: BTreeMap<&str, usize> = LAYERS.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let mut upward = vec![];
    for f in sources() {
        let Some(&own) = rank.get(f.rel[0].as_str()) else {
            continue; // lib.rs, main.rs and the CLI may use everything
        };
        for used in segments_after(&f.code, "crate::") {
            if let Some(&r) = rank.get(used.as_str()) {
                if r > own {
                    upward.push(format!("src/{}.rs uses crate::{used}", f.rel.join("/")));
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports against the data flow (a module may use only those before it in LAYERS):\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_import_cycles_inside_a_folder() {
    let srcs = sources();
    // folder -> file -> sibling files it uses
    let mut graph: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let siblings = |folder: &str| -> BTreeSet<String> {
        srcs.iter()
            .filter(|s| s.rel.len() >= 2 && s.rel[0] == folder)
            .map(|s| s.rel[1].clone())
            .collect()
    };
    for f in srcs.iter().filter(|f| f.rel.len() == 2) {
        let (folder, me) = (&f.rel[0], &f.rel[1]);
        let sib = siblings(folder);
        let mut used = segments_after(&f.code, "super::");
        used.extend(segments_after(&f.code, &format!("crate::{folder}::")));
        let edges: BTreeSet<String> = used
            .into_iter()
            .filter(|u| u != me && sib.contains(u))
            .filter(|u| {
                !ALLOWED_CYCLES
                    .iter()
                    .any(|&(d, a, b)| d == folder && ((a == me && b == u) || (b == me && a == u)))
            })
            .collect();
        graph
            .entry(folder.clone())
            .or_default()
            .insert(me.clone(), edges);
    }
    let mut cycles = vec![];
    for (folder, g) in &graph {
        // Depth-first search from every file; a back edge closes a cycle.
        fn dfs(
            g: &BTreeMap<String, BTreeSet<String>>,
            n: &str,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
            found: &mut Vec<String>,
        ) {
            if let Some(i) = path.iter().position(|p| p == n) {
                found.push(format!("{} -> {n}", path[i..].join(" -> ")));
                return;
            }
            if !done.insert(n.to_string()) {
                return;
            }
            path.push(n.to_string());
            for m in g.get(n).into_iter().flatten() {
                dfs(g, m, path, done, found);
            }
            path.pop();
        }
        let mut done = BTreeSet::new();
        let mut found = vec![];
        for n in g.keys() {
            dfs(g, n, &mut vec![], &mut done, &mut found);
        }
        cycles.extend(found.into_iter().map(|c| format!("src/{folder}/: {c}")));
    }
    assert!(
        cycles.is_empty(),
        "import cycles inside folders (break them, or add one to ALLOWED_CYCLES with its reason):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_checker_sees_imports() {
    // A checker that parses nothing passes everything: pin what it reads.
    let c = code("use crate::{prior::Prior, vqvae::{self, VqVae}};\nuse super::store::X; // crate::bench\nfn f() { crate::guard::check(); }\n#[cfg(test)]\nmod tests { use crate::bench; }\n");
    let got = segments_after(&c, "crate::");
    assert_eq!(
        got,
        ["guard", "prior", "vqvae"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    assert_eq!(
        segments_after(&c, "super::"),
        ["store".to_string()].into_iter().collect()
    );
}
