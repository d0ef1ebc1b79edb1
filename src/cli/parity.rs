//! `jukebox parity DIR...`

use anyhow::{bail, Result};
use jukebox::parity::{self, Report};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Fixture folders (e.g. tests/fixtures/reference/fixtures). Each is recognised by its manifest.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Treat skipped checks as failures (CI uses this).
    #[arg(long)]
    pub strict: bool,
}

pub fn run(args: Args) -> Result<()> {
    let mut failed = 0;
    for dir in &args.dirs {
        let mut report = Report::new(true);
        let kind = parity::run(dir, &mut report)?;
        let n = report.n_failed(args.strict);
        println!("{} ({kind:?}): {}", dir.display(), report.summary());
        failed += n;
    }
    if failed > 0 {
        bail!(
            "{failed} parity check(s) failed{}",
            if args.strict {
                " (skips count as failures with --strict)"
            } else {
                ""
            }
        );
    }
    Ok(())
}
