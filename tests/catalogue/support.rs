//! Helpers for `tests/catalogue.rs`: running the binary, judging its output, and building
//! hostile inputs in temp dirs.

#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use jukebox::checkpoint::writer::LegacyWriter;
use jukebox::checkpoint::{Store, WriteItem};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_jukebox");

/// The reference fixture model (HF layout, tiny).
pub fn model() -> &'static str {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/reference/fixtures/model"
    )
}

pub fn crate_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

fn finish(mut c: Command, t: &tempfile::TempDir) -> Out {
    // RUST_BACKTRACE=1: even then the user must see a message, never frames.
    let o = c
        .current_dir(t.path())
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Run `jukebox ARGS` in the temp dir, with the memory limit variable cleared.
pub fn jb(t: &tempfile::TempDir, args: &[&str]) -> Out {
    jb_env(t, args, &[])
}

pub fn jb_env(t: &tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut c = Command::new(BIN);
    c.args(args).env_remove("JUKEBOX_MEMORY_LIMIT");
    for (k, v) in env {
        c.env(k, v);
    }
    finish(c, t)
}

/// Run under an address-space limit (`ulimit -v`, KiB), so an allocation of what a hostile
/// header declares fails loudly instead of passing unnoticed on a big machine.
pub fn run_limited_memory(t: &tempfile::TempDir, kib: u64, args: &[&str]) -> Out {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
        .arg(BIN)
        .args(args)
        .env_remove("JUKEBOX_MEMORY_LIMIT")
        // Few malloc arenas and threads: their reservations count against the limit.
        .env("MALLOC_ARENA_MAX", "2")
        .env("RAYON_NUM_THREADS", "2");
    finish(c, t)
}

pub fn encode(t: &tempfile::TempDir, audio: &Path) -> Out {
    jb(
        t,
        &["encode", "--model", model(), "-o", "o.st", path_str(audio)],
    )
}

pub fn inspect(t: &tempfile::TempDir, file: &Path) -> Out {
    jb(t, &["inspect", path_str(file)])
}

/// No panic message, no backtrace, whatever the exit code.
pub fn assert_clean(o: &Out) {
    for s in [&o.stderr, &o.stdout] {
        assert!(!s.contains("panicked"), "panic:\n{s}");
        assert!(!s.contains("stack backtrace"), "backtrace:\n{s}");
        assert!(!s.contains("RUST_BACKTRACE"), "backtrace hint:\n{s}");
        for l in s.lines() {
            let t = l.trim_start();
            let frame = l.starts_with(' ')
                && t.split_once(": ")
                    .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
            let at = t.starts_with("at ") && t.contains(".rs:");
            assert!(!frame && !at, "backtrace frame `{l}` in:\n{s}");
        }
    }
}

/// A clean failure: non-zero exit (not a signal), `error:` and every word in stderr.
pub fn expect_err(o: &Out, words: &[&str]) {
    assert_clean(o);
    assert!(
        matches!(o.code, Some(c) if c != 0),
        "expected a clean failure, got {:?}\nstdout:\n{}\nstderr:\n{}",
        o.code,
        o.stdout,
        o.stderr
    );
    assert!(
        o.stderr.contains("error:"),
        "no `error:` line:\n{}",
        o.stderr
    );
    for w in words {
        assert!(o.stderr.contains(w), "expected `{w}` in:\n{}", o.stderr);
    }
}

/// Success with a warning that contains every word.
pub fn expect_ok_warn(o: &Out, words: &[&str]) {
    assert_clean(o);
    assert_eq!(o.code, Some(0), "expected success:\n{}", o.stderr);
    assert!(o.stderr.contains("warning"), "no warning:\n{}", o.stderr);
    for w in words {
        assert!(o.stderr.contains(w), "expected `{w}` in:\n{}", o.stderr);
    }
}

/// A WAV file; `declared` replaces the data chunk's size (and the RIFF size to match).
pub fn wav_raw(
    rate: u32,
    ch: u16,
    bits: u16,
    fmt: u16,
    data: &[u8],
    declared: Option<u32>,
) -> Vec<u8> {
    let ba = ch * bits / 8;
    let n = declared.unwrap_or(data.len() as u32);
    let mut v = b"RIFF".to_vec();
    v.extend(n.saturating_add(36).to_le_bytes());
    v.extend(b"WAVEfmt ");
    v.extend(16u32.to_le_bytes());
    v.extend(fmt.to_le_bytes());
    v.extend(ch.to_le_bytes());
    v.extend(rate.to_le_bytes());
    v.extend((rate * ba as u32).to_le_bytes());
    v.extend(ba.to_le_bytes());
    v.extend(bits.to_le_bytes());
    v.extend(b"data");
    v.extend(n.to_le_bytes());
    v.extend(data);
    v
}

pub fn wav_pcm16(rate: u32, ch: u16, data: &[u8]) -> Vec<u8> {
    wav_raw(rate, ch, 16, 1, data, None)
}

/// `frames` frames of a 16-bit tone in `ch` channels (first sample is non-zero).
pub fn tone(frames: usize, ch: usize) -> Vec<u8> {
    (0..frames)
        .flat_map(|i| {
            let x = ((i as f32 * 0.0627 + 0.3).sin() * 8000.0) as i16;
            std::iter::repeat_n(x, ch)
        })
        .flat_map(|x| x.to_le_bytes())
        .collect()
}

pub fn safetensors_bytes(header: &str, data_len: usize) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend(std::iter::repeat_n(0u8, data_len));
    b
}

/// A small legacy/zip checkpoint: storage 0 holds 6 f32 elements.
pub fn small_writer() -> LegacyWriter {
    let dev = Device::Cpu;
    let mut w = LegacyWriter::new();
    let a = Tensor::arange(0f32, 6., &dev)
        .unwrap()
        .reshape((2, 3))
        .unwrap();
    w.add_tensor("prior.x_emb.weight", &a).unwrap();
    let b = Tensor::new(&[1f32, 2.], &dev).unwrap();
    w.add_tensor("prior.pos_emb.pos_emb", &b).unwrap();
    w
}

/// A copy of the fixture model whose tensor `key` (HF name) has shape `shape`.
pub fn model_with_tensor_replaced(dir: &Path, key: &str, shape: &[usize]) {
    fs::create_dir_all(dir).unwrap();
    fs::copy(
        Path::new(model()).join("config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    let s = Store::open(&Path::new(model()).join("model.safetensors")).unwrap();
    assert!(s.get(key).is_some(), "fixture has no {key}");
    let dev = Device::Cpu;
    let tensors: Vec<(String, Tensor)> = s
        .entries
        .keys()
        .map(|k| {
            let t = if k == key {
                Tensor::zeros(shape, DType::F32, &dev).unwrap()
            } else {
                s.load(k, DType::F32, &dev).unwrap()
            };
            (k.clone(), t)
        })
        .collect();
    let items = tensors
        .iter()
        .map(|(k, t)| WriteItem::from_tensor(k.clone(), t))
        .collect();
    let meta = [("format".to_string(), "pt".to_string())]
        .into_iter()
        .collect();
    jukebox::checkpoint::safetensors_io::write(&dir.join("model.safetensors"), items, &meta)
        .unwrap();
}

/// The fixture model with name lists, so names (not only `#id`) are accepted.
pub fn labelled_model(t: &tempfile::TempDir) -> PathBuf {
    let md = t.path().join("labelled");
    fs::create_dir_all(md.join("labels")).unwrap();
    for f in ["config.json", "model.safetensors"] {
        fs::copy(Path::new(model()).join(f), md.join(f)).unwrap();
    }
    fs::write(
        md.join("labels/genres.txt"),
        "unknown;0\nrock;1\npop;2\njazz;3\nhip hop;4\n",
    )
    .unwrap();
    fs::write(
        md.join("labels/artists.txt"),
        "unknown;0\nthe beatles;1\nella fitzgerald;2\n",
    )
    .unwrap();
    md
}

/// A new 1 s top-level run with `extra` flags.
pub fn sample_new(t: &tempfile::TempDir, md: &Path, extra: &[&str]) -> Out {
    let mut a = vec![
        "sample",
        "--model",
        path_str(md),
        "-o",
        "run",
        "--seconds",
        "1",
        "--total-seconds",
        "1.5",
        "--levels",
        "top",
        "--quiet",
    ];
    a.extend_from_slice(extra);
    jb(t, &a)
}

/// A finished top-level run in `t/done`.
pub fn finished_top_run(t: &tempfile::TempDir) -> PathBuf {
    let o = jb(
        t,
        &[
            "sample",
            "--model",
            model(),
            "-o",
            "done",
            "--seconds",
            "1",
            "--total-seconds",
            "1.5",
            "--levels",
            "top",
            "--quiet",
        ],
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    t.path().join("done")
}

pub fn is_root() -> bool {
    // /proc/self/status: "Uid:\treal\teffective\t..."
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skip (printing why) unless in CI, where a missing system part is a failure.
pub fn skip_or_fail(reason: &str) {
    if in_ci() {
        panic!("CI=true but {reason}");
    }
    eprintln!("SKIPPED: {reason}");
}

/// A directory nobody can write to: a read-only tmpfs when root (root ignores permissions),
/// else a 0555 directory. Unmounted / restored on drop.
pub struct ReadOnlyDir {
    path: PathBuf,
    mounted: bool,
}

impl ReadOnlyDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ReadOnlyDir {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.path).status();
        } else {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(&self.path, fs::Permissions::from_mode(0o755));
        }
    }
}

pub fn read_only_dir(t: &tempfile::TempDir) -> Option<ReadOnlyDir> {
    let path = t.path().join("readonly");
    fs::create_dir_all(&path).unwrap();
    if is_root() {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            skip_or_fail("cannot mount a read-only tmpfs (root without CAP_SYS_ADMIN?)");
            return None;
        }
        Some(ReadOnlyDir {
            path,
            mounted: true,
        })
    } else {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o555)).unwrap();
        Some(ReadOnlyDir {
            path,
            mounted: false,
        })
    }
}
