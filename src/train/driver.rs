//! The shared training loop: steps, periodic validation, logs, atomic checkpoints, and a clean
//! stop on Ctrl-C (finish the step, save, say how to resume).

use super::ckpt::{self, Checkpoint};
use super::log::{progress, Logger, Row};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The process-wide stop flag, set by Ctrl-C. The handler is installed on first use; if another
/// handler is already installed, the flag still works but only through [`request_stop`].
pub fn stop_flag() -> Arc<AtomicBool> {
    STOP.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        if let Err(e) = ctrlc::set_handler(move || {
            if f.swap(true, Ordering::SeqCst) {
                eprintln!("\nsecond Ctrl-C: exiting without saving");
                std::process::exit(130);
            }
            eprintln!(
                "\nCtrl-C: finishing this step and saving a checkpoint (press again to quit now)"
            );
        }) {
            eprintln!(
                "warning: cannot install the Ctrl-C handler ({e}); interrupting will not save"
            );
        }
        flag
    })
    .clone()
}

/// Ask the running loop to stop after its current step (what Ctrl-C does).
pub fn request_stop() {
    stop_flag().store(true, Ordering::SeqCst);
}

/// What a model kind plugs into the loop.
pub trait Job {
    /// One optimiser step at 0-based `step`; returns the values to log (must include `loss`).
    fn train_step(&mut self, step: u64) -> Result<BTreeMap<String, f64>>;
    /// Validation metrics after `step` steps.
    fn validate(&mut self, step: u64) -> Result<BTreeMap<String, f64>>;
    fn checkpoint(&self, step: u64) -> Result<Checkpoint>;
    /// Write the trained component to `OUT/model`.
    fn finish(&self, out: &Path, step: u64) -> Result<()>;
}

pub struct LoopOpts {
    pub out: PathBuf,
    pub total_steps: u64,
    pub valid_every: u64,
    pub ckpt_every: u64,
    pub log_every: u64,
    pub keep_checkpoints: usize,
    pub quiet: bool,
    /// The command line that resumes this run (printed on Ctrl-C).
    pub resume_hint: String,
    /// Stop as if interrupted once this many steps are done (tests).
    pub stop_after: Option<u64>,
}

/// How a loop ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub steps_done: u64,
    pub interrupted: bool,
    pub last_loss: Option<f64>,
    pub last_valid: BTreeMap<String, f64>,
    /// Mean wall time per step of this session, in seconds.
    pub step_seconds: f64,
    pub checkpoint: Option<PathBuf>,
}

/// Run `job` from `start` (steps already done) to `opts.total_steps`.
pub fn run(job: &mut dyn Job, opts: &LoopOpts, start: u64, logger: &mut Logger) -> Result<Outcome> {
    let stop = stop_flag();
    stop.store(false, Ordering::SeqCst);
    let pb = progress(opts.total_steps, start, opts.quiet);
    let mut out = Outcome {
        steps_done: start,
        interrupted: false,
        last_loss: None,
        last_valid: BTreeMap::new(),
        step_seconds: 0.0,
        checkpoint: None,
    };
    let session = Instant::now();
    let mut step = start;
    let mut ema_loss: Option<f64> = None;
    while step < opts.total_steps {
        let t0 = Instant::now();
        let mut vals = job.train_step(step)?;
        let dt = t0.elapsed().as_secs_f64();
        step += 1;
        let loss = vals.get("loss").copied().unwrap_or(f64::NAN);
        ema_loss = Some(match ema_loss {
            Some(e) if e.is_finite() => 0.9 * e + 0.1 * loss,
            _ => loss,
        });
        out.last_loss = Some(loss);
        vals.insert("step_s".into(), dt);
        if step.is_multiple_of(opts.log_every) || step == opts.total_steps {
            logger.push(Row {
                step,
                split: "train",
                values: vals,
            });
        }
        pb.set_position(step);
        pb.set_message(format!("loss {:.4}", ema_loss.unwrap_or(loss)));
        let interrupted = stop.load(Ordering::SeqCst) || opts.stop_after.is_some_and(|n| step >= n);
        let last = step == opts.total_steps;
        if step.is_multiple_of(opts.valid_every) || last {
            let v = job.validate(step)?;
            out.last_valid = v.clone();
            logger.push(Row {
                step,
                split: "valid",
                values: v,
            });
        }
        if step.is_multiple_of(opts.ckpt_every) || last || interrupted {
            logger.flush()?;
            out.checkpoint = Some(ckpt::save(
                &opts.out,
                &job.checkpoint(step)?,
                opts.keep_checkpoints,
            )?);
        } else if step.is_multiple_of(opts.log_every) {
            logger.flush()?;
        }
        if interrupted && !last {
            out.interrupted = true;
            pb.abandon_with_message(format!("stopped at step {step}"));
            eprintln!(
                "stopped after step {step} of {}; checkpoint saved in {}.\nresume with: {}",
                opts.total_steps,
                opts.out.display(),
                opts.resume_hint
            );
            break;
        }
    }
    out.steps_done = step;
    let n = step.saturating_sub(start).max(1);
    out.step_seconds = session.elapsed().as_secs_f64() / n as f64;
    if !out.interrupted {
        pb.finish_with_message(format!("done, loss {:.4}", ema_loss.unwrap_or(f64::NAN)));
        job.finish(&opts.out, step)?;
    }
    logger.flush()?;
    Ok(out)
}
