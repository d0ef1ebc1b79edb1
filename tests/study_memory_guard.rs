//! The memory guard on `jukebox study` (docs/RELIABILITY.md), on the bundled model: a study whose
//! batch groups would not fit (prior weights + KV cache) is refused before anything is written,
//! with a message that says which `--max-batch` fits; that `--max-batch` then runs under the
//! same limit. A study resumed under a limit too small for its groups is refused without touching
//! the groups already finished, and resumes from them once there is room.
//!
//! `JUKEBOX_MEMORY_LIMIT` stands in for the machine's available memory (src/guard.rs).

use jukebox::checkpoint::{Component, ModelDir};
use jukebox::guard;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_jukebox");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A limit under which the VQ-VAE and the top prior load, and one item's KV cache fits beside
/// the prior but two do not (the CI plan's groups have two cells).
fn one_item_limit() -> u64 {
    let md = ModelDir::open(&root().join("models/default")).unwrap();
    let top = md.config.top_level();
    let weights = guard::component_bytes(&md, Component::Prior(top), 4).unwrap();
    let per_item = guard::kv_cache_bytes_per_item_for(&md.config.priors[top]).unwrap();
    let vq = guard::component_bytes(&md, Component::Vqvae, 4).unwrap();
    let limit = (weights + per_item + per_item / 2).max(vq);
    assert!(
        limit < weights + 2 * per_item,
        "the bundled model no longer suits this test: VQ-VAE {vq} B, top prior {weights} B, \
         {per_item} B of KV cache per item"
    );
    limit
}

fn study(dir: &Path, args: &[&str], limit: Option<u64>) -> Output {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .arg("study")
        .args(args)
        .env_remove("JUKEBOX_MEMORY_LIMIT")
        .env("RUST_BACKTRACE", "1")
        .env("CANDLE_NUM_THREADS", "1");
    if let Some(l) = limit {
        c.env("JUKEBOX_MEMORY_LIMIT", l.to_string());
    }
    c.output().unwrap()
}

fn new_study_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<String> {
    let r = root();
    let mut v: Vec<String> = vec![
        "--model".into(),
        r.join("models/default").display().to_string(),
        "--plan".into(),
        r.join("tests/plans/tiny.toml").display().to_string(),
        "--prompt".into(),
        r.join("data/prompts/amen.wav").display().to_string(),
        "--prompt-bpm".into(),
        "137".into(),
        "-o".into(),
        out.into(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The refusal: exit status 1, one `error:` message with the numbers, no panic or backtrace.
fn assert_refused(o: &Output, suggest: &str) {
    let (out, err) = text(o);
    assert_eq!(o.status.code(), Some(1), "stdout:\n{out}\nstderr:\n{err}");
    for want in [
        "error:",
        "not enough memory for sampling level 2",
        "in batches of 2",
        "the limit set by JUKEBOX_MEMORY_LIMIT",
        suggest,
    ] {
        assert!(err.contains(want), "`{want}` missing from:\n{err}");
    }
    for bad in ["panicked", "stack backtrace", "RUST_BACKTRACE"] {
        assert!(!err.contains(bad), "`{bad}` in:\n{err}");
    }
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut m = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                m.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    m
}

#[test]
fn an_oversized_study_is_refused_before_writing_and_its_hint_runs() {
    let t = tempfile::tempdir().unwrap();
    let limit = one_item_limit();
    let args = new_study_args("s", &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = study(t.path(), &args, Some(limit));
    assert_refused(&o, "1 item(s) per batch would fit");
    let (_, err) = text(&o);
    assert!(err.contains("pass --max-batch 1"), "{err}");
    assert!(
        !t.path().join("s").exists(),
        "the refused study wrote its folder"
    );

    // The suggestion works under the same limit, into the same folder.
    let args = new_study_args("s", &["--max-batch", "1"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = study(t.path(), &args, Some(limit));
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("study: 4 groups run, 0 already done"), "{err}");
    let metrics = std::fs::read_to_string(t.path().join("s/metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 5, "{metrics}");
    assert!(t.path().join("s/index.html").exists());
}

#[test]
fn a_resumed_study_too_big_for_memory_keeps_its_finished_groups() {
    let t = tempfile::tempdir().unwrap();
    // Half the groups (one of two) finish, as a shard, with memory to spare.
    let args = new_study_args("s", &["--shard", "0/2"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = study(t.path(), &args, None);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let before = snapshot(&t.path().join("s"));
    assert!(
        before.keys().any(|p| p.starts_with("shards/0-of-2")),
        "{:?}",
        before.keys().collect::<Vec<_>>()
    );

    // Resuming the whole study with too little memory for group 1 is refused before it runs...
    let o = study(t.path(), &["--resume", "s"], Some(one_item_limit()));
    assert_refused(&o, "pass --max-batch 1");
    // ... and every file the first run wrote is still there, unchanged.
    let after = snapshot(&t.path().join("s"));
    for (p, bytes) in &before {
        assert!(
            after.get(p) == Some(bytes),
            "{} was changed or lost",
            p.display()
        );
    }
    assert!(!t.path().join("s/metrics.csv").exists());

    // With room again, the resume runs only the missing group and reports.
    let o = study(t.path(), &["--resume", "s"], None);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("study: 1 groups run, 1 already done"), "{err}");
    let metrics = std::fs::read_to_string(t.path().join("s/metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 5, "{metrics}");
}
