//! The hierarchical VQ-VAE (`openai/jukebox@08efbbc` `jukebox/vqvae/vqvae.py`), with official state-dict keys:
//! `encoders.{L}.level_blocks.{b}…`, `decoders.{L}.level_blocks.{b}…`, `decoders.{L}.out`,
//! `bottleneck.level_blocks.{L}.k`.
//!
//! Each level has its own encoder and decoder; no level feeds another. Audio is (N, T) f32 in
//! [-1, 1] at 44.1 kHz; codes are (N, T / hop) u32. Long inputs run in overlapping chunks
//! (see [`chunk`]) so memory stays bounded and outputs equal the unchunked pass.

pub mod blocks;
pub mod bottleneck;
pub mod chunk;
pub mod codes;

use crate::config::VqvaeConfig;
use blocks::{Conv1d, DecoderConvBlock, EncoderConvBlock, ResnetSpec};
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use chunk::{run_chunked, ChunkPlan};

pub use codes::{load_codes, save_codes, Codes};

/// Default core chunk for encoding, in samples (about 12 s): bounds the level-0 encoder's
/// activations to ~130 MB per tensor at official size, whatever the song length.
pub const ENCODE_CHUNK_SAMPLES: usize = 1 << 19;
/// Default core chunk for decoding, in output samples.
pub const DECODE_CHUNK_SAMPLES: usize = 1 << 19;

fn resnet_spec(cfg: &VqvaeConfig, level: usize, reverse: bool) -> ResnetSpec {
    ResnetSpec {
        width: cfg.level_width(level),
        depth: cfg.level_depth(level),
        m_conv: cfg.m_conv,
        dilation_growth_rate: cfg.dilation_growth_rate,
        dilation_cycle: cfg.dilation_cycle,
        res_scale: cfg.res_scale,
        reverse_dilation: reverse,
    }
}

/// One level's encoder (official `Encoder(levels = L + 1)`): audio (N, 1, T) → (N, emb, T/hop).
#[derive(Debug, Clone)]
pub struct Encoder {
    pub level_blocks: Vec<EncoderConvBlock>,
    /// Receptive radius in input samples (one side).
    pub radius: usize,
}

impl Encoder {
    pub fn new(cfg: &VqvaeConfig, level: usize, vb: VarBuilder) -> Result<Self> {
        let spec = resnet_spec(cfg, level, false);
        let vb = vb.pp("level_blocks");
        let mut level_blocks = Vec::with_capacity(level + 1);
        let (mut radius, mut jump) = (0usize, 1usize);
        for b in 0..=level {
            let c_in = if b == 0 { 1 } else { cfg.emb_width };
            let (down_t, s) = (cfg.downs_t[b], cfg.strides_t[b]);
            level_blocks.push(EncoderConvBlock::new(
                c_in,
                cfg.emb_width,
                down_t,
                s,
                &spec,
                cfg.antialias,
                vb.pp(b.to_string()),
            )?);
            for _ in 0..down_t {
                if cfg.antialias {
                    radius += jump; // the blur reads one more stride-1 output each side
                }
                // Strided conv k = 2s, pad s/2: reaches at most 2s − 1 − s/2 inputs to one side.
                radius += (2 * s - 1 - s / 2).max(s / 2) * jump;
                jump *= s;
                radius += spec.radius() * jump;
            }
            radius += jump; // output conv k3
        }
        Ok(Self {
            level_blocks,
            radius,
        })
    }
}

impl Encoder {
    /// The same encoder with weights cut from any autograd graph. Inference uses this: with
    /// trainable (`Var`) weights every activation would otherwise stay alive until the output
    /// is dropped (gigabytes at official size).
    pub fn detach(&self) -> Self {
        Self {
            level_blocks: self.level_blocks.iter().map(|b| b.detach()).collect(),
            radius: self.radius,
        }
    }
}

impl Module for Encoder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for b in &self.level_blocks {
            x = b.forward(&x)?;
        }
        Ok(x)
    }
}

/// One level's decoder: latents (N, emb, T/hop) → audio (N, 1, T). Applies the level blocks
/// from `L` down to 0, then `out`.
#[derive(Debug, Clone)]
pub struct Decoder {
    pub level_blocks: Vec<DecoderConvBlock>,
    pub out: Conv1d,
    /// Receptive radius in input tokens (one side).
    pub radius_tokens: usize,
}

impl Decoder {
    pub fn new(cfg: &VqvaeConfig, level: usize, vb: VarBuilder) -> Result<Self> {
        let spec = resnet_spec(cfg, level, cfg.reverse_decoder_dilation);
        let vbl = vb.pp("level_blocks");
        let mut level_blocks = Vec::with_capacity(level + 1);
        for b in 0..=level {
            let (down_t, s) = (cfg.downs_t[b], cfg.strides_t[b]);
            let blk = DecoderConvBlock::new(
                cfg.emb_width,
                cfg.emb_width,
                down_t,
                s,
                &spec,
                "model",
                vbl.pp(b.to_string()),
            )?;
            level_blocks.push(blk);
        }
        let out = Conv1d::new(cfg.emb_width, 1, 3, 1, 1, 1, vb.pp("out"))?;
        // Radius in output samples, then in tokens.
        let hop = cfg.hop_length(level);
        let (mut r, mut jump) = (0usize, hop);
        for b in (0..=level).rev() {
            let s = cfg.strides_t[b];
            r += jump; // proj_in k3
            for _ in 0..cfg.downs_t[b] {
                r += spec.radius() * jump;
                r += 2 * jump; // transposed conv k = 2s reaches ±(2s/s) inputs
                jump /= s.max(1);
            }
        }
        r += 1; // out conv
        Ok(Self {
            level_blocks,
            out,
            radius_tokens: r.div_ceil(hop) + 1,
        })
    }
}

impl Decoder {
    /// See [`Encoder::detach`].
    pub fn detach(&self) -> Self {
        Self {
            level_blocks: self.level_blocks.iter().map(|b| b.detach()).collect(),
            out: self.out.detach(),
            radius_tokens: self.radius_tokens,
        }
    }
}

impl Module for Decoder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for b in self.level_blocks.iter().rev() {
            x = b.forward(&x)?;
        }
        self.out.forward(&x)
    }
}

/// The hierarchical VQ-VAE.
#[derive(Debug, Clone)]
pub struct VqVae {
    cfg: VqvaeConfig,
    encoders: Vec<Encoder>,
    decoders: Vec<Decoder>,
    codebooks: Vec<Tensor>,
}

impl VqVae {
    /// Build from a VarBuilder whose keys are the official state-dict keys.
    pub fn new(cfg: &VqvaeConfig, vb: VarBuilder) -> Result<Self> {
        if let Err(e) = cfg.validate() {
            candle_core::bail!("invalid VQ-VAE config: {e:#}");
        }
        let mut encoders = Vec::with_capacity(cfg.levels);
        let mut decoders = Vec::with_capacity(cfg.levels);
        let mut codebooks = Vec::with_capacity(cfg.levels);
        for l in 0..cfg.levels {
            encoders.push(Encoder::new(cfg, l, vb.pp("encoders").pp(l.to_string()))?);
            decoders.push(Decoder::new(cfg, l, vb.pp("decoders").pp(l.to_string()))?);
            let k = vb
                .pp("bottleneck")
                .pp("level_blocks")
                .pp(l.to_string())
                .get_with_hints(
                    (cfg.l_bins, cfg.emb_width),
                    "k",
                    candle_nn::Init::Randn {
                        mean: 0.0,
                        stdev: 1.0,
                    },
                )?;
            codebooks.push(k);
        }
        Ok(Self {
            cfg: cfg.clone(),
            encoders,
            decoders,
            codebooks,
        })
    }

    pub fn config(&self) -> &VqvaeConfig {
        &self.cfg
    }

    pub fn levels(&self) -> usize {
        self.cfg.levels
    }

    pub fn hop_length(&self, level: usize) -> usize {
        self.cfg.hop_length(level)
    }

    fn check_level(&self, level: usize) -> Result<()> {
        if level >= self.cfg.levels {
            candle_core::bail!(
                "level {level} does not exist: this VQ-VAE has levels 0..{}",
                self.cfg.levels
            );
        }
        Ok(())
    }

    /// Level `level`'s encoder (for training: differentiable, takes (N, 1, T)).
    pub fn encoder(&self, level: usize) -> Result<&Encoder> {
        self.check_level(level)?;
        Ok(&self.encoders[level])
    }

    /// Level `level`'s decoder (for training: differentiable, takes (N, emb, T/hop)).
    pub fn decoder(&self, level: usize) -> Result<&Decoder> {
        self.check_level(level)?;
        Ok(&self.decoders[level])
    }

    /// The codebook `bottleneck.level_blocks.{L}.k`, (l_bins, emb_width).
    pub fn codebook(&self, level: usize) -> Result<&Tensor> {
        self.check_level(level)?;
        Ok(&self.codebooks[level])
    }

    /// Replace a codebook (EMA training updates it outside the graph).
    pub fn set_codebook(&mut self, level: usize, k: Tensor) -> Result<()> {
        self.check_level(level)?;
        if k.dims() != [self.cfg.l_bins, self.cfg.emb_width] {
            candle_core::bail!(
                "codebook for level {level} must be ({}, {}), got {:?}",
                self.cfg.l_bins,
                self.cfg.emb_width,
                k.dims()
            );
        }
        self.codebooks[level] = k;
        Ok(())
    }

    fn check_audio(&self, audio: &Tensor, level: usize) -> Result<usize> {
        self.check_level(level)?;
        let (_, t) = audio.dims2().map_err(|_| {
            candle_core::Error::msg(format_args!(
                "audio must be (N, T), got shape {:?}",
                audio.dims()
            ))
        })?;
        let hop = self.hop_length(level);
        if t == 0 || t % hop != 0 {
            candle_core::bail!(
                "audio length {t} must be a positive multiple of level {level}'s hop {hop}"
            );
        }
        Ok(t)
    }

    fn encode_plan(&self, level: usize, chunk_samples: usize) -> ChunkPlan {
        let hop = self.hop_length(level);
        ChunkPlan {
            chunk: chunk_samples.max(hop),
            margin: self.encoders[level].radius,
            align: hop,
            num: 1,
            den: hop,
        }
    }

    /// Encoder output (N, emb, T/hop) for audio (N, T), chunked, without gradient (training
    /// calls `encoder(level)?.forward` instead).
    pub fn encode_latent(&self, audio: &Tensor, level: usize) -> Result<Tensor> {
        self.encode_latent_chunked(audio, level, ENCODE_CHUNK_SAMPLES)
    }

    pub fn encode_latent_chunked(
        &self,
        audio: &Tensor,
        level: usize,
        chunk_samples: usize,
    ) -> Result<Tensor> {
        self.check_audio(audio, level)?;
        let enc = self.encoders[level].detach();
        let audio = audio.detach();
        run_chunked(&audio, self.encode_plan(level, chunk_samples), |x| {
            enc.forward(&x.unsqueeze(1)?.to_dtype(self.codebooks[level].dtype())?)
        })
    }

    /// Codes (N, T/hop) u32 for audio (N, T) at one level.
    pub fn encode(&self, audio: &Tensor, level: usize) -> Result<Tensor> {
        self.encode_chunked(audio, level, ENCODE_CHUNK_SAMPLES)
    }

    /// Like [`encode`](Self::encode) with an explicit core chunk in samples.
    pub fn encode_chunked(
        &self,
        audio: &Tensor,
        level: usize,
        chunk_samples: usize,
    ) -> Result<Tensor> {
        self.check_audio(audio, level)?;
        let enc = self.encoders[level].detach();
        let k = self.codebooks[level].detach();
        let k = &k;
        let audio = audio.detach();
        run_chunked(&audio, self.encode_plan(level, chunk_samples), |x| {
            let z = enc.forward(&x.unsqueeze(1)?.to_dtype(k.dtype())?)?;
            bottleneck::quantise(&z, k)
        })
    }

    /// Codes for every level, official order (0 = bottom).
    pub fn encode_all(&self, audio: &Tensor) -> Result<Vec<Tensor>> {
        (0..self.cfg.levels)
            .map(|l| self.encode(audio, l))
            .collect()
    }

    /// Nearest codes (N, T) and their margins for latents (N, emb, T).
    pub fn quantise(&self, latent: &Tensor, level: usize) -> Result<(Tensor, Tensor)> {
        self.check_level(level)?;
        bottleneck::quantise_with_margin(latent, &self.codebooks[level])
    }

    /// Codebook lookup: codes (N, T) → latents (N, emb, T).
    pub fn dequantise(&self, codes: &Tensor, level: usize) -> Result<Tensor> {
        self.check_level(level)?;
        bottleneck::dequantise(codes, &self.codebooks[level])
    }

    /// Audio (N, T·hop) from one level's codes (N, T).
    pub fn decode(&self, codes: &Tensor, level: usize) -> Result<Tensor> {
        self.decode_chunked(codes, level, DECODE_CHUNK_SAMPLES)
    }

    /// Like [`decode`](Self::decode) with an explicit core chunk in output samples.
    pub fn decode_chunked(
        &self,
        codes: &Tensor,
        level: usize,
        chunk_samples: usize,
    ) -> Result<Tensor> {
        self.check_level(level)?;
        let (_, t) = codes.dims2().map_err(|_| {
            candle_core::Error::msg(format_args!(
                "codes must be (N, T), got shape {:?}",
                codes.dims()
            ))
        })?;
        if t == 0 {
            candle_core::bail!("no codes to decode at level {level}");
        }
        let hop = self.hop_length(level);
        let dec = self.decoders[level].detach();
        let k = self.codebooks[level].detach();
        let k = &k;
        let plan = ChunkPlan {
            chunk: (chunk_samples / hop).max(1),
            margin: dec.radius_tokens,
            align: 1,
            num: hop,
            den: 1,
        };
        run_chunked(codes, plan, |c| {
            let z = bottleneck::dequantise(c, k)?;
            dec.forward(&z)?.squeeze(1)
        })
    }

    /// Like [`decode`](Self::decode), for rows that begin with the same codes (a primed batch:
    /// every row starts with the prompt's). The common prefix is decoded once, and each row only
    /// from two decoder radii before the prefix's end, so a batch of 16 continuations of a long
    /// prompt decodes the prompt once instead of 16 times. Equal to `decode` up to float
    /// rounding, as the chunked pass is: every kept output sees exactly the codes it would.
    pub fn decode_shared_prefix(&self, codes: &Tensor, level: usize) -> Result<Tensor> {
        self.check_level(level)?;
        let (n, t) = codes.dims2()?;
        let r = self.decoders[level].radius_tokens;
        let rows = codes.to_dtype(DType::I64)?.to_vec2::<i64>()?;
        let shared = (0..t)
            .position(|j| rows.iter().any(|row| row[j] != rows[0][j]))
            .unwrap_or(t);
        // Worth it when the rows skip at least twice what the extra prefix decode costs (the
        // level-0 decoders of the bundled and official models reach about a second each way).
        if n < 2 || shared >= t || shared <= 2 * r || n * (shared - 2 * r) < 2 * shared {
            return self.decode(codes, level);
        }
        let hop = self.hop_length(level);
        let cut = shared - r; // outputs before this token come from the prefix alone
        let start = shared - 2 * r; // rows are decoded from here; outputs from `cut` on are exact
        let head = self
            .decode(&codes.narrow(0, 0, 1)?.narrow(1, 0, shared)?, level)?
            .narrow(1, 0, cut * hop)?;
        let tail = self
            .decode(&codes.narrow(1, start, t - start)?, level)?
            .narrow(1, r * hop, (t - cut) * hop)?;
        Tensor::cat(
            &[&head.broadcast_as((n, cut * hop))?.contiguous()?, &tail],
            1,
        )
    }

    /// The dtype the weights were loaded in.
    pub fn dtype(&self) -> DType {
        self.codebooks[0].dtype()
    }
}
