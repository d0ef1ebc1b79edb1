//! The study end to end with the fake runner: plan, run, resume after a crash, shards + merge,
//! metrics and claims on signals with known differences, and the report's links.

#[path = "study_support/mod.rs"]
mod support;

use jukebox::study::{self, FakeRunner, RunOptions};
use support::*;

fn run_full(root: &std::path::Path, prompt_path: &std::path::Path) -> study::RunSummary {
    let plan = plan(prompt_path);
    let prompt = study::load_prompt(prompt_path, &plan).unwrap();
    study::run_study(
        &plan,
        root,
        &prompt,
        &mut FakeRunner::new(),
        &RunOptions::default(),
    )
    .unwrap()
}

#[test]
fn resume_and_shards_give_identical_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let prompt_path = write_prompt(tmp.path());
    let plan = plan(&prompt_path);
    let prompt = study::load_prompt(&prompt_path, &plan).unwrap();
    // 5 primed + 5 ancestral cells, chunks of 3 → 2 groups per mode and seed.
    assert_eq!(plan.cells.len(), 10);
    assert_eq!(plan.groups.len(), 8);

    // Reference: one uninterrupted run.
    let a = tmp.path().join("a");
    let s = run_full(&a, &prompt_path);
    assert_eq!((s.groups_run, s.groups_skipped, s.reported), (8, 0, true));
    let ref_snap = snapshot(&a);
    for f in [
        "plan.toml",
        "metrics.csv",
        "claims.csv",
        "codes_hist.csv",
        "separability.csv",
        "index.html",
    ] {
        assert!(ref_snap.contains_key(f), "missing {f}");
    }
    // A rerun recomputes nothing and changes nothing.
    let mut runner = FakeRunner::new();
    let s = study::run_study(&plan, &a, &prompt, &mut runner, &RunOptions::default()).unwrap();
    assert_eq!((s.groups_run, s.groups_skipped), (0, 8));
    assert_eq!(runner.groups_run, 0);
    assert_same(&ref_snap, &snapshot(&a), "rerun");

    // Crash after 3 groups, with debris of a half-written group (as after kill -9), then resume.
    let b = tmp.path().join("b");
    let mut crashing = FakeRunner {
        crash_after: Some(3),
        ..Default::default()
    };
    let err =
        study::run_study(&plan, &b, &prompt, &mut crashing, &RunOptions::default()).unwrap_err();
    assert!(
        format!("{err:#}").contains("rerun the same command to resume"),
        "{err:#}"
    );
    let g3 = &plan.groups[3];
    let sample = plan.seed_index(g3.seed).unwrap();
    let debris = b
        .join("cells")
        .join(&g3.cells[0])
        .join(format!("sample_{sample}.json"));
    jukebox::util::atomic_write(&debris, b"{\"half\": ").unwrap();
    assert!(
        !b.join("metrics.csv").exists(),
        "report written before the study was complete"
    );
    let mut resumed = FakeRunner::new();
    let s = study::run_study(&plan, &b, &prompt, &mut resumed, &RunOptions::default()).unwrap();
    assert_eq!((s.groups_run, s.groups_skipped, s.reported), (5, 3, true));
    assert_same(&ref_snap, &snapshot(&b), "resumed");

    // Three shards into one study directory; merge refuses while shard 2 is missing.
    let c = tmp.path().join("c");
    for i in [0, 1] {
        let s = study::run_study(
            &plan,
            &c,
            &prompt,
            &mut FakeRunner::new(),
            &RunOptions {
                shard: Some((i, 3)),
                verbose: false,
            },
        )
        .unwrap();
        assert!(!s.reported);
        assert_eq!(s.groups_run, plan.shard_groups(Some((i, 3))).len());
    }
    let err = study::merge(&c).unwrap_err().to_string();
    assert!(
        err.contains("--shard 2/3") && !err.contains("--shard 0/3"),
        "{err}"
    );
    assert!(err.contains("groups 2, 5"), "{err}");
    let s = study::run_study(
        &plan,
        &c,
        &prompt,
        &mut FakeRunner::new(),
        &RunOptions {
            shard: Some((2, 3)),
            verbose: false,
        },
    )
    .unwrap();
    assert_eq!(s.groups_run, 2);
    study::merge(&c).unwrap();
    assert_same(&ref_snap, &snapshot(&c), "sharded + merged");
}

#[test]
fn metrics_and_claims_see_the_known_effects() {
    let tmp = tempfile::tempdir().unwrap();
    let prompt_path = write_prompt(tmp.path());
    let root = tmp.path().join("s");
    run_full(&root, &prompt_path);

    let rows = read_csv(&root.join("metrics.csv"));
    assert_eq!(rows.len(), 20, "10 cells × 2 seeds × 1 level");
    let prompt_tempo: f64 = rows[0]["prompt_tempo_bpm"].parse().unwrap();
    assert!(
        (prompt_tempo - BPM).abs() < 3.0,
        "prompt tempo {prompt_tempo}"
    );
    for r in &rows {
        let num = |k: &str| {
            r[k].parse::<f64>()
                .unwrap_or_else(|_| panic!("{k} = {}", r[k]))
        };
        let bands: f64 = (0..6).map(|i| num(&format!("band_{i}"))).sum();
        assert!((bands - 1.0).abs() < 1e-5, "band shares sum to {bands}");
        assert!(num("centroid_hz") > 50.0 && num("rms_db") < 0.0);
        if r["mode"] == "primed" {
            // The fake continues the prompt's loop under a tone: tempo and pattern are kept.
            assert!(
                num("tempo_err_bpm") < 4.0,
                "{} tempo err {}",
                r["cell"],
                r["tempo_err_bpm"]
            );
            assert!(
                num("onset_corr") > 0.5,
                "{} onset corr {}",
                r["cell"],
                r["onset_corr"]
            );
        }
        assert_eq!(
            r["generated_tokens"],
            (plan(&prompt_path).total_samples / 128 - plan(&prompt_path).prompt_samples / 128)
                .to_string()
        );
    }
    let claims = read_csv(&root.join("claims.csv"));
    let get = |claim: &str, metric: &str| {
        claims
            .iter()
            .find(|c| c["claim"] == claim && c["metric"] == metric)
            .unwrap_or_else(|| panic!("no claim {claim} {metric}"))
    };
    for (claim, metric) in [
        ("1", "tempo_err_bpm"),
        ("1", "onset_corr"),
        ("1", "bits_own"),
        ("2", "entropy_filtered_bits"),
        ("2", "seed_spread_spectral"),
        ("3", "spectral_distance"),
        ("3", "codes_distance"),
    ] {
        let c = get(claim, metric);
        assert_eq!(c["verdict"], "yes", "claim {claim} {metric}: {c:?}");
        assert!(!c["cells"].is_empty());
    }
    // Paired primed/ancestral over 5 label sets × 2 seeds: exact sign-flip p = 2 / 2^10.
    let c = get("1", "bits_own");
    assert_eq!(c["n"], "10");
    assert!(
        (c["p"].parse::<f64>().unwrap() - 2.0 / 1024.0).abs() < 1e-6,
        "{c:?}"
    );
    let d: f64 = c["diff"].parse().unwrap();
    assert!(
        (d - (3.5 - 4.4) * 8.0 / 10.0 - (4.6 - 5.4) * 2.0 / 10.0).abs() < 1e-6,
        "diff {d}"
    );

    // Separability: genre changed the output more than seeds did (cell, genre and artist).
    let sep = read_csv(&root.join("separability.csv"));
    let cell = sep
        .iter()
        .find(|r| r["mode"] == "primed" && r["factor"] == "cell" && r["space"] == "spectral")
        .unwrap();
    let (w, b): (f64, f64) = (
        cell["within"].parse().unwrap(),
        cell["between"].parse().unwrap(),
    );
    assert!(b > 3.0 * w, "between {b} within {w}");
    assert!(cell["p"].parse::<f64>().unwrap() < 0.01);
    assert!(sep.iter().any(|r| r["factor"] == "genre"));
    let hist = std::fs::read_to_string(root.join("codes_hist.csv")).unwrap();
    assert_eq!(hist.lines().count(), 21);
}

#[test]
fn report_links_exist_and_are_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let prompt_path = write_prompt(tmp.path());
    let root = tmp.path().join("s");
    run_full(&root, &prompt_path);
    let html = std::fs::read_to_string(root.join("index.html")).unwrap();
    let mut n_audio = 0;
    let mut n_img = 0;
    for (attr, count) in [("src=\"", &mut n_audio), ("href=\"", &mut n_img)] {
        let mut rest = html.as_str();
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').unwrap();
            let link = &rest[..end];
            assert!(
                !link.contains("://") && !link.starts_with("//"),
                "external link {link}"
            );
            if !link.starts_with('#') {
                assert!(root.join(link).is_file(), "{link} does not exist");
                *count += 1;
            }
        }
    }
    // Prompt + 1 reconstruction, and 20 items × (wav + png).
    assert_eq!(html.matches("<audio ").count(), 22);
    assert_eq!(html.matches("<img ").count(), 22);
    assert!(n_audio >= 44, "{n_audio}");
    for needle in [
        "id=\"claims\"",
        "Control: no labels",
        "Ancestral control",
        "<svg",
        "sortTable",
        "Run parameters",
        "id=\"glance\"",
        "<b>Claim 1</b>",
        "<b>Claim 3</b>",
    ] {
        assert!(html.contains(needle), "report lacks {needle}");
    }
    // Numbers are for people: no six-decimal floats in the HTML (the CSV files keep them).
    if let Some(i) = html.find(".000000") {
        panic!(
            "raw floats in the report: {}",
            &html[i.saturating_sub(200)..i + 20]
        );
    }
    // Every anchor target exists.
    let mut rest = html.as_str();
    while let Some(i) = rest.find("href=\"#") {
        rest = &rest[i + 7..];
        let id = &rest[..rest.find('"').unwrap()];
        assert!(
            html.contains(&format!("id=\"{id}\"")),
            "dangling anchor #{id}"
        );
    }
    // A label ranking beside the study appears after a merge.
    jukebox::util::atomic_write(
        &root.join("label_ranking.csv"),
        b"rank,genre,bits_per_token\n1,rock,3.2\n2,jazz,3.9\n",
    )
    .unwrap();
    study::merge(&root).unwrap();
    let html = std::fs::read_to_string(root.join("index.html")).unwrap();
    assert!(html.contains("<td>rock</td><td>3.20</td>"));
    // A ranking in the format `rank-labels` writes feeds the summary and its warning.
    jukebox::util::atomic_write(
        &root.join("label_ranking.csv"),
        b"rank,kind,id,label,artist,genre,bits_per_token,delta_bits\n\
          1,genre,2,rock,unknown,rock,3.900000,-0.000100\n,none,0,no label,unknown,unknown,3.900100,0.000000\n\
          2,genre,1,jazz,unknown,jazz,3.9002,+0.0001\n",
    )
    .unwrap();
    study::merge(&root).unwrap();
    let html = std::fs::read_to_string(root.join("index.html")).unwrap();
    assert!(
        html.contains("best genre <code>rock</code>"),
        "summary lacks the ranking"
    );
    assert!(
        html.contains("Warning: no label changes"),
        "summary lacks the warning"
    );
    assert!(
        html.contains("<td>3.90</td><td>-0.000100</td>"),
        "ranking cells not humanised"
    );
}

/// The fake runner under another name: what a model runner looks like to the study.
struct AsModel(FakeRunner);

impl study::CellRunner for AsModel {
    fn prepare(
        &mut self,
        plan: &study::Plan,
        prompt: &[f32],
    ) -> anyhow::Result<Vec<study::PromptRecon>> {
        self.0.prepare(plan, prompt)
    }
    fn run_group(
        &mut self,
        plan: &study::Plan,
        group: &study::BatchGroup,
        prompt: &[f32],
        progress: &mut dyn FnMut(&str),
    ) -> anyhow::Result<Vec<study::SampleOutcome>> {
        self.0.run_group(plan, group, prompt, progress)
    }
}

#[test]
fn runner_kinds_are_recorded_and_never_mixed() {
    use study::RunnerKind;
    let tmp = tempfile::tempdir().unwrap();
    let prompt_path = write_prompt(tmp.path());
    let fake_plan = plan(&prompt_path);
    assert_eq!(fake_plan.runner, RunnerKind::Fake);
    let prompt = study::load_prompt(&prompt_path, &fake_plan).unwrap();
    let mut model_plan = fake_plan.clone();
    model_plan.runner = RunnerKind::Model;

    // A plan and a runner of different kinds: refused before anything is written.
    let x = tmp.path().join("x");
    let e = study::run_study(
        &model_plan,
        &x,
        &prompt,
        &mut FakeRunner::new(),
        &RunOptions::default(),
    )
    .unwrap_err();
    assert!(
        format!("{e:#}").contains("made by the model runner but this run uses the fake runner"),
        "{e:#}"
    );
    assert!(!x.exists(), "a refused run wrote files");

    // Item records carry the kind.
    let f = tmp.path().join("f");
    run_full(&f, &prompt_path);
    let items = study::read_items(&f, &fake_plan).unwrap();
    assert!(items.iter().all(|i| i.runner == RunnerKind::Fake));

    // Shard 0 by the fake runner, shard 1 by a "model" runner of a model-kind plan, joined in
    // one folder: merge refuses and names the foreign item.
    let m = tmp.path().join("m");
    let opts = |i| RunOptions {
        shard: Some((i, 2)),
        verbose: false,
    };
    study::run_study(
        &model_plan,
        &m,
        &prompt,
        &mut AsModel(FakeRunner::new()),
        &opts(1),
    )
    .unwrap();
    let s = tmp.path().join("s");
    study::run_study(&fake_plan, &s, &prompt, &mut FakeRunner::new(), &opts(0)).unwrap();
    std::fs::rename(s.join("shards/0-of-2"), m.join("shards/0-of-2")).unwrap();
    let e = study::merge(&m).unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("was made by the fake runner") && msg.contains("records the model runner"),
        "{msg}"
    );
    assert!(m.join("shards/0-of-2").exists() && m.join("shards/1-of-2").exists());
    // Resuming the mixed folder is refused too.
    let e = study::run_study(
        &model_plan,
        &m,
        &prompt,
        &mut AsModel(FakeRunner::new()),
        &opts(0),
    )
    .unwrap_err();
    assert!(
        format!("{e:#}").contains("was made by the fake runner"),
        "{e:#}"
    );
}
