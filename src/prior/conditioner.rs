//! The upsampler conditioner (`openai/jukebox@08efbbc` `jukebox/prior/conditioners.py` `Conditioner`): upper-level codes → embedding → DecoderConvBlock
//! (conv, then per stage Resnet1D + ConvTranspose) → LayerNorm. Output (N, n_ctx, W).
//!
//! Keys under `conditioner_blocks.0`: `x_emb.weight`, `cond.model.0.*`,
//! `cond.model.{i+1}.0.blocks.{j}.model.{1,3}.*` (the `.blocks.` quirk of `checkpoint_res`),
//! `cond.model.{i+1}.1.*`, `ln.*`.

use super::transformer::Ln;
use crate::config::ConditionerConfig;
use crate::ops;
use candle_core::{DType, Result, Tensor};
use candle_nn::{Init, VarBuilder};

#[derive(Debug, Clone)]
struct Conv {
    w: Tensor,
    b: Tensor,
}

impl Conv {
    /// Conv1d weight (out, in, k), or ConvTranspose1d weight (in, out, k) with `transposed`.
    fn new(shape: (usize, usize, usize), transposed: bool, vb: VarBuilder) -> Result<Self> {
        let fan_in = (shape.1 * shape.2) as f64;
        let w = vb.get_with_hints(
            shape,
            "weight",
            Init::Randn {
                mean: 0.0,
                stdev: 1.0 / fan_in.sqrt(),
            },
        )?;
        let n_out = if transposed { shape.1 } else { shape.0 };
        let b = vb.get_with_hints(n_out, "bias", Init::Const(0.0))?;
        Ok(Self { w, b })
    }

    fn f32(&self) -> Result<(Tensor, Tensor)> {
        Ok((self.w.to_dtype(DType::F32)?, self.b.to_dtype(DType::F32)?))
    }

    /// Conv1d on (N, C, T) (differentiable shifted matmuls from `ops`).
    fn conv(&self, x: &Tensor, pad: usize, dil: usize) -> Result<Tensor> {
        let (w, b) = self.f32()?;
        ops::conv1d(x, &w, Some(&b), 1, pad, dil)
    }

    /// ConvTranspose1d on (N, C, T); weight (C_in, C_out, K).
    fn conv_t(&self, x: &Tensor, pad: usize, stride: usize) -> Result<Tensor> {
        let (w, b) = self.f32()?;
        ops::conv_transpose1d(x, &w, Some(&b), stride, pad)
    }
}

#[derive(Debug, Clone)]
struct ResBlock {
    c1: Conv,
    c2: Conv,
    dilation: usize,
    scale: f64,
}

#[derive(Debug, Clone)]
struct Stage {
    res: Vec<ResBlock>,
    up: Conv,
}

#[derive(Debug, Clone)]
pub struct Conditioner {
    pub cfg: ConditionerConfig,
    x_emb: Tensor,
    conv_in: Conv,
    stages: Vec<Stage>,
    ln: Ln,
}

impl Conditioner {
    /// `vb` points at `conditioner_blocks.0`; `bins` is the upper level's codebook size and
    /// `out_width` the prior's width.
    pub fn new(
        cfg: &ConditionerConfig,
        bins: usize,
        out_width: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let x_emb = vb.pp("x_emb").get_with_hints(
            (bins, out_width),
            "weight",
            Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        )?;
        let cv = vb.pp("cond").pp("model");
        let w = cfg.width;
        let inner = (cfg.m_conv * w as f64) as usize;
        let conv_in = Conv::new((w, out_width, 3), false, cv.pp("0"))?;
        let scale = if cfg.res_scale {
            1.0 / (cfg.depth as f64).sqrt()
        } else {
            1.0
        };
        let k = cfg.stride_t * 2;
        let mut stages = Vec::with_capacity(cfg.down_t);
        for i in 0..cfg.down_t {
            let sv = cv.pp(i + 1);
            // `checkpoint_res = 1` names the resnet list `blocks`; fall back to `model`.
            let rv = sv.pp("0");
            let list = if !rv.contains_tensor("blocks.0.model.1.weight")
                && rv.contains_tensor("model.0.model.1.weight")
            {
                rv.pp("model")
            } else {
                rv.pp("blocks")
            };
            let mut res = Vec::with_capacity(cfg.depth);
            for j in 0..cfg.depth {
                let d = match cfg.dilation_cycle {
                    Some(c) if c > 0 => j % c,
                    _ => j,
                };
                let bv = list.pp(j).pp("model");
                res.push(ResBlock {
                    c1: Conv::new((inner, w, 3), false, bv.pp("1"))?,
                    c2: Conv::new((w, inner, 1), false, bv.pp("3"))?,
                    dilation: cfg.dilation_growth_rate.pow(d as u32),
                    scale,
                });
            }
            let n_out = if i + 1 == cfg.down_t { out_width } else { w };
            let up = Conv::new((w, n_out, k), true, sv.pp("1"))?;
            stages.push(Stage { res, up });
        }
        Ok(Self {
            cfg: cfg.clone(),
            x_emb,
            conv_in,
            stages,
            ln: Ln::new(out_width, vb.pp("ln"))?,
        })
    }

    /// Tokens of the level above per token of this level.
    pub fn upsample_factor(&self) -> usize {
        self.cfg.stride_t.pow(self.cfg.down_t as u32)
    }

    /// `z` (N, T_up) upper-level codes → (N, T_up·factor, W).
    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let (n, t) = z.dims2()?;
        let ids = z.to_dtype(DType::U32)?.flatten_all()?;
        let e = self.x_emb.index_select(&ids, 0)?.to_dtype(DType::F32)?;
        let w = e.dim(1)?;
        let mut x = e.reshape((n, t, w))?.transpose(1, 2)?.contiguous()?;
        x = self.conv_in.conv(&x, 1, 1)?;
        let pad = self.cfg.stride_t / 2;
        for st in &self.stages {
            for r in &st.res {
                let h = r.c1.conv(&x.relu()?, r.dilation, r.dilation)?;
                let h = r.c2.conv(&h.relu()?, 0, 1)?;
                x = if r.scale == 1.0 {
                    (x + h)?
                } else {
                    (x + (h * r.scale)?)?
                };
            }
            x = st.up.conv_t(&x, pad, self.cfg.stride_t)?;
        }
        let x = x.transpose(1, 2)?.contiguous()?;
        self.ln.forward(&x)
    }
}
