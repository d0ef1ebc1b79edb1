//! `jukebox parity` on the reference fixtures: every prior check must pass (none skipped).

use jukebox::parity::{self, Report, Status};
use std::path::Path;

fn run_and_check(folder: &str, prefix: &str, min_checks: usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reference")
        .join(folder);
    let mut r = Report::new(false);
    parity::run(&dir, &mut r).unwrap();
    let mine: Vec<_> = r
        .checks
        .iter()
        .filter(|c| c.name.starts_with(prefix))
        .collect();
    for c in &mine {
        println!("{}", parity::format_check(c));
    }
    assert!(
        mine.len() >= min_checks,
        "only {} {prefix} checks ran",
        mine.len()
    );
    let bad: Vec<_> = mine.iter().filter(|c| c.status != Status::Pass).collect();
    assert!(bad.is_empty(), "failed or skipped: {:#?}", bad);
}

#[test]
fn hf_prior_fixtures_pass() {
    run_and_check("fixtures", "hf_prior/", 33);
}

#[test]
fn lyrics_prior_models_pass() {
    run_and_check("fixtures-lyrics", "lyrics_models/", 50);
}
