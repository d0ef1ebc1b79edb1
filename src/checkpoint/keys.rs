//! Key names: Hugging Face layout ↔ official state-dict keys (both directions; the official keys are the module paths of upstream
//! jukebox/vqvae/vqvae.py `VQVAE.__init__` and jukebox/prior/prior.py `SimplePrior.__init__`).
//!
//! The HF converter renames official keys in a fixed sequence of string edits; this module
//! implements it as a structural map on dot-separated segments, so that both directions are exact
//! inverses (tested as a bijection on the fixture's keys). HF numbers the priors in reverse:
//! `priors.0` is the top prior, official level `n_priors - 1`.

use anyhow::{bail, Context, Result};

/// Which official state dict a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    Vqvae,
    /// A prior at an official level (0 = bottom).
    Prior(usize),
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Component::Vqvae => write!(f, "vqvae"),
            Component::Prior(l) => write!(f, "prior level {l}"),
        }
    }
}

/// What the key map needs from the model config: the number of priors (for HF's reversed
/// numbering) and the VQ-VAE `downs_t` (the encoder's output conv is `model.{down_t}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMap {
    pub n_priors: usize,
    pub downs_t: Vec<usize>,
}

impl KeyMap {
    pub fn new(config: &crate::config::JukeboxConfig) -> Self {
        Self {
            n_priors: config.priors.len(),
            downs_t: config.vqvae.downs_t.clone(),
        }
    }

    /// The HF prefix of a component: `vqvae.` or `priors.{n_priors - 1 - level}.`.
    pub fn hf_prefix(&self, c: Component) -> Result<String> {
        match c {
            Component::Vqvae => Ok("vqvae.".into()),
            Component::Prior(l) if l < self.n_priors => {
                Ok(format!("priors.{}.", self.n_priors - 1 - l))
            }
            Component::Prior(l) => bail!(
                "prior level {l} does not exist (the model has {} priors)",
                self.n_priors
            ),
        }
    }

    /// Map one HF key (`vqvae.…` or `priors.N.…`) to its component and official key.
    pub fn hf_to_official(&self, hf: &str) -> Result<(Component, String)> {
        if let Some(rest) = hf.strip_prefix("vqvae.") {
            let k = vqvae_hf_to_official(rest, &self.downs_t)
                .with_context(|| format!("HF key `{hf}` is not a known VQ-VAE key"))?;
            return Ok((Component::Vqvae, k));
        }
        if let Some(rest) = hf.strip_prefix("priors.") {
            let (n, rest) = rest
                .split_once('.')
                .with_context(|| format!("HF key `{hf}` has no prior index"))?;
            let n: usize = n
                .parse()
                .with_context(|| format!("HF key `{hf}`: prior index `{n}` is not a number"))?;
            if n >= self.n_priors {
                bail!(
                    "HF key `{hf}`: prior index {n} is out of range (the config has {} priors)",
                    self.n_priors
                );
            }
            let k = prior_hf_to_official(rest)
                .with_context(|| format!("HF key `{hf}` is not a known prior key"))?;
            return Ok((Component::Prior(self.n_priors - 1 - n), k));
        }
        bail!("HF key `{hf}` starts with neither `vqvae.` nor `priors.`")
    }

    /// Map one official key of a component to its full HF key.
    pub fn official_to_hf(&self, c: Component, key: &str) -> Result<String> {
        let body = match c {
            Component::Vqvae => vqvae_official_to_hf(key, &self.downs_t),
            Component::Prior(_) => prior_official_to_hf(key),
        }
        .with_context(|| {
            format!("official {c} key `{key}` does not follow the official grammar")
        })?;
        Ok(format!("{}{body}", self.hf_prefix(c)?))
    }
}

fn num(s: &str) -> Result<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        bail!("`{s}` is not an index");
    }
    s.parse()
        .with_context(|| format!("index `{s}` is too large"))
}

fn wb(s: &str) -> Result<&str> {
    match s {
        "weight" | "bias" => Ok(s),
        _ => bail!("expected `weight` or `bias`, found `{s}`"),
    }
}

/// Official resnet conv index (`model.1` / `model.3`) ↔ HF `conv1d_1` / `conv1d_2`.
fn res_conv_to_hf(s: &str) -> Result<&'static str> {
    match s {
        "1" => Ok("conv1d_1"),
        "3" => Ok("conv1d_2"),
        _ => bail!("resnet conv index must be 1 or 3, found `{s}`"),
    }
}

fn res_conv_from_hf(s: &str) -> Result<&'static str> {
    match s {
        "conv1d_1" => Ok("1"),
        "conv1d_2" => Ok("3"),
        _ => bail!("expected conv1d_1 or conv1d_2, found `{s}`"),
    }
}

fn vqvae_hf_to_official(k: &str, downs_t: &[usize]) -> Result<String> {
    let s: Vec<&str> = k.split('.').collect();
    Ok(match s.as_slice() {
        ["encoders", l, "level_blocks", b, "downsample_block", n, rest @ ..] => {
            let (l, b, n) = (num(l)?, num(b)?, num(n)?);
            let (i, c) = (n / 2, n % 2);
            match (c, rest) {
                (0, [w]) => format!("encoders.{l}.level_blocks.{b}.model.{i}.0.{}", wb(w)?),
                (1, ["resnet_block", j, conv, w]) => format!(
                    "encoders.{l}.level_blocks.{b}.model.{i}.1.model.{}.model.{}.{}",
                    num(j)?,
                    res_conv_from_hf(conv)?,
                    wb(w)?
                ),
                _ => bail!("unexpected downsample_block entry"),
            }
        }
        ["encoders", l, "level_blocks", b, "proj_out", w] => {
            let b = num(b)?;
            let d = downs_t
                .get(b)
                .with_context(|| format!("level block {b} has no downs_t entry ({downs_t:?})"))?;
            format!("encoders.{}.level_blocks.{b}.model.{d}.{}", num(l)?, wb(w)?)
        }
        ["decoders", l, "level_blocks", b, "proj_in", w] => {
            format!(
                "decoders.{}.level_blocks.{}.model.0.{}",
                num(l)?,
                num(b)?,
                wb(w)?
            )
        }
        ["decoders", l, "level_blocks", b, "upsample_block", n, rest @ ..] => {
            let (l, b, n) = (num(l)?, num(b)?, num(n)?);
            let (i, c) = (n / 2 + 1, n % 2);
            match (c, rest) {
                (1, [w]) => format!("decoders.{l}.level_blocks.{b}.model.{i}.1.{}", wb(w)?),
                (0, ["resnet_block", j, conv, w]) => format!(
                    "decoders.{l}.level_blocks.{b}.model.{i}.0.model.{}.model.{}.{}",
                    num(j)?,
                    res_conv_from_hf(conv)?,
                    wb(w)?
                ),
                _ => bail!("unexpected upsample_block entry"),
            }
        }
        ["decoders", l, "out", w] => format!("decoders.{}.out.{}", num(l)?, wb(w)?),
        ["bottleneck", "level_blocks", l, "codebook"] => {
            format!("bottleneck.level_blocks.{}.k", num(l)?)
        }
        _ => bail!("no rule matches"),
    })
}

fn vqvae_official_to_hf(k: &str, downs_t: &[usize]) -> Result<String> {
    let s: Vec<&str> = k.split('.').collect();
    Ok(match s.as_slice() {
        ["encoders", l, "level_blocks", b, "model", i, "0", w] => format!(
            "encoders.{}.level_blocks.{}.downsample_block.{}.{}",
            num(l)?,
            num(b)?,
            2 * num(i)?,
            wb(w)?
        ),
        ["encoders", l, "level_blocks", b, "model", i, "1", "model", j, "model", c, w] => format!(
            "encoders.{}.level_blocks.{}.downsample_block.{}.resnet_block.{}.{}.{}",
            num(l)?,
            num(b)?,
            2 * num(i)? + 1,
            num(j)?,
            res_conv_to_hf(c)?,
            wb(w)?
        ),
        ["encoders", l, "level_blocks", b, "model", i, w] => {
            let (b, i) = (num(b)?, num(i)?);
            if downs_t.get(b) != Some(&i) {
                bail!(
                    "encoder output conv of level block {b} must be model.{:?}, found model.{i}",
                    downs_t.get(b)
                );
            }
            format!("encoders.{}.level_blocks.{b}.proj_out.{}", num(l)?, wb(w)?)
        }
        ["decoders", l, "level_blocks", b, "model", "0", w] => {
            format!(
                "decoders.{}.level_blocks.{}.proj_in.{}",
                num(l)?,
                num(b)?,
                wb(w)?
            )
        }
        ["decoders", l, "level_blocks", b, "model", i, "1", w] => {
            let i = num(i)?;
            if i == 0 {
                bail!("decoder step index must be >= 1");
            }
            format!(
                "decoders.{}.level_blocks.{}.upsample_block.{}.{}",
                num(l)?,
                num(b)?,
                2 * i - 1,
                wb(w)?
            )
        }
        ["decoders", l, "level_blocks", b, "model", i, "0", "model", j, "model", c, w] => {
            let i = num(i)?;
            if i == 0 {
                bail!("decoder step index must be >= 1");
            }
            format!(
                "decoders.{}.level_blocks.{}.upsample_block.{}.resnet_block.{}.{}.{}",
                num(l)?,
                num(b)?,
                2 * i - 2,
                num(j)?,
                res_conv_to_hf(c)?,
                wb(w)?
            )
        }
        ["decoders", l, "out", w] => format!("decoders.{}.out.{}", num(l)?, wb(w)?),
        ["bottleneck", "level_blocks", l, "k"] => {
            format!("bottleneck.level_blocks.{}.codebook", num(l)?)
        }
        _ => bail!("no rule matches"),
    })
}

/// Conv1D layers, whose official parameters are `.w` / `.b`.
fn conv1d_from_hf(w: &str) -> Result<&'static str> {
    match w {
        "weight" => Ok("w"),
        "bias" => Ok("b"),
        _ => bail!("expected `weight` or `bias`, found `{w}`"),
    }
}

fn conv1d_to_hf(w: &str) -> Result<&'static str> {
    match w {
        "w" => Ok("weight"),
        "b" => Ok("bias"),
        _ => bail!("expected `w` or `b`, found `{w}`"),
    }
}

const LABEL_TABLES: [&str; 2] = ["bow_genre_emb", "artist_emb"];
const TIMING_TABLES: [&str; 3] = ["total_length_emb", "absolute_pos_emb", "relative_pos_emb"];

/// The body of a transformer (`prior.` / `prime_prior.` officially, `prior.` / `encoder.` in HF).
fn transformer_hf_to_official(rest: &[&str]) -> Result<String> {
    Ok(match rest {
        ["embed_tokens", "weight"] => "x_emb.weight".into(),
        ["pos_emb", "pos_emb"] => "pos_emb.pos_emb".into(),
        ["start_token"] => "start_token".into(),
        ["transformer", "_attn_mods", n, "attn", conv @ ("c_attn" | "c_proj" | "c_enc_kv"), w] => {
            format!(
                "transformer._attn_mods.{}.attn.{conv}.{}",
                num(n)?,
                conv1d_from_hf(w)?
            )
        }
        ["transformer", "_attn_mods", n, "mlp", conv @ ("c_fc" | "c_proj"), w] => {
            format!(
                "transformer._attn_mods.{}.mlp.{conv}.{}",
                num(n)?,
                conv1d_from_hf(w)?
            )
        }
        ["transformer", "_attn_mods", n, ln @ ("layer_norm_0" | "layer_norm_1"), w] => {
            format!(
                "transformer._attn_mods.{}.ln_{}.{}",
                num(n)?,
                &ln[11..],
                wb(w)?
            )
        }
        _ => bail!("no transformer rule matches"),
    })
}

fn transformer_official_to_hf(rest: &[&str]) -> Result<String> {
    Ok(match rest {
        ["x_emb", "weight"] => "embed_tokens.weight".into(),
        ["pos_emb", "pos_emb"] => "pos_emb.pos_emb".into(),
        ["start_token"] => "start_token".into(),
        ["transformer", "_attn_mods", n, "attn", conv @ ("c_attn" | "c_proj" | "c_enc_kv"), w] => {
            format!(
                "transformer._attn_mods.{}.attn.{conv}.{}",
                num(n)?,
                conv1d_to_hf(w)?
            )
        }
        ["transformer", "_attn_mods", n, "mlp", conv @ ("c_fc" | "c_proj"), w] => {
            format!(
                "transformer._attn_mods.{}.mlp.{conv}.{}",
                num(n)?,
                conv1d_to_hf(w)?
            )
        }
        ["transformer", "_attn_mods", n, ln @ ("ln_0" | "ln_1"), w] => {
            format!(
                "transformer._attn_mods.{}.layer_norm_{}.{}",
                num(n)?,
                &ln[3..],
                wb(w)?
            )
        }
        _ => bail!("no transformer rule matches"),
    })
}

fn prior_hf_to_official(k: &str) -> Result<String> {
    let s: Vec<&str> = k.split('.').collect();
    Ok(match s.as_slice() {
        ["conditioner_blocks", "embed_tokens", "weight"] => {
            "conditioner_blocks.0.x_emb.weight".into()
        }
        ["conditioner_blocks", "layer_norm", w] => format!("conditioner_blocks.0.ln.{}", wb(w)?),
        ["conditioner_blocks", "upsampler", "proj_in", w] => {
            format!("conditioner_blocks.0.cond.model.0.{}", wb(w)?)
        }
        ["conditioner_blocks", "upsampler", "upsample_block", n, rest @ ..] => {
            let n = num(n)?;
            let (i, c) = (n / 2 + 1, n % 2);
            match (c, rest) {
                (1, [w]) => format!("conditioner_blocks.0.cond.model.{i}.1.{}", wb(w)?),
                (0, ["resnet_block", j, conv, w]) => format!(
                    "conditioner_blocks.0.cond.model.{i}.0.blocks.{}.model.{}.{}",
                    num(j)?,
                    res_conv_from_hf(conv)?,
                    wb(w)?
                ),
                _ => bail!("unexpected upsample_block entry"),
            }
        }
        ["metadata_embedding", t, "weight"] if LABEL_TABLES.contains(t) => {
            format!("y_emb.{t}.emb.weight")
        }
        ["metadata_embedding", t, "emb", "weight"] if TIMING_TABLES.contains(t) => {
            format!("y_emb.{t}.emb.weight")
        }
        ["prior", "fc_proj_out", "weight"] => "prior.x_out.weight".into(),
        ["prior", rest @ ..] => format!("prior.{}", transformer_hf_to_official(rest)?),
        ["encoder", "proj_in", w] => format!("prime_state_proj.{}", conv1d_from_hf(w)?),
        ["encoder", "final_layer_norm", w] => format!("prime_state_ln.{}", wb(w)?),
        ["encoder", "lm_head", "weight"] => "prime_x_out.weight".into(),
        ["encoder", rest @ ..] => format!("prime_prior.{}", transformer_hf_to_official(rest)?),
        _ => bail!("no rule matches"),
    })
}

fn prior_official_to_hf(k: &str) -> Result<String> {
    let s: Vec<&str> = k.split('.').collect();
    Ok(match s.as_slice() {
        ["conditioner_blocks", "0", "x_emb", "weight"] => {
            "conditioner_blocks.embed_tokens.weight".into()
        }
        ["conditioner_blocks", "0", "ln", w] => format!("conditioner_blocks.layer_norm.{}", wb(w)?),
        ["conditioner_blocks", "0", "cond", "model", "0", w] => {
            format!("conditioner_blocks.upsampler.proj_in.{}", wb(w)?)
        }
        ["conditioner_blocks", "0", "cond", "model", i, "1", w] => {
            let i = num(i)?;
            if i == 0 {
                bail!("conditioner step index must be >= 1");
            }
            format!(
                "conditioner_blocks.upsampler.upsample_block.{}.{}",
                2 * i - 1,
                wb(w)?
            )
        }
        ["conditioner_blocks", "0", "cond", "model", i, "0", "blocks", j, "model", c, w] => {
            let i = num(i)?;
            if i == 0 {
                bail!("conditioner step index must be >= 1");
            }
            format!(
                "conditioner_blocks.upsampler.upsample_block.{}.resnet_block.{}.{}.{}",
                2 * i - 2,
                num(j)?,
                res_conv_to_hf(c)?,
                wb(w)?
            )
        }
        ["y_emb", t, "emb", "weight"] if LABEL_TABLES.contains(t) => {
            format!("metadata_embedding.{t}.weight")
        }
        ["y_emb", t, "emb", "weight"] if TIMING_TABLES.contains(t) => {
            format!("metadata_embedding.{t}.emb.weight")
        }
        ["prior", "x_out", "weight"] => "prior.fc_proj_out.weight".into(),
        ["prior", rest @ ..] => format!("prior.{}", transformer_official_to_hf(rest)?),
        ["prime_state_proj", w] => format!("encoder.proj_in.{}", conv1d_to_hf(w)?),
        ["prime_state_ln", w] => format!("encoder.final_layer_norm.{}", wb(w)?),
        ["prime_x_out", "weight"] => "encoder.lm_head.weight".into(),
        ["prime_prior", rest @ ..] => format!("encoder.{}", transformer_official_to_hf(rest)?),
        _ => bail!("no rule matches"),
    })
}

/// The official key grammar (module paths of upstream `VQVAE` and `SimplePrior`), one pattern per kind of entry. In a pattern, `#` is an
/// index and `a|b` alternatives.
pub const VQVAE_GRAMMAR: &[&str] = &[
    "encoders.#.level_blocks.#.model.#.0.weight|bias",
    "encoders.#.level_blocks.#.model.#.1.model.#.model.1|3.weight|bias",
    "encoders.#.level_blocks.#.model.#.weight|bias",
    "decoders.#.level_blocks.#.model.0.weight|bias",
    "decoders.#.level_blocks.#.model.#.1.weight|bias",
    "decoders.#.level_blocks.#.model.#.0.model.#.model.1|3.weight|bias",
    "decoders.#.out.weight|bias",
    "bottleneck.level_blocks.#.k",
];

pub const PRIOR_GRAMMAR: &[&str] = &[
    "conditioner_blocks.0.x_emb.weight",
    "conditioner_blocks.0.cond.model.0.weight|bias",
    "conditioner_blocks.0.cond.model.#.1.weight|bias",
    "conditioner_blocks.0.cond.model.#.0.blocks.#.model.1|3.weight|bias",
    "conditioner_blocks.0.ln.weight|bias",
    "y_emb.bow_genre_emb|artist_emb.emb.weight",
    "y_emb.total_length_emb|absolute_pos_emb|relative_pos_emb.emb.weight",
    "prior|prime_prior.x_emb.weight",
    "prior|prime_prior.pos_emb.pos_emb",
    "prior|prime_prior.start_token",
    "prior.x_out.weight",
    "prior|prime_prior.transformer._attn_mods.#.attn.c_attn|c_proj|c_enc_kv.w|b",
    "prior|prime_prior.transformer._attn_mods.#.mlp.c_fc|c_proj.w|b",
    "prior|prime_prior.transformer._attn_mods.#.ln_0|ln_1.weight|bias",
    "prime_state_proj.w|b",
    "prime_state_ln.weight|bias",
    "prime_x_out.weight",
];

/// Does `key` match `pattern` (see [`VQVAE_GRAMMAR`])?
pub fn matches_pattern(pattern: &str, key: &str) -> bool {
    let (p, k): (Vec<&str>, Vec<&str>) = (pattern.split('.').collect(), key.split('.').collect());
    p.len() == k.len()
        && p.iter().zip(&k).all(|(p, k)| match *p {
            "#" => num(k).is_ok(),
            alts => alts.split('|').any(|a| a == *k),
        })
}

/// The grammar pattern an official key matches, if any.
pub fn official_pattern(c: Component, key: &str) -> Option<&'static str> {
    let g = match c {
        Component::Vqvae => VQVAE_GRAMMAR,
        Component::Prior(_) => PRIOR_GRAMMAR,
    };
    g.iter().copied().find(|p| matches_pattern(p, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn km() -> KeyMap {
        KeyMap {
            n_priors: 3,
            downs_t: vec![3, 2, 2],
        }
    }

    #[test]
    fn spec_examples_map_both_ways() {
        let m = km();
        let cases = [
            (Component::Vqvae, "encoders.0.level_blocks.0.model.0.0.weight", "vqvae.encoders.0.level_blocks.0.downsample_block.0.weight"),
            (Component::Vqvae, "encoders.1.level_blocks.1.model.2.weight", "vqvae.encoders.1.level_blocks.1.proj_out.weight"),
            (Component::Vqvae, "decoders.2.level_blocks.0.model.2.0.model.3.model.1.bias", "vqvae.decoders.2.level_blocks.0.upsample_block.2.resnet_block.3.conv1d_1.bias"),
            (Component::Vqvae, "bottleneck.level_blocks.2.k", "vqvae.bottleneck.level_blocks.2.codebook"),
            (Component::Prior(2), "prior.transformer._attn_mods.3.attn.c_attn.w", "priors.0.prior.transformer._attn_mods.3.attn.c_attn.weight"),
            (Component::Prior(0), "y_emb.artist_emb.emb.weight", "priors.2.metadata_embedding.artist_emb.weight"),
            (Component::Prior(2), "y_emb.total_length_emb.emb.weight", "priors.0.metadata_embedding.total_length_emb.emb.weight"),
            (Component::Prior(1), "conditioner_blocks.0.cond.model.1.0.blocks.0.model.1.weight", "priors.1.conditioner_blocks.upsampler.upsample_block.0.resnet_block.0.conv1d_1.weight"),
            (Component::Prior(1), "conditioner_blocks.0.cond.model.2.1.bias", "priors.1.conditioner_blocks.upsampler.upsample_block.3.bias"),
            (Component::Prior(0), "conditioner_blocks.0.x_emb.weight", "priors.2.conditioner_blocks.embed_tokens.weight"),
            (Component::Prior(0), "conditioner_blocks.0.ln.weight", "priors.2.conditioner_blocks.layer_norm.weight"),
            (Component::Prior(2), "prior.x_out.weight", "priors.0.prior.fc_proj_out.weight"),
            (Component::Prior(2), "prime_state_proj.w", "priors.0.encoder.proj_in.weight"),
            (Component::Prior(2), "prime_state_ln.bias", "priors.0.encoder.final_layer_norm.bias"),
            (Component::Prior(2), "prime_x_out.weight", "priors.0.encoder.lm_head.weight"),
            (Component::Prior(2), "prime_prior.start_token", "priors.0.encoder.start_token"),
            (Component::Prior(2), "prime_prior.transformer._attn_mods.17.ln_1.weight", "priors.0.encoder.transformer._attn_mods.17.layer_norm_1.weight"),
            (Component::Prior(2), "prior.transformer._attn_mods.18.attn.c_enc_kv.b", "priors.0.prior.transformer._attn_mods.18.attn.c_enc_kv.bias"),
        ];
        for (c, off, hf) in cases {
            assert_eq!(m.official_to_hf(c, off).unwrap(), hf, "{off}");
            assert_eq!(m.hf_to_official(hf).unwrap(), (c, off.to_string()), "{hf}");
            assert!(official_pattern(c, off).is_some(), "{off}");
        }
    }

    #[test]
    fn bad_keys_are_errors() {
        let m = km();
        for hf in [
            "vqvae.encoders.0.level_blocks.0.proj_out.weight.x",
            "priors.3.prior.x_emb.weight",
            "priors.x.prior.embed_tokens.weight",
            "model.embed_tokens.weight",
            "priors.0.prior.transformer._attn_mods.01.attn.c_attn.weight",
            "vqvae.encoders.0.level_blocks.7.proj_out.weight",
        ] {
            assert!(m.hf_to_official(hf).is_err(), "{hf}");
        }
        // The encoder output conv must sit at model.{down_t}.
        assert!(m
            .official_to_hf(Component::Vqvae, "encoders.0.level_blocks.0.model.2.weight")
            .is_err());
        assert!(m
            .official_to_hf(Component::Prior(3), "prior.x_emb.weight")
            .is_err());
        assert!(m
            .official_to_hf(Component::Prior(0), "prior.x_out.w")
            .is_err());
    }
}
