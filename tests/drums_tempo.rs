//! Cross-check with `dsp::tempo_bpm`: rendered breaks should measure at their written tempo, so
//! prompt-tempo metrics start from a prompt that measures as 137 BPM.

use jukebox::drums::{self, Kit, RenderOptions};
use std::path::Path;

fn measure(names: &[(&str, f64)]) -> Option<Vec<(String, f64, f64)>> {
    let kit = Path::new(drums::COLOMBO);
    if !kit.join("drumkit.xml").is_file() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI must install hydrogen-drumkits"
        );
        eprintln!("skipping: hydrogen-drumkits is not installed");
        return None;
    }
    let kit = Kit::load(kit).unwrap();
    let mut out = Vec::new();
    for &(name, bpm) in names {
        let p = drums::builtin(name).unwrap();
        let opts = RenderOptions {
            bars: drums::bars_for_seconds(&p, bpm, 12.0),
            ..Default::default()
        };
        let r = drums::render(&p, &kit, bpm, &opts).unwrap();
        out.push((
            name.to_string(),
            bpm,
            jukebox::dsp::tempo_bpm(&r.samples, 44_100),
        ));
    }
    Some(out)
}

fn assert_close(results: &[(String, f64, f64)]) {
    for (name, bpm, got) in results {
        let err = jukebox::dsp::tempo_error_folded(*got, *bpm);
        assert!(
            err < 2.0,
            "{name} at {bpm} BPM measures {got:.2} (all: {results:?})"
        );
    }
}

#[test]
fn straight_grooves_measure_their_tempo() {
    let Some(r) = measure(&[("rock", 90.0), ("four-on-the-floor", 124.0)]) else {
        return;
    };
    assert_close(&r);
}

// The syncopated Amen grid (snares 3 and 5 sixteenths apart) once read as 4/5 of its tempo
// (109.65 BPM on the 137 BPM prompt); the metrical comb's subdivision lags fixed that.
#[test]
fn amen_renders_measure_their_tempo() {
    let prompt = jukebox::util::resolve_default("data/prompts/amen.wav");
    let a = jukebox::audio::load(&prompt).unwrap();
    let mut r = vec![(
        "amen.wav".to_string(),
        137.0,
        jukebox::dsp::tempo_bpm(&a.samples, 44_100),
    )];
    r.extend(measure(&[("amen", 137.0), ("amen", 160.0)]).unwrap_or_default());
    assert_close(&r);
}
