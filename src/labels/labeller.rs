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
    pub fn new(
        artist: impl Into<String>,
        genre: impl Into<String>,
        lyrics: Option<String>,
    ) -> Self {
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
    /// The genre slots (`max_genres` of them; −1 pads a shorter bag).
    pub fn genre_ids(&self, max_genres: usize) -> &[i64] {
        &self.y[4..4 + max_genres]
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
                if self.ids.kind == super::ids::IdKind::V2 {
                    " (v2 counts each word)"
                } else {
                    ""
                }
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
                     (e.g. --total-seconds) to at least {:.2} s and below {:.2} s",
                    total_length as f64 / sr,
                    min / sr,
                    max / sr,
                    min / sr,
                    max / sr
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
        let w = relevant_lyric_tokens(
            &full_tokens,
            self.n_tokens,
            total_length,
            offset,
            self.sample_length,
            Arith::F64,
        )?;
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
            let w = relevant_lyric_tokens(
                &base.full_tokens,
                self.n_tokens,
                y[0],
                y[1],
                y[2],
                Arith::F32,
            )
            .with_context(|| format!("lyric window at token {start_token}"))?;
            let n = y.len();
            y[n - self.n_tokens..].copy_from_slice(&w.tokens);
            lyric_indices = w.indices;
        }
        Ok(WindowLabel { y, lyric_indices })
    }

    /// `get_y` for a batch: the rows flattened row-major ([B, y_len]) and each row's indices.
    pub fn get_y_batch(
        &self,
        bases: &[BaseLabel],
        start_token: i64,
    ) -> Result<(Vec<i64>, Vec<Vec<i64>>)> {
        let mut flat = Vec::with_capacity(bases.len() * self.y_len());
        let mut idx = Vec::with_capacity(bases.len());
        for (b, base) in bases.iter().enumerate() {
            let w = self
                .get_y(base, start_token)
                .with_context(|| format!("batch item {b}"))?;
            flat.extend(w.y);
            idx.push(w.lyric_indices);
        }
        Ok((flat, idx))
    }

    /// The rows of a batch as an int64 tensor [B, y_len].
    pub fn y_tensor(
        &self,
        rows: &[Vec<i64>],
        device: &candle_core::Device,
    ) -> Result<candle_core::Tensor> {
        let flat: Vec<i64> = rows.iter().flatten().copied().collect();
        if rows.iter().any(|r| r.len() != self.y_len()) {
            bail!("every y row must have {} entries", self.y_len());
        }
        Ok(candle_core::Tensor::from_vec(
            flat,
            (rows.len(), self.y_len()),
            device,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{JukeboxConfig, PriorConfig};

    const SR: f64 = 44100.0;

    fn meta(artist: &str, genre: &str, lyrics: &str) -> Meta {
        Meta::new(artist, genre, Some(lyrics.to_string()))
    }

    #[test]
    fn official_row_lengths() {
        let cases = [
            (PriorConfig::official_5b(), 9),
            (PriorConfig::official_5b_lyrics(), 521),
            (PriorConfig::official_1b_lyrics(), 389),
            (PriorConfig::official_upsampler(0), 9),
        ];
        for (p, len) in cases {
            let l = Labeller::new(
                IdSet::for_model(Path::new("/nonexistent"), &p).unwrap(),
                &p,
                SR,
            )
            .unwrap();
            assert_eq!(l.y_len(), len);
            let b = l
                .base(&meta("Alan Jackson", "Country", "la la"), 120 * 44100, 0)
                .unwrap();
            assert_eq!(b.y.len(), len);
        }
    }

    #[test]
    fn v2_row_and_windows() {
        let p = PriorConfig::official_5b_lyrics();
        let l = Labeller::new(IdSet::v2(), &p, SR).unwrap();
        let lyrics = "word ".repeat(400); // 2000 characters
        let total = 240 * 44100;
        let b = l
            .base(&meta("Céline Dion", "Blues Rock", &lyrics), total, 0)
            .unwrap();
        assert_eq!(&b.y[..9], &[total, 0, 1_048_576, 557, 2, 8, -1, -1, -1]);
        assert_eq!(b.full_tokens.len(), 2000);
        // Window 3 of the official 5b sizes (see lyrics_cases.json): lyric window starts at 437.
        let w = l.get_y(&b, 3 * 8192).unwrap();
        assert_eq!(w.y[1], 3 * 8192 * 128);
        assert_eq!(w.y[2], 8192 * 128);
        assert_eq!(w.lyric_indices[0], 437);
        assert_eq!(w.lyric_indices.len(), 512);
        assert_eq!(&w.y[9..], &b.full_tokens[437..949]);
        // The base row is unchanged and the window past the song's end is an error.
        assert_eq!(b.y[1], 0);
        assert!(l.get_y(&b, total / 128).is_ok());
        assert!(l.get_y(&b, total / 128 + 1).is_err());
    }

    #[test]
    fn short_song_and_too_many_genres() {
        let p = PriorConfig::official_5b();
        let l = Labeller::new(IdSet::v2(), &p, SR).unwrap();
        let e = l
            .base(&meta("Alan Jackson", "Country", ""), 59 * 44100, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("60.00 s"), "{e}");
        let m = Meta {
            artist: "Alan Jackson".into(),
            genres: vec!["blues rock".into(), "hip hop pop".into(), "jazz".into()],
            lyrics: None,
        };
        let e = l.base(&m, 120 * 44100, 0).unwrap_err().to_string();
        assert!(e.contains("5 genre slot"), "{e}");
        // The upsamplers have no timing labels: any length is fine.
        let up = PriorConfig::official_upsampler(1);
        let lu = Labeller::new(IdSet::v2(), &up, SR).unwrap();
        assert!(lu
            .base(&meta("Alan Jackson", "Country", ""), 10 * 44100, 0)
            .is_ok());
    }

    #[test]
    fn strict_and_official_lookup() {
        let p = PriorConfig::official_1b_lyrics();
        let l = Labeller::new(IdSet::v3(), &p, SR).unwrap();
        let b = l
            .base(&meta("Nobody Here", "Jazz", "hi"), 60 * 44100, 0)
            .unwrap();
        assert_eq!(b.y[3], 0);
        assert_eq!(b.warnings.len(), 1);
        let strict = l.clone().strict(true);
        let e = strict
            .base(&meta("Nobody Here", "Jazz", "hi"), 60 * 44100, 0)
            .unwrap_err();
        assert!(format!("{e:#}").contains("unknown artist"), "{e:#}");
        let b = strict
            .base(&meta("unknown", "#230", "hi"), 60 * 44100, 0)
            .unwrap();
        assert_eq!(&b.y[3..5], &[0, 230]);
        // 1b: lyrics shorter than the window are left-padded with 0.
        assert_eq!(&b.y[5..5 + 382], &[0; 382][..]);
        assert_eq!(&b.y[387..], &[34, 35]);
    }

    #[test]
    fn hf_layout_from_the_fixture_config() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/reference/fixtures/model/config.json");
        let cfg = JukeboxConfig::from_hf_json(&std::fs::read_to_string(path).unwrap()).unwrap();
        let top = &cfg.priors[2];
        let l = Labeller::new(
            IdSet::for_model(Path::new("/nonexistent"), top).unwrap(),
            top,
            SR,
        )
        .unwrap();
        // [total_length, offset, sample_length, artist, genre_0, genre_1, genre_2]
        assert_eq!(l.y_len(), 7);
        let b = l.base(&Meta::new("#3", "#5", None), 44032, 0).unwrap();
        assert_eq!(&b.y[3..], &[3, 5, -1, -1]);
        let w = l.get_y(&b, 8).unwrap();
        assert_eq!(w.y[1], 8 * top.raw_to_tokens as i64);
        assert!(w.lyric_indices.is_empty());
    }
}
