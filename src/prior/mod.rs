//! The Jukebox priors (official `SimplePrior` + `ConditionalAutoregressive2D`), with official
//! state-dict keys: `prior.*` (the music transformer), `y_emb.*` (labels),
//! `conditioner_blocks.0.*` (upsamplers), `prime_prior.*` / `prime_state_*` / `prime_x_out`
//! (the 5b_lyrics lyric encoder).
//!
//! Positions of the transformer sequence: position 0 holds the start vector (`y_cond`, or the
//! learned start token without labels), position t > 0 holds `x_emb[token_{t−1}]`, and row t
//! of the logits predicts token t. For 1b_lyrics the sequence is the lyric window (ids 0..79)
//! followed by the music codes shifted by +79 ("raw" ids); [`Prior::forward`] and the sampler
//! hide that, [`Prior::forward_seq`], [`Prior::prefill`] and [`Prior::step`] work on raw ids.

pub mod align;
pub mod attention;
pub mod cache;
mod chunk_attn;
pub mod conditioner;
pub mod encoder;
pub mod fast_forward;
pub mod fast_step;
pub mod format;
pub mod label_cond;
pub mod rank;
pub mod sampler;
pub mod score;
pub mod transformer;
pub mod windows;

pub use attention::{attn_kind, AttnGeom, AttnKind};
pub use cache::PriorCache;
pub use encoder::{EncoderOutput, LyricEncoder};
pub use format::WeightFormat;
pub use label_cond::{timing_bins, TimingBins};
pub use sampler::{sample_window, SampleOpts, StepEntropy, WindowOutput};
pub use score::{score_sequence, ScoreOutput};
pub use transformer::{Record, Transformer, TransformerConfig};

use crate::config::{LyricsConfig, PriorConfig};
use candle_core::{bail, DType, Device, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};
use conditioner::Conditioner;
use label_cond::LabelConditioner;
use transformer::{Conv1D, Ln};

/// Audio sample rate the label ranges are expressed at (official `sr`).
pub const SAMPLE_RATE: f64 = 44100.0;

/// Everything a window's transformer input needs besides the tokens.
#[derive(Debug, Clone)]
pub struct Conditioning {
    /// Input vector of position 0, (N, 1, W).
    pub start: Tensor,
    /// Per-position conditioning over the whole window (N, seq_len, W); None means zeros.
    pub x_cond: Option<Tensor>,
    /// 5b_lyrics: lyric encoder states (N, n_tokens, W) for the cross-attention layers.
    pub encoder_kv: Option<Tensor>,
    /// 1b_lyrics: the window's lyric ids (N, n_tokens), the start of the merged sequence.
    pub lyric_prefix: Option<Tensor>,
}

impl Conditioning {
    pub fn batch(&self) -> Result<usize> {
        self.start.dim(0)
    }

    fn x_cond_range(&self, t0: usize, len: usize) -> Result<Option<Tensor>> {
        match &self.x_cond {
            Some(x) => Ok(Some(x.narrow(1, t0, len)?)),
            None => Ok(None),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Prior {
    pub cfg: PriorConfig,
    x_emb: Tensor,
    pos_emb: Tensor,
    /// Untied output head (merged_decoder); otherwise the head is `x_emb`.
    x_out: Option<Tensor>,
    start_token: Option<Tensor>,
    pub transformer: Transformer,
    pub labels: Option<LabelConditioner>,
    pub conditioner: Option<Conditioner>,
    pub encoder: Option<LyricEncoder>,
}

fn randn(std: f64) -> Init {
    Init::Randn {
        mean: 0.0,
        stdev: std,
    }
}

/// Ids must lie in 0..n (checked on the host; an out-of-range id is a user error, not a panic).
pub(crate) fn check_ids(t: &Tensor, n: usize, what: &str) -> Result<()> {
    let v = t.to_dtype(DType::I64)?.flatten_all()?.to_vec1::<i64>()?;
    if let Some(bad) = v.iter().find(|&&x| x < 0 || x as usize >= n) {
        bail!("{what} {bad} is outside 0..{n}");
    }
    Ok(())
}

/// `[start, emb(tokens[..L-1])]` (N, L, W) in f32.
pub(crate) fn shifted_embed(table: &Tensor, tokens: &Tensor, start: &Tensor) -> Result<Tensor> {
    let (n, l) = tokens.dims2()?;
    if l == 0 {
        bail!("empty token sequence");
    }
    let w = table.dim(1)?;
    if l == 1 {
        return Ok(start.clone());
    }
    let prev = tokens
        .narrow(1, 0, l - 1)?
        .to_dtype(DType::U32)?
        .flatten_all()?;
    let e = table
        .index_select(&prev, 0)?
        .to_dtype(DType::F32)?
        .reshape((n, l - 1, w))?;
    Tensor::cat(&[start, &e], 1)
}

/// `x · wᵀ` for a (V, W) table: (.., W) → (.., V).
pub(crate) fn linear_no_bias(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if let Some(y) = crate::ops::gemv::linear_nt_small(x, w)? {
        return Ok(y);
    }
    let dims = x.dims().to_vec();
    let k = dims[dims.len() - 1];
    let rows = x.elem_count() / k;
    let w = w.to_dtype(x.dtype())?;
    let y = x.reshape((rows, k))?.matmul(&w.t()?)?;
    let mut out = dims;
    let last = out.len() - 1;
    out[last] = w.dim(0)?;
    y.reshape(out)
}

impl Prior {
    pub fn new(cfg: &PriorConfig, vb: VarBuilder) -> Result<Self> {
        Self::new_as(cfg, vb, WeightFormat::F32)
    }

    /// [`Self::new`] with the transformers' dense weights stored in `weights`, converted
    /// layer by layer as they load (q8: a quarter of the f32 memory, never the whole f32
    /// model at once). Inference only.
    pub fn new_as(cfg: &PriorConfig, vb: VarBuilder, weights: WeightFormat) -> Result<Self> {
        cfg.validate().map_err(crate::error::into_candle)?;
        let w = cfg.width;
        let seq = cfg.seq_len();
        let vocab = cfg.vocab();
        let prime_len = match &cfg.lyrics {
            Some(LyricsConfig::Merged { n_tokens, .. }) => Some(*n_tokens),
            _ => None,
        };
        let tcfg = TransformerConfig {
            width: w,
            depth: cfg.depth,
            heads: cfg.heads,
            n_state: cfg.n_state(),
            mlp_width: (w as f64 * cfg.m_mlp) as usize,
            n_ctx: seq,
            blocks: cfg.blocks,
            attn_order: cfg.attn_order,
            prime_len,
            init_std: 0.02,
            weights,
        };
        let pv = vb.pp("prior");
        let x_emb = pv
            .pp("x_emb")
            .get_with_hints((vocab, w), "weight", randn(0.02))?;
        let pos_emb = pv
            .pp("pos_emb")
            .get_with_hints((seq, w), "pos_emb", randn(0.01))?;
        let x_out = if cfg.merged_decoder {
            Some(
                pv.pp("x_out")
                    .get_with_hints((vocab, w), "weight", randn(0.02))?,
            )
        } else {
            // Tied to x_emb. Official checkpoints also list `x_out.weight`: touch it when the
            // source has it (key tables), but always compute with x_emb so training stays tied.
            if pv.contains_tensor("x_out.weight") {
                pv.pp("x_out").get((vocab, w), "weight")?;
            }
            None
        };
        let start_token = if cfg.labels.is_none() {
            Some(pv.get_with_hints((1, w), "start_token", randn(0.01))?)
        } else {
            None
        };
        let transformer = Transformer::new(&tcfg, pv.pp("transformer"))?;
        let labels = match &cfg.labels {
            Some(l) => Some(LabelConditioner::new(
                l,
                w,
                cfg.n_ctx,
                SAMPLE_RATE,
                vb.pp("y_emb"),
            )?),
            None => None,
        };
        let conditioner = match &cfg.cond {
            Some(c) => Some(Conditioner::new(
                c,
                cfg.bins,
                w,
                vb.pp("conditioner_blocks").pp("0"),
            )?),
            None => None,
        };
        let encoder = match &cfg.lyrics {
            Some(LyricsConfig::Encoder {
                n_tokens,
                n_vocab,
                width,
                depth,
                heads,
                blocks,
                attn_order,
            }) => {
                let ecfg = TransformerConfig {
                    width: *width,
                    depth: *depth,
                    heads: *heads,
                    n_state: (*width as f64 * cfg.m_attn) as usize,
                    mlp_width: (*width as f64 * cfg.m_mlp) as usize,
                    n_ctx: *n_tokens,
                    blocks: Some(*blocks),
                    attn_order: *attn_order,
                    prime_len: None,
                    init_std: 0.02,
                    weights,
                };
                let ev = vb.pp("prime_prior");
                Some(LyricEncoder {
                    x_emb: ev.pp("x_emb").get_with_hints(
                        (*n_vocab, *width),
                        "weight",
                        randn(0.02),
                    )?,
                    pos_emb: ev.pp("pos_emb").get_with_hints(
                        (*n_tokens, *width),
                        "pos_emb",
                        randn(0.01),
                    )?,
                    start_token: ev.get_with_hints((1, *width), "start_token", randn(0.01))?,
                    transformer: Transformer::new(&ecfg, ev.pp("transformer"))?,
                    proj: Conv1D::new(*width, w, 0.02, vb.pp("prime_state_proj"))?,
                    ln: Ln::new(w, vb.pp("prime_state_ln"))?,
                    x_out: vb.pp("prime_x_out").get_with_hints(
                        (*n_vocab, w),
                        "weight",
                        randn(0.02),
                    )?,
                    n_vocab: *n_vocab,
                })
            }
            _ => None,
        };
        Ok(Self {
            cfg: cfg.clone(),
            x_emb,
            pos_emb,
            x_out,
            start_token,
            transformer,
            labels,
            conditioner,
            encoder,
        })
    }

    pub fn device(&self) -> &Device {
        self.x_emb.device()
    }

    /// Transformer sequence length (music n_ctx + merged lyric tokens).
    pub fn seq_len(&self) -> usize {
        self.cfg.seq_len()
    }

    /// Output classes (music bins + merged lyric vocab).
    pub fn vocab(&self) -> usize {
        self.cfg.vocab()
    }

    /// Merged lyric positions before the music (1b: n_tokens), else 0.
    pub fn lyric_prefix_len(&self) -> usize {
        match &self.cfg.lyrics {
            Some(LyricsConfig::Merged { n_tokens, .. }) => *n_tokens,
            _ => 0,
        }
    }

    /// Offset of music ids in the raw vocabulary (1b: 79), else 0.
    pub fn music_shift(&self) -> usize {
        match &self.cfg.lyrics {
            Some(LyricsConfig::Merged { n_vocab, .. }) => *n_vocab,
            _ => 0,
        }
    }

    /// Lyric tokens carried in `y` (after the label columns).
    pub fn n_lyric_tokens(&self) -> usize {
        self.cfg.lyrics.as_ref().map_or(0, |l| l.n_tokens())
    }

    /// Columns of `y`: 4 + genre slots + lyric tokens.
    pub fn y_dim(&self) -> usize {
        self.cfg.labels.as_ref().map_or(0, |l| 4 + l.max_genres) + self.n_lyric_tokens()
    }

    /// Level-above tokens one window needs (upsamplers), else 0.
    pub fn z_cond_len(&self) -> usize {
        self.conditioner
            .as_ref()
            .map_or(0, |c| self.cfg.n_ctx / c.upsample_factor())
    }

    /// Build a window's conditioning from its label rows `y` (N, y_dim) and, for upsamplers,
    /// the level-above codes `z_cond` (N, n_ctx / 4).
    pub fn conditioning(
        &self,
        y: Option<&Tensor>,
        z_cond: Option<&Tensor>,
    ) -> Result<Conditioning> {
        let w = self.cfg.width;
        let dev = self.device().clone();
        let n = match (y, z_cond) {
            (Some(y), _) => y.dim(0)?,
            (None, Some(z)) => z.dim(0)?,
            (None, None) => bail!("conditioning needs labels `y` or level-above codes"),
        };
        if let Some(y) = y {
            if y.dims2()?.1 != self.y_dim() {
                bail!(
                    "label vector has {} columns, this prior expects {}",
                    y.dim(1)?,
                    self.y_dim()
                );
            }
        }
        let (start, timing) = match (&self.labels, y) {
            (Some(l), Some(y)) => (l.start_emb(y)?, l.timing_emb(y)?),
            (Some(_), None) => bail!("this prior is conditioned on labels: `y` is required"),
            (None, _) => {
                let st = self.start_token.as_ref().ok_or_else(|| {
                    candle_core::Error::Msg("prior has neither labels nor a start token".into())
                })?;
                (
                    st.to_dtype(DType::F32)?
                        .reshape((1, 1, w))?
                        .repeat((n, 1, 1))?,
                    None,
                )
            }
        };
        let lyric_cols = |y: &Tensor| -> Result<Tensor> {
            let k = self.n_lyric_tokens();
            y.narrow(1, y.dim(1)? - k, k)?.to_dtype(DType::I64)
        };
        let x_cond = if let Some(c) = &self.conditioner {
            let Some(z) = z_cond else {
                bail!("upsampler prior needs the level-above codes (z_cond)");
            };
            if z.dims2()? != (n, self.z_cond_len()) {
                bail!(
                    "z_cond has shape {:?}, expected ({n}, {})",
                    z.dims(),
                    self.z_cond_len()
                );
            }
            check_ids(z, self.cfg.bins, "level-above code")?;
            Some(c.forward(z)?)
        } else {
            timing
        };
        let prefix = self.lyric_prefix_len();
        let (x_cond, lyric_prefix) = if prefix > 0 {
            let Some(y) = y else {
                bail!("lyrics prior needs `y`")
            };
            let lyr = lyric_cols(y)?;
            check_ids(&lyr, self.music_shift(), "lyric token")?;
            let xc = match x_cond {
                Some(xc) => Some(Tensor::cat(
                    &[&Tensor::zeros((n, prefix, w), DType::F32, &dev)?, &xc],
                    1,
                )?),
                None => None,
            };
            (xc, Some(lyr))
        } else {
            (x_cond, None)
        };
        let encoder_kv = match (&self.encoder, y) {
            (Some(e), Some(y)) => Some(e.forward(&lyric_cols(y)?, None)?.encoder_kv),
            _ => None,
        };
        Ok(Conditioning {
            start,
            x_cond,
            encoder_kv,
            lyric_prefix,
        })
    }

    /// Transformer input for positions 0..L of the raw sequence `seq` (N, L).
    pub fn embed(&self, seq: &Tensor, cond: &Conditioning) -> Result<Tensor> {
        let (_, l) = seq.dims2()?;
        if l > self.seq_len() {
            bail!(
                "sequence of {l} tokens is longer than the window ({})",
                self.seq_len()
            );
        }
        check_ids(seq, self.vocab(), "token")?;
        let x = shifted_embed(&self.x_emb, seq, &cond.start)?;
        let x = x.broadcast_add(&self.pos_emb.narrow(0, 0, l)?.to_dtype(DType::F32)?)?;
        match cond.x_cond_range(0, l)? {
            Some(c) => x + c,
            None => Ok(x),
        }
    }

    fn head(&self, h: &Tensor, xc: Option<Tensor>) -> Result<Tensor> {
        let h = match (&self.x_out, xc) {
            (None, Some(c)) => (h + c)?,
            _ => h.clone(),
        };
        linear_no_bias(&h, self.x_out.as_ref().unwrap_or(&self.x_emb))
    }

    /// Teacher-forced pass on a raw sequence (N, L): logits (N, L, vocab). With `record`,
    /// keeps the transformer input (as `layer_outputs` is per layer, the input is returned).
    pub fn forward_seq(
        &self,
        seq: &Tensor,
        cond: &Conditioning,
        record: Option<&mut Record>,
        record_attn: &[usize],
    ) -> Result<(Tensor, Tensor)> {
        self.forward_seq_from(seq, cond, record, record_attn, 0)
    }

    /// [`Prior::forward_seq`] with logits for positions `from..L` only.
    fn forward_seq_from(
        &self,
        seq: &Tensor,
        cond: &Conditioning,
        record: Option<&mut Record>,
        record_attn: &[usize],
        from: usize,
    ) -> Result<(Tensor, Tensor)> {
        let x = self.embed(seq, cond)?;
        let fast = match (&record, record_attn) {
            (None, []) => fast_forward::forward(&self.transformer, &x)?,
            _ => None,
        };
        let h = match fast {
            Some(h) => h,
            None => self
                .transformer
                .forward(&x, cond.encoder_kv.as_ref(), record, record_attn)?,
        };
        let len = seq.dim(1)? - from;
        let h = h.narrow(1, from, len)?;
        Ok((self.head(&h, cond.x_cond_range(from, len)?)?, x))
    }

    /// The raw sequence for music tokens (N, T): lyric prefix ++ (tokens + shift) for merged
    /// models, the tokens otherwise.
    pub fn raw_sequence(&self, tokens: &Tensor, cond: &Conditioning) -> Result<Tensor> {
        let t = tokens.to_dtype(DType::I64)?;
        check_ids(&t, self.cfg.bins, "music token")?;
        match &cond.lyric_prefix {
            Some(p) => {
                let shifted = (t + self.music_shift() as f64)?;
                Tensor::cat(&[p, &shifted], 1)
            }
            None => Ok(t),
        }
    }

    /// Teacher-forced logits of the music tokens (N, T) → (N, T, vocab) (music rows only).
    pub fn forward_cond(&self, tokens: &Tensor, cond: &Conditioning) -> Result<Tensor> {
        self.forward_cond_from(tokens, cond, 0)
    }

    /// [`Prior::forward_cond`] for the music positions `from..T` only (N, T − from, vocab):
    /// a scoring window that counts only its new tokens skips the output head for the rest.
    pub fn forward_cond_from(
        &self,
        tokens: &Tensor,
        cond: &Conditioning,
        from: usize,
    ) -> Result<Tensor> {
        let seq = self.raw_sequence(tokens, cond)?;
        let p = self.lyric_prefix_len();
        Ok(self.forward_seq_from(&seq, cond, None, &[], p + from)?.0)
    }

    /// Teacher-forced logits (N, T, vocab) of music tokens (N, T) with labels `y` and, for
    /// upsamplers, level-above codes.
    pub fn forward(
        &self,
        tokens: &Tensor,
        y: Option<&Tensor>,
        z_cond: Option<&Tensor>,
    ) -> Result<Tensor> {
        let cond = self.conditioning(y, z_cond)?;
        self.forward_cond(tokens, &cond)
    }

    /// Mean negative log-likelihood in bits per token of music `tokens` under `logits`
    /// from [`Prior::forward`] (targets shifted into the raw vocabulary).
    pub fn loss_bits(&self, logits: &Tensor, tokens: &Tensor) -> Result<Tensor> {
        let t = (tokens.to_dtype(DType::I64)? + self.music_shift() as f64)?;
        nll_bits(logits, &t)?.mean_all()
    }

    pub fn new_cache(&self, batch: usize) -> Result<PriorCache> {
        PriorCache::new(&self.transformer, batch, self.device())
    }

    fn chunk_input(
        &self,
        cache: &PriorCache,
        cond: &Conditioning,
        tokens: Option<&Tensor>,
    ) -> Result<Tensor> {
        let t0 = cache.pos;
        let n = cond.batch()?;
        let first = if t0 == 0 {
            cond.start.clone()
        } else {
            let Some(last) = &cache.last else {
                bail!(
                    "the token at position {} is not known yet: call accept after step",
                    t0 - 1
                );
            };
            self.x_emb
                .index_select(&last.to_dtype(DType::U32)?, 0)?
                .to_dtype(DType::F32)?
                .unsqueeze(1)?
        };
        let x = match tokens {
            Some(tk) if tk.dim(1)? > 1 => {
                let c = tk.dim(1)?;
                let prev = tk
                    .narrow(1, 0, c - 1)?
                    .to_dtype(DType::U32)?
                    .flatten_all()?;
                let e = self
                    .x_emb
                    .index_select(&prev, 0)?
                    .to_dtype(DType::F32)?
                    .reshape((n, c - 1, self.cfg.width))?;
                Tensor::cat(&[&first, &e], 1)?
            }
            _ => first,
        };
        let c = x.dim(1)?;
        let x = x.broadcast_add(&self.pos_emb.narrow(0, t0, c)?.to_dtype(DType::F32)?)?;
        match cond.x_cond_range(t0, c)? {
            Some(xc) => x + xc,
            None => Ok(x),
        }
    }

    /// Feed known raw tokens `x[pos..pos+c)` (N, c) through the cache in one pass; returns the
    /// logits (N, c, vocab) that predicted each of them. Split long primes into chunks (see
    /// [`Prior::prefill_chunked`]) to bound memory.
    pub fn prefill(
        &self,
        cache: &mut PriorCache,
        cond: &Conditioning,
        tokens: &Tensor,
    ) -> Result<Tensor> {
        match self.prefill_inner(cache, cond, tokens, true)? {
            Some(l) => Ok(l),
            None => bail!("prefill computed no logits"),
        }
    }

    /// [`Prior::prefill_chunked`] without the logits: only the cache is filled (sampling's
    /// next step computes the logits it needs), which skips the output head over every
    /// prompt position, a few percent of a prefill.
    pub fn fill_cache(
        &self,
        cache: &mut PriorCache,
        cond: &Conditioning,
        tokens: &Tensor,
        chunk: usize,
    ) -> Result<()> {
        self.prefill_chunks(cache, cond, tokens, chunk, false)
            .map(|_| ())
    }

    /// The chunks of a prefill, each with its logits where `logits`; the weights' AMX-packed
    /// copies (kept between chunks) are freed at the end, also on an error.
    fn prefill_chunks(
        &self,
        cache: &mut PriorCache,
        cond: &Conditioning,
        tokens: &Tensor,
        chunk: usize,
        logits: bool,
    ) -> Result<Vec<Tensor>> {
        let c = tokens.dim(1)?;
        let chunk = chunk.max(1);
        let mut out = Vec::with_capacity(c.div_ceil(chunk));
        let mut s = 0;
        let run = (|| -> Result<()> {
            while s < c {
                let len = chunk.min(c - s);
                let part = tokens.narrow(1, s, len)?;
                out.extend(self.prefill_inner(cache, cond, &part, logits)?);
                s += len;
            }
            Ok(())
        })();
        self.transformer.release_packed();
        run.map(|_| out)
    }

    fn prefill_inner(
        &self,
        cache: &mut PriorCache,
        cond: &Conditioning,
        tokens: &Tensor,
        logits: bool,
    ) -> Result<Option<Tensor>> {
        let (n, c) = tokens.dims2()?;
        if n != cache.batch() || c == 0 {
            bail!(
                "prefill of shape {:?} for a cache of batch {}",
                tokens.dims(),
                cache.batch()
            );
        }
        check_ids(tokens, self.vocab(), "token")?;
        if cache.pos + c > self.seq_len() {
            bail!(
                "prefill of {c} tokens at position {} overflows the window ({})",
                cache.pos,
                self.seq_len()
            );
        }
        let t0 = cache.pos;
        let x = self.chunk_input(cache, cond, Some(tokens))?;
        let h = self
            .transformer
            .forward_cached(&x, cache, cond.encoder_kv.as_ref())?;
        cache.last = Some(
            tokens
                .narrow(1, c - 1, 1)?
                .squeeze(1)?
                .to_dtype(DType::I64)?,
        );
        if !logits {
            return Ok(None);
        }
        self.head(&h, cond.x_cond_range(t0, c)?).map(Some)
    }

    /// [`Prior::prefill`] in chunks of `chunk` tokens; returns all logits (N, c, vocab).
    pub fn prefill_chunked(
        &self,
        cache: &mut PriorCache,
        cond: &Conditioning,
        tokens: &Tensor,
        chunk: usize,
    ) -> Result<Tensor> {
        Tensor::cat(&self.prefill_chunks(cache, cond, tokens, chunk, true)?, 1)
    }

    /// Run the next position: logits (N, vocab) predicting token `cache.pos`. Follow with
    /// [`PriorCache::accept`] once the token is chosen.
    pub fn step(&self, cache: &mut PriorCache, cond: &Conditioning) -> Result<Tensor> {
        if cache.pos >= self.seq_len() {
            bail!("the window of {} positions is full", self.seq_len());
        }
        if fast_step::applies(self, cache, cond) {
            if let Some(logits) = fast_step::step(self, cache, cond)? {
                return Ok(logits);
            }
        }
        let t0 = cache.pos;
        let x = self.chunk_input(cache, cond, None)?;
        let h = self
            .transformer
            .forward_cached(&x, cache, cond.encoder_kv.as_ref())?;
        cache.last = None;
        self.head(&h, cond.x_cond_range(t0, 1)?)?.squeeze(1)
    }
}

/// Per-position negative log-likelihood in bits: logits (.., V), targets (..) in 0..V.
pub fn nll_bits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    // f32 for f32/f16/bf16 logits; f64 kept (gradient checks).
    let logits = if logits.dtype() == DType::F64 {
        logits.clone()
    } else {
        logits.to_dtype(DType::F32)?
    };
    if let Some(bits) = crate::ops::fused::nll_bits(&logits, targets)? {
        return Ok(bits);
    }
    let v = logits.dim(D::Minus1)?;
    check_ids(targets, v, "target")?;
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let lse = (logits
        .broadcast_sub(&max)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        + &max)?;
    let lp = logits.broadcast_sub(&lse)?;
    let picked = lp
        .gather(
            &targets.to_dtype(DType::U32)?.unsqueeze(D::Minus1)?,
            D::Minus1,
        )?
        .squeeze(D::Minus1)?;
    picked.neg()? / std::f64::consts::LN_2
}
