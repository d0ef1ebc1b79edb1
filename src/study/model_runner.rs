//! The study's [`CellRunner`] on a real model: each batch group is one run of the sampling
//! pipeline (cells as items with the group's shared seed), then scored and decoded.

use super::plan::{BatchGroup, Mode as StudyMode, Plan};
use super::runner::{CellRunner, LevelOutcome, PromptRecon, SampleOutcome};
use crate::checkpoint::ModelDir;
use crate::labels::BaseLabel;
use crate::sample::pipeline::{self, base_labels, write_codes_file, RunOptions};
use crate::sample::run::{model_identity, ItemSpec, LevelSettings, Mode, RunSpec};
use crate::sample::score::score_rows;
use crate::sample::state::RunState;
use crate::sample::Outcome;
use crate::vqvae::VqVae;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct ModelRunner {
    pub md: ModelDir,
    /// Where sampling runs (CPU unless set; `--device cuda`).
    pub dev: Device,
    vq: Option<VqVae>,
    /// The prompt's codes per level, encoded once.
    prompt_codes: BTreeMap<usize, Vec<i64>>,
    /// Where group runs are kept while they run (resumable within a group).
    work: PathBuf,
    pub progress: bool,
}

impl ModelRunner {
    /// Create the group's run directory (with the prompt's codes for a primed group); a
    /// directory left by a crash resumes if it holds the same group and starts again otherwise.
    fn open_group_dir(&self, spec: &RunSpec, dir: &Path) -> Result<()> {
        if dir.exists() && RunSpec::load(dir).ok().as_ref() != Some(spec) {
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        if !dir.exists() {
            spec.save(dir)?;
            let mut st = RunState::default();
            if spec.mode == Mode::Primed {
                if self.prompt_codes.is_empty() {
                    bail!("prepare() must encode the prompt before run_group()");
                }
                st.prompt = self.prompt_codes.clone();
            }
            st.save(dir)?;
        }
        Ok(())
    }

    /// One level of a finished group: each item's codes, decoded audio, sampling entropies,
    /// and bits per token under its own labels and under no labels.
    fn measure_level(
        &mut self,
        level: usize,
        spec: &RunSpec,
        no_label: &RunSpec,
        state: &RunState,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Vec<LevelOutcome>> {
        let dev = self.dev.clone();
        let n = spec.items.len();
        let mut out = Vec::with_capacity(n);
        let rows = &state
            .levels
            .get(&level)
            .with_context(|| format!("level {level} missing"))?
            .rows;
        let prior = self.md.prior_as(level, spec.weights, &dev)?;
        let items: Vec<usize> = (0..n).collect();
        let (lab, own) = base_labels(&self.md, spec, level, &items)?;
        let (_, none) = base_labels(&self.md, no_label, level, &items)?;
        let hop_len = self.md.config.vqvae.hop_length(level);
        let from = spec.prompt_samples / hop_len;
        let hop = ((spec.settings[level].hop_fraction * prior.cfg.n_ctx as f64) as usize).max(1);
        let upper = if prior.cfg.is_upsampler() {
            Some(
                state
                    .levels
                    .get(&(level + 1))
                    .context("upper level missing")?
                    .rows
                    .clone(),
            )
        } else {
            None
        };
        let t0 = Instant::now();
        let ent = state.entropy.get(&level).cloned().unwrap_or_default();
        // The sampler recorded each drawn token's bits under the sample's own labels (states
        // written before that was recorded have none), so a pass scores only what is missing:
        // the own labels of an old state, and the no-label rows where they differ.
        let recorded = ent.token.len() == n && ent.count.len() == n;
        let same = own == none;
        let mut sets: Vec<&[BaseLabel]> = vec![];
        if !recorded {
            sets.push(&own);
        }
        if !same {
            sets.push(&none);
        }
        let (mut bits, cnt) = if sets.is_empty() {
            (vec![], ent.count.first().copied().unwrap_or(0) as usize)
        } else {
            score_rows(&prior, &lab, &sets, rows, upper.as_deref(), from, hop, &dev)?
        };
        let b_none = if same { None } else { bits.pop() };
        let b_own = if recorded {
            ent.token.clone()
        } else {
            bits.pop().context("own-label bits")?
        };
        // An item whose own labels are the no-label labels (the no-label cell) takes its own
        // figure: the KV-cached sampler and the teacher-forced rescoring agree only to ~1e-6,
        // and the report compares the two columns for exactly that cell.
        let b_none: Vec<f64> = match b_none {
            None => b_own.clone(),
            Some(b) => (0..n)
                .map(|i| if own[i] == none[i] { b_own[i] } else { b[i] })
                .collect(),
        };
        let scored = t0.elapsed().as_secs_f64();
        drop(prior);
        let t0 = Instant::now();
        let vq = self.vq()?;
        let t = Tensor::from_vec(
            rows.iter().flatten().copied().collect::<Vec<_>>(),
            (n, rows[0].len()),
            &dev,
        )?;
        // A primed group's rows all begin with the prompt's codes: decode those once.
        let audio = vq.decode_shared_prefix(&t, level)?.to_dtype(DType::F32)?;
        progress(&format!(
            "  level {level}: scored in {scored:.1} s, decoded in {:.1} s",
            t0.elapsed().as_secs_f64()
        ));
        for i in 0..n {
            let (er, ef) = if ent.count.len() > i {
                ent.mean(i)
            } else {
                (f64::NAN, f64::NAN)
            };
            let c = cnt.max(1) as f64;
            out.push(LevelOutcome {
                level,
                codes: rows[i].clone(),
                audio: audio.get(i)?.to_vec1::<f32>()?,
                entropy_raw_bits: er,
                entropy_filtered_bits: ef,
                bits_own: b_own[i] / c,
                bits_nolabel: b_none[i] / c,
            });
        }
        Ok(out)
    }

    pub fn new(model: &Path, work: &Path) -> Result<Self> {
        let md = ModelDir::open(model)
            .with_context(|| format!("cannot open the model {}", model.display()))?;
        Ok(Self {
            md,
            dev: Device::Cpu,
            vq: None,
            prompt_codes: BTreeMap::new(),
            work: work.to_path_buf(),
            progress: false,
        })
    }

    fn vq(&mut self) -> Result<&VqVae> {
        if self.vq.is_none() {
            self.vq = Some(self.md.vqvae(&self.dev)?);
        }
        Ok(self.vq.as_ref().expect("loaded above"))
    }

    /// Refuse a plan whose largest batch group would not fit in memory at one of its levels
    /// (prior weights plus KV cache, [`crate::guard::check_sampling_fits`]), before anything is
    /// computed. `prepare` calls it; the CLI calls it before it writes anything.
    pub fn check_memory(&self, plan: &Plan) -> Result<()> {
        let largest = plan.groups.iter().map(|g| g.cells.len()).max().unwrap_or(0);
        let batch = largest.min(plan.max_batch.max(1));
        if batch == 0 {
            return Ok(());
        }
        crate::guard::check_sampling_fits(&self.md, &plan.levels, batch)
    }

    fn spec_for(&self, plan: &Plan, group: &BatchGroup) -> Result<RunSpec> {
        let cfg = &self.md.config;
        let top = cfg.top_level();
        let min_dur = cfg.priors[top]
            .labels
            .as_ref()
            .filter(|l| l.include_time_signal)
            .map_or(0.0, |l| l.min_duration);
        let sr = plan.sample_rate as f64;
        let total_length = (plan.total_samples as f64).max((min_dur * sr).ceil());
        let items = group
            .cells
            .iter()
            .map(|id| {
                let c = plan
                    .cell(id)
                    .with_context(|| format!("plan has no cell `{id}`"))?;
                Ok(if c.no_label {
                    ItemSpec {
                        artist: "unknown".into(),
                        genres: vec!["unknown".into()],
                        lyrics: None,
                        seed: group.seed,
                    }
                } else {
                    ItemSpec {
                        artist: c.artist.clone(),
                        genres: c.genres.clone(),
                        lyrics: None,
                        seed: group.seed,
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let primed = group.mode == StudyMode::Primed;
        Ok(RunSpec {
            version: env!("CARGO_PKG_VERSION").into(),
            model: self.md.path.clone(),
            model_id: model_identity(&self.md)?,
            mode: if primed {
                Mode::Primed
            } else {
                Mode::Ancestral
            },
            prompt: None,
            prompt_samples: if primed { plan.prompt_samples } else { 0 },
            sample_length: plan.total_samples,
            total_length: total_length as usize,
            sample_rate: plan.sample_rate,
            levels: plan.levels.clone(),
            settings: cfg
                .hop_fraction
                .iter()
                .map(|&h| LevelSettings {
                    temperature: plan.temperature,
                    top_k: plan.top_k,
                    top_p: plan.top_p,
                    hop_fraction: h,
                })
                .collect(),
            chunk_size: 32,
            max_batch: plan.max_batch.max(1),
            items,
            level_items: vec![],
            weights: plan.weights,
            parent: None,
        })
    }
}

impl CellRunner for ModelRunner {
    fn prepare(&mut self, plan: &Plan, prompt: &[f32]) -> Result<Vec<PromptRecon>> {
        self.check_memory(plan)?;
        let n = plan.prompt_samples;
        if prompt.len() < n {
            bail!(
                "the prompt has {} samples, the plan needs {n}",
                prompt.len()
            );
        }
        let dev = self.dev.clone();
        let levels = self.md.config.vqvae.levels;
        let vq = self.vq()?;
        let x = Tensor::from_slice(&prompt[..n], (1, n), &dev)?;
        let mut codes = BTreeMap::new();
        let mut out = vec![];
        for l in 0..levels {
            let c = vq.encode(&x, l)?.to_dtype(DType::I64)?;
            let audio = vq
                .decode(&c, l)?
                .squeeze(0)?
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?;
            let c = c.squeeze(0)?.to_vec1::<i64>()?;
            if plan.levels.contains(&l) {
                out.push(PromptRecon {
                    level: l,
                    codes: c.clone(),
                    audio,
                });
            }
            codes.insert(l, c);
        }
        self.prompt_codes = codes;
        out.sort_by_key(|r| std::cmp::Reverse(r.level));
        Ok(out)
    }

    fn run_group(
        &mut self,
        plan: &Plan,
        group: &BatchGroup,
        _prompt: &[f32],
        progress: &mut dyn FnMut(&str),
    ) -> Result<Vec<SampleOutcome>> {
        let spec = self.spec_for(plan, group)?;
        let dir = self.work.join(format!("group_{:04}", group.index));
        self.open_group_dir(&spec, &dir)?;
        progress(&format!(
            "group {} ({} cells, seed {})",
            group.index,
            group.cells.len(),
            group.seed
        ));
        let opts = RunOptions {
            device: self.dev.clone(),
            progress: self.progress,
            write_audio: false,
            ..Default::default()
        };
        let t0 = Instant::now();
        match pipeline::run(&self.md, &dir, &opts)? {
            Outcome::Finished(_) => {}
            Outcome::Interrupted => {
                return Err(crate::error::Interrupted::new(
                    None,
                    format!("group {} was interrupted", group.index),
                )
                .into())
            }
        }
        progress(&format!(
            "  sampled {} levels in {:.1} s",
            plan.levels.len(),
            t0.elapsed().as_secs_f64()
        ));
        let state = RunState::load_or_default(&dir)?;
        write_codes_file(&self.md, &dir, &spec, &state)?;
        let n = spec.items.len();
        let mut per_item: Vec<Vec<LevelOutcome>> = vec![vec![]; n];
        let no_label = RunSpec {
            items: spec
                .items
                .iter()
                .map(|it| ItemSpec {
                    artist: "unknown".into(),
                    genres: vec!["unknown".into()],
                    ..it.clone()
                })
                .collect(),
            ..spec.clone()
        };
        for &level in &plan.levels {
            let outcomes = self.measure_level(level, &spec, &no_label, &state, progress)?;
            for (i, o) in outcomes.into_iter().enumerate() {
                per_item[i].push(o);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Ok(group
            .cells
            .iter()
            .zip(per_item)
            .map(|(c, levels)| SampleOutcome {
                cell: c.clone(),
                seed: group.seed,
                levels,
            })
            .collect())
    }
}
