//! Small, deterministic statistics for the study: means with standard errors, Jensen–Shannon
//! divergence, permutation tests and bootstrap intervals. Every random draw comes from the
//! counter RNG with a fixed seed, so a rerun prints the same p-values.

use crate::util::uniform;

/// Iterations for permutation tests and bootstraps.
pub const ITERS: usize = 2000;
/// Seed of all resampling in the report.
pub const STATS_SEED: u64 = 0x5EED_57A7;

pub fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        return f64::NAN;
    }
    x.iter().sum::<f64>() / x.len() as f64
}

/// Sample standard deviation (n − 1); 0 for fewer than two values.
pub fn std_dev(x: &[f64]) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    let m = mean(x);
    (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64).sqrt()
}

/// Standard error of the mean; 0 for fewer than two values.
pub fn std_err(x: &[f64]) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    std_dev(x) / (x.len() as f64).sqrt()
}

/// Jensen–Shannon divergence in bits between two histograms (normalised here); in [0, 1].
pub fn js_divergence(p: &[f64], q: &[f64]) -> f64 {
    let n = p.len().max(q.len());
    let sp: f64 = p.iter().sum();
    let sq: f64 = q.iter().sum();
    if sp <= 0.0 || sq <= 0.0 {
        return 0.0;
    }
    let get = |v: &[f64], i: usize, s: f64| v.get(i).copied().unwrap_or(0.0) / s;
    let mut d = 0.0;
    for i in 0..n {
        let a = get(p, i, sp);
        let b = get(q, i, sq);
        let m = 0.5 * (a + b);
        if a > 0.0 {
            d += 0.5 * a * (a / m).log2();
        }
        if b > 0.0 {
            d += 0.5 * b * (b / m).log2();
        }
    }
    d.clamp(0.0, 1.0)
}

/// Shannon entropy in bits of a histogram.
pub fn entropy_bits(h: &[f64]) -> f64 {
    let s: f64 = h.iter().sum();
    if s <= 0.0 {
        return 0.0;
    }
    -h.iter()
        .filter(|v| **v > 0.0)
        .map(|v| (v / s) * (v / s).log2())
        .sum::<f64>()
}

/// Deterministic Fisher–Yates shuffle for resample `iter` of stream `seed`.
fn shuffle<T>(v: &mut [T], seed: u64, iter: u64) {
    for i in (1..v.len()).rev() {
        let j = (uniform(seed, 1, iter, i as u64) * (i + 1) as f64) as usize;
        v.swap(i, j.min(i));
    }
}

/// Two-sided paired test of mean(d) = 0 by sign flips: exact for n ≤ 12, else `ITERS` draws.
/// Returns (mean, standard error, p).
pub fn paired_test(d: &[f64], seed: u64) -> (f64, f64, f64) {
    let n = d.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let obs = mean(d).abs();
    let tol = 1e-12 * (1.0 + obs);
    let (mut hits, mut total) = (0usize, 0usize);
    let mut count = |signs: &dyn Fn(usize) -> bool| {
        let m = d
            .iter()
            .enumerate()
            .map(|(i, v)| if signs(i) { -v } else { *v })
            .sum::<f64>()
            / n as f64;
        total += 1;
        if m.abs() >= obs - tol {
            hits += 1;
        }
    };
    if n <= 12 {
        for mask in 0u32..(1 << n) {
            count(&|i| mask >> i & 1 == 1);
        }
        (mean(d), std_err(d), hits as f64 / total as f64)
    } else {
        for it in 0..ITERS {
            count(&|i| uniform(seed, 2, it as u64, i as u64) < 0.5);
        }
        (mean(d), std_err(d), (hits + 1) as f64 / (total + 1) as f64)
    }
}

/// Two-sided permutation test of mean(a) − mean(b); returns (difference, p).
pub fn two_sample_test(a: &[f64], b: &[f64], seed: u64) -> (f64, f64) {
    if a.is_empty() || b.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let obs = mean(a) - mean(b);
    let mut all: Vec<f64> = a.iter().chain(b).copied().collect();
    let mut hits = 0;
    for it in 0..ITERS {
        shuffle(&mut all, seed, it as u64);
        let d = mean(&all[..a.len()]) - mean(&all[a.len()..]);
        if d.abs() >= obs.abs() - 1e-12 * (1.0 + obs.abs()) {
            hits += 1;
        }
    }
    (obs, (hits + 1) as f64 / (ITERS + 1) as f64)
}

/// Percentile bootstrap interval (95 %) of the mean.
pub fn bootstrap_ci(x: &[f64], seed: u64) -> (f64, f64) {
    if x.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = x.len();
    let mut means: Vec<f64> = (0..ITERS)
        .map(|it| {
            (0..n)
                .map(|i| {
                    x[((uniform(seed, 3, it as u64, i as u64) * n as f64) as usize).min(n - 1)]
                })
                .sum::<f64>()
                / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let q = |p: f64| means[((p * (ITERS - 1) as f64).round() as usize).min(ITERS - 1)];
    (q(0.025), q(0.975))
}

/// Spread within groups against distance between groups.
#[derive(Clone, Debug, PartialEq)]
pub struct WithinBetween {
    /// Mean distance between two items of the same group (e.g. two seeds of one cell).
    pub within: f64,
    pub within_se: f64,
    /// Mean distance between two items of different groups.
    pub between: f64,
    pub between_se: f64,
    /// One-sided permutation p-value of (between − within) under shuffled group labels.
    pub p: f64,
    pub n_items: usize,
    pub n_groups: usize,
}

/// Permutation test: is the distance between groups larger than within them? `dist` is a full
/// symmetric distance matrix over items, `group` their group labels.
pub fn within_between(dist: &[Vec<f64>], group: &[usize], seed: u64) -> Option<WithinBetween> {
    let n = group.len();
    let split = |g: &[usize]| {
        let (mut w, mut b) = (vec![], vec![]);
        for i in 0..n {
            for j in i + 1..n {
                if g[i] == g[j] {
                    w.push(dist[i][j]);
                } else {
                    b.push(dist[i][j]);
                }
            }
        }
        (w, b)
    };
    let (w, b) = split(group);
    if w.is_empty() || b.is_empty() {
        return None;
    }
    let obs = mean(&b) - mean(&w);
    let mut perm = group.to_vec();
    let mut hits = 0;
    for it in 0..ITERS {
        shuffle(&mut perm, seed, it as u64);
        let (pw, pb) = split(&perm);
        if pw.is_empty() || pb.is_empty() {
            continue;
        }
        if mean(&pb) - mean(&pw) >= obs - 1e-12 * (1.0 + obs.abs()) {
            hits += 1;
        }
    }
    let mut groups = group.to_vec();
    groups.sort_unstable();
    groups.dedup();
    Some(WithinBetween {
        within: mean(&w),
        within_se: std_err(&w),
        between: mean(&b),
        between_se: std_err(&b),
        p: (hits + 1) as f64 / (ITERS + 1) as f64,
        n_items: n,
        n_groups: groups.len(),
    })
}

/// Euclidean distance.
pub fn euclid(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Standardise columns of a feature matrix to zero mean and unit variance (constant columns
/// become 0), so that Hz and dB weigh alike in distances.
pub fn zscore(rows: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let Some(first) = rows.first() else {
        return vec![];
    };
    let d = first.len();
    let mut out = rows.to_vec();
    for j in 0..d {
        let col: Vec<f64> = rows.iter().map(|r| r[j]).collect();
        let m = mean(&col);
        let s = std_dev(&col);
        for r in out.iter_mut() {
            r[j] = if s > 1e-12 { (r[j] - m) / s } else { 0.0 };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basics() {
        assert_eq!(mean(&[1.0, 2.0, 3.0]), 2.0);
        assert!((std_err(&[1.0, 2.0, 3.0]) - 1.0 / 3f64.sqrt()).abs() < 1e-12);
        assert!((js_divergence(&[1.0, 0.0], &[0.0, 1.0]) - 1.0).abs() < 1e-12);
        assert_eq!(js_divergence(&[2.0, 2.0], &[1.0, 1.0]), 0.0);
        assert!((entropy_bits(&[1.0, 1.0, 1.0, 1.0]) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn tests_detect_effects_and_not_noise() {
        // Exact sign-flip test: all 6 differences positive → p = 2 / 64.
        let (m, _, p) = paired_test(&[1.0, 1.2, 0.9, 1.1, 1.0, 1.3], 1);
        assert!(m > 1.0);
        assert!((p - 2.0 / 64.0).abs() < 1e-12, "{p}");
        let (_, _, p) = paired_test(&[1.0, -1.0, 0.5, -0.5], 1);
        assert_eq!(p, 1.0);
        let (d, p) = two_sample_test(&[5.0, 5.1, 4.9, 5.2], &[1.0, 1.1, 0.9, 1.2], 3);
        assert!(d > 3.9 && p < 0.05, "{d} {p}");
        let (lo, hi) = bootstrap_ci(&[1.0, 2.0, 3.0, 4.0], 4);
        assert!(lo >= 1.0 && hi <= 4.0 && lo < 2.5 && hi > 2.5);
        assert_eq!(
            bootstrap_ci(&[1.0, 2.0, 3.0, 4.0], 4),
            (lo, hi),
            "not deterministic"
        );
    }

    #[test]
    fn within_between_separates_clusters() {
        // Two tight clusters far apart: between ≫ within, significant.
        let pts: Vec<f64> = vec![0.0, 0.1, 0.2, 0.3, 10.0, 10.1, 10.2, 10.3];
        let dist: Vec<Vec<f64>> = pts
            .iter()
            .map(|a| pts.iter().map(|b| (a - b).abs()).collect())
            .collect();
        let wb = within_between(&dist, &[0, 0, 0, 0, 1, 1, 1, 1], 5).unwrap();
        assert!(wb.between > 9.0 && wb.within < 0.4);
        assert!(wb.p < 0.06, "{wb:?}");
        // Interleaved labels: no separation.
        let wb = within_between(&dist, &[0, 1, 0, 1, 0, 1, 0, 1], 5).unwrap();
        assert!(wb.p > 0.3, "{wb:?}");
        assert!(within_between(&dist, &[0, 1, 2, 3, 4, 5, 6, 7], 5).is_none());
    }
}
