//! The label pathway, end to end, on a corpus where the genre label is the only way to predict
//! the first tokens of a window (models/default/TRAINING.md, "Why the labels seem to do nothing").
//!
//! Why: the bundled model's labels change nothing measurable (`rank-labels` finds every genre
//! within ±0.004 bits/token of "no label"). That is either the code ignoring labels somewhere
//! between the training batch and the logits, or a data/recipe that never teaches them. This test
//! separates the two: it trains a tiny top prior (the `tiny` preset, level 2) with the library's
//! own `PriorTrainer` (`train_batch` builds the label rows and applies label dropout to id 0) on
//! synthetic codes whose content is fixed by the genre, then checks that the trained prior
//! *uses* the genre, through the library's scoring, ranking and sampling paths:
//!
//! * the training loss itself reaches what only a label-using prior can reach;
//! * teacher-forced bits ([`score_sequence`]) on fresh windows: under the true genre far fewer
//!   bits than under a wrong genre or no label (id 0), above all on the first token;
//! * [`rank_labels`] (the `jukebox rank-labels` path) puts the true genre first for every window;
//! * ancestral samples ([`sample_window`], KV-cached, temperature 1) follow their genre's pattern;
//! * a second prior trained with the label-contrast term (`train.label_contrast`) makes a wrong
//!   genre cost bits after the first token too, where the plain prior's context alone decides.
//!
//! The corpus: 4 genres, each cycling through its own 8 of the tiny VQ-VAE's 32 codes in a
//! scrambled order (genre g plays only its codes, in its order). Every (genre, artist 1..=3)
//! pair has one track per phase of the cycle and windows start anywhere, so a window's first
//! token is one of the genre's 8 codes at random, whatever the artist and the timing labels say.
//! Without a label the first token is one of all 32 codes (5 bits), with the true genre one of 8
//! (3 bits), with a wrong genre a code the prior was taught to rule out; every later token
//! follows from the one before. So an ideal prior pays exactly 2 bits more per window without a
//! label than with the true one, all on the first token, and far more under a wrong genre. (No
//! corpus can do more for "no label": the bits a label saves over a whole window are at most
//! log2 of the number of genres, so the first token is where the effect must show.)
//!
//! If the label were dropped anywhere (e.g. the genre column zeroed before the embedding), true,
//! wrong and no-label bits would coincide, the ranking would be arbitrary and samples would pick
//! a pattern at random (about 1 in 4 of the asked genre): every test here fails. Checked by
//! zeroing the genre column of the training batches (all four tests fail: training ends at
//! 0.313 bits/token, first-token bits 4.998 true / 5.017 none / 4.993 wrong, rank-labels finds
//! the true genre no better than no label, samples start in their genre's codes 16-31 % of the
//! time) and of the scoring and sampling rows only (the bits and sampling tests fail).
//!
//! What this covers: `PriorTrainer` batches → label embedding → logits, teacher-forced scoring
//! and `rank_labels` with `Labeller` rows, and KV-cached sampling, all in memory. It does not
//! cover the corpus → id mapping of `train prior` (tracks get their ids directly here), saving
//! and loading checkpoints, or the official id lists; a label-blind model trained through those
//! needs them checked too before blaming the data or the recipe alone.

use candle_core::{DType, Device, Tensor};
use jukebox::labels::{Field, IdSet, Labeller, Meta};
use jukebox::prior::rank::{candidates, rank_labels, RankRequest};
use jukebox::prior::{sample_window, score_sequence, Prior, SampleOpts, SAMPLE_RATE};
use jukebox::train::config::{PriorRunConfig, VqvaeRunConfig};
use jukebox::train::optim::OptimConfig;
use jukebox::train::prior::{CodeTrack, PriorData, PriorTrainer};
use jukebox::util::splitmix64;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Genre ids 1..=GENRES (0 is unknown).
const GENRES: usize = 4;
/// Artist ids 1..=ARTISTS; every artist plays every genre, so artists carry no information.
const ARTISTS: usize = 3;
/// Window length of the prior (tokens).
const N_CTX: usize = 16;
const TRACK_LEN: usize = 64;
const STEPS: u64 = 400;
const BATCH: usize = 16;
/// Peak learning rate (decayed linearly to 0 over the second half).
const LR: f64 = 1e-2;
const SEED: u64 = 7;
const LABEL_DROPOUT: f64 = 0.15;
/// Fresh windows per genre for scoring and ranking.
const EVAL_PER_GENRE: usize = 8;
/// Samples per genre.
const SAMPLES_PER_GENRE: usize = 32;
/// Positions at the start of a window that only the label can predict.
const HEAD: usize = 1;
/// Codes per genre (the cycle's period).
const PERIOD: usize = 8;

/// Audio samples per top-level token of the tiny VQ-VAE.
const HOP: usize = 128;

/// Deterministic little RNG over splitmix64.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = splitmix64(self.0);
        (self.0 % n as u64) as usize
    }
}

/// Each genre's cycle through its PERIOD codes (index g − 1): disjoint slices of one scrambled
/// list of all codes.
fn cycles(bins: usize) -> Vec<Vec<u32>> {
    assert_eq!(
        bins,
        GENRES * PERIOD,
        "the corpus is laid out for the tiny VQ-VAE's 32 codes"
    );
    let mut perm: Vec<u32> = (0..bins as u32).collect();
    let mut rng = Rng(0x6C61_6265_6C73);
    for i in (1..perm.len()).rev() {
        perm.swap(i, rng.below(i + 1));
    }
    perm.chunks(PERIOD).map(<[u32]>::to_vec).collect()
}

/// The code genre `g` (1-based) plays after `x`, if `x` is one of its codes.
fn successor(cyc: &[Vec<u32>], g: usize, x: u32) -> Option<u32> {
    let c = &cyc[g - 1];
    c.iter().position(|&y| y == x).map(|i| c[(i + 1) % c.len()])
}

fn pattern(cyc: &[Vec<u32>], g: usize, phase: usize, len: usize) -> Vec<u32> {
    let c = &cyc[g - 1];
    (0..len).map(|t| c[(phase + t) % c.len()]).collect()
}

/// Training tracks: for every genre and artist one track per phase, so that at every position of
/// a song each of the genre's codes starts a window equally often whoever the artist: neither the
/// artist nor the timing labels say anything about a window's first token, only the genre does.
fn tracks(cyc: &[Vec<u32>]) -> Vec<CodeTrack> {
    let mut out = vec![];
    for g in 1..=GENRES {
        for artist in 1..=ARTISTS as u32 {
            for phase in 0..PERIOD {
                out.push(CodeTrack {
                    codes: vec![vec![], vec![], pattern(cyc, g, phase, TRACK_LEN)],
                    artist,
                    genres: vec![g as u32],
                    offset_samples: 0,
                    total_samples: TRACK_LEN * HOP,
                    name: format!("g{g}-a{artist}-p{phase}"),
                });
            }
        }
    }
    out
}

/// A scoring window: its true genre, artist and tokens.
struct Window {
    genre: usize,
    artist: usize,
    tokens: Vec<u32>,
}

/// Fresh windows (new phases and artists from another seed).
fn eval_windows(cyc: &[Vec<u32>]) -> Vec<Window> {
    let mut rng = Rng(0xE7A1);
    let mut out = vec![];
    for g in 1..=GENRES {
        for _ in 0..EVAL_PER_GENRE {
            let phase = rng.below(PERIOD);
            out.push(Window {
                genre: g,
                artist: 1 + rng.below(ARTISTS),
                tokens: pattern(cyc, g, phase, N_CTX),
            });
        }
    }
    out
}

struct Trained {
    prior: Prior,
    cycles: Vec<Vec<u32>>,
    train_s: f64,
    first_bits: f64,
    last_bits: f64,
}

/// The tiny top prior trained once on the synthetic corpus (shared by the tests of this file).
fn trained() -> &'static Trained {
    static T: OnceLock<Trained> = OnceLock::new();
    T.get_or_init(|| train(0.0))
}

/// The same, trained with the label-contrast term (weight 1, margin CONTRAST_MARGIN).
fn trained_contrast() -> &'static Trained {
    static T: OnceLock<Trained> = OnceLock::new();
    T.get_or_init(|| train(1.0))
}

/// Bits per token a wrong genre must cost above the true one under the contrast term: more than
/// the first token alone can give over N_CTX tokens, so the later tokens must carry it too.
const CONTRAST_MARGIN: f64 = 2.0;
/// `label_dropout_single` of the contrast run: half of it drops the artist alone.
const CONTRAST_SINGLE_DROPOUT: f64 = 0.6;

fn train(contrast: f64) -> Trained {
    {
        let vq = VqvaeRunConfig::preset("tiny").unwrap().model;
        assert_eq!(vq.hop_lengths()[2], HOP);
        let mut rc = PriorRunConfig::preset("tiny", 2, &vq).unwrap();
        rc.model.n_ctx = N_CTX;
        rc.model.blocks = Some(2);
        let lab = rc.model.labels.as_mut().unwrap();
        lab.n_genres = GENRES + 1;
        lab.n_artists = ARTISTS + 1;
        rc.validate().unwrap();
        let cyc = cycles(rc.model.bins);
        // Linear decay to 0 over the second half: the first-token distribution settles instead of
        // jittering with the last batches.
        let optim = OptimConfig {
            lr: LR,
            lr_warmup: 20,
            lr_use_linear_decay: true,
            lr_start_linear_decay: STEPS / 2,
            lr_decay: STEPS / 2,
            ..rc.optim.clone()
        };
        let mut tr = PriorTrainer::new(
            &rc.model,
            &optim,
            SEED,
            rc.train.init_scale,
            LABEL_DROPOUT,
            &Device::Cpu,
        )
        .unwrap();
        tr.label_contrast = contrast;
        if contrast > 0.0 {
            // Pairs come from windows whose artist alone was dropped.
            tr.label_dropout_single = CONTRAST_SINGLE_DROPOUT;
        }
        tr.label_margin = CONTRAST_MARGIN;
        let data = PriorData::new(&tracks(&cyc), 2, &vq.hop_lengths(), false).unwrap();
        let t0 = Instant::now();
        let (mut first, mut last) = (f64::NAN, f64::NAN);
        let mut recent = vec![];
        for step in 0..STEPS {
            let (b, dropped) = tr.train_batch(&data, BATCH, step).unwrap();
            let s = tr.train_step(&b, dropped, step).unwrap();
            assert!(s.bits.is_finite(), "step {step}: loss {}", s.bits);
            if step == 0 {
                first = s.bits;
            }
            recent.push(s.bits);
            if recent.len() > 20 {
                recent.remove(0);
            }
            last = recent.iter().sum::<f64>() / recent.len() as f64;
        }
        let train_s = t0.elapsed().as_secs_f64();
        eprintln!(
            "label_pathway: trained {STEPS} steps × {BATCH} windows of {N_CTX} tokens in {train_s:.1} s; \
             training bits/token {first:.3} → {last:.3} (mean of the last 20 steps)"
        );
        Trained {
            prior: tr.model.clone(),
            cycles: cyc,
            train_s,
            first_bits: first,
            last_bits: last,
        }
    }
}

fn labeller(prior: &Prior) -> (Arc<IdSet>, Labeller) {
    let l = prior.cfg.labels.as_ref().unwrap();
    let ids = Arc::new(IdSet::numeric(Some(l.n_artists), Some(l.n_genres)));
    let mut lab = Labeller::new(ids.clone(), &prior.cfg, SAMPLE_RATE)
        .unwrap()
        .strict(true);
    lab.quiet = true;
    (ids, lab)
}

fn meta(artist: usize, genre: usize) -> Meta {
    let name = |id: usize| {
        if id == 0 {
            "unknown".to_string()
        } else {
            format!("#{id}")
        }
    };
    Meta::new(name(artist), name(genre), None)
}

/// `y` rows (N, y_len) for window start 0 of a song of TRACK_LEN tokens.
fn y_rows(lab: &Labeller, metas: &[Meta], dev: &Device) -> Tensor {
    let bases: Vec<_> = metas
        .iter()
        .map(|m| lab.base(m, (TRACK_LEN * HOP) as i64, 0).unwrap())
        .collect();
    let (flat, _) = lab.get_y_batch(&bases, 0).unwrap();
    Tensor::from_vec(flat, (metas.len(), lab.y_len()), dev).unwrap()
}

/// Teacher-forced bits of every position of one window per item (`tokens` row-major, N_CTX
/// each), under each item's labels: (items, N_CTX).
fn score_rows(prior: &Prior, lab: &Labeller, metas: &[Meta], tokens: Vec<i64>) -> Vec<Vec<f32>> {
    let dev = prior.device().clone();
    let y = y_rows(lab, metas, &dev);
    let tokens = Tensor::from_vec(tokens, (metas.len(), N_CTX), &dev).unwrap();
    let out = score_sequence(
        prior,
        &tokens,
        &mut |start| {
            assert_eq!(start, 0, "one window per item");
            Ok(Some(y.clone()))
        },
        None,
        false,
        &mut |_, _| {},
    )
    .unwrap();
    out.nll_bits
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec2()
        .unwrap()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Mean bits per token of the head (first HEAD positions), the rest, and the whole window.
#[derive(Debug, Clone, Copy, Default)]
struct Bits {
    head: f64,
    rest: f64,
    whole: f64,
}

fn bits_of(row: &[f32]) -> Bits {
    let f = |s: &[f32]| s.iter().map(|&x| x as f64).sum::<f64>() / s.len() as f64;
    Bits {
        head: f(&row[..HEAD]),
        rest: f(&row[HEAD..]),
        whole: f(row),
    }
}

/// One scoring window's bits under its true genre and no label, and the fewest under a wrong one.
struct WindowBits {
    wi: usize,
    genre: usize,
    tru: Bits,
    none: Bits,
    wrong_head: f64,
    wrong_whole: f64,
}

#[test]
fn training_is_quick_and_reaches_a_loss_only_labels_allow() {
    let t = trained();
    // Under a second in --release on 2 cores when measured; leave room for a busy machine.
    assert!(
        t.train_s < 30.0,
        "training {STEPS} steps took {:.1} s",
        t.train_s
    );
    // Ideal bits/token: with labels (0.85 · 3 + 0.15 · 5) / N_CTX = 0.206 (15 % of the windows
    // dropped to "unknown"), without them 5 / N_CTX = 0.3125.
    let with = ((1.0 - LABEL_DROPOUT) * 3.0 + LABEL_DROPOUT * 5.0) / N_CTX as f64;
    let without = 5.0 / N_CTX as f64;
    assert!(
        t.last_bits < 0.5 * (with + without),
        "training bits/token {:.3} → {:.3} (mean of the last 20 steps); a prior that uses the \
         genre can reach {with:.3}, one that ignores it no less than {without:.3}",
        t.first_bits,
        t.last_bits
    );
}

#[test]
fn true_genre_costs_far_fewer_bits_than_wrong_or_no_label() {
    let t = trained();
    let prior = &t.prior;
    let (_, lab) = labeller(prior);
    let wins = eval_windows(&t.cycles);
    // Items per window: true label, no label, then every wrong genre.
    let per = 2 + (GENRES - 1);
    let mut metas = vec![];
    let mut toks: Vec<i64> = vec![];
    for w in &wins {
        metas.push(meta(w.artist, w.genre));
        metas.push(meta(0, 0));
        for g in (1..=GENRES).filter(|&g| g != w.genre) {
            metas.push(meta(w.artist, g));
        }
        for _ in 0..per {
            toks.extend(w.tokens.iter().map(|&x| x as i64));
        }
    }
    let nll = score_rows(prior, &lab, &metas, toks);

    // Per-position sums by kind: true genre, no label, wrong genres.
    let mut pos = vec![vec![0f64; N_CTX]; 3];
    let mut counts = [0usize; 3];
    let (mut tru, mut none, mut wrong) = (vec![], vec![], vec![]);
    let mut per_window = vec![];
    for (wi, w) in wins.iter().enumerate() {
        let rows = &nll[wi * per..(wi + 1) * per];
        for (k, r) in rows.iter().enumerate() {
            let kind = k.min(2);
            counts[kind] += 1;
            for (p, &x) in pos[kind].iter_mut().zip(r) {
                *p += x as f64;
            }
        }
        let bt = bits_of(&rows[0]);
        let bn = bits_of(&rows[1]);
        let bw: Vec<Bits> = rows[2..].iter().map(|r| bits_of(r)).collect();
        let min = |f: fn(&Bits) -> f64| bw.iter().map(f).fold(f64::INFINITY, f64::min);
        per_window.push(WindowBits {
            wi,
            genre: w.genre,
            tru: bt,
            none: bn,
            wrong_head: min(|b| b.head),
            wrong_whole: min(|b| b.whole),
        });
        tru.push(bt);
        none.push(bn);
        wrong.extend(bw);
    }
    let agg = |v: &[Bits]| Bits {
        head: mean(&v.iter().map(|b| b.head).collect::<Vec<_>>()),
        rest: mean(&v.iter().map(|b| b.rest).collect::<Vec<_>>()),
        whole: mean(&v.iter().map(|b| b.whole).collect::<Vec<_>>()),
    };
    let (at, an, aw) = (agg(&tru), agg(&none), agg(&wrong));
    eprintln!(
        "label_pathway: bits/token over {} fresh windows of {N_CTX} tokens \
         (first token | rest | whole window | positions 0 1 2 3):",
        wins.len()
    );
    for (k, (name, b)) in [
        ("true genre", at),
        ("no label (id 0)", an),
        ("wrong genre", aw),
    ]
    .into_iter()
    .enumerate()
    {
        let p: Vec<String> = pos[k][..4]
            .iter()
            .map(|x| format!("{:.3}", x / counts[k] as f64))
            .collect();
        eprintln!(
            "  {name:<16} {:7.3} | {:6.3} | {:6.3} | {}",
            b.head,
            b.rest,
            b.whole,
            p.join(" ")
        );
    }
    let min_over =
        |f: &dyn Fn(&WindowBits) -> f64| per_window.iter().map(f).fold(f64::INFINITY, f64::min);
    eprintln!(
        "  smallest lead of the true genre in one window: first token {:.3} bits over no label, \
         {:.3} over the best wrong genre; whole window {:.4} / {:.4} bits/token",
        min_over(&|w| w.none.head - w.tru.head),
        min_over(&|w| w.wrong_head - w.tru.head),
        min_over(&|w| w.none.whole - w.tru.whole),
        min_over(&|w| w.wrong_whole - w.tru.whole),
    );
    // Ideal: first token 3 bits (true) vs 5 (no label) vs unbounded (wrong); whole window
    // 3/16 = 0.19 vs 5/16 = 0.31 vs more.
    assert!(
        at.head < an.head - 1.0 && at.head < aw.head - 3.0,
        "mean bits of the first token: true genre {:.3}, no label {:.3}, wrong genre {:.3} — \
         the prior is not using the genre label",
        at.head,
        an.head,
        aw.head
    );
    assert!(
        at.whole < an.whole - 0.06 && at.whole < aw.whole - 0.2,
        "mean bits/token of whole windows: true genre {:.4}, no label {:.4}, wrong genre {:.4} \
         — the prior is not using the genre label",
        at.whole,
        an.whole,
        aw.whole
    );
    // And window by window.
    for WindowBits {
        wi,
        genre: g,
        tru: bt,
        none: bn,
        wrong_head,
        wrong_whole,
    } in per_window
    {
        assert!(
            bt.head < bn.head - 0.3 && bt.head < wrong_head - 2.0,
            "window {wi} (genre {g}): the first token costs {:.3} bits under the true genre, \
             {:.3} with no label, {:.3} under the best wrong genre",
            bt.head,
            bn.head,
            wrong_head
        );
        assert!(
            bt.whole < bn.whole && bt.whole < wrong_whole,
            "window {wi} (genre {g}): whole window {:.4} bits/token under the true genre, {:.4} \
             with no label, {:.4} under the best wrong genre",
            bt.whole,
            bn.whole,
            wrong_whole
        );
    }
}

#[test]
fn rank_labels_puts_the_true_genre_first() {
    let t = trained();
    let prior = &t.prior;
    let (ids, lab) = labeller(prior);
    let cands = candidates(&ids, Field::Genre, None);
    assert_eq!(
        cands.iter().map(|c| c.id).collect::<Vec<_>>(),
        (1..=GENRES as i64).collect::<Vec<_>>()
    );
    let mut gaps = vec![];
    let mut base_gaps = vec![];
    for (wi, w) in eval_windows(&t.cycles).iter().enumerate() {
        let req = RankRequest {
            candidates: cands.clone(),
            artist: format!("#{}", w.artist),
            genres: vec![],
            lyrics: None,
            total_length: (TRACK_LEN * HOP) as i64,
        };
        let toks: Vec<i64> = w.tokens.iter().map(|&x| x as i64).collect();
        let r = rank_labels(prior, &lab, &req, &toks, None, 2, &mut |_, _| {}).unwrap();
        let order: Vec<String> = r
            .scored
            .iter()
            .map(|s| format!("{} {:.4}", s.candidate.name, s.bits))
            .collect();
        assert_eq!(
            r.scored[0].candidate.id, w.genre as i64,
            "window {wi}: rank-labels puts {} first, the codes are genre #{} (no label {:.4}): {order:?}",
            r.scored[0].candidate.name, w.genre, r.baseline_bits
        );
        assert!(
            r.scored[0].bits < r.baseline_bits,
            "window {wi}: the true genre ({:.4}) is no better than no label ({:.4})",
            r.scored[0].bits,
            r.baseline_bits
        );
        gaps.push(r.scored[1].bits - r.scored[0].bits);
        base_gaps.push(r.baseline_bits - r.scored[0].bits);
    }
    let min = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min);
    eprintln!(
        "label_pathway: rank-labels put the true genre first in {} of {} windows; \
         lead over the runner-up mean {:.4} (min {:.4}), over no label mean {:.4} (min {:.4}) bits/token",
        gaps.len(),
        gaps.len(),
        mean(&gaps),
        min(&gaps),
        mean(&base_gaps),
        min(&base_gaps)
    );
}

#[test]
fn samples_follow_their_genre() {
    let t = trained();
    let prior = &t.prior;
    let dev = prior.device().clone();
    let (_, lab) = labeller(prior);
    let cyc = &t.cycles;
    let opts = SampleOpts {
        level: 2,
        ..SampleOpts::default()
    };
    // Which genre's successor rule a transition follows (the genres' codes are disjoint), if any.
    let rule = |a: u32, b: u32| (1..=GENRES).find(|&g| successor(cyc, g, a) == Some(b));
    let sample = |metas: &[Meta], seed0: u64| -> Vec<Vec<u32>> {
        let y = y_rows(&lab, metas, &dev);
        let cond = prior.conditioning(Some(&y), None).unwrap();
        let prime = Tensor::zeros((metas.len(), 0), DType::I64, &dev).unwrap();
        let seeds: Vec<u64> = (0..metas.len() as u64).map(|i| seed0 + i).collect();
        let out =
            sample_window(prior, &cond, &prime, N_CTX, &seeds, &opts, &mut |_, _| {}).unwrap();
        let v: Vec<Vec<i64>> = out.tokens.to_vec2().unwrap();
        v.into_iter()
            .map(|r| r.into_iter().map(|x| x as u32).collect())
            .collect()
    };
    eprintln!(
        "label_pathway: {SAMPLES_PER_GENRE} samples of {N_CTX} tokens per genre (temperature 1); \
         share of first tokens in the genre's codes, of transitions following each genre's rule:"
    );
    let mut results = vec![];
    for g in 1..=GENRES {
        let metas: Vec<Meta> = (0..SAMPLES_PER_GENRE)
            .map(|i| meta(1 + i % ARTISTS, g))
            .collect();
        let rows = sample(&metas, 1000 * g as u64);
        let first_in =
            rows.iter().filter(|r| cyc[g - 1].contains(&r[0])).count() as f64 / rows.len() as f64;
        let mut by_rule = [0usize; GENRES + 1]; // index 0: no rule
        for r in &rows {
            for w in r.windows(2) {
                by_rule[rule(w[0], w[1]).unwrap_or(0)] += 1;
            }
        }
        let total: usize = by_rule.iter().sum();
        let share = |k: usize| by_rule[k] as f64 / total as f64;
        eprintln!(
            "  genre {g}: first token in its codes {:.3}; transitions own {:.3}, {}, none of them {:.3}",
            first_in,
            share(g),
            (1..=GENRES)
                .filter(|&h| h != g)
                .map(|h| format!("genre {h} {:.3}", share(h)))
                .collect::<Vec<_>>()
                .join(", "),
            share(0)
        );
        results.push((g, first_in, share(g)));
    }
    // With no label the prior picks one of the patterns per sample (label dropout trained id 0
    // as the mixture of the genres).
    let n_none = 2 * SAMPLES_PER_GENRE;
    let metas: Vec<Meta> = (0..n_none).map(|_| meta(0, 0)).collect();
    let rows = sample(&metas, 99_000);
    let mut picked = vec![0usize; GENRES + 1];
    for r in &rows {
        picked[rule(r[0], r[1]).unwrap_or(0)] += 1;
    }
    eprintln!(
        "  no label: {n_none} samples start by the rule of genre 1..={GENRES} {:?}, of none {}",
        &picked[1..],
        picked[0]
    );
    for (g, first_in, own) in results {
        assert!(
            first_in >= 0.8 && own >= 0.8,
            "genre {g}: samples do not follow their label: first token in the genre's codes \
             {first_in:.3}, transitions by the genre's rule {own:.3} (labels ignored: about 0.25)"
        );
    }
    assert!(
        picked[1..].iter().all(|&k| k >= n_none / (8 * GENRES)),
        "without a label the samples should spread over every genre's pattern: {picked:?}"
    );
}

/// Mean bits per token under a wrong genre minus under the true one (artist unknown, as
/// `rank-labels` scores), over the fresh windows and every wrong genre: (first token, rest).
fn wrong_minus_true(t: &Trained) -> (f64, f64) {
    let prior = &t.prior;
    let (_, lab) = labeller(prior);
    let wins = eval_windows(&t.cycles);
    let (mut metas, mut toks) = (vec![], vec![]);
    for w in &wins {
        for g in std::iter::once(w.genre).chain((1..=GENRES).filter(|&g| g != w.genre)) {
            metas.push(meta(0, g));
            toks.extend(w.tokens.iter().map(|&x| x as i64));
        }
    }
    let nll = score_rows(prior, &lab, &metas, toks);
    let (mut head, mut rest) = (vec![], vec![]);
    for rows in nll.chunks(GENRES) {
        let tru = bits_of(&rows[0]);
        for r in &rows[1..] {
            let b = bits_of(r);
            head.push(b.head - tru.head);
            rest.push(b.rest - tru.rest);
        }
    }
    (mean(&head), mean(&rest))
}

/// The label-contrast term (`train.label_contrast`) makes a wrong genre cost bits at every
/// position, not only where the context cannot yet tell the genre: trained without it, the
/// tokens after the first cost about the same under any genre (the context predicts them);
/// with it, they cost more under a wrong genre, by enough that the window's mean gap reaches
/// the margin. Fails if the contrast rows are built with the true genre (no gap is trained) or
/// the hinge's sign is flipped.
#[test]
fn label_contrast_makes_a_wrong_genre_cost_at_every_position() {
    let (plain_head, plain_rest) = wrong_minus_true(trained());
    let c = trained_contrast();
    let (head, rest) = wrong_minus_true(c);
    eprintln!(
        "label_pathway: wrong − true genre, bits/token (first token | rest): plain {plain_head:.2} | \
         {plain_rest:.2}; with label contrast {head:.2} | {rest:.2} (trained in {:.1} s)",
        c.train_s
    );
    let whole = (head * HEAD as f64 + rest * (N_CTX - HEAD) as f64) / N_CTX as f64;
    assert!(
        whole > 0.8 * CONTRAST_MARGIN,
        "with the contrast term the mean gap is {whole:.2} bits/token, margin {CONTRAST_MARGIN}"
    );
    assert!(
        rest > 1.0 && rest > plain_rest + 1.0,
        "after the first token a wrong genre costs {rest:.2} bits/token with the contrast term, \
         {plain_rest:.2} without"
    );
    // The contrast does not buy its gap by losing the true genre's own likelihood.
    assert!(
        c.last_bits < 0.5,
        "training bits/token with the contrast term {:.3}",
        c.last_bits
    );
}
