//! Asking for CUDA where there is none is a clear error (exit 1), never a panic (exit 101):
//! in the CPU build it says the build lacks CUDA; in a `--features cuda` build on a machine
//! without a GPU or driver it says the device cannot be opened (scripts/build-cuda).

use std::process::Command;

fn jukebox(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_jukebox"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The failure a CUDA request must produce on this build. `gpu_answered` is for a `--features
/// cuda` build on a GPU machine, where the device opens and the command goes on.
fn check_cuda_refusal(code: Option<i32>, err: &str, prefix: &str, gpu_answered: bool) {
    if cfg!(feature = "cuda") && gpu_answered {
        assert_ne!(code, Some(101), "{err}");
        return;
    }
    assert_eq!(
        code,
        Some(1),
        "expected a clean error exit, got {code:?}: {err}"
    );
    let first = err.lines().next().unwrap_or("");
    assert!(first.starts_with(&format!("error: {prefix}")), "{err}");
    let want = if cfg!(feature = "cuda") {
        "cannot open CUDA device 0"
    } else {
        "this build has no CUDA support; rebuild with `--features cuda`"
    };
    assert!(first.contains(want), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bench_cuda_is_a_clear_error_without_a_gpu() {
    let (code, err) = jukebox(&[
        "bench", "--device", "cuda", "--prior", "small", "--batch", "1", "--fill", "empty",
        "--prime", "0", "--tokens", "1", "--reps", "1",
    ]);
    check_cuda_refusal(code, &err, "", code == Some(0));
}

#[test]
fn train_device_cuda_is_a_clear_error_without_a_gpu() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path().join("run");
    // The device is opened before the corpus is read, so a missing corpus is not reached.
    let (code, err) = jukebox(&[
        "train",
        "vqvae",
        "--preset",
        "tiny",
        "--corpus",
        "/nonexistent-corpus",
        "-o",
        o.to_str().unwrap(),
        "--steps",
        "1",
        "--quiet",
        "--device",
        "cuda",
    ]);
    // With a GPU the device opens and the missing corpus is the error.
    let gpu = code == Some(1) && !err.contains("CUDA");
    check_cuda_refusal(code, &err, "", gpu);
    let (code, err) = jukebox(&[
        "train",
        "vqvae",
        "--preset",
        "tiny",
        "--corpus",
        "/nonexistent-corpus",
        "-o",
        o.to_str().unwrap(),
        "--device",
        "tpu",
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("unknown device `tpu`: use cpu, cuda or cuda:N"),
        "{err}"
    );
}

#[test]
fn sample_and_study_device_cuda_are_clear_errors_that_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let (code, err) = jukebox(&[
        "sample",
        "--mode",
        "ancestral",
        "--seconds",
        "1",
        "--levels",
        "top",
        "--quiet",
        "--device",
        "cuda",
        "-o",
        run.to_str().unwrap(),
    ]);
    let gpu = code == Some(0);
    check_cuda_refusal(code, &err, "", gpu);
    if !gpu {
        assert!(!run.exists(), "a refused run must not leave a folder");
    }
    let study = tmp.path().join("study");
    let (code, err) = jukebox(&[
        "study",
        "--levels",
        "top",
        "--seeds",
        "1",
        "--no-rank",
        "--device",
        "cuda",
        "-o",
        study.to_str().unwrap(),
    ]);
    let gpu = code == Some(0);
    check_cuda_refusal(code, &err, "", gpu);
    if !gpu {
        assert!(!study.exists(), "a refused study must not leave a folder");
    }
    let (code, err) = jukebox(&[
        "sample",
        "--device",
        "tpu",
        "--seconds",
        "1",
        "-o",
        run.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("unknown device `tpu`: use cpu, cuda or cuda:N"),
        "{err}"
    );
}
