//! `jukebox labels` end to end: the binary lists and searches both official lists.

use std::process::Command;

fn jukebox(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_jukebox"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn search_v2_and_v3() {
    let (ok, out, err) = jukebox(&[
        "labels",
        "--set",
        "v2",
        "--search",
        "Céline Dion",
        "--artists",
    ]);
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l == "557\tc_line_dion"), "{out}");
    let (ok, out, err) = jukebox(&["labels", "--set", "v3", "--search", "céline", "--artists"]);
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l == "5220\tcéline dion"), "{out}");
    let (ok, out, _) = jukebox(&["labels", "--set", "v3", "--genres"]);
    assert!(ok);
    assert_eq!(out.lines().filter(|l| !l.starts_with('#')).count(), 604);
}

#[test]
fn model_without_name_lists_and_bad_flags() {
    let model = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/reference/fixtures/model"
    );
    let (ok, out, err) = jukebox(&["labels", "--model", model, "--level", "top"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("#0 … #19") && out.contains("#0 … #11"),
        "{out}"
    );
    let (ok, _, err) = jukebox(&["labels", "--model", model, "--level", "5"]);
    assert!(!ok);
    assert!(err.contains("3 levels"), "{err}");
    let (ok, _, err) = jukebox(&["labels", "--model", "/nonexistent/model"]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/model"), "{err}");
}
