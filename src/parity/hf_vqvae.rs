//! Parity checks: hf_vqvae (not written yet).

use super::Report;
use anyhow::Result;
use std::path::Path;

pub fn run(_dir: &Path, report: &mut Report) -> Result<()> {
    report.skip("hf_vqvae", "component not implemented yet");
    Ok(())
}
