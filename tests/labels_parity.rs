//! `jukebox::parity::run` on the timing and lyrics fixture folders: every label check passes.

use jukebox::parity::{self, FolderKind, Report, Status};
use std::path::PathBuf;

fn fixtures(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reference")
        .join(sub)
}

fn assert_all_pass(report: &Report, prefix: &str, min_checks: usize) {
    let mine: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.name.starts_with(prefix))
        .collect();
    for c in &mine {
        assert_eq!(c.status, Status::Pass, "{}", parity::format_check(c));
    }
    assert!(
        mine.len() >= min_checks,
        "only {} `{prefix}` checks ran",
        mine.len()
    );
}

#[test]
fn timing_folder_matches_official_bins() {
    let mut report = Report::new(false);
    let kind = parity::run(&fixtures("timing"), &mut report).unwrap();
    assert_eq!(kind, FolderKind::Timing);
    // 3 presets × (total, absolute, relative).
    assert_all_pass(&report, "timing/", 9);
    assert_eq!(report.n_failed(true), 0, "{}", report.summary());
}

#[test]
fn lyrics_folder_label_half_matches() {
    let mut report = Report::new(false);
    let kind = parity::run(&fixtures("fixtures-lyrics"), &mut report).unwrap();
    assert_eq!(kind, FolderKind::LyricsFixtures);
    // vocab, lyric_window, text ×3, artist_genre.
    assert_all_pass(&report, "lyrics_cases/", 6);
    // Per model: base y and 5 parts, y, window_y, 3 timing checks; lyric models add full tokens
    // (2 rows) and 2 index checks.
    assert_all_pass(&report, "labels/lyrics_1b/", 15);
    assert_all_pass(&report, "labels/lyrics_5b/", 15);
    assert_all_pass(&report, "labels/dense/", 11);
}
