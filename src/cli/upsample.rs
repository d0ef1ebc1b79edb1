//! `jukebox upsample RUN_DIR [--samples 0,3]`: sample the lower levels of a finished run later,
//! only for the chosen samples.

use anyhow::{bail, Context, Result};
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
    let lowest = *spec.levels.iter().min().context("run has no levels")?;
    let add: Vec<usize> = match &a.levels {
        Some(s) => super::sample::parse_levels(s, n_levels)?,
        None => (0..lowest).rev().collect(),
    };
    if add.is_empty() {
        bail!("{} already samples every level", a.run_dir.display());
    }
    let chosen: Vec<usize> = match &a.samples {
        Some(s) => s
            .split(',')
            .map(|x| {
                let i: usize = x
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("bad sample index `{x}`"))?;
                if i >= spec.items.len() {
                    bail!(
                        "sample {i} does not exist: the run has samples 0..{}",
                        spec.items.len()
                    );
                }
                Ok(i)
            })
            .collect::<Result<_>>()?,
        None => (0..spec.items.len()).collect(),
    };
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
    spec.save(&a.run_dir)?;
    super::sample::drive(&md, &a.run_dir, a.quiet, dev)
}
