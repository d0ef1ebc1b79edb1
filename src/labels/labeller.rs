//! The `y` rows (official `Labeller` + `SimplePrior.get_y`).
//!
//! `y = [total_length, offset, sample_length, artist, genre × max_genres (−1 empty), lyric × n_tokens]`.
//! Each prior builds its own rows from the same human-readable [`Meta`], because the top prior and
//! the upsamplers may use different id lists.

use super::ids::IdSet;
use super::lyrics::{relevant_lyric_tokens, Arith, LyricVocab};
use crate::config::PriorConfig;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::sync::Arc;

/// One item's human-readable labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    pub artist: String,
    /// Genre strings; v2 splits each into words, and all ids share the `max_genres` slots.
    pub genres: Vec<String>,
    pub lyrics: Option<String>,
}

impl Meta {
    pub fn new(artist: impl Into<String>, genre: impl Into<String>, lyrics: Option<String>) -> Self {
        Self {
            artist: artist.into(),
            genres: vec![genre.into()],
            lyrics,
        }
    }
}

/// One item's labels before windowing (official `get_label`): the base `y` row and the full
/// lyric token list that every window's lyric slice is cut from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseLabel {
    pub y: Vec<i64>,
    pub full_tokens: Vec<i64>,
    /// The cleaned lyrics the tokens came from.
    pub lyrics: String,
    /// Official-lookup warnings (unknown names mapped to id 0).
    pub warnings: Vec<String>,
}

impl BaseLabel {
    pub fn total_length(&self) -> i64 {
        self.y[0]
    }
    pub fn offset(&self) -> i64 {
        self.y[1]
    }
    pub fn artist_id(&self) -> i64 {
        self.y[3]
    }
}

/// One window's `y` row (official `get_y`), with each lyric slot's index into the full token
/// list (−1 for padding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowLabel {
    pub y: Vec<i64>,
    pub lyric_indices: Vec<i64>,
}

/// Builds the `y` rows for one prior.
#[derive(Debug, Clone)]
pub struct Labeller {
    pub ids: Arc<IdSet>,
    pub max_genres: usize,
    pub n_tokens: usize,
    pub vocab: Option<LyricVocab>,
    /// Samples per window: `n_ctx · raw_to_tokens`.
    pub sample_length: i64,
    pub raw_to_tokens: i64,
    /// Unknown names are errors (CLI) rather than id 0 with a warning (official).
    pub strict: bool,
    /// (min, max) song length in samples when the prior has timing labels.
    pub length_range: Option<(f64, f64)>,
    pub sample_rate: f64,
    /// Do not print official-lookup warnings (they are still kept in [`BaseLabel::warnings`]).
    pub quiet: bool,
}

impl Labeller {
    /// A labeller for `prior` with the given id lists (official lookup; see [`Self::strict`]).
    pub fn new(ids: Arc<IdSet>, prior: &PriorConfig, sample_rate: f64) -> Result<Self> {
        let (max_genres, length_range) = match &prior.labels {
            Some(l) => (
                l.max_genres,
                l.include_time_signal
                    .then_some((l.min_duration * sample_rate, l.max_duration * sample_rate)),
            ),
            None => (0, None),
        };
        let (n_tokens, vocab) = match &prior.lyrics {
            Some(lc) => (lc.n_tokens(), Some(LyricVocab::from_n_vocab(lc.n_vocab())?)),
            None => (0, None),
        };
        Ok(Self {
            ids,
            max_genres,
            n_tokens,
            vocab,
            sample_length: (prior.n_ctx * prior.raw_to_tokens) as i64,
            raw_to_tokens: prior.raw_to_tokens as i64,
            strict: false,
            length_range,
            sample_rate,
            quiet: false,
        })
    }

    /// The labeller for one prior of a model directory (lists per [`IdSet::for_model`]).
    pub fn for_model(model_dir: &Path, prior: &PriorConfig, sample_rate: f64) -> Result<Self> {
        Self::new(IdSet::for_model(model_dir, prior)?, prior, sample_rate)
    }

    /// Unknown names become errors with suggestions (the CLI's behaviour).
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Length of a `y` row.
    pub fn y_len(&self) -> usize {
        4 + self.max_genres + self.n_tokens
    }

    fn artist_id(&self, name: &str, warnings: &mut Vec<String>) -> Result<i64> {
        if self.strict {
            return self.ids.artist_id_strict(name);
        }
        let (id, w) = self.ids.artist_lookup(name);
        warnings.extend(w);
        Ok(id)
    }

    /// All genre ids of an item, padded with −1 to `max_genres`.
    pub fn genre_slots(&self, genres: &[String], warnings: &mut Vec<String>) -> Result<Vec<i64>> {
        let mut ids = Vec::new();
        for g in genres {
            if self.strict {
                ids.extend(self.ids.genre_ids_strict(g)?);
            } else {
                let (gi, w) = self.ids.genre_lookup(g);
                ids.extend(gi);
                warnings.extend(w);
            }
        }
        if ids.len() > self.max_genres {
            bail!(
                "genres {genres:?} give {} ids ({ids:?}) but this prior has {} genre slot(s){}",
                ids.len(),
                self.max_genres,
                if self.ids.kind == super::ids::IdKind::V2 { " (v2 counts each word)" } else { "" }
            );
        }
        ids.resize(self.max_genres, -1);
        Ok(ids)
    }

    /// The cleaned lyrics and their full token list (empty for priors without lyrics).
    pub fn lyric_tokens(&self, lyrics: Option<&str>) -> (String, Vec<i64>) {
        match self.vocab {
            Some(v) => {
                let cleaned = v.clean(lyrics.unwrap_or(""));
                let tokens = v.tokenize_cleaned(&cleaned);
                (cleaned, tokens)
            }
            None => (String::new(), Vec::new()),
        }
    }

    /// Official `get_label`: the base row for a song of `total_length` samples whose first window
    /// starts at `offset` samples. The lyric window here uses float64 arithmetic, as officially.
    pub fn base(&self, meta: &Meta, total_length: i64, offset: i64) -> Result<BaseLabel> {
        if let Some((min, max)) = self.length_range {
            // The official conditioner asserts this later; say it up front, in seconds.
            if (total_length as f32) < min as f32 || (total_length as f32) >= max as f32 {
                let sr = self.sample_rate;
                bail!(
                    "song length {:.2} s is outside this prior's range [{:.2}, {:.2}) s; set the total length \
                     (e.g. --total-seconds) to at least {:.2} s",
                    total_length as f64 / sr,
                    min / sr,
                    max / sr,
                    min / sr
                );
            }
        }
        if offset < 0 || (self.length_range.is_some() && offset >= total_length) {
            bail!("offset {offset} samples must lie inside the song of {total_length} samples");
        }
        let mut warnings = Vec::new();
        let artist = self.artist_id(&meta.artist, &mut warnings)?;
        let genres = self.genre_slots(&meta.genres, &mut warnings)?;
        if !self.quiet {
            for w in &warnings {
                eprintln!("warning: {w}");
            }
        }
        let (lyrics, full_tokens) = self.lyric_tokens(meta.lyrics.as_deref());
        let w = relevant_lyric_tokens(&full_tokens, self.n_tokens, total_length, offset, self.sample_length, Arith::F64)?;
        let mut y = Vec::with_capacity(self.y_len());
        y.extend([total_length, offset, self.sample_length, artist]);
        y.extend(genres);
        y.extend(w.tokens);
        Ok(BaseLabel {
            y,
            full_tokens,
            lyrics,
            warnings,
        })
    }

    /// Official `SimplePrior.get_y(labels, start)`: sample_length ← this prior's window,
    /// offset ← base offset + start·raw_to_tokens, and the lyric window reselected in float32.
    pub fn get_y(&self, base: &BaseLabel, start_token: i64) -> Result<WindowLabel> {
        if base.y.len() != self.y_len() {
            bail!(
                "y row has {} entries, this prior expects {} (4 + {} genres + {} lyric tokens)",
                base.y.len(),
                self.y_len(),
                self.max_genres,
                self.n_tokens
            );
        }
        let mut y = base.y.clone();
        y[2] = self.sample_length;
        y[1] += start_token * self.raw_to_tokens;
        let mut lyric_indices = Vec::new();
        if self.n_tokens > 0 {
            let w = relevant_lyric_tokens(&base.full_tokens, self.n_tokens, y[0], y[1], y[2], Arith::F32)
                .with_context(|| format!("lyric window at token {start_token}"))?;
            let n = y.len();
            y[n - self.n_tokens..].copy_from_slice(&w.tokens);
            lyric_indices = w.indices;
        }
        Ok(WindowLabel { y, lyric_indices })
    }

    /// `get_y` for a batch: the rows flattened row-major ([B, y_len]) and each row's indices.
    pub fn get_y_batch(&self, bases: &[BaseLabel], start_token: i64) -> Result<(Vec<i64>, Vec<Vec<i64>>)> {
        let mut flat = Vec::with_capacity(bases.len() * self.y_len());
        let mut idx = Vec::with_capacity(bases.len());
        for (b, base) in bases.iter().enumerate() {
            let w = self.get_y(base, start_token).with_context(|| format!("batch item {b}"))?;
            flat.extend(w.y);
            idx.push(w.lyric_indices);
        }
        Ok((flat, idx))
    }

    /// The rows of a batch as an int64 tensor [B, y_len].
    pub fn y_tensor(&self, rows: &[Vec<i64>], device: &candle_core::Device) -> Result<candle_core::Tensor> {
        let flat: Vec<i64> = rows.iter().flatten().copied().collect();
        if rows.iter().any(|r| r.len() != self.y_len()) {
            bail!("every y row must have {} entries", self.y_len());
        }
        Ok(candle_core::Tensor::from_vec(flat, (rows.len(), self.y_len()), device)?)
    }
}
