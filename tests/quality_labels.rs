//! The label sections of `jukebox quality` on the reference fixture model (random weights,
//! numeric label ids, n_ctx 64): the prompt spread agrees with `rank_labels`, the early-token
//! figure averages the first tokens of each scoring window, held-out genre accuracy covers the
//! held-out files, and a missing corpus skips that section instead of failing.

use candle_core::Device;
use jukebox::checkpoint::ModelDir;
use jukebox::labels::{Field, IdSet, Labeller};
use jukebox::prior::rank::{self, RankRequest};
use jukebox::prior::SAMPLE_RATE;
use jukebox::quality::labels::{self, LabelOpts, Section};
use jukebox::quality::report::labels_markdown;
use jukebox::util::splitmix64;
use std::path::{Path, PathBuf};

const SR: u32 = 44_100;
const MODEL: &str = "tests/fixtures/reference/fixtures/model";

fn noise(seconds: f64, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..(seconds * SR as f64) as usize)
        .map(|i| {
            s = splitmix64(s);
            let n = ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32;
            0.3 * n * (-((i % 11_025) as f32) / 2000.0).exp()
        })
        .collect()
}

/// Two artists with three files each (one of each held out), genres `breakbeat` and `rock`.
fn corpus(dir: &Path) -> PathBuf {
    let c = dir.join("corpus");
    std::fs::create_dir_all(c.join("audio")).unwrap();
    let mut csv = String::from("path,artist,genres\n");
    for (a, (artist, genre)) in [("Kit One", "breakbeat"), ("Kit Two", "rock")]
        .iter()
        .enumerate()
    {
        for f in 0..3 {
            let rel = format!("audio/{a}-{f}.wav");
            jukebox::audio::write_wav_i16(&c.join(&rel), &noise(1.0, (a * 10 + f) as u64), SR)
                .unwrap();
            csv.push_str(&format!("{rel},{artist},{genre}\n"));
        }
    }
    std::fs::write(c.join("metadata.csv"), csv).unwrap();
    c
}

fn tmp(name: &str) -> PathBuf {
    let t = std::env::temp_dir().join(format!(
        "jukebox-quality-labels-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&t);
    std::fs::create_dir_all(&t).unwrap();
    t
}

fn opts(prompt: PathBuf, corpus: Option<PathBuf>) -> LabelOpts {
    LabelOpts {
        prompt,
        prompt_genre: Some("#2".into()),
        artists: true,
        early: 16,
        corpus,
        split_seed: 0,
        valid_fraction: 0.1,
        max_files: 8,
        windows_per_file: 1,
    }
}

#[test]
fn prompt_spread_matches_rank_labels_and_a_missing_corpus_is_skipped() {
    let t = tmp("prompt");
    let prompt = t.join("prompt.wav");
    // 1.5 s = 516 top-level tokens: windows at 0, 64, …, 448 and a last one at 452.
    jukebox::audio::write_wav_i16(&prompt, &noise(1.5, 3), SR).unwrap();
    let md = ModelDir::open(Path::new(MODEL)).unwrap();
    let dev = Device::Cpu;
    let r = labels::measure(&md, &opts(prompt.clone(), None), &dev, &mut |_| {}).unwrap();

    // No corpus: skipped, with the reason.
    match &r.accuracy {
        Section::Skipped(why) => assert!(why.contains("no corpus"), "{why}"),
        Section::Measured(a) => panic!("measured without a corpus: {a:?}"),
    }
    let Section::Measured(p) = &r.prompt else {
        panic!("prompt section skipped: {:?}", r.prompt)
    };
    assert_eq!((p.level, p.n_ctx), (2, 64));
    assert!(p.bag.is_none(), "no corpus, no bag of codes");
    assert_eq!(p.tokens, 66_150 / 128);
    assert_eq!(p.windows, 9);
    // 8 whole windows × 16 early positions; the last window (at 452) scores only 512..516, its
    // positions 60..64: none early.
    assert_eq!(p.early_positions, 8 * 16);
    let md_cfg = &md.config.priors[2];
    let ids = IdSet::for_model(Path::new(MODEL), md_cfg).unwrap();
    let n_genres = rank::candidates(&ids, Field::Genre, None).len();
    let n_artists = rank::candidates(&ids, Field::Artist, None).len();
    assert_eq!(p.genres.scored.len(), n_genres);
    assert_eq!(p.artists.as_ref().unwrap().scored.len(), n_artists);
    for s in std::iter::once(&p.genres.baseline)
        .chain(&p.genres.scored)
        .chain(&p.artists.as_ref().unwrap().scored)
    {
        assert!(s.whole.is_finite() && s.whole > 0.0, "{s:?}");
        assert!(s.early.is_finite() && s.early > 0.0, "{s:?}");
    }
    assert!(p.genres.spread(false) >= 0.0 && p.genres.spread(true) >= 0.0);
    assert_eq!(p.expected.as_ref().map(|e| e.0), Some(2));
    let bound = (n_genres as f64).log2() * 9.0 / p.tokens as f64;
    assert!((p.bound_whole() - bound).abs() < 1e-12);

    // The whole-window figures are what `rank-labels` computes on the same codes.
    let prior = md.prior(2, &dev).unwrap();
    let vq = md.vqvae(&dev).unwrap();
    let audio = jukebox::audio::load(&prompt).unwrap();
    let n = audio.samples.len() / 128 * 128;
    let x = candle_core::Tensor::from_slice(&audio.samples[..n], (1, n), &dev).unwrap();
    let tokens: Vec<i64> = vq
        .encode(&x, 2)
        .unwrap()
        .to_dtype(candle_core::DType::I64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let mut lab = Labeller::for_model(Path::new(MODEL), md_cfg, SAMPLE_RATE).unwrap();
    lab.quiet = true;
    let lc = md_cfg.labels.as_ref().unwrap();
    let min_s = if lc.include_time_signal {
        lc.min_duration
    } else {
        0.0
    };
    let req = RankRequest {
        candidates: rank::candidates(&ids, Field::Genre, None),
        artist: "unknown".into(),
        genres: vec![],
        lyrics: None,
        total_length: ((n as f64 / SR as f64).max(min_s) * SAMPLE_RATE).round() as i64,
    };
    let ranking = rank::rank_labels(&prior, &lab, &req, &tokens, None, 4, &mut |_, _| {}).unwrap();
    assert!((ranking.baseline_bits - p.genres.baseline.whole).abs() < 1e-4);
    for s in &ranking.scored {
        let mine = p.genres.get(s.candidate.id).unwrap();
        assert!((s.bits - mine.whole).abs() < 1e-4, "{s:?} vs {mine:?}");
    }

    // The early figure is the mean of the per-position bits over positions 0..16 of each window.
    let bases = vec![lab.base(&req.baseline(), req.total_length, 0).unwrap()];
    let bits = labels::position_bits(&prior, &lab, &bases, &tokens, 1).unwrap();
    assert_eq!(bits[0].len(), tokens.len());
    let by_hand: f64 = (0..8)
        .flat_map(|w| (0..16).map(move |j| w * 64 + j))
        .map(|i| f64::from(bits[0][i]))
        .sum::<f64>()
        / 128.0;
    assert!(
        (p.genres.baseline.early - by_hand).abs() < 1e-9,
        "{} vs {by_hand}",
        p.genres.baseline.early
    );

    let md_text = labels_markdown(&r);
    for needle in [
        "## Labels: prompt label spread (top level)",
        "| baseline: no label |",
        "**spread: worst − best genre**",
        "**spread: worst − best artist**",
        "| the prompt's genre `#2`",
        "| bound: log2(",
        "## Labels: held-out genre accuracy (top level)",
        "Skipped: no corpus given",
    ] {
        assert!(md_text.contains(needle), "missing `{needle}` in\n{md_text}");
    }
    assert!(
        !md_text.contains("NaN") && !md_text.contains("n/a"),
        "{md_text}"
    );
    let _ = std::fs::remove_dir_all(&t);
}

#[test]
fn heldout_genre_accuracy_scores_every_heldout_file() {
    let t = tmp("heldout");
    let prompt = t.join("prompt.wav");
    jukebox::audio::write_wav_i16(&prompt, &noise(0.15, 4), SR).unwrap();
    let c = corpus(&t);
    let md = ModelDir::open(Path::new(MODEL)).unwrap();
    let mut o = opts(prompt, Some(c));
    o.artists = false;
    o.prompt_genre = Some("#999".into());
    let r = labels::measure(&md, &o, &Device::Cpu, &mut |_| {}).unwrap();
    let p = r.prompt.measured().unwrap();
    assert!(p.artists.is_none());
    assert!(p.expected.is_none() && p.expected_note.is_some());
    // With a corpus the prompt is also ranked by the bag of codes, every genre of the model,
    // beside its pooled histogram ("no label").
    let bag = p
        .bag
        .as_ref()
        .expect("a bag-of-codes ranking with a corpus");
    assert_eq!(bag.scored.len(), p.genres.scored.len());
    let (lo, hi) = (
        bag.best(false).unwrap().whole,
        bag.worst(false).unwrap().whole,
    );
    assert!(lo <= hi && bag.baseline.whole.is_finite(), "{bag:?}");
    // 0.15 s = 51 tokens: one window shorter than n_ctx, its first 16 tokens early.
    assert_eq!((p.windows, p.early_positions), (1, 16));
    let Section::Measured(a) = &r.accuracy else {
        panic!("accuracy skipped: {:?}", r.accuracy)
    };
    assert!(a.split.held_out);
    assert_eq!(a.files.len(), 2, "{a:?}");
    assert!(a.left_out.is_empty(), "{:?}", a.left_out);
    for f in &a.files {
        // 1 s files, at most one window of 64 tokens from the start.
        assert_eq!(f.tokens, 64);
        assert_eq!(f.genre_ids.len(), 1);
    }
    assert!(a.accuracy(false) >= 0.0 && a.accuracy(false) <= 1.0);
    assert!((a.chance() - 1.0 / a.n_genres as f64).abs() < 1e-12);
    // The bag of codes was fitted on every genre's training clips and picked for every file.
    assert_eq!(a.bag_tokens.len(), a.n_genres);
    assert_eq!(a.bag_clips, labels::BAG_CLIPS);
    for f in &a.files {
        assert!(!f.bag_whole.is_empty() && f.bag_whole != "-", "{f:?}");
        assert!(!f.bag_early.is_empty() && f.bag_early != "-", "{f:?}");
        // A hit is rank 1 and a miss a later rank, for the prior and the bag alike.
        for (k, hit) in [f.hit_whole, f.hit_early, f.bag_hit_whole, f.bag_hit_early]
            .into_iter()
            .enumerate()
        {
            assert_eq!(f.rank[k] == 1, hit, "{f:?}");
            assert!((1..=a.n_genres).contains(&f.rank[k]), "{f:?}");
        }
    }
    assert!((a.chance_rank() - (a.n_genres as f64 + 1.0) / 2.0).abs() < 1e-12);
    let text = labels_markdown(&r);
    for needle in [
        "| **top-1 genre accuracy** |",
        "| baseline: chance",
        "| baseline: bag of codes",
        "| baseline: bag of codes (each genre's training-code histogram), best genre |",
        "| mean rank of the file's genre (1 = first of",
        "| baseline: chance, mean rank |",
        "| `audio/",
        "Note: the model has no genre `#999`",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in\n{text}");
    }
    let _ = std::fs::remove_dir_all(&t);
}
