//! The study report in headless Chromium: every image loads and every `<audio>` element's file
//! exists and decodes (the page's own `?selfcheck` script reports it into `#selfcheck`).
//! Skips with a printed reason when Chromium is missing and `CI` is unset; fails under `CI=true`.

#[path = "study_support/mod.rs"]
mod support;

#[path = "chromium_support/mod.rs"]
mod chromium_support;
use chromium_support::chromium_or_skip;
use jukebox::study::{self, FakeRunner, RunOptions};
use std::path::Path;
use std::process::Command;

fn dump_dom(chromium: &str, page: &Path, profile: &Path) -> String {
    let url = format!("file://{}?selfcheck", page.display());
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--mute-audio",
            "--virtual-time-budget=30000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("cannot start chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn selfcheck(dom: &str) -> (usize, usize, usize, String) {
    let i = dom.find("SELFCHECK").unwrap_or_else(|| {
        panic!(
            "no SELFCHECK marker in the page:\n{}",
            &dom[..dom.len().min(2000)]
        )
    });
    let line = &dom[i..i + dom[i..].find('<').unwrap()];
    let num = |key: &str| -> usize {
        let j = line.find(key).unwrap() + key.len();
        line[j..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (num("images="), num("audio="), num("bad="), line.to_string())
}

#[test]
fn report_in_headless_chromium() {
    let Some(chromium) = chromium_or_skip("report_in_headless_chromium") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let prompt_path = support::write_prompt(tmp.path());
    let plan = support::plan(&prompt_path);
    let prompt = study::load_prompt(&prompt_path, &plan).unwrap();
    let root = tmp.path().join("study");
    study::run_study(
        &plan,
        &root,
        &prompt,
        &mut FakeRunner::new(),
        &RunOptions::default(),
    )
    .unwrap();

    let dom = dump_dom(
        chromium,
        &root.join("index.html"),
        &tmp.path().join("profile"),
    );
    let (images, audio, bad, line) = selfcheck(&dom);
    // Prompt + reconstruction + 10 cells × 2 seeds, one level each.
    assert_eq!((images, audio, bad), (22, 22, 0), "{line}");
    // The claims section and the plot rendered.
    assert!(dom.contains("The claims, measured") && dom.contains("<svg"));

    // A broken link is caught: remove one sample's audio and one spectrogram.
    std::fs::remove_file(root.join(study::store::Layout::rel_wav(&plan.cells[0].id, 0, 2)))
        .unwrap();
    std::fs::remove_file(root.join(study::store::Layout::rel_png(&plan.cells[1].id, 1, 2)))
        .unwrap();
    let dom = dump_dom(
        chromium,
        &root.join("index.html"),
        &tmp.path().join("profile2"),
    );
    let (_, _, bad, line) = selfcheck(&dom);
    assert_eq!(bad, 2, "{line}");
    assert!(line.contains(&plan.cells[0].id), "{line}");
}
