//! Making run directories: a new run from a [`SampleRequest`], a run continued to a longer
//! length, and lower levels added for chosen takes. The CLI (`sample`, `upsample`) and the web
//! app (`serve`) both go through these, so a run made by one is understood by the other.
//! Messages name the CLI flags, which is how most users meet them.

use super::run::{model_identity, ItemSpec, LevelSettings, Mode, Parent, RunSpec};
use super::state::{EntropySums, LevelCodes, RunState};
use crate::checkpoint::ModelDir;
use crate::config::JukeboxConfig;
use crate::level::Level;
use crate::prior::windows::seconds_to_samples;
use crate::prior::WeightFormat;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// A new run, as flags or a web form give it.
#[derive(Debug, Clone)]
pub struct SampleRequest {
    /// None: primed when a prompt is given, else ancestral.
    pub mode: Option<Mode>,
    pub prompt: Option<PathBuf>,
    pub prompt_seconds: Option<f64>,
    /// Total seconds of each sample, prompt included.
    pub seconds: Option<f64>,
    /// The song-length label (None: max(seconds, the prior's minimum)).
    pub total_seconds: Option<f64>,
    pub items: Vec<ItemSpec>,
    pub temperature: f64,
    pub top_k: usize,
    pub top_p: f64,
    /// `all`, `top`, `top,middle`, numbers.
    pub levels: String,
    /// Per level 0,1,2 (None: the model's).
    pub hop_fraction: Option<Vec<f64>>,
    pub max_batch: usize,
    pub chunk_size: usize,
    /// Dense weight storage of the priors while sampling (`--dtype`).
    pub weights: WeightFormat,
}

impl Default for SampleRequest {
    fn default() -> Self {
        Self {
            mode: None,
            prompt: None,
            prompt_seconds: None,
            seconds: None,
            total_seconds: None,
            items: vec![],
            temperature: super::DEFAULT_TEMPERATURE,
            top_k: 0,
            top_p: 0.0,
            levels: "all".into(),
            hop_fraction: None,
            max_batch: 16,
            chunk_size: 32,
            weights: WeightFormat::F32,
        }
    }
}

/// `n` items with the same labels and seeds `seed`, `seed + 1`, …; no genre means `unknown`.
pub fn items(
    artist: &str,
    genres: &[String],
    lyrics: Option<String>,
    n: usize,
    seed: u64,
) -> Result<Vec<ItemSpec>> {
    if n == 0 {
        bail!("--n-samples must be at least 1");
    }
    Ok((0..n)
        .map(|i| ItemSpec {
            artist: artist.to_string(),
            genres: if genres.is_empty() {
                vec![crate::labels::UNKNOWN.into()]
            } else {
                genres.to_vec()
            },
            lyrics: lyrics.clone(),
            seed: seed + i as u64,
        })
        .collect())
}

/// `top`, `middle`, `bottom`, numbers, lists and `all`, to official level numbers.
pub fn parse_levels(s: &str, n_levels: usize) -> Result<Vec<usize>> {
    let s = s.trim();
    if s == "all" {
        return Ok((0..n_levels).rev().collect());
    }
    let mut out = vec![];
    for part in s.split(',') {
        let l = part
            .parse::<Level>()
            .map_err(anyhow::Error::msg)?
            .within(n_levels)?;
        if !out.contains(&l) {
            out.push(l);
        }
    }
    if out.is_empty() {
        bail!("no levels given");
    }
    Ok(out)
}

impl RunSpec {
    /// A new run's spec, checked against the model: lengths, prompt, settings, and every label
    /// resolved, so a typo fails before any work.
    pub fn build(req: &SampleRequest, md: &ModelDir) -> Result<RunSpec> {
        let cfg = &md.config;
        let sr = cfg.vqvae.sample_rate;
        let top = cfg.top_level();
        let top_hop = cfg.vqvae.hop_length(top);
        let mode = req.mode.unwrap_or(if req.prompt.is_some() {
            Mode::Primed
        } else {
            Mode::Ancestral
        });
        let seconds = req
            .seconds
            .context("--seconds (the total length of each sample) is required")?;
        let sample_length = seconds_to_samples(seconds, sr, top_hop)?;
        let (prompt, prompt_samples) =
            request_prompt(req, mode, sr, top_hop, sample_length, seconds)?;
        let min_dur = cfg.priors[top]
            .labels
            .as_ref()
            .filter(|l| l.include_time_signal)
            .map_or(0.0, |l| l.min_duration);
        let total_seconds = req.total_seconds.unwrap_or(seconds.max(min_dur));
        if total_seconds <= 0.0
            || !total_seconds.is_finite()
            || total_seconds > crate::audio::MAX_SECONDS
        {
            bail!(
                "--total-seconds must be positive and at most {} s, got {total_seconds}",
                crate::audio::MAX_SECONDS
            );
        }
        if !(req.temperature.is_finite() && req.temperature >= 0.0) {
            bail!(
                "--temperature must be a finite number >= 0 (0 is greedy), got {}",
                req.temperature
            );
        }
        if req.items.is_empty() {
            bail!("--n-samples must be at least 1");
        }
        let levels = parse_levels(&req.levels, cfg.priors.len())?;
        let settings = level_settings(req, cfg)?;
        let spec = RunSpec {
            version: env!("CARGO_PKG_VERSION").to_string(),
            model: std::path::absolute(&md.path).unwrap_or(md.path.clone()),
            model_id: model_identity(md)?,
            mode,
            prompt,
            prompt_samples,
            sample_length,
            total_length: (total_seconds * sr as f64).round() as usize,
            sample_rate: sr,
            levels,
            settings,
            chunk_size: req.chunk_size.max(1),
            max_batch: req.max_batch.max(1),
            items: req.items.clone(),
            level_items: vec![],
            weights: req.weights,
            parent: None,
        };
        spec.validate()?;
        spec.check_labels(md)?;
        Ok(spec)
    }

    /// Resolve every item's labels at every sampled level, in the model's id ranges.
    pub fn check_labels(&self, md: &ModelDir) -> Result<()> {
        for &l in &self.levels {
            let (lab, bases) = super::pipeline::base_labels(md, self, l, &self.items_at(l))?;
            if let Some(lc) = &md.config.priors[l].labels {
                for b in &bases {
                    let artist = b.artist_id();
                    if artist < 0 || artist as usize >= lc.n_artists {
                        bail!(
                            "artist id {artist} is outside this model's 0..{} (level {l})",
                            lc.n_artists
                        );
                    }
                    for &g in b.genre_ids(lab.max_genres) {
                        if g >= lc.n_genres as i64 {
                            bail!(
                                "genre id {g} is outside this model's 0..{} (level {l})",
                                lc.n_genres
                            );
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The sample length of `seconds` (cut to whole top-level tokens) when it extends this run;
    /// an error when it is not longer.
    pub fn longer_length(&self, md: &ModelDir, seconds: f64) -> Result<usize> {
        let top_hop = md.config.vqvae.hop_length(md.config.top_level());
        let new_len = seconds_to_samples(seconds, self.sample_rate, top_hop)?;
        if new_len <= self.sample_length {
            bail!(
                "--seconds {seconds} is not longer than the run's {:.2} s",
                self.sample_length as f64 / self.sample_rate as f64
            );
        }
        Ok(new_len)
    }

    /// Refuse a model other than the one the run was made with.
    pub fn check_model(&self, md: &ModelDir, run_dir: &Path) -> Result<()> {
        let id = model_identity(md)?;
        if id != self.model_id {
            bail!(
                "{} was made with another model ({}); this one is {}. Pass the run's own --model",
                run_dir.display(),
                self.model.display(),
                md.path.display()
            );
        }
        Ok(())
    }
}

/// Write a new run directory holding `spec`; refuses a directory that already holds a run.
pub fn create_run(out: &Path, spec: &RunSpec) -> Result<()> {
    if RunSpec::path(out).exists() {
        bail!(
            "{} already holds a run; use --resume {} to finish it, or choose another --out",
            out.display(),
            out.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    spec.save(out)
}

/// Prepare `src` to be extended to `seconds` in total: in place, or in a copy at `dst` (the
/// copy keeps the codes, so the new run samples only the new windows). Returns the run
/// directory to run.
pub fn continue_run(
    md: &ModelDir,
    src: &Path,
    dst: Option<&Path>,
    seconds: f64,
) -> Result<PathBuf> {
    let mut spec = RunSpec::load(src)?;
    spec.check_model(md, src)?;
    let new_len = spec.longer_length(md, seconds)?;
    let dir = match dst {
        Some(out) if out != src => {
            copy_run(src, out)?;
            out.to_path_buf()
        }
        _ => src.to_path_buf(),
    };
    spec.sample_length = new_len;
    spec.total_length = spec.total_length.max(new_len);
    spec.save(&dir)?;
    Ok(dir)
}

/// Extend one take of `src` into `n` new takes in a new run `dst` (seeds `seed`, `seed + 1`, …),
/// `seconds` long in total. The new run starts from that take's codes at every level it was
/// sampled at and records its parent, so runs form a tree; it is an ordinary run directory
/// that `--resume`, `--continue` and `upsample` accept.
pub fn fork_take(
    md: &ModelDir,
    src: &Path,
    take: usize,
    dst: &Path,
    seconds: f64,
    n: usize,
    seed: u64,
) -> Result<()> {
    let parent = RunSpec::load(src)?;
    parent.check_model(md, src)?;
    if take >= parent.items.len() {
        bail!(
            "take {take} does not exist: {} has takes 0..{}",
            src.display(),
            parent.items.len()
        );
    }
    if n == 0 {
        bail!("--n-samples must be at least 1");
    }
    let new_len = parent.longer_length(md, seconds)?;
    let state = RunState::load_or_default(src)?;
    let mut child_state = RunState {
        prompt: state.prompt.clone(),
        ..Default::default()
    };
    let mut levels = vec![];
    for &l in &parent.levels {
        let Some(pos) = parent.items_at(l).iter().position(|&i| i == take) else {
            continue; // the take was not sampled at this level
        };
        let codes = state.levels.get(&l).with_context(|| {
            format!(
                "{} has no level-{l} codes yet: finish it first",
                src.display()
            )
        })?;
        let row = codes.rows.get(pos).cloned().unwrap_or_default();
        child_state
            .levels
            .insert(l, LevelCodes { rows: vec![row; n] });
        if let Some(e) = state.entropy.get(&l) {
            let one = |v: &Vec<f64>| vec![v.get(pos).copied().unwrap_or(0.0); n];
            child_state.entropy.insert(
                l,
                EntropySums {
                    raw: one(&e.raw),
                    filtered: one(&e.filtered),
                    token: if e.token.is_empty() {
                        vec![]
                    } else {
                        one(&e.token)
                    },
                    count: vec![e.count.get(pos).copied().unwrap_or(0); n],
                },
            );
        }
        levels.push(l);
    }
    let item = &parent.items[take];
    let mut spec = parent.clone();
    spec.items = (0..n)
        .map(|k| ItemSpec {
            seed: seed + k as u64,
            ..item.clone()
        })
        .collect();
    spec.levels = levels;
    spec.level_items = vec![];
    spec.sample_length = new_len;
    spec.total_length = spec.total_length.max(new_len);
    spec.parent = Some(Parent {
        run: std::path::absolute(src).unwrap_or(src.to_path_buf()),
        take,
    });
    spec.validate()?;
    create_run(dst, &spec)?;
    child_state.save(dst)
}

fn copy_run(src: &Path, dst: &Path) -> Result<()> {
    if RunSpec::path(dst).exists() {
        bail!("{} already holds a run", dst.display());
    }
    std::fs::create_dir_all(dst)?;
    for f in ["run.toml", "state.safetensors"] {
        std::fs::copy(src.join(f), dst.join(f)).with_context(|| format!("copying {f}"))?;
    }
    Ok(())
}

/// Add lower levels to a run, sampled only for the `chosen` items (`jukebox upsample`). `add`
/// None: every level below the run's lowest. The caller saves and runs the spec.
pub fn add_levels(
    spec: &mut RunSpec,
    n_levels: usize,
    add: Option<Vec<usize>>,
    chosen: Option<Vec<usize>>,
    run_dir: &Path,
) -> Result<()> {
    let lowest = *spec.levels.iter().min().context("run has no levels")?;
    let add = add.unwrap_or_else(|| (0..lowest).rev().collect());
    if add.is_empty() {
        bail!("{} already samples every level", run_dir.display());
    }
    let chosen = chosen.unwrap_or_else(|| (0..spec.items.len()).collect());
    if let Some(i) = chosen.iter().find(|&&i| i >= spec.items.len()) {
        bail!(
            "sample {i} does not exist: the run has samples 0..{}",
            spec.items.len()
        );
    }
    if spec.level_items.len() < n_levels {
        spec.level_items.resize(n_levels, vec![]);
    }
    for &l in &add {
        if spec.levels.contains(&l) {
            continue;
        }
        if l + 1 < n_levels {
            let above = spec.items_at(l + 1);
            if let Some(i) = chosen.iter().find(|i| !above.contains(i)) {
                bail!(
                    "sample {i} was not sampled at level {}; upsample that level first",
                    l + 1
                );
            }
        }
        spec.levels.push(l);
        spec.level_items[l] = chosen.clone();
    }
    Ok(())
}

/// The prompt of a primed request (absolute path, length in samples), checked against the
/// requested length and the file's real length; `(None, 0)` for an ancestral one.
fn request_prompt(
    req: &SampleRequest,
    mode: Mode,
    sr: u32,
    top_hop: usize,
    sample_length: usize,
    seconds: f64,
) -> Result<(Option<PathBuf>, usize)> {
    Ok(match mode {
        Mode::Primed => {
            let p = req
                .prompt
                .clone()
                .context("primed mode needs --prompt FILE")?;
            if !p.exists() {
                bail!("the prompt {} does not exist", p.display());
            }
            let ps = req
                .prompt_seconds
                .context("primed mode needs --prompt-seconds")?;
            let n = seconds_to_samples(ps, sr, top_hop)?;
            if n >= sample_length {
                bail!(
                    "the prompt ({ps} s) must be shorter than the requested length --seconds {seconds}"
                );
            }
            let audio = crate::audio::load_prefix(&p, ps + crate::audio::PREFIX_MARGIN_SECONDS)?;
            if audio.samples.len() < n {
                bail!(
                    "the prompt {} is {:.3} s long, shorter than the {ps} s asked for by --prompt-seconds",
                    p.display(),
                    audio.samples.len() as f64 / sr as f64
                );
            }
            (Some(std::path::absolute(&p).unwrap_or(p)), n)
        }
        Mode::Ancestral => {
            if req.prompt.is_some() {
                bail!("--prompt is only used in primed mode (--mode primed)");
            }
            (None, 0)
        }
    })
}

/// Sampling settings per level: the request's temperature and filters with its hop fractions
/// (the model's when not given), one in (0, 1] per level.
fn level_settings(req: &SampleRequest, cfg: &JukeboxConfig) -> Result<Vec<LevelSettings>> {
    let hop_fraction = req
        .hop_fraction
        .clone()
        .unwrap_or_else(|| cfg.hop_fraction.clone());
    if hop_fraction.len() != cfg.priors.len()
        || hop_fraction.iter().any(|h| !(*h > 0.0 && *h <= 1.0))
    {
        bail!(
            "--hop-fraction needs {} values in (0, 1], one per level 0,1,2",
            cfg.priors.len()
        );
    }
    Ok(hop_fraction
        .iter()
        .map(|&h| LevelSettings {
            temperature: req.temperature,
            top_k: req.top_k,
            top_p: req.top_p,
            hop_fraction: h,
        })
        .collect())
}
