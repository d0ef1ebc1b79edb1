//! Starting `jukebox serve` for tests and talking HTTP/1.1 to it without a client library.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference/fixtures/model")
}

pub struct Server {
    pub child: Child,
    pub port: u16,
    pub token: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start a server on a free port with `runs` as its runs folder; `env` is passed to it (and
/// so to its jobs).
pub fn start(runs: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jukebox"));
    cmd.arg("serve");
    if !extra.contains(&"--model") {
        cmd.arg("--model").arg(model());
    }
    cmd.arg("--runs")
        .arg(runs)
        .args(["--bind", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start jukebox serve");
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    // Keep reading, so the server never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let url = line
        .trim()
        .strip_prefix("jukebox serve: open ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    let rest = url.strip_prefix("http://127.0.0.1:").unwrap();
    let port: u16 = rest.split('/').next().unwrap().parse().unwrap();
    let token = url.split("token=").nth(1).map(str::to_string);
    Server { child, port, token }
}

pub struct Resp {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One request; `Connection: close`, so the body is everything after the headers.
pub fn http(port: u16, method: &str, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = vec![];
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers: head,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[nl + 2 + n + 2..];
    }
}

pub fn get(port: u16, path: &str) -> Resp {
    http(port, "GET", path, b"", &[])
}

pub fn post_json(port: u16, path: &str, v: serde_json::Value) -> Resp {
    http(
        port,
        "POST",
        path,
        v.to_string().as_bytes(),
        &[("content-type", "application/json")],
    )
}

/// Poll the job list until `done(job)` holds for job `id`; returns that job.
pub fn wait_job(
    port: u16,
    id: u64,
    secs: u64,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        let jobs = get(port, "/api/jobs").json();
        if let Some(j) = jobs.as_array().unwrap().iter().find(|j| j["id"] == id) {
            if done(j) {
                return j.clone();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(secs),
                "job {id} did not get there in {secs} s: {j}"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn finished(j: &serde_json::Value) -> bool {
    matches!(
        j["status"].as_str(),
        Some("done" | "failed" | "cancelled" | "interrupted")
    )
}
