//! `jukebox rank-labels` on the reference fixture model: every ranked value equals what
//! `jukebox logits` computes for the same codes and label; batching does not change the values.

use candle_core::Device;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference/fixtures/model")
}

fn jukebox(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_jukebox"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "jukebox {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// A 1.5 s decaying tone with a little noise (so the codes are not all one value).
fn write_prompt(path: &Path) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 44100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let mut state = 12345u64;
    for i in 0..66150u64 {
        state = jukebox::util::splitmix64(state);
        let noise = (state >> 40) as f64 / (1u64 << 24) as f64 - 0.5;
        let t = i as f64 / 44100.0;
        let env = (-((i % 11025) as f64) / 3000.0).exp();
        let x = 0.4 * env * (2.0 * std::f64::consts::PI * 220.0 * t).sin() + 0.05 * noise;
        w.write_sample((x * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

/// Bits per token by (kind, id).
type Rows = HashMap<(String, i64), f64>;

/// The CSV's header, rows and values in file order (a plain split is enough for `#id` names).
fn read_csv(path: &Path) -> (Vec<String>, Rows, Vec<f64>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let mut rows = HashMap::new();
    let mut order = vec![];
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!(f.len(), header.len(), "{l}");
        let bits: f64 = f[6].parse().unwrap();
        order.push(bits);
        rows.insert((f[1].to_string(), f[2].parse().unwrap()), bits);
    }
    (header, rows, order)
}

/// Mean bits per token that `jukebox logits` computes (full precision, from its -o file).
fn logits_bits(dir: &Path, codes: &Path, level: &str, label: &[&str]) -> f64 {
    let out = dir.join("logits.safetensors");
    let m = model();
    let mut args = vec![
        "logits",
        "--model",
        m.to_str().unwrap(),
        "--codes",
        codes.to_str().unwrap(),
        "--level",
        level,
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(label);
    jukebox(&args);
    let t = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
    t["nll_bits"]
        .mean_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64
}

#[test]
fn rank_labels_equals_logits_for_every_label() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("prompt.wav");
    write_prompt(&wav);
    let codes = tmp.path().join("codes.safetensors");
    let m = model();
    let ms = m.to_str().unwrap();
    jukebox(&[
        "encode",
        "--model",
        ms,
        wav.to_str().unwrap(),
        "-o",
        codes.to_str().unwrap(),
    ]);
    for level in ["top", "middle"] {
        let csv = tmp.path().join(format!("ranking_{level}.csv"));
        let o = jukebox(&[
            "rank-labels",
            "--model",
            ms,
            "--prompt",
            wav.to_str().unwrap(),
            "--level",
            level,
            "--artists",
            "--top",
            "5",
            "-o",
            csv.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(stdout.contains("no label"), "{stdout}");
        let (header, rows, order) = read_csv(&csv);
        assert_eq!(
            header,
            [
                "rank",
                "kind",
                "id",
                "label",
                "artist",
                "genre",
                "bits_per_token",
                "delta_bits"
            ]
        );
        // Best first, and every genre and artist id of the tables besides 0 is there.
        assert!(order.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
        let n_genres = rows.keys().filter(|(k, _)| k == "genre").count();
        let n_artists = rows.keys().filter(|(k, _)| k == "artist").count();
        assert!(
            n_genres >= 5 && n_artists >= 5,
            "{n_genres} genres, {n_artists} artists"
        );
        let base = rows[&("none".to_string(), 0)];
        let want = logits_bits(tmp.path(), &codes, level, &["--artist", "unknown"]);
        assert!(
            (base - want).abs() <= 1e-4,
            "{level} baseline {base} vs {want}"
        );
        let mut spread = 0f64;
        for ((kind, id), &bits) in &rows {
            let label = format!("#{id}");
            let args: Vec<&str> = match kind.as_str() {
                "genre" => vec!["--genre", &label],
                "artist" => vec!["--artist", &label],
                _ => continue,
            };
            let want = logits_bits(tmp.path(), &codes, level, &args);
            assert!(
                (bits - want).abs() <= 1e-4,
                "{level} {kind} {id}: rank-labels {bits} vs logits {want}"
            );
            spread = spread.max((bits - base).abs());
        }
        // The labels matter in this model, so the comparison above is not vacuous.
        assert!(spread > 1e-3, "{level}: all labels score alike ({spread})");
    }
}

#[test]
fn batching_does_not_change_the_ranking() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("prompt.wav");
    write_prompt(&wav);
    let m = model();
    let run_as = |batch: &str, name: &str, dtype: &str| {
        let csv = tmp.path().join(name);
        jukebox(&[
            "rank-labels",
            "--model",
            m.to_str().unwrap(),
            "--prompt",
            wav.to_str().unwrap(),
            "--prompt-seconds",
            "1",
            "--artists",
            "--max-batch",
            batch,
            "--dtype",
            dtype,
            "-o",
            csv.to_str().unwrap(),
        ]);
        read_csv(&csv).1
    };
    let run = |batch: &str, name: &str| run_as(batch, name, "f32");
    let one = run("1", "b1.csv");
    let seven = run("7", "b7.csv");
    assert_eq!(one.len(), seven.len());
    for (k, v) in &one {
        assert!((v - seven[k]).abs() < 1e-5, "{k:?}: {v} vs {}", seven[k]);
    }
    // Int8 weights (`--dtype q8`): every label's bits within a few hundredths of f32's.
    let q8 = run_as("7", "q8.csv", "q8");
    assert_eq!(q8.len(), one.len());
    let worst = one
        .iter()
        .map(|(k, v)| (v - q8[k]).abs())
        .fold(0f64, f64::max);
    assert!(
        worst > 0.0 && worst < 0.05,
        "q8 vs f32 bits differ by up to {worst}"
    );
    // --json prints the same ranking, best first, on stdout (and nothing else there).
    let o = jukebox(&[
        "rank-labels",
        "--model",
        m.to_str().unwrap(),
        "--prompt",
        wav.to_str().unwrap(),
        "--prompt-seconds",
        "1",
        "--artists",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    let scored = v["scored"].as_array().unwrap();
    assert_eq!(
        scored.len() + 1,
        one.len(),
        "the CSV also has the no-label row"
    );
    let bits: Vec<f64> = scored.iter().map(|x| x["bits"].as_f64().unwrap()).collect();
    assert!(
        bits.windows(2).all(|w| w[0] <= w[1]),
        "not best first: {bits:?}"
    );
    assert!(v["baseline_bits"].as_f64().unwrap() > 0.0);
    assert!(["artist", "genre"].contains(&scored[0]["candidate"]["field"].as_str().unwrap()));
}

#[test]
fn bad_requests_fail_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("prompt.wav");
    write_prompt(&wav);
    let m = model();
    let fail = |extra: &[&str]| -> String {
        let mut args = vec![
            "rank-labels",
            "--model",
            m.to_str().unwrap(),
            "--prompt",
            wav.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = Command::new(env!("CARGO_BIN_EXE_jukebox"))
            .args(&args)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{extra:?} should fail");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    assert!(fail(&["--search", "zzz"]).contains("zzz"));
    assert!(fail(&["--artist", "nobody"]).contains("#12"));
    assert!(fail(&["--prompt-seconds", "5"]).contains("--prompt-seconds"));
    assert!(fail(&["--max-batch", "0"]).contains("--max-batch"));
    // The old name still parses.
    assert!(fail(&["--batch-size", "0"]).contains("--max-batch"));
}

/// All 119 v2 genres besides `unknown` in one forward pass per window, on the official-shaped
/// 5b_lyrics fixture prior (v2 tables of 120 × 4111, lyrics, timing); values equal single-label
/// scoring with the `logits` scorer.
#[test]
fn all_v2_genres_in_one_batch() {
    use jukebox::labels::{Field, IdSet, Labeller};
    use jukebox::prior::rank::{candidates, rank_labels, RankRequest};
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference/fixtures-lyrics");
    let l = jukebox::parity::lyrics_models::load(&dir, "lyrics_5b").unwrap();
    let ids = IdSet::v2();
    let mut lab = Labeller::new(ids.clone(), &l.prior.cfg, 44100.0)
        .unwrap()
        .strict(true);
    lab.quiet = true;
    let cands = candidates(&ids, Field::Genre, None);
    assert_eq!(cands.len(), 119);
    let req = RankRequest {
        candidates: cands,
        artist: "Alan Jackson".into(),
        genres: vec![],
        lyrics: Some("Walking down the road, singing all along".into()),
        total_length: 30 * 44100,
    };
    let n_ctx = l.prior.cfg.n_ctx;
    let tokens: Vec<i64> = (0..n_ctx as i64 + 40).map(|i| (i * 37 + 11) % 64).collect();
    let mut calls = vec![];
    let r = rank_labels(&l.prior, &lab, &req, &tokens, None, 200, &mut |d, n| {
        calls.push((d, n))
    })
    .unwrap();
    assert_eq!(r.scored.len(), 119);
    // One batch of 120 items, two windows: progress goes to 120 of 120.
    assert_eq!(calls.last(), Some(&(120, 120)));
    assert!(r.scored.windows(2).all(|w| w[0].bits <= w[1].bits));
    let artist = ids.artist_id_strict("Alan Jackson").unwrap();
    assert!(artist > 0);
    // Spot-check best, worst and the baseline against one-label scoring.
    let single = |genre: &str| -> f64 {
        let meta = jukebox::labels::Meta {
            artist: if genre == "unknown" {
                "unknown".into()
            } else {
                "Alan Jackson".into()
            },
            genres: vec![genre.into()],
            lyrics: req.lyrics.clone(),
        };
        let base = lab.base(&meta, req.total_length, 0).unwrap();
        let t = candle_core::Tensor::from_slice(&tokens, (1, tokens.len()), &Device::Cpu).unwrap();
        let mut y_at = |s: usize| -> anyhow::Result<Option<candle_core::Tensor>> {
            let w = lab.get_y(&base, s as i64).unwrap();
            Ok(Some(lab.y_tensor(&[w.y], &Device::Cpu).unwrap()))
        };
        let out =
            jukebox::prior::score_sequence(&l.prior, &t, &mut y_at, None, false, &mut |_, _| {})
                .unwrap();
        out.mean_bits().unwrap() as f64
    };
    for s in [&r.scored[0], &r.scored[118]] {
        let want = single(&format!("#{}", s.candidate.id));
        assert!(
            (s.bits - want).abs() <= 1e-4,
            "{}: {} vs {want}",
            s.candidate.name,
            s.bits
        );
        assert_eq!(s.artist, "Alan Jackson");
    }
    let want = single("unknown");
    assert!((r.baseline_bits - want).abs() <= 1e-4);
    assert!(
        r.scored[118].bits - r.scored[0].bits > 1e-3,
        "labels do not matter"
    );
    // Memory-bounded batches: the budget divides by the per-item estimate, within 1..=items.
    use jukebox::prior::rank::{batch_for_budget, item_bytes};
    let per = item_bytes(&l.prior);
    assert!(per > (n_ctx * l.prior.cfg.width * 4) as u64);
    assert_eq!(batch_for_budget(&l.prior, 10 * per + per / 2, 120), 10);
    assert_eq!(batch_for_budget(&l.prior, 0, 120), 1);
    assert_eq!(batch_for_budget(&l.prior, u64::MAX, 120), 120);
}
