//! Lyric alignment (official `align.get_alignment`) against the official fixtures, and the
//! window bookkeeping (overlap order, padding) against direct per-window attention.

use candle_core::{DType, Device, Tensor};
use jukebox::labels::{BaseLabel, IdSet, Labeller, Meta};
use jukebox::parity::{self, lyrics_models, Report, Status};
use jukebox::prior::align::{get_alignment, window_attention};
use std::path::{Path, PathBuf};

fn lyrics_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference/fixtures-lyrics")
}

#[test]
fn parity_covers_alignment_of_both_lyrics_priors() {
    let mut r = Report::new(false);
    parity::run(&lyrics_dir(), &mut r).unwrap();
    let mine: Vec<_> = r
        .checks
        .iter()
        .filter(|c| c.name.contains("/alignment"))
        .collect();
    for c in &mine {
        println!("{}", parity::format_check(c));
    }
    let names: Vec<&str> = mine.iter().map(|c| c.name.as_str()).collect();
    for want in [
        "lyrics_models/lyrics_1b/alignment_row0",
        "lyrics_models/lyrics_1b/alignment_row1",
        "lyrics_models/lyrics_5b/alignment_row0",
        "lyrics_models/lyrics_5b/alignment_row1",
    ] {
        assert!(names.contains(&want), "missing check {want}: {names:?}");
    }
    for c in &mine {
        assert_eq!(c.status, Status::Pass, "{}", parity::format_check(c));
        assert!(c.error <= 1e-4, "{}", parity::format_check(c));
    }
}

/// Fixture prior, its labeller and the two items' labels.
fn setup(name: &str) -> (lyrics_models::Loaded, Labeller, Vec<BaseLabel>) {
    let l = lyrics_models::load(&lyrics_dir(), name).unwrap();
    let v3 = l.config["hps"]["labels_v3"].as_bool().unwrap_or(false);
    let ids = if v3 { IdSet::v3() } else { IdSet::v2() };
    let mut lab = Labeller::new(ids, &l.prior.cfg, 44100.0).unwrap();
    lab.quiet = true;
    let bases = l.config["io_inputs"]["metas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let meta = Meta::new(
                m["artist"].as_str().unwrap(),
                m["genre"].as_str().unwrap(),
                m["lyrics"].as_str().map(str::to_string),
            );
            lab.base(
                &meta,
                m["total_length"].as_i64().unwrap(),
                m["offset"].as_i64().unwrap(),
            )
            .unwrap()
        })
        .collect();
    (l, lab, bases)
}

/// The window's attention (n_ctx × n_tokens) and lyric indices at `start`.
fn window(
    l: &lyrics_models::Loaded,
    lab: &Labeller,
    base: &BaseLabel,
    tokens: &[i64],
    start: usize,
) -> (Vec<Vec<f32>>, Vec<i64>) {
    let n_ctx = l.prior.cfg.n_ctx;
    let wl = lab.get_y(base, start as i64).unwrap();
    let y = Tensor::from_vec(wl.y, (1, lab.y_len()), &Device::Cpu).unwrap();
    let tk = Tensor::from_slice(&tokens[start..start + n_ctx], (1, n_ctx), &Device::Cpu).unwrap();
    let w = window_attention(&l.prior, &tk, &y)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    (w, wl.lyric_indices)
}

#[test]
fn earlier_windows_win_the_overlap() {
    for name in ["lyrics_1b", "lyrics_5b"] {
        let (l, lab, bases) = setup(name);
        let tokens = l.io["align_tokens"]
            .to_dtype(DType::I64)
            .unwrap()
            .to_vec2::<i64>()
            .unwrap();
        let n_ctx = l.prior.cfg.n_ctx;
        let hop = n_ctx / 2;
        for (b, base) in bases.iter().enumerate() {
            let a = get_alignment(&l.prior, &lab, base, &tokens[b], hop).unwrap();
            assert_eq!(a.len(), tokens[b].len(), "{name} row {b}");
            assert!(a.iter().all(|r| r.len() == base.full_tokens.len()));
            // 1.5 windows: starts 0 and hop; rows hop..n_ctx come from the first window.
            let (w0, i0) = window(&l, &lab, base, &tokens[b], 0);
            let (w1, i1) = window(&l, &lab, base, &tokens[b], hop);
            let mut checked = 0;
            for r in 0..n_ctx {
                for (j, &c) in i0.iter().enumerate() {
                    if c >= 0 {
                        assert!(
                            (a[r][c as usize] - w0[r][j]).abs() < 1e-6,
                            "{name} {b} {r} {c}"
                        );
                        checked += 1;
                    }
                }
            }
            // Rows after the first window come from the second one.
            for r in n_ctx..tokens[b].len() {
                for (j, &c) in i1.iter().enumerate() {
                    if c >= 0 {
                        assert!((a[r][c as usize] - w1[r - hop][j]).abs() < 1e-6);
                    }
                }
            }
            assert!(checked > 0, "{name} row {b}: no real lyric index");
            // The windows disagree in the overlap, so the order matters for this data.
            let differs = (hop..n_ctx).any(|r| {
                i1.iter()
                    .enumerate()
                    .any(|(j, &c)| c >= 0 && (a[r][c as usize] - w1[r - hop][j]).abs() > 1e-5)
            });
            assert!(
                differs,
                "{name} row {b}: overlap does not tell the windows apart"
            );
            // Attention mass is positive where real lyric keys exist.
            let mass: f32 = a[0].iter().sum();
            assert!(mass > 0.0 && mass <= 1.0 + 1e-5, "{name} row {b}: {mass}");
        }
    }
}

#[test]
fn short_songs_are_padded_then_cut() {
    let (l, lab, bases) = setup("lyrics_5b");
    let n_ctx = l.prior.cfg.n_ctx;
    let tokens: Vec<i64> = (0..n_ctx as i64 - 28).map(|i| (i * 7) % 64).collect();
    let a = get_alignment(&l.prior, &lab, &bases[1], &tokens, n_ctx / 2).unwrap();
    assert_eq!(a.len(), tokens.len());
    let mut padded = tokens.clone();
    padded.resize(n_ctx, 0);
    let (w, idx) = window(&l, &lab, &bases[1], &padded, 0);
    for (r, row) in a.iter().enumerate() {
        for (j, &c) in idx.iter().enumerate() {
            if c >= 0 {
                assert!((row[c as usize] - w[r][j]).abs() < 1e-6);
            }
        }
    }
    // Row 1 has lyrics shorter than n_tokens: the pad slots (−1) are dropped, not written.
    assert!(idx.iter().any(|&c| c < 0));
    assert_eq!(a[0].len(), bases[1].full_tokens.len());
}

#[test]
fn models_without_lyrics_are_refused() {
    let l = lyrics_models::load(&lyrics_dir(), "dense").unwrap();
    let mut lab = Labeller::new(IdSet::v2(), &l.prior.cfg, 44100.0).unwrap();
    lab.quiet = true;
    let base = lab
        .base(&Meta::new("unknown", "unknown", None), 90 * 44100, 0)
        .unwrap();
    let e = get_alignment(&l.prior, &lab, &base, &[1, 2, 3], 8).unwrap_err();
    assert!(e.to_string().contains("not a lyrics prior"), "{e}");
}
