//! Full disk (docs/RELIABILITY.md): on a small tmpfs a run that needs more space than there is stops with a
//! clear error, the previous state / checkpoint stays intact and loadable, and once space is
//! freed the run resumes to the same result as an uninterrupted one.
//!
//! Mounting needs root: without it the tests skip with a printed reason, unless `CI=true`.

#[path = "catalogue/support.rs"]
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        if !is_root() {
            skip_or_fail("the full-disk test mounts a tmpfs and needs root");
            return None;
        }
        fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            skip_or_fail("cannot mount a tmpfs (no CAP_SYS_ADMIN in this container?)");
            return None;
        }
        Some(Tmpfs(at.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(ok.success(), "remount failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn no_temp_files(dir: &Path) {
    for e in walkdir(dir) {
        let n = e.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            !n.contains(".tmp"),
            "temp file left behind after a failed write: {}",
            e.display()
        );
    }
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut v = vec![];
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(walkdir(&p));
        } else {
            v.push(p);
        }
    }
    v
}

/// Fill the file system holding `dir` completely.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let p = dir.join("filler");
    let mut f = fs::File::create(&p).unwrap();
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).and_then(|_| f.flush()).is_ok() {}
    while f.write_all(&[0]).and_then(|_| f.flush()).is_ok() {}
    let _ = f.sync_all();
    p
}

const SAMPLE: [&str; 10] = [
    "sample",
    "--seconds",
    "1",
    "--total-seconds",
    "1.9",
    "--levels",
    "top",
    "--n-samples",
    "2",
    "--quiet",
];

#[test]
fn sample_on_a_full_disk_keeps_its_state_and_resumes() {
    let t = tmp();
    let Some(disk) = Tmpfs::mount(&t.path().join("disk"), "64k") else {
        return;
    };
    // The reference, on the ordinary disk.
    let mut a: Vec<&str> = SAMPLE.to_vec();
    a.extend(["--model", model(), "-o", "straight"]);
    let o = jb(&t, &a);
    assert_eq!(o.code, Some(0), "{}", o.stderr);

    // 64 KiB holds run.toml and the codes but not two 88 KB WAV files.
    let run = disk.0.join("run");
    let mut a: Vec<&str> = SAMPLE.to_vec();
    a.extend(["--model", model(), "-o", path_str(&run)]);
    let o = jb(&t, &a);
    expect_err(
        &o,
        &["No space left on device", "previous file is untouched"],
    );
    no_temp_files(&run);
    // Every token was sampled and saved before the disk filled up.
    let spec = jukebox::sample::RunSpec::load(&run).unwrap();
    let state = jukebox::sample::RunState::load_or_default(&run).unwrap();
    assert_eq!(state.levels[&2].rows.len(), 2);
    assert_eq!(state.levels[&2].len(), spec.sample_length / 128);

    // Room again: resume finishes with the same bytes as the straight run.
    disk.resize("4m");
    let o = jb(&t, &["sample", "--resume", path_str(&run), "--quiet"]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    for f in [
        "codes.safetensors",
        "state.safetensors",
        "level_2/sample_0.wav",
        "level_2/sample_1.wav",
    ] {
        let a = fs::read(t.path().join("straight").join(f)).unwrap();
        let b = fs::read(run.join(f)).unwrap();
        assert!(a == b, "{f} differs from the uninterrupted run");
    }

    // Full again: extending the run fails cleanly and leaves every file as it was.
    let before: Vec<(PathBuf, Vec<u8>)> = walkdir(&run)
        .into_iter()
        .map(|p| (p.clone(), fs::read(&p).unwrap()))
        .collect();
    let filler = fill(&disk.0);
    let o = jb(
        &t,
        &[
            "sample",
            "--continue",
            path_str(&run),
            "--seconds",
            "1.5",
            "--quiet",
        ],
    );
    expect_err(&o, &["No space left on device"]);
    no_temp_files(&run);
    for (p, bytes) in &before {
        assert!(
            &fs::read(p).unwrap() == bytes,
            "{} changed by a failed write",
            p.display()
        );
    }
    fs::remove_file(filler).unwrap();
    let o = jb(
        &t,
        &[
            "sample",
            "--continue",
            path_str(&run),
            "--seconds",
            "1.5",
            "--quiet",
        ],
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
}

#[test]
fn training_on_a_full_disk_keeps_the_last_checkpoint() {
    let t = tmp();
    let Some(disk) = Tmpfs::mount(&t.path().join("disk"), "1200k") else {
        return;
    };
    let corpus = t.path().join("corpus");
    fs::create_dir_all(&corpus).unwrap();
    let mut csv = String::from("path,artist,genres\n");
    for i in 0..4 {
        let data = tone(52_920, 1);
        fs::write(
            corpus.join(format!("f{i}.wav")),
            wav_pcm16(44_100, 1, &data),
        )
        .unwrap();
        csv.push_str(&format!("f{i}.wav,Artist {},ambient\n", i % 2));
    }
    fs::write(corpus.join("metadata.csv"), csv).unwrap();
    let o = jb(
        &t,
        &["train", "vqvae", "--preset", "tiny", "--print-config"],
    );
    let mut cfg: toml::Table = o.stdout.parse().unwrap();
    let train = cfg["train"].as_table_mut().unwrap();
    train.insert("steps".into(), 12.into());
    train.insert("ckpt_every".into(), 2.into());
    train.insert("valid_every".into(), 4.into());
    fs::write(t.path().join("vq.toml"), toml::to_string(&cfg).unwrap()).unwrap();

    // Each checkpoint is ~440 KB and two are kept: the third does not fit in 1200 KiB.
    let out = disk.0.join("train");
    let args = [
        "train",
        "vqvae",
        "--corpus",
        "corpus",
        "--config",
        "vq.toml",
        "-o",
        path_str(&out),
        "--quiet",
    ];
    let o = jb(&t, &args);
    expect_err(&o, &["No space left on device"]);
    no_temp_files(&out);
    let dir = jukebox::train::ckpt::latest(&out).unwrap();
    let ck = jukebox::train::ckpt::load(&dir, &candle_core::Device::Cpu).unwrap();
    assert!(
        ck.state.step >= 2 && ck.state.step < 12,
        "step {}",
        ck.state.step
    );

    disk.resize("8m");
    let o = jb(
        &t,
        &[
            "train",
            "vqvae",
            "--corpus",
            "corpus",
            "--config",
            "vq.toml",
            "--resume",
            path_str(&out),
            "--quiet",
        ],
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let dir = jukebox::train::ckpt::latest(&out).unwrap();
    assert_eq!(
        jukebox::train::ckpt::load(&dir, &candle_core::Device::Cpu)
            .unwrap()
            .state
            .step,
        12
    );
}
