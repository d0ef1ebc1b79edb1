//! Generated: see `data/labels/SOURCE.md`. Do not edit by hand.
pub(super) const DROP: &[(u32, u32)] = &[];
pub(super) const OVERRIDE: &[(u32, &str)] = &[];
