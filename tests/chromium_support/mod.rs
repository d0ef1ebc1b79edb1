//! Finding Debian's Chromium for the browser tests: skip with a printed reason when it is
//! missing, fail under `CI=true` (CI installs it).

use std::path::Path;

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The Chromium binary, or None (after saying so) when `test` must be skipped.
pub fn chromium_or_skip(test: &str) -> Option<&'static str> {
    if Path::new(CHROMIUM).exists() {
        return Some(CHROMIUM);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{CHROMIUM} is missing and CI=true: install it with `apt-get install -y chromium`");
    }
    eprintln!("SKIP {test}: {CHROMIUM} is missing (apt-get install -y chromium)");
    None
}
