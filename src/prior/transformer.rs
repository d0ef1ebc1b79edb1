//! The official `Transformer` of `ResAttnBlock`s (pre-LayerNorm, quick-GELU MLP, no final LN),
//! with a teacher-forced whole-sequence path and a KV-cached chunk/step path.
//!
//! Keys: `_attn_mods.{d}.attn.c_attn.{w,b}`, `.attn.c_proj`, `.attn.c_enc_kv` (cross layers),
//! `.ln_0`, `.mlp.c_fc`, `.mlp.c_proj`, `.ln_1`.

use super::attention::{self, attn_kind, AttnGeom, AttnKind};
use super::cache::{LayerCache, PriorCache};
use super::format::WeightFormat;
use crate::ops;
use candle_core::{bail, DType, Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// Official `Conv1D`: `y = x·w + b`, `w` (n_in, n_out). Weights may be stored f16/bf16, or
/// int8 with one scale per output (`scale`, see `ops::q8`); the product is computed in the
/// activation dtype.
#[derive(Debug, Clone)]
pub struct Conv1D {
    pub w: Tensor,
    pub b: Tensor,
    /// Per-output scales when `w` holds int8 values.
    pub scale: Option<Tensor>,
    /// `w` packed for AMX tiles while a prefill runs (`ops::amx::PackCache`).
    pub(crate) packed: ops::amx::PackCache,
}

impl Conv1D {
    pub fn new(n_in: usize, n_out: usize, init_std: f64, vb: VarBuilder) -> Result<Self> {
        let w = vb.get_with_hints(
            (n_in, n_out),
            "w",
            Init::Randn {
                mean: 0.0,
                stdev: init_std,
            },
        )?;
        let b = vb.get_with_hints(n_out, "b", Init::Const(0.0))?;
        Ok(Self {
            w,
            b,
            scale: None,
            packed: Default::default(),
        })
    }

    /// Store the weight in `f`: a float dtype, or int8 with per-output scales (from a float
    /// weight; inference only).
    pub fn set_format(&mut self, f: WeightFormat) -> Result<()> {
        self.packed.release();
        self.packed = Default::default();
        if self.scale.is_some() {
            if f == WeightFormat::Q8 {
                return Ok(());
            }
            bail!("the weights are already int8: reload the model to change their dtype");
        }
        if f == WeightFormat::Q8 {
            let (q, s) = ops::q8::quantize_cols(&self.w)?;
            (self.w, self.scale) = (q, Some(s));
        } else if self.w.dtype() != f.float_dtype() {
            self.w = self.w.to_dtype(f.float_dtype())?;
        }
        Ok(())
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // Sampling steps (a few rows): read the weights once, in their storage dtype.
        if let Some(y) = ops::gemv::dense_small(x, &self.w, self.scale.as_ref(), &self.b)? {
            return Ok(y);
        }
        // Larger products with bf16 weights on AMX tiles, where the CPU has them.
        if let Some(y) = ops::amx::dense(x, &self.w, &self.b)? {
            return Ok(y);
        }
        let dt = x.dtype();
        // Larger products (prefill, teacher forcing) dequantise int8 weights per call.
        let w = if let Some(s) = &self.scale {
            ops::q8::dequantize_cols(&self.w, s)?.to_dtype(dt)?
        } else if self.w.dtype() == dt {
            self.w.clone()
        } else {
            self.w.to_dtype(dt)?
        };
        let b = if self.b.dtype() == dt {
            self.b.clone()
        } else {
            self.b.to_dtype(dt)?
        };
        ops::dense(x, &w, &b)
    }
}

impl Conv1D {
    /// The product on AMX tiles (`ops::amx`) with `ln` applied to the rows as they are packed
    /// and `ep` to the output blocks; None where that path does not apply. `keep`: keep the
    /// weight's packed tiles for the next chunk of a prefill (`Transformer::release_packed`
    /// frees them); a teacher-forced pass makes one product per weight and packs per call.
    fn amx(
        &self,
        x: &Tensor,
        ln: Option<&Ln>,
        ep: ops::amx::Epilogue,
        keep: bool,
    ) -> Result<Option<Tensor>> {
        if self.scale.is_some() {
            return Ok(None);
        }
        let ln = ln.map(Ln::row_norm);
        let cache = keep.then_some(&self.packed);
        ops::amx::dense_ep(x, &self.w, &self.b, ln, ep, cache)
    }

    /// `res + (x · w + b)`: on AMX tiles the product starts from the residual, so the add is no
    /// separate pass over the output. `keep` as for the AMX tiles' packed weight.
    pub fn forward_add(&self, x: &Tensor, res: &Tensor, keep: bool) -> Result<Tensor> {
        match self.amx(x, None, ops::amx::Epilogue::Add(res), keep)? {
            Some(y) => Ok(y),
            None => res + self.forward(x)?,
        }
    }

    /// `quick_gelu(ln(x) · w + b)`: on AMX tiles the LayerNorm runs as the rows are packed
    /// and the GELU on each output block while it is in cache.
    pub fn forward_ln_gelu(&self, x: &Tensor, ln: &Ln, keep: bool) -> Result<Tensor> {
        match self.amx(x, Some(ln), ops::amx::Epilogue::Gelu, keep)? {
            Some(y) => Ok(y),
            None => ops::quick_gelu(&self.forward(&ln.forward(x)?)?),
        }
    }

    /// `ln(x) · w + b`, the LayerNorm applied as the rows are packed on AMX tiles.
    pub fn forward_ln(&self, x: &Tensor, ln: &Ln, keep: bool) -> Result<Tensor> {
        match self.amx(x, Some(ln), ops::amx::Epilogue::None, keep)? {
            Some(y) => Ok(y),
            None => self.forward(&ln.forward(x)?),
        }
    }
}

/// Affine LayerNorm (eps 1e-5), computed in f32.
#[derive(Debug, Clone)]
pub struct Ln {
    pub w: Tensor,
    pub b: Tensor,
}

impl Ln {
    pub fn new(n: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            w: vb.get_with_hints(n, "weight", Init::Const(1.0))?,
            b: vb.get_with_hints(n, "bias", Init::Const(0.0))?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::layer_norm(x, &self.w, &self.b, 1e-5)
    }

    fn row_norm(&self) -> ops::amx::RowNorm<'_> {
        ops::amx::RowNorm {
            w: &self.w,
            b: &self.b,
            eps: 1e-5,
        }
    }
}

/// Transformer hyperparameters (shared by the music prior and the 5b lyric encoder).
#[derive(Debug, Clone, PartialEq)]
pub struct TransformerConfig {
    pub width: usize,
    pub depth: usize,
    pub heads: usize,
    pub n_state: usize,
    pub mlp_width: usize,
    /// Sequence length (music + merged lyrics).
    pub n_ctx: usize,
    pub blocks: Option<usize>,
    pub attn_order: usize,
    /// Merged-lyrics prefix length (prime attention boundary), if any.
    pub prime_len: Option<usize>,
    /// Std of the Conv1D weight init (training only).
    pub init_std: f64,
    /// Dense weight storage, applied to each layer as it is loaded (so an f32 copy of the
    /// whole model never exists at once). f32: as the source gives them.
    pub weights: WeightFormat,
}

#[derive(Debug, Clone)]
pub struct Layer {
    pub kind: AttnKind,
    pub(crate) c_attn: Conv1D,
    c_enc_kv: Option<Conv1D>,
    pub(crate) c_proj: Conv1D,
    pub(crate) ln_0: Ln,
    pub(crate) ln_1: Ln,
    pub(crate) mlp_fc: Conv1D,
    pub(crate) mlp_proj: Conv1D,
}

impl Layer {
    /// Every dense (`Conv1D`) weight of the layer.
    pub(crate) fn dense_mut(&mut self) -> Vec<&mut Conv1D> {
        let mut v = vec![
            &mut self.c_attn,
            &mut self.c_proj,
            &mut self.mlp_fc,
            &mut self.mlp_proj,
        ];
        v.extend(self.c_enc_kv.as_mut());
        v
    }

    /// Free the AMX-packed copies of the layer's weights.
    fn release_packed(&self) {
        for c in [&self.c_attn, &self.c_proj, &self.mlp_fc, &self.mlp_proj] {
            c.packed.release();
        }
        if let Some(c) = &self.c_enc_kv {
            c.packed.release();
        }
    }

    /// Every dense weight of the layer in `f` ([`Conv1D::set_format`]).
    fn set_format(&mut self, f: WeightFormat) -> Result<()> {
        self.dense_mut()
            .into_iter()
            .try_for_each(|c| c.set_format(f))
    }
}

#[derive(Debug, Clone)]
pub struct Transformer {
    pub cfg: TransformerConfig,
    pub geom: AttnGeom,
    pub layers: Vec<Layer>,
}

/// What a teacher-forced pass records besides its output.
#[derive(Debug, Default)]
pub struct Record {
    /// Every layer's output (residual stream after the layer).
    pub layer_outputs: Vec<Tensor>,
    /// (layer, softmax weights (B, H, Lq, Lk)) for the layers asked for.
    pub attn_weights: Vec<(usize, Tensor)>,
}

impl Transformer {
    /// `vb` points at the transformer (e.g. `prior.transformer`).
    pub fn new(cfg: &TransformerConfig, vb: VarBuilder) -> Result<Self> {
        if !cfg.n_state.is_multiple_of(cfg.heads) {
            bail!(
                "n_state {} is not divisible by heads {}",
                cfg.n_state,
                cfg.heads
            );
        }
        let geom = AttnGeom::new(cfg.n_ctx, cfg.blocks, cfg.prime_len)?;
        let (w, s) = (cfg.width, cfg.n_state);
        let mut layers = Vec::with_capacity(cfg.depth);
        for d in 0..cfg.depth {
            let kind = attn_kind(cfg.attn_order, d)?;
            if kind == AttnKind::Prime && cfg.prime_len.is_none() {
                bail!("layer {d} uses prime attention but the model has no lyric prefix");
            }
            let lv = vb.pp(format!("_attn_mods.{d}"));
            let av = lv.pp("attn");
            let cross = kind == AttnKind::Cross;
            let c_attn = Conv1D::new(
                w,
                if cross { s } else { 3 * s },
                cfg.init_std,
                av.pp("c_attn"),
            )?;
            let c_enc_kv = if cross {
                Some(Conv1D::new(w, 2 * s, cfg.init_std, av.pp("c_enc_kv"))?)
            } else {
                None
            };
            let mut layer = Layer {
                kind,
                c_attn,
                c_enc_kv,
                c_proj: Conv1D::new(s, w, cfg.init_std, av.pp("c_proj"))?,
                ln_0: Ln::new(w, lv.pp("ln_0"))?,
                ln_1: Ln::new(w, lv.pp("ln_1"))?,
                mlp_fc: Conv1D::new(w, cfg.mlp_width, cfg.init_std, lv.pp("mlp").pp("c_fc"))?,
                mlp_proj: Conv1D::new(cfg.mlp_width, w, cfg.init_std, lv.pp("mlp").pp("c_proj"))?,
            };
            // f32 means "as the source gives them": a half-precision source stays half, and
            // training variables are never replaced by converted copies.
            if cfg.weights != WeightFormat::F32 {
                layer.set_format(cfg.weights)?;
            }
            layers.push(layer);
        }
        Ok(Self {
            cfg: cfg.clone(),
            geom,
            layers,
        })
    }

    /// Every layer's dense weights in `f` (`--dtype`); LayerNorms and biases keep their dtype.
    pub fn set_weight_format(&mut self, f: WeightFormat) -> Result<()> {
        for l in &mut self.layers {
            l.set_format(f)?;
        }
        self.cfg.weights = f;
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.cfg.n_state / self.cfg.heads
    }

    /// Teacher-forced pass over positions 0..L of `x` (B, L, W) (f32).
    pub fn forward(
        &self,
        x: &Tensor,
        encoder_kv: Option<&Tensor>,
        mut record: Option<&mut Record>,
        record_attn: &[usize],
    ) -> Result<Tensor> {
        if x.dim(1)? > self.cfg.n_ctx {
            bail!(
                "sequence of {} positions exceeds n_ctx {}",
                x.dim(1)?,
                self.cfg.n_ctx
            );
        }
        let mut h = x.clone();
        for (d, layer) in self.layers.iter().enumerate() {
            let want = record_attn.contains(&d);
            let (o, w) = layer.attn_full(&h, encoder_kv, &self.geom, self.cfg.heads)?;
            let ha = layer.c_proj.forward_add(&o, &h, false)?;
            h = layer.mlp_block(&ha, false)?;
            if let Some(r) = record.as_deref_mut() {
                r.layer_outputs.push(h.clone());
                if want {
                    match w {
                        Some(w) => r.attn_weights.push((d, w)),
                        None => bail!(
                            "layer {d} ({:?}) does not record attention weights",
                            layer.kind
                        ),
                    }
                }
            }
        }
        Ok(h)
    }

    /// Free the weights' AMX-packed copies ([`Conv1D::forward_ln`] keeps them between the
    /// chunks of a prefill).
    pub(crate) fn release_packed(&self) {
        self.layers.iter().for_each(Layer::release_packed);
    }

    /// Run positions `t0..t0+c` (t0 = `cache.pos`) of `x` (B, c, W) against the KV cache and
    /// store their keys and values. Equal to the teacher-forced pass on those rows.
    pub fn forward_cached(
        &self,
        x: &Tensor,
        cache: &mut PriorCache,
        encoder_kv: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (_, c, _) = x.dims3()?;
        let t0 = cache.pos;
        if t0 + c > self.cfg.n_ctx {
            bail!(
                "KV cache is full: {t0} + {c} positions exceed the window of {}",
                self.cfg.n_ctx
            );
        }
        if cache.layers.len() != self.layers.len() {
            bail!(
                "cache has {} layers, model {}",
                cache.layers.len(),
                self.layers.len()
            );
        }
        cache.restore_tensors()?;
        let mut h = x.clone();
        for (layer, lc) in self.layers.iter().zip(cache.layers.iter_mut()) {
            let o = layer.attn_cached(&h, t0, lc, encoder_kv, &self.geom, self.cfg.heads)?;
            let ha = layer.c_proj.forward_add(&o, &h, true)?;
            h = layer.mlp_block(&ha, true)?;
        }
        cache.pos = t0 + c;
        Ok(h)
    }
}

/// CPU f32: the factorised patterns straight from `c` (B, L, 3S) as one custom op
/// ([`ops::attn_train::QkvAttnOp`]), for training and for the inference passes that
/// `prior::fast_forward` does not take (recorded passes, half or int8 weights); `None` where
/// it does not apply.
fn qkv_attention_fast(
    kind: AttnKind,
    c: &Tensor,
    g: &AttnGeom,
    heads: usize,
) -> Result<Option<Tensor>> {
    use ops::attn_train::{Pattern, QkvAttnOp};
    let pattern = match kind {
        AttnKind::Block => Pattern::Block,
        AttnKind::Transpose => Pattern::Transpose,
        AttnKind::PrevBlock => Pattern::PrevBlock,
        _ => return Ok(None),
    };
    if !ops::train_fast() || !ops::fused_train::applicable(&[c]) {
        return Ok(None);
    }
    let (_, l, s3) = c.dims3()?;
    let op = QkvAttnOp {
        pattern,
        bc: g.block_ctx,
        heads,
        scale: attention::score_scale(s3 / 3 / heads) as f32,
    };
    if !op.supports(l, s3) {
        return Ok(None);
    }
    c.contiguous()?.apply_op1(op).map(Some)
}

fn split_qkv(c: &Tensor, s: usize) -> Result<(Tensor, Tensor, Tensor)> {
    Ok((
        c.narrow(2, 0, s)?,
        c.narrow(2, s, s)?,
        c.narrow(2, 2 * s, s)?,
    ))
}

impl Layer {
    /// `res + mlp(ln_1(res))`; `keep` as for [`Conv1D::forward_add`].
    fn mlp_block(&self, res: &Tensor, keep: bool) -> Result<Tensor> {
        let f = self.mlp_fc.forward_ln_gelu(res, &self.ln_1, keep)?;
        self.mlp_proj.forward_add(&f, res, keep)
    }

    fn enc_kv(&self, encoder_kv: Option<&Tensor>, s: usize) -> Result<(Tensor, Tensor)> {
        let (Some(p), Some(e)) = (&self.c_enc_kv, encoder_kv) else {
            bail!("cross-attention layer needs the lyric encoder output (encoder_kv)");
        };
        let kv = p.forward(&e.to_dtype(DType::F32)?)?;
        Ok((kv.narrow(2, 0, s)?, kv.narrow(2, s, s)?))
    }

    /// Attention of `ln_0(h)` before the output projection (the caller applies `c_proj` with
    /// the residual).
    fn attn_full(
        &self,
        h: &Tensor,
        encoder_kv: Option<&Tensor>,
        g: &AttnGeom,
        heads: usize,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let c = self.c_attn.forward_ln(h, &self.ln_0, false)?;
        let (o, w) = if self.kind == AttnKind::Cross {
            let s = c.dim(2)?;
            let (k, v) = self.enc_kv(encoder_kv, s)?;
            let (o, w) = attention::cross_attention(&c, &k, &v, heads)?;
            (o, Some(w))
        } else if let Some(o) = qkv_attention_fast(self.kind, &c, g, heads)? {
            (o, None)
        } else {
            let s = c.dim(2)? / 3;
            let (q, k, v) = split_qkv(&c, s)?;
            attention::self_attention_full(self.kind, g, &q, &k, &v, heads)?
        };
        // The caller projects (`c_proj.forward_add`, with the residual).
        Ok((o, w))
    }

    /// [`Layer::attn_full`] for positions t0.. against the KV cache.
    fn attn_cached(
        &self,
        h: &Tensor,
        t0: usize,
        lc: &mut LayerCache,
        encoder_kv: Option<&Tensor>,
        g: &AttnGeom,
        heads: usize,
    ) -> Result<Tensor> {
        let c = self.c_attn.forward_ln(h, &self.ln_0, true)?;
        let (b, n, _) = c.dims3()?;
        let o = if self.kind == AttnKind::Cross {
            let s = c.dim(2)?;
            if lc.enc.is_none() {
                let (k, v) = self.enc_kv(encoder_kv, s)?;
                lc.enc = Some((
                    attention::split_heads(&k, heads)?,
                    attention::split_heads(&v, heads)?,
                ));
            }
            let Some((kh, vh)) = &lc.enc else {
                bail!("cross-attention cache missing")
            };
            let qh = attention::split_heads(&c, heads)?;
            attention::merge_heads(&attention::attend_split(&qh, kh, vh, None)?.0)?
        } else {
            let s = c.dim(2)? / 3;
            let (q, k, v) = split_qkv(&c, s)?;
            let (qh, kh, vh) = (
                attention::split_heads(&q, heads)?,
                attention::split_heads(&k, heads)?,
                attention::split_heads(&v, heads)?,
            );
            let o = if n == 1 {
                lc.step_attend(self.kind, g, t0, &qh, &kh, &vh)?
            } else {
                let o = lc.chunk_attend(self.kind, g, t0, &qh, &kh, &vh)?;
                lc.write(self.kind, g, t0, &kh, &vh)?;
                o
            };
            let o = attention::merge_heads(&o)?;
            debug_assert_eq!(o.dims3()?, (b, n, s));
            o
        };
        // The caller projects (`c_proj.forward_add`, with the residual).
        Ok(o)
    }
}
