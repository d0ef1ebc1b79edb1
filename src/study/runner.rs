//! The boundary between the study and the sampling pipeline, and a fake runner for tests.
//!
//! The study hands a runner one batch group at a time (several cells × one seed, sharing the
//! prompt's codes) and gets back, per item and level, the codes, the decoded audio and what the
//! model said while sampling. Everything downstream (files, metrics, claims, report) is the
//! study's job, so a real runner only has to sample.

use super::plan::{BatchGroup, Mode, Plan, RunnerKind};
use crate::util::uniform;
use anyhow::{bail, Result};

/// One level of one sampled item.
#[derive(Clone, Debug, PartialEq)]
pub struct LevelOutcome {
    /// Official level number (0 = bottom).
    pub level: usize,
    /// All codes of the sample at this level (prompt part included), `total_samples / hop` long.
    pub codes: Vec<i64>,
    /// Audio decoded from this level's codes alone, `total_samples` long, 44.1 kHz mono.
    pub audio: Vec<f32>,
    /// Mean entropy (bits) of the sampling distribution per generated step, before
    /// temperature/top-k/top-p and after them.
    pub entropy_raw_bits: f64,
    pub entropy_filtered_bits: f64,
    /// Teacher-forced bits per token of the generated codes under the item's own labels and
    /// under the no-label labels (unknown artist and genre).
    pub bits_own: f64,
    pub bits_nolabel: f64,
}

/// One item: a cell sampled with one seed.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleOutcome {
    pub cell: String,
    pub seed: u64,
    /// Top level first, in the plan's level order.
    pub levels: Vec<LevelOutcome>,
}

/// The prompt as the model hears it: reconstruction per level from the prompt's own codes.
#[derive(Clone, Debug, PartialEq)]
pub struct PromptRecon {
    pub level: usize,
    pub codes: Vec<i64>,
    pub audio: Vec<f32>,
}

/// What the study needs from the sampling pipeline.
pub trait CellRunner {
    /// Encode the prompt (`plan.prompt_samples` long, 44.1 kHz mono) once and return its
    /// reconstruction for each of `plan.levels`.
    fn prepare(&mut self, plan: &Plan, prompt: &[f32]) -> Result<Vec<PromptRecon>>;

    /// Sample every cell of `group` with `group.seed`, batched with labels per item. Returns one
    /// outcome per cell, in `group.cells` order. An item's result must depend only on its own
    /// cell and seed, never on what else is in the batch.
    fn run_group(
        &mut self,
        plan: &Plan,
        group: &BatchGroup,
        prompt: &[f32],
        progress: &mut dyn FnMut(&str),
    ) -> Result<Vec<SampleOutcome>>;

    /// What kind of runner this is; a plan records it and a run refuses a different kind.
    fn kind(&self) -> RunnerKind {
        RunnerKind::Model
    }

    /// Throughput guess for `--dry-run` estimates (tokens per second per batch at `level`).
    fn tokens_per_second(&self, level: usize) -> f64 {
        match level {
            0 => 2000.0,
            1 => 1000.0,
            _ => 300.0,
        }
    }
}

/// A deterministic stand-in for the model, with known effects so that metrics and claims can be
/// tested: primed items continue the prompt's beat, ancestral items play clicks at an unrelated
/// tempo; the genre sets a tone's pitch and the artist its brightness; seeds add small noise for
/// labelled cells and change the tone for no-label cells; labels lower the entropy.
#[derive(Clone, Debug, Default)]
pub struct FakeRunner {
    /// Number of groups run (tests use it to check that resume skips finished work).
    pub groups_run: usize,
    /// Fail after this many groups (simulates a crash mid-study).
    pub crash_after: Option<usize>,
}

const FAKE_BINS: i64 = 64;

impl FakeRunner {
    pub fn new() -> Self {
        Self::default()
    }

    fn item(&self, plan: &Plan, cell_id: &str, seed: u64, prompt: &[f32]) -> Result<SampleOutcome> {
        let Some(cell) = plan.cell(cell_id) else {
            bail!("fake runner: no cell `{cell_id}` in the plan")
        };
        let sr = plan.sample_rate as f64;
        let n = plan.total_samples;
        let g = cell.genre_ids.first().copied().unwrap_or(0) as u64;
        let a = cell.artist_id as u64;
        // Seed-driven "style" for the no-label cell: the model has no guidance.
        let freq = if cell.no_label {
            150.0 + 900.0 * uniform(seed, 99, 0, 0)
        } else {
            180.0 * (1.0 + g as f64)
        };
        let bright = if cell.no_label {
            uniform(seed, 98, 0, 0)
        } else {
            (a % 4) as f64 / 4.0
        };
        let noise = if cell.no_label { 0.08 } else { 0.01 };
        let mut audio = vec![0f32; n];
        let p = plan.prompt_samples.min(prompt.len());
        // Ancestral: clicks at a tempo unrelated to the prompt's.
        let click_period =
            (sr * 60.0 / (70.0 + 15.0 * (seed % 3) as f64 + 7.0 * g as f64)) as usize;
        for (i, s) in audio.iter_mut().enumerate() {
            let t = i as f64 / sr;
            let tone = (2.0 * std::f64::consts::PI * freq * t).sin() * 0.2
                + bright * (2.0 * std::f64::consts::PI * 3.0 * freq * t).sin() * 0.1;
            let nz =
                (uniform(seed, 7, cell.artist_id as u64 * 1000 + g, i as u64) - 0.5) * 2.0 * noise;
            let body = match cell.mode {
                Mode::Primed if p > 0 => {
                    if i < p {
                        prompt[i] as f64
                    } else {
                        prompt[(i - p) % p] as f64 * 0.8 + tone + nz
                    }
                }
                _ => {
                    let k = i % click_period.max(1);
                    let click = if k < 400 {
                        (1.0 - k as f64 / 400.0) * 0.6
                    } else {
                        0.0
                    };
                    click + tone + nz
                }
            };
            *s = body.clamp(-1.0, 1.0) as f32;
        }
        let mut levels = vec![];
        for &l in &plan.levels {
            let hop = plan.hops[l];
            let tokens = n / hop;
            // Labels concentrate the codes on a genre-specific range; no labels spread them.
            let spread = if cell.no_label { FAKE_BINS } else { 8 };
            let offset = if cell.no_label {
                0
            } else {
                (g as i64 * 8) % FAKE_BINS
            };
            let codes = (0..tokens)
                .map(|t| {
                    offset
                        + ((uniform(seed, l as u64, a * 100 + g, t as u64) * spread as f64) as i64)
                            % FAKE_BINS
                })
                .collect();
            // Decoding from a lower (finer) level is closer to the "truth".
            let blur = 1.0 - 0.05 * (plan.hops.len() - 1 - l) as f32;
            let level_audio = audio.iter().map(|x| x * blur).collect();
            let jitter = 0.1 * uniform(seed, l as u64, 5, a * 100 + g);
            let (ent, own) = match (cell.no_label, cell.mode) {
                (true, Mode::Primed) => (5.0, 4.6),
                (true, Mode::Ancestral) => (5.2, 5.4),
                (false, Mode::Primed) => (3.0, 3.5),
                (false, Mode::Ancestral) => (3.2, 4.4),
            };
            levels.push(LevelOutcome {
                level: l,
                codes,
                audio: level_audio,
                entropy_raw_bits: ent + 0.3 + jitter,
                entropy_filtered_bits: ent + jitter,
                bits_own: own + jitter,
                bits_nolabel: own + jitter + if cell.no_label { 0.0 } else { 0.4 },
            });
        }
        Ok(SampleOutcome {
            cell: cell_id.to_string(),
            seed,
            levels,
        })
    }
}

impl CellRunner for FakeRunner {
    fn kind(&self) -> RunnerKind {
        RunnerKind::Fake
    }

    fn prepare(&mut self, plan: &Plan, prompt: &[f32]) -> Result<Vec<PromptRecon>> {
        Ok(plan
            .levels
            .iter()
            .map(|&l| {
                let hop = plan.hops[l];
                let codes = (0..prompt.len() / hop)
                    .map(|t| (prompt[t * hop].abs() * FAKE_BINS as f32) as i64 % FAKE_BINS)
                    .collect();
                let blur = 0.9 - 0.1 * (plan.hops.len() - 1 - l) as f32;
                PromptRecon {
                    level: l,
                    codes,
                    audio: prompt.iter().map(|x| x * blur).collect(),
                }
            })
            .collect())
    }

    fn run_group(
        &mut self,
        plan: &Plan,
        group: &BatchGroup,
        prompt: &[f32],
        progress: &mut dyn FnMut(&str),
    ) -> Result<Vec<SampleOutcome>> {
        if self.crash_after.is_some_and(|n| self.groups_run >= n) {
            bail!("fake runner: simulated crash before group {}", group.index);
        }
        let out = group
            .cells
            .iter()
            .map(|c| {
                progress(c);
                self.item(plan, c, group.seed, prompt)
            })
            .collect::<Result<Vec<_>>>()?;
        self.groups_run += 1;
        Ok(out)
    }

    fn tokens_per_second(&self, _level: usize) -> f64 {
        1e6
    }
}
