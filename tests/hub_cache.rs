//! Model ids resolve through a Hugging Face hub cache laid out as `huggingface_hub` writes it
//! (refs naming commits, snapshot files as symlinks into blobs), offline.

use std::path::Path;
use std::process::Command;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A cache holding the reference fixture model as `test/tiny` at COMMIT, ref `main`.
fn fake_cache(root: &Path) {
    let repo = root.join("models--test--tiny");
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference/fixtures/model");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    let snap = repo.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    for (i, f) in ["config.json", "model.safetensors"].iter().enumerate() {
        let blob = repo.join(format!("blobs/blob{i}"));
        std::fs::copy(model.join(f), &blob).unwrap();
        std::os::unix::fs::symlink(format!("../../blobs/blob{i}"), snap.join(f)).unwrap();
    }
}

fn jukebox(cache: &Path, args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_jukebox"))
        .args(args)
        .env("HF_HUB_CACHE", cache)
        .env_remove("HF_HOME")
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn model_ids_resolve_from_the_hub_cache_offline() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("hub");
    fake_cache(&cache);
    for id in [
        "test/tiny",
        "test/tiny@main",
        &format!("test/tiny@{COMMIT}"),
    ] {
        let (ok, out, err) = jukebox(&cache, &["inspect", id]);
        assert!(ok, "{id}: {err}");
        assert!(
            out.contains(COMMIT),
            "{id}: the snapshot path is shown: {out}"
        );
    }
    // Sampling from an id gives the same codes as from the folder it resolves to.
    let run = |model: &str, out: &Path| {
        let (ok, _, err) = jukebox(
            &cache,
            &[
                "sample",
                "--model",
                model,
                "--seconds",
                "0.5",
                "--levels",
                "top",
                "--seed",
                "4",
                "-o",
                out.to_str().unwrap(),
                "--quiet",
            ],
        );
        assert!(ok, "{err}");
        std::fs::read(out.join("state.safetensors")).unwrap()
    };
    let folder =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference/fixtures/model");
    assert_eq!(
        run("test/tiny", &d.path().join("a")),
        run(folder.to_str().unwrap(), &d.path().join("b"))
    );
    // What is not cached says where it looked and how to fetch it.
    let (ok, _, err) = jukebox(&cache, &["inspect", "test/absent"]);
    assert!(!ok);
    assert!(
        err.contains("huggingface-cli download test/absent"),
        "{err}"
    );
    assert!(err.contains(cache.to_str().unwrap()), "{err}");
    let (ok, _, err) = jukebox(&cache, &["inspect", "test/tiny@v9"]);
    assert!(!ok);
    assert!(err.contains("--revision v9"), "{err}");
}
