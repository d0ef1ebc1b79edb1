//! Parity: official checkpoint key tables (`official-keys/` with `index.json`). Each preset,
//! built shape-only through `checkpoint::ShapeRecorder` (nothing allocated), must give exactly the
//! official keys, shapes and entry/element counts; the parameter total counts a tied output head
//! once.

use super::Report;
use crate::checkpoint::Component;
use crate::config::JukeboxConfig;
use crate::model::expected_keys;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::Path;

/// The component and config an official table name stands for.
fn config_for(name: &str) -> Result<(JukeboxConfig, Component)> {
    let (preset, c) = match name {
        "vqvae" => ("5b", Component::Vqvae),
        "5b_prior_level_0" => ("5b", Component::Prior(0)),
        "5b_prior_level_1" => ("5b", Component::Prior(1)),
        "5b_prior_level_2" => ("5b", Component::Prior(2)),
        "5b_lyrics_prior_level_2" => ("5b_lyrics", Component::Prior(2)),
        "1b_lyrics_prior_level_2" => ("1b_lyrics", Component::Prior(2)),
        _ => bail!("unknown official table `{name}`"),
    };
    Ok((JukeboxConfig::preset(preset)?, c))
}

fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

pub fn run(dir: &Path, report: &mut Report) -> Result<()> {
    let ix_path = dir.join("index.json");
    let ix: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&ix_path)
            .with_context(|| format!("cannot read {}", ix_path.display()))?,
    )
    .with_context(|| format!("{} is not valid JSON", ix_path.display()))?;
    let Some(obj) = ix.as_object() else {
        report.fail("keys/index", "index.json is not an object");
        return Ok(());
    };
    for (name, summary) in obj {
        let check = format!("keys/{name}");
        report.guard(&check.clone(), |report| {
            let p = dir.join(format!("{name}.json"));
            let t: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p)?)?;
            let want: HashMap<String, Vec<usize>> = t["tensors"]
                .as_array()
                .context("no `tensors` array")?
                .iter()
                .map(|e| {
                    let k = e["key"].as_str().context("tensor without key")?.to_string();
                    let s = e["shape"]
                        .as_array()
                        .context("tensor without shape")?
                        .iter()
                        .map(|d| d.as_u64().map(|d| d as usize).context("bad dim"))
                        .collect::<Result<Vec<_>>>()?;
                    Ok((k, s))
                })
                .collect::<Result<_>>()?;
            let (cfg, c) = config_for(name)?;
            let got = expected_keys(&cfg, c)?;
            let n_want = summary["entries"].as_u64().unwrap_or(0) as usize;
            report.exact(
                format!("{check}/entries"),
                got.len().abs_diff(n_want),
                0,
                format!("{} built, {n_want} official", got.len()),
            );
            let bad = crate::checkpoint::check_tensors(&got, &want)
                .err()
                .map(|e| format!("{e:#}"));
            let n_bad = bad
                .as_ref()
                .map_or(0, |b| b.lines().count().saturating_sub(1));
            let detail = match &bad {
                Some(b) => b.lines().take(4).collect::<Vec<_>>().join(" | "),
                None => "every key and shape matches".into(),
            };
            report.exact(format!("{check}/keys_shapes"), n_bad, 0, detail);
            let elements: usize = got.iter().map(|(_, s)| numel(s)).sum();
            let want_el = summary["elements"].as_u64().unwrap_or(0) as usize;
            report.exact(
                format!("{check}/elements"),
                usize::from(elements != want_el),
                0,
                format!("{elements} built, {want_el} official"),
            );
            if let Component::Prior(l) = c {
                // Tied head (upsamplers, 1b_lyrics): the parameter total counts it once, which
                // gives the published sizes (981 M per upsampler, 943 M for 1b_lyrics).
                let tied = !cfg.priors[l].merged_decoder;
                let head = got
                    .iter()
                    .find(|(k, _)| k == "prior.x_out.weight")
                    .map_or(0, |(_, s)| numel(s));
                let params = if tied { elements - head } else { elements };
                let published = match name.as_str() {
                    "5b_prior_level_0" | "5b_prior_level_1" => Some(981),
                    "1b_lyrics_prior_level_2" => Some(943),
                    _ => None,
                };
                if let Some(m) = published {
                    let got_m = (params as f64 / 1e6).round() as usize;
                    report.exact(
                        format!("{check}/params_tied_once"),
                        usize::from(got_m != m),
                        0,
                        format!("{params} parameters (~{got_m} M; published {m} M)"),
                    );
                }
            }
            Ok(())
        });
    }
    Ok(())
}
