//! Hydrogen drum kits: `drumkit.xml` → instruments and velocity layers, and which instrument
//! plays each [`Role`].
//!
//! Hydrogen's sampler picks the layer whose velocity range holds the note's velocity and plays it
//! at gain velocity × layer gain × instrument gain × instrument volume; we do the same (mono, no
//! pan, no pitch).

use super::pattern::Role;
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq)]
pub struct LayerInfo {
    pub file: PathBuf,
    pub min: f32,
    pub max: f32,
    pub gain: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InstrumentInfo {
    pub name: String,
    pub volume: f32,
    pub gain: f32,
    pub layers: Vec<LayerInfo>,
}

/// A parsed `drumkit.xml`; no audio loaded.
#[derive(Clone, Debug, PartialEq)]
pub struct KitInfo {
    pub dir: PathBuf,
    pub name: String,
    pub author: String,
    pub license: String,
    pub instruments: Vec<InstrumentInfo>,
}

/// Known kits where the name-based guess is not the best voice (see `data/prompts/amen.md`).
const OVERRIDES: &[(&str, Role, &str)] = &[
    // "Snare1" uses rimshots from 0.66 up; "Snare Rock" gives normal shots for ghosts.
    ("ColomboAcousticDrumkit", Role::Snare, "Snare Rock"),
    // The 20" crash (the 16" one is a thin crash/ride).
    ("ColomboAcousticDrumkit", Role::Crash, "crash20inch--2"),
    ("ColomboAcousticDrumkit", Role::Ride, "ride-crash20inch"),
];

impl KitInfo {
    /// Parse `dir/drumkit.xml`.
    pub fn parse_dir(dir: &Path) -> Result<KitInfo> {
        let xml_path = dir.join("drumkit.xml");
        let xml = std::fs::read_to_string(&xml_path).with_context(|| {
            format!(
                "cannot read {} (is {} a Hydrogen kit folder?)",
                xml_path.display(),
                dir.display()
            )
        })?;
        Self::parse_xml(&xml, dir).with_context(|| format!("in {}", xml_path.display()))
    }

    pub fn parse_xml(xml: &str, dir: &Path) -> Result<KitInfo> {
        let doc = roxmltree::Document::parse(xml).context("drumkit.xml is not well-formed XML")?;
        let root = doc.root_element();
        let name = text(root, "name").context("no <name> for the kit")?;
        let author = text(root, "author").unwrap_or_default();
        let license = text(root, "license").unwrap_or_default();
        let mut instruments = Vec::new();
        for inst in root.descendants().filter(|n| is(n, "instrument")) {
            // The instrument's own fields are its children; layers may sit deeper (inside
            // `<instrumentComponent>` since format 0.9.7).
            let Some(iname) = text(inst, "name") else {
                continue;
            };
            let volume = num(inst, "volume")?.unwrap_or(1.0);
            let gain = num(inst, "gain")?.unwrap_or(1.0);
            let mut layers = Vec::new();
            for l in inst.descendants().filter(|n| is(n, "layer")) {
                let Some(f) = text(l, "filename") else {
                    continue;
                };
                layers.push(LayerInfo {
                    file: dir.join(f),
                    min: num(l, "min")?.unwrap_or(0.0),
                    max: num(l, "max")?.unwrap_or(1.0),
                    gain: num(l, "gain")?.unwrap_or(1.0),
                });
            }
            // Old kits (format 0.9.3 and before): one `<filename>` directly on the instrument.
            if layers.is_empty() {
                if let Some(f) = text(inst, "filename") {
                    layers.push(LayerInfo {
                        file: dir.join(f),
                        min: 0.0,
                        max: 1.0,
                        gain: 1.0,
                    });
                }
            }
            if !layers.is_empty() {
                instruments.push(InstrumentInfo {
                    name: iname,
                    volume,
                    gain,
                    layers,
                });
            }
        }
        if instruments.is_empty() {
            bail!("the kit has no instruments with samples");
        }
        Ok(KitInfo {
            dir: dir.to_path_buf(),
            name,
            author,
            license,
            instruments,
        })
    }

    /// Which instrument plays each role: a per-kit override, else the best name match, else a
    /// related role (pedal hat → closed hat, bell → ride, clap → snare, ...).
    pub fn role_map(&self) -> BTreeMap<Role, usize> {
        let mut direct = BTreeMap::new();
        for role in Role::ALL {
            let over = OVERRIDES
                .iter()
                .find(|(k, r, _)| *k == self.name && *r == role)
                .and_then(|(_, _, n)| self.instruments.iter().position(|i| i.name == *n));
            let best = over.or_else(|| {
                let mut best: Option<(i32, usize)> = None;
                for (i, inst) in self.instruments.iter().enumerate() {
                    if let Some(s) = role_score(role, &inst.name.to_lowercase()) {
                        if best.is_none_or(|(bs, _)| s > bs) {
                            best = Some((s, i));
                        }
                    }
                }
                best.map(|(_, i)| i)
            });
            if let Some(i) = best {
                direct.insert(role, i);
            }
        }
        let mut map = direct.clone();
        for role in Role::ALL {
            if map.contains_key(&role) {
                continue;
            }
            let fallbacks: &[Role] = match role {
                Role::PedalHat => &[Role::ClosedHat],
                Role::OpenHat => &[Role::ClosedHat],
                Role::ClosedHat => &[Role::PedalHat],
                Role::RideBell => &[Role::Ride],
                Role::Ride => &[Role::ClosedHat],
                Role::Crash => &[Role::Ride],
                Role::Clap => &[Role::Snare],
                Role::SideStick => &[Role::Snare],
                Role::TomHigh => &[Role::TomMid, Role::TomLow],
                Role::TomMid => &[Role::TomHigh, Role::TomLow],
                Role::TomLow => &[Role::TomMid, Role::TomHigh],
                Role::Kick | Role::Snare => &[],
            };
            if let Some(i) = fallbacks.iter().find_map(|r| direct.get(r)) {
                map.insert(role, *i);
            }
        }
        // A kit with neither (no crash and no ride): the stand-ins of the roles mapped so far.
        let first = map.clone();
        for role in Role::ALL {
            if let std::collections::btree_map::Entry::Vacant(e) = map.entry(role) {
                if let Some(i) = stand_ins(role).iter().find_map(|r| first.get(r)) {
                    e.insert(*i);
                }
            }
        }
        map
    }
}

/// Voices a drummer would use instead when a kit lacks one, nearest first (a kit without a crash
/// plays the ride, one without a pedal hi-hat the closed hi-hat).
pub fn stand_ins(role: Role) -> &'static [Role] {
    use Role::*;
    match role {
        Crash => &[Ride, OpenHat],
        Ride => &[ClosedHat, Crash],
        RideBell => &[Ride, ClosedHat],
        PedalHat => &[ClosedHat],
        OpenHat => &[ClosedHat],
        ClosedHat => &[PedalHat, Ride],
        SideStick => &[Snare],
        Clap => &[Snare],
        TomHigh => &[TomMid, TomLow],
        TomMid => &[TomHigh, TomLow],
        TomLow => &[TomMid, TomHigh],
        Kick | Snare => &[],
    }
}

/// How well an instrument name fits a role (higher is better; None = not this role).
fn role_score(role: Role, n: &str) -> Option<i32> {
    let has = |w: &str| n.contains(w);
    let hat = has("hat") || has("hh");
    let s = match role {
        Role::Kick if has("kick") || has("bassdrum") || has("bass drum") => 10,
        Role::Snare if has("snare") && !has("rim") && !has("roll") => {
            if has("jazz") || has("2") {
                5
            } else {
                10
            }
        }
        Role::SideStick if has("stick") => 10,
        Role::Clap if has("clap") => 10,
        Role::ClosedHat if hat && has("closed") => 10,
        Role::PedalHat if hat && has("pedal") => 10,
        Role::OpenHat if hat && has("open") && !has("semi") => 10,
        Role::Ride if has("ride") && !has("bell") && !has("cup") => {
            if has("flink") || has("crash") || has("2") || has("jazz") {
                5
            } else {
                10
            }
        }
        Role::RideBell if (has("bell") && !has("cowbell")) || has("cup") => 10,
        Role::Crash if has("crash") => {
            if has("ride") || has("flink") || has("jazz") {
                5
            } else {
                10
            }
        }
        Role::TomHigh if has("tom") && (has("hi") || has("1")) => 10,
        Role::TomMid if has("tom") && (has("mid") || has("2")) => 10,
        Role::TomLow if (has("tom") && (has("low") || has("floor"))) || has("floor") => 10,
        _ => return None,
    };
    Some(s)
}

/// One velocity layer with its decoded audio (44.1 kHz mono).
#[derive(Clone, Debug)]
pub struct Layer {
    pub samples: Arc<Vec<f32>>,
    pub min: f32,
    pub max: f32,
    pub gain: f32,
    pub file: PathBuf,
}

#[derive(Clone, Debug)]
pub struct Voice {
    pub instrument: String,
    /// Instrument volume × instrument gain.
    pub gain: f32,
    pub layers: Vec<Layer>,
}

impl Voice {
    /// The layer Hydrogen would play at `velocity`: the first whose [min, max] holds it, else the
    /// nearest range.
    pub fn layer_for(&self, velocity: f32) -> &Layer {
        if let Some(l) = self
            .layers
            .iter()
            .find(|l| velocity >= l.min && velocity <= l.max)
        {
            return l;
        }
        let dist = |l: &Layer| {
            if velocity < l.min {
                l.min - velocity
            } else {
                velocity - l.max
            }
        };
        let mut best = &self.layers[0];
        for l in &self.layers {
            if dist(l) < dist(best) {
                best = l;
            }
        }
        best
    }
}

/// A kit ready to render: a voice for every role it can play.
#[derive(Clone, Debug)]
pub struct Kit {
    pub info: KitInfo,
    pub voices: BTreeMap<Role, Voice>,
}

impl Kit {
    /// Parse the kit folder and decode the samples of the instruments that play some role.
    pub fn load(dir: &Path) -> Result<Kit> {
        let info = KitInfo::parse_dir(dir)?;
        Self::from_info(info, &|p: &Path| Ok(crate::audio::load(p)?.samples))
    }

    /// Like [`Kit::load`] with a custom decoder (any path → 44.1 kHz mono samples).
    pub fn from_info(info: KitInfo, decode: &dyn Fn(&Path) -> Result<Vec<f32>>) -> Result<Kit> {
        let map = info.role_map();
        if !map.contains_key(&Role::Kick) || !map.contains_key(&Role::Snare) {
            let names: Vec<&str> = info.instruments.iter().map(|i| i.name.as_str()).collect();
            bail!(
                "kit `{}` in {} has no recognisable kick and snare (instruments: {})",
                info.name,
                info.dir.display(),
                names.join(", ")
            );
        }
        let mut cache: HashMap<PathBuf, Arc<Vec<f32>>> = HashMap::new();
        let mut voices = BTreeMap::new();
        for (role, idx) in map {
            let inst = &info.instruments[idx];
            let mut layers = Vec::new();
            for l in &inst.layers {
                let samples = match cache.get(&l.file) {
                    Some(s) => s.clone(),
                    None => {
                        let s = Arc::new(trim_lead(decode(&l.file).with_context(|| {
                            format!(
                                "kit `{}`: cannot load sample {}",
                                info.name,
                                l.file.display()
                            )
                        })?));
                        cache.insert(l.file.clone(), s.clone());
                        s
                    }
                };
                layers.push(Layer {
                    samples,
                    min: l.min,
                    max: l.max,
                    gain: l.gain,
                    file: l.file.clone(),
                });
            }
            voices.insert(
                role,
                Voice {
                    instrument: inst.name.clone(),
                    gain: inst.volume * inst.gain,
                    layers,
                },
            );
        }
        Ok(Kit { info, voices })
    }
}

/// Samples before the attack that are kept, so the transient's first rise stays intact.
pub const ATTACK_PREROLL: usize = 8;

/// Drop a sample's silent lead-in (up to the first value at 5 % of its peak, less
/// [`ATTACK_PREROLL`]), so that each hit's attack lands on its grid sample. Some kit samples start
/// up to 6 ms late (Colombo's 4-mic kick: 246 samples).
pub fn trim_lead(mut s: Vec<f32>) -> Vec<f32> {
    let peak = s.iter().fold(0f32, |m, x| m.max(x.abs()));
    if peak > 0.0 {
        if let Some(i) = s.iter().position(|x| x.abs() >= 0.05 * peak) {
            s.drain(..i.saturating_sub(ATTACK_PREROLL));
        }
    }
    s
}

/// An element with this local name (kits may declare a namespace).
fn is(n: &roxmltree::Node, tag: &str) -> bool {
    n.is_element() && n.tag_name().name() == tag
}

/// The trimmed text of the first child element `tag`.
fn text(n: roxmltree::Node, tag: &str) -> Option<String> {
    n.children()
        .find(|c| is(c, tag))
        .map(|c| c.text().unwrap_or("").trim().to_string())
}

fn num(n: roxmltree::Node, tag: &str) -> Result<Option<f32>> {
    match text(n, tag) {
        None => Ok(None),
        Some(t) => t
            .parse::<f32>()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("<{tag}> is `{t}`, not a number")),
    }
}

/// What Debian says about the kits we use (the xml often omits the license).
pub struct KnownKit {
    /// `<name>` in drumkit.xml.
    pub name: &'static str,
    /// The artist label for renders.
    pub display: &'static str,
    pub package: &'static str,
    pub license: &'static str,
    pub author: &'static str,
}

pub const KNOWN_KITS: &[KnownKit] = &[
    KnownKit {
        name: "ColomboAcousticDrumkit",
        display: "Colombo Acoustic Drumkit",
        package: "hydrogen-drumkits",
        license: "GPL-2+ with composition exception",
        author: "Marcos Guglielmetti",
    },
    KnownKit {
        name: "The Black Pearl 1.0",
        display: "The Black Pearl",
        package: "hydrogen-drumkits",
        license: "GPL-2",
        author: "Glen MacArthur",
    },
    KnownKit {
        name: "GMRockKit",
        display: "GM Rock Kit",
        package: "hydrogen-data",
        license: "GPL-2+",
        author: "Glen MacArthur / Sebastian Moors",
    },
    KnownKit {
        name: "ForzeeStereo",
        display: "Forzee Stereo",
        package: "hydrogen-drumkits",
        license: "GPL-2",
        author: "Vladimir Sadovnikov, Alexander Belokurov",
    },
    KnownKit {
        name: "ElectricEmpireKit",
        display: "Electric Empire Kit",
        package: "hydrogen-drumkits",
        license: "GPL-2+",
        author: "Artemiy Pavlov (ArtemioLabs)",
    },
    KnownKit {
        name: "HardElectro1",
        display: "Hard Electro Kit",
        package: "hydrogen-drumkits",
        license: "GPL-2+",
        author: "Artemiy Pavlov (ArtemioLabs)",
    },
    KnownKit {
        name: "Millo-Drums_v.1",
        display: "Millo Drums",
        package: "hydrogen-drumkits",
        license: "GPL-2",
        author: "Emiliano Grilli (Emillo)",
    },
    KnownKit {
        name: "Millo_MultiLayered2",
        display: "Millo MultiLayered 2",
        package: "hydrogen-drumkits",
        license: "GPL-2",
        author: "Emiliano Grilli (Emillo)",
    },
    KnownKit {
        name: "Millo_MultiLayered3",
        display: "Millo MultiLayered 3",
        package: "hydrogen-drumkits",
        license: "GPL-2",
        author: "Emiliano Grilli (Emillo)",
    },
    KnownKit {
        name: "rumpf_kit_z01_gm",
        display: "Rumpf Kit",
        package: "hydrogen-drumkits",
        license: "CC-BY-3.0",
        author: "Emanuel Rumpf",
    },
    KnownKit {
        name: "TR808EmulationKit",
        display: "TR-808 Emulation Kit",
        package: "hydrogen-data",
        license: "GPL-2+",
        author: "Artemiy Pavlov (ArtemioLabs)",
    },
];

impl KitInfo {
    /// (artist label, source, license, author) for metadata rows.
    pub fn credits(&self) -> (String, String, String, String) {
        // drumkit.xml names do not always match the folder (`ForzeeStereo` is "Forzee Stereo Drumkit").
        let folder = self
            .dir
            .file_name()
            .map(|f| f.to_string_lossy().into_owned());
        match KNOWN_KITS
            .iter()
            .find(|k| k.name == self.name || folder.as_deref() == Some(k.name))
        {
            Some(k) => (
                k.display.into(),
                k.package.into(),
                k.license.into(),
                k.author.into(),
            ),
            None => (
                self.name.clone(),
                self.dir.display().to_string(),
                if self.license.is_empty() {
                    "see the kit's drumkit.xml".into()
                } else {
                    self.license.clone()
                },
                self.author.clone(),
            ),
        }
    }
}
