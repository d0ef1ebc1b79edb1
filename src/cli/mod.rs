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
pub mod serve;
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
    #[command(
        after_help = "Examples:\n  jukebox study                                    # the default study → studies/default/index.html\n  jukebox study --genre breakbeat,rock --artist unknown --seeds 4 -o studies/rock\n  jukebox study --dry-run                          # the plan, its batch groups and an estimate\n  jukebox study --resume studies/default           # finish a study that was stopped"
    )]
    Study(study::Args),
    /// Generate music: ancestral, primed, continue or resume.
    #[command(
        after_help = "Examples:\n  jukebox sample --seconds 8 --n-samples 2 -o runs/a\n  jukebox sample --mode primed --prompt data/prompts/amen.wav --prompt-seconds 4 --seconds 8 --genre breakbeat -o runs/amen\n  jukebox sample --continue runs/amen --seconds 12 -o runs/amen-longer\n  jukebox sample --resume runs/amen                # finish a run that was stopped or killed"
    )]
    Sample(sample::Args),
    /// Run the lower levels of a finished run, for chosen samples.
    #[command(
        after_help = "Examples:\n  jukebox upsample runs/amen                       # every sample, every lower level\n  jukebox upsample runs/amen --samples 0,3 --levels middle"
    )]
    Upsample(upsample::Args),
    /// A local web app: generate takes, listen, pick, extend, upsample, run studies.
    #[command(
        after_help = "Examples:\n  jukebox serve                                    # then open http://127.0.0.1:8421/\n  jukebox serve --runs my-runs --models models --jobs 2\n  jukebox serve --bind 0.0.0.0:8421 --token generate   # reachable from other machines, with a token"
    )]
    Serve(serve::Args),
    /// Encode audio to VQ-VAE codes.
    #[command(
        after_help = "Examples:\n  jukebox encode data/prompts/amen.wav -o amen.codes.safetensors\n  jukebox encode song.wav --level top -o top.safetensors"
    )]
    Encode(codec::EncodeArgs),
    /// Decode VQ-VAE codes of one level to audio.
    #[command(
        after_help = "Examples:\n  jukebox decode amen.codes.safetensors --level bottom -o amen-l0.wav\n  jukebox decode runs/a/codes.safetensors --level top --sample 1 -o sketch.wav"
    )]
    Decode(codec::DecodeArgs),
    /// Show a checkpoint's format, tensors, parameter count and model kind.
    #[command(
        after_help = "Examples:\n  jukebox inspect models/default\n  jukebox inspect ~/.cache/jukebox/models/5b/vqvae.pth.tar --keys\n  jukebox inspect models/default --json"
    )]
    Inspect(inspect::Args),
    /// Convert a checkpoint to `config.json` + `model.safetensors`.
    #[command(
        after_help = "Examples:\n  jukebox convert ~/.cache/jukebox/models/5b_lyrics -o models/5b_lyrics\n  jukebox convert models/5b_lyrics --dtype f16 -o models/5b_lyrics-f16"
    )]
    Convert(convert::Args),
    /// Check this crate against reference fixtures.
    #[command(
        after_help = "Examples:\n  jukebox parity tests/fixtures/reference/fixtures\n  jukebox parity --strict tests/fixtures/reference/fixtures-lyrics"
    )]
    Parity(parity::Args),
    /// List the artist and genre names a model accepts.
    #[command(
        after_help = "Examples:\n  jukebox labels                                   # the bundled model's genres and artists\n  jukebox labels --set v2 --search jazz --genres\n  jukebox labels --model models/5b --artists --json"
    )]
    Labels(labels::Args),
    /// Teacher-forced logits and bits per token of codes under given labels.
    #[command(
        after_help = "Examples:\n  jukebox logits --codes amen.codes.safetensors --genre breakbeat\n  jukebox logits --codes amen.codes.safetensors --artist '#3' -o logits.safetensors"
    )]
    Logits(logits::Args),
    /// Rank every genre (and artist) by how well it explains a prompt.
    #[command(
        after_help = "Examples:\n  jukebox rank-labels --prompt data/prompts/amen.wav\n  jukebox rank-labels --prompt data/prompts/amen.wav --artists --top 20 -o ranking.csv\n  jukebox rank-labels --prompt data/prompts/amen.wav --json"
    )]
    RankLabels(rank_labels::Args),
    /// Train a VQ-VAE or a prior on a corpus.
    #[command(
        after_help = "Examples:\n  jukebox train vqvae --corpus work-local/corpus --preset tiny -o runs/vq\n  jukebox train prior --level top --vqvae runs/vq/model --corpus work-local/corpus --preset tiny -o runs/top\n  jukebox train vqvae --corpus work-local/corpus -o runs/vq --resume --steps 2000"
    )]
    Train(train::Args),
    /// Validate a training corpus and write its label vocabulary.
    #[command(
        after_help = "Examples:\n  jukebox dataset check work-local/corpus\n  jukebox dataset render --pattern amen --bpm 137 --bars 4 -o amen.wav\n  jukebox dataset patterns --grid"
    )]
    Dataset(dataset::Args),
    /// Measure throughput on this machine.
    Bench(bench::Args),
    /// Measure a model on held-out audio against trivial baselines; write QUALITY.md.
    #[command(
        after_help = "Examples:\n  jukebox quality --corpus work-local/corpus -o QUALITY.md\n  jukebox quality --labels-only\n  jukebox quality --corpus work-local/corpus --loops work-local/corpus-heldout-loops --no-tempo"
    )]
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
        Command::Serve(a) => serve::run(a),
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

/// `--dtype`: the priors' dense weight storage.
pub fn weight_format(name: &str) -> Result<jukebox::prior::WeightFormat> {
    jukebox::prior::WeightFormat::parse(name).map_err(|e| anyhow::anyhow!("--dtype: {e}"))
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
