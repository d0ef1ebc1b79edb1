//! `jukebox inspect PATH`: format, tensors, dtypes, parameter count and model kind of a
//! checkpoint file or model directory.

use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A checkpoint file (.safetensors, .bin, .pth, .pth.tar) or a model directory.
    pub path: PathBuf,
    /// Also list every tensor: key, dtype and shape (official keys for model directories).
    #[arg(long)]
    pub keys: bool,
}

pub fn run(args: Args) -> Result<()> {
    let report = jukebox::checkpoint::inspect::inspect(&args.path)?;
    print!("{}", report.render(args.keys));
    Ok(())
}
