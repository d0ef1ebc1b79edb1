//! Subcommands. Each lives in its own file with an `Args` struct and a `run` function.

pub mod bench;
pub mod codec;
pub mod convert;
pub mod dataset;
pub mod docs;
pub mod inspect;
pub mod labels;
pub mod logits;
pub mod parity;
pub mod quality;
pub mod rank_labels;
pub mod sample;
pub mod study;
pub mod train;
pub mod upsample;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "jukebox",
    version,
    about = "OpenAI Jukebox in Rust: encode, sample, train and study music models"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a genre × artist × seed study on one prompt and write an HTML report.
    Study(study::Args),
    /// Generate music: ancestral, primed, continue or resume.
    Sample(sample::Args),
    /// Run the lower levels of a finished run, for chosen samples.
    Upsample(upsample::Args),
    /// Encode audio to VQ-VAE codes.
    Encode(codec::EncodeArgs),
    /// Decode VQ-VAE codes of one level to audio.
    Decode(codec::DecodeArgs),
    /// Show a checkpoint's format, tensors, parameter count and model kind.
    Inspect(inspect::Args),
    /// Convert a checkpoint to `config.json` + `model.safetensors`.
    Convert(convert::Args),
    /// Check this crate against reference fixtures.
    Parity(parity::Args),
    /// List the artist and genre names a model accepts.
    Labels(labels::Args),
    /// Teacher-forced logits and bits per token of codes under given labels.
    Logits(logits::Args),
    /// Rank every genre (and artist) by how well it explains a prompt.
    RankLabels(rank_labels::Args),
    /// Train a VQ-VAE or a prior on a corpus.
    Train(train::Args),
    /// Validate a training corpus and write its label vocabulary.
    Dataset(dataset::Args),
    /// Measure throughput on this machine.
    Bench(bench::Args),
    /// Measure a model on held-out audio against trivial baselines; write QUALITY.md.
    Quality(quality::Args),
    /// Print a shell completion script (e.g. `jukebox completions bash > /etc/bash_completion.d/jukebox`).
    Completions(docs::CompletionsArgs),
    /// Write man pages for every command.
    Man(docs::ManArgs),
    /// Print every flag of every command as the Markdown table of docs/CLI.md.
    #[command(hide = true)]
    Flags,
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Study(a) => study::run(a),
        Command::Sample(a) => sample::run(a),
        Command::Upsample(a) => upsample::run(a),
        Command::Encode(a) => codec::run_encode(a),
        Command::Decode(a) => codec::run_decode(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Parity(a) => parity::run(a),
        Command::Labels(a) => labels::run(a),
        Command::Logits(a) => logits::run(a),
        Command::RankLabels(a) => rank_labels::run(a),
        Command::Train(a) => train::run(a),
        Command::Dataset(a) => dataset::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Quality(a) => quality::run(a),
        Command::Completions(a) => docs::completions(a),
        Command::Man(a) => docs::man(a),
        Command::Flags => {
            print!("{}", docs::flag_table());
            Ok(())
        }
    }
}

/// `--device`: `cpu`, `cuda` (device 0) or `cuda:N`; CUDA needs a build with `--features cuda`.
pub fn device(name: &str) -> Result<candle_core::Device> {
    use anyhow::{bail, Context};
    let ordinal = match name {
        "cpu" => return Ok(candle_core::Device::Cpu),
        "cuda" => 0,
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => bail!("unknown device `{other}`: use cpu, cuda or cuda:N (e.g. cuda:1)"),
        },
    };
    if cfg!(feature = "cuda") {
        candle_core::Device::new_cuda(ordinal)
            .with_context(|| format!("cannot open CUDA device {ordinal}"))
    } else {
        bail!("this build has no CUDA support; rebuild with `--features cuda` or use --device cpu")
    }
}
