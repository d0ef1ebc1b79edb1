//! Shared helpers for the study tests: a synthetic drum prompt, a label vocabulary and a
//! fake-runner study.
#![allow(dead_code)]

use jukebox::study::plan::{ModelFacts, Plan, PlanSpec, Vocab};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const SR: u32 = 44100;
pub const BPM: f64 = 120.0;

/// Seconds per bar at [`BPM`].
pub fn bar_seconds() -> f64 {
    4.0 * 60.0 / BPM
}

/// A rock beat at 120 BPM: kicks on 1 and 3 (low thump), snares on 2 and 4 (noise bursts) and
/// eighth-note ride ticks. (A syncopated Amen-like grid makes `dsp::tempo_bpm` pick 4/5 of the
/// tempo, so the tests use an unambiguous beat.)
pub fn drum_loop(bars: usize) -> Vec<f32> {
    let sr = SR as f64;
    let step = 60.0 / BPM / 4.0; // sixteenth
    let n = (bars as f64 * bar_seconds() * sr).round() as usize;
    let mut x = vec![0f32; n];
    let hit = |t: f64, kind: u8, x: &mut Vec<f32>| {
        let start = (t * sr) as usize;
        for k in 0..6000usize {
            let i = start + k;
            if i >= x.len() {
                break;
            }
            let tt = k as f64 / sr;
            let v = match kind {
                0 => (2.0 * std::f64::consts::PI * 60.0 * tt).sin() * (-tt * 25.0).exp() * 0.8,
                1 => {
                    let noise = jukebox::util::uniform(1, 2, i as u64, k as u64) * 2.0 - 1.0;
                    noise * (-tt * 30.0).exp() * 0.5
                }
                _ => (2.0 * std::f64::consts::PI * 6000.0 * tt).sin() * (-tt * 80.0).exp() * 0.2,
            };
            x[i] += v as f32;
        }
    };
    for b in 0..bars {
        let t0 = b as f64 * bar_seconds();
        for s in [0, 8] {
            hit(t0 + s as f64 * step, 0, &mut x);
        }
        for s in [4, 12] {
            hit(t0 + s as f64 * step, 1, &mut x);
        }
        for s in (0..16).step_by(2) {
            hit(t0 + s as f64 * step, 2, &mut x);
        }
    }
    x.iter().map(|v| v.clamp(-1.0, 1.0)).collect()
}

pub fn vocab() -> Vocab {
    Vocab {
        genres: vec![
            ("unknown".into(), 0),
            ("rock".into(), 1),
            ("jazz".into(), 2),
            ("techno".into(), 3),
        ],
        artists: vec![("unknown".into(), 0), ("ann".into(), 1), ("bob".into(), 2)],
        n_genres: 4,
        n_artists: 3,
    }
}

pub fn facts() -> ModelFacts {
    ModelFacts {
        sample_rate: SR,
        hops: vec![8, 32, 128],
    }
}

/// 2 genres × 2 artists × 2 seeds + controls; 2 bars of prompt (enough for a tempo), 4 bars in total.
pub fn spec(prompt: &Path) -> PlanSpec {
    PlanSpec {
        prompt: Some(prompt.display().to_string()),
        model: Some("fake".into()),
        prompt_seconds: Some(2.0 * bar_seconds()),
        seconds: Some(4.0 * bar_seconds()),
        genres: Some(vec!["rock".into(), "jazz".into()]),
        artists: Some(vec!["ann".into(), "bob".into()]),
        seeds: Some(2),
        max_batch: Some(3),
        levels: Some("top".into()),
        ..Default::default()
    }
}

/// Write the 4-bar prompt into `dir` and return its path.
pub fn write_prompt(dir: &Path) -> PathBuf {
    let p = dir.join("prompt.wav");
    jukebox::audio::write_wav_i16(&p, &drum_loop(4), SR).unwrap();
    p
}

/// The plan the library tests run with the fake runner (so it records `runner = "fake"`).
pub fn plan(prompt: &Path) -> Plan {
    let mut p = Plan::build(&spec(prompt), &vocab(), &facts()).unwrap();
    p.runner = jukebox::study::RunnerKind::Fake;
    p
}

/// Every file under `root` (relative path → bytes).
pub fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Compare two snapshots with a readable message.
pub fn assert_same(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>, what: &str) {
    let ka: Vec<&String> = a.keys().collect();
    let kb: Vec<&String> = b.keys().collect();
    assert_eq!(ka, kb, "{what}: different file sets");
    for (k, v) in a {
        assert!(v == &b[k], "{what}: {k} differs");
    }
}

/// Parse a CSV written by the study (no quoted commas in the columns we read).
pub fn read_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    lines
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(String::from))
                .collect()
        })
        .collect()
}

/// A model folder holding only label lists (what a fake-runner study reads): `genres` and
/// `artists` get ids 1, 2, … after `unknown;0`. Returns the folder.
pub fn label_model(dir: &Path, genres: &[&str], artists: &[&str]) -> PathBuf {
    let list = |names: &[&str]| {
        std::iter::once("unknown;0".to_string())
            .chain(
                names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| format!("{n};{}", i + 1)),
            )
            .map(|l| l + "\n")
            .collect::<String>()
    };
    let model = dir.join("model");
    jukebox::util::atomic_write(&model.join("labels/genres.txt"), list(genres).as_bytes()).unwrap();
    jukebox::util::atomic_write(&model.join("labels/artists.txt"), list(artists).as_bytes())
        .unwrap();
    model
}
