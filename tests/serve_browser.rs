//! The web app end to end in a real headless Chromium, driven over the DevTools protocol: start
//! takes from the page, wait for them, play one, pick it, extend it, upsample it, then check the
//! files on disk and the page. A screenshot of each step goes to
//! `target/tmp/serve-e2e/` (`SERVE_E2E_MODEL=models/default SERVE_E2E_SHOT=docs/serve.png` makes
//! the README's screenshot with the bundled model).

mod serve_support;

#[path = "chromium_support/mod.rs"]
mod chromium_support;
use chromium_support::chromium_or_skip;
use serde_json::{json, Value};
use serve_support::start;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::{stream::MaybeTlsStream, Message, WebSocket};

struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DevTools session on one page (flattened: every command carries the session id).
struct Cdp {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next: u64,
    session: Option<String>,
}

impl Cdp {
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string())).unwrap();
        loop {
            let m = self.ws.read().expect("devtools connection");
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    /// Evaluate JavaScript in the page (promises awaited), returning its value.
    fn eval(&mut self, js: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": js, "awaitPromise": true, "returnByValue": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("page script failed: {e}\n{js}");
        }
        r["result"]["value"].clone()
    }

    fn wait_for(&mut self, what: &str, js: &str, secs: u64) {
        let t0 = Instant::now();
        while self.eval(js) != json!(true) {
            if t0.elapsed() > Duration::from_secs(secs) {
                let jobs = self.eval("document.querySelector('#jobs').innerText");
                let err = self.eval("document.querySelector('#start-error').innerText");
                panic!("timed out waiting for {what}\njobs: {jobs}\nerror: {err}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn screenshot(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64_decode(r["data"].as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"));
        std::fs::write(path, png).unwrap();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a') as u32 + 26,
            b'0'..=b'9' => (c - b'0') as u32 + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=' && *c != b'\n').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c) << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}

fn launch(chromium: &str) -> (Browser, String) {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--mute-audio",
            "--autoplay-policy=no-user-gesture-required",
            "--remote-debugging-port=0",
            "--window-size=1280,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start chromium");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let ws = loop {
        line.clear();
        if err.read_line(&mut line).unwrap() == 0 {
            panic!("chromium exited before it listened");
        }
        if let Some(i) = line.find("ws://") {
            break line[i..].trim().to_string();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    (
        Browser {
            child,
            _profile: profile,
        },
        ws,
    )
}

#[test]
fn the_listen_pick_extend_upsample_loop_in_chromium() {
    let Some(chromium) = chromium_or_skip("serve_browser") else {
        return;
    };
    let shots: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-e2e");
    std::fs::create_dir_all(&shots).unwrap();
    let d = tempfile::tempdir().unwrap();
    let runs = d.path().join("runs");
    let model_override = std::env::var("SERVE_E2E_MODEL").ok();
    let server = match &model_override {
        Some(m) => start(&runs, &["--model", m], &[]),
        None => start(&runs, &[], &[]),
    };
    let (_browser, ws_url) = launch(chromium);
    let (ws, _) = tungstenite::connect(ws_url.as_str()).expect("devtools websocket");
    let mut cdp = Cdp {
        ws,
        next: 0,
        session: None,
    };
    let url = format!("http://127.0.0.1:{}/", server.port);
    let target = cdp.call("Target.createTarget", json!({"url": url}))["targetId"].clone();
    let session = cdp.call(
        "Target.attachToTarget",
        json!({"targetId": target, "flatten": true}),
    )["sessionId"]
        .as_str()
        .unwrap()
        .to_string();
    cdp.session = Some(session);
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1280, "height": 1400, "deviceScaleFactor": 1, "mobile": false}),
    );

    // 1. The form is filled from the server: models, prompts.
    cdp.wait_for(
        "the page to load",
        "document.querySelector('#prompt option') !== null && document.querySelector('#conn').textContent === 'connected'",
        30,
    );
    let (seconds, prompt_seconds) = if model_override.is_some() {
        ("6", "3.504")
    } else {
        ("1.5", "0.5")
    };
    cdp.eval(&format!(
        "(() => {{ const set = (id, v) => {{ const e = document.querySelector(id); e.value = v; e.dispatchEvent(new Event('change')); }};
           set('#mode', 'primed'); set('#prompt', 'amen.wav'); set('#prompt_seconds', '{prompt_seconds}');
           set('#seconds', '{seconds}'); set('#takes', '2'); set('#seed', '3'); set('#levels', 'top');
           return true; }})()"
    ));
    cdp.screenshot(&shots.join("1-start.png"));
    cdp.eval("document.querySelector('#start').click(), true");

    // 2. The job runs; two takes appear with a player and a spectrogram each.
    cdp.wait_for(
        "two takes",
        "document.querySelectorAll('.run[data-run=\"run-0001\"] > .takes > .take audio').length === 2",
        300,
    );
    cdp.screenshot(&shots.join("4-extended.png"));
    cdp.wait_for(
        "the spectrograms",
        "[...document.querySelectorAll('.take img')].every(i => i.complete && i.naturalWidth > 0)",
        60,
    );
    cdp.screenshot(&shots.join("2-takes.png"));

    // 3. Play take 1: the audio loads, has the run's length and plays.
    let played = cdp.eval(
        "(async () => { const a = document.querySelector('.take[data-run=\"run-0001\"][data-take=\"1\"] audio');
           a.preload = 'auto'; a.load();
           await new Promise((ok, bad) => { a.onloadedmetadata = ok; a.onerror = () => bad(new Error('audio error')); });
           await a.play(); await new Promise(r => setTimeout(r, 400));
           return { duration: a.duration, time: a.currentTime, paused: a.paused, error: a.error }; })()",
    );
    let dur = played["duration"].as_f64().unwrap();
    assert!(
        (dur - seconds.parse::<f64>().unwrap()).abs() < 0.05,
        "{played}"
    );
    assert!(played["error"].is_null(), "{played}");
    assert!(
        played["time"].as_f64().unwrap() > 0.0 || played["paused"] == json!(false),
        "{played}"
    );

    // 4. Pick it.
    cdp.eval("document.querySelector('.take[data-run=\"run-0001\"][data-take=\"1\"] .fav').click(), true");
    cdp.wait_for(
        "the favourite mark",
        "document.querySelector('.take[data-run=\"run-0001\"][data-take=\"1\"]').classList.contains('favourite')",
        30,
    );
    cdp.screenshot(&shots.join("3-picked.png"));

    // 5. Extend it by a little into two new takes: a child run under it.
    cdp.eval(
        "(() => { const t = document.querySelector('.take[data-run=\"run-0001\"][data-take=\"1\"]');
           t.querySelector('.extend-seconds').value = '0.4'; t.querySelector('.extend-takes').value = '2';
           t.querySelector('.extend').click(); return true; })()",
    );
    cdp.wait_for(
        "the extended takes",
        "document.querySelectorAll('.run[data-run=\"run-0001\"] .children .run[data-run=\"run-0002\"] .take audio').length === 2",
        300,
    );
    cdp.screenshot(&shots.join("4-extended.png"));

    // 6. Upsample the picked take only.
    cdp.eval("document.querySelector('.take[data-run=\"run-0001\"][data-take=\"1\"] .upsample').click(), true");
    cdp.wait_for(
        "the upsampled take",
        "document.querySelectorAll('.take[data-run=\"run-0001\"][data-take=\"1\"] audio').length === 3",
        600,
    );
    cdp.wait_for(
        "every job done",
        "[...document.querySelectorAll('#jobs li')].every(li => li.dataset.status === 'done')",
        60,
    );
    cdp.wait_for(
        "the spectrograms",
        "[...document.querySelectorAll('.take img')].every(i => i.complete && i.naturalWidth > 0)",
        60,
    );
    cdp.eval("window.scrollTo(0, 0), true");
    cdp.screenshot(&shots.join("5-upsampled.png"));
    if let Ok(out) = std::env::var("SERVE_E2E_SHOT") {
        std::fs::copy(shots.join("5-upsampled.png"), out).unwrap();
    }

    // The files behind the page.
    let r1 = runs.join("run-0001");
    for l in 0..3 {
        assert!(
            r1.join(format!("level_{l}/sample_1.wav")).exists(),
            "level {l}"
        );
    }
    assert!(r1.join("level_2/sample_0.wav").exists());
    assert!(
        !r1.join("level_0/sample_0.wav").exists(),
        "take 0 was not picked for upsampling"
    );
    let fav: Vec<usize> =
        serde_json::from_str(&std::fs::read_to_string(r1.join("favourites.json")).unwrap())
            .unwrap();
    assert_eq!(fav, vec![1]);
    let child = jukebox::sample::RunSpec::load(&runs.join("run-0002")).unwrap();
    assert_eq!(child.parent.as_ref().unwrap().take, 1);
    assert_eq!(child.items.len(), 2);
    for i in 0..2 {
        assert!(runs
            .join(format!("run-0002/level_2/sample_{i}.wav"))
            .exists());
    }
    let jobs = cdp.eval("document.querySelectorAll('#jobs li').length");
    assert_eq!(jobs, json!(3));
}
