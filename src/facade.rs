//! [`Jukebox`]: the library in a few calls, for programs and the Python package. Every call that
//! samples writes the same run directory the CLI writes (`run.toml`, `state.safetensors`, WAV
//! per level), so a run started here can be resumed, continued or upsampled by `jukebox` and
//! the other way round; the results come back as plain vectors.

use crate::checkpoint::ModelDir;
use crate::config::JukeboxConfig;
use crate::error::Result;
use crate::prior::rank::Ranking;
use crate::sample::{self, Outcome, Progress, RunOptions, RunSpec, RunState, SampleRequest};
use crate::study::plan::{ModelFacts, Plan, PlanSpec};
use crate::study::ranking::{RankJob, RankSpec};
use crate::vqvae::VqVae;
use anyhow::{anyhow, Context};
use candle_core::{DType, Device, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

/// Progress callback: called as tokens are sampled.
pub type OnProgress<'a> = &'a (dyn Fn(&Progress) + Sync);

/// A model, ready to sample, encode and decode.
pub struct Jukebox {
    md: ModelDir,
    dev: Device,
    vq: OnceLock<VqVae>,
}

/// The takes of a run: audio and codes per level, per take.
#[derive(Debug, Clone, PartialEq)]
pub struct Takes {
    pub run_dir: PathBuf,
    pub sample_rate: u32,
    /// level → one row of samples per take sampled at that level (44.1 kHz mono, [-1, 1]).
    pub audio: BTreeMap<usize, Vec<Vec<f32>>>,
    /// level → one row of codes per take sampled at that level.
    pub codes: BTreeMap<usize, Vec<Vec<i64>>>,
    /// level → which takes (indices into the run's items) the rows are.
    pub takes: BTreeMap<usize, Vec<usize>>,
}

impl Jukebox {
    /// Load a model directory, or a hub id from the Hugging Face cache (`org/name[@rev]`), on
    /// the CPU.
    pub fn load(model: &str) -> Result<Self> {
        Self::load_on(model, Device::Cpu)
    }

    pub fn load_on(model: &str, dev: Device) -> Result<Self> {
        let path = crate::util::resolve_default(model);
        let md = ModelDir::open(&path)?;
        md.validate()?;
        Ok(Self {
            md,
            dev,
            vq: OnceLock::new(),
        })
    }

    pub fn config(&self) -> &JukeboxConfig {
        &self.md.config
    }

    pub fn model_dir(&self) -> &ModelDir {
        &self.md
    }

    pub fn sample_rate(&self) -> u32 {
        self.md.config.vqvae.sample_rate
    }

    fn vqvae(&self) -> Result<&VqVae> {
        if self.vq.get().is_none() {
            let v = self.md.vqvae(&self.dev)?;
            let _ = self.vq.set(v);
        }
        Ok(self.vq.get().context("the VQ-VAE")?)
    }

    /// New takes in a new run directory `run_dir`.
    pub fn sample(
        &self,
        req: &SampleRequest,
        run_dir: &Path,
        progress: Option<OnProgress>,
        interrupt: Option<&AtomicBool>,
    ) -> Result<Takes> {
        let spec = RunSpec::build(req, &self.md)?;
        sample::create_run(run_dir, &spec)?;
        self.resume(run_dir, progress, interrupt)
    }

    /// Finish a run directory (one that was stopped, or any the CLI made).
    pub fn resume(
        &self,
        run_dir: &Path,
        progress: Option<OnProgress>,
        interrupt: Option<&AtomicBool>,
    ) -> Result<Takes> {
        let spec = RunSpec::load(run_dir)?;
        spec.check_model(&self.md, run_dir)?;
        let opts = RunOptions {
            device: self.dev.clone(),
            progress: false,
            interrupt,
            on_progress: progress,
            ..Default::default()
        };
        match sample::run(&self.md, run_dir, &opts)? {
            Outcome::Finished(_) => takes(run_dir),
            Outcome::Interrupted => Err(anyhow::Error::new(crate::error::Interrupted::new(
                Some(run_dir.to_path_buf()),
                format!(
                    "stopped; the run is saved in {} and resumes where it stopped",
                    run_dir.display()
                ),
            ))
            .into()),
        }
    }

    /// Extend take `take` of `run` into `n` new takes of `seconds` in total, in a new run `dst`.
    #[allow(clippy::too_many_arguments)]
    pub fn continue_take(
        &self,
        run: &Path,
        take: usize,
        seconds: f64,
        n: usize,
        seed: u64,
        dst: &Path,
        progress: Option<OnProgress>,
    ) -> Result<Takes> {
        sample::fork_take(&self.md, run, take, dst, seconds, n, seed)?;
        self.resume(dst, progress, None)
    }

    /// Sample the lower levels of `run` for the chosen takes (`levels` None: every level below).
    pub fn upsample(
        &self,
        run: &Path,
        takes_chosen: &[usize],
        levels: Option<Vec<usize>>,
        progress: Option<OnProgress>,
    ) -> Result<Takes> {
        let mut spec = RunSpec::load(run)?;
        let n = self.md.config.priors.len();
        sample::add_levels(&mut spec, n, levels, Some(takes_chosen.to_vec()), run)?;
        spec.save(run)?;
        self.resume(run, progress, None)
    }

    /// Codes of mono 44.1 kHz audio at `level`. As `jukebox encode`, the audio is cut down to
    /// a multiple of the top level's hop (the tail shorter than one top token is dropped).
    pub fn encode(&self, audio: &[f32], level: usize) -> Result<Vec<i64>> {
        let cfg = &self.md.config.vqvae;
        let hop = cfg.hop_length(cfg.levels - 1);
        let audio = &audio[..audio.len() / hop * hop];
        if audio.is_empty() {
            return Err(anyhow!(
                "no audio to encode: at least {hop} samples ({:.4} s) are needed",
                hop as f64 / cfg.sample_rate as f64
            )
            .into());
        }
        if let Some(i) = audio.iter().position(|x| !x.is_finite()) {
            return Err(anyhow!("the audio holds a non-finite value at sample {i}").into());
        }
        let x = Tensor::from_slice(audio, (1, audio.len()), &self.dev)?;
        let c = self
            .vqvae()?
            .encode(&x, level)
            .with_context(|| format!("encoding at level {level}"))?;
        Ok(c.to_dtype(DType::I64)?.squeeze(0)?.to_vec1()?)
    }

    /// Audio of `codes` at `level`.
    pub fn decode(&self, codes: &[i64], level: usize) -> Result<Vec<f32>> {
        let bins = self.md.config.vqvae.l_bins as i64;
        if let Some(c) = codes.iter().find(|&&c| c < 0 || c >= bins) {
            return Err(anyhow!("code {c} is outside this model's codebook 0..{bins}").into());
        }
        if codes.is_empty() {
            return Err(anyhow!("no codes to decode").into());
        }
        let t = Tensor::from_slice(codes, (1, codes.len()), &self.dev)?.to_dtype(DType::U32)?;
        let y = self
            .vqvae()?
            .decode(&t, level)
            .with_context(|| format!("decoding at level {level}"))?;
        Ok(y.flatten_all()?.to_vec1()?)
    }

    /// Rank the genres (and artists) by how well they explain a prompt at the top level.
    pub fn rank_labels(
        &self,
        prompt: &Path,
        prompt_seconds: Option<f64>,
        artists: bool,
    ) -> Result<Ranking> {
        let mut spec = RankSpec::for_study(self.md.path.clone(), prompt.to_path_buf(), 1.0)?;
        spec.prompt_seconds = prompt_seconds;
        spec.artists = artists;
        spec.device = self.dev.clone();
        Ok(RankJob::prepare(&spec)?.run(&mut |_, _| {})?)
    }
}

/// A finished (or resumed) study.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyOutcome {
    pub dir: PathBuf,
    /// The HTML report, when every group is done.
    pub report: Option<PathBuf>,
    pub groups_run: usize,
    pub groups_skipped: usize,
}

impl Jukebox {
    /// A genre × artist × seed study on one prompt into `out` (as `jukebox study`; an existing
    /// study there with the same plan is resumed). `spec.model` is this model; an unset prompt
    /// is the bundled Amen break at its known 137 BPM.
    pub fn study(&self, mut spec: PlanSpec, out: &Path, rank: bool) -> Result<StudyOutcome> {
        spec.model = Some(self.md.path.display().to_string());
        if spec.prompt.is_none() {
            spec.prompt = Some(
                crate::util::resolve_default("data/prompts/amen.wav")
                    .display()
                    .to_string(),
            );
            spec.prompt_bpm = spec.prompt_bpm.or(Some(137.0));
        }
        let top = self.md.config.top_level();
        let ids = crate::labels::IdSet::for_model(&self.md.path, &self.md.config.priors[top])?;
        let facts = ModelFacts {
            sample_rate: self.md.config.vqvae.sample_rate,
            hops: self.md.config.vqvae.hop_lengths(),
        };
        let plan = Plan::build(&spec, ids.as_ref(), &facts)?;
        let prompt = crate::study::load_prompt(Path::new(&plan.prompt), &plan)?;
        let mut runner = crate::study::ModelRunner::new(&self.md.path, &out.join(".work"))?;
        runner.progress = false;
        runner.dev = self.dev.clone();
        runner.check_memory(&plan)?;
        let ranking = out.join("label_ranking.csv");
        if rank && !ranking.exists() && self.md.config.priors[top].labels.is_some() {
            let mut rs = RankSpec::for_study(
                self.md.path.clone(),
                PathBuf::from(&plan.prompt),
                plan.prompt_seconds,
            )?;
            rs.device = self.dev.clone();
            let r = RankJob::prepare(&rs)?.run(&mut |_, _| {})?;
            std::fs::create_dir_all(out)?;
            crate::util::atomic_write(&ranking, r.to_csv().as_bytes())?;
        }
        let s = crate::study::run_study(
            &plan,
            out,
            &prompt,
            &mut runner,
            &crate::study::RunOptions {
                shard: None,
                verbose: false,
            },
        )?;
        Ok(StudyOutcome {
            dir: out.to_path_buf(),
            report: s.reported.then(|| out.join("index.html")),
            groups_run: s.groups_run,
            groups_skipped: s.groups_skipped,
        })
    }
}

/// What a run directory holds now: codes from its state, audio from its WAV files.
pub fn takes(run_dir: &Path) -> Result<Takes> {
    let spec = RunSpec::load(run_dir)?;
    let state = RunState::load_or_default(run_dir)?;
    let mut out = Takes {
        run_dir: run_dir.to_path_buf(),
        sample_rate: spec.sample_rate,
        audio: BTreeMap::new(),
        codes: BTreeMap::new(),
        takes: BTreeMap::new(),
    };
    for &l in &spec.levels {
        let items = spec.items_at(l);
        if let Some(c) = state.levels.get(&l) {
            out.codes.insert(l, c.rows.clone());
        }
        let mut rows = vec![];
        for &i in &items {
            let p = run_dir.join(format!("level_{l}/sample_{i}.wav"));
            if !p.exists() {
                rows.clear();
                break;
            }
            rows.push(crate::audio::load(&p)?.samples);
        }
        if !rows.is_empty() {
            out.audio.insert(l, rows);
        }
        out.takes.insert(l, items);
    }
    Ok(out)
}
