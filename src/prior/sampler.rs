//! One sampling step (temperature, then top-k or top-p, then an inverse-CDF draw with the
//! counter RNG) and a KV-cached window sampler.
//!
//! Each item's draw uses `util::uniform(seed, level, window, position)`, so it never depends on
//! its batch position or on what it is batched with; items may carry different labels.

use super::{Conditioning, Prior};
use crate::util::uniform;
use candle_core::{bail, DType, Result, Tensor};
use rayon::prelude::*;

/// Sampling settings (official defaults: temp 1, no filtering; chunked prime prefill).
#[derive(Debug, Clone, PartialEq)]
pub struct SampleOpts {
    /// Logits are divided by this; 0 means greedy (argmax).
    pub temp: f64,
    /// Keep the k most likely tokens (0: off).
    pub top_k: usize,
    /// Keep the smallest set with cumulative probability ≥ p (0: off).
    pub top_p: f64,
    /// Prime tokens prefilled per pass.
    pub chunk_size: usize,
    /// Keep every position's logits in the output (parity, studies).
    pub keep_logits: bool,
    /// Level and window index, for the random stream.
    pub level: u64,
    pub window: u64,
}

impl Default for SampleOpts {
    fn default() -> Self {
        Self {
            temp: 1.0,
            top_k: 0,
            top_p: 0.0,
            chunk_size: 32,
            keep_logits: false,
            level: 0,
            window: 0,
        }
    }
}

impl SampleOpts {
    pub fn validate(&self) -> Result<()> {
        if !(self.temp >= 0.0 && self.temp.is_finite()) {
            bail!(
                "temperature must be a finite number >= 0, got {}",
                self.temp
            );
        }
        if self.top_k > 0 && self.top_p > 0.0 {
            bail!(
                "top-k ({}) and top-p ({}) cannot both be set",
                self.top_k,
                self.top_p
            );
        }
        if !(0.0..=1.0).contains(&self.top_p) {
            bail!("top-p must be in [0, 1], got {}", self.top_p);
        }
        Ok(())
    }
}

/// Entropy (bits) of one step's distribution, before and after temperature/filtering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepEntropy {
    pub raw_bits: f32,
    pub filtered_bits: f32,
    /// −log2 of the drawn token's probability under the raw (unfiltered) distribution: summed
    /// over a sample, the teacher-forced bits of the sample under its own labels, for free.
    pub token_bits: f32,
}

#[cfg(test)]
fn entropy_bits(logits: &[f32]) -> f32 {
    entropy_and_token_bits(logits, None).0
}

/// One pass of exponentials over `logits`: `each(e_i)` with e_i = exp(x_i − m) for every entry
/// in order, and (m, z = Σ e_i, s = Σ e_i (x_i − m)) over the entries with e_i > 0. `None`
/// when no logit is finite.
fn exp_pass(logits: &[f32], mut each: impl FnMut(f64)) -> Option<(f32, f64, f64)> {
    let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    if !m.is_finite() {
        return None;
    }
    let (mut z, mut s) = (0f64, 0f64);
    for &x in logits {
        let d = (x - m) as f64;
        let e = d.exp();
        if e > 0.0 {
            z += e;
            s += e * d;
        }
        each(e);
    }
    Some((m, z, s))
}

/// Entropy in bits from [`exp_pass`]'s sums. −log2 q_i = log2 z − (x_i − m)/ln 2 with
/// q_i = e_i/z, so H = log2 z − Σ e_i (x_i − m) / (z ln 2): one exponential per entry and no
/// logarithm (a log2 per entry was a tenth of a batch-16 sampling step on the bundled model).
fn entropy_from_sums(z: f64, s: f64) -> f64 {
    z.log2() - s / (z * std::f64::consts::LN_2)
}

/// Entropy of softmax(`logits`) and, for `tok`, −log2 of its probability (NaN without it or
/// when no logit is finite), from one pass of exponentials.
fn entropy_and_token_bits(logits: &[f32], tok: Option<usize>) -> (f32, f32) {
    let Some((m, z, s)) = exp_pass(logits, |_| {}) else {
        return (0.0, f32::NAN);
    };
    let t = tok.map_or(f64::NAN, |t| {
        (z.ln() - (logits[t] - m) as f64) / std::f64::consts::LN_2
    });
    (entropy_from_sums(z, s) as f32, t as f32)
}

/// Temperature then top-k / top-p filtering (official `filter_logits`): removed entries
/// become −∞. Temperature 0 keeps only the (first) maximum.
pub fn filter_logits(logits: &[f32], temp: f64, top_k: usize, top_p: f64) -> Vec<f32> {
    let mut l: Vec<f32> = logits.to_vec();
    if temp == 0.0 {
        let best = argmax(&l);
        return l
            .iter()
            .enumerate()
            .map(|(i, &x)| if i == best { x } else { f32::NEG_INFINITY })
            .collect();
    }
    let t = temp as f32;
    for x in &mut l {
        *x /= t;
    }
    if top_k > 0 && top_k < l.len() {
        let mut s = l.clone();
        s.sort_by(|a, b| b.total_cmp(a));
        let kth = s[top_k - 1];
        for x in &mut l {
            if *x < kth {
                *x = f32::NEG_INFINITY;
            }
        }
    }
    if top_p > 0.0 {
        let mut idx: Vec<usize> = (0..l.len()).collect();
        idx.sort_by(|&a, &b| l[b].total_cmp(&l[a]));
        let m = l[idx[0]];
        let e: Vec<f64> = idx.iter().map(|&i| ((l[i] - m) as f64).exp()).collect();
        let z: f64 = e.iter().sum();
        let mut cum = 0.0;
        let mut remove = vec![false; l.len()];
        for (r, &i) in idx.iter().enumerate() {
            // Official: drop where the cumulative probability *before shifting* exceeds p,
            // then shift right by one so the first token always stays.
            if r > 0 && cum > top_p {
                remove[i] = true;
            }
            cum += e[r] / z;
        }
        for (x, rm) in l.iter_mut().zip(remove) {
            if rm {
                *x = f32::NEG_INFINITY;
            }
        }
    }
    l
}

fn argmax(l: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in l.iter().enumerate() {
        if x > l[best] {
            best = i;
        }
    }
    best
}

/// Draw one token from `logits` with uniform `u` ∈ [0, 1) by inverse CDF over the softmax.
pub fn draw(filtered: &[f32], u: f64) -> usize {
    draw_and_entropy(filtered, u).0
}

/// [`draw`] and the entropy of softmax(`filtered`) (as [`entropy_and_token_bits`] gives it,
/// bit for bit) from one [`exp_pass`]: the zeros that the entropy's sums skip add nothing to
/// the draw's.
fn draw_and_entropy(filtered: &[f32], u: f64) -> (usize, f32) {
    let mut e = Vec::with_capacity(filtered.len());
    let Some((_, z, s)) = exp_pass(filtered, |v| e.push(v)) else {
        return (0, 0.0);
    };
    let h = entropy_from_sums(z, s) as f32;
    let target = u * z;
    let mut cum = 0.0;
    let mut last_nonzero = 0;
    for (i, &p) in e.iter().enumerate() {
        if p > 0.0 {
            last_nonzero = i;
            cum += p;
            if cum > target {
                return (i, h);
            }
        }
    }
    (last_nonzero, h)
}

/// One full sampling step for one item: returns the token and the entropies.
pub fn sample_token(logits: &[f32], opts: &SampleOpts, u: f64) -> (usize, StepEntropy) {
    let f = filter_logits(logits, opts.temp, opts.top_k, opts.top_p);
    let (tok, filtered_bits) = draw_and_entropy(&f, u);
    let (raw_bits, token_bits) = entropy_and_token_bits(logits, Some(tok));
    (
        tok,
        StepEntropy {
            raw_bits,
            filtered_bits,
            token_bits,
        },
    )
}

/// Result of one sampled window.
#[derive(Debug, Clone)]
pub struct WindowOutput {
    /// Music tokens of the window (N, n_prime + n_new), prime included.
    pub tokens: Tensor,
    /// The raw transformer sequence as fed back (1b: lyric prefix ++ raw ids), (N, L).
    pub raw: Tensor,
    /// Logits of every position (N, L, vocab) when `keep_logits`; row t predicts raw token t.
    pub logits: Option<Tensor>,
    /// `entropy[item][k]` for the k-th generated token.
    pub entropy: Vec<Vec<StepEntropy>>,
}

/// Sample `n_new` tokens after `prime` (N, n_prime) music tokens (possibly 0 columns) in one
/// window. `seeds[i]` seeds item i. `progress(done, n_new)` is called after every token.
pub fn sample_window(
    prior: &Prior,
    cond: &Conditioning,
    prime: &Tensor,
    n_new: usize,
    seeds: &[u64],
    opts: &SampleOpts,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<WindowOutput> {
    opts.validate()?;
    let n = cond.batch()?;
    let (pn, n_prime) = prime.dims2()?;
    if pn != n || seeds.len() != n {
        bail!(
            "batch mismatch: conditioning {n}, prime {pn}, seeds {}",
            seeds.len()
        );
    }
    let prefix = prior.lyric_prefix_len();
    let shift = prior.music_shift() as i64;
    if prefix + n_prime + n_new > prior.seq_len() {
        bail!(
            "{n_prime} prime + {n_new} new tokens exceed the window of {} tokens",
            prior.seq_len() - prefix
        );
    }
    let mut cache = prior.new_cache(n)?;
    let raw_prime = if n_prime > 0 || prefix > 0 {
        if n_prime > 0 {
            Some(prior.raw_sequence(prime, cond)?)
        } else {
            cond.lyric_prefix.clone()
        }
    } else {
        None
    };
    let mut logits_rows: Vec<Tensor> = vec![];
    let mut raw_cols: Vec<Tensor> = vec![];
    if let Some(rp) = &raw_prime {
        if opts.keep_logits {
            logits_rows.push(prior.prefill_chunked(&mut cache, cond, rp, opts.chunk_size)?);
        } else {
            prior.fill_cache(&mut cache, cond, rp, opts.chunk_size)?;
        }
        raw_cols.push(rp.clone());
    }
    let mut entropy = vec![Vec::with_capacity(n_new); n];
    for k in 0..n_new {
        let pos = cache.pos;
        let logits = prior.step(&mut cache, cond)?;
        let rows = logits.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        // Each row's draw and entropies (a few exponentials per vocabulary entry) on its own
        // thread: at batch 16 they cost as much as a small model's step.
        let draw_row = |(i, row): (usize, &Vec<f32>)| {
            let u = uniform(seeds[i], opts.level, opts.window, (pos - prefix) as u64);
            sample_token(row, opts, u)
        };
        let picks: Vec<(usize, StepEntropy)> = if n > 1 {
            rows.par_iter().enumerate().map(draw_row).collect()
        } else {
            rows.iter().enumerate().map(draw_row).collect()
        };
        let mut toks = Vec::with_capacity(n);
        for (i, (t, e)) in picks.into_iter().enumerate() {
            toks.push(t as i64);
            entropy[i].push(e);
        }
        let t = Tensor::new(toks, prior.device())?;
        cache.accept(&t)?;
        if opts.keep_logits {
            logits_rows.push(logits.unsqueeze(1)?);
        }
        raw_cols.push(t.unsqueeze(1)?);
        progress(k + 1, n_new);
    }
    let raw = if raw_cols.is_empty() {
        Tensor::zeros((n, 0), DType::I64, prior.device())?
    } else {
        Tensor::cat(&raw_cols, 1)?
    };
    let music = raw.narrow(1, prefix, raw.dim(1)? - prefix)?;
    // 1b: raw ids are shifted back and clamped at 0 only at the window end (official).
    let tokens = if shift > 0 {
        (music - shift as f64)?.maximum(0i64)?
    } else {
        music
    };
    let logits = if opts.keep_logits && !logits_rows.is_empty() {
        Some(Tensor::cat(&logits_rows, 1)?)
    } else {
        None
    };
    Ok(WindowOutput {
        tokens,
        raw,
        logits,
        entropy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_and_top_p_filter() {
        let l = [1.0f32, 3.0, 2.0, 0.0];
        let f = filter_logits(&l, 1.0, 2, 0.0);
        assert_eq!(f[1], 3.0);
        assert_eq!(f[2], 2.0);
        assert!(f[0].is_infinite() && f[3].is_infinite());
        // top-p: probs ~ [0.09, 0.665, 0.245, 0.03]; p = 0.5 keeps only the first.
        let f = filter_logits(&l, 1.0, 0, 0.5);
        assert_eq!(f.iter().filter(|x| x.is_finite()).count(), 1);
        let f = filter_logits(&l, 1.0, 0, 0.8);
        assert_eq!(f.iter().filter(|x| x.is_finite()).count(), 2);
        // Temperature before filtering.
        let f = filter_logits(&l, 2.0, 1, 0.0);
        assert_eq!(f[1], 1.5);
        // Greedy
        let f = filter_logits(&l, 0.0, 0, 0.0);
        assert_eq!(draw(&f, 0.999), 1);
    }

    #[test]
    fn inverse_cdf_draw() {
        let l = [0.0f32, 0.0, f32::NEG_INFINITY, 0.0];
        assert_eq!(draw(&l, 0.0), 0);
        assert_eq!(draw(&l, 0.34), 1);
        assert_eq!(draw(&l, 0.99), 3);
        // Frequencies follow the softmax.
        let l = [0.0f32, (3.0f32).ln()];
        let ones = (0..4000)
            .filter(|&i| draw(&l, uniform(3, 0, 0, i)) == 1)
            .count();
        assert!((ones as f64 / 4000.0 - 0.75).abs() < 0.03, "{ones}");
    }

    #[test]
    fn token_bits_are_minus_log2_of_the_raw_probability() {
        let (h, t) = entropy_and_token_bits(&[0.0, 0.0, 0.0, 0.0], Some(3));
        assert!((h - 2.0).abs() < 1e-6 && (t - 2.0).abs() < 1e-6, "{h} {t}");
        // p = (1/4, 3/4): the second token costs log2(4/3) bits; no token gives NaN.
        let l = [0.0, 3f32.ln()];
        let (_, t) = entropy_and_token_bits(&l, Some(1));
        assert!((t - (4.0f32 / 3.0).log2()).abs() < 1e-6, "{t}");
        assert!(entropy_and_token_bits(&l, None).1.is_nan());
        // sample_token reports the drawn token's bits under the unfiltered logits.
        let (tok, s) = sample_token(&l, &SampleOpts::default(), 0.9);
        assert_eq!(tok, 1);
        assert!((s.token_bits - (4.0f32 / 3.0).log2()).abs() < 1e-6);
    }

    /// The shared pass gives `draw`'s token and `entropy_bits`' value bit for bit, with
    /// filtered (−∞) entries and at draws on both sides of each cumulative boundary.
    #[test]
    fn draw_and_entropy_match_the_separate_passes() {
        for seed in 0..40u64 {
            let l: Vec<f32> = (0..37u64)
                .map(|i| {
                    let v = uniform(seed, 1, 0, i);
                    if v < 0.2 {
                        f32::NEG_INFINITY
                    } else {
                        (v * 9.0 - 4.0) as f32
                    }
                })
                .collect();
            for k in 0..50u64 {
                let u = uniform(seed, 2, 0, k);
                let (tok, h) = draw_and_entropy(&l, u);
                let mx = l.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                assert!(l[tok].is_finite() && mx.is_finite());
                // The reference: the draw over exps summed by Iterator::sum, as before.
                let e: Vec<f64> = l.iter().map(|&x| ((x - mx) as f64).exp()).collect();
                let z: f64 = e.iter().sum();
                let mut cum = 0.0;
                let mut want = 0;
                for (i, &p) in e.iter().enumerate() {
                    if p > 0.0 {
                        want = i;
                        cum += p;
                        if cum > u * z {
                            break;
                        }
                    }
                }
                assert_eq!(tok, want, "seed {seed} u {u}");
                assert_eq!(h.to_bits(), entropy_bits(&l).to_bits());
            }
        }
        assert_eq!(draw_and_entropy(&[f32::NEG_INFINITY; 3], 0.5), (0, 0.0));
    }

    #[test]
    fn entropy_values() {
        let e = entropy_bits(&[0.0, 0.0, 0.0, 0.0]);
        assert!((e - 2.0).abs() < 1e-6);
        let (_, s) = sample_token(
            &[1.0, 1.0, 0.0, 0.0],
            &SampleOpts {
                top_k: 2,
                ..Default::default()
            },
            0.5,
        );
        assert!(s.raw_bits > 1.5 && s.raw_bits < 2.0, "{}", s.raw_bits);
        assert!((s.filtered_bits - 1.0).abs() < 1e-6);
        // Ties at the k-th value are kept, as officially (`logits < kth` is removed).
        let (_, s) = sample_token(
            &[0.0; 4],
            &SampleOpts {
                top_k: 2,
                ..Default::default()
            },
            0.5,
        );
        assert!((s.filtered_bits - 2.0).abs() < 1e-6);
        assert!(SampleOpts {
            top_k: 2,
            top_p: 0.5,
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}
