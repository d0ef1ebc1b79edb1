//! What prior training does with labels: dropout to "unknown" (`train.label_dropout`,
//! `train.label_dropout_single`) and the label-contrast term (`train.label_contrast`, off by
//! default).
//!
//! Teacher-forced, a window's own context predicts everything after its first tokens as well as
//! its genre label does, because in training the two always agree; so a plain likelihood loss
//! gives the label weight on a handful of tokens per window, and `rank-labels` cannot tell the
//! genres apart (models/default/TRAINING.md, "Why the labels seem to do nothing"). This term
//! scores each window labelled as `rank-labels` scores genres (genres kept, artist dropped by
//! `label_dropout_single`) a second time under a genre it is not, and asks the wrong genre to
//! cost at least `label_margin` bits per token more than the true one:
//! `weight · mean_pairs relu(margin − (bits_wrong − bits_true))`, bits being the window's mean
//! bits per real token. The gap it trains is exactly what `rank-labels` compares.

use super::rng::CounterRng;
use candle_core::{DType, Result, Tensor, D};

/// Which labels a training window loses to dropout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelDrop {
    None,
    /// Artist and genres (the "no label" condition).
    Both,
    /// The artist only: trains "genre, unknown artist", which `rank-labels` scores.
    Artist,
    /// The genres only.
    Genre,
}

impl LabelDrop {
    /// Both with probability `both`, else one of them (evenly) with probability `single`. The
    /// first draw alone decides `Both`, as before `single` existed, so runs with `single` 0 are
    /// unchanged.
    pub fn draw(rng: &mut CounterRng, both: f64, single: f64) -> Self {
        let u = rng.uniform();
        if u < both {
            Self::Both
        } else if u < both + single {
            if rng.uniform() < 0.5 {
                Self::Artist
            } else {
                Self::Genre
            }
        } else {
            Self::None
        }
    }

    pub(crate) fn artist(self) -> bool {
        matches!(self, Self::Both | Self::Artist)
    }

    pub(crate) fn genres(self) -> bool {
        matches!(self, Self::Both | Self::Genre)
    }
}

/// Rows of a batch scored against each other: `truth` with the window's own genres, `wrong`
/// the same window and labels with one genre it does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    pub truth: usize,
    pub wrong: usize,
}

/// A genre id from `genres` (the ids seen in training, "unknown" 0 excluded) that is none of
/// `own`, drawn evenly; `None` when there is no such genre.
pub fn wrong_genre(rng: &mut CounterRng, genres: &[u32], own: &[u32]) -> Option<u32> {
    let other: Vec<u32> = genres
        .iter()
        .copied()
        .filter(|g| *g != 0 && !own.contains(g))
        .collect();
    (!other.is_empty()).then(|| other[rng.below(other.len() as u64) as usize])
}

/// The distinct genre ids of `tracks`' genre lists, sorted, without 0.
pub fn genre_set<'a>(tracks: impl Iterator<Item = &'a [u32]>) -> Vec<u32> {
    let mut g: Vec<u32> = tracks.flatten().copied().filter(|&g| g != 0).collect();
    g.sort_unstable();
    g.dedup();
    g
}

/// Mean bits per real token of each row: `bits` and `mask` (B, T) → (B,), differentiable.
pub fn row_bits(bits: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let m = mask.to_dtype(bits.dtype())?;
    let count = m.sum(D::Minus1)?.clamp(1.0, f64::INFINITY)?;
    (bits * &m)?.sum(D::Minus1)?.div(&count)
}

/// `weight · mean relu(margin − gap)` over `pairs`, gap = row bits of `wrong` − of `truth`;
/// also the mean gap (bits per token), for the log.
pub fn contrast_loss(
    rows: &Tensor,
    pairs: &[Pair],
    margin: f64,
    weight: f64,
) -> Result<(Tensor, f64)> {
    let dev = rows.device();
    let idx = |f: fn(&Pair) -> usize| {
        Tensor::from_vec(
            pairs.iter().map(|p| f(p) as u32).collect::<Vec<_>>(),
            pairs.len(),
            dev,
        )
    };
    let gap =
        (rows.index_select(&idx(|p| p.wrong)?, 0)? - rows.index_select(&idx(|p| p.truth)?, 0)?)?;
    let mean_gap = gap.mean_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    let hinge = gap.affine(-1.0, margin)?.relu()?.mean_all()?;
    Ok(((hinge * weight)?, mean_gap))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::rng::Stream;
    use candle_core::{Device, Var};

    #[test]
    fn wrong_genres_are_other_training_genres_evenly() {
        let genres = genre_set([&[3u32][..], &[1, 3], &[0], &[5]].into_iter());
        assert_eq!(genres, vec![1, 3, 5]);
        let mut counts = [0usize; 6];
        for s in 0..3000u64 {
            let mut rng = CounterRng::new(1, Stream::LabelDrop, s, 9);
            let g = wrong_genre(&mut rng, &genres, &[3]).unwrap();
            counts[g as usize] += 1;
        }
        assert_eq!(counts[0] + counts[2] + counts[3] + counts[4], 0);
        assert!((counts[1] as f64 / 3000.0 - 0.5).abs() < 0.04, "{counts:?}");
        let mut rng = CounterRng::new(1, Stream::LabelDrop, 0, 0);
        assert_eq!(wrong_genre(&mut rng, &genres, &[1, 3, 5]), None);
        assert_eq!(wrong_genre(&mut rng, &[], &[1]), None);
    }

    /// Row means skip padding; the hinge is zero past the margin and its gradient pulls the
    /// wrong row up and the true row down (f64 finite differences, two pairs).
    #[test]
    fn hinge_values_and_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let bits = Tensor::new(&[[1.0f64, 3.0, 9.0], [2.0, 2.0, 2.0]], &dev)?;
        let mask = Tensor::new(&[[1f32, 1.0, 0.0], [1.0, 1.0, 1.0]], &dev)?;
        assert_eq!(row_bits(&bits, &mask)?.to_vec1::<f64>()?, vec![2.0, 2.0]);

        let rows = Var::new(&[1.0f64, 1.1, 2.0, 1.5], &dev)?;
        let pairs = [Pair { truth: 0, wrong: 1 }, Pair { truth: 2, wrong: 3 }];
        let f = |r: &Tensor| -> Result<f64> {
            contrast_loss(r, &pairs, 0.25, 2.0)?.0.to_scalar::<f64>()
        };
        // Gaps 0.1 and -0.5: hinges 0.15 and 0.75, mean 0.45, weighted 0.9.
        let (l, gap) = contrast_loss(rows.as_tensor(), &pairs, 0.25, 2.0)?;
        assert!((l.to_scalar::<f64>()? - 0.9).abs() < 1e-12);
        assert!((gap + 0.2).abs() < 1e-12);
        let g = l
            .backward()?
            .get(rows.as_tensor())
            .unwrap()
            .to_vec1::<f64>()?;
        let base = rows.as_tensor().to_vec1::<f64>()?;
        for i in 0..4 {
            let mut p = base.clone();
            p[i] += 1e-6;
            let mut m = base.clone();
            m[i] -= 1e-6;
            let fd = (f(&Tensor::new(p.as_slice(), &dev)?)?
                - f(&Tensor::new(m.as_slice(), &dev)?)?)
                / 2e-6;
            assert!((fd - g[i]).abs() < 1e-6, "{i}: {fd} vs {}", g[i]);
        }
        assert_eq!(g, vec![1.0, -1.0, 1.0, -1.0]);
        // Past the margin nothing is asked.
        let far = Tensor::new(&[1.0f64, 2.0, 1.0, 2.0], &dev)?;
        assert_eq!(
            contrast_loss(&far, &pairs, 0.25, 2.0)?
                .0
                .to_scalar::<f64>()?,
            0.0
        );
        Ok(())
    }
}

#[cfg(test)]
mod label_drop_tests {
    use super::*;
    use crate::train::rng::Stream;

    fn draws(both: f64, single: f64) -> Vec<LabelDrop> {
        (0..4000u64)
            .map(|s| {
                let mut rng = CounterRng::new(7, Stream::LabelDrop, s, 3);
                LabelDrop::draw(&mut rng, both, single)
            })
            .collect()
    }

    /// Without single-label dropout the draws are the joint dropout of before (the same
    /// windows, so existing runs resume identically); with it, artist-only and genre-only
    /// windows appear at the requested rate.
    #[test]
    fn single_label_dropout_rates_and_compatibility() {
        let old: Vec<bool> = (0..4000u64)
            .map(|s| CounterRng::new(7, Stream::LabelDrop, s, 3).uniform() < 0.15)
            .collect();
        let joint = draws(0.15, 0.0);
        assert!(joint
            .iter()
            .all(|d| matches!(d, LabelDrop::None | LabelDrop::Both)));
        assert_eq!(
            old,
            joint
                .iter()
                .map(|d| *d == LabelDrop::Both)
                .collect::<Vec<_>>()
        );
        let mixed = draws(0.15, 0.3);
        let share = |k: LabelDrop| mixed.iter().filter(|d| **d == k).count() as f64 / 4000.0;
        for (k, want) in [
            (LabelDrop::Both, 0.15),
            (LabelDrop::Artist, 0.15),
            (LabelDrop::Genre, 0.15),
        ] {
            assert!(
                (share(k) - want).abs() < 0.025,
                "{k:?}: {} vs {want}",
                share(k)
            );
        }
        // The same windows are fully dropped as without single dropout.
        for (m, j) in mixed.iter().zip(&joint) {
            assert_eq!(*m == LabelDrop::Both, *j == LabelDrop::Both);
        }
        assert!(LabelDrop::Artist.artist() && !LabelDrop::Artist.genres());
        assert!(LabelDrop::Genre.genres() && !LabelDrop::Genre.artist());
    }
}
