//! Drum patterns on a step grid, and their readable text format (`*.drum`).
//!
//! ```text
//! # comment
//! name: amen
//! title: Amen-style break
//! genre: breakbeat
//! bpm: 137                 # the pattern's home tempo
//! tempos: 125 137 165      # tempos used when rendering a corpus
//! beats: 4                 # beats per bar (default 4)
//! steps: 16                # steps per bar (default 16, i.e. 16th notes)
//! swing: 0                 # delay of the off 16ths, as a fraction of a step
//! #      1 e + a 2 e + a 3 e + a 4 e + a
//! ride  | 6.6. 6.6. 6.6. 6.6. | ... |
//! ```
//!
//! A grid row is a role name, then one `|`-delimited cell per bar. Inside a cell, spaces are
//! ignored, `.` (or `-`) is a rest and a digit `1`–`9` is a hit with velocity digit/9
//! (Hydrogen's 0–1 velocity scale; `9` = full, `6` ≈ MIDI 85, `3` ≈ MIDI 42).

use anyhow::{bail, Context, Result};
use std::fmt::Write as _;

/// A drum voice, independent of any kit. The General MIDI note is the documented equivalent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Kick,
    Snare,
    SideStick,
    Clap,
    ClosedHat,
    PedalHat,
    OpenHat,
    Ride,
    RideBell,
    Crash,
    TomHigh,
    TomMid,
    TomLow,
}

impl Role {
    pub const ALL: [Role; 13] = [
        Role::Kick,
        Role::Snare,
        Role::SideStick,
        Role::Clap,
        Role::ClosedHat,
        Role::PedalHat,
        Role::OpenHat,
        Role::Ride,
        Role::RideBell,
        Role::Crash,
        Role::TomHigh,
        Role::TomMid,
        Role::TomLow,
    ];

    /// The name used in `.drum` files.
    pub fn name(self) -> &'static str {
        match self {
            Role::Kick => "kick",
            Role::Snare => "snare",
            Role::SideStick => "stick",
            Role::Clap => "clap",
            Role::ClosedHat => "hat",
            Role::PedalHat => "pedal",
            Role::OpenHat => "open",
            Role::Ride => "ride",
            Role::RideBell => "bell",
            Role::Crash => "crash",
            Role::TomHigh => "tom1",
            Role::TomMid => "tom2",
            Role::TomLow => "floor",
        }
    }

    /// General MIDI percussion note (channel 10).
    pub fn gm_note(self) -> u8 {
        match self {
            Role::Kick => 36,
            Role::Snare => 38,
            Role::SideStick => 37,
            Role::Clap => 39,
            Role::ClosedHat => 42,
            Role::PedalHat => 44,
            Role::OpenHat => 46,
            Role::Ride => 51,
            Role::RideBell => 53,
            Role::Crash => 49,
            Role::TomHigh => 50,
            Role::TomMid => 47,
            Role::TomLow => 43,
        }
    }

    pub fn from_name(s: &str) -> Option<Role> {
        let s = s.trim().to_ascii_lowercase();
        Role::ALL.into_iter().find(|r| r.name() == s)
    }
}

/// One hit. `step` counts from the start of the pattern (bar × steps_per_bar + step in bar).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    pub step: usize,
    pub role: Role,
    /// 0–1, Hydrogen's scale; picks the sample layer and scales the gain.
    pub velocity: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pattern {
    pub name: String,
    pub title: String,
    pub genre: String,
    /// The home tempo (BPM).
    pub bpm: f64,
    /// Tempos to render for a corpus; defaults to `[bpm]`.
    pub tempos: Vec<f64>,
    pub beats_per_bar: usize,
    pub steps_per_bar: usize,
    pub bars: usize,
    /// Delay of odd steps within a beat, as a fraction of a step (0 = straight).
    pub swing: f64,
    /// Sorted by step, then role.
    pub hits: Vec<Hit>,
}

impl Pattern {
    pub fn steps_per_beat(&self) -> usize {
        self.steps_per_bar / self.beats_per_bar
    }

    /// Samples in `bars` bars: round(bars · beats · 60 / bpm · sr). Rounded once for the whole
    /// span, so a loop cut on the bar line is never off by more than half a sample.
    pub fn length_samples(&self, bpm: f64, sample_rate: u32, bars: usize) -> usize {
        (bars as f64 * self.beats_per_bar as f64 * 60.0 * sample_rate as f64 / bpm).round() as usize
    }

    /// Sample index of a global step (any bar), with swing: round((step + swing) · 60·sr / (bpm · steps_per_beat)).
    pub fn onset_sample(&self, step: usize, bpm: f64, sample_rate: u32) -> usize {
        let spb = self.steps_per_beat();
        let swung = if self.swing != 0.0 && spb.is_multiple_of(2) && step % 2 == 1 {
            self.swing
        } else {
            0.0
        };
        ((step as f64 + swung) * 60.0 * sample_rate as f64 / (bpm * spb as f64)).round() as usize
    }

    /// Parse the text format; `origin` names the file in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Pattern> {
        parse(text, origin)
    }

    /// The grid as text in the same format (header + rows), for docs and round trips.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "name: {}", self.name);
        let _ = writeln!(s, "title: {}", self.title);
        let _ = writeln!(s, "genre: {}", self.genre);
        let _ = writeln!(s, "bpm: {}", self.bpm);
        let tempos: Vec<String> = self.tempos.iter().map(|t| t.to_string()).collect();
        let _ = writeln!(s, "tempos: {}", tempos.join(" "));
        let _ = writeln!(s, "beats: {}", self.beats_per_bar);
        let _ = writeln!(s, "steps: {}", self.steps_per_bar);
        let _ = writeln!(s, "swing: {}", self.swing);
        s.push_str(&self.grid());
        s
    }

    /// Just the grid rows, one per role used, in `Role::ALL` order.
    pub fn grid(&self) -> String {
        let mut s = String::new();
        let spb = self.steps_per_beat().max(1);
        for role in Role::ALL {
            if !self.hits.iter().any(|h| h.role == role) {
                continue;
            }
            let _ = write!(s, "{:<6}|", role.name());
            for bar in 0..self.bars {
                s.push(' ');
                for i in 0..self.steps_per_bar {
                    let step = bar * self.steps_per_bar + i;
                    let c = match self.hits.iter().find(|h| h.role == role && h.step == step) {
                        Some(h) => {
                            char::from(b'0' + (h.velocity * 9.0).round().clamp(1.0, 9.0) as u8)
                        }
                        None => '.',
                    };
                    s.push(c);
                    if (i + 1) % spb == 0 && i + 1 < self.steps_per_bar {
                        s.push(' ');
                    }
                }
                s.push_str(" |");
            }
            s.push('\n');
        }
        s
    }

    /// Steps (1-based within the bar, as musicians count a 16th grid) where `role` plays in `bar`.
    pub fn steps_in_bar(&self, role: Role, bar: usize) -> Vec<usize> {
        let lo = bar * self.steps_per_bar;
        let hi = lo + self.steps_per_bar;
        self.hits
            .iter()
            .filter(|h| h.role == role && h.step >= lo && h.step < hi)
            .map(|h| h.step - lo + 1)
            .collect()
    }
}

fn parse(text: &str, origin: &str) -> Result<Pattern> {
    let mut name = None;
    let mut title = None;
    let mut genre = None;
    let mut bpm = None;
    let mut tempos: Option<Vec<f64>> = None;
    let mut beats = 4usize;
    let mut steps = 16usize;
    let mut swing = 0.0f64;
    // (line number, role, cells)
    let mut rows: Vec<(usize, Role, Vec<String>)> = Vec::new();

    for (i, raw) in text.lines().enumerate() {
        let ln = i + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("{origin} line {ln}");
        if line.contains('|') {
            let mut parts = line.split('|');
            let role_name = parts.next().unwrap_or("").trim();
            let role = Role::from_name(role_name).with_context(|| {
                let names: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
                format!(
                    "{}: unknown drum role `{role_name}` (known: {})",
                    at(),
                    names.join(", ")
                )
            })?;
            let cells: Vec<String> = parts
                .map(|c| c.chars().filter(|c| !c.is_whitespace()).collect())
                .collect();
            // A row ends with `|`, so the last split piece is empty.
            let cells = match cells.split_last() {
                Some((last, rest)) if last.is_empty() => rest.to_vec(),
                _ => bail!("{}: a grid row must end with `|`", at()),
            };
            if cells.is_empty() {
                bail!("{}: row `{role_name}` has no bars", at());
            }
            rows.push((ln, role, cells));
            continue;
        }
        let (key, value) = line.split_once(':').with_context(|| {
            format!(
                "{}: expected `key: value` or a grid row `role | ... |`, got `{line}`",
                at()
            )
        })?;
        let value = value.trim();
        let num = |v: &str| -> Result<f64> {
            v.parse::<f64>()
                .map_err(|_| anyhow::anyhow!("{}: `{key}` must be a number, got `{v}`", at()))
        };
        match key.trim() {
            "name" => name = Some(value.to_string()),
            "title" => title = Some(value.to_string()),
            "genre" => genre = Some(value.to_string()),
            "bpm" => bpm = Some(num(value)?),
            "tempos" => tempos = Some(value.split_whitespace().map(num).collect::<Result<Vec<_>>>()?),
            "beats" => beats = num(value)? as usize,
            "steps" => steps = num(value)? as usize,
            "swing" => swing = num(value)?,
            other => bail!("{}: unknown key `{other}` (known: name, title, genre, bpm, tempos, beats, steps, swing)", at()),
        }
    }

    let name = name.with_context(|| format!("{origin}: missing `name:`"))?;
    let bpm = bpm.with_context(|| format!("{origin}: missing `bpm:`"))?;
    let tempos = tempos.unwrap_or_else(|| vec![bpm]);
    for &t in std::iter::once(&bpm).chain(tempos.iter()) {
        if !(20.0..=400.0).contains(&t) {
            bail!("{origin}: tempo {t} BPM is outside 20–400");
        }
    }
    if beats == 0 || steps == 0 || !steps.is_multiple_of(beats) {
        bail!("{origin}: `steps: {steps}` must be a positive multiple of `beats: {beats}`");
    }
    if !(0.0..1.0).contains(&swing) {
        bail!("{origin}: `swing: {swing}` must be in [0, 1)");
    }
    let (first_ln, _, first_cells) = rows
        .first()
        .with_context(|| format!("{origin}: no grid rows"))?;
    let bars = first_cells.len();
    let mut hits = Vec::new();
    for (ln, role, cells) in &rows {
        if cells.len() != bars {
            bail!(
                "{origin} line {ln}: row `{}` has {} bars but line {first_ln} has {bars}",
                role.name(),
                cells.len()
            );
        }
        for (b, cell) in cells.iter().enumerate() {
            let n = cell.chars().count();
            if n != steps {
                bail!(
                    "{origin} line {ln}: bar {} of `{}` has {n} steps, expected {steps}",
                    b + 1,
                    role.name()
                );
            }
            for (s, c) in cell.chars().enumerate() {
                let velocity = match c {
                    '.' | '-' => continue,
                    '1'..='9' => (c as u8 - b'0') as f32 / 9.0,
                    _ => bail!(
                        "{origin} line {ln}: bar {} step {} of `{}`: `{c}` is not `.` or a velocity digit 1-9",
                        b + 1,
                        s + 1,
                        role.name()
                    ),
                };
                let step = b * steps + s;
                if hits.iter().any(|h: &Hit| h.step == step && h.role == *role) {
                    bail!(
                        "{origin} line {ln}: `{}` is given twice at bar {} step {}",
                        role.name(),
                        b + 1,
                        s + 1
                    );
                }
                hits.push(Hit {
                    step,
                    role: *role,
                    velocity,
                });
            }
        }
    }
    hits.sort_by(|a, b| a.step.cmp(&b.step).then(a.role.cmp(&b.role)));
    Ok(Pattern {
        title: title.unwrap_or_else(|| name.clone()),
        genre: genre.unwrap_or_else(|| "breakbeat".to_string()),
        name,
        bpm,
        tempos,
        beats_per_bar: beats,
        steps_per_bar: steps,
        bars,
        swing,
        hits,
    })
}

/// The patterns shipped in `data/prompts/patterns/`, compiled in so that rendering works from any
/// directory.
pub const BUILTIN_SOURCES: [(&str, &str); 7] = [
    (
        "amen.drum",
        include_str!("../../data/prompts/patterns/amen.drum"),
    ),
    (
        "funky-drummer.drum",
        include_str!("../../data/prompts/patterns/funky-drummer.drum"),
    ),
    (
        "think.drum",
        include_str!("../../data/prompts/patterns/think.drum"),
    ),
    (
        "rock.drum",
        include_str!("../../data/prompts/patterns/rock.drum"),
    ),
    (
        "four-on-the-floor.drum",
        include_str!("../../data/prompts/patterns/four-on-the-floor.drum"),
    ),
    (
        "half-time.drum",
        include_str!("../../data/prompts/patterns/half-time.drum"),
    ),
    (
        "boom-bap.drum",
        include_str!("../../data/prompts/patterns/boom-bap.drum"),
    ),
];

/// All built-in patterns, parsed.
pub fn builtin_patterns() -> Result<Vec<Pattern>> {
    BUILTIN_SOURCES
        .iter()
        .map(|(f, t)| Pattern::parse(t, f))
        .collect()
}

/// A built-in pattern by name, with a suggestion when the name is unknown.
pub fn builtin(name: &str) -> Result<Pattern> {
    let all = builtin_patterns()?;
    if let Some(p) = all.iter().find(|p| p.name == name) {
        return Ok(p.clone());
    }
    let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
    let near = crate::util::nearest(name, names.iter().copied(), 2);
    bail!(
        "unknown pattern `{name}` (did you mean {}?; known: {})",
        near.join(" or "),
        names.join(", ")
    )
}
