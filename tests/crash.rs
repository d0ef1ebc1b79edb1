//! Crash safety (docs/RELIABILITY.md): `jukebox sample`, `jukebox study` and `jukebox train` are killed with
//! SIGKILL at random points, several times over, then resumed. Sample and study outputs must
//! equal an uninterrupted run byte for byte; training must leave a valid checkpoint and finish
//! with the same weights. After every kill, each file a reader would open must parse: atomic
//! writes mean nobody sees a half-written file.
//!
//! The kill times come from a seed printed at the start (`CRASH_SEED=N` replays a failure).

#[path = "catalogue/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

struct Rng(u64);

impl Rng {
    fn from_env(test: &str) -> Rng {
        let seed = std::env::var("CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("{test}: CRASH_SEED={seed}");
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Every sampling window of the runs under test sleeps this long (`JUKEBOX_WINDOW_DELAY_MS`),
/// so that a small run lasts long enough to be killed inside its windows: since the persistent
/// sampling step the whole 2-item sample took little more than the model's loading.
const WINDOW_DELAY_MS: &str = "25";

fn run_ok(dir: &Path, args: &[&str]) {
    let o = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("JUKEBOX_MEMORY_LIMIT")
        .env("JUKEBOX_WINDOW_DELAY_MS", WINDOW_DELAY_MS)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "jukebox {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Start `args`, SIGKILL it after `delay`; true when it finished on its own first.
fn run_and_kill(dir: &Path, args: &[&str], delay: Duration) -> bool {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("JUKEBOX_MEMORY_LIMIT")
        .env("JUKEBOX_WINDOW_DELAY_MS", WINDOW_DELAY_MS)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while t0.elapsed() < delay {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            assert!(st.success(), "jukebox {args:?} failed on its own:\n{err}");
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    false
}

/// Every regular file under `root` (relative path → bytes), leaving out the temp files a kill
/// leaves behind (`.NAME.tmpPID`, never read by anyone).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if p.is_dir() {
                walk(root, &p, out);
            } else if !(name.starts_with('.') && name.contains(".tmp")) {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut m = BTreeMap::new();
    walk(root, root, &mut m);
    m
}

fn assert_same_tree(a: &Path, b: &Path) {
    let (sa, sb) = (snapshot(a), snapshot(b));
    let ka: Vec<_> = sa.keys().collect();
    let kb: Vec<_> = sb.keys().collect();
    assert_eq!(
        ka,
        kb,
        "different files in {} and {}",
        a.display(),
        b.display()
    );
    for (k, v) in &sa {
        assert!(
            v == &sb[k],
            "{} differs after kills and resumes",
            k.display()
        );
    }
}

/// Kill `first` (then `resume` once it has started) at random points; finish with `resume`.
/// `started(dir)` says whether a resume is possible yet; `check(dir)` runs after every kill.
#[allow(clippy::too_many_arguments)]
fn kill_resume_loop(
    test: &str,
    dir: &Path,
    first: &[&str],
    resume: &[&str],
    kills: usize,
    max_ms: u64,
    started: impl Fn() -> bool,
    check: impl Fn(),
) -> usize {
    let mut rng = Rng::from_env(test);
    let mut killed = 0;
    for _ in 0..kills {
        let args = if started() { resume } else { first };
        // Within the first third of an uninterrupted run's time, so a run is interrupted
        // several times even when it is faster than the timed one; each resume makes progress.
        let delay = Duration::from_millis(30 + rng.below(max_ms / 3));
        if run_and_kill(dir, args, delay) {
            break;
        }
        killed += 1;
        check();
    }
    run_ok(dir, if started() { resume } else { first });
    killed
}

#[test]
fn sample_survives_sigkill_and_resumes_identically() {
    let t = tmp();
    let args = |out: &str| -> Vec<String> {
        [
            "sample",
            "--model",
            model(),
            "-o",
            out,
            "--seconds",
            "1",
            "--total-seconds",
            "1.5",
            "--levels",
            "top,middle",
            "--n-samples",
            "2",
            "--max-batch",
            "1",
            "--quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let t0 = Instant::now();
    let a = args("straight");
    run_ok(t.path(), &a.iter().map(String::as_str).collect::<Vec<_>>());
    let full_ms = t0.elapsed().as_millis() as u64;

    let run = t.path().join("killed");
    let a = args("killed");
    let first: Vec<&str> = a.iter().map(String::as_str).collect();
    let resume = ["sample", "--resume", "killed", "--quiet"];
    let killed = kill_resume_loop(
        "sample",
        t.path(),
        &first,
        &resume,
        6,
        full_ms,
        || run.join("run.toml").exists(),
        || {
            // Whatever exists must parse.
            if run.join("run.toml").exists() {
                jukebox::sample::RunSpec::load(&run).unwrap();
                jukebox::sample::RunState::load_or_default(&run).unwrap();
            }
        },
    );
    eprintln!("sample: {killed} kills");
    assert!(killed >= 2, "the run was not interrupted twice");
    assert_same_tree(&t.path().join("straight"), &run);
}

fn study_plan(dir: &Path) -> PathBuf {
    let prompt = dir.join("prompt.wav");
    fs::write(&prompt, wav_pcm16(44_100, 1, &tone(44_100, 1))).unwrap();
    let plan = dir.join("plan.toml");
    // Four batch groups of two cells each, on the fixture model (songs under 2 s).
    fs::write(
        &plan,
        "prompt_seconds = 0.5\nseconds = 1.0\ngenres = [\"#1\"]\nartists = [\"#1\"]\nseeds = 2\nlevels = \"top\"\n",
    )
    .unwrap();
    prompt
}

#[test]
fn study_survives_sigkill_and_resumes_identically() {
    let t = tmp();
    let prompt = study_plan(t.path());
    let args = |out: &str| -> Vec<String> {
        [
            "study",
            "--model",
            model(),
            "--plan",
            "plan.toml",
            "--prompt",
            path_str(&prompt),
            "-o",
            out,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let t0 = Instant::now();
    let a = args("straight");
    run_ok(t.path(), &a.iter().map(String::as_str).collect::<Vec<_>>());
    let full_ms = t0.elapsed().as_millis() as u64;

    let dir = t.path().join("killed");
    let a = args("killed");
    let first: Vec<&str> = a.iter().map(String::as_str).collect();
    let resume = ["study", "--resume", "killed"];
    let killed = kill_resume_loop(
        "study",
        t.path(),
        &first,
        &resume,
        6,
        full_ms,
        || dir.join("plan.toml").exists(),
        || {
            if dir.join("plan.toml").exists() {
                let text = fs::read_to_string(dir.join("plan.toml")).unwrap();
                text.parse::<toml::Table>().unwrap();
            }
        },
    );
    eprintln!("study: {killed} kills");
    assert!(killed >= 2, "the study was not interrupted twice");
    assert_same_tree(&t.path().join("straight"), &dir);
}

fn write_corpus(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let mut csv = String::from("path,artist,genres\n");
    for (i, (artist, genre)) in [
        ("Tone Maker", "ambient"),
        ("Tone Maker", "ambient"),
        ("Click Kit", "breakbeat"),
        ("Click Kit", "rock"),
    ]
    .iter()
    .enumerate()
    {
        let frames = 52_920;
        let data: Vec<u8> = (0..frames)
            .flat_map(|n| {
                let x = (n as f32 * 0.0314 * (1.0 + i as f32 * 0.5)).sin() * 0.3;
                let click = if n % 5512 < 200 { 0.4 } else { 0.0 };
                (((x + click * (i / 2) as f32) * 20000.0) as i16).to_le_bytes()
            })
            .collect();
        fs::write(dir.join(format!("f{i}.wav")), wav_pcm16(44_100, 1, &data)).unwrap();
        csv.push_str(&format!("f{i}.wav,{artist},{genre}\n"));
    }
    fs::write(dir.join("metadata.csv"), csv).unwrap();
}

/// The tiny preset with frequent checkpoints, so kills land between and inside saves.
fn train_config(dir: &Path) -> PathBuf {
    let o = Command::new(BIN)
        .args(["train", "vqvae", "--preset", "tiny", "--print-config"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    let mut cfg: toml::Table = text.parse().unwrap();
    let train = cfg["train"].as_table_mut().unwrap();
    train.insert("steps".into(), 12.into());
    train.insert("ckpt_every".into(), 2.into());
    train.insert("valid_every".into(), 4.into());
    let p = dir.join("vq.toml");
    fs::write(&p, toml::to_string(&cfg).unwrap()).unwrap();
    p
}

#[test]
fn train_survives_sigkill_with_a_valid_checkpoint() {
    let t = tmp();
    write_corpus(&t.path().join("corpus"));
    train_config(t.path());
    let args = |out: &str| -> Vec<String> {
        [
            "train", "vqvae", "--corpus", "corpus", "--config", "vq.toml", "-o", out, "--quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let t0 = Instant::now();
    let a = args("straight");
    run_ok(t.path(), &a.iter().map(String::as_str).collect::<Vec<_>>());
    let full_ms = t0.elapsed().as_millis() as u64;

    let out = t.path().join("killed");
    let a = args("killed");
    let first: Vec<&str> = a.iter().map(String::as_str).collect();
    let resume = [
        "train", "vqvae", "--corpus", "corpus", "--config", "vq.toml", "--resume", "killed",
        "--quiet",
    ];
    let killed = kill_resume_loop(
        "train",
        t.path(),
        &first,
        &resume,
        6,
        full_ms,
        || out.join("latest").exists(),
        || {
            // After any kill, `latest` (when present) names a complete, loadable checkpoint.
            if out.join("latest").exists() {
                let dir = jukebox::train::ckpt::latest(&out).unwrap();
                jukebox::train::ckpt::load(&dir, &candle_core::Device::Cpu).unwrap();
            }
        },
    );
    eprintln!("train: {killed} kills");
    assert!(killed >= 2, "training was not interrupted twice");
    // The finished model equals the uninterrupted one.
    let a = fs::read(t.path().join("straight/model/model.safetensors")).unwrap();
    let b = fs::read(out.join("model/model.safetensors")).unwrap();
    assert!(a == b, "the resumed training ended with different weights");
    let dir = jukebox::train::ckpt::latest(&out).unwrap();
    let ck = jukebox::train::ckpt::load(&dir, &candle_core::Device::Cpu).unwrap();
    assert_eq!(ck.state.step, 12);
}
