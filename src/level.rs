//! Levels, in the official numbering everywhere: 0 = bottom (hop 8), 1 = middle (hop 32),
//! 2 = top (hop 128). Every command parses `--level`/`--levels` and prints level names through
//! [`Level`], so `top`, `2` and `Top` mean the same thing in every command.

use anyhow::{bail, Result};
use std::fmt;
use std::str::FromStr;

/// The level names, bottom first.
pub const NAMES: [&str; 3] = ["bottom", "middle", "top"];

/// A level number (official numbering). Parsed from `bottom`/`middle`/`top` (any case) or a
/// number; [`Level::within`] checks it against a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Level(pub usize);

impl Level {
    pub const BOTTOM: Level = Level(0);
    pub const MIDDLE: Level = Level(1);
    pub const TOP: Level = Level(2);

    /// `bottom`, `middle` or `top`; None beyond the three official levels.
    pub fn name(self) -> Option<&'static str> {
        NAMES.get(self.0).copied()
    }

    /// The level number, or an error when a model with `n_levels` levels lacks it.
    pub fn within(self, n_levels: usize) -> Result<usize> {
        if self.0 >= n_levels {
            bail!(
                "level {} does not exist: this model has {n_levels} levels (0..={})",
                self.0,
                n_levels.saturating_sub(1)
            );
        }
        Ok(self.0)
    }
}

impl FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        if let Some(i) = NAMES.iter().position(|n| *n == t) {
            return Ok(Level(i));
        }
        t.parse::<usize>().map(Level).map_err(|_| {
            format!(
                "unknown level `{}`: use bottom, middle, top or 0, 1, 2",
                s.trim()
            )
        })
    }
}

impl fmt::Display for Level {
    /// `top`, `middle`, `bottom`, or `level N` beyond them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "level {}", self.0),
        }
    }
}

/// A clap value parser for one level flag, giving the level number.
pub fn parse_level(s: &str) -> Result<usize, String> {
    s.parse::<Level>().map(|l| l.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_mean_the_same() {
        for (s, l) in [("top", 2), ("2", 2), (" Top ", 2), ("middle", 1), ("1", 1)] {
            assert_eq!(s.parse::<Level>().unwrap(), Level(l), "{s}");
        }
        assert_eq!("BOTTOM".parse::<Level>().unwrap(), Level::BOTTOM);
        let e = "sideways".parse::<Level>().unwrap_err();
        assert!(e.contains("unknown level `sideways`"), "{e}");
        assert_eq!(Level(2).to_string(), "top");
        assert_eq!(Level(0).to_string(), "bottom");
        assert_eq!(Level(4).to_string(), "level 4");
        assert_eq!(Level(2).within(3).unwrap(), 2);
        let e = Level(7).within(3).unwrap_err().to_string();
        assert!(e.contains("level 7 does not exist"), "{e}");
    }
}
