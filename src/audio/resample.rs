//! Band-limited resampling with rubato: the synchronous FFT resampler for rate pairs with a
//! small common block (44.1k/48k/96k/192k/8k/16k/22.05k/32k…), a long windowed-sinc resampler
//! for awkward pairs (e.g. 44101 Hz), where an FFT block would be as long as a second of audio.

use anyhow::{anyhow, bail, Result};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, Fft, FixedAsync, FixedSync, Resampler, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};

/// Largest per-block length (rate / gcd) for which the FFT resampler is used.
const MAX_FFT_BLOCK: usize = 4096;

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Resample mono `samples` from `from` Hz to `to` Hz. The output has
/// `ceil(len * to / from)` samples (as librosa/resampy), aligned with the input (delay removed).
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    if from == 0 || to == 0 {
        bail!("cannot resample from {from} Hz to {to} Hz: rates must be positive");
    }
    if samples.is_empty() {
        return Ok(Vec::new());
    }
    if from == to {
        return Ok(samples.to_vec());
    }
    // rubato's FFT path panics on NaN/inf, and on finite values so large that its sums
    // overflow (both found by the fuzzer); refuse them here. Audio is near [-1, 1].
    const MAX_ABS: f32 = 1e20;
    if let Some(i) = samples
        .iter()
        .position(|x| !x.is_finite() || x.abs() > MAX_ABS)
    {
        bail!(
            "cannot resample: sample {i} is {} (not finite or beyond ±{MAX_ABS:e}); the audio is corrupt",
            samples[i]
        );
    }
    let (fi, ti) = (from as usize, to as usize);
    let g = gcd(fi, ti);
    let input = InterleavedSlice::new(samples, 1, samples.len())
        .map_err(|e| anyhow!("resampler input buffer: {e:?}"))?;
    let mut r: Box<dyn Resampler<f32>> = if fi / g <= MAX_FFT_BLOCK && ti / g <= MAX_FFT_BLOCK {
        // FFT blocks of ~2048 input frames keep the anti-aliasing filter long (sharp cut-off).
        // The block multiple is even so both FFT sizes are even: with an odd output size the
        // delay rubato trims (size / 2, rounded down) is half a sample short and the output lags.
        let min_in = fi / g;
        let mut k = 2048usize.div_ceil(min_in);
        k += k % 2;
        let sub_chunks = 8;
        Box::new(
            Fft::<f32>::new_custom(
                fi,
                ti,
                k * min_in * sub_chunks,
                sub_chunks,
                1,
                WindowFunction::BlackmanHarris2,
                FixedSync::Input,
            )
            .map_err(|e| anyhow!("cannot build the {from}->{to} Hz resampler: {e}"))?,
        )
    } else {
        let params = SincInterpolationParameters::new(512, WindowFunction::BlackmanHarris2)
            .oversampling_factor(256)
            .interpolation(SincInterpolationType::Cubic);
        Box::new(
            Async::<f32>::new_sinc(
                to as f64 / from as f64,
                1.0,
                &params,
                4096,
                1,
                FixedAsync::Input,
            )
            .map_err(|e| anyhow!("cannot build the {from}->{to} Hz resampler: {e}"))?,
        )
    };
    let out = r
        .process_all(&input, samples.len(), None)
        .map_err(|e| anyhow!("resampling {from}->{to} Hz failed: {e}"))?;
    Ok(out.take_data())
}
