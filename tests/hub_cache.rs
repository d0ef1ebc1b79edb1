//! Model ids resolve through a Hugging Face hub cache laid out as `huggingface_hub` writes it
//! (refs naming commits, snapshot files as symlinks into blobs), offline (`HF_HUB_OFFLINE=1`);
//! and a model that is not cached is downloaded from `HF_ENDPOINT` (here a local fake hub).

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
        .env("HF_HUB_OFFLINE", "1")
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

/// A fake hub serving the reference model as `test/remote` (the resolve endpoint with ranges,
/// commit and etag headers, as huggingface.co answers); returns its address.
fn fake_hub() -> String {
    use axum::extract::Path as P;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = axum::Router::new().route(
                "/{org}/{name}/resolve/{rev}/{*file}",
                axum::routing::get(
                    |P((org, name, _rev, file)): P<(String, String, String, String)>,
                     headers: HeaderMap| async move {
                        let model = Path::new(env!("CARGO_MANIFEST_DIR"))
                            .join("tests/fixtures/reference/fixtures/model");
                        let ok = org == "test"
                            && name == "remote"
                            && ["config.json", "model.safetensors"].contains(&file.as_str());
                        if !ok {
                            return (StatusCode::NOT_FOUND, "no such file").into_response();
                        }
                        let body = std::fs::read(model.join(&file)).unwrap();
                        let range = headers
                            .get("range")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|r| r.strip_prefix("bytes="))
                            .unwrap_or("0-");
                        let (a, b) = range.split_once('-').unwrap();
                        let a: usize = a.parse().unwrap();
                        let b: usize = b.parse().unwrap_or(body.len() - 1);
                        (
                            StatusCode::PARTIAL_CONTENT,
                            [
                                ("x-repo-commit", COMMIT.to_string()),
                                ("etag", format!("\"etag-{file}\"")),
                                ("content-range", format!("bytes {a}-{b}/{}", body.len())),
                            ],
                            body[a..=b].to_vec(),
                        )
                            .into_response()
                    },
                ),
            );
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(l, app).await.unwrap();
        });
    });
    format!("http://{addr}")
}

#[test]
fn a_model_not_in_the_cache_is_downloaded_into_it() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("hub");
    let endpoint = fake_hub();
    let run = |args: &[&str], offline: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_jukebox"));
        c.args(args)
            .env("HF_HUB_CACHE", &cache)
            .env("HF_ENDPOINT", &endpoint)
            .env_remove("HF_HOME");
        if offline {
            c.env("HF_HUB_OFFLINE", "1");
        } else {
            c.env_remove("HF_HUB_OFFLINE");
        }
        let o = c.output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // Offline, nothing is fetched.
    let (ok, _, err) = run(&["inspect", "test/remote"], true);
    assert!(
        !ok && err.contains("huggingface-cli download test/remote"),
        "{err}"
    );
    // Online, it is downloaded into the cache layout, then used.
    let (ok, out, err) = run(&["inspect", "test/remote"], false);
    assert!(ok, "{err}");
    assert!(out.contains(COMMIT), "{out}");
    let snap = cache.join("models--test--remote/snapshots").join(COMMIT);
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference/fixtures/model");
    for f in ["config.json", "model.safetensors"] {
        assert_eq!(
            std::fs::read(snap.join(f)).unwrap(),
            std::fs::read(model.join(f)).unwrap(),
            "{f}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(cache.join("models--test--remote/refs/main")).unwrap(),
        COMMIT
    );
    // Now cached: it works offline too.
    let (ok, _, err) = run(&["inspect", "test/remote"], true);
    assert!(ok, "{err}");
    // A repo the hub does not have: a clear error, nothing cached.
    let (ok, _, err) = run(&["inspect", "test/missing"], false);
    assert!(!ok);
    assert!(err.contains("downloading it failed"), "{err}");
    assert!(err.contains("config.json"), "{err}");
}
