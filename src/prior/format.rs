//! How a prior stores its dense weights for sampling (`--dtype`): f32 as loaded, f16 or bf16
//! (half the bytes per step), or int8 with per-output scales (`q8`, a quarter; `ops::q8`).
//! Compute stays f32 in every case; only the transformers' dense weights change.

use super::Prior;
use candle_core::{bail, DType, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightFormat {
    #[default]
    F32,
    F16,
    BF16,
    Q8,
}

impl WeightFormat {
    pub const ALL: [Self; 4] = [Self::F32, Self::F16, Self::BF16, Self::Q8];

    pub fn parse(s: &str) -> Result<Self> {
        match Self::ALL.into_iter().find(|f| f.name() == s) {
            Some(f) => Ok(f),
            None => bail!(
                "weight dtype `{s}` is not one of {}",
                Self::ALL.map(Self::name).join(", ")
            ),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::BF16 => "bf16",
            Self::Q8 => "q8",
        }
    }

    /// The float dtype of the stored weights (q8: the f32 they are quantised from).
    pub fn float_dtype(self) -> DType {
        match self {
            Self::F16 => DType::F16,
            Self::BF16 => DType::BF16,
            Self::F32 | Self::Q8 => DType::F32,
        }
    }

    /// Serde's `skip_serializing_if` for fields that default to f32.
    pub fn is_f32(&self) -> bool {
        *self == Self::F32
    }

    /// Bytes per dense weight element.
    pub fn elem_bytes(self) -> usize {
        match self {
            Self::Q8 => 1,
            other => other.float_dtype().size_in_bytes(),
        }
    }
}

impl Prior {
    /// The format of the dense weights (of the first layer; [`Self::set_weight_format`]
    /// changes them all).
    pub fn weight_format(&self) -> WeightFormat {
        let Some(l) = self.transformer.layers.first() else {
            return WeightFormat::F32;
        };
        match (l.c_attn.scale.is_some(), l.c_attn.w.dtype()) {
            (true, _) => WeightFormat::Q8,
            (_, DType::F16) => WeightFormat::F16,
            (_, DType::BF16) => WeightFormat::BF16,
            _ => WeightFormat::F32,
        }
    }

    /// Store the transformers' dense weights in `f` (from f32 as loaded). Inference only.
    pub fn set_weight_format(&mut self, f: WeightFormat) -> Result<()> {
        self.transformer.set_weight_format(f)?;
        if let Some(e) = &mut self.encoder {
            e.transformer.set_weight_format(f)?;
        }
        Ok(())
    }
}
