//! The study report rendered from `src/study/report.html.j2` says what the hand-written renderer
//! it replaced said: a fake-runner study's `index.html`, with whitespace between tags collapsed,
//! equals `tests/fixtures/report/fake_study.html`, which that renderer wrote (commit 950ec17).
//! Any change to the report's text, numbers, links or escaping fails here; regenerate the fixture
//! on purpose with `UPDATE_REPORT_FIXTURE=1 cargo test --release --test study_report_template`
//! (`REPORT_FIXTURE_BIN=path/to/jukebox` renders it with another build, as the first fixture was).

#[path = "study_support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;

/// Whitespace runs become one space and whitespace between two tags goes: the template lays the
/// page out on lines for reading, which HTML does not render.
fn normalise(html: &str) -> String {
    let collapsed = html.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.replace("> <", "><")
}

/// A folder name that needs escaping: the model and prompt paths are printed in the report.
const ODD: &str = "lab & \"co\" <1>'s";

fn fake_study(dir: &Path) -> String {
    let model = support::label_model(&dir.join(ODD), &["rock", "jazz"], &["ann", "bob"]);
    let prompt = support::write_prompt(&dir.join(ODD));
    // The fixture was written by the previous renderer's binary, named by REPORT_FIXTURE_BIN.
    let bin = std::env::var("REPORT_FIXTURE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_jukebox").to_string());
    let o = Command::new(bin)
        .args(["study", "--fake-runner", "--quiet", "--model"])
        .arg(&model)
        .arg("--prompt")
        .arg(&prompt)
        .args(["--genre", "rock", "--genre", "jazz"])
        .args([
            "--artist", "ann", "--artist", "bob", "--seeds", "2", "-o", "study",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(dir.join("study/index.html")).unwrap();
    normalise(&html).replace(&dir.display().to_string(), "TMP")
}

#[test]
fn report_says_what_the_previous_renderer_said() {
    let tmp = tempfile::tempdir().unwrap();
    let got = fake_study(tmp.path());
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report/fake_study.html");
    if std::env::var_os("UPDATE_REPORT_FIXTURE").is_some() {
        jukebox::util::atomic_write(&fixture, got.as_bytes()).unwrap();
    }
    let want = std::fs::read_to_string(&fixture).unwrap();
    if got != want {
        let at = got
            .chars()
            .zip(want.chars())
            .take_while(|(a, b)| a == b)
            .count();
        let around =
            |s: &str| -> String { s.chars().skip(at.saturating_sub(200)).take(400).collect() };
        panic!(
            "the report changed at character {at}:\n got: …{}…\nwant: …{}…",
            around(&got),
            around(&want)
        );
    }
    // The engine escaped the paths, once.
    assert!(got.contains("TMP/lab &amp; &quot;co&quot; &lt;1&gt;&#39;s/model"));
    assert!(!got.contains(ODD));
    assert!(!got.contains("&amp;amp;") && !got.contains("&amp;lt;"));
}
