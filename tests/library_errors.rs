//! The library's error type at its public boundary (`jukebox::Jukebox`): each problem a caller
//! may handle comes back with its kind and typed details, and the message the CLI prints.

use jukebox::error::{BadAudio, ErrorKind, TensorMismatch, UnknownLabel};
use jukebox::sample::{request::items, Mode, SampleRequest};
use jukebox::Jukebox;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference/fixtures/model")
}

fn request(genre: &str) -> SampleRequest {
    SampleRequest {
        mode: Some(Mode::Ancestral),
        seconds: Some(0.5),
        items: items("unknown", &[genre.to_string()], None, 1, 0).unwrap(),
        levels: "top".into(),
        ..Default::default()
    }
}

#[test]
fn an_unknown_genre_is_typed_with_its_nearest_names() {
    // The reference model has numeric labels only: still an unknown label, with no names near.
    let jb = Jukebox::load(model().to_str().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let e = jb
        .sample(&request("rock"), &dir.path().join("r"), None, None)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnknownLabel, "{e}");
    assert!(e.details::<UnknownLabel>().unwrap().nearest.is_empty());
    // The bundled model has name lists.
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default");
    let jb = Jukebox::load(bundled.to_str().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let e = jb
        .sample(&request("rokc"), &dir.path().join("r"), None, None)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnknownLabel, "{e}");
    let u = e.details::<UnknownLabel>().unwrap();
    assert_eq!((u.field.as_str(), u.name.as_str()), ("genre", "rokc"));
    assert!(u.nearest.iter().any(|n| n == "rock"), "{:?}", u.nearest);
    assert!(e.to_string().contains("unknown genre `rokc`"), "{e}");
}

#[test]
fn a_corrupt_prompt_is_typed_as_bad_audio() {
    let jb = Jukebox::load(model().to_str().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.wav");
    std::fs::write(&bad, b"this is not audio").unwrap();
    let req = SampleRequest {
        mode: Some(Mode::Primed),
        prompt: Some(bad.clone()),
        prompt_seconds: Some(0.2),
        ..request("unknown")
    };
    let e = jb
        .sample(&req, &dir.path().join("r"), None, None)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Audio, "{e}");
    assert_eq!(e.details::<BadAudio>().unwrap().path, bad);
}

#[test]
fn a_checkpoint_missing_a_tensor_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("model");
    std::fs::create_dir(&m).unwrap();
    std::fs::copy(model().join("config.json"), m.join("config.json")).unwrap();
    let mut t = candle_core::safetensors::load(
        model().join("model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let gone = t
        .keys()
        .find(|k| k.contains("encoder") && k.ends_with("weight"))
        .unwrap()
        .clone();
    t.remove(&gone);
    candle_core::safetensors::save(&t, m.join("model.safetensors")).unwrap();
    let e = match Jukebox::load(m.to_str().unwrap()) {
        Ok(_) => panic!("a model without `{gone}` loaded"),
        Err(e) => e,
    };
    assert_eq!(e.kind(), ErrorKind::Checkpoint, "{e}");
    let d = e.details::<TensorMismatch>().unwrap();
    // The file holds Hugging Face names; the error names the official key it maps to.
    assert_eq!(d.missing.len(), 1, "{d:?}");
    assert!(d.missing[0].0.starts_with("encoders."), "{d:?} for {gone}");
    assert!(d.unexpected.is_empty() && d.mis_shaped.is_empty(), "{d:?}");
}

#[test]
fn a_stopped_run_is_typed_as_interrupted_and_resumes() {
    let jb = Jukebox::load(model().to_str().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("r");
    let stop = AtomicBool::new(true);
    let e = jb
        .sample(&request("unknown"), &run, None, Some(&stop))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Interrupted, "{e}");
    let i = e.details::<jukebox::error::Interrupted>().unwrap();
    assert_eq!(i.run_dir.as_deref(), Some(run.as_path()));
    let takes = jb.resume(&run, None, None).unwrap();
    assert_eq!(takes.codes[&2].len(), 1);
}
