//! Official `LabelConditioner`: artist + bag-of-genres start embedding, and the timing
//! RangeEmbeddings (top-level priors only), binned in f32 exactly as the official code.
//!
//! Keys: `y_emb.{artist_emb,bow_genre_emb,total_length_emb,absolute_pos_emb,relative_pos_emb}.emb.weight`.

use crate::config::LabelConfig;
use candle_core::{bail, DType, Result, Tensor};
use candle_nn::{Init, VarBuilder};

pub use crate::labels::timing::TimingBins;

/// Official timing bins of one window (f32 arithmetic, see `labels::timing`); errors where the
/// official code asserts (song shorter than the prior's minimum, window outside the song).
#[allow(clippy::too_many_arguments)]
pub fn timing_bins(
    total_length: i64,
    offset: i64,
    sample_length: i64,
    n_time: usize,
    t_bins: usize,
    sr: f64,
    min_duration: f64,
    max_duration: f64,
) -> Result<TimingBins> {
    crate::labels::timing::timing_bins(
        total_length,
        offset,
        sample_length,
        n_time,
        t_bins,
        min_duration,
        max_duration,
        sr,
    )
    .map_err(crate::error::into_candle)
}

#[derive(Debug, Clone)]
pub struct LabelConditioner {
    pub cfg: LabelConfig,
    artist_emb: Tensor,
    genre_emb: Tensor,
    /// (total, absolute, relative) tables when the timing signal is on.
    timing: Option<(Tensor, Tensor, Tensor)>,
    /// Music tokens per window (`n_time`).
    n_time: usize,
    sr: f64,
}

/// Parsed label columns of one row of `y`.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelRow {
    pub total_length: i64,
    pub offset: i64,
    pub sample_length: i64,
    pub artist: i64,
    pub genres: Vec<i64>,
}

impl LabelConditioner {
    /// `vb` points at `y_emb`.
    pub fn new(
        cfg: &LabelConfig,
        width: usize,
        n_time: usize,
        sr: f64,
        vb: VarBuilder,
    ) -> Result<Self> {
        let init = Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let artist_emb =
            vb.pp("artist_emb")
                .pp("emb")
                .get_with_hints((cfg.n_artists, width), "weight", init)?;
        let genre_emb = vb.pp("bow_genre_emb").pp("emb").get_with_hints(
            (cfg.n_genres, width),
            "weight",
            init,
        )?;
        let timing = if cfg.include_time_signal {
            let t = |n: &str| {
                vb.pp(n)
                    .pp("emb")
                    .get_with_hints((cfg.t_bins, width), "weight", init)
            };
            Some((
                t("total_length_emb")?,
                t("absolute_pos_emb")?,
                t("relative_pos_emb")?,
            ))
        } else {
            None
        };
        Ok(Self {
            cfg: cfg.clone(),
            artist_emb,
            genre_emb,
            timing,
            n_time,
            sr,
        })
    }

    /// Label columns of `y` (4 + max_genres; lyric tokens after them are ignored here).
    pub fn n_label_cols(&self) -> usize {
        4 + self.cfg.max_genres
    }

    /// Parse and validate each row (ids in range, genres −1 or valid).
    pub fn rows(&self, y: &Tensor) -> Result<Vec<LabelRow>> {
        let (_, cols) = y.dims2()?;
        let g = self.cfg.max_genres;
        if cols < 4 + g {
            bail!(
                "label vector has {cols} columns, expected at least {}",
                4 + g
            );
        }
        let v = y.to_dtype(DType::I64)?.to_vec2::<i64>()?;
        v.into_iter()
            .enumerate()
            .map(|(i, r)| {
                if r[3] < 0 || r[3] as usize >= self.cfg.n_artists {
                    bail!(
                        "item {i}: artist id {} outside 0..{}",
                        r[3],
                        self.cfg.n_artists
                    );
                }
                for &gid in &r[4..4 + g] {
                    if gid < -1 || gid >= self.cfg.n_genres as i64 {
                        bail!("item {i}: genre id {gid} outside -1..{}", self.cfg.n_genres);
                    }
                }
                Ok(LabelRow {
                    total_length: r[0],
                    offset: r[1],
                    sample_length: r[2],
                    artist: r[3],
                    genres: r[4..4 + g].to_vec(),
                })
            })
            .collect()
    }

    /// `y_cond` (N, 1, W): artist embedding + masked sum of genre embeddings.
    pub fn start_emb(&self, y: &Tensor) -> Result<Tensor> {
        let rows = self.rows(y)?;
        let dev = self.artist_emb.device();
        let n = rows.len();
        let g = self.cfg.max_genres;
        let artists: Vec<u32> = rows.iter().map(|r| r.artist as u32).collect();
        let gids: Vec<u32> = rows
            .iter()
            .flat_map(|r| r.genres.iter().map(|&x| x.max(0) as u32))
            .collect();
        let mask: Vec<f32> = rows
            .iter()
            .flat_map(|r| r.genres.iter().map(|&x| if x >= 0 { 1.0 } else { 0.0 }))
            .collect();
        let a = self
            .artist_emb
            .index_select(&Tensor::new(artists, dev)?, 0)?
            .to_dtype(DType::F32)?;
        let w = a.dim(1)?;
        let ge = self
            .genre_emb
            .index_select(&Tensor::new(gids, dev)?, 0)?
            .to_dtype(DType::F32)?
            .reshape((n, g, w))?;
        let mask = Tensor::from_vec(mask, (n, g, 1), dev)?;
        let genre = ge.broadcast_mul(&mask)?.sum(1)?;
        (genre + a)?.reshape((n, 1, w))
    }

    /// The timing embedding (N, n_time, W), or None without a timing signal.
    pub fn timing_emb(&self, y: &Tensor) -> Result<Option<Tensor>> {
        let Some((te, ae, re)) = &self.timing else {
            return Ok(None);
        };
        let rows = self.rows(y)?;
        let dev = te.device();
        let (n, nt) = (rows.len(), self.n_time);
        let mut tot = Vec::with_capacity(n);
        let mut abs = Vec::with_capacity(n * nt);
        let mut rel = Vec::with_capacity(n * nt);
        for (i, r) in rows.iter().enumerate() {
            let b = timing_bins(
                r.total_length,
                r.offset,
                r.sample_length,
                nt,
                self.cfg.t_bins,
                self.sr,
                self.cfg.min_duration,
                self.cfg.max_duration,
            )
            .map_err(|e| {
                crate::error::into_candle(anyhow::Error::new(e).context(format!("item {i}")))
            })?;
            let tb = self.cfg.t_bins as i64;
            let ok = |x: i64| -> Result<u32> {
                if (0..tb).contains(&x) {
                    Ok(x as u32)
                } else {
                    bail!("item {i}: timing bin {x} outside 0..{tb}")
                }
            };
            tot.push(ok(b.total)?);
            for x in b.absolute {
                abs.push(ok(x)?);
            }
            for x in b.relative {
                rel.push(ok(x)?);
            }
        }
        let look = |t: &Tensor, ids: Vec<u32>, len: usize| -> Result<Tensor> {
            let w = t.dim(1)?;
            t.index_select(&Tensor::new(ids, dev)?, 0)?
                .to_dtype(DType::F32)?
                .reshape((n, len, w))
        };
        let total = look(te, tot, 1)?;
        let a = look(ae, abs, nt)?;
        let r = look(re, rel, nt)?;
        Ok(Some(total.broadcast_add(&a)?.add(&r)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_edges() {
        // 1b: 17.84..600 s, 64 bins; the window at the song start.
        let b = timing_bins(60 * 44100, 0, 6144 * 128, 6144, 64, 44100.0, 17.84, 600.0).unwrap();
        assert_eq!(b.absolute[0], 0);
        assert_eq!(b.relative[0], 0);
        assert!(b.relative.windows(2).all(|w| w[0] <= w[1]));
        assert!(*b.relative.last().unwrap() <= 63);
        // Too short a song for the prior.
        assert!(timing_bins(10 * 44100, 0, 1024, 8, 64, 44100.0, 17.84, 600.0).is_err());
        // Window starting after the song end.
        assert!(timing_bins(20 * 44100, 21 * 44100, 1024, 8, 64, 44100.0, 17.84, 600.0).is_err());
    }
}
