//! `jukebox study` and `jukebox study merge`.

use anyhow::{Context, Result};
use candle_core::Device;
use jukebox::checkpoint::ModelDir;
use jukebox::labels::{Field, IdSet};
use jukebox::study::emit::{self, EmitOptions};
use jukebox::study::plan::{LabelKind, LabelResolver, ModelFacts, Plan, PlanSpec, Vocab};
use jukebox::study::ranking::RankSpec;
use jukebox::study::{self as st, CellRunner, FakeRunner, RunOptions};
use jukebox::util::{atomic_write, resolve_default};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Tempo of the bundled `data/prompts/amen.wav`.
const AMEN_BPM: f64 = 137.0;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, allow_negative_numbers = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Sub>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// Join shard folders, check every cell is done, and write metrics, claims and the report.
    Merge {
        /// The study directory (holds plan.toml and shards/).
        dir: PathBuf,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    Slurm,
    K8s,
}

#[derive(clap::Args, Debug, Default)]
pub struct RunArgs {
    /// Model directory [default: models/default].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Prompt audio [default: data/prompts/amen.wav].
    #[arg(long)]
    pub prompt: Option<PathBuf>,
    /// Seconds taken from the prompt, cut to a multiple of the top hop [default: 3.504, two bars of the 137-BPM Amen prompt].
    #[arg(long)]
    pub prompt_seconds: Option<f64>,
    /// Total seconds of each sample, prompt included [default: prompt + 3].
    #[arg(long)]
    pub seconds: Option<f64>,
    /// The prompt's tempo, when known (the bundled Amen prompt is 137); default: measured.
    #[arg(long)]
    pub prompt_bpm: Option<f64>,
    /// Genre axis: repeat or comma-separate; `a+b` gives one cell a bag of genres [default: the model's first 4].
    #[arg(long = "genre", value_name = "GENRE", value_delimiter = ',')]
    pub genres: Option<Vec<String>>,
    /// Artist axis: repeat or comma-separate [default: the model's first 4].
    #[arg(long = "artist", value_name = "ARTIST", value_delimiter = ',')]
    pub artists: Option<Vec<String>>,
    /// Number of seeds per cell [default: 2].
    #[arg(long)]
    pub seeds: Option<u64>,
    /// First seed [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Study directory [default: studies/default, under the current directory; the model and
    /// prompt defaults fall back to the install location when not found here].
    #[arg(short = 'o', long = "out")]
    pub out: Option<PathBuf>,
    /// Levels to sample: top, top,middle or all [default: all].
    #[arg(long)]
    pub levels: Option<String>,
    /// Sampling temperature [default: 0.99, as `sample`].
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Keep only the k most likely codes per step (0 = off) [default: 0].
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Nucleus sampling mass (0 = off) [default: 0].
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Leave out the control cells (no-label cell and ancestral column).
    #[arg(long)]
    pub no_controls: bool,
    /// Do not rank the model's labels on the prompt (`label_ranking.csv`).
    #[arg(long)]
    pub no_rank: bool,
    /// Most cells in one batch group [default: 16].
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// How the priors hold their dense weights: f32 [default], f16, bf16 (on a CPU with AMX,
    /// prefills and scoring run on its tiles) or q8 (int8 with a scale per output: a quarter
    /// of the memory, faster at small batches; logits within about 1-2 % RMS of f32).
    /// Recorded in the plan; changes the takes.
    #[arg(long)]
    pub dtype: Option<String>,
    /// cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Hide progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// A plan file (TOML) with explicit cells or settings; its values override the flags.
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// Continue a study from its plan.toml (the other plan flags are ignored).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Run only batch groups g with g % n == i, into STUDY/shards/i-of-n/.
    #[arg(long)]
    pub shard: Option<String>,
    /// Print the plan, tokens per level and a time estimate; sample nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// List the model's genres (with --search TEXT to filter).
    #[arg(long)]
    pub list_genres: bool,
    /// List the model's artists (with --search TEXT to filter).
    #[arg(long)]
    pub list_artists: bool,
    /// Filter for --list-genres / --list-artists.
    #[arg(long)]
    pub search: Option<String>,
    /// Write cluster job files into STUDY/slurm or STUDY/k8s instead of running.
    #[arg(long, value_enum)]
    pub emit: Option<Emit>,
    /// Shards for --emit (at most the number of batch groups).
    #[arg(long, default_value_t = 4)]
    pub shards: usize,
    /// CPUs per shard for --emit.
    #[arg(long, default_value_t = 2)]
    pub cpus: usize,
    /// Memory per shard in GiB for --emit.
    #[arg(long, default_value_t = 8)]
    pub mem_gb: usize,
    /// GPUs per shard for --emit.
    #[arg(long, default_value_t = 0)]
    pub gpus: usize,
    /// Time limit per shard in minutes for --emit [default: from the plan's estimate].
    #[arg(long)]
    pub minutes: Option<u64>,
    /// Container image for --emit k8s.
    #[arg(long, default_value = "jukebox-rs:latest")]
    pub image: String,
    /// PersistentVolumeClaim holding the study for --emit k8s.
    #[arg(long, default_value = "jukebox-study")]
    pub pvc: String,
    /// Use the deterministic fake model (tests and demos of the report; no model needed).
    #[arg(long, hide = true)]
    pub fake_runner: bool,
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        Some(Sub::Merge { dir }) => {
            st::merge(&dir)?;
            println!("merged; report at {}", dir.join("index.html").display());
            Ok(())
        }
        None => run_study(args.run),
    }
}

/// Hops and sample rate, the strict label lookup, and the id lists for `--list-*`.
type ModelInfo = (ModelFacts, Box<dyn LabelResolver>, Option<Arc<IdSet>>);

/// The model's facts and label lists (any layout `ModelDir` opens); with the fake runner and no
/// model files, the official hops and the label lists beside `model`, if any.
fn model_info(model: &Path, fake: bool) -> Result<ModelInfo> {
    let has_model = model.join("config.json").exists() || model.join("preset").exists();
    if fake && !has_model {
        let vocab = Vocab::from_model_dir(model, 0, 0)?;
        let facts = ModelFacts {
            sample_rate: 44100,
            hops: vec![8, 32, 128],
        };
        return Ok((facts, Box::new(vocab), None));
    }
    let md = ModelDir::open(model)
        .with_context(|| format!("cannot open the model {}", model.display()))?;
    let top = md.config.top_level();
    let prior = md
        .config
        .priors
        .iter()
        .find(|p| p.level == top)
        .with_context(|| format!("model {} has no top-level prior", model.display()))?;
    let ids = IdSet::for_model(model, prior)?;
    let facts = ModelFacts {
        sample_rate: md.config.vqvae.sample_rate,
        hops: md.config.vqvae.hop_lengths(),
    };
    Ok((facts, Box::new(ids.as_ref().clone()), Some(ids)))
}

/// The runner: the sampling pipeline on the model, or the deterministic fake. Group runs in
/// progress live in a hidden `.work` folder of the study (or shard) folder, so a group
/// interrupted mid-way resumes at its last window.
/// With `check_plan`, a study too big for memory is refused here (src/guard.rs), before
/// anything is written, so the suggested --max-batch can be used with the same --out.
fn make_runner(
    model: &Path,
    work: &Path,
    device: Option<Device>,
    check_plan: Option<&Plan>,
    progress: bool,
) -> Result<Box<dyn CellRunner>> {
    let Some(dev) = device else {
        return Ok(Box::new(FakeRunner::new()));
    };
    let mut r = jukebox::study::ModelRunner::new(model, work)?;
    r.progress = progress;
    r.dev = dev;
    if let Some(plan) = check_plan {
        r.check_memory(plan)?;
    }
    Ok(Box::new(r))
}

fn list(ids: Option<&IdSet>, vocab: &dyn LabelResolver, kind: LabelKind, search: Option<&str>) {
    match ids {
        Some(ids) => {
            let field = if kind == LabelKind::Genre {
                Field::Genre
            } else {
                Field::Artist
            };
            let rows = match search {
                Some(q) => ids.search(field, q),
                None => ids.table(field).entries.clone(),
            };
            for (name, id) in rows {
                println!("{id:>6}  {name}");
            }
        }
        None => {
            for name in vocab.first_names(kind, usize::MAX) {
                if search.is_none_or(|q| name.to_lowercase().contains(&q.to_lowercase())) {
                    println!("{name}");
                }
            }
        }
    }
}

fn run_study(a: RunArgs) -> Result<()> {
    // None: the fake runner. A device that cannot be opened is refused before anything else.
    let device = if a.fake_runner {
        None
    } else {
        Some(super::device(&a.device)?)
    };
    let shard = a.shard.as_deref().map(st::parse_shard).transpose()?;
    let this_runner = if a.fake_runner {
        st::RunnerKind::Fake
    } else {
        st::RunnerKind::Model
    };
    let (plan, root) = if let Some(dir) = &a.resume {
        let plan = st::read_plan(dir)?;
        st::check_runner(dir, plan.runner, this_runner)?;
        (plan, dir.clone())
    } else {
        let mut spec = PlanSpec {
            model: a.model.as_ref().map(|p| p.display().to_string()),
            prompt: a.prompt.as_ref().map(|p| p.display().to_string()),
            prompt_seconds: a.prompt_seconds,
            seconds: a.seconds,
            prompt_bpm: a.prompt_bpm,
            genres: a.genres.clone(),
            artists: a.artists.clone(),
            seeds: a.seeds,
            seed: a.seed,
            levels: a.levels.clone(),
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
            controls: a.no_controls.then_some(false),
            max_batch: a.max_batch,
            dtype: a.dtype.clone(),
            cells: None,
        };
        if let Some(p) = &a.plan {
            spec = spec.overlay(PlanSpec::from_file(p)?);
        }
        let model = spec
            .model
            .clone()
            .map(PathBuf::from)
            .unwrap_or_else(|| resolve_default("models/default"));
        let (facts, vocab, ids) = model_info(&model, a.fake_runner)?;
        if a.list_genres || a.list_artists {
            if a.list_genres {
                list(
                    ids.as_deref(),
                    vocab.as_ref(),
                    LabelKind::Genre,
                    a.search.as_deref(),
                );
            }
            if a.list_artists {
                list(
                    ids.as_deref(),
                    vocab.as_ref(),
                    LabelKind::Artist,
                    a.search.as_deref(),
                );
            }
            return Ok(());
        }
        spec.model = Some(model.display().to_string());
        if spec.prompt.is_none() && spec.prompt_bpm.is_none() {
            // The bundled prompt's tempo is known (data/prompts/amen.md); tempo estimators
            // often lock onto a fraction of a syncopated break.
            spec.prompt_bpm = Some(AMEN_BPM);
        }
        let prompt = spec
            .prompt
            .clone()
            .map(PathBuf::from)
            .unwrap_or_else(|| resolve_default("data/prompts/amen.wav"));
        spec.prompt = Some(prompt.display().to_string());
        let mut plan = Plan::build(&spec, vocab.as_ref(), &facts)?;
        plan.runner = this_runner;
        let root = a
            .out
            .clone()
            // An output belongs where the user is: never into the source tree's `studies/`.
            .unwrap_or_else(|| PathBuf::from("studies/default"));
        (plan, root)
    };
    let model = PathBuf::from(&plan.model);
    if a.dry_run {
        let probe = FakeRunner::new();
        let rate = |l: usize| {
            if a.fake_runner {
                probe.tokens_per_second(l)
            } else {
                default_rate(l)
            }
        };
        if plan.runner == st::RunnerKind::Fake {
            println!("runner: fake (--fake-runner; numbers are not from a model)");
        }
        print!("{}", plan.describe(&rate));
        println!("output: {}", root.display());
        return Ok(());
    }
    if let Some(kind) = a.emit {
        return emit_jobs(&a, &plan, &root, kind);
    }
    let prompt = st::load_prompt(Path::new(&plan.prompt), &plan)?;
    let work = match shard {
        Some((i, n)) => root
            .join("shards")
            .join(format!("{i}-of-{n}"))
            .join(".work"),
        None => root.join(".work"),
    };
    let mut runner = make_runner(
        &model,
        &work,
        device,
        a.resume.is_none().then_some(&plan),
        !a.quiet,
    )?;
    // The label ranking is part of the report: the single run makes it, and of a sharded run
    // shard 0 does (it is written once, into the study root), so both give the same report.
    if shard.is_none_or(|(i, _)| i == 0) && !a.fake_runner && !a.no_rank {
        rank_prompt(&plan, &root)?;
    }
    let summary = st::run_study(
        &plan,
        &root,
        &prompt,
        runner.as_mut(),
        &RunOptions {
            shard,
            verbose: true,
        },
    )?;
    eprintln!(
        "study: {} groups run, {} already done",
        summary.groups_run, summary.groups_skipped
    );
    if summary.reported {
        println!("report: {}", root.join("index.html").display());
    } else if let Some((i, n)) = shard {
        println!(
            "shard {i}/{n} done in {}; run `jukebox study merge {}` when every shard has finished",
            root.join("shards").join(format!("{i}-of-{n}")).display(),
            root.display()
        );
    }
    Ok(())
}

/// Rank the model's genres (and artists, when the list is short) by how well they explain the
/// prompt (`jukebox rank-labels`, src/cli/rank_labels.rs), once per study, so the report shows them beside the sweep.
fn rank_prompt(plan: &Plan, root: &Path) -> Result<()> {
    let out = root.join("label_ranking.csv");
    if out.exists() {
        return Ok(());
    }
    let md = ModelDir::open(Path::new(&plan.model))?;
    let top = md.config.top_level();
    if md.config.priors.get(top).is_none_or(|p| p.labels.is_none()) {
        return Ok(());
    }
    let mut spec = RankSpec::for_study(
        PathBuf::from(&plan.model),
        PathBuf::from(&plan.prompt),
        plan.prompt_seconds,
    )?;
    spec.weights = plan.weights;
    eprintln!("study: ranking the model's labels on the prompt (skip with --no-rank)");
    let ranking = super::rank_labels::rank(&spec).context("ranking labels on the prompt")?;
    super::rank_labels::print_ranking(&ranking, 10);
    jukebox::util::atomic_write(&out, ranking.to_csv().as_bytes())
        .with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(())
}

/// Rough batched tokens per second per level on this kind of CPU, for estimates only.
fn default_rate(level: usize) -> f64 {
    match level {
        0 => 1500.0,
        1 => 800.0,
        _ => 250.0,
    }
}

fn emit_jobs(a: &RunArgs, plan: &Plan, root: &Path, kind: Emit) -> Result<()> {
    // The plan must exist before any shard starts, so that every shard runs the same plan.
    st::write_or_check_plan(root, plan)?;
    let abs = std::fs::canonicalize(root)
        .with_context(|| format!("cannot resolve {}", root.display()))?;
    let jukebox = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "jukebox".into());
    let shards = a.shards.min(plan.groups.len()).max(1);
    let o = EmitOptions {
        shards,
        cpus: a.cpus,
        mem_gb: a.mem_gb,
        gpus: a.gpus,
        minutes: a.minutes,
        jukebox,
        image: a.image.clone(),
        pvc: a.pvc.clone(),
        shard_flags: [(a.no_rank, "--no-rank"), (a.fake_runner, "--fake-runner")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, f)| f.to_string())
            .collect(),
        ..Default::default()
    };
    let minutes = o
        .minutes
        .unwrap_or_else(|| emit::default_minutes(plan, shards, &default_rate));
    let (dir, files) = match kind {
        Emit::Slurm => (abs.join("slurm"), emit::slurm(plan, &abs, &o, minutes)?),
        Emit::K8s => (
            abs.join("k8s"),
            emit::k8s(
                plan,
                "/study",
                &EmitOptions {
                    jukebox: "jukebox".into(),
                    ..o
                },
                minutes,
            )?,
        ),
    };
    for (name, text) in files {
        let p = dir.join(&name);
        atomic_write(&p, text.as_bytes())?;
        if name.ends_with(".sh") || name.ends_with(".sbatch") {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755));
        }
        println!("wrote {}", p.display());
    }
    Ok(())
}
