//! `jukebox logits` (not yet available).

use anyhow::{bail, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Arguments (this command is not yet available).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

pub fn run(_args: Args) -> Result<()> {
    bail!("`jukebox logits` is not yet available in this build")
}
