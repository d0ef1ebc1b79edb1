//! `jukebox convert PATH -o DIR`: a model directory → HF layout (`config.json` +
//! `model.safetensors`); a single official `.pth.tar` → `DIR/<stem>.safetensors` with its
//! official keys (see `jukebox::checkpoint::convert`).

use anyhow::{bail, Result};
use candle_core::DType;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A model directory (any layout) or one official checkpoint file.
    pub path: PathBuf,
    /// Output directory.
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
    /// Store every float tensor as this type (f32, f16, bf16); default: keep each stored dtype.
    #[arg(long)]
    pub dtype: Option<String>,
}

pub fn run(args: Args) -> Result<()> {
    let dtype = match args.dtype.as_deref() {
        None | Some("keep") => None,
        Some("f32") => Some(DType::F32),
        Some("f16") => Some(DType::F16),
        Some("bf16") => Some(DType::BF16),
        Some(other) => bail!("--dtype `{other}` is not one of f32, f16, bf16, keep"),
    };
    let done = jukebox::checkpoint::convert::convert(&args.path, &args.out, dtype)?;
    println!(
        "converted {} tensors from {}",
        done.n_tensors,
        args.path.display()
    );
    for f in &done.files {
        println!("  wrote {}", f.display());
    }
    Ok(())
}
