//! Deterministic parameter initialisation by official key name.
//!
//! Model code builds its weights through a `VarBuilder`; a `VarMap` backend hands out zeros
//! (or candle's unseeded random init), so training re-initialises every variable here, from the
//! seed and the key alone. Rules follow the official code: dense `w` ~ N(0, 0.02·s), token
//! embeddings N(0, 0.02·s), label/position embeddings N(0, 0.01·s), LayerNorm 1/0, biases 0,
//! convolutions U(±1/√fan_in) (PyTorch's default), codebooks 0 (filled from the first batch).

use super::rng::{CounterRng, Stream};
use candle_core::{Result, Tensor, Var};
use candle_nn::VarMap;

fn key_hash(key: &str) -> u64 {
    // FNV-1a: stable across runs and platforms.
    key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// How one key is initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InitRule {
    Zeros,
    Ones,
    Normal(f64),
    Uniform(f64),
}

fn is_ln(segment: &str) -> bool {
    segment == "ln" || segment.starts_with("ln_") || segment.ends_with("_ln")
}

/// The rule for an official key of the given shape. `init_scale` is the prior's `init_scale`.
pub fn rule_for(key: &str, dims: &[usize], init_scale: f64) -> InitRule {
    let parts: Vec<&str> = key.split('.').collect();
    let last = parts.last().copied().unwrap_or("");
    let parent = if parts.len() >= 2 {
        parts[parts.len() - 2]
    } else {
        ""
    };
    if key.starts_with("bottleneck.") || last == "k" || last == "b" || last == "bias" {
        return InitRule::Zeros;
    }
    if last == "weight" && is_ln(parent) {
        return InitRule::Ones;
    }
    if dims.len() == 3 {
        let fan_in = (dims[1] * dims[2]).max(1) as f64;
        return InitRule::Uniform(1.0 / fan_in.sqrt());
    }
    if last == "pos_emb" || (parent.ends_with("emb") && parent != "x_emb") {
        return InitRule::Normal(0.01 * init_scale);
    }
    if dims.len() >= 2 {
        return InitRule::Normal(0.02 * init_scale);
    }
    InitRule::Zeros
}

/// Re-initialise every variable in `vm` (sorted by name) from `seed`.
pub fn init_varmap(vm: &VarMap, seed: u64, init_scale: f64) -> Result<()> {
    let data = vm
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("VarMap lock poisoned".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var: &Var = &data[name];
        let dims = var.dims().to_vec();
        let n: usize = dims.iter().product();
        let mut rng = CounterRng::new(seed, Stream::Init, key_hash(name), 0);
        let vals: Vec<f32> = match rule_for(name, &dims, init_scale) {
            InitRule::Zeros => vec![0.0; n],
            InitRule::Ones => vec![1.0; n],
            InitRule::Normal(s) => (0..n).map(|_| (rng.normal() * s) as f32).collect(),
            InitRule::Uniform(b) => (0..n)
                .map(|_| ((rng.uniform() * 2.0 - 1.0) * b) as f32)
                .collect(),
        };
        let t = Tensor::from_vec(vals, dims, var.device())?.to_dtype(var.dtype())?;
        var.set(&t)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn rules_by_key() {
        let s = 0.5;
        assert_eq!(
            rule_for("prior.transformer._attn_mods.0.ln_0.weight", &[8], s),
            InitRule::Ones
        );
        assert_eq!(
            rule_for("prior.transformer._attn_mods.0.ln_0.bias", &[8], s),
            InitRule::Zeros
        );
        assert_eq!(
            rule_for("conditioner_blocks.0.ln.weight", &[8], s),
            InitRule::Ones
        );
        assert_eq!(
            rule_for("prior.prime_state_ln.weight", &[8], s),
            InitRule::Ones
        );
        assert_eq!(
            rule_for("prior.transformer._attn_mods.0.attn.c_attn.w", &[8, 6], s),
            InitRule::Normal(0.01)
        );
        assert_eq!(
            rule_for("prior.transformer._attn_mods.0.attn.c_attn.b", &[6], s),
            InitRule::Zeros
        );
        assert_eq!(
            rule_for("prior.x_emb.weight", &[8, 6], s),
            InitRule::Normal(0.01)
        );
        assert_eq!(
            rule_for("prior.pos_emb.pos_emb", &[8, 6], s),
            InitRule::Normal(0.005)
        );
        assert_eq!(
            rule_for("y_emb.artist_emb.emb.weight", &[8, 6], s),
            InitRule::Normal(0.005)
        );
        assert_eq!(
            rule_for("encoders.0.level_blocks.0.model.0.0.weight", &[4, 2, 4], s),
            InitRule::Uniform(1.0 / 8f64.sqrt())
        );
        assert_eq!(
            rule_for("bottleneck.level_blocks.0.k", &[16, 4], s),
            InitRule::Zeros
        );
    }

    #[test]
    fn init_is_deterministic_and_seed_dependent() -> Result<()> {
        let dev = Device::Cpu;
        let make = |seed| -> Result<Vec<f32>> {
            let vm = VarMap::new();
            let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &dev);
            let w = vb.get((4, 3), "prior.x_emb.weight")?;
            let _ = vb.get(3, "prior.x_emb.bias")?;
            init_varmap(&vm, seed, 1.0)?;
            w.flatten_all()?.to_vec1::<f32>()
        };
        let a = make(1)?;
        assert_eq!(a, make(1)?);
        assert_ne!(a, make(2)?);
        assert!(a.iter().all(|v| v.abs() < 0.2) && a.iter().any(|v| *v != 0.0));
        Ok(())
    }
}
