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
    /// Print JSON: path, format, kind, parts (tensors, parameters, dtypes), metadata and, with
    /// --keys, every tensor's key, dtype and shape.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let mut report = jukebox::checkpoint::inspect::inspect(&args.path)?;
    if args.json {
        if !args.keys {
            report.keys.clear();
        }
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render(args.keys));
    }
    Ok(())
}
