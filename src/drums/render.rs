//! Sample-accurate rendering of a [`Pattern`] with a [`Kit`].

use super::kit::Kit;
use super::pattern::{Pattern, Role};
use anyhow::{bail, Result};

/// 10^(−1/20): the default peak, −1 dBFS.
pub const MINUS_1_DBFS: f32 = 0.891_250_9;

#[derive(Clone, Debug)]
pub struct RenderOptions {
    pub sample_rate: u32,
    /// Bars to render; the pattern loops (bar b plays pattern bar b mod pattern.bars).
    pub bars: usize,
    /// Ring-out kept after the last bar line, in seconds (0 = cut exactly on the bar line).
    pub tail_seconds: f64,
    /// Random onset shift of up to ± this many milliseconds (0 = on the grid).
    pub humanize_ms: f64,
    /// Random velocity scale of up to ± this fraction (0 = as written).
    pub velocity_jitter: f32,
    /// Seed of the humanisation.
    pub seed: u64,
    /// Scale the result to this peak (e.g. 0.891 = −1 dBFS); None keeps the kit's gains.
    pub peak: Option<f32>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            sample_rate: 44_100,
            bars: 4,
            tail_seconds: 0.0,
            humanize_ms: 0.0,
            velocity_jitter: 0.0,
            seed: 0,
            peak: Some(MINUS_1_DBFS),
        }
    }
}

/// One placed hit, as rendered.
#[derive(Clone, Debug, PartialEq)]
pub struct Onset {
    pub sample: usize,
    pub role: Role,
    pub velocity: f32,
    pub bar: usize,
    /// 1-based step within the bar.
    pub step: usize,
}

#[derive(Clone, Debug)]
pub struct Rendered {
    pub samples: Vec<f32>,
    /// Samples up to the last bar line: round(bars · beats · 60 / bpm · sr).
    pub bar_length: usize,
    pub onsets: Vec<Onset>,
    /// The gain applied by `peak` normalisation (1 if none).
    pub gain: f32,
}

/// Render `pattern` at `bpm`. Each hit starts at its exact grid sample (see
/// [`Pattern::onset_sample`]); the output is `bar_length + tail` samples long.
pub fn render(pattern: &Pattern, kit: &Kit, bpm: f64, opts: &RenderOptions) -> Result<Rendered> {
    if !(20.0..=400.0).contains(&bpm) {
        bail!("tempo {bpm} BPM is outside 20–400");
    }
    if opts.bars == 0 || opts.bars > 10_000 {
        bail!("bars = {} must be in 1..=10000", opts.bars);
    }
    if !(0.0..=10.0).contains(&opts.tail_seconds) {
        bail!("tail {} s must be in 0–10 s", opts.tail_seconds);
    }
    let sr = opts.sample_rate;
    let bar_length = pattern.length_samples(bpm, sr, opts.bars);
    let total = bar_length + (opts.tail_seconds * sr as f64).round() as usize;
    let mut out = vec![0f32; total];
    let mut onsets = Vec::new();
    let loops = opts.bars.div_ceil(pattern.bars);
    let steps_per_loop = pattern.bars * pattern.steps_per_bar;
    let max_shift = opts.humanize_ms * 1e-3 * sr as f64;
    let mut counter = 0u64;
    for r in 0..loops {
        for hit in &pattern.hits {
            let step = r * steps_per_loop + hit.step;
            let bar = step / pattern.steps_per_bar;
            if bar >= opts.bars {
                continue;
            }
            counter += 1;
            let mut at = pattern.onset_sample(step, bpm, sr) as i64;
            if max_shift > 0.0 {
                let u = crate::util::uniform(opts.seed, 1, 0, counter);
                at += ((u * 2.0 - 1.0) * max_shift).round() as i64;
            }
            let mut velocity = hit.velocity;
            if opts.velocity_jitter > 0.0 {
                let u = crate::util::uniform(opts.seed, 2, 0, counter) as f32;
                velocity =
                    (velocity * (1.0 + (u * 2.0 - 1.0) * opts.velocity_jitter)).clamp(0.01, 1.0);
            }
            let at = at.max(0) as usize;
            if at >= total {
                continue;
            }
            let Some(voice) = kit.voices.get(&hit.role) else {
                bail!("kit `{}` cannot play `{}`", kit.info.name, hit.role.name());
            };
            let layer = voice.layer_for(velocity);
            let g = velocity * layer.gain * voice.gain;
            let n = layer.samples.len().min(total - at);
            for (o, s) in out[at..at + n].iter_mut().zip(&layer.samples[..n]) {
                *o += g * s;
            }
            onsets.push(Onset {
                sample: at,
                role: hit.role,
                velocity,
                bar,
                step: step % pattern.steps_per_bar + 1,
            });
        }
    }
    onsets.sort_by(|a, b| a.sample.cmp(&b.sample).then(a.role.cmp(&b.role)));
    let mut gain = 1.0;
    if let Some(p) = opts.peak {
        let peak = out.iter().fold(0f32, |m, x| m.max(x.abs()));
        if peak > 0.0 {
            gain = p / peak;
            out.iter_mut().for_each(|x| *x *= gain);
        }
    } else if out.iter().any(|x| x.abs() > 1.0) {
        // Keep the mix inside the 16-bit range instead of clipping.
        let peak = out.iter().fold(0f32, |m, x| m.max(x.abs()));
        gain = 0.999 / peak;
        out.iter_mut().for_each(|x| *x *= gain);
    }
    Ok(Rendered {
        samples: out,
        bar_length,
        onsets,
        gain,
    })
}

/// Bars for about `seconds` of audio, rounded to whole pattern loops (at least one loop).
pub fn bars_for_seconds(pattern: &Pattern, bpm: f64, seconds: f64) -> usize {
    let bar_s = pattern.beats_per_bar as f64 * 60.0 / bpm;
    let loops = (seconds / (bar_s * pattern.bars as f64)).round().max(1.0) as usize;
    loops * pattern.bars
}
