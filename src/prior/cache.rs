//! The KV cache for sampling, kept outside the model and sized to one window.
//!
//! Each layer keeps only what its attention type can still read (as `openai/jukebox@08efbbc` `jukebox/transformer/factored_attention.py` `FactoredAttention`): the whole window
//! for dense and transpose layers, the current block for block layers, two blocks for
//! previous-block layers, the first P positions for prime layers, and the projected encoder
//! states for cross layers. Position p lives in slot `p mod cap`.

use super::attention::{self, AttnGeom, AttnKind};
use super::transformer::Transformer;
use candle_core::{bail, DType, Device, Result, Tensor};

#[derive(Debug, Clone)]
pub struct LayerCache {
    k: Tensor,
    v: Tensor,
    /// (B, H, cap, d) of `k` and `v`.
    dims: [usize; 4],
    /// While the persistent CPU step ([`super::fast_step`]) runs, the keys and values live
    /// here as plain vectors (same layout) and `k`/`v` are empty; see [`PriorCache::restore_tensors`].
    raw: Option<(Vec<f32>, Vec<f32>)>,
    cap: usize,
    /// Cross layers: encoder keys and values, (B, H, n_enc, d), computed on first use.
    pub(crate) enc: Option<(Tensor, Tensor)>,
}

/// Slots a layer of this kind needs.
pub fn layer_capacity(kind: AttnKind, g: &AttnGeom) -> usize {
    match kind {
        AttnKind::Dense | AttnKind::Transpose => g.n_ctx,
        AttnKind::Block => g.block_ctx,
        AttnKind::PrevBlock => (2 * g.block_ctx).min(g.n_ctx),
        AttnKind::Prime => g.prime_p.min(g.n_ctx),
        AttnKind::Cross => 0,
    }
}

impl LayerCache {
    fn new(
        kind: AttnKind,
        g: &AttnGeom,
        batch: usize,
        heads: usize,
        d: usize,
        dev: &Device,
    ) -> Result<Self> {
        let cap = layer_capacity(kind, g);
        let k = Tensor::zeros((batch, heads, cap, d), DType::F32, dev)?;
        let v = Tensor::zeros((batch, heads, cap, d), DType::F32, dev)?;
        Ok(Self {
            k,
            v,
            dims: [batch, heads, cap, d],
            raw: None,
            cap,
            enc: None,
        })
    }

    fn bytes(&self) -> usize {
        let e = |t: &Tensor| t.elem_count() * t.dtype().size_in_bytes();
        let kv = 2 * self.dims.iter().product::<usize>() * self.k.dtype().size_in_bytes();
        kv + self.enc.as_ref().map_or(0, |(k, v)| e(k) + e(v))
    }

    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// The keys and values as plain f32 vectors (B, H, cap, d), moved out of the tensors on
    /// first use (CPU f32 caches only).
    pub(crate) fn raw_mut(&mut self) -> Result<(&mut [f32], &mut [f32])> {
        let raw = match self.raw.take() {
            Some(raw) => raw,
            None => {
                if !self.k.device().is_cpu() || self.k.dtype() != DType::F32 {
                    bail!("the persistent step needs an f32 cache on the CPU");
                }
                let k = self.k.flatten_all()?.to_vec1::<f32>()?;
                let v = self.v.flatten_all()?.to_vec1::<f32>()?;
                self.k = Tensor::zeros(0, DType::F32, &Device::Cpu)?;
                self.v = self.k.clone();
                (k, v)
            }
        };
        let (k, v) = self.raw.insert(raw);
        Ok((k.as_mut_slice(), v.as_mut_slice()))
    }

    fn restore_tensors(&mut self) -> Result<()> {
        if let Some((k, v)) = self.raw.take() {
            self.k = Tensor::from_vec(k, self.dims.to_vec(), &Device::Cpu)?;
            self.v = Tensor::from_vec(v, self.dims.to_vec(), &Device::Cpu)?;
        }
        Ok(())
    }

    /// Keys and values of positions `[lo, hi)` (must all still be held).
    fn read(&self, lo: usize, hi: usize) -> Result<Option<(Tensor, Tensor)>> {
        if hi <= lo {
            return Ok(None);
        }
        let len = hi - lo;
        if len > self.cap {
            bail!("KV cache holds {} positions, {len} asked", self.cap);
        }
        let a = lo % self.cap;
        if a + len <= self.cap {
            return Ok(Some((self.k.narrow(2, a, len)?, self.v.narrow(2, a, len)?)));
        }
        let n1 = self.cap - a;
        let cat = |t: &Tensor| -> Result<Tensor> {
            Tensor::cat(&[&t.narrow(2, a, n1)?, &t.narrow(2, 0, len - n1)?], 2)
        };
        Ok(Some((cat(&self.k)?, cat(&self.v)?)))
    }

    /// Store keys/values (B, H, c, d) of positions t0..t0+c.
    pub(crate) fn write(
        &mut self,
        kind: AttnKind,
        g: &AttnGeom,
        t0: usize,
        kh: &Tensor,
        vh: &Tensor,
    ) -> Result<()> {
        if kind == AttnKind::Cross || self.cap == 0 {
            return Ok(());
        }
        let c = kh.dim(2)?;
        let mut hi = t0 + c;
        if kind == AttnKind::Prime {
            hi = hi.min(g.prime_p);
        }
        if hi <= t0 {
            return Ok(());
        }
        // Only the last `cap` positions survive anyway.
        let lo = t0.max(hi.saturating_sub(self.cap));
        let mut p = lo;
        while p < hi {
            let slot = p % self.cap;
            let run = (self.cap - slot).min(hi - p);
            let src_k = kh
                .narrow(2, p - t0, run)?
                .contiguous()?
                .to_dtype(self.k.dtype())?;
            let src_v = vh
                .narrow(2, p - t0, run)?
                .contiguous()?
                .to_dtype(self.v.dtype())?;
            self.k.slice_set(&src_k, 2, slot)?;
            self.v.slice_set(&src_v, 2, slot)?;
            p += run;
        }
        Ok(())
    }

    /// One query at position p; the new key/value are written first, then the needed range is
    /// read without a mask (no copy for the contiguous cases).
    pub(crate) fn step_attend(
        &mut self,
        kind: AttnKind,
        g: &AttnGeom,
        p: usize,
        qh: &Tensor,
        kh: &Tensor,
        vh: &Tensor,
    ) -> Result<Tensor> {
        self.write(kind, g, p, kh, vh)?;
        let bc = g.block_ctx;
        let (k, v) = match kind {
            AttnKind::Dense => self.read(0, p + 1)?,
            AttnKind::Block => self.read(p / bc * bc, p + 1)?,
            AttnKind::Prime => self.read(0, (p + 1).min(g.prime_p))?,
            AttnKind::PrevBlock => {
                if p < bc {
                    // Official: zero keys and values, so the output is exactly 0.
                    return qh.zeros_like();
                }
                let b = p / bc;
                self.read((b - 1) * bc, b * bc)?
            }
            AttnKind::Transpose => {
                let (bsz, h, cap, d) = self.k.dims4()?;
                let nb = cap / bc;
                let col = |t: &Tensor| -> Result<Tensor> {
                    t.reshape((bsz, h, nb, bc, d))?
                        .narrow(3, p % bc, 1)?
                        .squeeze(3)?
                        .narrow(2, 0, p / bc + 1)
                };
                Some((col(&self.k)?, col(&self.v)?))
            }
            AttnKind::Cross => bail!("cross-attention has no self keys"),
        }
        .ok_or_else(|| candle_core::Error::Msg("empty key range".into()))?;
        Ok(attention::attend_split(qh, &k, &v, None)?.0)
    }

    /// A chunk of queries t0..t0+c: keys from the cache before t0 plus the chunk's own keys,
    /// with the exact per-type mask. Must be called before `write` for the chunk.
    pub(crate) fn chunk_attend(
        &self,
        kind: AttnKind,
        g: &AttnGeom,
        t0: usize,
        qh: &Tensor,
        kh: &Tensor,
        vh: &Tensor,
    ) -> Result<Tensor> {
        let fast = super::chunk_attn::chunk_attend_cpu(kind, g, t0, &self.k, &self.v, qh, kh, vh);
        if let Some(o) = fast? {
            return Ok(o);
        }
        let c = qh.dim(2)?;
        let t1 = t0 + c;
        let bc = g.block_ctx;
        let (lo, old_hi, new_hi) = match kind {
            AttnKind::Dense | AttnKind::Transpose => (0, t0, t1),
            AttnKind::Block => (t0 / bc * bc, t0, t1),
            AttnKind::PrevBlock => ((t0 / bc).saturating_sub(1) * bc, t0, t1),
            AttnKind::Prime => (0, t0.min(g.prime_p), t1.min(g.prime_p).max(t0)),
            AttnKind::Cross => bail!("cross-attention has no self keys"),
        };
        let mut ks = vec![];
        let mut vs = vec![];
        let mut k_pos: Vec<usize> = (lo..old_hi).collect();
        if let Some((k, v)) = self.read(lo, old_hi)? {
            ks.push(k);
            vs.push(v);
        }
        if new_hi > t0 {
            ks.push(kh.narrow(2, 0, new_hi - t0)?);
            vs.push(vh.narrow(2, 0, new_hi - t0)?);
            k_pos.extend(t0..new_hi);
        }
        let k = Tensor::cat(&ks, 2)?;
        let v = Tensor::cat(&vs, 2)?;
        let q_pos: Vec<usize> = (t0..t1).collect();
        let m = attention::mask_tensor(kind, g, &q_pos, &k_pos, qh.device())?;
        let (o, _) = attention::attend_split(qh, &k, &v, Some(&m))?;
        if kind == AttnKind::PrevBlock && t0 < bc {
            // Queries in block 0 have no keys: their output is exactly zero.
            let keep: Vec<f32> = q_pos
                .iter()
                .map(|&q| if q < bc { 0.0 } else { 1.0 })
                .collect();
            let keep = Tensor::from_vec(keep, (1, 1, c, 1), qh.device())?.to_dtype(o.dtype())?;
            return o.broadcast_mul(&keep);
        }
        Ok(o)
    }
}

/// A layer's biases and LayerNorm parameters in f32, widened once per cache for the persistent
/// step (it reads them element by element; weights stream in their storage dtype).
#[derive(Debug, Clone)]
pub(crate) struct Widened {
    pub(crate) attn_b: OutParams,
    pub(crate) proj_b: OutParams,
    pub(crate) fc_b: OutParams,
    pub(crate) mproj_b: OutParams,
    pub(crate) ln0: (Vec<f32>, Vec<f32>),
    pub(crate) ln1: (Vec<f32>, Vec<f32>),
}

/// What a dense layer applies to each output after the product: the int8 scale, if any
/// (`ops::q8`), then the bias.
#[derive(Debug, Clone)]
pub(crate) struct OutParams {
    pub(crate) bias: Vec<f32>,
    pub(crate) scale: Option<Vec<f32>>,
}

impl OutParams {
    /// `acc · scale[j] + bias[j]`, in `gemv::dense_small`'s order.
    #[inline]
    pub(crate) fn apply(&self, acc: f32, j: usize) -> f32 {
        match &self.scale {
            Some(s) => acc * s[j] + self.bias[j],
            None => acc + self.bias[j],
        }
    }
}

/// Per-window sampling state of one prior: every layer's keys and values, how many positions
/// are done, and the last known token (the input of the next position).
#[derive(Debug, Clone)]
pub struct PriorCache {
    pub(crate) layers: Vec<LayerCache>,
    /// The persistent step's f32 copies of the model's biases and LayerNorm parameters.
    pub(crate) widened: Option<Vec<Widened>>,
    /// Positions already run through the transformer.
    pub pos: usize,
    /// Token at position `pos - 1`, once known (input of position `pos`).
    pub(crate) last: Option<Tensor>,
    batch: usize,
}

impl PriorCache {
    pub fn new(t: &Transformer, batch: usize, dev: &Device) -> Result<Self> {
        let d = t.head_dim();
        let layers = t
            .layers
            .iter()
            .map(|l| LayerCache::new(l.kind, &t.geom, batch, t.cfg.heads, d, dev))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            widened: None,
            pos: 0,
            last: None,
            batch,
        })
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Bytes held by the cache buffers (for memory bounds and the roofline).
    pub fn bytes(&self) -> usize {
        self.layers.iter().map(LayerCache::bytes).sum()
    }

    /// Bytes of keys/values one step at position `pos` reads (roofline).
    pub fn bytes_read_at(t: &Transformer, batch: usize, pos: usize, n_enc: usize) -> usize {
        let g = &t.geom;
        let bc = g.block_ctx;
        let per_pos = 2 * batch * t.cfg.n_state * 4;
        t.layers
            .iter()
            .map(|l| {
                let n = match l.kind {
                    AttnKind::Dense => pos + 1,
                    AttnKind::Block => pos % bc + 1,
                    AttnKind::Transpose => pos / bc + 1,
                    AttnKind::PrevBlock => {
                        if pos < bc {
                            0
                        } else {
                            bc
                        }
                    }
                    AttnKind::Prime => (pos + 1).min(g.prime_p),
                    AttnKind::Cross => n_enc,
                };
                n * per_pos
            })
            .sum()
    }

    /// Record the token chosen for position `pos - 1` (after a `step`).
    pub fn accept(&mut self, token: &Tensor) -> Result<()> {
        if self.last.is_some() {
            bail!("accept called twice without a step in between");
        }
        if token.dims() != [self.batch] {
            bail!(
                "accept expects ({},) tokens, got {:?}",
                self.batch,
                token.dims()
            );
        }
        self.last = Some(token.to_dtype(DType::I64)?);
        Ok(())
    }

    /// Put keys and values held as plain vectors by the persistent step back into the tensors
    /// that the chunked paths read (a no-op otherwise).
    pub(crate) fn restore_tensors(&mut self) -> Result<()> {
        self.layers
            .iter_mut()
            .try_for_each(LayerCache::restore_tensors)
    }

    /// Forget everything (start a new window with the same buffers).
    pub fn reset(&mut self) {
        self.pos = 0;
        self.last = None;
        for l in &mut self.layers {
            l.enc = None;
        }
    }
}
