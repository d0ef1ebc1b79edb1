//! `jukebox quality` end to end on the reference fixture model (random weights, 2 s songs) and a
//! synthetic corpus: every section is measured, the baselines have their known values, and
//! the counts follow from the sizes asked for.

use jukebox::quality::{
    self, BitsOpts, LabelOpts, LoopsOpts, QualityOpts, SeparationOpts, TempoOpts,
};
use jukebox::util::splitmix64;
use std::path::{Path, PathBuf};

const SR: u32 = 44_100;
const MODEL: &str = "tests/fixtures/reference/fixtures/model";

/// A drum-like loop: decaying noise bursts on every beat, a low thump on beats 1 and 3.
fn groove(bpm: f64, seconds: f64, seed: u64) -> Vec<f32> {
    let n = (seconds * SR as f64) as usize;
    let beat = 60.0 / bpm * SR as f64;
    let mut s = seed;
    let mut x = vec![0f32; n];
    let mut b = 0usize;
    while (b as f64 * beat) < n as f64 {
        let at = (b as f64 * beat).round() as usize;
        for i in 0..4000.min(n - at) {
            s = splitmix64(s);
            let noise = ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32;
            let env = (-(i as f32) / 600.0).exp();
            let thump = if b.is_multiple_of(2) {
                (2.0 * std::f32::consts::PI * 60.0 * i as f32 / SR as f32).sin()
                    * (-(i as f32) / 2500.0).exp()
            } else {
                0.0
            };
            x[at + i] += 0.4 * noise * env + 0.5 * thump;
        }
        b += 1;
    }
    x
}

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
            let x = groove(100.0 + 10.0 * f as f64, 3.0, (a * 10 + f) as u64);
            jukebox::audio::write_wav_i16(&c.join(&rel), &x, SR).unwrap();
            csv.push_str(&format!("{rel},{artist},{genre}\n"));
        }
    }
    std::fs::write(c.join("metadata.csv"), csv).unwrap();
    c
}

/// Held-out loops named as `render-breaks` names them, and one file without a tempo.
fn loops(dir: &Path) -> PathBuf {
    let c = dir.join("loops");
    std::fs::create_dir_all(c.join("breaks")).unwrap();
    let mut csv = String::from("path,artist,genres\n");
    for (i, (name, bpm)) in [
        ("amen-120bpm", 120.0),
        ("rock-90bpm", 90.0),
        ("untitled", 100.0),
    ]
    .iter()
    .enumerate()
    {
        let rel = format!("breaks/{name}.wav");
        jukebox::audio::write_wav_i16(&c.join(&rel), &groove(*bpm, 2.0, 50 + i as u64), SR)
            .unwrap();
        csv.push_str(&format!("{rel},Kit One,breakbeat\n"));
    }
    std::fs::write(c.join("metadata.csv"), csv).unwrap();
    c
}

#[test]
fn quality_measures_every_section_on_the_fixture_model() {
    let tmp = std::env::temp_dir().join(format!("jukebox-quality-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let corpus = corpus(&tmp);
    let prompt = tmp.join("prompt.wav");
    jukebox::audio::write_wav_i16(&prompt, &groove(120.0, 2.0, 99), SR).unwrap();
    let opts = QualityOpts {
        model: PathBuf::from(MODEL),
        corpus: corpus.clone(),
        prior_corpus: None,
        split_seed: 0,
        valid_fraction: 0.1,
        clips: 2,
        clip_seconds: 1.0,
        bits: BitsOpts {
            windows: 3,
            train_clips: 2,
        },
        tempo: Some(TempoOpts {
            prompt,
            prompt_bpm: 120.0,
            bpm_source: "given".into(),
            prompt_seconds: 0.75,
            seconds: 1.5,
            seeds: 2,
            seed: 5,
            levels: vec![2],
            artist: "unknown".into(),
            genres: vec!["unknown".into()],
            temperature: 1.0,
            top_k: 0,
            top_p: 0.0,
            work: tmp.join("work"),
            ancestral: true,
        }),
        labels: Some(LabelOpts {
            prompt: tmp.join("prompt.wav"),
            prompt_genre: Some("#1".into()),
            artists: true,
            early: 16,
            corpus: Some(corpus.clone()),
            split_seed: 0,
            valid_fraction: 0.1,
            max_files: 4,
            windows_per_file: 1,
        }),
        loops: Some(LoopsOpts {
            dir: loops(&tmp),
            max_files: 8,
            prompt_seconds: 0.75,
            seconds: 1.5,
            seeds: 1,
            seed: 3,
            temperature: 1.0,
            top_k: 0,
            top_p: 0.0,
            work: tmp.join("work-loops"),
        }),
        separation: Some(SeparationOpts {
            corpus: corpus.clone(),
            split_seed: 0,
            valid_fraction: 0.1,
            seeds: 2,
            seed: 1,
            seconds: 1.0,
            clips_per_genre: 3,
            temperature: 1.0,
            top_k: 0,
            top_p: 0.0,
            work: tmp.join("work-separation"),
            bars: false,
        }),
        bars: false,
    };
    let r = quality::measure(&opts).unwrap();

    // Split: one of each artist's three files is held out.
    assert_eq!(
        (r.recon_split.train_files, r.recon_split.valid_files),
        (4, 2)
    );
    assert!(r.recon_split.held_out);

    // Reconstruction: 2 clips of 1 s cut to the top hop (344 · 128 samples).
    assert_eq!(r.clips, 2);
    let clip = 344 * 128;
    let names: Vec<&str> = r.recon.levels.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(
        names,
        ["level 2 (top)", "level 1 (middle)", "level 0 (bottom)"]
    );
    for (u, hop) in r.recon.usage.iter().zip([128, 32, 8]) {
        assert_eq!(u.tokens, 2 * clip / hop, "level {}", u.level);
        assert_eq!(u.bins, 64);
        assert!(u.distinct >= 1 && u.distinct <= 64);
        assert!(u.perplexity >= 1.0 && u.perplexity <= u.distinct as f64 + 1e-9);
    }
    // Code stability under sub-hop shifts: the whole-hop control is exact for a convolutional
    // encoder; shares are shares.
    let shift_hops: Vec<usize> = r.recon.shift.iter().map(|x| x.hop).collect();
    assert_eq!(shift_hops, [128, 32, 8]);
    for x in &r.recon.shift {
        let shifts: Vec<usize> = x.shares.iter().map(|s| s.0).collect();
        assert_eq!(shifts, [x.hop / 8, x.hop / 4, x.hop / 2, x.hop]);
        assert_eq!(x.shares[3].1, 1.0, "level {}: {:?}", x.level, x.shares);
        for (_, share) in &x.shares {
            assert!((0.0..=1.0).contains(share), "{:?}", x.shares);
        }
        assert!(x.chance > 0.0 && x.chance <= 1.0);
    }
    let silence = &r.recon.baselines[0];
    assert_eq!(silence.snr_db, 0.0);
    assert!((silence.spectral_convergence - 1.0).abs() < 1e-9);
    // Equal-bitrate µ-law per level (fixture: 64 codes = 6 bits per token), top first: fewer
    // bits, a lower sample rate, a worse copy.
    let eq: Vec<_> = r.recon.baselines[1..4].iter().collect();
    for (b, (level, hop)) in eq.iter().zip([(2, 128.0), (1, 32.0), (0, 8.0)]) {
        assert_eq!(b.matches_level, Some(level));
        let kbps = 44.1 / hop * 6.0;
        assert!((b.kbps.unwrap() - kbps).abs() < 1e-9, "{b:?}");
        assert!(
            b.name.contains(&format!("{} Hz", (kbps * 125.0).round())),
            "{b:?}"
        );
    }
    assert!(eq[0].spectral_convergence > eq[1].spectral_convergence);
    assert!(eq[1].spectral_convergence > eq[2].spectral_convergence);
    assert!(eq[0].spectral_convergence < 1.01, "{:?}", eq[0]);
    let mu = &r.recon.baselines[4];
    assert_eq!(mu.kbps, Some(352.8));
    assert!(
        mu.snr_db > 20.0 && mu.stft_distance < silence.stft_distance,
        "{mu:?}"
    );
    let lp = &r.recon.baselines[5];
    assert!(lp.snr_db > 0.0 && lp.spectral_convergence < 1.0, "{lp:?}");
    for (lv, level) in r.recon.levels.iter().zip([2, 1, 0]) {
        assert_eq!(lv.matches_level, Some(level));
    }

    // Prior bits: 3 windows of n_ctx = 64 tokens per level; the unigram never exceeds the
    // uniform guess by more than the smoothing allows.
    assert_eq!(
        r.bits.iter().map(|b| b.level).collect::<Vec<_>>(),
        [2, 1, 0]
    );
    for b in &r.bits {
        assert_eq!((b.windows, b.tokens), (3, 3 * 64));
        assert!(b.prior_bits.is_finite() && b.prior_bits > 0.0);
        assert!(b.unigram_bits > 0.0 && b.unigram_bits < 12.0, "{b:?}");
        assert!(b.unigram_train_tokens > 0);
    }

    // Tempo: two seeds per sampled condition, and the fixed baselines.
    let t = r.tempo.as_ref().unwrap();
    assert_eq!(t.seeds, [5, 6]);
    assert_eq!((t.prompt_samples, t.sample_length), (258 * 128, 516 * 128));
    let row = |name: &str| {
        t.rows
            .iter()
            .find(|x| x.name == name)
            .unwrap_or_else(|| panic!("{name}: {:?}", t.rows))
    };
    assert_eq!(row("primed continuation, level 2 (top)").estimates.len(), 2);
    assert!(!row("primed continuation, level 2 (top)").baseline);
    assert_eq!(
        row("unprimed sample, level 2 (top) (same span)")
            .estimates
            .len(),
        2
    );
    assert_eq!(row("silence").mean_error, 120.0);
    assert_eq!(row("silence").mean_folded_error, 120.0);
    // The scratch runs are gone.
    assert!(!tmp.join("work").exists());

    // Labels: the prompt spread and held-out genre accuracy on the 2 held-out files.
    let l = r.labels.as_ref().unwrap();
    let p = l.prompt.measured().unwrap();
    assert!(p.genres.baseline.whole.is_finite() && p.genres.spread(true).is_finite());
    let a = l.accuracy.measured().unwrap();
    assert_eq!(a.files.len(), 2);
    assert!(r.timings.iter().any(|t| t.0 == "labels"));

    // Held-out loops: the two named loops, one continuation each; the untitled one is left out.
    let lp = r.loops.as_ref().unwrap();
    let bpms: Vec<f64> = lp.rows.iter().map(|x| x.bpm).collect();
    assert_eq!(bpms, [120.0, 90.0]);
    assert_eq!(lp.left_out.len(), 1, "{:?}", lp.left_out);
    assert!(lp.left_out[0].contains("untitled"));
    for x in &lp.rows {
        assert_eq!(x.estimates.len(), 1);
        assert!(x.folded_error.is_finite() && x.loop_folded_error.is_finite());
    }
    assert!(!tmp.join("work-loops").exists());

    // Genre separation: both genres, held-out clips and 2 samples each, all classified.
    let sep = r.separation.as_ref().unwrap();
    let names: Vec<&str> = sep.rows.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(sep.chance(), 0.5);
    for x in &sep.rows {
        assert_eq!(x.predicted.len(), 2);
        assert!(x.train_clips >= 1 && x.heldout_clips >= 1, "{x:?}");
        assert!(x.predicted.iter().all(|p| names.contains(&p.as_str())));
    }
    let acc = sep.sample_accuracy();
    assert!((0.0..=1.0).contains(&acc));
    assert!(!tmp.join("work-separation").exists());

    let md = quality::markdown(&r);
    for needle in [
        "## Tempo of primed continuations: held-out loops",
        "## Genre separation of unprimed samples (top level)",
        "## Labels: prompt label spread (top level)",
        "## Labels: held-out genre accuracy (top level)",
        "| **top-1 genre accuracy** |",
        "## VQ-VAE reconstruction",
        "## Codebook usage",
        "## Prior bits per token (held out)",
        "## Tempo of primed continuations",
        "| baseline: silence | 0.0 | 120.0 | 120.0 |",
        "## Where the model does not beat its baseline",
    ] {
        assert!(md.contains(needle), "missing `{needle}` in\n{md}");
    }
    // A random model loses to silence somewhere, and the report says so.
    assert!(!quality::report::misses(&r).is_empty());
    let _ = std::fs::remove_dir_all(&tmp);
}
