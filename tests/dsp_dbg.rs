include!("dsp.rs");
#[test]
fn dbg() {
    for bpm in [80.0, 100.0, 120.0, 137.0, 160.0, 180.0] {
        std::env::set_var("JB_TEMPO_DEBUG", format!("{bpm}"));
        eprint!("MSG rock ");
        let _ = dsp::tempo_bpm(&drums(bpm, 6, &rock), SR);
        eprint!("MSG click ");
        let _ = dsp::tempo_bpm(&clicks(bpm, 12.0), SR);
    }
}
