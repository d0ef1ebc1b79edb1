//! Model hyperparameters, in the official code's terms (openai/jukebox `hparams.py`).
//!
//! Levels use official numbering everywhere: 0 = bottom (hop 8), 1 = middle (hop 32),
//! 2 = top (hop 128). The Hugging Face `config.json` numbers priors the other way; it is
//! translated here, at the edge, and nowhere else.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The hierarchical VQ-VAE (`hparams.vqvae`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VqvaeConfig {
    pub sample_rate: u32,
    pub levels: usize,
    /// Stride-2 stages added by each level block (official `downs_t`).
    pub downs_t: Vec<usize>,
    pub strides_t: Vec<usize>,
    /// Codebook vector width (`emb_width`).
    pub emb_width: usize,
    /// Codebook size (`l_bins`).
    pub l_bins: usize,
    /// Resnet channel width before the per-level multiplier.
    pub width: usize,
    /// Residual blocks per resnet before the per-level multiplier.
    pub depth: usize,
    pub m_conv: f64,
    pub dilation_growth_rate: usize,
    pub dilation_cycle: Option<usize>,
    /// Width and depth multipliers per level (`hvqvae_multipliers`).
    pub multipliers: Vec<usize>,
    /// Decoder resnets list their dilations largest-first (`vqvae_reverse_decoder_dilation`).
    pub reverse_decoder_dilation: bool,
    /// Residual scale 1/sqrt(depth) when true (`res_scale`); false in every released model.
    pub res_scale: bool,
    pub commit: f64,
    pub l_mu: f64,
    /// Our own models only: blur ([1, 2, 1] / 4) before every stride-2 downsampling of the
    /// encoders, so that codes change less when the audio moves by part of a hop (anti-aliased
    /// downsampling). False in every released model and absent from their configs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub antialias: bool,
}

impl VqvaeConfig {
    /// The released VQ-VAE (`hparams.vqvae`, `5b/vqvae.pth.tar`).
    pub fn official() -> Self {
        Self {
            sample_rate: 44100,
            levels: 3,
            downs_t: vec![3, 2, 2],
            strides_t: vec![2, 2, 2],
            emb_width: 64,
            l_bins: 2048,
            width: 32,
            depth: 4,
            m_conv: 1.0,
            dilation_growth_rate: 3,
            dilation_cycle: None,
            multipliers: vec![2, 1, 1],
            reverse_decoder_dilation: true,
            res_scale: false,
            commit: 0.02,
            l_mu: 0.99,
            antialias: false,
        }
    }

    /// Samples per token at each level (8, 32, 128 for the official model).
    pub fn hop_lengths(&self) -> Vec<usize> {
        let mut hops = Vec::with_capacity(self.levels);
        let mut acc = 1usize;
        for l in 0..self.levels {
            // Saturating: an unvalidated config must not panic here (fuzzing found it).
            let s = self.strides_t.get(l).copied().unwrap_or(1);
            let d = self.downs_t.get(l).copied().unwrap_or(0);
            acc = acc.saturating_mul(s.saturating_pow(d.min(64) as u32));
            hops.push(acc);
        }
        hops
    }

    pub fn hop_length(&self, level: usize) -> usize {
        self.hop_lengths()[level]
    }

    pub fn level_width(&self, level: usize) -> usize {
        self.width * self.multipliers[level]
    }

    pub fn level_depth(&self, level: usize) -> usize {
        self.depth * self.multipliers[level]
    }

    pub fn validate(&self) -> Result<()> {
        if self.levels == 0 || self.levels > 3 {
            bail!("vqvae.levels must be 1..=3, got {}", self.levels);
        }
        for (name, v) in [
            ("downs_t", &self.downs_t),
            ("strides_t", &self.strides_t),
            ("multipliers", &self.multipliers),
        ] {
            if v.len() != self.levels {
                bail!(
                    "vqvae.{name} has {} entries, expected {}",
                    v.len(),
                    self.levels
                );
            }
        }
        if self.emb_width == 0 || self.l_bins == 0 || self.width == 0 || self.depth == 0 {
            bail!("vqvae emb_width, l_bins, width and depth must be positive");
        }
        // Zero strides give a hop of 0 (division by zero later); huge ones overflow.
        let hop = self.hop_lengths().last().copied().unwrap_or(1);
        if self.strides_t.contains(&0) || !(1..=1 << 20).contains(&hop) {
            bail!(
                "vqvae strides_t {:?} and downs_t {:?} give a top hop of {hop} samples; expected 1..=1048576",
                self.strides_t,
                self.downs_t
            );
        }
        Ok(())
    }
}

/// The upsampler conditioner (official `Conditioner` with a `DecoderConvBock`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionerConfig {
    /// Resnet width (1024 in the released upsamplers).
    pub width: usize,
    /// Residual blocks per resnet (16).
    pub depth: usize,
    pub m_conv: f64,
    pub dilation_growth_rate: usize,
    /// Dilations are growth^(d mod cycle) (cycle 8 in the released upsamplers).
    pub dilation_cycle: Option<usize>,
    /// Residual scale 1/sqrt(depth) when true (`cond_res_scale`): true for level 1 only.
    pub res_scale: bool,
    /// Stride-2 stages, = vqvae downs_t[level + 1].
    pub down_t: usize,
    pub stride_t: usize,
}

/// How lyrics enter a top-level prior.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LyricsConfig {
    /// 1b_lyrics: lyric ids and music codes in one sequence (`single_enc_dec`).
    Merged { n_tokens: usize, n_vocab: usize },
    /// 5b_lyrics: a separate causal lyric encoder feeding cross-attention layers.
    Encoder {
        n_tokens: usize,
        n_vocab: usize,
        width: usize,
        depth: usize,
        heads: usize,
        blocks: usize,
        attn_order: usize,
    },
}

impl LyricsConfig {
    pub fn n_tokens(&self) -> usize {
        match self {
            Self::Merged { n_tokens, .. } | Self::Encoder { n_tokens, .. } => *n_tokens,
        }
    }
    pub fn n_vocab(&self) -> usize {
        match self {
            Self::Merged { n_vocab, .. } | Self::Encoder { n_vocab, .. } => *n_vocab,
        }
    }
}

/// Artist/genre/timing conditioning (official `LabelConditioner`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelConfig {
    /// Rows of the genre table (120 for v2, 604 for v3).
    pub n_genres: usize,
    /// Rows of the artist table (4111 for v2, 7898 for v3).
    pub n_artists: usize,
    /// Genre slots in the `y` vector (5 for v2, 1 for v3).
    pub max_genres: usize,
    /// Timing RangeEmbeddings: top-level priors only.
    pub include_time_signal: bool,
    pub t_bins: usize,
    pub min_duration: f64,
    pub max_duration: f64,
}

/// One prior (official `SimplePrior` + `ConditionalAutoregressive2D`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorConfig {
    /// Official level: 0 bottom, 1 middle, 2 top.
    pub level: usize,
    /// Music tokens per window.
    pub n_ctx: usize,
    pub width: usize,
    pub depth: usize,
    pub heads: usize,
    /// Blocks per window for factorised attention (None only with attn_order 0).
    pub blocks: Option<usize>,
    /// Official `attn_order`: 0 dense, 2 [block, transpose, prev], 10 5b_lyrics, 12 1b_lyrics.
    pub attn_order: usize,
    /// Music vocabulary (codebook size).
    pub bins: usize,
    pub m_attn: f64,
    pub m_mlp: f64,
    /// true: untied `x_out`, no conditioning re-add (5b); false: tied, re-added (upsamplers, 1b).
    pub merged_decoder: bool,
    pub labels: Option<LabelConfig>,
    pub cond: Option<ConditionerConfig>,
    pub lyrics: Option<LyricsConfig>,
    /// Samples per token at this level.
    pub raw_to_tokens: usize,
    /// (layer, head) used for lyric alignment.
    pub alignment: Option<(usize, usize)>,
}

impl PriorConfig {
    /// n_state = width * m_attn.
    pub fn n_state(&self) -> usize {
        (self.width as f64 * self.m_attn) as usize
    }

    /// Audio samples covered by one window.
    pub fn sample_length(&self) -> usize {
        self.n_ctx * self.raw_to_tokens
    }

    /// Length of the transformer sequence (music + merged lyric tokens).
    pub fn seq_len(&self) -> usize {
        match &self.lyrics {
            Some(LyricsConfig::Merged { n_tokens, .. }) => self.n_ctx + n_tokens,
            _ => self.n_ctx,
        }
    }

    /// Vocabulary of the output head (music + merged lyric vocab).
    pub fn vocab(&self) -> usize {
        match &self.lyrics {
            Some(LyricsConfig::Merged { n_vocab, .. }) => self.bins + n_vocab,
            _ => self.bins,
        }
    }

    pub fn is_upsampler(&self) -> bool {
        self.cond.is_some()
    }

    pub fn validate(&self) -> Result<()> {
        if self.width == 0 || self.depth == 0 || self.heads == 0 || self.n_ctx == 0 {
            bail!(
                "prior level {}: width, depth, heads and n_ctx must be positive",
                self.level
            );
        }
        if !self.n_state().is_multiple_of(self.heads) {
            bail!(
                "prior level {}: n_state {} is not divisible by heads {}",
                self.level,
                self.n_state(),
                self.heads
            );
        }
        if let Some(b) = self.blocks {
            if b == 0 || !self.seq_len().is_multiple_of(b) {
                bail!(
                    "prior level {}: sequence length {} is not divisible by blocks {b}",
                    self.level,
                    self.seq_len()
                );
            }
        } else if self.attn_order != 0 {
            bail!(
                "prior level {}: attn_order {} needs `blocks`",
                self.level,
                self.attn_order
            );
        }
        Ok(())
    }

    fn v2_labels(width_timing: bool, min_duration: f64) -> LabelConfig {
        LabelConfig {
            n_genres: 120,
            n_artists: 4111,
            max_genres: 5,
            include_time_signal: width_timing,
            t_bins: 128,
            min_duration,
            max_duration: 600.0,
        }
    }

    /// Official upsampler at level 0 or 1 (`prior_level_0` / `prior_level_1` in `hparams.py`).
    pub fn official_upsampler(level: usize) -> Self {
        Self {
            level,
            n_ctx: 8192,
            width: 1920,
            depth: 72,
            heads: 1,
            blocks: Some(128),
            attn_order: 2,
            bins: 2048,
            m_attn: 0.25,
            m_mlp: 1.0,
            merged_decoder: false,
            labels: Some(Self::v2_labels(false, 0.0)),
            cond: Some(ConditionerConfig {
                width: 1024,
                depth: 16,
                m_conv: 1.0,
                dilation_growth_rate: 3,
                dilation_cycle: Some(8),
                res_scale: level == 1,
                down_t: 2,
                stride_t: 2,
            }),
            lyrics: None,
            raw_to_tokens: if level == 0 { 8 } else { 32 },
            alignment: None,
        }
    }

    /// Official 5b top prior (`prior_5b`).
    pub fn official_5b() -> Self {
        Self {
            level: 2,
            n_ctx: 8192,
            width: 4800,
            depth: 72,
            heads: 8,
            blocks: Some(128),
            attn_order: 2,
            bins: 2048,
            m_attn: 0.25,
            m_mlp: 1.0,
            merged_decoder: true,
            labels: Some(Self::v2_labels(true, 60.0)),
            cond: None,
            lyrics: None,
            raw_to_tokens: 128,
            alignment: None,
        }
    }

    /// Official 5b_lyrics top prior (`prior_5b_lyrics`).
    pub fn official_5b_lyrics() -> Self {
        Self {
            depth: 79,
            attn_order: 10,
            labels: Some(Self::v2_labels(true, 23.8)),
            lyrics: Some(LyricsConfig::Encoder {
                n_tokens: 512,
                n_vocab: 80,
                width: 1280,
                depth: 18,
                heads: 4,
                blocks: 32,
                attn_order: 2,
            }),
            alignment: Some((68, 2)),
            ..Self::official_5b()
        }
    }

    /// Official 1b_lyrics top prior (`prior_1b_lyrics`).
    pub fn official_1b_lyrics() -> Self {
        Self {
            level: 2,
            n_ctx: 6144,
            width: 2048,
            depth: 72,
            heads: 2,
            blocks: Some(64),
            attn_order: 12,
            bins: 2048,
            m_attn: 0.25,
            m_mlp: 1.0,
            merged_decoder: false,
            labels: Some(LabelConfig {
                n_genres: 604,
                n_artists: 7898,
                max_genres: 1,
                include_time_signal: true,
                t_bins: 64,
                min_duration: 17.84,
                max_duration: 600.0,
            }),
            cond: None,
            lyrics: Some(LyricsConfig::Merged {
                n_tokens: 384,
                n_vocab: 79,
            }),
            raw_to_tokens: 128,
            alignment: Some((63, 0)),
        }
    }
}

/// Which artist/genre id lists a prior uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelSet {
    V2,
    V3,
    /// The lists beside the model in `labels/` (models trained here).
    Custom,
}

/// A whole Jukebox model: VQ-VAE plus one prior per level, official level order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JukeboxConfig {
    pub vqvae: VqvaeConfig,
    /// `priors[level]`, official numbering (0 = bottom).
    pub priors: Vec<PriorConfig>,
    /// Window hop as a fraction of n_ctx, official order (level 0, 1, 2).
    pub hop_fraction: Vec<f64>,
}

/// Names accepted by `JukeboxConfig::preset`.
pub const PRESETS: &[&str] = &["5b", "5b_lyrics", "1b_lyrics"];

impl JukeboxConfig {
    /// An official model: the shared VQ-VAE, both upsamplers and the named top prior.
    pub fn preset(name: &str) -> Result<Self> {
        let top = match name {
            "5b" => PriorConfig::official_5b(),
            "5b_lyrics" => PriorConfig::official_5b_lyrics(),
            "1b_lyrics" => PriorConfig::official_1b_lyrics(),
            _ => bail!(
                "unknown preset `{name}`; expected one of {}",
                PRESETS.join(", ")
            ),
        };
        Ok(Self {
            vqvae: VqvaeConfig::official(),
            priors: vec![
                PriorConfig::official_upsampler(0),
                PriorConfig::official_upsampler(1),
                top,
            ],
            hop_fraction: vec![0.5, 0.5, 0.125],
        })
    }

    pub fn top_level(&self) -> usize {
        self.priors.len() - 1
    }

    pub fn validate(&self) -> Result<()> {
        self.vqvae.validate()?;
        if self.priors.len() != self.vqvae.levels {
            bail!(
                "config has {} priors for {} VQ-VAE levels",
                self.priors.len(),
                self.vqvae.levels
            );
        }
        let hops = self.vqvae.hop_lengths();
        for (l, p) in self.priors.iter().enumerate() {
            if p.level != l {
                bail!("prior at index {l} says level {}", p.level);
            }
            if p.raw_to_tokens != hops[l] {
                bail!(
                    "prior level {l}: raw_to_tokens {} differs from the VQ-VAE hop {}",
                    p.raw_to_tokens,
                    hops[l]
                );
            }
            if p.bins != self.vqvae.l_bins {
                bail!(
                    "prior level {l}: bins {} differs from l_bins {}",
                    p.bins,
                    self.vqvae.l_bins
                );
            }
            p.validate()?;
        }
        if self.hop_fraction.len() != self.priors.len() {
            bail!("hop_fraction needs {} entries", self.priors.len());
        }
        Ok(())
    }

    /// Parse a Hugging Face `config.json` (`model_type: jukebox`).
    pub fn from_hf_json(text: &str) -> Result<Self> {
        let v: Value = serde_json::from_str(text).context("config.json is not valid JSON")?;
        Self::from_hf_value(&v)
    }

    pub fn from_hf_value(v: &Value) -> Result<Self> {
        let mt = v.get("model_type").and_then(Value::as_str).unwrap_or("");
        if mt != "jukebox" {
            bail!("config.json has model_type `{mt}`, expected `jukebox`");
        }
        let vq = v
            .get("vqvae_config")
            .context("config.json has no vqvae_config")?;
        let sample_rate = get_u(v, "sampling_rate").unwrap_or(44100) as u32;
        let vqvae = VqvaeConfig {
            sample_rate,
            levels: req_u(vq, "levels")?,
            downs_t: req_vec(vq, "res_downs_t")?,
            strides_t: req_vec(vq, "res_strides_t")?,
            emb_width: req_u(vq, "embed_dim")?,
            l_bins: req_u(vq, "nb_discrete_codes")?,
            width: req_u(vq, "res_conv_width")?,
            depth: req_u(vq, "res_conv_depth")?,
            m_conv: get_f(vq, "res_convolution_multiplier").unwrap_or(1.0),
            dilation_growth_rate: get_u(vq, "res_dilation_growth_rate").unwrap_or(3),
            dilation_cycle: get_u(vq, "res_dilation_cycle"),
            multipliers: req_vec(vq, "multipliers")?,
            reverse_decoder_dilation: true,
            res_scale: vq
                .get("conv_res_scale")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            commit: get_f(vq, "commit").unwrap_or(0.02),
            l_mu: get_f(vq, "lmu").unwrap_or(0.99),
            antialias: vq
                .get("antialias")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        };
        vqvae.validate().context("config.json vqvae_config")?;
        let hops = vqvae.hop_lengths();
        let list = v
            .get("prior_config_list")
            .and_then(Value::as_array)
            .context("config.json has no prior_config_list")?;
        let n = list.len();
        let mut priors: Vec<Option<PriorConfig>> = vec![None; n];
        for (hf_idx, p) in list.iter().enumerate() {
            let hf_level = get_u(p, "level").unwrap_or(hf_idx);
            if hf_level >= n {
                bail!("prior_config_list[{hf_idx}] has level {hf_level} >= {n}");
            }
            let level = n - 1 - hf_level;
            priors[level] = Some(prior_from_hf(p, level, &vqvae, &hops)?);
        }
        let priors: Vec<PriorConfig> = priors
            .into_iter()
            .enumerate()
            .map(|(l, p)| p.with_context(|| format!("no prior for level {l}")))
            .collect::<Result<_>>()?;
        let mut hop_fraction: Vec<f64> = match v.get("hop_fraction").and_then(Value::as_array) {
            Some(a) => a.iter().filter_map(Value::as_f64).collect(),
            None => vec![0.125, 0.5, 0.5],
        };
        hop_fraction.reverse(); // HF lists the top level first
        let cfg = Self {
            vqvae,
            priors,
            hop_fraction,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Write the Hugging Face layout `config.json` (only the fields this crate reads, plus
    /// `model_type`), the inverse of [`Self::from_hf_value`].
    pub fn to_hf_value(&self) -> Value {
        let vq = &self.vqvae;
        let n = self.priors.len();
        let mut list = Vec::with_capacity(n);
        for hf_level in 0..n {
            let p = &self.priors[n - 1 - hf_level];
            let lab = p.labels.clone();
            let mut o = json!({
                "model_type": "jukebox_prior",
                "level": hf_level,
                "n_ctx": p.n_ctx,
                "hidden_size": p.width,
                "num_layers": p.depth,
                "n_heads": p.heads,
                "blocks": p.blocks,
                "attention_pattern": attn_order_to_hf(p.attn_order),
                "attn_order": p.attn_order,
                "music_vocab_size": p.bins,
                "attention_multiplier": p.m_attn,
                "mlp_multiplier": p.m_mlp,
                "merged_decoder": p.merged_decoder,
                "metadata_conditioning": lab.is_some(),
                "nb_relevant_lyric_tokens": p.lyrics.as_ref().map(|l| l.n_tokens()).unwrap_or(0),
                // HF counts the merged (v3) lyric vocab with one extra entry.
                "lyric_vocab_size": match &p.lyrics {
                    Some(LyricsConfig::Merged { n_vocab, .. }) => n_vocab + 1,
                    Some(l) => l.n_vocab(),
                    None => 80,
                },
                "is_encoder_decoder": matches!(p.lyrics, Some(LyricsConfig::Encoder { .. })),
            });
            let m = o.as_object_mut().expect("object");
            if let Some(l) = &lab {
                m.insert("metadata_dims".into(), json!([l.n_genres, l.n_artists]));
                m.insert("max_nb_genres".into(), json!(l.max_genres));
                m.insert("timing_dims".into(), json!(l.t_bins));
                m.insert("min_duration".into(), json!(l.min_duration));
                m.insert("max_duration".into(), json!(l.max_duration));
                m.insert("include_time_signal".into(), json!(l.include_time_signal));
            }
            if let Some(c) = &p.cond {
                m.insert("res_conv_width".into(), json!(c.width));
                m.insert("res_conv_depth".into(), json!(c.depth));
                m.insert("res_convolution_multiplier".into(), json!(c.m_conv));
                m.insert(
                    "res_dilation_growth_rate".into(),
                    json!(c.dilation_growth_rate),
                );
                m.insert("res_dilation_cycle".into(), json!(c.dilation_cycle));
                m.insert("conv_res_scale".into(), json!(c.res_scale));
            }
            if let Some(LyricsConfig::Encoder {
                width,
                depth,
                heads,
                blocks,
                attn_order,
                n_tokens,
                n_vocab,
            }) = &p.lyrics
            {
                m.insert(
                    "encoder_config".into(),
                    json!({"hidden_size": width, "num_layers": depth, "n_heads": heads,
                           "blocks": blocks, "attn_order": attn_order,
                           "n_ctx": n_tokens, "music_vocab_size": n_vocab}),
                );
            }
            if let Some((l, h)) = p.alignment {
                m.insert("alignment_layer".into(), json!(l));
                m.insert("alignment_head".into(), json!(h));
            }
            m.insert("res_downs_t".into(), json!(vq.downs_t));
            m.insert("res_strides_t".into(), json!(vq.strides_t));
            list.push(o);
        }
        let mut hf_hop = self.hop_fraction.clone();
        hf_hop.reverse();
        let mut out = json!({
            "model_type": "jukebox",
            "sampling_rate": vq.sample_rate,
            "nb_priors": n,
            "hop_fraction": hf_hop,
            "vqvae_config": {
                "model_type": "jukebox_vqvae",
                "levels": vq.levels,
                "res_downs_t": vq.downs_t,
                "res_strides_t": vq.strides_t,
                "embed_dim": vq.emb_width,
                "nb_discrete_codes": vq.l_bins,
                "res_conv_width": vq.width,
                "res_conv_depth": vq.depth,
                "res_convolution_multiplier": vq.m_conv,
                "res_dilation_growth_rate": vq.dilation_growth_rate,
                "res_dilation_cycle": vq.dilation_cycle,
                "multipliers": vq.multipliers,
                "conv_res_scale": vq.res_scale,
                "commit": vq.commit,
                "lmu": vq.l_mu,
            },
            "prior_config_list": list,
        });
        if vq.antialias {
            out["vqvae_config"]["antialias"] = json!(true);
        }
        out
    }
}

/// HF `attention_pattern` name for an official `attn_order`.
pub fn attn_order_to_hf(order: usize) -> &'static str {
    match order {
        0 => "full_dense_attention",
        2 => "raw_column_previous_row_attention",
        10 => "large_separated_enc_dec_w_lyrics",
        12 => "enc_dec_with_lyrics",
        _ => "unknown",
    }
}

/// Official `attn_order` for an HF `attention_pattern` name.
pub fn attn_order_from_hf(name: &str) -> Result<usize> {
    Ok(match name {
        "full_dense_attention" => 0,
        "raw_column_previous_row_attention" => 2,
        "large_separated_enc_dec_w_lyrics" => 10,
        "enc_dec_with_lyrics" => 12,
        _ => bail!("unsupported attention_pattern `{name}`"),
    })
}

fn prior_from_hf(p: &Value, level: usize, vq: &VqvaeConfig, hops: &[usize]) -> Result<PriorConfig> {
    // More priors than VQ-VAE levels would index past downs_t/strides_t (found by fuzzing).
    if level >= vq.levels
        || vq.downs_t.len() < vq.levels
        || vq.strides_t.len() < vq.levels
        || hops.len() < vq.levels
    {
        bail!(
            "prior level {level} has no VQ-VAE level: the VQ-VAE has {} levels (downs_t {:?}, strides_t {:?})",
            vq.levels,
            vq.downs_t,
            vq.strides_t
        );
    }
    let top = level + 1 == vq.levels;
    let attn_order = match p.get("attn_order").and_then(Value::as_u64) {
        Some(o) => o as usize,
        None => attn_order_from_hf(
            p.get("attention_pattern")
                .and_then(Value::as_str)
                .unwrap_or("raw_column_previous_row_attention"),
        )?,
    };
    let labels = if p
        .get("metadata_conditioning")
        .and_then(Value::as_bool)
        .unwrap_or(true)
    {
        let dims = req_vec(p, "metadata_dims")?;
        if dims.len() != 2 {
            bail!("metadata_dims must be [n_genres, n_artists]");
        }
        Some(LabelConfig {
            n_genres: dims[0],
            n_artists: dims[1],
            max_genres: get_u(p, "max_nb_genres").unwrap_or(5),
            include_time_signal: p
                .get("include_time_signal")
                .and_then(Value::as_bool)
                .unwrap_or(top),
            t_bins: get_u(p, "timing_dims").unwrap_or(128),
            min_duration: get_f(p, "min_duration").unwrap_or(0.0),
            max_duration: get_f(p, "max_duration").unwrap_or(600.0),
        })
    } else {
        None
    };
    let cond = if top {
        None
    } else {
        Some(ConditionerConfig {
            width: req_u(p, "res_conv_width")?,
            depth: req_u(p, "res_conv_depth")?,
            m_conv: get_f(p, "res_convolution_multiplier").unwrap_or(1.0),
            dilation_growth_rate: get_u(p, "res_dilation_growth_rate").unwrap_or(3),
            dilation_cycle: get_u(p, "res_dilation_cycle"),
            res_scale: p
                .get("conv_res_scale")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            down_t: vq.downs_t[level + 1],
            stride_t: vq.strides_t[level + 1],
        })
    };
    let n_tokens = get_u(p, "nb_relevant_lyric_tokens").unwrap_or(0);
    let lyrics = if n_tokens == 0 {
        None
    } else if p
        .get("is_encoder_decoder")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        let e = p
            .get("encoder_config")
            .context("encoder-decoder prior without encoder_config")?;
        Some(LyricsConfig::Encoder {
            n_tokens,
            n_vocab: get_u(p, "lyric_vocab_size").unwrap_or(80),
            width: req_u(e, "hidden_size")?,
            depth: req_u(e, "num_layers")?,
            heads: req_u(e, "n_heads")?,
            blocks: req_u(e, "blocks")?,
            attn_order: match e.get("attn_order").and_then(Value::as_u64) {
                Some(o) => o as usize,
                None => attn_order_from_hf(
                    e.get("attention_pattern")
                        .and_then(Value::as_str)
                        .unwrap_or("raw_column_previous_row_attention"),
                )?,
            },
        })
    } else {
        Some(LyricsConfig::Merged {
            n_tokens,
            n_vocab: get_u(p, "lyric_vocab_size").unwrap_or(80) - 1,
        })
    };
    let alignment = match (get_u(p, "alignment_layer"), get_u(p, "alignment_head")) {
        (Some(l), Some(h)) if lyrics.is_some() => Some((l, h)),
        _ => None,
    };
    Ok(PriorConfig {
        level,
        n_ctx: req_u(p, "n_ctx")?,
        width: req_u(p, "hidden_size")?,
        depth: req_u(p, "num_layers")?,
        heads: req_u(p, "n_heads")?,
        blocks: get_u(p, "blocks"),
        attn_order,
        bins: get_u(p, "music_vocab_size").unwrap_or(vq.l_bins),
        m_attn: get_f(p, "attention_multiplier").unwrap_or(0.25),
        m_mlp: get_f(p, "mlp_multiplier").unwrap_or(1.0),
        merged_decoder: p
            .get("merged_decoder")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        labels,
        cond,
        lyrics,
        raw_to_tokens: hops[level],
        alignment,
    })
}

fn get_u(v: &Value, k: &str) -> Option<usize> {
    v.get(k).and_then(Value::as_u64).map(|x| x as usize)
}
fn get_f(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}
fn req_u(v: &Value, k: &str) -> Result<usize> {
    get_u(v, k).with_context(|| format!("config.json: missing or non-integer `{k}`"))
}
fn req_vec(v: &Value, k: &str) -> Result<Vec<usize>> {
    v.get(k)
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(|x| x.as_u64().map(|u| u as usize)).collect())
        .with_context(|| format!("config.json: missing or invalid list `{k}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_hops() {
        assert_eq!(VqvaeConfig::official().hop_lengths(), vec![8, 32, 128]);
    }

    #[test]
    fn presets_validate() {
        for p in PRESETS {
            JukeboxConfig::preset(p).unwrap().validate().unwrap();
        }
        assert!(JukeboxConfig::preset("7b").is_err());
    }

    #[test]
    fn hf_roundtrip() {
        let cfg = JukeboxConfig::preset("1b_lyrics").unwrap();
        let back = JukeboxConfig::from_hf_value(&cfg.to_hf_value()).unwrap();
        assert_eq!(cfg, back);
        // The encoders' blur round-trips, and a released config never names it.
        assert!(cfg.to_hf_value()["vqvae_config"].get("antialias").is_none());
        let mut aa = cfg.clone();
        aa.vqvae.antialias = true;
        let v = aa.to_hf_value();
        assert_eq!(v["vqvae_config"]["antialias"], serde_json::json!(true));
        assert_eq!(JukeboxConfig::from_hf_value(&v).unwrap(), aa);
    }
}

#[cfg(test)]
mod fixture_tests {
    use super::*;

    #[test]
    fn parses_reference_fixture_config() {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/reference/fixtures/model/config.json"
        );
        let cfg = JukeboxConfig::from_hf_json(&std::fs::read_to_string(p).unwrap()).unwrap();
        assert_eq!(cfg.vqvae.hop_lengths(), vec![8, 32, 128]);
        assert_eq!(cfg.vqvae.l_bins, 64);
        assert_eq!(cfg.priors[2].width, 64);
        assert_eq!(cfg.priors[2].depth, 4);
        assert!(cfg.priors[2].merged_decoder);
        assert!(cfg.priors[2].labels.as_ref().unwrap().include_time_signal);
        assert_eq!(cfg.priors[1].width, 48);
        assert!(cfg.priors[1].cond.as_ref().unwrap().res_scale);
        assert!(!cfg.priors[0].cond.as_ref().unwrap().res_scale);
        assert_eq!(cfg.hop_fraction, vec![0.5, 0.5, 0.125]);
        assert_eq!(
            JukeboxConfig::from_hf_value(&cfg.to_hf_value()).unwrap(),
            cfg
        );
    }
}
