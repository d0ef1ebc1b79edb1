include!("dsp.rs");
#[test]
fn dbg() {
    std::env::set_var("JB_TEMPO_DEBUG", "1");
    let got = dsp::tempo_bpm(&drums(80.0, 6, &rock), SR);
    eprintln!("MSG got {got}");
}
