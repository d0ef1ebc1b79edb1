//! Two takes continuing the Amen prompt with the bundled model, the top level only, then the
//! favourite one upsampled: the listen–pick–extend loop in a few calls.
//!
//!   cargo run --release --example amen_takes -- [GENRE]

use jukebox::sample::{request::items, Mode, SampleRequest};
use jukebox::Jukebox;
use std::path::Path;

fn main() -> anyhow::Result<()> {
    let genre = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "breakbeat".into());
    let jb = Jukebox::load("models/default")?;
    let out = Path::new("runs/example-amen");
    let req = SampleRequest {
        mode: Some(Mode::Primed),
        prompt: Some(jukebox::util::resolve_default("data/prompts/amen.wav")),
        prompt_seconds: Some(3.504),
        seconds: Some(6.0),
        items: items("unknown", &[genre], None, 2, 0)?,
        levels: "top".into(),
        ..Default::default()
    };
    let takes = match jb.sample(&req, out, None, None) {
        Ok(t) => t,
        // A second run of the example finishes (or reuses) the first one's directory.
        Err(_) if out.join("run.toml").exists() => jb.resume(out, None, None)?,
        Err(e) => return Err(e.into()),
    };
    for (i, a) in takes.audio[&2].iter().enumerate() {
        let rms = (a.iter().map(|x| x * x).sum::<f32>() / a.len() as f32).sqrt();
        println!("take {i}: {:.2} s, rms {rms:.3}", a.len() as f64 / 44100.0);
    }
    let up = jb
        .upsample(out, &[1], None, None)
        .or_else(|_| jukebox::facade::takes(out))?;
    println!(
        "take 1 now has levels {:?}: {}",
        up.audio.keys().collect::<Vec<_>>(),
        out.display()
    );
    Ok(())
}
