//! Parity checks on the lyrics/dense prior models of `fixtures-lyrics/` (not written yet).

use super::Report;
use anyhow::Result;
use std::path::Path;

pub fn run(_dir: &Path, report: &mut Report) -> Result<()> {
    report.skip("lyrics_models", "lyrics prior models not implemented yet");
    Ok(())
}
