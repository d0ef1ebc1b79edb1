//! Tempo estimation across every built-in pattern, at each of its listed tempos and beyond,
//! rendered with several system kits, plus 4 s and 8 s cuts of the shipped Amen prompt (the
//! lengths `jukebox quality` measures). Each must read within ±2 BPM of the written tempo, or
//! exactly an octave off (`tempo_error_folded`).

use jukebox::drums::{self, Kit, RenderOptions};
use std::path::Path;

const SR: u32 = 44_100;

/// Kits installed by Debian's hydrogen-drumkits / hydrogen-data (acoustic and electronic).
const KITS: &[&str] = &[
    "ColomboAcousticDrumkit",
    "The Black Pearl 1.0",
    "GMRockKit",
    "ForzeeStereo",
];

fn kits() -> Option<Vec<(String, Kit)>> {
    let mut out = Vec::new();
    for name in KITS {
        let dir = Path::new(drums::SYSTEM_KITS).join(name);
        if dir.join("drumkit.xml").is_file() {
            out.push((name.to_string(), Kit::load(&dir).unwrap()));
        }
    }
    if out.is_empty() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI must install hydrogen-drumkits"
        );
        eprintln!("skipping: hydrogen-drumkits is not installed");
        return None;
    }
    Some(out)
}

#[test]
fn builtin_patterns_measure_their_tempo_on_several_kits() {
    let Some(kits) = kits() else { return };
    let mut misses = Vec::new();
    let mut n = 0;
    for p in drums::builtin_patterns().unwrap() {
        let mut tempos = p.tempos.clone();
        tempos.extend([85.0, 150.0, 175.0]);
        for (kit_name, kit) in &kits {
            for &bpm in &tempos {
                for secs in [4.0, 8.0] {
                    // Whole bars covering `secs`, then cut to exactly `secs` (as a prompt is).
                    let bar_s = p.beats_per_bar as f64 * 60.0 / bpm;
                    let opts = RenderOptions {
                        bars: (secs / bar_s).ceil() as usize,
                        ..Default::default()
                    };
                    let r = drums::render(&p, kit, bpm, &opts).unwrap();
                    let cut = &r.samples[..(secs * SR as f64) as usize];
                    let got = jukebox::dsp::tempo_bpm(cut, SR);
                    let err = jukebox::dsp::tempo_error_folded(got, bpm);
                    n += 1;
                    if std::env::var_os("TEMPO_TABLE").is_some() {
                        println!("{:>18} {bpm:>5} {kit_name:>22} {secs} s: {got:7.2}", p.name);
                    }
                    if err >= 2.0 {
                        misses.push(format!(
                            "{} @ {bpm} on {kit_name} ({secs} s): {got:.2}",
                            p.name
                        ));
                    }
                }
            }
        }
    }
    assert!(
        misses.is_empty(),
        "{} of {n} renders off by 2 BPM or more:\n{}",
        misses.len(),
        misses.join("\n")
    );
}

#[test]
fn amen_prompt_cuts_measure_137() {
    let prompt = jukebox::util::resolve_default("data/prompts/amen.wav");
    let a = jukebox::audio::load(&prompt).unwrap();
    assert_eq!(a.samples.len(), 309_022);
    // Whole file, the 4 s prompt cut `jukebox quality` uses, a 2-bar cut, and the file looped
    // to 14 s (the "repeat the prompt" baseline).
    let looped: Vec<f32> = a.samples.iter().chain(&a.samples).copied().collect();
    for (what, x) in [
        ("whole", &a.samples[..]),
        ("4 s", &a.samples[..4 * 44_100]),
        ("2 bars", &a.samples[..154_511]),
        ("looped", &looped[..]),
    ] {
        let got = jukebox::dsp::tempo_bpm(x, SR);
        assert!((got - 137.0).abs() < 2.0, "amen {what}: {got:.2} BPM");
    }
}
