//! Parity checks: keys (not written yet).

use super::Report;
use anyhow::Result;
use std::path::Path;

pub fn run(_dir: &Path, report: &mut Report) -> Result<()> {
    report.skip("keys", "component not implemented yet");
    Ok(())
}
