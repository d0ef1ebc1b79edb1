//! Encode a file with the bundled VQ-VAE and decode every level: how much each level keeps.
//!
//!   cargo run --release --example encode_decode -- [AUDIO_FILE]

use jukebox::Jukebox;

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "data/prompts/amen.wav".into());
    let audio = jukebox::audio::load(&jukebox::util::resolve_default(&path))?;
    let jb = Jukebox::load("models/default")?;
    let x = &audio.samples[..audio.samples.len().min(44100 * 4)];
    for level in (0..3).rev() {
        let codes = jb.encode(x, level)?;
        let y = jb.decode(&codes, level)?;
        let n = x.len().min(y.len());
        let err: f64 = (0..n).map(|i| ((x[i] - y[i]) as f64).powi(2)).sum();
        let sig: f64 = x[..n].iter().map(|v| (*v as f64).powi(2)).sum();
        println!(
            "level {level}: {} codes for {:.2} s, SNR {:.1} dB",
            codes.len(),
            n as f64 / 44100.0,
            10.0 * (sig / err.max(1e-12)).log10()
        );
    }
    Ok(())
}
