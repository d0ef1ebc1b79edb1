//! The memory guard: before loading a model or allocating a KV cache, estimate the bytes needed
//! and refuse with a message that says what would fit, instead of being killed by the OOM killer
//! half-way through a job.
//!
//! Available memory is `MemAvailable` from `/proc/meminfo`, lowered to the cgroup limit
//! (`memory.max` − `memory.current`) when the process runs in a container. The environment
//! variable `JUKEBOX_MEMORY_LIMIT` (bytes, or with a `K`/`M`/`G`/`T` suffix, powers of 1024)
//! replaces that figure; tests use it, and so can users who want to keep memory for other work.
//! Where nothing can be measured (not Linux), the guard lets everything through.

use crate::checkpoint::keys::Component;
use crate::checkpoint::ModelDir;
use crate::config::{LyricsConfig, PriorConfig};
use crate::prior::attention::{attn_kind, AttnGeom};
use crate::prior::cache::layer_capacity;
use crate::prior::transformer::Transformer;
use crate::prior::WeightFormat;
use anyhow::{bail, Context, Result};

/// The environment variable that overrides the available memory (bytes).
pub const LIMIT_VAR: &str = "JUKEBOX_MEMORY_LIMIT";

/// Human-readable size in powers of 1024 (`1.5 GiB`).
pub fn format_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Parse a size: plain bytes or a number with a K/M/G/T suffix (powers of 1024, `iB`/`B` optional).
pub fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let body = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (num, mult) = match body.chars().last() {
        Some('k') => (&body[..body.len() - 1], 1u64 << 10),
        Some('m') => (&body[..body.len() - 1], 1 << 20),
        Some('g') => (&body[..body.len() - 1], 1 << 30),
        Some('t') => (&body[..body.len() - 1], 1 << 40),
        _ => (body, 1),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("`{s}` is not a size in bytes (e.g. 4000000000 or 4G)"))?;
    if !v.is_finite() || v < 0.0 {
        bail!("`{s}` is not a size in bytes (e.g. 4000000000 or 4G)");
    }
    let b = v * mult as f64;
    if b >= u64::MAX as f64 {
        bail!("`{s}` is too large a size");
    }
    Ok(b as u64)
}

/// Where the available figure came from, for the message.
#[derive(Debug, Clone, PartialEq)]
pub struct Available {
    pub bytes: u64,
    pub source: String,
}

/// `MemAvailable` in bytes from the text of `/proc/meminfo`.
fn meminfo_available(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut it = line.split_whitespace().skip(1);
    let v: u64 = it.next()?.parse().ok()?;
    let unit = it.next().unwrap_or("kB");
    Some(if unit.eq_ignore_ascii_case("kb") {
        v.saturating_mul(1024)
    } else {
        v
    })
}

/// Room left under the cgroup v2 limit, if there is one.
fn cgroup_room() -> Option<u64> {
    let max = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok()?;
    let max: u64 = max.trim().parse().ok()?; // "max" (no limit) fails to parse: no bound
    let cur: u64 = std::fs::read_to_string("/sys/fs/cgroup/memory.current")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(max.saturating_sub(cur))
}

/// The memory this process may still use, or `None` where it cannot be measured.
pub fn available() -> Result<Option<Available>> {
    if let Ok(v) = std::env::var(LIMIT_VAR) {
        let bytes = parse_bytes(&v).with_context(|| format!("environment variable {LIMIT_VAR}"))?;
        return Ok(Some(Available {
            bytes,
            source: format!("the limit set by {LIMIT_VAR}"),
        }));
    }
    let Some(mut bytes) = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| meminfo_available(&t))
    else {
        return Ok(None);
    };
    let mut source = "MemAvailable in /proc/meminfo".to_string();
    if let Some(room) = cgroup_room() {
        if room < bytes {
            bytes = room;
            source = "the container's memory limit".into();
        }
    }
    Ok(Some(Available { bytes, source }))
}

/// Refuse when `bytes_needed` exceeds the available memory. `what` names the allocation
/// (`the level-2 prior of models/default`).
pub fn check_fits(what: &str, bytes_needed: u64) -> Result<()> {
    check_fits_with(what, bytes_needed, |_| None)
}

/// Like [`check_fits`]; `hint(available)` may say what would fit (`pass --max-batch 3`).
pub fn check_fits_with(
    what: &str,
    bytes_needed: u64,
    hint: impl FnOnce(u64) -> Option<String>,
) -> Result<()> {
    let Some(av) = available()? else {
        return Ok(());
    };
    if bytes_needed <= av.bytes {
        return Ok(());
    }
    let extra = hint(av.bytes).map_or(String::new(), |h| format!("; {h}"));
    bail!(
        "not enough memory for {what}: it needs about {} but only {} is available ({}){extra}. \
         Free memory (close other jobs) or raise {LIMIT_VAR} if it was set too low",
        format_bytes(bytes_needed),
        format_bytes(av.bytes),
        av.source,
    )
}

/// Bytes of a component's weights once loaded as `elem_size`-byte floats (f32: 4). Tied tensors
/// that share storage in the file are counted once per key, as the model holds them.
pub fn component_bytes(md: &ModelDir, c: Component, elem_size: usize) -> Result<u64> {
    let t = md.component(c)?;
    Ok(t.shapes()
        .values()
        .map(|s| s.iter().product::<usize>() as u64)
        .sum::<u64>()
        .saturating_mul(elem_size as u64))
}

fn describe(c: Component) -> String {
    match c {
        Component::Vqvae => "VQ-VAE".into(),
        Component::Prior(l) => format!("level-{l} prior"),
    }
}

/// Whether an internal key names a transformer's dense weight (what `--dtype` converts).
pub fn is_dense_weight(key: &str) -> bool {
    key.contains("_attn_mods.")
        && [".c_attn.w", ".c_proj.w", ".c_enc_kv.w", ".c_fc.w"]
            .iter()
            .any(|s| key.ends_with(s))
}

/// Bytes of component `c` with its transformers' dense weights stored in `f` and everything
/// else in f32 (q8 adds one f32 scale per output column).
pub fn component_bytes_as(md: &ModelDir, c: Component, f: WeightFormat) -> Result<u64> {
    let t = md.component(c)?;
    Ok(t.shapes()
        .iter()
        .map(|(k, s)| {
            let n = s.iter().product::<usize>() as u64;
            if !is_dense_weight(k) {
                return n * 4;
            }
            let scales = if f == WeightFormat::Q8 {
                s.last().copied().unwrap_or(0) as u64 * 4
            } else {
                0
            };
            n * f.elem_bytes() as u64 + scales
        })
        .sum())
}

/// Refuse to load component `c` of `md` as f32 when it would not fit.
pub fn check_component_fits(md: &ModelDir, c: Component) -> Result<()> {
    check_component_fits_as(md, c, WeightFormat::F32)
}

/// [`check_component_fits`] for a prior loaded with its dense weights in `f`.
pub fn check_component_fits_as(md: &ModelDir, c: Component, f: WeightFormat) -> Result<()> {
    let need = component_bytes_as(md, c, f)?;
    let params = component_bytes(md, c, 1)?;
    let dense_f32 = f == WeightFormat::F32;
    check_fits_with(
        &format!("the {} of {}", describe(c), md.path.display()),
        need,
        |av| {
            Some(if dense_f32 {
                format!(
                    "its f32 weights alone are {} ({params} parameters); about {} parameters fit{}",
                    format_bytes(need),
                    av / 4,
                    if matches!(c, Component::Prior(_)) {
                        " (--dtype q8 stores a prior's dense weights in a quarter of that)"
                    } else {
                        ""
                    }
                )
            } else {
                format!(
                    "its weights with {} dense layers are {} ({params} parameters)",
                    f.name(),
                    format_bytes(need)
                )
            })
        },
    )
}

/// Bytes of the KV cache of `t` for `batch` items (f32 keys and values per layer).
pub fn kv_cache_bytes(t: &Transformer, batch: usize) -> u64 {
    kv_cache_bytes_per_item(t).saturating_mul(batch as u64)
}

fn kv_cache_bytes_per_item(t: &Transformer) -> u64 {
    t.layers
        .iter()
        .map(|l| (2 * layer_capacity(l.kind, &t.geom) * t.cfg.n_state * 4) as u64)
        .sum()
}

/// Refuse a KV cache for `batch` items that would not fit, saying how many items per batch would.
pub fn check_kv_cache_fits(what: &str, t: &Transformer, batch: usize) -> Result<()> {
    let per_item = kv_cache_bytes_per_item(t).max(1);
    check_fits_with(what, kv_cache_bytes(t, batch), |av| {
        let k = av / per_item;
        Some(if k == 0 {
            format!(
                "one item alone needs {}, so not even --max-batch 1 fits",
                format_bytes(per_item)
            )
        } else {
            format!(
                "{k} item(s) per batch would fit ({} each): pass --max-batch {k}",
                format_bytes(per_item)
            )
        })
    })
}

/// [`kv_cache_bytes`] per item, from a prior's config alone (before its weights are loaded):
/// the same layer kinds and geometry [`crate::prior::Prior::new`] builds.
pub fn kv_cache_bytes_per_item_for(cfg: &PriorConfig) -> Result<u64> {
    let prime_len = match &cfg.lyrics {
        Some(LyricsConfig::Merged { n_tokens, .. }) => Some(*n_tokens),
        _ => None,
    };
    let geom = AttnGeom::new(cfg.seq_len(), cfg.blocks, prime_len)?;
    let mut total = 0u64;
    for d in 0..cfg.depth {
        let cap = layer_capacity(attn_kind(cfg.attn_order, d)?, &geom) as u64;
        total = total.saturating_add(2 * cap * cfg.n_state() as u64 * 4);
    }
    Ok(total)
}

/// Before a study (or any job that samples `levels` in batches of up to `batch` items) starts:
/// refuse when a level's prior weights (f32) plus its KV cache for `batch` items would not fit,
/// saying how many items per batch would. Levels run one at a time, so each is checked alone.
pub fn check_sampling_fits(md: &ModelDir, levels: &[usize], batch: usize) -> Result<()> {
    for &level in levels {
        let cfg = md
            .config
            .priors
            .get(level)
            .with_context(|| format!("the model has no prior for level {level}"))?;
        let weights = component_bytes(md, Component::Prior(level), 4)?;
        let per_item = kv_cache_bytes_per_item_for(cfg)?.max(1);
        let need = weights.saturating_add(per_item.saturating_mul(batch as u64));
        check_fits_with(
            &format!(
                "sampling level {level} of {} in batches of {batch}",
                md.path.display()
            ),
            need,
            |av| {
                let k = av.saturating_sub(weights) / per_item;
                Some(if k == 0 {
                    format!(
                        "the prior's f32 weights ({}) and one item's KV cache ({}) already need \
                         more, so not even --max-batch 1 fits",
                        format_bytes(weights),
                        format_bytes(per_item)
                    )
                } else {
                    format!(
                        "with the prior's f32 weights ({}), {k} item(s) per batch would fit ({} of \
                         KV cache each): pass --max-batch {k}",
                        format_bytes(weights),
                        format_bytes(per_item)
                    )
                })
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_bytes("123").unwrap(), 123);
        assert_eq!(parse_bytes("4K").unwrap(), 4096);
        assert_eq!(parse_bytes("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("2MiB").unwrap(), 2 << 20);
        assert_eq!(parse_bytes(" 7 MB ").unwrap(), 7 << 20);
        for bad in ["", "abc", "-1", "1e400", "NaN", "G"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_sizes() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn reads_meminfo() {
        let t = "MemTotal:       16000000 kB\nMemFree:  100 kB\nMemAvailable:    8000000 kB\n";
        assert_eq!(meminfo_available(t), Some(8_000_000 * 1024));
        assert_eq!(meminfo_available("MemTotal: 5 kB\n"), None);
    }

    /// The estimate from the config alone (used before anything is loaded) is the size of the
    /// cache the sampler really allocates, on every prior of both committed models.
    #[test]
    fn config_estimate_is_the_real_cache_size() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut checked = 0;
        for model in ["tests/fixtures/reference/fixtures/model", "models/default"] {
            let md = ModelDir::open(&root.join(model)).unwrap();
            for cfg in &md.config.priors {
                let dev = candle_core::Device::Cpu;
                let prior = md.prior(cfg.level, &dev).unwrap();
                let per_item = kv_cache_bytes_per_item_for(cfg).unwrap();
                assert!(per_item > 0);
                assert_eq!(per_item, kv_cache_bytes(&prior.transformer, 1), "{model}");
                let cache = prior.new_cache(3).unwrap();
                assert_eq!(
                    3 * per_item,
                    cache.bytes() as u64,
                    "{model} level {}",
                    cfg.level
                );
                checked += 1;
            }
        }
        assert!(checked >= 4, "{checked}");
    }

    #[test]
    fn real_machine_has_some_memory() {
        // Unless the variable is set by whoever runs the tests, this measures the machine.
        if std::env::var(LIMIT_VAR).is_err() {
            let a = available().unwrap().expect("Linux has /proc/meminfo");
            assert!(a.bytes > 1 << 20, "{a:?}");
            assert!(check_fits("a tiny buffer", 1024).is_ok());
            let e = check_fits("a huge buffer", u64::MAX)
                .unwrap_err()
                .to_string();
            assert!(e.contains("not enough memory for a huge buffer"), "{e}");
        }
    }
}
