//! `jukebox bench`: throughput of the VQ-VAE and of KV-cached prior sampling on this machine,
//! with random weights, against the memory-bandwidth roofline.
//!
//! Every figure is one [`Measurement`] (a JSON line in `--json`), shaped like the PyTorch
//! reference script's records (`tests/fixtures/reference/bench.py`) so that
//! `scripts/bench-vs-torch` can pair them. Timings never run in `cargo test`; the tests only
//! smoke-test the harness on a tiny config.

pub mod init;
pub mod prior;
pub mod sys;
pub mod train;
pub mod vqvae;

use serde::Serialize;
use std::time::Instant;

pub use init::{random_vb, RandomInit};
pub use prior::{prior_preset, PriorBenchOpts, PRIOR_PRESETS};
pub use sys::{bandwidth, peak_rss, reset_peak_rss, Bandwidth};
pub use vqvae::VqvaeBenchOpts;

/// One benchmark figure.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Measurement {
    /// e.g. `vqvae_encode_level0`, `prior_sample`, `prior_prefill`, `bandwidth`.
    pub kind: String,
    /// Preset name (`official`, `small`, `mid`, `1b`).
    pub config: String,
    /// Weight storage dtype (compute is f32).
    pub dtype: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    /// Prior: KV-cache fill at the start of the timed steps (`empty`, `half`, `full`, `prime`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fill: Option<String>,
    /// Prior: window position of the first timed step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pos: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prime: Option<usize>,
    /// Prior: steps timed (each step samples one token per batch item).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<usize>,
    /// Best wall time of the repeats, seconds.
    pub wall_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wall_s_median: Option<f64>,
    /// VQ-VAE: seconds of audio per wall second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_s_per_wall_s: Option<f64>,
    /// Prior: sampling steps per second (tokens per second per item).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps_per_s: Option<f64>,
    /// Prior: tokens per second over the whole batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_s_total: Option<f64>,
    /// Prior: mean bytes one step reads (weights once + every item's KV range).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_per_step: Option<f64>,
    /// Weight bytes one step reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_bytes: Option<f64>,
    /// steps/s ÷ (copy bandwidth ÷ bytes_per_step): the roofline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roofline_share: Option<f64>,
    /// The same against the read-only bandwidth (stricter: reads are what a step does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roofline_share_read: Option<f64>,
    /// Peak RSS of the process during this phase, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss: Option<u64>,
    /// Bandwidth (bytes/s) for `kind = bandwidth`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_bytes_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_bytes_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<usize>,
    pub threads: usize,
    /// Training benches: `rust` (the PyTorch reference writes `torch`).
    #[serde(rename = "impl", skip_serializing_if = "Option::is_none")]
    pub implementation: Option<String>,
    /// Training benches: timed optimiser steps, and the untimed warm-up steps before them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_steps: Option<usize>,
    /// Training benches: window in samples (VQ-VAE) or tokens (prior).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
    /// Training benches: loss of the first (warm-up) and last step (a sanity check that it trains).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_first: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_last: Option<f64>,
    /// 1-minute load average before and after a long measurement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_start: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_end: Option<f64>,
    /// Half-precision and q8 weights: logits of teacher-forced sampling steps against the
    /// same model in f32, max |Δ| and RMS(Δ) / RMS(f32 logits), and the share of steps
    /// whose most likely token is the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logits_max_err: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logits_rel_rms_err: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argmax_agree: Option<f64>,
    /// 1-minute load average when the figure was taken (noise indicator).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load1: Option<f64>,
    /// Prefill: whether its products ran on AMX tiles (`ops::amx`: bf16 weights on a CPU with
    /// AMX-BF16), so that a figure says which kernel it measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amx: Option<bool>,
}

impl Measurement {
    pub fn new(kind: &str, config: &str, dtype: &str) -> Self {
        Self {
            kind: kind.to_string(),
            config: config.to_string(),
            dtype: dtype.to_string(),
            threads: rayon::current_num_threads(),
            load1: load_average(),
            ..Default::default()
        }
    }
}

/// The 1-minute load average (None off Linux).
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Wall times of `reps` runs of `f` after one warm-up: (min, median).
pub fn time_reps<T>(
    reps: usize,
    mut f: impl FnMut() -> candle_core::Result<T>,
) -> candle_core::Result<(f64, f64)> {
    f()?;
    let mut ts = Vec::with_capacity(reps.max(1));
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f()?;
        ts.push(t.elapsed().as_secs_f64());
    }
    Ok(min_median(&mut ts))
}

/// (min, median) of a non-empty list (sorted in place).
pub fn min_median(ts: &mut [f64]) -> (f64, f64) {
    ts.sort_by(f64::total_cmp);
    if ts.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    (ts[0], ts[ts.len() / 2])
}

/// Human units for the progress table.
pub fn fmt_bytes(b: f64) -> String {
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.0} kB", b / 1e3)
    }
}

/// One line of the summary table for a measurement.
pub fn summary_line(m: &Measurement) -> String {
    let mut s = format!("{:<24} {:<8} {:<5}", m.kind, m.config, m.dtype);
    if let Some(b) = m.batch {
        s += &format!(" b{b}");
    }
    if let Some(f) = &m.fill {
        s += &format!(" {f}@{}", m.pos.unwrap_or(0));
    }
    if let Some(r) = m.audio_s_per_wall_s {
        s += &format!("  {r:.2} audio s/s ({:.3} s)", m.wall_s);
    }
    if let Some(r) = m.steps_per_s {
        s += &format!(
            "  {r:.2} steps/s, {:.2} tok/s",
            m.tokens_per_s_total.unwrap_or(0.0)
        );
    }
    if let (Some(e), Some(r)) = (m.logits_max_err, m.logits_rel_rms_err) {
        s += &format!(
            "  logits vs f32: max |Δ| {e:.2e}, rel RMS {r:.2e}, argmax agrees {:.0}%",
            m.argmax_agree.unwrap_or(0.0) * 100.0
        );
    }
    if m.kind == "prior_prefill" {
        s += &format!("  {:.2} s", m.wall_s);
        if m.amx == Some(true) {
            s += " (AMX tiles)";
        }
    }
    if let Some(r) = m.roofline_share {
        s += &format!("  roofline {:.0}% of copy", r * 100.0);
        // A step only reads; on some machines reads stream well below the copy figure.
        if let Some(rr) = m.roofline_share_read {
            s += &format!(" ({:.0}% of read)", rr * 100.0);
        }
    }
    if let Some(c) = m.copy_bytes_per_s {
        s += &format!(
            "  copy {}/s read {}/s",
            fmt_bytes(c),
            fmt_bytes(m.read_bytes_per_s.unwrap_or(0.0))
        );
    }
    if let Some(p) = m.peak_rss {
        s += &format!("  peak {}", fmt_bytes(p as f64));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sampling line names both roofline shares, the copy one first (the measure).
    #[test]
    fn summary_line_gives_both_roofline_shares() {
        let m = Measurement {
            kind: "prior_sample".into(),
            config: "mid".into(),
            dtype: "f32".into(),
            steps_per_s: Some(80.0),
            roofline_share: Some(0.601),
            roofline_share_read: Some(0.968),
            ..Default::default()
        };
        let line = summary_line(&m);
        assert!(
            line.contains("roofline 60% of copy (97% of read)"),
            "{line}"
        );
        let copy_only = Measurement {
            roofline_share_read: None,
            ..m
        };
        assert!(summary_line(&copy_only).ends_with("roofline 60% of copy"));
    }
}
