//! Helpers shared by the audio test files: synthetic tones, spectral checks, WAV writers.
#![allow(dead_code)]

use jukebox::audio::load;
use realfft::RealFftPlanner;
use std::f32::consts::PI;
use std::path::{Path, PathBuf};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audio")
        .join(name)
}

pub fn sine(freq: f32, rate: u32, n: usize, amp: f32) -> Vec<f32> {
    // Phase in f64: an f32 phase of a long tone jitters and adds broadband noise.
    let w = 2.0 * std::f64::consts::PI * freq as f64 / rate as f64;
    (0..n).map(|i| amp * (w * i as f64).sin() as f32).collect()
}

/// Frequency of the strongest spectral peak (Hann window, parabolic interpolation).
pub fn peak_freq(x: &[f32], rate: u32) -> f32 {
    let n = x.len().min(32768);
    let x = &x[(x.len() - n) / 2..][..n];
    let mut buf: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| v * (0.5 - 0.5 * (2.0 * PI * i as f32 / n as f32).cos()))
        .collect();
    let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n);
    let mut spec = fft.make_output_vec();
    fft.process(&mut buf, &mut spec).unwrap();
    let mag: Vec<f32> = spec.iter().map(|c| c.norm()).collect();
    let k = (1..mag.len() - 1)
        .max_by(|&a, &b| mag[a].total_cmp(&mag[b]))
        .unwrap();
    let (a, b, c) = (mag[k - 1].ln(), mag[k].ln(), mag[k + 1].ln());
    let delta = 0.5 * (a - c) / (a - 2.0 * b + c);
    (k as f32 + delta) * rate as f32 / n as f32
}

/// Energy in [lo, hi] Hz relative to total (Hann window over the middle, away from the edges).
pub fn band_share(x: &[f32], rate: u32, lo: f32, hi: f32) -> f32 {
    let x = &x[x.len() / 8..x.len() * 7 / 8];
    let n = x.len();
    let mut buf: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| v * (0.5 - 0.5 * (2.0 * PI * i as f32 / n as f32).cos()))
        .collect();
    let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n);
    let mut spec = fft.make_output_vec();
    fft.process(&mut buf, &mut spec).unwrap();
    let mut tot = 0f32;
    let mut band = 0f32;
    for (k, c) in spec.iter().enumerate() {
        let f = k as f32 * rate as f32 / n as f32;
        tot += c.norm_sqr();
        if f >= lo && f <= hi {
            band += c.norm_sqr();
        }
    }
    band / tot
}

pub fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
}

/// Write interleaved frames with hound at any int/float depth.
pub fn write_hound(path: &Path, chans: &[Vec<f32>], rate: u32, bits: u16, float: bool) {
    let spec = hound::WavSpec {
        channels: chans.len() as u16,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..chans[0].len() {
        for ch in chans {
            let x = ch[i];
            if float {
                w.write_sample(x).unwrap();
            } else {
                let scale = (1i64 << (bits - 1)) as f32 - 1.0;
                let v = (x * scale).round() as i32;
                if bits == 8 {
                    w.write_sample(v as i8).unwrap();
                } else {
                    w.write_sample(v).unwrap();
                }
            }
        }
    }
    w.finalize().unwrap();
}

/// A hand-made WAV: a 16-byte fmt chunk and a data chunk whose declared size may lie.
pub fn raw_wav(
    tag: u16,
    channels: u16,
    rate: u32,
    bits: u16,
    declared: u32,
    data: &[u8],
) -> Vec<u8> {
    let block = channels * bits.div_ceil(8);
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36u32.wrapping_add(declared)).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&tag.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * block as u32).to_le_bytes());
    v.extend_from_slice(&block.to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&declared.to_le_bytes());
    v.extend_from_slice(data);
    v
}

pub fn pcm16(x: &[f32]) -> Vec<u8> {
    x.iter()
        .flat_map(|v| ((v * 32767.0).round() as i16).to_le_bytes())
        .collect()
}

pub fn err_of(path: &Path) -> String {
    match load(path) {
        Ok(a) => panic!(
            "{} loaded ({} samples) but should fail",
            path.display(),
            a.samples.len()
        ),
        Err(e) => format!("{e:#}"),
    }
}

pub fn assert_err(path: &Path, needles: &[&str]) -> String {
    let msg = err_of(path);
    assert!(
        msg.contains(&path.display().to_string()),
        "message does not name the file: {msg}"
    );
    for n in needles {
        assert!(
            msg.to_lowercase().contains(&n.to_lowercase()),
            "expected {n:?} in: {msg}"
        );
    }
    msg
}
