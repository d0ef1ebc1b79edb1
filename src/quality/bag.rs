//! The trivial baseline beside held-out genre accuracy: a "bag of codes" classifier. Each genre
//! gets the histogram of its training files' top-level codes (add-one smoothed); a held-out
//! file goes to the genre under whose histogram its tokens cost the fewest bits. It ignores
//! order and context, so a prior whose labels work should beat it; when it beats the prior, the
//! codes do tell the genres apart and the prior has not learned to use its labels.

/// One histogram per genre, in the order of the genres given to [`GenreBag::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct GenreBag {
    /// (genre id, add-one smoothed log2 probabilities of each code).
    genres: Vec<(i64, Vec<f64>)>,
    /// All genres' codes in one histogram: the bag's "no label".
    pooled: Vec<f64>,
    /// Training tokens counted per genre.
    pub tokens: Vec<usize>,
}

/// Add-one smoothed log2 probabilities of a code histogram.
fn log_probs<'a>(codes: impl Iterator<Item = &'a i64>, bins: usize) -> Vec<f64> {
    let mut h = vec![1f64; bins];
    for &t in codes {
        h[(t.max(0) as usize).min(bins - 1)] += 1.0;
    }
    let total: f64 = h.iter().sum();
    h.iter().map(|&n| (n / total).log2()).collect()
}

/// Mean bits of `tokens[p]` over `positions` under log probabilities `lp`.
fn mean_bits(lp: &[f64], tokens: &[i64], positions: &[usize]) -> f64 {
    let bins = lp.len();
    let s: f64 = positions
        .iter()
        .map(|&p| -lp[(tokens[p].max(0) as usize).min(bins - 1)])
        .sum();
    s / positions.len().max(1) as f64
}

impl GenreBag {
    /// `codes[g]`: the training tokens of genre `ids[g]`.
    pub fn new(ids: &[i64], codes: &[Vec<i64>], bins: usize) -> Self {
        let bins = bins.max(1);
        let genres = ids
            .iter()
            .zip(codes)
            .map(|(&id, c)| (id, log_probs(c.iter(), bins)))
            .collect();
        Self {
            genres,
            pooled: log_probs(codes.iter().flatten(), bins),
            tokens: codes.iter().map(Vec::len).collect(),
        }
    }

    /// Mean bits per token of `tokens[p]` for `p` in `positions` under all genres' codes pooled.
    pub fn pooled_bits(&self, tokens: &[i64], positions: &[usize]) -> f64 {
        mean_bits(&self.pooled, tokens, positions)
    }

    /// Mean bits per token of `tokens[p]` for `p` in `positions` under each genre, in order.
    pub fn bits(&self, tokens: &[i64], positions: &[usize]) -> Vec<(i64, f64)> {
        self.genres
            .iter()
            .map(|(id, lp)| (*id, mean_bits(lp, tokens, positions)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The genre with the fewest bits (the ranking `quality::labels` takes through `Spread`).
    fn best(bag: &GenreBag, tokens: &[i64], positions: &[usize]) -> i64 {
        let bits = bag.bits(tokens, positions);
        bits.iter().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap().0
    }

    #[test]
    fn picks_the_genre_whose_codes_the_file_uses() {
        // Genre 3 uses codes 0..4, genre 5 codes 4..8.
        let a: Vec<i64> = (0..400).map(|i| i % 4).collect();
        let b: Vec<i64> = (0..100).map(|i| 4 + i % 4).collect();
        let bag = GenreBag::new(&[3, 5], &[a, b], 8);
        assert_eq!(bag.tokens, vec![400, 100]);
        let file = [1i64, 2, 6, 5, 7, 4];
        let all: Vec<usize> = (0..file.len()).collect();
        assert_eq!(best(&bag, &file, &all), 5);
        // Only the first two tokens: genre 3's codes.
        assert_eq!(best(&bag, &file, &[0, 1]), 3);
        // Add-one smoothing: code 1 under genre 3 is (100 + 1) / (400 + 8).
        let bits = bag.bits(&file, &[0]);
        assert!((bits[0].1 + (101.0f64 / 408.0).log2()).abs() < 1e-12);
        assert!((bits[1].1 + (1.0f64 / 108.0).log2()).abs() < 1e-12);
        // Pooled: code 1 is 100 of the 500 training tokens, + 1 of 8 smoothing counts.
        assert!((bag.pooled_bits(&file, &[0]) + (101.0f64 / 508.0).log2()).abs() < 1e-12);
    }
}
