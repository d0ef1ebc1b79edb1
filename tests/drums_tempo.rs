//! Cross-check: the project's tempo estimator reads the rendered breaks at their written tempo,
//! so prompt-tempo metrics start from a prompt that measures as 137 BPM.

use jukebox::drums::{self, Kit, RenderOptions};
use std::path::Path;

#[test]
fn shipped_prompt_measures_137_bpm() {
    let prompt = jukebox::util::resolve_default("data/prompts/amen.wav");
    let a = jukebox::audio::load(&prompt).unwrap();
    let bpm = jukebox::dsp::tempo_bpm(&a.samples, 44_100);
    let err = jukebox::dsp::tempo_error_folded(bpm, 137.0);
    assert!(err < 2.0, "the estimator reads {bpm:.2} BPM on the 137 BPM prompt");
}

#[test]
fn rendered_breaks_measure_their_tempo() {
    let kit = Path::new(drums::COLOMBO);
    if !kit.join("drumkit.xml").is_file() {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI must install hydrogen-drumkits");
        eprintln!("skipping: hydrogen-drumkits is not installed");
        return;
    }
    let kit = Kit::load(kit).unwrap();
    let mut results = Vec::new();
    for (name, bpm) in [("amen", 160.0), ("rock", 90.0), ("four-on-the-floor", 124.0)] {
        let p = drums::builtin(name).unwrap();
        let opts = RenderOptions { bars: drums::bars_for_seconds(&p, bpm, 12.0), ..Default::default() };
        let r = drums::render(&p, &kit, bpm, &opts).unwrap();
        let got = jukebox::dsp::tempo_bpm(&r.samples, 44_100);
        eprintln!("{name} at {bpm} BPM measures {got:.2}");
        results.push((name, bpm, got));
    }
    for (name, bpm, got) in results {
        let err = jukebox::dsp::tempo_error_folded(got, bpm);
        assert!(err < 2.0, "{name} at {bpm} BPM measures {got:.2}");
    }
}
