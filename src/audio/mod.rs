//! Audio I/O: decode any supported file to 44.1 kHz mono f32 in [-1, 1], and write WAV.
//!
//! Decoding uses symphonia (WAV, AIFF, FLAC, MP3, OGG Vorbis), mixing to mono by averaging as the
//! official code (librosa) does, then resamples with rubato's band-limited resamplers. Bad input
//! (empty, truncated, lying headers, unsupported codecs, non-finite samples) is an error that names
//! the file; valid audio in an unusual shape is converted with a warning (docs/CONVENTIONS.md, "Lengths and audio").

mod decode;
mod resample;
mod write;

pub use resample::resample;
pub use write::{write_wav_f32, write_wav_i16};

use anyhow::{bail, Context, Result};
use std::path::Path;

/// The model's sample rate (upstream jukebox/hparams.py `sr=44100`).
pub const SAMPLE_RATE: u32 = 44_100;
/// Lowest and highest accepted source rates (docs/CONVENTIONS.md, "Lengths and audio").
pub const MIN_SOURCE_RATE: u32 = 8_000;
pub const MAX_SOURCE_RATE: u32 = 384_000;
/// Most channels accepted (mixed to mono by averaging).
pub const MAX_CHANNELS: usize = 32;
/// Longest audio `load` decodes. A tiny FLAC of constant samples can expand to hours of audio, so
/// this bounds memory whatever a file declares; use `load_prefix` to read the start of longer files.
pub const MAX_SECONDS: f64 = 3600.0;

/// Decoded audio at the model rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// 44.1 kHz mono samples in [-1, 1].
    pub samples: Vec<f32>,
    /// Always [`SAMPLE_RATE`].
    pub sample_rate: u32,
    /// The file's own sample rate.
    pub source_rate: u32,
    /// The file's own channel count (mixed down to mono).
    pub source_channels: usize,
    /// Things the user should know (unusual shape, silence, clipping, skipped packets).
    pub warnings: Vec<String>,
}

impl Audio {
    /// Length in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / self.sample_rate as f64
    }
}

/// Whether a file name has an extension this crate decodes (wav, flac, mp3, ogg/oga).
pub fn is_audio_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".wav", ".flac", ".mp3", ".ogg", ".oga"]
        .iter()
        .any(|e| lower.ends_with(e))
}

/// Decode a whole file to 44.1 kHz mono.
pub fn load(path: &Path) -> Result<Audio> {
    load_impl(path, None)
}

/// Extra seconds decoded past a prompt before it is cut to length, by every prompt loader: the
/// resampler's filter and a compressed format's last frame then end outside the kept samples,
/// so a prompt's samples do not depend on where decoding stopped. 0.5 s is far more than any
/// of them (a sinc filter here spans a few ms, an MP3 frame 26 ms) and costs little to decode.
pub const PREFIX_MARGIN_SECONDS: f64 = 0.5;

/// Decode only the first `max_seconds` of a file (enough for a prompt), to 44.1 kHz mono.
/// The result may be shorter when the file is shorter.
pub fn load_prefix(path: &Path, max_seconds: f64) -> Result<Audio> {
    if !max_seconds.is_finite() || max_seconds <= 0.0 {
        bail!(
            "{}: the length to read must be a positive number of seconds, got {max_seconds}",
            path.display()
        );
    }
    load_impl(path, Some(max_seconds))
}

fn load_impl(path: &Path, max_seconds: Option<f64>) -> Result<Audio> {
    let limit_s = max_seconds.map_or(MAX_SECONDS, |s| s.min(MAX_SECONDS));
    // Every reason a file cannot be decoded (unreadable, corrupt, unsupported, empty) is one
    // typed error for callers; its message already names the file.
    let d = decode::decode_file(path, limit_s, max_seconds.is_some())
        .map_err(|e| crate::error::BadAudio::new(path, format!("{e:#}")))?;
    let mut warnings = d.warnings;
    let name = path.display();

    if d.channels > 2 {
        warnings.push(format!(
            "{name}: {} channels mixed down to mono by averaging",
            d.channels
        ));
    }
    if d.rate < 22_050 {
        warnings.push(format!(
            "{name}: low sample rate {} Hz; nothing above {} Hz is in the signal",
            d.rate,
            d.rate / 2
        ));
    } else if d.rate > 96_000 {
        warnings.push(format!(
            "{name}: high sample rate {} Hz resampled to {SAMPLE_RATE} Hz",
            d.rate
        ));
    }
    if d.mono.len() < 128 {
        warnings.push(format!(
            "{name}: very short audio ({} samples at {} Hz)",
            d.mono.len(),
            d.rate
        ));
    }

    let mut samples = if d.rate == SAMPLE_RATE {
        d.mono
    } else {
        resample(&d.mono, d.rate, SAMPLE_RATE)
            .with_context(|| format!("{name}: resampling {} Hz to {SAMPLE_RATE} Hz", d.rate))?
    };
    if let Some(s) = max_seconds {
        let keep = (s * SAMPLE_RATE as f64).round() as usize;
        samples.truncate(keep);
    }

    let peak = samples.iter().fold(0f32, |m, &x| m.max(x.abs()));
    if peak == 0.0 {
        warnings.push(format!("{name}: the audio is completely silent"));
    }
    if d.peak > 1.0 {
        warnings.push(format!(
            "{name}: samples reach {:.3} (above full scale); clipped to [-1, 1]",
            d.peak
        ));
    }
    // Resampling can overshoot full scale slightly (Gibbs ringing); keep the promised range.
    for x in samples.iter_mut() {
        *x = x.clamp(-1.0, 1.0);
    }
    Ok(Audio {
        samples,
        sample_rate: SAMPLE_RATE,
        source_rate: d.rate,
        source_channels: d.channels,
        warnings,
    })
}
