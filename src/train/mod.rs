//! Training: losses, the EMA codebook, the optimiser, and the training loops behind
//! `jukebox train vqvae|prior|assemble`.
//!
//! # Train on your own folder
//! ```text
//! jukebox dataset check CORPUS                      # validate, write CORPUS/labels/
//! jukebox train vqvae --corpus CORPUS --preset small --out runs/vqvae
//! jukebox train prior --level top    --vqvae runs/vqvae --corpus CORPUS --preset small --out runs/top
//! jukebox train prior --level middle --vqvae runs/vqvae --corpus CORPUS --preset small --out runs/middle
//! jukebox train prior --level bottom --vqvae runs/vqvae --corpus CORPUS --preset small --out runs/bottom
//! jukebox train assemble --vqvae runs/vqvae --bottom runs/bottom --middle runs/middle \
//!     --top runs/top --out models/mine --f16
//! ```
//! Ctrl-C finishes the current step, writes a checkpoint and prints the command that resumes;
//! `--resume` (or `--resume DIR`) continues bit for bit on the same CPU (windows, label dropout
//! and codebook restarts are counter-based draws of (seed, step), see [`rng`]). `--steps N`
//! with `--resume` trains further. `--init DIR` fine-tunes from a training output or any model
//! directory (official ones included); label tables grow to the corpus vocabulary.
//! `--print-config` prints a preset as TOML to start a config file from (`--config FILE`).
//!
//! # Output folder
//! `train.toml` (the run's config), `train_log.csv` and `metrics.jsonl` (train rows every
//! `log_every` steps, validation rows every `valid_every`), `checkpoints/step_N/`
//! (weights, Adam moments, EMA buffers, `state.json`; the newest `keep_checkpoints`), `latest`,
//! and at the end `model/` (`component.json` + `model.safetensors` with official keys, plus
//! `labels/` for priors). Prior runs cache the encoded corpus in
//! `CORPUS/.cache/codes-<vqvae hash>.safetensors`.
//!
//! # Presets (sizes measured)
//! - VQ-VAE `small`: width 32, depth 4, 64-dim codes, 512 codes per level, 0.82 M weights;
//!   batch 4 × 16384 samples.
//! - Priors `small`: top 256 wide × 8 deep, 2 heads, n_ctx 512 (2.0 M weights, artist, genre and
//!   timing labels); upsamplers 192 × 6, n_ctx 512, conditioner 192 × 4 (2.6 M weights each).
//!   All four components together: about 8 M weights, 16 MiB in f16.
//! - `tiny`: test sizes that train in seconds.
//!
//! Step times: `jukebox bench --train vqvae|prior --config FILE` times real optimiser steps of
//! any config on this machine (bench/RESULTS.md "Training throughput" has the measured figures
//! and the PyTorch comparison). On the CPU the layers train through custom ops with hand-written
//! backward passes (`ops::conv_train`, `ops::resblock_train`, `ops::fused_train`,
//! `ops::attn_train`); `ops::set_train_fast(false)` selects the graph-op reference path.
//!
//! # Labels
//! Id 0 is "unknown" in both vocabularies; `label_dropout` (default 0.15) of training windows
//! get artist 0 and genres [0, -1, ...] so that a no-label control means something;
//! `label_dropout_single` (default 0) drops only the artist or only the genres in a further share,
//! so that a genre with an unknown artist (what `rank-labels` scores) is trained too.
//! `label_contrast` (default 0: off) and `label_margin` (0.25 bits/token) score each window whose
//! artist alone was dropped a second time under a wrong genre and ask that genre to cost the
//! margin more (`labels`; logged as `label_gap`, held out as `valid_label_gap`). Not in the
//! official code: it makes a label carry information past a window's first tokens.
//!
//! # Shift-consistent codes (VQ-VAE, not in the official code)
//! `[loss] shift_consistency` (default 0: off) adds a term that pulls each level's latents of the
//! batch started `s` samples later (1 ≤ s ≤ `shift_max`, default half the top hop, drawn per step
//! from the seed) towards the detached latents of the tokens they overlap most. Validation logs
//! `shift_share_l{l}`, the share of codes unchanged by a shift of an eighth of the level's hop
//! (window edges included). Why: `jukebox quality`, "Code stability under small shifts".

pub mod assemble;
pub mod ckpt;
pub mod component;
pub mod config;
pub mod data;
pub mod driver;
pub mod ema;
pub mod init;
pub mod labels;
pub mod log;
pub mod loss;
pub mod optim;
pub mod prior;
pub mod rng;
pub mod run_prior;
pub mod run_vqvae;
pub mod stats;
pub mod vqvae;
