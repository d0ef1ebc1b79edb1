//! The study: one prompt, genre × artist × seed sweeps held equal, measured and reported.
//!
//! [`plan::Plan`] fixes the cells, seeds and batch groups; [`run_study`] runs the pending groups
//! of a plan through a [`runner::CellRunner`] (resumable: a group is marked done only after all of
//! its files are written), [`merge`] joins shard folders, and [`aggregate`] writes `metrics.csv`,
//! `claims.csv` and the offline `index.html`. All outputs are deterministic: sorted, fixed float
//! formatting and no timestamps, so a resumed or sharded study gives the same bytes.

pub mod claims;
pub mod emit;
pub mod features;
pub mod glance;
pub mod html;
pub mod metrics;
pub mod model_runner;
pub mod plan;
pub mod ranking;
pub mod report;
pub mod runner;
pub mod stats;
pub mod store;
pub mod svg;
pub mod vocab;

pub use model_runner::ModelRunner;
pub use plan::{BatchGroup, Cell, Mode, Plan, PlanSpec, RunnerKind, Vocab};
pub use runner::{CellRunner, FakeRunner, LevelOutcome, PromptRecon, SampleOutcome};

use anyhow::{bail, Context, Result};
use metrics::PromptRef;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;
use store::{ItemRecord, Layout};

/// How to run a plan.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Run only groups g with g % n == i, into `STUDY/shards/<i>-of-<n>/`.
    pub shard: Option<(usize, usize)>,
    /// Print progress to stderr.
    pub verbose: bool,
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunSummary {
    pub groups_run: usize,
    pub groups_skipped: usize,
    /// True when the study is complete and its report was written.
    pub reported: bool,
}

/// Facts about the prompt kept beside its audio.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PromptInfo {
    pub samples: usize,
    pub tempo_bpm: f64,
    pub levels: Vec<usize>,
}

/// Parse `--shard i/n`.
pub fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let (i, n) = s
        .split_once('/')
        .with_context(|| format!("--shard `{s}`: expected i/n, e.g. 0/4"))?;
    let i: usize = i
        .trim()
        .parse()
        .with_context(|| format!("--shard `{s}`: `{i}` is not a number"))?;
    let n: usize = n
        .trim()
        .parse()
        .with_context(|| format!("--shard `{s}`: `{n}` is not a number"))?;
    if n == 0 || i >= n {
        bail!("--shard `{s}`: need 0 <= i < n");
    }
    Ok((i, n))
}

/// Load the first `plan.prompt_samples` of the prompt, or explain why it is too short.
pub fn load_prompt(path: &Path, plan: &Plan) -> Result<Vec<f32>> {
    let secs = plan.prompt_samples as f64 / plan.sample_rate as f64;
    let audio = crate::audio::load_prefix(path, secs + crate::audio::PREFIX_MARGIN_SECONDS)
        .with_context(|| format!("cannot load prompt {}", path.display()))?;
    for w in &audio.warnings {
        eprintln!("warning: prompt {}: {w}", path.display());
    }
    if audio.samples.len() < plan.prompt_samples {
        bail!(
            "prompt {} is {:.3} s long, shorter than --prompt-seconds {} ({} samples needed); \
             use a shorter --prompt-seconds or a longer prompt",
            path.display(),
            audio.samples.len() as f64 / plan.sample_rate as f64,
            plan.prompt_seconds,
            plan.prompt_samples
        );
    }
    let mut s = audio.samples;
    s.truncate(plan.prompt_samples);
    Ok(s)
}

/// Write `plan.toml`, or check that an existing one is the same plan.
pub fn write_or_check_plan(root: &Path, plan: &Plan) -> Result<()> {
    let layout = Layout::new(root);
    let text = plan.to_toml()?;
    let path = layout.plan();
    if path.exists() {
        let old = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let old_plan = Plan::from_toml(&old, &path)?;
        check_runner(root, old_plan.runner, plan.runner)?;
        if old_plan != *plan {
            bail!(
                "{} already holds a different study plan; resume it with `jukebox study --resume {}`, \
                 or choose a new --out",
                root.display(),
                root.display()
            );
        }
        return Ok(());
    }
    crate::util::atomic_write(&path, text.as_bytes())
}

/// Refuse to continue or join a study made by one runner kind with another.
pub fn check_runner(root: &Path, study: RunnerKind, this: RunnerKind) -> Result<()> {
    if study != this {
        let flag = |k: RunnerKind| match k {
            RunnerKind::Fake => "with --fake-runner",
            RunnerKind::Model => "without --fake-runner",
        };
        bail!(
            "{} is a study made by the {study} runner but this run uses the {this} runner; \
             a study never mixes runner kinds (run {}, or choose a new --out)",
            root.display(),
            flag(study)
        );
    }
    Ok(())
}

/// The item records of the finished groups under `root` (a study or shard folder) made by a
/// runner other than `want`, as (path, kind). Items of unfinished groups may be debris of an
/// interrupted run and are left to the resume.
fn foreign_items(root: &Path, plan: &Plan, want: RunnerKind) -> Result<Vec<(String, RunnerKind)>> {
    let layout = Layout::new(root);
    let mut out = vec![];
    for g in plan.groups.iter().filter(|g| layout.is_done(g.index)) {
        let Some(i) = plan.seed_index(g.seed) else {
            continue;
        };
        for c in &g.cells {
            let p = root.join(Layout::rel_item(c, i));
            let rec = store::read_item(&p)?;
            if rec.runner != want {
                out.push((p.display().to_string(), rec.runner));
            }
        }
    }
    Ok(out)
}

/// Refuse a study folder (and its shard folders) holding items made by another runner kind.
fn check_item_runners(root: &Path, plan: &Plan) -> Result<()> {
    let mut roots = vec![root.to_path_buf()];
    roots.extend(store::shard_roots(root)?.into_iter().map(|(_, _, p)| p));
    for r in roots {
        if let Some((p, k)) = foreign_items(&r, plan, plan.runner)?.first() {
            bail!(
                "{p} was made by the {k} runner but {} records the {} runner; \
                 a study never mixes runner kinds, so these folders cannot be merged \
                 (remove the foreign shard folder and rerun it with the study's runner)",
                Layout::new(root).plan().display(),
                plan.runner
            );
        }
    }
    Ok(())
}

/// Read `STUDY/plan.toml`.
pub fn read_plan(root: &Path) -> Result<Plan> {
    let path = Layout::new(root).plan();
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{} has no study plan (plan.toml); is it a study directory?",
            root.display()
        )
    })?;
    Plan::from_toml(&text, &path)
}

/// A group is done when its marker is in the study root or in any shard folder.
fn group_done(root: &Path, shards: &[(usize, usize, std::path::PathBuf)], g: usize) -> bool {
    Layout::new(root).is_done(g) || shards.iter().any(|(_, _, p)| Layout::new(p).is_done(g))
}

/// Write the prompt, its reconstruction per level, their spectrograms and codes.
fn write_prompt(
    layout: &Layout,
    plan: &Plan,
    prompt: &[f32],
    recon: &[PromptRecon],
    tempo: f64,
) -> Result<()> {
    let dir = layout.prompt_dir();
    store::write_wav(&dir.join("prompt.wav"), prompt, plan.sample_rate)?;
    features::spectrogram_png(&dir.join("prompt.png"), prompt, plan.sample_rate)?;
    for r in recon {
        store::write_wav(
            &dir.join(format!("level_{}.wav", r.level)),
            &r.audio,
            plan.sample_rate,
        )?;
        features::spectrogram_png(
            &dir.join(format!("level_{}.png", r.level)),
            &r.audio,
            plan.sample_rate,
        )?;
    }
    let codes: Vec<(usize, &[i64])> = recon
        .iter()
        .map(|r| (r.level, r.codes.as_slice()))
        .collect();
    store::write_codes(
        &dir.join("codes.safetensors"),
        &codes,
        plan.sample_rate,
        &plan.hops,
    )?;
    let info = PromptInfo {
        samples: prompt.len(),
        tempo_bpm: tempo,
        levels: plan.levels.clone(),
    };
    store::write_json(&dir.join("prompt.json"), &info)
}

/// Write one item's files (audio, spectrograms, codes, record) under `layout`.
fn write_item(layout: &Layout, plan: &Plan, out: &SampleOutcome, prompt: &PromptRef) -> Result<()> {
    let sample = plan
        .seed_index(out.seed)
        .with_context(|| format!("runner returned seed {} which is not in the plan", out.seed))?;
    let cell = &out.cell;
    let mut levels = vec![];
    for lo in &out.levels {
        if lo.audio.len() != plan.total_samples {
            bail!(
                "runner returned {} samples for cell {cell} seed {} level {}, expected {}",
                lo.audio.len(),
                out.seed,
                lo.level,
                plan.total_samples
            );
        }
        store::write_wav(
            &layout.root.join(Layout::rel_wav(cell, sample, lo.level)),
            &lo.audio,
            plan.sample_rate,
        )?;
        features::spectrogram_png(
            &layout.root.join(Layout::rel_png(cell, sample, lo.level)),
            &lo.audio,
            plan.sample_rate,
        )?;
        levels.push(metrics::level_record(plan, lo, prompt));
    }
    let codes: Vec<(usize, &[i64])> = out
        .levels
        .iter()
        .map(|l| (l.level, l.codes.as_slice()))
        .collect();
    store::write_codes(
        &layout.root.join(Layout::rel_codes(cell, sample)),
        &codes,
        plan.sample_rate,
        &plan.hops,
    )?;
    if let Some(c) = plan.cell(cell) {
        let text = toml::to_string(c).context("cell description")?;
        crate::util::atomic_write(&layout.cell_dir(cell).join("cell.toml"), text.as_bytes())?;
    }
    let rec = ItemRecord {
        runner: plan.runner,
        cell: cell.clone(),
        seed: out.seed,
        sample,
        levels,
    };
    store::write_json(&layout.root.join(Layout::rel_item(cell, sample)), &rec)
}

/// Run the pending groups of `plan` into `root` (a study directory). Finished groups are
/// skipped, never recomputed. Without a shard, shard folders are merged and the report is
/// written once every group is done.
pub fn run_study(
    plan: &Plan,
    root: &Path,
    prompt: &[f32],
    runner: &mut dyn CellRunner,
    opts: &RunOptions,
) -> Result<RunSummary> {
    plan.check()?;
    check_runner(root, plan.runner, runner.kind())?;
    write_or_check_plan(root, plan)?;
    check_item_runners(root, plan)?;
    let shards = store::shard_roots(root)?;
    let work = match opts.shard {
        Some((i, n)) => Layout::new(Layout::new(root).shard_root(i, n)),
        None => Layout::new(root),
    };
    let mine = plan.shard_groups(opts.shard);
    let pending: Vec<&BatchGroup> = mine
        .iter()
        .copied()
        .filter(|g| !group_done(root, &shards, g.index))
        .collect();
    let mut summary = RunSummary {
        groups_skipped: mine.len() - pending.len(),
        ..Default::default()
    };
    let prompt_ref = PromptRef::new(prompt.to_vec(), plan.sample_rate, plan.prompt_bpm);
    let prompt_missing = !work.prompt_dir().join("prompt.json").exists()
        && !Layout::new(root).prompt_dir().join("prompt.json").exists();
    if !pending.is_empty() || prompt_missing {
        let recon = runner.prepare(plan, prompt)?;
        write_prompt(&work, plan, prompt, &recon, prompt_ref.tempo_bpm)?;
    }
    if opts.verbose && summary.groups_skipped > 0 {
        eprintln!(
            "study: {} of {} groups already done, skipped",
            summary.groups_skipped,
            mine.len()
        );
    }
    for (k, g) in pending.iter().enumerate() {
        if opts.verbose {
            eprintln!(
                "study: group {} ({}/{}): {} seed {}, {} cells",
                g.index,
                k + 1,
                pending.len(),
                g.mode.as_str(),
                g.seed,
                g.cells.len()
            );
        }
        let mut progress = |c: &str| {
            if opts.verbose {
                eprintln!("  {c}");
            }
        };
        let outs = runner
            .run_group(plan, g, prompt, &mut progress)
            .with_context(|| {
                format!(
                    "batch group {} failed; rerun the same command to resume",
                    g.index
                )
            })?;
        if outs.len() != g.cells.len()
            || outs
                .iter()
                .zip(&g.cells)
                .any(|(o, c)| &o.cell != c || o.seed != g.seed)
        {
            bail!(
                "runner returned items that do not match batch group {}",
                g.index
            );
        }
        // Items are independent files; their metrics (STFTs, onsets, spectrogram images) are
        // the study's main serial work otherwise.
        outs.par_iter()
            .map(|o| write_item(&work, plan, o, &prompt_ref))
            .collect::<Result<Vec<()>>>()?;
        store::mark_done(&work, g)?;
        summary.groups_run += 1;
    }
    if opts.shard.is_none() {
        merge_shards(root)?;
        if plan
            .groups
            .iter()
            .all(|g| Layout::new(root).is_done(g.index))
        {
            // The runner's scratch folder, empty once every group finished.
            let _ = std::fs::remove_dir(root.join(".work"));
            aggregate(root)?;
            summary.reported = true;
        }
    }
    Ok(summary)
}

fn merge_shards(root: &Path) -> Result<()> {
    for (_, _, p) in store::shard_roots(root)? {
        store::merge_tree(&p, root)?;
    }
    let s = root.join("shards");
    if s.exists() {
        let _ = std::fs::remove_dir(&s);
    }
    Ok(())
}

/// `jukebox study merge STUDY`: join shard folders, refuse while any group is missing (naming
/// the shards to rerun), then write the metrics, claims and report.
pub fn merge(root: &Path) -> Result<()> {
    let plan = read_plan(root)?;
    let shards = store::shard_roots(root)?;
    let mut ns: Vec<usize> = shards.iter().map(|(_, n, _)| *n).collect();
    ns.sort_unstable();
    ns.dedup();
    // Check before moving anything: a refused merge leaves the shard folders as they are, so
    // shards still running (or resumed later) keep their files and their `.work` state.
    check_item_runners(root, &plan)?;
    let missing: Vec<usize> = plan
        .groups
        .iter()
        .map(|g| g.index)
        .filter(|g| !group_done(root, &shards, *g))
        .collect();
    if !missing.is_empty() {
        let mut msg = format!(
            "{} of {} batch groups are not done (groups {}); ",
            missing.len(),
            plan.groups.len(),
            missing
                .iter()
                .map(|g| g.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        if ns.is_empty() {
            msg.push_str(&format!(
                "rerun `jukebox study --resume {}`",
                root.display()
            ));
        } else {
            let emitted = slurm_shards(root);
            let mut parts = vec![];
            for n in ns {
                let mut idx: Vec<usize> = missing.iter().map(|g| g % n).collect();
                idx.sort_unstable();
                idx.dedup();
                let list: Vec<String> = idx.iter().map(|i| format!("--shard {i}/{n}")).collect();
                let mut part = format!("rerun shards {}", list.join(", "));
                if emitted == Some(n) {
                    let ids: Vec<String> = idx.iter().map(|i| i.to_string()).collect();
                    part.push_str(&format!(
                        " (on Slurm: `{}`)",
                        root.join("slurm").join("rerun.sh").display().to_string()
                            + " "
                            + &ids.join(" ")
                    ));
                }
                parts.push(part);
            }
            msg.push_str(&parts.join("; or "));
        }
        bail!("{msg} (finished groups are kept and never recomputed)");
    }
    merge_shards(root)?;
    let layout = Layout::new(root);
    if let Some(g) = plan.groups.iter().find(|g| !layout.is_done(g.index)) {
        bail!(
            "batch group {} is not in {} after merging the shards",
            g.index,
            root.display()
        );
    }
    aggregate(root)
}

/// The number of array tasks of an emitted Slurm recipe (`STUDY/slurm/array.sbatch`), if any.
fn slurm_shards(root: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(root.join("slurm").join("array.sbatch")).ok()?;
    let last = text
        .lines()
        .find_map(|l| l.strip_prefix("#SBATCH --array=0-"))?;
    last.trim().parse::<usize>().ok().map(|k| k + 1)
}

/// Read every item record of a complete study, in plan order (cell, then seed).
pub fn read_items(root: &Path, plan: &Plan) -> Result<Vec<ItemRecord>> {
    let mut items = vec![];
    for c in &plan.cells {
        for (i, _) in plan.seeds.iter().enumerate() {
            let p = root.join(Layout::rel_item(&c.id, i));
            items.push(store::read_item(&p)?);
        }
    }
    Ok(items)
}

/// Write `metrics.csv`, `codes_hist.csv`, `separability.csv`, `cell_pairs.csv`, `claims.csv`
/// and `index.html` from a complete study directory.
pub fn aggregate(root: &Path) -> Result<()> {
    let plan = read_plan(root)?;
    let items = read_items(root, &plan)?;
    if let Some(i) = items.iter().find(|i| i.runner != plan.runner) {
        bail!(
            "item {} seed {} in {} was made by the {} runner but the plan records the {} runner; \
             a study never mixes runner kinds",
            i.cell,
            i.seed,
            root.display(),
            i.runner,
            plan.runner
        );
    }
    let pj = Layout::new(root).prompt_dir().join("prompt.json");
    let info: PromptInfo = serde_json::from_str(
        &std::fs::read_to_string(&pj).with_context(|| format!("cannot read {}", pj.display()))?,
    )
    .with_context(|| format!("{} is not a prompt record", pj.display()))?;
    let w = |name: &str, text: &str| crate::util::atomic_write(&root.join(name), text.as_bytes());
    w(
        "metrics.csv",
        &metrics::metrics_csv(&plan, &items, info.tempo_bpm),
    )?;
    w("codes_hist.csv", &metrics::codes_hist_csv(&items))?;
    let (sep, pairs) = metrics::separability(&plan, &items);
    w("separability.csv", &metrics::separability_csv(&sep))?;
    w("cell_pairs.csv", &metrics::cell_pairs_csv(&pairs))?;
    let claims = claims::measure(&plan, &items, &sep);
    w("claims.csv", &claims::claims_csv(&claims, plan.runner))?;
    let ranking = report::read_label_ranking(&root.join("label_ranking.csv"));
    let html = report::render(&report::ReportData {
        plan: &plan,
        items: &items,
        prompt: &info,
        separability: &sep,
        pairs: &pairs,
        claims: &claims,
        ranking: ranking.as_ref(),
    });
    w("index.html", &html)
}
