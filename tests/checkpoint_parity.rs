//! `jukebox parity` on the checkpoint folders, ModelDir::validate, and that both catch damage.

use jukebox::checkpoint::ModelDir;
use jukebox::parity::{self, FolderKind, Report};
use std::path::{Path, PathBuf};

fn refdir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference")
}

fn run(dir: &Path) -> (FolderKind, Report) {
    let mut r = Report::new(false);
    let k = parity::run(dir, &mut r).unwrap();
    (k, r)
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
            let mut p = std::fs::metadata(&to).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            p.set_readonly(false);
            std::fs::set_permissions(&to, p).unwrap();
        }
    }
}

#[test]
fn checkpoint_and_key_folders_pass_strict() {
    let (k, r) = run(&refdir().join("checkpoints"));
    assert_eq!(k, FolderKind::Checkpoints);
    assert_eq!(r.n_failed(true), 0, "{:#?}", r.checks);
    assert_eq!(r.checks.len(), 11);
    let (k, r) = run(&refdir().join("official-keys"));
    assert_eq!(k, FolderKind::OfficialKeys);
    assert_eq!(r.n_failed(true), 0, "{:#?}", r.checks);
    assert_eq!(r.checks.len(), 21);
}

#[test]
fn damaged_tables_and_files_fail() {
    let tmp = tempfile::tempdir().unwrap();
    // A wrong shape in an official table.
    let keys = tmp.path().join("official-keys");
    copy_dir(&refdir().join("official-keys"), &keys);
    let p = keys.join("vqvae.json");
    let t = std::fs::read_to_string(&p).unwrap();
    let t = t.replacen("\"shape\": [64, 1, 4]", "\"shape\": [64, 2, 4]", 1);
    std::fs::write(&p, t).unwrap();
    let (_, r) = run(&keys);
    let bad: Vec<_> = r
        .checks
        .iter()
        .filter(|c| c.status == parity::Status::Fail)
        .collect();
    assert_eq!(bad.len(), 1, "{bad:#?}");
    assert_eq!(bad[0].name, "keys/vqvae/keys_shapes");
    assert!(
        bad[0]
            .detail
            .contains("encoders.0.level_blocks.0.model.0.0.weight"),
        "{}",
        bad[0].detail
    );
    // One flipped bit in a stored tensor (the legacy file's last byte is tensor data).
    let root = tmp.path().join("ref");
    std::fs::create_dir_all(&root).unwrap();
    copy_dir(&refdir().join("checkpoints"), &root.join("checkpoints"));
    copy_dir(
        &refdir().join("fixtures-lyrics"),
        &root.join("fixtures-lyrics"),
    );
    copy_dir(&refdir().join("fixtures"), &root.join("fixtures"));
    let f = root.join("checkpoints/dense_views.pth.tar");
    let mut b = std::fs::read(&f).unwrap();
    let n = b.len();
    b[n - 1] ^= 1;
    std::fs::write(&f, b).unwrap();
    let (_, r) = run(&root.join("checkpoints"));
    let bad: Vec<_> = r
        .checks
        .iter()
        .filter(|c| c.status == parity::Status::Fail)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(bad, vec!["checkpoints/dense_views.pth.tar/values"]);
}

#[test]
fn model_dir_validate_lists_every_problem() {
    ModelDir::open(&refdir().join("fixtures/model"))
        .unwrap()
        .validate()
        .unwrap();
    ModelDir::open(&refdir().join("checkpoints/hf_sharded"))
        .unwrap()
        .validate()
        .unwrap();
    // Drop one tensor and reshape another: one error names both, with shapes.
    let tmp = tempfile::tempdir().unwrap();
    let src = jukebox::checkpoint::Store::open(&refdir().join("fixtures/model/model.safetensors"))
        .unwrap();
    let items: Vec<jukebox::checkpoint::WriteItem> = src
        .entries
        .iter()
        .filter(|(k, _)| k.as_str() != "vqvae.bottleneck.level_blocks.1.codebook")
        .map(|(k, e)| {
            let shape = if k == "priors.0.prior.pos_emb.pos_emb" {
                vec![32, 128]
            } else {
                e.shape.clone()
            };
            jukebox::checkpoint::WriteItem {
                name: k.clone(),
                dtype: e.dtype,
                shape,
                bytes: Box::new(move || Ok(e.bytes().into_owned())),
            }
        })
        .collect();
    jukebox::checkpoint::safetensors_io::write(
        &tmp.path().join("model.safetensors"),
        items,
        &Default::default(),
    )
    .unwrap();
    std::fs::copy(
        refdir().join("fixtures/model/config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();
    let err = ModelDir::open(tmp.path()).unwrap().validate().unwrap_err();
    // Typed: each component's mismatch under its name.
    let m = err
        .downcast_ref::<jukebox::error::ModelMismatch>()
        .expect("a typed ModelMismatch");
    let names: Vec<&str> = m.components.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(names, ["vqvae", "prior level 2"]);
    assert_eq!(m.components[0].1.missing.len(), 1);
    assert_eq!(m.components[1].1.mis_shaped.len(), 1);
    let e = format!("{err:#}");
    assert!(
        e.contains("missing     bottleneck.level_blocks.1.k  expected [64, 16]"),
        "{e}"
    );
    assert!(
        e.contains("shape       prior.pos_emb.pos_emb  expected [64, 64], found [32, 128]"),
        "{e}"
    );
}
