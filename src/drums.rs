//! Drum patterns rendered from real drum samples (Hydrogen kits): the Amen-style prompt and the
//! break/groove part of the training corpus.
//!
//! - [`pattern`]: roles, hits, the readable `.drum` grid format and the built-in patterns
//!   (`data/prompts/patterns/*.drum`, compiled in).
//! - [`kit`]: `drumkit.xml` parsing, role → instrument mapping, velocity layers.
//! - [`render`]: sample-exact placement, velocity as gain, exact bar-length cut.

pub mod kit;
pub mod pattern;
pub mod render;

pub use kit::{Kit, KitInfo};
pub use pattern::{builtin, builtin_patterns, Hit, Pattern, Role};
pub use render::{bars_for_seconds, render, Onset, RenderOptions, Rendered, MINUS_1_DBFS};

/// Where Debian's `hydrogen-drumkits` installs its kits.
pub const SYSTEM_KITS: &str = "/usr/share/hydrogen/data/drumkits";

/// The kit the shipped prompt uses (GPL-2+ with a composition exception).
pub const COLOMBO: &str = "/usr/share/hydrogen/data/drumkits/ColomboAcousticDrumkit";
