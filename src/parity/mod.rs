//! `jukebox parity DIR`: check this crate against reference fixtures.
//!
//! A folder is recognised by what it holds (`tests/fixtures/reference/README.md`):
//! - `manifest.json` with `configs.vqvae`: the HF-port fixtures (VQ-VAE, priors, end to end);
//! - `manifest.json` with `lyrics_cases`: the official lyrics/dense prior fixtures;
//! - `timing_bins.json`: official timing-label bins;
//! - `index.json` naming `.pth.tar` files: checkpoint containers written by torch;
//! - `index.json` naming `vqvae`: official key/shape tables.
//!
//! Each check prints one line with its max abs error and tolerance. A check whose component is
//! not built yet is a skip; with `strict`, a skip is a failure.

pub mod checkpoints;
pub mod e2e;
pub mod hf_prior;
pub mod hf_vqvae;
pub mod keys;
pub mod lyrics;
pub mod lyrics_models;
pub mod timing;

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Pass,
    Fail,
    Skip(String),
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub status: Status,
    /// Max abs error, or number of mismatches for exact checks.
    pub error: f64,
    pub tolerance: f64,
    pub detail: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
    /// Print each check as it is recorded.
    pub verbose: bool,
}

impl Report {
    pub fn new(verbose: bool) -> Self {
        Self {
            checks: vec![],
            verbose,
        }
    }

    fn push(&mut self, c: Check) {
        if self.verbose {
            println!("{}", format_check(&c));
        }
        self.checks.push(c);
    }

    /// Record a float comparison: passes when `error <= tolerance` (and is finite).
    pub fn value(&mut self, name: impl Into<String>, error: f64, tolerance: f64) {
        let status = if error.is_finite() && error <= tolerance {
            Status::Pass
        } else {
            Status::Fail
        };
        self.push(Check {
            name: name.into(),
            status,
            error,
            tolerance,
            detail: String::new(),
        });
    }

    /// Compare two tensors (any dtype, converted to f64) by max abs error.
    pub fn close(&mut self, name: impl Into<String>, got: &Tensor, want: &Tensor, tolerance: f64) {
        let name = name.into();
        match max_abs_diff(got, want) {
            Ok(e) => self.value(name, e, tolerance),
            Err(e) => self.fail(name, format!("{e:#}")),
        }
    }

    /// Record an exact comparison: `mismatches` must be at most `allowed`.
    pub fn exact(
        &mut self,
        name: impl Into<String>,
        mismatches: usize,
        allowed: usize,
        detail: impl Into<String>,
    ) {
        let status = if mismatches <= allowed {
            Status::Pass
        } else {
            Status::Fail
        };
        self.push(Check {
            name: name.into(),
            status,
            error: mismatches as f64,
            tolerance: allowed as f64,
            detail: detail.into(),
        });
    }

    pub fn fail(&mut self, name: impl Into<String>, detail: impl Into<String>) {
        self.push(Check {
            name: name.into(),
            status: Status::Fail,
            error: f64::NAN,
            tolerance: 0.0,
            detail: detail.into(),
        });
    }

    pub fn skip(&mut self, name: impl Into<String>, reason: impl Into<String>) {
        self.push(Check {
            name: name.into(),
            status: Status::Skip(reason.into()),
            error: f64::NAN,
            tolerance: 0.0,
            detail: String::new(),
        });
    }

    /// Run a check body; an error inside it becomes a failed check rather than aborting the run.
    pub fn guard(&mut self, name: &str, f: impl FnOnce(&mut Report) -> Result<()>) {
        if let Err(e) = f(self) {
            self.fail(name, format!("{e:#}"));
        }
    }

    pub fn n_failed(&self, strict: bool) -> usize {
        self.checks
            .iter()
            .filter(|c| match &c.status {
                Status::Fail => true,
                Status::Skip(_) => strict,
                Status::Pass => false,
            })
            .count()
    }

    pub fn summary(&self) -> String {
        let (mut p, mut f, mut s) = (0, 0, 0);
        for c in &self.checks {
            match c.status {
                Status::Pass => p += 1,
                Status::Fail => f += 1,
                Status::Skip(_) => s += 1,
            }
        }
        format!("{p} passed, {f} failed, {s} skipped")
    }
}

pub fn format_check(c: &Check) -> String {
    match &c.status {
        Status::Skip(r) => format!("SKIP  {:<48} {r}", c.name),
        st => {
            let tag = if *st == Status::Pass { "ok  " } else { "FAIL" };
            let mut line = format!(
                "{tag}  {:<48} err {:<10.3e} tol {:.1e}",
                c.name, c.error, c.tolerance
            );
            if !c.detail.is_empty() {
                line.push_str("  ");
                line.push_str(&c.detail);
            }
            line
        }
    }
}

/// Max abs difference of two tensors of the same shape, computed in f64.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    if a.dims() != b.dims() {
        bail!("shape mismatch: got {:?}, want {:?}", a.dims(), b.dims());
    }
    let a = a
        .to_dtype(candle_core::DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?;
    let b = b
        .to_dtype(candle_core::DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?;
    let mut m = 0f64;
    for (x, y) in a.iter().zip(&b) {
        let d = (x - y).abs();
        if d.is_nan() {
            return Ok(f64::NAN);
        }
        m = m.max(d);
    }
    Ok(m)
}

/// The kinds of reference folder `jukebox parity` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderKind {
    HfFixtures,
    LyricsFixtures,
    Timing,
    Checkpoints,
    OfficialKeys,
}

pub fn detect(dir: &Path) -> Result<FolderKind> {
    let read_json = |name: &str| -> Result<Option<serde_json::Value>> {
        let p = dir.join(name);
        if !p.exists() {
            return Ok(None);
        }
        let t =
            std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
        Ok(Some(serde_json::from_str(&t).with_context(|| {
            format!("{} is not valid JSON", p.display())
        })?))
    };
    if let Some(m) = read_json("manifest.json")? {
        if m.get("lyrics_cases").is_some() {
            return Ok(FolderKind::LyricsFixtures);
        }
        if m.get("configs").and_then(|c| c.get("vqvae")).is_some() {
            return Ok(FolderKind::HfFixtures);
        }
        bail!(
            "{}: manifest.json is not a known fixture manifest",
            dir.display()
        );
    }
    if dir.join("timing_bins.json").exists() {
        return Ok(FolderKind::Timing);
    }
    if let Some(ix) = read_json("index.json")? {
        if ix.get("vqvae").is_some() {
            return Ok(FolderKind::OfficialKeys);
        }
        if ix.as_object().is_some_and(|o| {
            o.keys()
                .any(|k| k.ends_with(".pth.tar") || k.ends_with(".pth"))
        }) {
            return Ok(FolderKind::Checkpoints);
        }
    }
    bail!(
        "{} is not a parity folder: expected manifest.json, timing_bins.json or index.json",
        dir.display()
    )
}

/// Run every check for one folder.
pub fn run(dir: &Path, report: &mut Report) -> Result<FolderKind> {
    let kind = detect(dir)?;
    match kind {
        FolderKind::HfFixtures => {
            hf_vqvae::run(dir, report)?;
            hf_prior::run(dir, report)?;
            e2e::run(dir, report)?;
        }
        FolderKind::LyricsFixtures => {
            lyrics::run(dir, report)?;
            lyrics_models::run(dir, report)?;
        }
        FolderKind::Timing => timing::run(dir, report)?,
        FolderKind::Checkpoints => checkpoints::run(dir, report)?,
        FolderKind::OfficialKeys => keys::run(dir, report)?,
    }
    Ok(kind)
}
