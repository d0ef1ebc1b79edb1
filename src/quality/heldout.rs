//! Held-out audio: the same seeded, artist-stratified split that training uses
//! ([`Corpus::split`] with `train.seed` and `train.valid_fraction`), and clips spread evenly over
//! a set of files (as training's fixed validation windows are).

use crate::dataset::Corpus;
use crate::train::data::{length_pool, Pool};
use anyhow::{Context, Result};

/// One clip: the corpus item it comes from, where it starts (samples), and its audio.
#[derive(Debug, Clone)]
pub struct Clip {
    pub item: usize,
    pub start: usize,
    pub samples: Vec<f32>,
}

/// Which files a measurement used.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitInfo {
    pub corpus: String,
    pub seed: u64,
    pub valid_fraction: f64,
    pub train_files: usize,
    pub valid_files: usize,
    /// False when no artist has two files, so nothing could be held out and the "held-out"
    /// figures are measured on training files (as training itself then validates).
    pub held_out: bool,
}

/// (train item indices, held-out item indices, info). Falls back to the training files when
/// the split holds nothing out.
pub fn split(
    corpus: &Corpus,
    seed: u64,
    valid_fraction: f64,
) -> (Vec<usize>, Vec<usize>, SplitInfo) {
    let s = corpus.split(seed, valid_fraction);
    let held_out = !s.valid.is_empty();
    let info = SplitInfo {
        corpus: corpus.dir.display().to_string(),
        seed,
        valid_fraction,
        train_files: s.train.len(),
        valid_files: s.valid.len(),
        held_out,
    };
    let valid = if held_out { s.valid } else { s.train.clone() };
    (s.train, valid, info)
}

/// `n` clips of `len` samples spread evenly over the files `items` (longer files give more
/// clips; starts on multiples of `align`), zero-padded past the end of a short file.
pub fn clips(
    corpus: &Corpus,
    items: &[usize],
    n: usize,
    len: usize,
    align: usize,
) -> Result<Vec<Clip>> {
    let pool: Pool<f32> = length_pool(items.iter().map(|&i| &corpus.items[i]));
    if items.is_empty() || n == 0 {
        return Ok(Vec::new());
    }
    pool.fixed(n, len, align)
        .into_iter()
        .map(|w| {
            let item = items[w.track];
            let it = &corpus.items[item];
            let samples = corpus
                .load_window(it, w.start, len)
                .with_context(|| format!("reading {} at sample {}", it.rel, w.start))?;
            Ok(Clip {
                item,
                start: w.start,
                samples,
            })
        })
        .collect()
}
