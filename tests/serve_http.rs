//! `jukebox serve` over HTTP: the whole take → extend → upsample → download loop on the reference
//! model, runs the CLI then understands, bad requests answered with clear 4xx errors (and the
//! server still up after them), the token, and a server killed with SIGKILL mid-job whose job
//! resumes to the same bytes as an uninterrupted one.

mod serve_support;

use serde_json::json;
use serve_support::*;
use std::path::Path;
use std::process::Command;

fn sample_form(seconds: f64, takes: usize, levels: &str, seed: u64) -> serde_json::Value {
    json!({"prompt": "amen.wav", "prompt_seconds": 0.5, "seconds": seconds, "takes": takes,
           "levels": levels, "seed": seed})
}

fn jukebox(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_jukebox"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn take_extend_upsample_download_and_the_cli_agrees() {
    let d = tempfile::tempdir().unwrap();
    let runs = d.path().join("runs");
    let s = start(&runs, &[], &[]);
    let p = s.port;

    let page = get(p, "/");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<script src=\"app.js\">"));
    assert_eq!(get(p, "/app.js").status, 200);
    let info = get(p, "/api/info").json();
    assert_eq!(info["models"], json!(["default"]));
    assert!(info["prompts"]
        .as_array()
        .unwrap()
        .contains(&json!("amen.wav")));

    // Two takes at the top level.
    let r = post_json(p, "/api/jobs/sample", sample_form(1.5, 2, "top", 7));
    assert_eq!(r.status, 200, "{}", r.text());
    let (job, run) = (r.json()["job"].as_u64().unwrap(), r.json()["run"].clone());
    assert_eq!(run, "run-0001");
    let j = wait_job(p, job, 120, finished);
    assert_eq!(j["status"], "done", "{j}");
    let v = get(p, "/api/runs/run-0001").json();
    assert_eq!(v["takes"].as_array().unwrap().len(), 2);
    assert_eq!(v["takes"][1]["levels"], json!([2]));
    assert_eq!(v["takes"][1]["seed"], 8);
    let wav = get(p, "/api/runs/run-0001/audio/2/1");
    assert_eq!(wav.status, 200);
    assert_eq!(
        wav.body,
        std::fs::read(runs.join("run-0001/level_2/sample_1.wav")).unwrap()
    );
    let png = get(p, "/api/runs/run-0001/spectrogram/2/1");
    assert_eq!(png.status, 200);
    assert!(png.body.starts_with(b"\x89PNG"));

    // Favourite, extend take 1 into two new takes, upsample it.
    let r = post_json(
        p,
        "/api/runs/run-0001/takes/1/favourite",
        json!({"on": true}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        get(p, "/api/runs/run-0001").json()["takes"][1]["favourite"],
        true
    );
    let r = post_json(
        p,
        "/api/runs/run-0001/takes/1/extend",
        json!({"seconds": 1.9, "takes": 2, "seed": 100}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let child_job = r.json()["job"].as_u64().unwrap();
    assert_eq!(r.json()["run"], "run-0002");
    let r = post_json(p, "/api/runs/run-0001/upsample", json!({"takes": [1]}));
    assert_eq!(r.status, 200, "{}", r.text());
    let up_job = r.json()["job"].as_u64().unwrap();
    for id in [child_job, up_job] {
        let j = wait_job(p, id, 240, finished);
        assert_eq!(j["status"], "done", "{j}");
    }
    let child = get(p, "/api/runs/run-0002").json();
    assert_eq!(child["parent"], json!(["run-0001", 1]));
    assert_eq!(child["takes"].as_array().unwrap().len(), 2);
    // The new takes start with the parent take's codes.
    let codes = |dir: &Path| jukebox::sample::RunState::load_or_default(dir).unwrap();
    let parent_top = &codes(&runs.join("run-0001")).levels[&2].rows[1];
    for row in &codes(&runs.join("run-0002")).levels[&2].rows {
        assert!(row.len() > parent_top.len());
        assert_eq!(&row[..parent_top.len()], &parent_top[..]);
    }
    let up = get(p, "/api/runs/run-0001").json();
    assert_eq!(up["takes"][1]["levels"], json!([2, 1, 0]));
    assert_eq!(
        up["takes"][0]["levels"],
        json!([2]),
        "take 0 was not chosen"
    );
    let zip = get(p, "/api/runs/run-0001/takes/1/zip");
    assert_eq!(zip.status, 200);
    assert!(zip.body.starts_with(b"PK"));
    let listing = String::from_utf8_lossy(&zip.body).into_owned();
    for f in [
        "run.toml",
        "level_2/sample_1.wav",
        "level_1/sample_1.wav",
        "level_0/sample_1.wav",
    ] {
        assert!(listing.contains(f), "{f} missing from the zip");
    }
    let dl = get(p, "/api/runs/run-0001/audio/0/1?download=1");
    assert!(
        dl.headers
            .to_ascii_lowercase()
            .contains("content-disposition: attachment"),
        "{}",
        dl.headers
    );

    // The CLI understands what the app made: continue the forked run, upsample it.
    let child_dir = runs.join("run-0002");
    let o = jukebox(&[
        "sample",
        "--continue",
        child_dir.to_str().unwrap(),
        "--seconds",
        "1.99",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = jukebox(&[
        "upsample",
        child_dir.to_str().unwrap(),
        "--samples",
        "0",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = get(p, "/api/runs/run-0002").json();
    assert_eq!(v["takes"][0]["levels"], json!([2, 1, 0]));
    // And the app shows a run the CLI made.
    let o = jukebox(&[
        "sample",
        "--model",
        model().to_str().unwrap(),
        "--seconds",
        "0.5",
        "--levels",
        "top",
        "-o",
        runs.join("from-cli").to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let names: Vec<String> = get(p, "/api/runs").json()["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"from-cli".to_string()), "{names:?}");
}

#[test]
fn bad_requests_get_clear_errors_and_the_server_stays_up() {
    let d = tempfile::tempdir().unwrap();
    let runs = d.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    std::os::unix::fs::symlink("/", runs.join("evil")).unwrap();
    let s = start(&runs, &["--max-upload-mib", "1"], &[]);
    let p = s.port;
    let r = post_json(p, "/api/jobs/sample", sample_form(1.0, 1, "top", 0));
    let job = r.json()["job"].as_u64().unwrap();
    wait_job(p, job, 120, finished);

    let bad = |m: &str, path: &str, body: &[u8], hdr: &[(&str, &str)], want: u16, text: &str| {
        let r = http(p, m, path, body, hdr);
        assert_eq!(r.status, want, "{m} {path}: {}", r.text());
        assert!(
            r.text().contains(text),
            "{m} {path}: `{}` lacks `{text}`",
            r.text()
        );
    };
    let js = [("content-type", "application/json")];
    // Paths that try to leave the runs folder.
    bad(
        "GET",
        "/api/runs/..%2F..%2Fetc",
        b"",
        &[],
        400,
        "not a valid name",
    );
    bad("GET", "/api/runs/.jobs", b"", &[], 400, "not a valid name");
    bad("GET", "/api/runs/evil", b"", &[], 404, "no `evil`");
    bad(
        "GET",
        "/api/runs/evil/audio/2/0",
        b"",
        &[],
        404,
        "no `evil`",
    );
    bad("GET", "/api/runs/nope", b"", &[], 404, "no `nope`");
    bad(
        "GET",
        "/studies/run-0001/index.html",
        b"",
        &[],
        404,
        "not a study",
    );
    bad(
        "GET",
        "/studies/..%2F..%2Fetc/passwd",
        b"",
        &[],
        400,
        "not a valid name",
    );
    bad("GET", "/etc/passwd", b"", &[], 404, "no such page");
    // Bad numbers and missing things.
    bad("GET", "/api/runs/run-0001/audio/top/0", b"", &[], 400, "");
    bad(
        "GET",
        "/api/runs/run-0001/audio/2/99",
        b"",
        &[],
        404,
        "no such audio",
    );
    bad(
        "POST",
        "/api/runs/run-0001/takes/9/favourite",
        br#"{"on":true}"#,
        &js,
        404,
        "take 9",
    );
    bad("POST", "/api/jobs/999/cancel", b"", &[], 404, "no such job");
    bad(
        "POST",
        &format!("/api/jobs/{job}/resume"),
        b"",
        &[],
        409,
        "nothing to resume",
    );
    bad(
        "POST",
        &format!("/api/jobs/{job}/cancel"),
        b"",
        &[],
        409,
        "not queued or running",
    );
    // Bad forms.
    bad("POST", "/api/jobs/sample", b"{not json", &js, 400, "");
    // One wrong field each, on an otherwise valid form.
    let cases: [(&str, serde_json::Value, u16, &str); 8] = [
        ("takes", json!(0), 400, "takes must be"),
        ("mode", json!("sideways"), 400, "unknown mode"),
        ("prompt", json!("../../etc/passwd"), 400, "not a valid name"),
        (
            "prompt",
            json!("missing.wav"),
            404,
            "no prompt `missing.wav`",
        ),
        ("model", json!("other"), 404, "no model `other`"),
        ("seconds", json!(-1.0), 400, "positive number of seconds"),
        ("prompt_seconds", json!(5.0), 400, "must be shorter"),
        ("genre", json!("nosuchgenre"), 400, "nosuchgenre"),
    ];
    for (key, value, status, text) in cases {
        let mut f = sample_form(1.0, 1, "top", 0);
        f[key] = value;
        bad(
            "POST",
            "/api/jobs/sample",
            f.to_string().as_bytes(),
            &js,
            status,
            text,
        );
    }
    bad(
        "POST",
        "/api/runs/run-0001/takes/0/extend",
        br#"{"seconds":0.5,"takes":1}"#,
        &js,
        400,
        "not longer than",
    );
    bad(
        "POST",
        "/api/runs/run-0001/upsample",
        br#"{"takes":[]}"#,
        &js,
        400,
        "at least one take",
    );
    bad(
        "POST",
        "/api/runs/run-0001/upsample",
        br#"{"takes":[5]}"#,
        &js,
        400,
        "sample 5 does not exist",
    );
    bad(
        "POST",
        "/api/jobs/study",
        br#"{"genres":"","artists":"x"}"#,
        &js,
        400,
        "genres",
    );
    // Uploads: bad names, not audio, empty, too big; nothing is kept.
    bad(
        "POST",
        "/api/prompts?name=..%2Fx.wav",
        b"RIFF",
        &[],
        400,
        "not a valid name",
    );
    bad(
        "POST",
        "/api/prompts?name=x.exe",
        b"MZ",
        &[],
        400,
        "upload a .wav",
    );
    bad("POST", "/api/prompts?name=x.wav", b"", &[], 400, "empty");
    bad(
        "POST",
        "/api/prompts?name=x.wav",
        b"this is not audio at all",
        &[],
        400,
        "x.wav",
    );
    let big = vec![0u8; 2 << 20];
    let r = http(p, "POST", "/api/prompts?name=big.wav", &big, &[]);
    assert_eq!(r.status, 413, "{}", r.text());
    let prompts = get(p, "/api/prompts").json();
    assert_eq!(prompts, json!(["amen.wav"]), "a refused upload was kept");
    // A real upload is checked and offered.
    let wav =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/prompts/amen.wav")).unwrap();
    let r = http(p, "POST", "/api/prompts?name=mine.wav", &wav, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["seconds"].as_f64().unwrap() > 5.0);
    assert!(get(p, "/api/prompts")
        .json()
        .as_array()
        .unwrap()
        .contains(&json!("mine.wav")));
    // Still serving.
    assert_eq!(get(p, "/api/info").status, 200);
}

#[test]
fn a_token_guards_every_request_and_open_binds_need_one() {
    let d = tempfile::tempdir().unwrap();
    let s = start(&d.path().join("runs"), &["--token", "generate"], &[]);
    let tok = s.token.clone().expect("the URL carries the token");
    assert_eq!(tok.len(), 32);
    assert_eq!(get(s.port, "/api/info").status, 401);
    assert_eq!(get(s.port, "/").status, 401);
    assert_eq!(get(s.port, "/api/info?token=wrong").status, 401);
    assert_eq!(get(s.port, &format!("/api/info?token={tok}")).status, 200);
    let r = http(
        s.port,
        "GET",
        "/api/info",
        b"",
        &[("x-jukebox-token", &tok)],
    );
    assert_eq!(r.status, 200);

    let o = Command::new(env!("CARGO_BIN_EXE_jukebox"))
        .args(["serve", "--bind", "0.0.0.0:0", "--runs"])
        .arg(d.path().join("runs2"))
        .arg("--model")
        .arg(model())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("pass --token"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_server_killed_mid_job_resumes_to_the_same_bytes() {
    let d = tempfile::tempdir().unwrap();
    let runs = d.path().join("runs");
    // Slow windows, so the job is surely running when the server is killed.
    let s = start(&runs, &[], &[("JUKEBOX_WINDOW_DELAY_MS", "60")]);
    let form = sample_form(1.9, 2, "all", 11);
    let r = post_json(s.port, "/api/jobs/sample", form.clone());
    assert_eq!(r.status, 200, "{}", r.text());
    let job = r.json()["job"].as_u64().unwrap();
    wait_job(s.port, job, 120, |j| {
        j["status"] == "running" && j["progress"]["window"].as_u64().unwrap_or(0) >= 3
    });
    let mut s = s;
    s.child.kill().unwrap(); // SIGKILL
    s.child.wait().unwrap();
    drop(s);
    let state = runs.join("run-0001/state.safetensors");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let frozen = std::fs::read(&state).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        std::fs::read(&state).unwrap(),
        frozen,
        "the job's child outlived the server"
    );

    let s = start(&runs, &[], &[]);
    let j = wait_job(s.port, job, 10, |_| true);
    assert_eq!(j["status"], "interrupted", "{j}");
    let r = http(s.port, "POST", &format!("/api/jobs/{job}/resume"), b"", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    // A second resume of the same job is refused while it is queued or running.
    let again = http(s.port, "POST", &format!("/api/jobs/{job}/resume"), b"", &[]);
    assert_eq!(again.status, 409, "{}", again.text());
    assert_eq!(wait_job(s.port, job, 240, finished)["status"], "done");

    // The same request, never interrupted.
    let r = post_json(s.port, "/api/jobs/sample", form);
    let fresh = r.json()["job"].as_u64().unwrap();
    assert_eq!(wait_job(s.port, fresh, 240, finished)["status"], "done");
    for f in [
        "state.safetensors",
        "codes.safetensors",
        "level_2/sample_0.wav",
        "level_1/sample_1.wav",
        "level_0/sample_0.wav",
        "level_0/sample_1.wav",
    ] {
        assert_eq!(
            std::fs::read(runs.join("run-0001").join(f)).unwrap(),
            std::fs::read(runs.join("run-0002").join(f)).unwrap(),
            "{f} differs after the resume"
        );
    }
}

#[test]
fn cancel_stops_after_a_window_and_resume_finishes_the_same_bytes() {
    let d = tempfile::tempdir().unwrap();
    let runs = d.path().join("runs");
    let s = start(&runs, &[], &[("JUKEBOX_WINDOW_DELAY_MS", "60")]);
    let p = s.port;
    let form = sample_form(1.9, 2, "all", 21);
    let a = post_json(p, "/api/jobs/sample", form.clone()).json()["job"]
        .as_u64()
        .unwrap();
    // A second job waits in the queue (one job at a time) and can be cancelled there.
    let b = post_json(p, "/api/jobs/sample", sample_form(1.0, 1, "top", 0)).json()["job"]
        .as_u64()
        .unwrap();
    wait_job(p, a, 120, |j| {
        j["status"] == "running" && j["progress"]["window"].as_u64().unwrap_or(0) >= 2
    });
    assert_eq!(wait_job(p, b, 5, |_| true)["status"], "queued");
    let r = http(p, "POST", &format!("/api/jobs/{b}/cancel"), b"", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(wait_job(p, b, 5, |_| true)["status"], "cancelled");
    let r = http(p, "POST", &format!("/api/jobs/{a}/cancel"), b"", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let j = wait_job(p, a, 60, finished);
    assert_eq!(j["status"], "cancelled", "{j}");
    assert!(
        !runs.join("run-0001/level_0/sample_1.wav").exists(),
        "cancelled before the end"
    );
    let r = http(p, "POST", &format!("/api/jobs/{a}/resume"), b"", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(wait_job(p, a, 240, finished)["status"], "done");
    // The same request, never cancelled (run-0003: run-0002 is the cancelled queued job's).
    let c = post_json(p, "/api/jobs/sample", form).json()["job"]
        .as_u64()
        .unwrap();
    assert_eq!(wait_job(p, c, 240, finished)["status"], "done");
    for f in [
        "state.safetensors",
        "level_0/sample_0.wav",
        "level_0/sample_1.wav",
    ] {
        assert_eq!(
            std::fs::read(runs.join("run-0001").join(f)).unwrap(),
            std::fs::read(runs.join("run-0003").join(f)).unwrap(),
            "{f} differs after cancel and resume"
        );
    }
}

#[test]
fn labels_prompt_audio_events_and_a_study_with_its_report() {
    let d = tempfile::tempdir().unwrap();
    let runs = d.path().join("runs");
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default");
    let s = start(&runs, &["--model", bundled.to_str().unwrap()], &[]);
    let p = s.port;
    // Type-ahead lists come from the model's label files.
    let l = get(p, "/api/models/default/labels").json();
    assert!(
        l["genres"]
            .as_array()
            .unwrap()
            .contains(&json!("breakbeat")),
        "{l}"
    );
    assert!(l["artists"].as_array().unwrap().len() > 3, "{l}");
    assert_eq!(get(p, "/api/models/nope/labels").status, 404);
    // A near miss is refused with a suggestion, as in the CLI.
    let mut f = sample_form(4.0, 1, "top", 0);
    f["prompt_seconds"] = json!(3.0);
    f["genre"] = json!("brakbeat");
    let r = post_json(p, "/api/jobs/sample", f.clone());
    assert_eq!(r.status, 400);
    assert!(r.text().contains("breakbeat"), "{}", r.text());
    // Two clients (two tabs) on the event stream both see a job started by a third.
    use std::io::{Read, Write};
    let open = || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", p)).unwrap();
        s.write_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        s
    };
    let (mut tab1, mut tab2) = (open(), open());
    f["genre"] = json!("breakbeat");
    let job = post_json(p, "/api/jobs/sample", f).json()["job"]
        .as_u64()
        .unwrap();
    for sse in [&mut tab1, &mut tab2] {
        let mut buf = vec![0u8; 4096];
        let mut got = String::new();
        while !got.contains("\"target\":\"run-0001\"") {
            let n = sse.read(&mut buf).unwrap();
            assert!(n > 0, "the stream ended: {got}");
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        assert!(
            got.contains("text/event-stream") && got.contains("event: jobs"),
            "{got}"
        );
    }
    drop((tab1, tab2));
    assert_eq!(wait_job(p, job, 300, finished)["status"], "done");
    let prompt = get(p, "/api/runs/run-0001/prompt/2");
    assert_eq!(prompt.status, 200);
    assert!(prompt.body.starts_with(b"RIFF"));

    // A small study from the page's form, then its report through the server.
    let r = post_json(
        p,
        "/api/jobs/study",
        json!({"genres": "breakbeat", "artists": "unknown", "seeds": 1, "prompt_seconds": 1.0,
               "seconds": 1.5, "levels": "top"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let (sj, study) = (
        r.json()["job"].as_u64().unwrap(),
        r.json()["study"].as_str().unwrap().to_string(),
    );
    let j = wait_job(p, sj, 600, finished);
    assert_eq!(j["status"], "done", "{j}");
    let st = get(p, "/api/runs").json()["studies"].clone();
    assert_eq!(st[0]["name"], study.as_str());
    assert_eq!(st[0]["groups_done"], st[0]["groups"]);
    assert_eq!(st[0]["report"], true);
    let html = get(p, &format!("/studies/{study}/index.html"));
    assert_eq!(html.status, 200);
    assert!(html.text().contains("<html"), "not the report");
    assert_eq!(
        get(p, &format!("/studies/{study}/prompt/prompt.wav")).status,
        200
    );
    assert_eq!(
        get(p, &format!("/studies/{study}/../run-0001/run.toml")).status,
        400
    );
}
