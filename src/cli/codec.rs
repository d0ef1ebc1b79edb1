//! `jukebox encode` / `jukebox decode` (not yet available).

use anyhow::{bail, Result};

#[derive(clap::Args, Debug)]
pub struct EncodeArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct DecodeArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

pub fn run_encode(_args: EncodeArgs) -> Result<()> {
    bail!("`jukebox encode` is not yet available in this build")
}

pub fn run_decode(_args: DecodeArgs) -> Result<()> {
    bail!("`jukebox decode` is not yet available in this build")
}
