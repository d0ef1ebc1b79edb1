//! The sampling pipeline on the reference fixture model (random weights, tiny): every mode,
//! resume after a stop at several points, seeds, per-item labels, and clear errors.

use jukebox::checkpoint::ModelDir;
use jukebox::prior::WeightFormat;
use jukebox::sample::{
    self, model_identity, ItemSpec, LevelSettings, Mode, Outcome, RunOptions, RunSpec, RunState,
};
use std::path::{Path, PathBuf};
use std::process::Command;

fn model_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference/fixtures/model")
}

fn quiet() -> RunOptions<'static> {
    RunOptions {
        progress: false,
        ..Default::default()
    }
}

fn spec(
    md: &ModelDir,
    mode: Mode,
    prompt: Option<PathBuf>,
    items: Vec<ItemSpec>,
    levels: Vec<usize>,
) -> RunSpec {
    let settings = md
        .config
        .hop_fraction
        .iter()
        .map(|&h| LevelSettings {
            temperature: 0.99,
            top_k: 0,
            top_p: 0.0,
            hop_fraction: h,
        })
        .collect();
    RunSpec {
        version: "test".into(),
        model: model_path(),
        model_id: model_identity(md).unwrap(),
        mode,
        prompt_samples: if prompt.is_some() { 4096 } else { 0 },
        prompt,
        // 80 top tokens: two top windows, several upsampler windows.
        sample_length: 80 * 128,
        total_length: 44100,
        sample_rate: 44100,
        levels,
        settings,
        chunk_size: 16,
        max_batch: 4,
        items,
        level_items: vec![],
        weights: Default::default(),
        parent: None,
    }
}

fn item(artist: &str, genre: &str, seed: u64) -> ItemSpec {
    ItemSpec {
        artist: artist.into(),
        genres: vec![genre.into()],
        lyrics: None,
        seed,
    }
}

fn run_to_end(md: &ModelDir, dir: &Path) -> RunState {
    match sample::run(md, dir, &quiet()).unwrap() {
        Outcome::Finished(_) => {}
        Outcome::Interrupted => panic!("interrupted"),
    }
    RunState::load_or_default(dir).unwrap()
}

fn prompt_wav(dir: &Path) -> PathBuf {
    let p = dir.join("prompt.wav");
    let x: Vec<f32> = (0..20000)
        .map(|i| (i as f32 * 0.05).sin() * 0.5 * ((i / 2205) % 2) as f32)
        .collect();
    jukebox::audio::write_wav_i16(&p, &x, 44100).unwrap();
    p
}

#[test]
fn ancestral_all_levels_and_determinism() {
    let md = ModelDir::open(&model_path()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let items = vec![item("#1", "#2", 7), item("#3", "#4", 8)];
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let s = spec(&md, Mode::Ancestral, None, items.clone(), vec![2, 1, 0]);
    s.save(&a).unwrap();
    s.save(&b).unwrap();
    let sa = run_to_end(&md, &a);
    let sb = run_to_end(&md, &b);
    assert_eq!(sa.levels, sb.levels, "same seeds must give the same codes");
    for l in 0..3 {
        let hop = [8, 32, 128][l];
        assert_eq!(sa.levels[&l].len(), 80 * 128 / hop, "level {l} length");
        for i in 0..2 {
            let w = a.join(format!("level_{l}/sample_{i}.wav"));
            let r = hound::WavReader::open(&w).unwrap();
            assert_eq!(r.spec().sample_rate, 44100);
            assert_eq!(r.spec().bits_per_sample, 16);
            assert_eq!(r.len() as usize, 80 * 128);
        }
    }
    // Different seeds give different codes; items with other labels differ too.
    assert_ne!(sa.levels[&2].rows[0], sa.levels[&2].rows[1]);
    let c = tmp.path().join("c");
    let mut s2 = spec(
        &md,
        Mode::Ancestral,
        None,
        vec![item("#1", "#2", 99), item("#3", "#4", 8)],
        vec![2],
    );
    s2.max_batch = 1; // batch position and batch size must not change an item's stream
    s2.save(&c).unwrap();
    let sc = run_to_end(&md, &c);
    assert_ne!(sc.levels[&2].rows[0], sa.levels[&2].rows[0]);
    assert_eq!(sc.levels[&2].rows[1], sa.levels[&2].rows[1]);
    assert!(a.join("codes.safetensors").exists());
    // Entropies were recorded for every generated token.
    let e = &sa.entropy[&2];
    assert_eq!(e.count, vec![80, 80]);
    let (raw, filt) = e.mean(0);
    assert!(raw > 0.0 && raw <= 6.0 + 1e-6 && filt > 0.0, "{raw} {filt}");
}

#[test]
fn q8_weights_are_recorded_and_sample_deterministically() {
    let md = ModelDir::open(&model_path()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let items = vec![item("#1", "#2", 7), item("#3", "#4", 8)];
    let f32_spec = spec(&md, Mode::Ancestral, None, items.clone(), vec![2, 1]);
    let q8_spec = RunSpec {
        weights: WeightFormat::Q8,
        ..f32_spec.clone()
    };
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    q8_spec.save(&a).unwrap();
    q8_spec.save(&b).unwrap();
    f32_spec.save(&c).unwrap();
    // The format is part of the run file (old runs, without the key, stay f32).
    let text = std::fs::read_to_string(RunSpec::path(&a)).unwrap();
    assert!(text.contains("weights = \"q8\""), "{text}");
    assert!(!std::fs::read_to_string(RunSpec::path(&c))
        .unwrap()
        .contains("weights"));
    assert_eq!(RunSpec::load(&a).unwrap().weights, WeightFormat::Q8);
    // Loaded as int8 layer by layer; the memory check counts a byte per dense weight.
    let p = md
        .prior_as(2, WeightFormat::Q8, &candle_core::Device::Cpu)
        .unwrap();
    assert_eq!(p.weight_format(), WeightFormat::Q8);
    let top = jukebox::checkpoint::Component::Prior(2);
    let (b32, b8) = (
        jukebox::guard::component_bytes_as(&md, top, WeightFormat::F32).unwrap(),
        jukebox::guard::component_bytes_as(&md, top, WeightFormat::Q8).unwrap(),
    );
    assert_eq!(b32, jukebox::guard::component_bytes(&md, top, 4).unwrap());
    assert!(b8 < b32 && b8 > b32 / 4, "{b8} vs {b32}");
    let (sa, sb, sc) = (
        run_to_end(&md, &a),
        run_to_end(&md, &b),
        run_to_end(&md, &c),
    );
    assert_eq!(
        sa.levels, sb.levels,
        "q8 sampling must be deterministic for a seed"
    );
    for l in [2, 1] {
        assert_eq!(sa.levels[&l].len(), sc.levels[&l].len(), "level {l} length");
    }
    // The run really sampled with int8 weights: some of its tokens differ from f32's.
    assert_ne!(sa.levels, sc.levels, "q8 gave exactly the f32 tokens");
    // A bad --dtype is refused before any run is made.
    let out = tmp.path().join("d");
    let m = model_path();
    let (ok, e) = cli(&[
        "sample",
        "--model",
        m.to_str().unwrap(),
        "--seconds",
        "0.3",
        "--dtype",
        "int4",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && e.contains("--dtype") && e.contains("q8"), "{e}");
    assert!(!out.join("run.toml").exists());
}

#[test]
fn resume_after_stop_equals_uninterrupted() {
    let md = ModelDir::open(&model_path()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let items = vec![item("#1", "#2", 3), item("#5", "#1", 4)];
    let full = tmp.path().join("full");
    spec(&md, Mode::Ancestral, None, items.clone(), vec![2, 1, 0])
        .save(&full)
        .unwrap();
    let want = run_to_end(&md, &full);
    for stop in [0usize, 1, 3, 7] {
        let d = tmp.path().join(format!("stop{stop}"));
        spec(&md, Mode::Ancestral, None, items.clone(), vec![2, 1, 0])
            .save(&d)
            .unwrap();
        let opts = RunOptions {
            progress: false,
            stop_after_windows: Some(stop),
            ..Default::default()
        };
        assert_eq!(sample::run(&md, &d, &opts).unwrap(), Outcome::Interrupted);
        let got = run_to_end(&md, &d);
        assert_eq!(got, want, "resume after {stop} windows");
        let wa = std::fs::read(full.join("level_0/sample_1.wav")).unwrap();
        let wb = std::fs::read(d.join("level_0/sample_1.wav")).unwrap();
        assert_eq!(wa, wb);
    }
}

#[test]
fn primed_keeps_prompt_and_continue_extends() {
    let md = ModelDir::open(&model_path()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let prompt = prompt_wav(tmp.path());
    let d = tmp.path().join("primed");
    let s = spec(
        &md,
        Mode::Primed,
        Some(prompt),
        vec![item("#1", "#2", 1), item("#2", "#3", 2)],
        vec![2, 1, 0],
    );
    s.save(&d).unwrap();
    let st = run_to_end(&md, &d);
    for l in 0..3 {
        let hop = [8, 32, 128][l];
        let p = &st.prompt[&l];
        let n = 4096 / hop;
        for r in &st.levels[&l].rows {
            assert_eq!(&r[..n], &p[..n], "level {l}: the prompt codes are kept");
        }
        assert!(d.join(format!("prompt/level_{l}.wav")).exists());
    }
    // Continue to a longer total: the old codes are a prefix of the new ones.
    let mut spec2 = RunSpec::load(&d).unwrap();
    spec2.sample_length = 96 * 128;
    spec2.save(&d).unwrap();
    let st2 = run_to_end(&md, &d);
    for l in 0..3 {
        for (a, b) in st.levels[&l].rows.iter().zip(&st2.levels[&l].rows) {
            assert_eq!(&b[..a.len()], &a[..]);
            assert_eq!(b.len(), 96 * 128 / [8, 32, 128][l]);
        }
    }
}

#[test]
fn upsample_only_chosen_samples() {
    let md = ModelDir::open(&model_path()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("top");
    let items = vec![
        item("#1", "#2", 1),
        item("#2", "#3", 2),
        item("#3", "#4", 3),
    ];
    spec(&md, Mode::Ancestral, None, items, vec![2])
        .save(&d)
        .unwrap();
    run_to_end(&md, &d);
    assert!(!d.join("level_1").exists());
    let out = Command::new(env!("CARGO_BIN_EXE_jukebox"))
        .args([
            "upsample",
            d.to_str().unwrap(),
            "--samples",
            "0,2",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = RunState::load_or_default(&d).unwrap();
    assert_eq!(st.levels[&1].rows.len(), 2);
    assert_eq!(st.levels[&0].rows.len(), 2);
    assert!(d.join("level_0/sample_2.wav").exists());
    assert!(!d.join("level_0/sample_1.wav").exists());
}

fn cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_jukebox"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let m = model_path();
    let m = m.to_str().unwrap();
    let out = tmp.path().join("r");
    let o = out.to_str().unwrap();
    // Every failing command must leave no run behind.
    let gone = || {
        assert!(
            !out.join("run.toml").exists(),
            "a failed command left a run behind"
        )
    };
    let (ok, e) = cli(&[
        "sample",
        "--model",
        m,
        "--mode",
        "primed",
        "--seconds",
        "0.3",
        "--out",
        o,
    ]);
    assert!(!ok && e.contains("--prompt"), "{e}");
    let prompt = prompt_wav(tmp.path());
    let p = prompt.to_str().unwrap();
    let (ok, e) = cli(&[
        "sample",
        "--model",
        m,
        "--prompt",
        p,
        "--prompt-seconds",
        "0.4",
        "--seconds",
        "0.3",
        "--out",
        o,
    ]);
    assert!(
        !ok && e.contains("shorter than the requested length"),
        "{e}"
    );
    let (ok, e) = cli(&[
        "sample",
        "--model",
        m,
        "--prompt",
        p,
        "--prompt-seconds",
        "1.0",
        "--seconds",
        "1.5",
        "--out",
        o,
    ]);
    assert!(
        !ok && e.contains("shorter than the") && e.contains("prompt-seconds"),
        "{e}"
    );
    let (ok, e) = cli(&[
        "sample",
        "--model",
        m,
        "--seconds",
        "0.3",
        "--artist",
        "#999",
        "--out",
        o,
    ]);
    assert!(!ok && e.contains("999"), "{e}");
    gone();
    let (ok, e) = cli(&["sample", "--model", m, "--seconds", "0", "--out", o]);
    assert!(!ok && e.contains("positive"), "{e}");
    // Longer than the fixture prior's 2 s maximum song length.
    let (ok, e) = cli(&[
        "sample",
        "--model",
        m,
        "--seconds",
        "0.3",
        "--total-seconds",
        "5",
        "--out",
        o,
    ]);
    assert!(!ok && e.contains("outside this prior's range"), "{e}");
    let (ok, e) = cli(&["sample", "--resume", tmp.path().to_str().unwrap()]);
    assert!(!ok && e.contains("run.toml"), "{e}");
}
