//! Label ranking (`jukebox rank-labels`): which genre (or artist) makes a prior find given codes
//! most likely. Each label is one batch item over the same codes, scored teacher-forced in the
//! windows of [`super::score_sequence`] (the scorer of `jukebox logits`), so a label's value here
//! equals what `jukebox logits` prints for the same codes and label.

use super::{score_sequence, Prior};
use crate::labels::{display_name, BaseLabel, Field, IdKind, IdSet, Labeller, Meta};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};

/// One label to score: `field` is the axis being ranked, `id` its id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Candidate {
    pub field: Field,
    pub id: i64,
    /// Display name (`#id` when the model has no name list).
    pub name: String,
}

/// Every id of `field` the model accepts besides 0 (`unknown`, the baseline), in id order; only
/// those whose name matches `search` when given. Ids outside the embedding table are left out.
pub fn candidates(ids: &IdSet, field: Field, search: Option<&str>) -> Vec<Candidate> {
    let bound = match field {
        Field::Artist => ids.n_artists,
        Field::Genre => ids.n_genres,
    }
    .map_or(i64::MAX, |n| n as i64);
    let mut out: Vec<i64> = if ids.kind == IdKind::Numeric {
        let n = if bound == i64::MAX { 0 } else { bound };
        (1..n)
            .filter(|id| search.is_none_or(|s| format!("#{id}").contains(s.trim())))
            .collect()
    } else {
        match search {
            Some(s) => ids.search(field, s).into_iter().map(|(_, id)| id).collect(),
            None => ids.table(field).entries.iter().map(|(_, id)| *id).collect(),
        }
    };
    out.retain(|&id| id > 0 && id < bound);
    out.sort_unstable();
    out.dedup();
    out.into_iter()
        .map(|id| Candidate {
            field,
            id,
            name: display_name(&ids.name_of(field, id)),
        })
        .collect()
}

/// What to rank, besides the codes.
#[derive(Debug, Clone)]
pub struct RankRequest {
    pub candidates: Vec<Candidate>,
    /// The artist while genres are ranked (`unknown` for none).
    pub artist: String,
    /// The genres while artists are ranked (empty: `unknown`).
    pub genres: Vec<String>,
    pub lyrics: Option<String>,
    /// Song length label in samples (offset 0), as `sample` and `logits` build it.
    pub total_length: i64,
}

impl RankRequest {
    /// The labels of one ranked item.
    pub fn meta(&self, c: &Candidate) -> Meta {
        let genres = if self.genres.is_empty() {
            vec!["unknown".to_string()]
        } else {
            self.genres.clone()
        };
        let (artist, genres) = match c.field {
            Field::Genre => (self.artist.clone(), vec![format!("#{}", c.id)]),
            Field::Artist => (format!("#{}", c.id), genres),
        };
        Meta {
            artist,
            genres,
            lyrics: self.lyrics.clone(),
        }
    }

    /// The no-label baseline: artist and genre `unknown` (id 0).
    pub fn baseline(&self) -> Meta {
        Meta {
            artist: "unknown".into(),
            genres: vec!["unknown".into()],
            lyrics: self.lyrics.clone(),
        }
    }
}

/// One scored label.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scored {
    pub candidate: Candidate,
    /// The whole label as words, e.g. `artist unknown, genre rock`.
    pub artist: String,
    pub genre: String,
    /// Mean teacher-forced bits per token of the codes under this label.
    pub bits: f64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Ranking {
    /// Bits per token with artist and genre unknown.
    pub baseline_bits: f64,
    /// Best (fewest bits) first.
    pub scored: Vec<Scored>,
    pub tokens: usize,
    pub level: usize,
}

/// Activation bytes of one item's teacher-forced window (a generous estimate: residual stream,
/// attention projections and scores of the widest layer kind, MLP, logits, with temporaries).
pub fn item_bytes(prior: &Prior) -> u64 {
    let t = &prior.transformer;
    let l = prior.seq_len() as u64;
    let g = &t.geom;
    let keys = t
        .layers
        .iter()
        .map(|layer| match layer.kind {
            super::AttnKind::Dense => g.n_ctx,
            super::AttnKind::Prime => g.prime_p.max(1),
            super::AttnKind::Cross => prior.n_lyric_tokens(),
            _ => g.block_ctx.max(prior.cfg.blocks.unwrap_or(1)),
        })
        .max()
        .unwrap_or(0) as u64;
    let (w, s, m, h) = (
        t.cfg.width as u64,
        t.cfg.n_state as u64,
        t.cfg.mlp_width as u64,
        t.cfg.heads as u64,
    );
    let v = prior.vocab() as u64;
    4 * l * (8 * w + 5 * s + 2 * m + 4 * h * keys + 4 * v)
}

/// Items per forward pass so that activations stay within `budget` bytes (at least 1).
pub fn batch_for_budget(prior: &Prior, budget: u64, n_items: usize) -> usize {
    let per = item_bytes(prior).max(1);
    ((budget / per) as usize).clamp(1, n_items.max(1))
}

/// Score the baseline and every candidate on `tokens` (one row of codes at the prior's level;
/// `upper` the level-above row for upsamplers), `batch` labels per forward pass.
/// `progress(items_done, items_total)` after every window of every batch.
pub fn rank_labels(
    prior: &Prior,
    labeller: &Labeller,
    req: &RankRequest,
    tokens: &[i64],
    upper: Option<&[i64]>,
    batch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Ranking> {
    if prior.labels.is_none() {
        bail!("this prior takes no artist/genre labels, so there is nothing to rank");
    }
    if tokens.is_empty() {
        bail!("no codes to score");
    }
    let metas: Vec<Meta> = std::iter::once(req.baseline())
        .chain(req.candidates.iter().map(|c| req.meta(c)))
        .collect();
    let bases: Vec<BaseLabel> = metas
        .iter()
        .zip(std::iter::once(None).chain(req.candidates.iter().map(Some)))
        .map(|(m, c)| {
            labeller
                .base(m, req.total_length, 0)
                .with_context(|| match c {
                    Some(c) => format!("labels for {} {}", c.field.name(), c.name),
                    None => "labels of the no-label baseline".to_string(),
                })
        })
        .collect::<Result<_>>()?;
    let dev = prior.device().clone();
    let n_items = bases.len();
    let batch = batch.clamp(1, n_items);
    let t = tokens.len();
    let windows = super::windows::get_starts(t, prior.cfg.n_ctx, prior.cfg.n_ctx).len();
    let mut bits = Vec::with_capacity(n_items);
    for (bi, chunk) in bases.chunks(batch).enumerate() {
        let n = chunk.len();
        let row = Tensor::from_slice(tokens, (1, t), &dev)?.to_dtype(DType::I64)?;
        let toks = row.repeat((n, 1))?;
        let up = match upper {
            Some(u) => Some(
                Tensor::from_slice(u, (1, u.len()), &dev)?
                    .to_dtype(DType::I64)?
                    .repeat((n, 1))?,
            ),
            None => None,
        };
        let mut y_at = |start: usize| -> anyhow::Result<Option<Tensor>> {
            let (flat, _) = labeller.get_y_batch(chunk, start as i64)?;
            Ok(Some(Tensor::from_vec(flat, (n, labeller.y_len()), &dev)?))
        };
        let done_before = bi * batch;
        let mut win_progress = |d: usize, k: usize| {
            // Items count as done in proportion to the windows scored.
            progress(done_before + n * d / k.max(1), n_items);
        };
        let out = score_sequence(
            prior,
            &toks,
            &mut y_at,
            up.as_ref(),
            false,
            &mut win_progress,
        )
        .with_context(|| {
            format!(
                "scoring labels {}..{} of {n_items} ({t} tokens, {windows} window(s))",
                done_before,
                done_before + n
            )
        })?;
        let per: Vec<f32> = out.nll_bits.mean(1)?.to_vec1()?;
        bits.extend(per.into_iter().map(f64::from));
    }
    let name = |m: &Meta, field: Field| -> String {
        match field {
            Field::Artist => m.artist.clone(),
            Field::Genre => m.genres.join("+"),
        }
    };
    let baseline_bits = bits[0];
    let mut scored: Vec<Scored> = req
        .candidates
        .iter()
        .zip(metas.iter().skip(1))
        .zip(bits.iter().skip(1))
        .map(|((c, m), &b)| Scored {
            candidate: c.clone(),
            artist: if c.field == Field::Artist {
                c.name.clone()
            } else {
                name(m, Field::Artist)
            },
            genre: if c.field == Field::Genre {
                c.name.clone()
            } else {
                name(m, Field::Genre)
            },
            bits: b,
        })
        .collect();
    // Stable: ties keep id order.
    scored.sort_by(|a, b| a.bits.total_cmp(&b.bits));
    Ok(Ranking {
        baseline_bits,
        scored,
        tokens: t,
        level: prior.cfg.level,
    })
}

impl Ranking {
    /// `label_ranking.csv`: `rank,kind,id,label,artist,genre,bits_per_token,delta_bits`, best
    /// first, with the no-label baseline (kind `none`, empty rank) where it sorts.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("rank,kind,id,label,artist,genre,bits_per_token,delta_bits\n");
        let base_row = format!(
            ",none,0,no label,unknown,unknown,{:.6},{:.6}\n",
            self.baseline_bits, 0.0
        );
        let mut base_done = false;
        for (i, r) in self.scored.iter().enumerate() {
            if !base_done && self.baseline_bits <= r.bits {
                s.push_str(&base_row);
                base_done = true;
            }
            s.push_str(&crate::util::csv_line([
                (i + 1).to_string(),
                r.candidate.field.name().to_string(),
                r.candidate.id.to_string(),
                r.candidate.name.clone(),
                r.artist.clone(),
                r.genre.clone(),
                format!("{:.6}", r.bits),
                format!("{:+.6}", r.bits - self.baseline_bits),
            ]));
        }
        if !base_done {
            s.push_str(&base_row);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_places_the_baseline() {
        let c = |id: i64, name: &str| Candidate {
            field: Field::Artist,
            id,
            name: name.into(),
        };
        let r = Ranking {
            baseline_bits: 2.0,
            scored: vec![
                Scored {
                    candidate: c(3, "now, now"),
                    artist: "now, now".into(),
                    genre: "unknown".into(),
                    bits: 1.5,
                },
                Scored {
                    candidate: c(1, "a \"b\""),
                    artist: "a \"b\"".into(),
                    genre: "unknown".into(),
                    bits: 2.25,
                },
            ],
            tokens: 10,
            level: 2,
        };
        let csv = r.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines,
            vec![
                "rank,kind,id,label,artist,genre,bits_per_token,delta_bits",
                "1,artist,3,\"now, now\",\"now, now\",unknown,1.500000,-0.500000",
                ",none,0,no label,unknown,unknown,2.000000,0.000000",
                "2,artist,1,\"a \"\"b\"\"\",\"a \"\"b\"\"\",unknown,2.250000,+0.250000",
            ]
        );
    }

    #[test]
    fn candidates_skip_unknown_and_respect_table_sizes() {
        let ids = IdSet::numeric(Some(5), Some(4));
        let g = candidates(&ids, Field::Genre, None);
        assert_eq!(g.iter().map(|c| c.id).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(g[0].name, "#1");
        let a = candidates(&ids, Field::Artist, Some("4"));
        assert_eq!(a.iter().map(|c| c.id).collect::<Vec<_>>(), vec![4]);
        let v2 = IdSet::v2();
        let g = candidates(&v2, Field::Genre, None);
        assert_eq!(g.len(), 119, "v2 has 120 genre ids including unknown");
        let rock = candidates(&v2, Field::Genre, Some("rock"));
        assert!(rock.iter().any(|c| c.name == "rock"), "{rock:?}");
        assert!(rock.iter().all(|c| c.id != 0));
    }
}
