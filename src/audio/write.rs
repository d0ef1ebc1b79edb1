//! WAV writers (hound into memory, then one atomic write).

use crate::util::atomic_write;
use anyhow::{anyhow, bail, Context, Result};
use std::io::Cursor;
use std::path::Path;

fn check(path: &Path, samples: &[f32], sample_rate: u32) -> Result<()> {
    if sample_rate == 0 {
        bail!("{}: cannot write a WAV with sample rate 0", path.display());
    }
    if let Some(i) = samples.iter().position(|x| !x.is_finite()) {
        bail!(
            "{}: refusing to write audio with a non-finite sample ({}) at index {i} ({:.6} s)",
            path.display(),
            samples[i],
            i as f64 / sample_rate as f64
        );
    }
    Ok(())
}

fn encode(
    path: &Path,
    spec: hound::WavSpec,
    n: usize,
    mut put: impl FnMut(&mut hound::WavWriter<&mut Cursor<Vec<u8>>>) -> hound::Result<()>,
) -> Result<()> {
    let bytes = (spec.bits_per_sample as usize / 8) * n;
    if bytes as u64 > u32::MAX as u64 - 64 {
        bail!(
            "{}: {n} samples do not fit in a WAV file (4 GiB limit)",
            path.display()
        );
    }
    let mut cur = Cursor::new(Vec::with_capacity(bytes + 64));
    {
        let mut w = hound::WavWriter::new(&mut cur, spec)
            .map_err(|e| anyhow!("{}: cannot start WAV: {e}", path.display()))?;
        put(&mut w).map_err(|e| anyhow!("{}: cannot encode WAV: {e}", path.display()))?;
        w.finalize()
            .map_err(|e| anyhow!("{}: cannot finish WAV: {e}", path.display()))?;
    }
    atomic_write(path, cur.get_ref()).with_context(|| format!("writing WAV {}", path.display()))
}

/// Write mono 16-bit PCM; samples are clamped to [-1, 1] and scaled by 32767.
pub fn write_wav_i16(path: &Path, samples: &[f32], sample_rate: u32) -> Result<()> {
    check(path, samples, sample_rate)?;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    encode(path, spec, samples.len(), |w| {
        for &x in samples {
            w.write_sample((x.clamp(-1.0, 1.0) * 32767.0).round() as i16)?;
        }
        Ok(())
    })
}

/// Write mono 32-bit float, unclamped (exact round trip).
pub fn write_wav_f32(path: &Path, samples: &[f32], sample_rate: u32) -> Result<()> {
    check(path, samples, sample_rate)?;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    encode(path, spec, samples.len(), |w| {
        for &x in samples {
            w.write_sample(x)?;
        }
        Ok(())
    })
}
