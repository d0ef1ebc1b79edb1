//! `jukebox upsample RUN_DIR [--samples 0,3]`: sample the lower levels of a finished run later,
//! only for the chosen samples.

use anyhow::{Context, Result};
use jukebox::sample::RunSpec;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A run directory whose upper level is finished.
    pub run_dir: PathBuf,
    /// Samples to upsample (default: all), e.g. 0,3.
    #[arg(long)]
    pub samples: Option<String>,
    /// Levels to add (default: every level below the run's lowest).
    #[arg(long)]
    pub levels: Option<String>,
    /// Model directory (default: the run's own).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Hide progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Progress as bars, or as JSON lines on stderr (for programs such as `jukebox serve`).
    #[arg(long, value_parser = ["bars", "json"], default_value = "bars")]
    pub progress: String,
    /// cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(a: Args) -> Result<()> {
    let dev = super::device(&a.device)?;
    let mut spec = RunSpec::load(&a.run_dir)?;
    let md = jukebox::checkpoint::ModelDir::open(a.model.as_deref().unwrap_or(&spec.model))
        .context("cannot open the run's model")?;
    let n_levels = md.config.priors.len();
    let add = match &a.levels {
        Some(s) => Some(jukebox::sample::parse_levels(s, n_levels)?),
        None => None,
    };
    let chosen = match &a.samples {
        Some(s) => Some(
            s.split(',')
                .map(|x| {
                    x.trim()
                        .parse::<usize>()
                        .map_err(|_| anyhow::anyhow!("bad sample index `{x}`"))
                })
                .collect::<Result<Vec<_>>>()?,
        ),
        None => None,
    };
    jukebox::sample::add_levels(&mut spec, n_levels, add, chosen, &a.run_dir)?;
    spec.save(&a.run_dir)?;
    super::sample::drive(&md, &a.run_dir, a.quiet, a.progress == "json", dev)
}
