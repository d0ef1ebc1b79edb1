//! End to end on a generated corpus: train a tiny VQ-VAE and three tiny priors through the
//! library entry points that `jukebox train` uses, check that an interrupted + resumed run is
//! bit-identical to a straight one, and assemble a loadable model directory.

use candle_core::{DType, Device, Tensor};
use jukebox::checkpoint::ModelDir;
use jukebox::prior::Prior;
use jukebox::train::assemble::{assemble, AssembleOpts};
use jukebox::train::config::{PriorRunConfig, VqvaeRunConfig};
use jukebox::train::run_prior::{train_prior, PriorOpts};
use jukebox::train::run_vqvae::{train_vqvae, VqvaeOpts};
use jukebox::vqvae::VqVae;
use std::path::{Path, PathBuf};

fn write_wav(path: &Path, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 44100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

/// Two artists × two files, 1.2 s each: tones and clicks, so every level has structure.
fn make_corpus(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut csv = String::from("path,artist,genres\n");
    for (i, (artist, genre)) in [
        ("Tone Maker", "ambient"),
        ("Tone Maker", "ambient"),
        ("Click Kit", "breakbeat"),
        ("Click Kit", "breakbeat|rock"),
    ]
    .iter()
    .enumerate()
    {
        let n = 52920;
        let f = 220.0 * (1.0 + i as f32 * 0.5);
        let s: Vec<f32> = (0..n)
            .map(|t| {
                let x = t as f32 / 44100.0;
                let tone = 0.3 * (std::f32::consts::TAU * f * x).sin();
                let click = if t % 5512 < 200 {
                    0.5 * (-((t % 5512) as f32) / 40.0).exp()
                } else {
                    0.0
                };
                if i < 2 {
                    tone
                } else {
                    click + 0.1 * tone
                }
            })
            .collect();
        let name = format!("f{i}.wav");
        write_wav(&dir.join(&name), &s);
        csv.push_str(&format!("{name},{artist},{genre}\n"));
    }
    std::fs::write(dir.join("metadata.csv"), csv).unwrap();
}

fn vq_cfg() -> VqvaeRunConfig {
    let mut c = VqvaeRunConfig::preset("tiny").unwrap();
    c.train.steps = 6;
    c.train.valid_every = 3;
    c.train.ckpt_every = 100;
    c.train.valid_fraction = 0.3;
    c.train.bandwidth_windows = 2;
    c
}

fn vq_opts(corpus: &Path, out: &Path) -> VqvaeOpts {
    VqvaeOpts {
        corpus: corpus.to_path_buf(),
        out: out.to_path_buf(),
        config: vq_cfg(),
        steps: None,
        resume: false,
        init: None,
        quiet: true,
        stop_after: None,
        device: Device::Cpu,
    }
}

fn prior_opts(corpus: &Path, vq: &Path, out: &Path, level: usize) -> PriorOpts {
    let vq_model = VqvaeRunConfig::preset("tiny").unwrap().model;
    let mut cfg = PriorRunConfig::preset("tiny", level, &vq_model).unwrap();
    cfg.train.steps = 4;
    cfg.train.valid_every = 2;
    cfg.train.ckpt_every = 100;
    cfg.train.valid_fraction = 0.3;
    PriorOpts {
        corpus: corpus.to_path_buf(),
        out: out.to_path_buf(),
        vqvae: vq.to_path_buf(),
        level,
        config: cfg,
        steps: None,
        resume: false,
        init: None,
        codes_cache: None,
        quiet: true,
        stop_after: None,
        device: Device::Cpu,
    }
}

fn model_bytes(out: &Path) -> Vec<u8> {
    std::fs::read(out.join("model").join("model.safetensors")).unwrap()
}

/// Log rows up to the last step, without the timing column (wall time differs).
fn log_without_timing(out: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(out.join("train_log.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let skip = header.iter().position(|h| *h == "step_s").unwrap();
    lines
        .map(|l| {
            l.split(',')
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, c)| c)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

#[test]
fn train_resume_and_assemble_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    make_corpus(&corpus);

    // VQ-VAE: 6 steps straight, and 3 + Ctrl-C + resume for 3 more.
    let a = tmp.path().join("vq_a");
    let oa = train_vqvae(&vq_opts(&corpus, &a)).unwrap();
    assert_eq!(oa.steps_done, 6);
    assert!(!oa.interrupted);
    assert!(
        oa.last_valid.contains_key("snr_db_l0"),
        "{:?}",
        oa.last_valid
    );
    let b = tmp.path().join("vq_b");
    let mut ob = vq_opts(&corpus, &b);
    ob.stop_after = Some(3);
    let first = train_vqvae(&ob).unwrap();
    assert!(first.interrupted && first.steps_done == 3);
    assert!(
        !b.join("model").exists(),
        "an interrupted run writes no final model"
    );
    // A second fresh start into the same folder is refused.
    let e = train_vqvae(&vq_opts(&corpus, &b)).unwrap_err().to_string();
    assert!(e.contains("--resume"), "{e}");
    let mut rb = vq_opts(&corpus, &b);
    rb.resume = true;
    let second = train_vqvae(&rb).unwrap();
    assert_eq!(second.steps_done, 6);
    assert_eq!(
        model_bytes(&a),
        model_bytes(&b),
        "resumed VQ-VAE differs from the straight run"
    );
    assert_eq!(log_without_timing(&a), log_without_timing(&b));
    let log = std::fs::read_to_string(a.join("train_log.csv")).unwrap();
    assert!(log.lines().count() >= 7 && log.contains(",valid,"), "{log}");
    assert!(a.join("metrics.jsonl").is_file());

    // Priors on its codes; the top one also checked for resume equivalence.
    let mut dirs: Vec<PathBuf> = vec![];
    for level in 0..3 {
        let out = tmp.path().join(format!("prior_{level}"));
        let o = train_prior(&prior_opts(&corpus, &a, &out, level)).unwrap();
        assert_eq!(o.steps_done, 4);
        let bits = o.last_valid["valid_bits_per_token"];
        assert!(
            bits.is_finite() && bits > 0.0 && bits < 8.0,
            "level {level}: {bits}"
        );
        assert!(out
            .join("model")
            .join("labels")
            .join("artists.txt")
            .is_file());
        dirs.push(out);
    }
    let cache_files = std::fs::read_dir(corpus.join(".cache"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("codes-"))
        .count();
    assert_eq!(cache_files, 1, "one codes cache per VQ-VAE");
    let tb = tmp.path().join("prior_top_b");
    let mut p = prior_opts(&corpus, &a, &tb, 2);
    p.stop_after = Some(2);
    assert!(train_prior(&p).unwrap().interrupted);
    p.stop_after = None;
    p.resume = true;
    train_prior(&p).unwrap();
    assert_eq!(
        model_bytes(&dirs[2]),
        model_bytes(&tb),
        "resumed prior differs from the straight run"
    );

    // Fine-tuning starts from the given weights.
    let ft = tmp.path().join("prior_ft");
    let mut f = prior_opts(&corpus, &a, &ft, 2);
    f.init = Some(dirs[2].clone());
    f.config.train.steps = 1;
    f.config.optim.lr = 0.0; // no movement: the weights must equal the init's
    train_prior(&f).unwrap();
    assert_eq!(model_bytes(&ft), model_bytes(&dirs[2]));

    // The label-contrast term through the whole command: logged in training and on held-out
    // windows (the corpus has two genres, so every window has a wrong one), and resumed bit for
    // bit after an interruption (its wrong genres are counter-based draws too).
    let contrast = |out: &Path| {
        let mut c = prior_opts(&corpus, &a, out, 2);
        c.init = Some(dirs[2].clone());
        c.config.train.label_contrast = 1.0;
        c.config.train.label_margin = 0.5;
        c.config.train.label_dropout = 0.0;
        c.config.train.label_dropout_single = 1.0; // half the windows lose the artist alone
        c.config.train.log_every = 1;
        c
    };
    let (ca, cb) = (tmp.path().join("contrast_a"), tmp.path().join("contrast_b"));
    let oc = train_prior(&contrast(&ca)).unwrap();
    let gap = oc.last_valid["valid_label_gap"];
    assert!(gap.is_finite(), "valid_label_gap {gap}");
    let log = std::fs::read_to_string(ca.join("train_log.csv")).unwrap();
    let header: Vec<&str> = log.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (cl, lg) = (col("contrast_loss"), col("label_gap"));
    let train_rows: Vec<Vec<&str>> = log
        .lines()
        .filter(|l| l.contains(",train,"))
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(train_rows.len(), 4, "{log}");
    // A step whose windows all lost their genres to dropout has no pair and logs no gap.
    let mut with_pairs = 0;
    for r in &train_rows {
        if let (Ok(l), Ok(g)) = (r[cl].parse::<f64>(), r[lg].parse::<f64>()) {
            // The mean of max(0, margin − gap) (weight 1) is at least margin − the mean gap.
            assert!(l >= 0.0 && l + 1e-6 >= 0.5 - g, "contrast {l}, gap {g}");
            with_pairs += 1;
        }
    }
    assert!(with_pairs >= 2, "{log}");
    let mut cc = contrast(&cb);
    cc.stop_after = Some(2);
    assert!(train_prior(&cc).unwrap().interrupted);
    cc.stop_after = None;
    cc.resume = true;
    train_prior(&cc).unwrap();
    assert_eq!(
        model_bytes(&ca),
        model_bytes(&cb),
        "resumed contrast run differs"
    );
    assert_eq!(log_without_timing(&ca), log_without_timing(&cb));

    // Assemble and load back through the model-directory reader.
    for f16 in [false, true] {
        let md_dir = tmp.path().join(format!("model_{f16}"));
        let r = assemble(&AssembleOpts {
            vqvae: a.clone(),
            priors: dirs.clone(),
            out: md_dir.clone(),
            f16,
            hop_fraction: vec![0.5, 0.5, 0.125],
        })
        .unwrap();
        assert!(r.parameters > 1000);
        assert!(md_dir.join("labels").join("genres.txt").is_file());
        let md = ModelDir::open(&md_dir).unwrap();
        assert_eq!(md.config, r.config);
        let dev = Device::Cpu;
        let vq = VqVae::new(&md.config.vqvae, md.vqvae_vb(DType::F32, &dev).unwrap()).unwrap();
        let audio = Tensor::zeros((1, 4096), DType::F32, &dev).unwrap();
        assert_eq!(vq.encode(&audio, 2).unwrap().dims(), &[1, 32]);
        let top = Prior::new(
            &md.config.priors[2],
            md.prior_vb(2, DType::F32, &dev).unwrap(),
        )
        .unwrap();
        let toks = Tensor::zeros((1, 64), DType::I64, &dev).unwrap();
        let y = Tensor::new(&[[44100i64 * 2, 0, 64 * 128, 1, 1, -1]], &dev).unwrap();
        let logits = top.forward(&toks, Some(&y), None).unwrap();
        assert_eq!(logits.dims(), &[1, 64, 32]);
    }
    let s32 = std::fs::metadata(tmp.path().join("model_false/model.safetensors"))
        .unwrap()
        .len();
    let s16 = std::fs::metadata(tmp.path().join("model_true/model.safetensors"))
        .unwrap()
        .len();
    assert!(s16 < s32 * 6 / 10, "f16 storage {s16} vs f32 {s32}");

    // Decoder-only fine-tuning of the assembled model's VQ-VAE, then a model directory with
    // the new decoders and the same priors (taken from the model directory itself).
    let shipped = tmp.path().join("model_true");
    let dec = tmp.path().join("vq_dec");
    let mut d = vq_opts(&corpus, &dec);
    d.config.finetune.decoders_only = true;
    d.config.train.steps = 2;
    let e = train_vqvae(&d).unwrap_err().to_string();
    assert!(e.contains("--init"), "{e}");
    d.init = Some(shipped.clone());
    assert_eq!(train_vqvae(&d).unwrap().steps_done, 2);
    let mut bad = vq_cfg();
    bad.finetune.levels = vec![0];
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.contains("decoders_only"), "{e}");
    let md_dec = tmp.path().join("model_dec");
    assemble(&AssembleOpts {
        vqvae: dec.clone(),
        priors: vec![shipped.clone(); 3],
        out: md_dec.clone(),
        f16: true,
        hop_fraction: vec![0.5, 0.5, 0.125],
    })
    .unwrap();
    let load = |dir: &Path| {
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap()
    };
    let (old, new) = (load(&shipped), load(&md_dec));
    assert_eq!(old.len(), new.len());
    let values = |t: &Tensor| -> Vec<f32> {
        t.to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let mut moved = vec![];
    for (k, t) in &old {
        assert_eq!(t.dtype(), new[k].dtype(), "{k}");
        if values(t) != values(&new[k]) {
            moved.push(k.clone());
        }
    }
    assert!(!moved.is_empty(), "the decoders did not move");
    assert!(
        moved.iter().all(|k| k.starts_with("vqvae.decoders.")),
        "only decoder weights may change: {moved:?}"
    );
    let md = ModelDir::open(&md_dec).unwrap();
    assert_eq!(md.config, ModelDir::open(&shipped).unwrap().config);
}
