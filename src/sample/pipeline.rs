//! The level loop (official `_sample` / `sample_level`): top → middle → bottom, windows primed
//! with the tokens they overlap, codes saved after every window, audio decoded per level.

use super::run::{Mode, RunSpec};
use super::state::{EntropySums, LevelCodes, RunState};
use crate::checkpoint::ModelDir;
use crate::labels::{BaseLabel, Labeller, Meta};
use crate::prior::sampler::{sample_window, SampleOpts};
use crate::prior::windows::{plan_windows, Window};
use crate::prior::Prior;
use crate::vqvae::VqVae;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How a call to [`run`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Finished(Summary),
    /// Stopped on request after saving; `jukebox sample --resume RUN_DIR` continues.
    Interrupted,
}

/// Wall time and work per level.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    /// (level, tokens generated per item in this call, seconds).
    pub levels: Vec<(usize, usize, f64)>,
}

/// Options that do not change the result (and so are not in run.toml).
pub struct RunOptions<'a> {
    pub device: Device,
    pub progress: bool,
    /// Checked between windows: when set, the run saves and returns [`Outcome::Interrupted`].
    pub interrupt: Option<&'a AtomicBool>,
    /// Test hook: stop (as if killed) after this many windows in this call.
    pub stop_after_windows: Option<usize>,
    /// Write the per-level WAV files (the study writes its own).
    pub write_audio: bool,
    /// Called as tokens are sampled (besides or instead of the bars), e.g. for `--progress json`.
    pub on_progress: Option<&'a (dyn Fn(&Progress) + Sync)>,
}

/// Where a run stands, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    pub level: usize,
    /// Windows finished at this level, and planned in this call.
    pub window: usize,
    pub windows: usize,
    /// Tokens sampled at this level in this call, and planned.
    pub tokens: usize,
    pub tokens_total: usize,
}

impl Default for RunOptions<'_> {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            progress: true,
            interrupt: None,
            stop_after_windows: None,
            write_audio: true,
            on_progress: None,
        }
    }
}

/// Tokens of each level for a length in samples.
pub fn level_tokens(md: &ModelDir, samples: usize, level: usize) -> usize {
    samples / md.config.vqvae.hop_length(level)
}

/// The labels of `items` as the prior at `level` reads them (each prior has its own id lists).
pub fn base_labels(
    md: &ModelDir,
    spec: &RunSpec,
    level: usize,
    items: &[usize],
) -> Result<(Labeller, Vec<BaseLabel>)> {
    let cfg = &md.config.priors[level];
    let mut lab = Labeller::for_model(&md.path, cfg, spec.sample_rate as f64)?.strict(true);
    lab.quiet = true;
    let bases = items
        .iter()
        .map(|&i| {
            let it = &spec.items[i];
            let meta = Meta {
                artist: it.artist.clone(),
                genres: it.genres.clone(),
                lyrics: it.lyrics.clone(),
            };
            lab.base(&meta, spec.total_length as i64, 0)
                .with_context(|| format!("labels of item {i} for the level-{level} prior"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((lab, bases))
}

/// Encode the prompt once (one row per level) and write its reconstructions.
pub fn encode_prompt(
    md: &ModelDir,
    vq: &VqVae,
    prompt: &Path,
    samples: usize,
    dev: &Device,
) -> Result<Vec<Vec<i64>>> {
    let sr = md.config.vqvae.sample_rate;
    let audio = crate::audio::load_prefix(
        prompt,
        samples as f64 / sr as f64 + crate::audio::PREFIX_MARGIN_SECONDS,
    )
    .with_context(|| format!("loading the prompt {}", prompt.display()))?;
    if audio.samples.len() < samples {
        bail!(
            "the prompt {} is {:.3} s long, shorter than the {:.3} s asked for by --prompt-seconds",
            prompt.display(),
            audio.samples.len() as f64 / sr as f64,
            samples as f64 / sr as f64
        );
    }
    let x = Tensor::from_slice(&audio.samples[..samples], (1, samples), dev)?;
    (0..md.config.vqvae.levels)
        .map(|l| {
            let c = vq.encode(&x, l)?.to_dtype(DType::I64)?;
            Ok(c.squeeze(0)?.to_vec1::<i64>()?)
        })
        .collect()
}

fn to_tensor(rows: &[Vec<i64>], dev: &Device) -> Result<Tensor> {
    let n = rows.len();
    let t = rows.first().map_or(0, Vec::len);
    let flat: Vec<i64> = rows.iter().flatten().copied().collect();
    Ok(Tensor::from_vec(flat, (n, t), dev)?)
}

/// Decode one level's codes and write `dir/level_K/sample_I.wav` (or `prompt/level_K.wav`).
pub fn write_level_audio(
    vq: &VqVae,
    level: usize,
    rows: &[Vec<i64>],
    names: &[PathBuf],
    dev: &Device,
) -> Result<()> {
    if rows.is_empty() || rows[0].is_empty() {
        return Ok(());
    }
    // Primed items all begin with the prompt's codes: decode those once.
    let audio = vq.decode_shared_prefix(&to_tensor(rows, dev)?, level)?;
    let sr = vq.config().sample_rate;
    for (i, path) in names.iter().enumerate() {
        let a = audio.get(i)?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        crate::audio::write_wav_i16(path, &a, sr)?;
    }
    Ok(())
}

/// Encode a primed run's prompt once (saved in the state) and write its reconstruction per
/// level; returns the VQ-VAE when it had to be loaded, for reuse.
fn prepare_prompt(
    md: &ModelDir,
    spec: &RunSpec,
    state: &mut RunState,
    run_dir: &Path,
    opts: &RunOptions,
) -> Result<Option<VqVae>> {
    let dev = &opts.device;
    let cfg = &md.config;
    let mut vq: Option<VqVae> = None;
    if state.prompt.is_empty() {
        let prompt = spec
            .prompt
            .as_ref()
            .context("primed run without a prompt")?;
        let v = md.vqvae(dev)?;
        let codes = encode_prompt(md, &v, prompt, spec.prompt_samples, dev)?;
        for (l, c) in codes.into_iter().enumerate() {
            state.prompt.insert(l, c);
        }
        state.save(run_dir)?;
        vq = Some(v);
    }
    if opts.write_audio {
        let missing =
            (0..cfg.vqvae.levels).any(|l| !run_dir.join(format!("prompt/level_{l}.wav")).exists());
        if missing {
            let v = match vq.take() {
                Some(v) => v,
                None => md.vqvae(dev)?,
            };
            for (l, c) in &state.prompt {
                write_level_audio(
                    &v,
                    *l,
                    std::slice::from_ref(c),
                    &[run_dir.join(format!("prompt/level_{l}.wav"))],
                    dev,
                )?;
            }
            vq = Some(v);
        }
    }
    Ok(vq)
}

/// The level-above codes of `items` at `level` (an upsampler's conditioning), checked
/// finished.
fn upper_rows(
    md: &ModelDir,
    spec: &RunSpec,
    state: &RunState,
    level: usize,
    items: &[usize],
) -> Result<Vec<Vec<i64>>> {
    let upper = state
        .levels
        .get(&(level + 1))
        .with_context(|| format!("level {level} needs the codes of level {} first", level + 1))?;
    let upper_items = spec.items_at(level + 1);
    let need = level_tokens(md, spec.sample_length, level + 1);
    if upper.len() < need {
        bail!(
            "level {} is unfinished ({} of {need} tokens); finish it first",
            level + 1,
            upper.len()
        );
    }
    items
        .iter()
        .map(|i| {
            upper_items
                .iter()
                .position(|u| u == i)
                .map(|p| upper.rows[p].clone())
                .with_context(|| format!("item {i} has no level-{} codes to upsample", level + 1))
        })
        .collect()
}

/// Run (or resume) the run in `run_dir` until every requested level is complete.
pub fn run(md: &ModelDir, run_dir: &Path, opts: &RunOptions) -> Result<Outcome> {
    let spec = RunSpec::load(run_dir)?;
    let dev = &opts.device;
    let mut state = RunState::load_or_default(run_dir)?;
    let sr = spec.sample_rate;
    let cfg = &md.config;
    let top = cfg.top_level();
    let mut vq: Option<VqVae> = None;

    if spec.mode == Mode::Primed {
        vq = prepare_prompt(md, &spec, &mut state, run_dir, opts)?;
    }

    let mut levels = spec.levels.clone();
    levels.sort_unstable_by(|a, b| b.cmp(a));
    let mut summary = Summary::default();
    let mut windows_done = 0usize;
    for &level in &levels {
        if level > top {
            bail!("level {level} does not exist (the model has levels 0..={top})");
        }
        let items = spec.items_at(level);
        let total = level_tokens(md, spec.sample_length, level);
        let hop_len = cfg.vqvae.hop_length(level);
        let codes = state.levels.entry(level).or_insert_with(|| {
            let start: Vec<i64> = match spec.mode {
                Mode::Primed => state.prompt.get(&level).cloned().unwrap_or_default()
                    [..spec.prompt_samples / hop_len]
                    .to_vec(),
                Mode::Ancestral => vec![],
            };
            LevelCodes {
                rows: vec![start; items.len()],
            }
        });
        let have = codes.len();
        let pcfg = &cfg.priors[level];
        let n_ctx = pcfg.n_ctx;
        let hop = ((spec.settings[level].hop_fraction * n_ctx as f64) as usize).max(1);
        let windows = plan_windows(have, total, n_ctx, hop);
        if !windows.is_empty() && pcfg.is_upsampler() && total < n_ctx {
            bail!(
                "level {level} needs at least {n_ctx} tokens ({:.2} s) to upsample, but the sample has {total} \
                 ({:.2} s); ask for a longer --seconds or sample --levels top",
                (n_ctx * hop_len) as f64 / sr as f64,
                spec.sample_length as f64 / sr as f64
            );
        }
        state
            .entropy
            .entry(level)
            .or_insert_with(|| EntropySums::new(items.len()));
        if !windows.is_empty() {
            let done = sample_level(
                md,
                &spec,
                &mut state,
                level,
                &items,
                &windows,
                have,
                run_dir,
                opts,
                &mut windows_done,
            )?;
            let Some((tokens, seconds)) = done else {
                return Ok(Outcome::Interrupted);
            };
            summary.levels.push((level, tokens, seconds));
        }
        if opts.write_audio {
            let names: Vec<PathBuf> = items
                .iter()
                .map(|i| run_dir.join(format!("level_{level}/sample_{i}.wav")))
                .collect();
            if names.iter().any(|p| !p.exists()) || !windows.is_empty() {
                let v = match vq.take() {
                    Some(v) => v,
                    None => md.vqvae(dev)?,
                };
                write_level_audio(&v, level, &state.levels[&level].rows, &names, dev)?;
                vq = Some(v);
            }
        }
    }
    write_codes_file(md, run_dir, &spec, &state)?;
    Ok(Outcome::Finished(summary))
}

/// Sample `windows` of one level into `state`, saving it after each window. `None` when the
/// run was asked to stop (the state is saved), else the tokens sampled and the seconds taken.
#[allow(clippy::too_many_arguments)]
fn sample_level(
    md: &ModelDir,
    spec: &RunSpec,
    state: &mut RunState,
    level: usize,
    items: &[usize],
    windows: &[Window],
    have: usize,
    run_dir: &Path,
    opts: &RunOptions,
    windows_done: &mut usize,
) -> Result<Option<(usize, f64)>> {
    let dev = &opts.device;
    let pcfg = &md.config.priors[level];
    let t0 = Instant::now();
    let prior = md.prior_as(level, spec.weights, dev)?;
    crate::guard::check_kv_cache_fits(
        &format!("the level-{level} KV cache"),
        &prior.transformer,
        spec.max_batch.max(1).min(items.len()),
    )?;
    let (lab, bases) = base_labels(md, spec, level, items)?;
    // Upsamplers read the level above for the same items.
    let upper_rows = if pcfg.is_upsampler() {
        Some(upper_rows(md, spec, state, level, items)?)
    } else {
        None
    };
    let new_tokens: usize = windows
        .iter()
        .scan(have, |h, w| {
            let n = w.end - (*h).max(w.start);
            *h = w.end;
            Some(n)
        })
        .sum();
    let pb = progress_bar(opts.progress, level, new_tokens, windows.len());
    let mut done_tokens = 0usize;
    let report = |window: usize, tokens: usize| {
        if let Some(f) = opts.on_progress {
            f(&Progress {
                level,
                window,
                windows: windows.len(),
                tokens,
                tokens_total: new_tokens,
            });
        }
    };
    report(0, 0);
    for (wi, w) in windows.iter().enumerate() {
        if let Some(flag) = opts.interrupt {
            if flag.load(Ordering::SeqCst) {
                pb.abandon_with_message("interrupted");
                state.save(run_dir)?;
                return Ok(None);
            }
        }
        if opts.stop_after_windows == Some(*windows_done) {
            return Ok(None);
        }
        pb.set_message(format!("window {}/{}", wi + 1, windows.len()));
        let codes = state.levels.get_mut(&level).context("codes")?;
        let ent = state.entropy.get_mut(&level).context("entropy")?;
        let n = sample_one_window(
            &prior,
            &lab,
            &bases,
            spec,
            level,
            w,
            codes,
            ent,
            upper_rows.as_deref(),
            items,
            dev,
            &mut |k| {
                pb.set_position((done_tokens + k) as u64);
                report(wi, done_tokens + k);
            },
        )?;
        done_tokens += n;
        pb.set_position(done_tokens as u64);
        report(wi + 1, done_tokens);
        state.save(run_dir)?;
        *windows_done += 1;
        window_delay();
    }
    pb.finish_with_message(format!("level {level} done"));
    Ok(Some((new_tokens, t0.elapsed().as_secs_f64())))
}

/// The codes file of docs/CONVENTIONS.md ("Codes files"), with every item's row (rows missing at a level are absent).
pub fn write_codes_file(
    md: &ModelDir,
    run_dir: &Path,
    spec: &RunSpec,
    state: &RunState,
) -> Result<()> {
    let dev = Device::Cpu;
    let n_levels = md.config.vqvae.levels;
    let mut levels: Vec<Option<Tensor>> = vec![None; n_levels];
    for (l, c) in &state.levels {
        if *l < n_levels && !c.is_empty() && spec.items_at(*l).len() == spec.items.len() {
            levels[*l] = Some(to_tensor(&c.rows, &dev)?);
        }
    }
    if levels.iter().all(Option::is_none) {
        return Ok(());
    }
    crate::vqvae::codes::save_codes(
        &run_dir.join("codes.safetensors"),
        &levels,
        spec.sample_rate,
        &md.config.vqvae.hop_lengths(),
    )
}

#[allow(clippy::too_many_arguments)]
fn sample_one_window(
    prior: &Prior,
    lab: &Labeller,
    bases: &[BaseLabel],
    spec: &RunSpec,
    level: usize,
    w: &Window,
    codes: &mut LevelCodes,
    ent: &mut EntropySums,
    upper: Option<&[Vec<i64>]>,
    items: &[usize],
    dev: &Device,
    progress: &mut dyn FnMut(usize),
) -> Result<usize> {
    let have = codes.len();
    let n_new = w.end - have.max(w.start);
    let s = &spec.settings[level];
    let opts = SampleOpts {
        temp: s.temperature,
        top_k: s.top_k,
        top_p: s.top_p,
        chunk_size: spec.chunk_size,
        keep_logits: false,
        level: level as u64,
        window: w.index as u64,
    };
    let n = items.len();
    let mut new_rows: Vec<Vec<i64>> = vec![vec![]; n];
    let max_batch = spec.max_batch.max(1);
    let mut done_items = 0usize;
    for b0 in (0..n).step_by(max_batch) {
        let b1 = (b0 + max_batch).min(n);
        let (flat, _) = lab.get_y_batch(&bases[b0..b1], w.start as i64)?;
        let y = Tensor::from_vec(flat, (b1 - b0, lab.y_len()), dev)?;
        let z_cond = match upper {
            Some(up) => {
                let f = w.start / (prior.cfg.n_ctx / prior.z_cond_len());
                let rows: Vec<Vec<i64>> = up[b0..b1]
                    .iter()
                    .map(|r| r[f..f + prior.z_cond_len()].to_vec())
                    .collect();
                Some(to_tensor(&rows, dev)?)
            }
            None => None,
        };
        let y_opt = prior.cfg.labels.is_some().then_some(&y);
        let cond = prior.conditioning(y_opt, z_cond.as_ref())?;
        let prime_rows: Vec<Vec<i64>> = codes.rows[b0..b1]
            .iter()
            .map(|r| r[w.start..have].to_vec())
            .collect();
        let prime = to_tensor(&prime_rows, dev)?;
        let seeds: Vec<u64> = items[b0..b1].iter().map(|&i| spec.items[i].seed).collect();
        let out = sample_window(prior, &cond, &prime, n_new, &seeds, &opts, &mut |k, _| {
            progress((done_items * n_new + k * (b1 - b0)) / n);
        })
        .with_context(|| {
            format!(
                "sampling level {level}, window {} (tokens {}..{})",
                w.index, w.start, w.end
            )
        })?;
        let toks = out.tokens.to_dtype(DType::I64)?.to_vec2::<i64>()?;
        for (j, row) in toks.into_iter().enumerate() {
            new_rows[b0 + j] = row[row.len() - n_new..].to_vec();
            for e in &out.entropy[j] {
                ent.raw[b0 + j] += e.raw_bits as f64;
                ent.filtered[b0 + j] += e.filtered_bits as f64;
                if let Some(t) = ent.token.get_mut(b0 + j) {
                    *t += e.token_bits as f64;
                }
                ent.count[b0 + j] += 1;
            }
        }
        done_items = b1;
    }
    for (r, new) in codes.rows.iter_mut().zip(new_rows) {
        r.extend(new);
    }
    Ok(n_new)
}

/// `JUKEBOX_WINDOW_DELAY_MS` slows every window by that much: tests of interruption (a server
/// killed mid-job) use it to get a job that is still running when they act.
fn window_delay() {
    if let Some(ms) = std::env::var("JUKEBOX_WINDOW_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

fn progress_bar(show: bool, level: usize, tokens: usize, windows: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(tokens as u64);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "level {level} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} tokens {{per_sec}} ETA {{eta}} {{msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(format!("{windows} windows"));
    pb
}
