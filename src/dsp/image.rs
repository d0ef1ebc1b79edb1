//! Spectrogram PNGs on a fixed dB scale, so images of different samples compare directly.

use super::stft_mag;
use crate::util::atomic_write;
use anyhow::{bail, Context, Result};
use image::{ImageFormat, RgbImage};
use std::io::Cursor;
use std::path::Path;

/// How a spectrogram image is drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectrogramOpts {
    pub n_fft: usize,
    pub hop: usize,
    /// Image height in pixels (frequency rows).
    pub height: u32,
    /// Longest image; longer audio is max-pooled over time by a whole factor.
    pub max_width: u32,
    /// Colour scale in dBFS (a full-scale sine peaks at 0 dB). Fixed, not per image.
    pub db_min: f32,
    pub db_max: f32,
    /// Lowest frequency shown.
    pub fmin_hz: f32,
    /// Mel-spaced rows (true) or linear (false).
    pub mel_axis: bool,
}

impl Default for SpectrogramOpts {
    fn default() -> Self {
        SpectrogramOpts {
            n_fft: 2048,
            hop: 512,
            height: 256,
            max_width: 2048,
            db_min: -100.0,
            db_max: 0.0,
            fmin_hz: 20.0,
            mel_axis: true,
        }
    }
}

/// Magma-like colour map from control points (dark purple → orange → pale yellow).
fn colour(t: f32) -> [u8; 3] {
    const C: [[f32; 3]; 7] = [
        [0.0, 0.0, 4.0],
        [40.0, 11.0, 84.0],
        [101.0, 21.0, 110.0],
        [159.0, 42.0, 99.0],
        [212.0, 72.0, 66.0],
        [245.0, 125.0, 21.0],
        [252.0, 255.0, 164.0],
    ];
    let x = t.clamp(0.0, 1.0) * (C.len() - 1) as f32;
    let i = (x.floor() as usize).min(C.len() - 2);
    let f = x - i as f32;
    let mut out = [0u8; 3];
    for c in 0..3 {
        out[c] = (C[i][c] * (1.0 - f) + C[i + 1][c] * f).round() as u8;
    }
    out
}

/// The spectrogram as an RGB image (low frequencies at the bottom).
pub fn spectrogram_image(samples: &[f32], sr: u32, opts: &SpectrogramOpts) -> Result<RgbImage> {
    if opts.height == 0 || opts.max_width == 0 || opts.n_fft < 16 || opts.hop == 0 {
        bail!("spectrogram options out of range: {opts:?} (need height, max_width, hop > 0 and n_fft >= 16)");
    }
    if !opts.db_min.is_finite() || !opts.db_max.is_finite() || opts.db_max <= opts.db_min {
        bail!(
            "spectrogram dB range is empty or not finite: db_min {}, db_max {}",
            opts.db_min,
            opts.db_max
        );
    }
    let mag = stft_mag(samples, opts.n_fft, opts.hop, opts.n_fft);
    // dBFS: a full-scale sine's peak bin reads |X| = sum(window) / 2.
    let norm = 2.0 / (opts.n_fft as f32 / 2.0);
    let pool = mag.len().div_ceil(opts.max_width as usize).max(1);
    let width = mag.len().div_ceil(pool);
    let nyq = sr as f32 / 2.0;
    let n_bins = opts.n_fft / 2 + 1;
    let bin_hz = sr as f32 / opts.n_fft as f32;
    let fmin = opts.fmin_hz.clamp(0.0, nyq * 0.5);
    let (lo, hi) = if opts.mel_axis {
        (
            super::hz_to_mel(fmin as f64) as f32,
            super::hz_to_mel(nyq as f64) as f32,
        )
    } else {
        (fmin, nyq)
    };
    let to_hz = |v: f32| {
        if opts.mel_axis {
            super::mel_to_hz(v as f64) as f32
        } else {
            v
        }
    };
    // Bin range of each row (row 0 = lowest frequency); at least one bin.
    let rows: Vec<(usize, usize)> = (0..opts.height)
        .map(|r| {
            let a = to_hz(lo + (hi - lo) * r as f32 / opts.height as f32) / bin_hz;
            let b = to_hz(lo + (hi - lo) * (r + 1) as f32 / opts.height as f32) / bin_hz;
            let a = (a.round() as usize).min(n_bins - 1);
            let b = (b.round() as usize).clamp(a + 1, n_bins);
            (a, b)
        })
        .collect();
    let mut img = RgbImage::new(width as u32, opts.height);
    for x in 0..width {
        let frames = &mag[x * pool..((x + 1) * pool).min(mag.len())];
        for (r, &(a, b)) in rows.iter().enumerate() {
            let m = frames
                .iter()
                .flat_map(|f| f[a..b].iter())
                .fold(0f32, |m, &v| m.max(v));
            let db = 20.0 * (m * norm).max(1e-10).log10();
            let t = (db - opts.db_min) / (opts.db_max - opts.db_min);
            let y = opts.height - 1 - r as u32;
            img.put_pixel(x as u32, y, image::Rgb(colour(t)));
        }
    }
    Ok(img)
}

/// Write the spectrogram PNG atomically.
pub fn spectrogram_png(
    path: &Path,
    samples: &[f32],
    sr: u32,
    opts: &SpectrogramOpts,
) -> Result<()> {
    let img = spectrogram_image(samples, sr, opts)
        .with_context(|| format!("spectrogram for {}", path.display()))?;
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, ImageFormat::Png)
        .with_context(|| format!("encoding PNG {}", path.display()))?;
    atomic_write(path, buf.get_ref())
        .with_context(|| format!("writing spectrogram {}", path.display()))
}
