//! The 5b_lyrics lyric encoder (`prime_prior`, `prime_state_proj`, `prime_state_ln`,
//! `prime_x_out`): a causal transformer over the window's lyric ids whose projected states feed
//! the music decoder's cross-attention layers.

use super::transformer::{Conv1D, Ln, Record, Transformer};
use super::{check_ids, linear_no_bias, shifted_embed};
use candle_core::{DType, Result, Tensor};

/// The 5b_lyrics lyric encoder (`prime_prior`) and its projections.
#[derive(Debug, Clone)]
pub struct LyricEncoder {
    pub(crate) x_emb: Tensor,
    pub(crate) pos_emb: Tensor,
    pub(crate) start_token: Tensor,
    pub transformer: Transformer,
    pub(crate) proj: Conv1D,
    pub(crate) ln: Ln,
    pub(crate) x_out: Tensor,
    pub n_vocab: usize,
}

/// Outputs of the lyric encoder.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    pub transformer_input: Tensor,
    /// Transformer output (`prime_acts`), (N, n_tokens, W_enc).
    pub acts: Tensor,
    /// `prime_state_ln(prime_state_proj(acts))`, (N, n_tokens, W).
    pub encoder_kv: Tensor,
}

impl LyricEncoder {
    /// Run the encoder (causal, shifted right with its own start token) on lyric ids.
    pub fn forward(&self, lyrics: &Tensor, record: Option<&mut Record>) -> Result<EncoderOutput> {
        let (n, l) = lyrics.dims2()?;
        check_ids(lyrics, self.n_vocab, "lyric token")?;
        let w = self.x_emb.dim(1)?;
        let start = self
            .start_token
            .to_dtype(DType::F32)?
            .reshape((1, 1, w))?
            .repeat((n, 1, 1))?;
        let x = shifted_embed(&self.x_emb, lyrics, &start)?;
        let x = x.broadcast_add(&self.pos_emb.narrow(0, 0, l)?.to_dtype(DType::F32)?)?;
        let acts = self.transformer.forward(&x, None, record, &[])?;
        let encoder_kv = self.ln.forward(&self.proj.forward(&acts)?)?;
        Ok(EncoderOutput {
            transformer_input: x,
            acts,
            encoder_kv,
        })
    }

    /// Next-character logits from `encoder_kv` (`prime_x_out`), (N, n_tokens, n_vocab).
    pub fn lyric_logits(&self, encoder_kv: &Tensor) -> Result<Tensor> {
        linear_no_bias(encoder_kv, &self.x_out)
    }
}
