//! `jukebox study` from the command line with the fake runner: dry run, errors, listing, the tiny
//! CI plan, resume, shards + merge, and the Slurm / Kubernetes recipes.

#[path = "study_support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Output};

fn jukebox(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jukebox"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A model directory with label lists only (the fake runner needs no weights).
fn setup() -> (tempfile::TempDir, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let model = support::label_model(tmp.path(), &["rock", "jazz", "techno"], &["ann", "bob"]);
    let prompt = support::write_prompt(tmp.path());
    let (m, p) = (model.display().to_string(), prompt.display().to_string());
    (tmp, m, p)
}

#[test]
fn dry_run_listing_and_errors() {
    let (tmp, model, prompt) = setup();
    let d = tmp.path();
    let base = [
        "study",
        "--fake-runner",
        "--model",
        &model,
        "--prompt",
        &prompt,
    ];
    let run = |extra: &[&str]| jukebox(&[&base[..], extra].concat(), d);

    let o = run(&[
        "--genre",
        "rock,jazz",
        "--artist",
        "ann",
        "--seeds",
        "3",
        "--dry-run",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("6 cells × 3 seeds = 18 samples"), "{t}");
    assert!(
        t.contains("level 2 (hop 128):") && t.contains("estimated time"),
        "{t}"
    );
    assert!(
        t.contains("[control: no labels]") && t.contains("[control: ancestral]"),
        "{t}"
    );
    assert!(!d.join("studies").exists(), "a dry run wrote files");

    let o = run(&["--list-genres", "--search", "ro"]);
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "rock");

    let o = run(&["--genre", "rokc", "--artist", "ann", "--dry-run"]);
    let t = text(&o);
    assert!(
        !o.status.success() && t.contains("unknown genre `rokc`") && t.contains("rock"),
        "{t}"
    );

    let o = run(&["--genre", "rock", "--artist", "", "--dry-run"]);
    assert!(text(&o).contains("empty sweep"), "{}", text(&o));
    let o = run(&[
        "--genre",
        "rock",
        "--artist",
        "ann",
        "--seeds",
        "0",
        "--dry-run",
    ]);
    assert!(text(&o).contains("empty sweep"), "{}", text(&o));

    // The prompt is 4 bars at 120 BPM = 8 s.
    let o = run(&[
        "--genre",
        "rock",
        "--artist",
        "ann",
        "--prompt-seconds",
        "9",
        "--seconds",
        "12",
        "-o",
        "x",
    ]);
    let t = text(&o);
    assert!(
        !o.status.success() && t.contains("shorter than --prompt-seconds 9"),
        "{t}"
    );

    let o = jukebox(&["study", "merge", d.join("nothing").to_str().unwrap()], d);
    assert!(text(&o).contains("no study plan"), "{}", text(&o));
    let o = jukebox(&["study", "--genre", "rock", "merge", "x"], d);
    assert!(!o.status.success());
}

#[test]
fn tiny_plan_resume_and_cli_shards() {
    let (tmp, model, prompt) = setup();
    let d = tmp.path();
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plans/tiny.toml");
    let plan_text = std::fs::read_to_string(&tiny).unwrap();
    let spec: jukebox::study::PlanSpec = toml::from_str(&plan_text).unwrap();
    let built = jukebox::study::Plan::build(&spec, &support::vocab(), &support::facts()).unwrap();
    assert!(built.cells.len() <= 4, "the CI plan has at most 4 cells");
    // 1 s of continuation, up to one top-level token of rounding.
    assert!(built.total_samples - built.prompt_samples <= 44100 + 128);

    let base = [
        "study",
        "--fake-runner",
        "--model",
        &model,
        "--prompt",
        &prompt,
        "--plan",
        tiny.to_str().unwrap(),
    ];
    let o = jukebox(&[&base[..], &["-o", "one"]].concat(), d);
    assert!(o.status.success(), "{}", text(&o));
    assert!(d.join("one/index.html").exists() && d.join("one/claims.csv").exists());
    // A second run with the same flags resumes: nothing left to do.
    let o = jukebox(&[&base[..], &["-o", "one"]].concat(), d);
    assert!(
        text(&o).contains("0 groups run, 2 already done"),
        "{}",
        text(&o)
    );
    let o = jukebox(&["study", "--fake-runner", "--resume", "one"], d);
    assert!(
        text(&o).contains("0 groups run, 2 already done"),
        "{}",
        text(&o)
    );
    // Different flags into the same folder are refused.
    let o = jukebox(
        &[&base[..], &["-o", "one", "--temperature", "0.5"]].concat(),
        d,
    );
    assert!(text(&o).contains("different study plan"), "{}", text(&o));

    // Two shards, merge in between refuses and names the missing shard.
    let o = jukebox(&[&base[..], &["-o", "two", "--shard", "1/2"]].concat(), d);
    assert!(o.status.success(), "{}", text(&o));
    let o = jukebox(&["study", "merge", "two"], d);
    assert!(
        !o.status.success() && text(&o).contains("--shard 0/2"),
        "{}",
        text(&o)
    );
    let o = jukebox(
        &[
            "study",
            "--fake-runner",
            "--resume",
            "two",
            "--shard",
            "0/2",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = jukebox(&["study", "merge", "two"], d);
    assert!(o.status.success(), "{}", text(&o));
    support::assert_same(
        &support::snapshot(&d.join("one")),
        &support::snapshot(&d.join("two")),
        "CLI shards",
    );
}

#[test]
fn emit_slurm_and_k8s() {
    let (tmp, model, prompt) = setup();
    let d = tmp.path();
    let base = [
        "study",
        "--fake-runner",
        "--model",
        &model,
        "--prompt",
        &prompt,
        "--genre",
        "rock,jazz",
        "--artist",
        "ann,bob",
        "--max-batch",
        "2",
        "-o",
        "big",
    ];
    let o = jukebox(
        &[
            &base[..],
            &["--emit", "slurm", "--shards", "3", "--gpus", "1"],
        ]
        .concat(),
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let plan = jukebox::study::read_plan(&d.join("big")).unwrap();
    assert!(plan.groups.len() >= 3);
    let array = std::fs::read_to_string(d.join("big/slurm/array.sbatch")).unwrap();
    for needle in [
        "#SBATCH --array=0-2",
        "#SBATCH --requeue",
        "#SBATCH --gres=gpu:1",
        "--shard \"${SLURM_ARRAY_TASK_ID}/3\"",
        "study --resume",
    ] {
        assert!(
            array.contains(needle),
            "array.sbatch lacks {needle}:\n{array}"
        );
    }
    let time_line = array
        .lines()
        .find(|l| l.starts_with("#SBATCH --time="))
        .unwrap();
    assert!(
        time_line.len() == "#SBATCH --time=00:30:00".len(),
        "{time_line}"
    );
    let submit = std::fs::read_to_string(d.join("big/slurm/submit.sh")).unwrap();
    assert!(submit.contains("--dependency=afterok:") && submit.contains("merge.sbatch"));
    assert!(std::fs::read_to_string(d.join("big/slurm/merge.sbatch"))
        .unwrap()
        .contains("study merge"));
    // bash accepts the scripts.
    for f in ["array.sbatch", "merge.sbatch", "submit.sh", "rerun.sh"] {
        let st = Command::new("bash")
            .arg("-n")
            .arg(d.join("big/slurm").join(f))
            .status()
            .unwrap();
        assert!(st.success(), "{f} is not valid bash");
    }

    let o = jukebox(
        &[&base[..], &["--emit", "k8s", "--shards", "2"]].concat(),
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let job: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("big/k8s/study-job.json")).unwrap())
            .unwrap();
    assert_eq!(job["apiVersion"], "batch/v1");
    assert_eq!(job["kind"], "Job");
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    assert_eq!(job["spec"]["completions"], 2);
    assert_eq!(job["spec"]["parallelism"], 2);
    let pod = &job["spec"]["template"]["spec"];
    assert!(["OnFailure", "Never"].contains(&pod["restartPolicy"].as_str().unwrap()));
    let c = &pod["containers"][0];
    let cmd = c["command"][2].as_str().unwrap();
    assert!(
        cmd.contains("--shard \"$JOB_COMPLETION_INDEX/2\"") && cmd.contains("--resume /study"),
        "{cmd}"
    );
    assert_eq!(c["volumeMounts"][0]["name"], pod["volumes"][0]["name"]);
    assert!(pod["volumes"][0]["persistentVolumeClaim"]["claimName"].is_string());
    let merge: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("big/k8s/merge-job.json")).unwrap())
            .unwrap();
    assert_eq!(
        merge["spec"]["template"]["spec"]["containers"][0]["command"][2],
        "merge"
    );
    // More shards than groups is refused by the library, clamped by the CLI: the job runs one
    // shard per batch group, and every shard command divides by that number.
    let o = jukebox(
        &[&base[..], &["--emit", "k8s", "--shards", "999"]].concat(),
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let n = plan.groups.len();
    let job: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("big/k8s/study-job.json")).unwrap())
            .unwrap();
    assert_eq!(
        job["spec"]["completions"], n,
        "--shards 999 not clamped to {n} groups"
    );
    assert_eq!(
        job["spec"]["parallelism"], n,
        "--shards 999 not clamped to {n} groups"
    );
    let cmd = job["spec"]["template"]["spec"]["containers"][0]["command"][2]
        .as_str()
        .unwrap();
    assert!(
        cmd.contains(&format!("--shard \"$JOB_COMPLETION_INDEX/{n}\"")) && !cmd.contains("999"),
        "{cmd}"
    );
    // The same clamp for Slurm: an array of one task per group.
    let o = jukebox(
        &[&base[..], &["--emit", "slurm", "--shards", "999"]].concat(),
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let array = std::fs::read_to_string(d.join("big/slurm/array.sbatch")).unwrap();
    assert!(
        array.contains(&format!("#SBATCH --array=0-{}\n", n - 1))
            && array.contains(&format!("/{n}\""))
            && !array.contains("999"),
        "{array}"
    );
    // The plan itself is unchanged by --emit.
    assert_eq!(jukebox::study::read_plan(&d.join("big")).unwrap(), plan);
}

#[test]
fn fake_runner_is_recorded_and_never_mixed() {
    let (tmp, model, prompt) = setup();
    let d = tmp.path();
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plans/tiny.toml");
    let base = [
        "study",
        "--fake-runner",
        "--model",
        &model,
        "--prompt",
        &prompt,
        "--plan",
        tiny.to_str().unwrap(),
    ];
    let o = jukebox(&[&base[..], &["--dry-run"]].concat(), d);
    assert!(
        o.status.success() && text(&o).contains("runner: fake"),
        "{}",
        text(&o)
    );
    let o = jukebox(&[&base[..], &["-o", "fake"]].concat(), d);
    assert!(o.status.success(), "{}", text(&o));
    // plan.toml, claims.csv and the report all say so.
    let plan_text = std::fs::read_to_string(d.join("fake/plan.toml")).unwrap();
    assert!(
        plan_text.lines().any(|l| l == "runner = \"fake\""),
        "{plan_text}"
    );
    let claims = support::read_csv(&d.join("fake/claims.csv"));
    assert!(!claims.is_empty());
    assert!(claims.iter().all(|r| r["runner"] == "fake"), "{claims:?}");
    let html = std::fs::read_to_string(d.join("fake/index.html")).unwrap();
    assert!(
        html.contains("fake runner: numbers are not from a model"),
        "no fake-runner banner in the report"
    );

    // Resuming a fake study without --fake-runner is refused before anything runs.
    let o = jukebox(&["study", "--resume", "fake"], d);
    let t = text(&o);
    assert!(
        !o.status.success()
            && t.contains("made by the fake runner")
            && t.contains("uses the model runner")
            && t.contains("with --fake-runner"),
        "{t}"
    );
    // A model-runner plan (here: the fake study's plan relabelled) refuses --fake-runner, both
    // on --resume and for new runs into the same folder.
    std::fs::create_dir(d.join("real")).unwrap();
    std::fs::write(
        d.join("real/plan.toml"),
        plan_text.replace("runner = \"fake\"", "runner = \"model\""),
    )
    .unwrap();
    let o = jukebox(&["study", "--fake-runner", "--resume", "real"], d);
    let t = text(&o);
    assert!(
        !o.status.success()
            && t.contains("made by the model runner")
            && t.contains("uses the fake runner"),
        "{t}"
    );
    let o = jukebox(&[&base[..], &["-o", "real"]].concat(), d);
    let t = text(&o);
    assert!(
        !o.status.success() && t.contains("made by the model runner"),
        "{t}"
    );
    assert!(!d.join("real/cells").exists(), "a refused run wrote items");

    // `study merge` refuses shard folders made by another runner kind: a fake shard copied
    // into a model-runner study.
    let o = jukebox(&[&base[..], &["-o", "two", "--shard", "0/2"]].concat(), d);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::create_dir_all(d.join("real/shards")).unwrap();
    std::fs::rename(d.join("two/shards/0-of-2"), d.join("real/shards/0-of-2")).unwrap();
    let o = jukebox(&["study", "merge", "real"], d);
    let t = text(&o);
    assert!(
        !o.status.success()
            && t.contains("was made by the fake runner")
            && t.contains("records the model runner")
            && t.contains("cannot be merged"),
        "{t}"
    );
    assert!(
        d.join("real/shards/0-of-2").exists(),
        "a refused merge moved the shard"
    );
}
