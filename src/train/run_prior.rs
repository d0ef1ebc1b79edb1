//! `jukebox train prior`: encode the corpus once with a VQ-VAE (codes cached on disk), then
//! train one level's prior on windows of those codes.

use super::ckpt::{self, write_safetensors};
use super::component::{self, ComponentConfig};
use super::config::PriorRunConfig;
use super::driver::{self, Job, LoopOpts, Outcome};
use super::labels::{self, LabelDrop};
use super::log::Logger;
use super::prior::{log_columns, CodeTrack, PriorBatch, PriorData, PriorTrainer};
use super::rng::{CounterRng, Stream};
use super::run_vqvae::{prepare_out, split_items, RUN_CONFIG};
use crate::config::VqvaeConfig;
use crate::dataset::{Corpus, Item, Vocab};
use crate::vqvae::VqVae;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct PriorOpts {
    pub corpus: PathBuf,
    pub out: PathBuf,
    pub vqvae: PathBuf,
    /// Official level (0 bottom, 1 middle, 2 top).
    pub level: usize,
    /// Ignored on resume.
    pub config: PriorRunConfig,
    pub steps: Option<u64>,
    pub resume: bool,
    /// Fine-tune from these weights (component dir or any model dir).
    pub init: Option<PathBuf>,
    /// Where the encoded corpus is cached (default `CORPUS/.cache/codes-<vqvae hash>.safetensors`).
    pub codes_cache: Option<PathBuf>,
    pub quiet: bool,
    pub stop_after: Option<u64>,
    pub device: Device,
}

/// A stable fingerprint of a VQ-VAE (config + weights), naming its codes cache.
pub fn vqvae_fingerprint(cfg: &VqvaeConfig, w: &HashMap<String, Tensor>) -> Result<String> {
    let mut h = Sha256::new();
    h.update(serde_json::to_string(cfg)?.as_bytes());
    let mut keys: Vec<&String> = w.keys().collect();
    keys.sort();
    for k in keys {
        h.update(k.as_bytes());
        for v in w[k].to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()? {
            h.update(v.to_le_bytes());
        }
    }
    Ok(h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn item_key(it: &Item) -> String {
    let d = Sha256::digest(it.rel.as_bytes());
    d[..10].iter().map(|b| format!("{b:02x}")).collect()
}

/// Codes of every item at every level, from the cache where present; new items are encoded
/// and the cache rewritten (atomically).
pub fn encode_items(
    vq: &VqVae,
    corpus: &Corpus,
    items: &[Item],
    cache: &Path,
    fingerprint: &str,
    quiet: bool,
) -> Result<Vec<CodeTrack>> {
    let dev = Device::Cpu;
    let mut stored: HashMap<String, Tensor> = HashMap::new();
    if cache.is_file() {
        let st = ckpt::read_safetensors(cache, &dev)?;
        let ok = std::fs::read(cache).ok().and_then(|b| {
            safetensors::SafeTensors::read_metadata(&b)
                .ok()
                .and_then(|(_, m)| m.metadata().as_ref().and_then(|m| m.get("vqvae").cloned()))
        });
        if ok.as_deref() == Some(fingerprint) {
            stored = st;
        } else {
            eprintln!(
                "codes cache {} belongs to another VQ-VAE; re-encoding",
                cache.display()
            );
        }
    }
    let levels = vq.levels();
    let top = vq.hop_length(levels - 1);
    let mut changed = false;
    let mut tracks = Vec::with_capacity(items.len());
    let pb = super::log::progress(items.len() as u64, 0, quiet);
    pb.set_message("encoding the corpus");
    let meta = HashMap::from([("vqvae".to_string(), fingerprint.to_string())]);
    // Encoding a large corpus takes long: save what is done every few minutes, so an
    // interrupted run keeps it (the cache is read back item by item above).
    let mut last_save = std::time::Instant::now();
    for it in items {
        let k = item_key(it);
        let mut codes = Vec::with_capacity(levels);
        for l in 0..levels {
            let name = format!("{k}.level_{l}");
            if !stored.contains_key(&name) {
                let mut audio = corpus.load_audio(it)?;
                audio.resize(audio.len().div_ceil(top).max(1) * top, 0.0);
                let n = audio.len();
                let x = Tensor::from_vec(audio, (1, n), vq.codebook(0)?.device())?;
                for ll in 0..levels {
                    let c = vq
                        .encode(&x, ll)
                        .with_context(|| format!("encoding {}", it.rel))?;
                    stored.insert(format!("{k}.level_{ll}"), c.squeeze(0)?.to_device(&dev)?);
                }
                changed = true;
            }
            codes.push(stored[&name].to_dtype(DType::U32)?.to_vec1::<u32>()?);
        }
        tracks.push(CodeTrack {
            codes,
            artist: it.artist_id,
            genres: it.genre_ids.clone(),
            offset_samples: it.offset_samples() as usize,
            total_samples: it.song_samples() as usize,
            name: it.rel.clone(),
        });
        pb.inc(1);
        if changed && last_save.elapsed().as_secs() >= 180 {
            write_safetensors(cache, &stored, meta.clone())?;
            last_save = std::time::Instant::now();
            changed = false;
        }
    }
    pb.finish_and_clear();
    if changed {
        write_safetensors(cache, &stored, meta)?;
    }
    Ok(tracks)
}

/// Bits per token of the training codes' unigram distribution, measured on `valid`
/// (add-one smoothing): the trivial baseline a prior must beat.
pub fn unigram_bits(train: &[CodeTrack], valid: &[CodeTrack], level: usize, bins: usize) -> f64 {
    let mut h = vec![1f64; bins];
    for t in train {
        for &c in &t.codes[level] {
            h[(c as usize).min(bins - 1)] += 1.0;
        }
    }
    let total: f64 = h.iter().sum();
    let (mut s, mut n) = (0f64, 0f64);
    for t in valid {
        for &c in &t.codes[level] {
            s -= (h[(c as usize).min(bins - 1)] / total).log2();
            n += 1.0;
        }
    }
    s / n.max(1.0)
}

struct PriorJob {
    tr: PriorTrainer,
    data: PriorData,
    valid: Vec<PriorBatch>,
    /// Label-contrast pairs on held-out windows (only when the term is on).
    valid_gap: Vec<PriorBatch>,
    batch_size: usize,
    baseline: f64,
    vqvae: VqvaeConfig,
    vocab: Vocab,
}

impl Job for PriorJob {
    fn train_step(&mut self, step: u64) -> Result<BTreeMap<String, f64>> {
        let (b, dropped) = self.tr.train_batch(&self.data, self.batch_size, step)?;
        Ok(self.tr.train_step(&b, dropped, step)?.values())
    }

    fn validate(&mut self, _step: u64) -> Result<BTreeMap<String, f64>> {
        let (bits, n) = self.tr.evaluate(&self.valid)?;
        let mut v = BTreeMap::from([
            ("valid_bits_per_token".to_string(), bits),
            ("valid_tokens".to_string(), n),
            ("baseline_unigram_bits".to_string(), self.baseline),
        ]);
        if !self.valid_gap.is_empty() {
            let gap = mean_gap(&self.tr, &self.valid_gap)?;
            v.insert("valid_label_gap".to_string(), gap);
        }
        Ok(v)
    }

    fn checkpoint(&self, step: u64) -> Result<ckpt::Checkpoint> {
        Ok(self.tr.checkpoint(step)?)
    }

    fn finish(&self, out: &Path, step: u64) -> Result<()> {
        let dir = out.join("model");
        let cfg = ComponentConfig::Prior {
            prior: Box::new(self.tr.cfg.clone()),
            vqvae: self.vqvae.clone(),
            steps: step,
        };
        component::write(&dir, &cfg, &self.tr.weights()?)?;
        self.vocab.write(&dir.join("labels"))
    }
}

/// Adapt a prior config to the VQ-VAE (level, bins, hop, conditioner strides) and the corpus
/// vocabulary (label table sizes, at least `min_rows` = the --init tables).
pub fn fit_config(
    cfg: &mut PriorRunConfig,
    level: usize,
    vq: &VqvaeConfig,
    vocab: &Vocab,
    min_rows: (usize, usize),
) -> Result<()> {
    if level >= vq.levels {
        bail!(
            "level {level} does not exist: the VQ-VAE has levels 0..{}",
            vq.levels
        );
    }
    let m = &mut cfg.model;
    m.level = level;
    m.bins = vq.l_bins;
    m.raw_to_tokens = vq.hop_length(level);
    let top = level + 1 == vq.levels;
    match (&mut m.cond, top) {
        (Some(c), false) => {
            c.down_t = vq.downs_t[level + 1];
            c.stride_t = vq.strides_t[level + 1];
        }
        (None, false) => {
            bail!("level {level} is an upsampler: the config needs a [model.cond] conditioner")
        }
        (Some(_), true) => {
            bail!("level {level} is the top level: remove [model.cond] from the config")
        }
        (None, true) => {}
    }
    if let Some(l) = &mut m.labels {
        l.n_artists = vocab.artists.len().max(min_rows.0).max(1);
        l.n_genres = vocab.genres.len().max(min_rows.1).max(1);
    }
    cfg.validate()
}

pub fn train_prior(opts: &PriorOpts) -> Result<Outcome> {
    let dev = opts.device.clone();
    let corpus = Corpus::open(&opts.corpus)?;
    let (vq_cfg, vq_w) = component::load_vqvae(&opts.vqvae, &dev)?;
    let init_w = match (&opts.init, opts.resume) {
        (Some(p), false) => Some(component::load_prior_init(p, opts.level, &dev)?),
        _ => None,
    };
    let rows = |k: &str| {
        init_w
            .as_ref()
            .and_then(|w| w.get(k))
            .and_then(|t| t.dim(0).ok())
            .unwrap_or(0)
    };
    let min_rows = (
        rows("y_emb.artist_emb.emb.weight"),
        rows("y_emb.bow_genre_emb.emb.weight"),
    );
    let mut fresh = opts.config.clone();
    fit_config(&mut fresh, opts.level, &vq_cfg, &corpus.vocab, min_rows)?;
    let mut cfg: PriorRunConfig = prepare_out(&opts.out, opts.resume, &fresh)?;
    if let Some(s) = opts.steps {
        cfg.train.steps = s;
    }
    cfg.validate()
        .with_context(|| format!("invalid config in {}", opts.out.join(RUN_CONFIG).display()))?;
    if cfg.model.level != opts.level {
        bail!(
            "{} trains level {}, not {}",
            opts.out.display(),
            cfg.model.level,
            opts.level
        );
    }
    let t = cfg.train.clone();

    let fp = vqvae_fingerprint(&vq_cfg, &vq_w)?;
    let vq = VqVae::new(&vq_cfg, VarBuilder::from_tensors(vq_w, DType::F32, &dev))?;
    let cache = opts.codes_cache.clone().unwrap_or_else(|| {
        opts.corpus
            .join(".cache")
            .join(format!("codes-{fp}.safetensors"))
    });
    let (train_items, mut valid_items) = split_items(&corpus, t.seed, t.valid_fraction);
    if train_items.is_empty() {
        bail!(
            "corpus {} has no training items after the validation split",
            opts.corpus.display()
        );
    }
    let all: Vec<Item> = train_items
        .iter()
        .chain(valid_items.iter())
        .cloned()
        .collect();
    let tracks = encode_items(&vq, &corpus, &all, &cache, &fp, opts.quiet)?;
    let (train_tracks, mut valid_tracks) = tracks.split_at(train_items.len());
    if valid_tracks.is_empty() {
        eprintln!("warning: no validation files (each artist needs two or more); validating on training windows");
        valid_items.clone_from(&train_items);
        valid_tracks = train_tracks;
    }
    let hops = vq_cfg.hop_lengths();
    let up = cfg.model.cond.is_some();
    let data = PriorData::new(train_tracks, opts.level, &hops, up)?;
    let vdata = PriorData::new(valid_tracks, opts.level, &hops, up)?;
    let baseline = unigram_bits(train_tracks, valid_tracks, opts.level, vq_cfg.l_bins);

    let mut tr = PriorTrainer::new(
        &cfg.model,
        &cfg.optim,
        t.seed,
        t.init_scale,
        t.label_dropout,
        &dev,
    )?;
    tr.label_dropout_single = t.label_dropout_single;
    tr.label_contrast = t.label_contrast;
    tr.label_margin = t.label_margin;
    let start = if opts.resume {
        let dir = ckpt::latest(&opts.out)?;
        let s = tr
            .restore(&ckpt::load(&dir, &dev)?)
            .with_context(|| format!("restoring {}", dir.display()))?;
        eprintln!("resuming from step {s} ({})", dir.display());
        s
    } else {
        if let Some(w) = &init_w {
            let fresh_keys = tr.load_init(w)?;
            if !fresh_keys.is_empty() {
                eprintln!(
                    "--init: {} tensors not in the source start fresh: {}",
                    fresh_keys.len(),
                    fresh_keys.join(", ")
                );
            }
        }
        0
    };
    let valid = tr.valid_batches(&vdata, t.valid_windows, t.batch_size)?;
    let valid_gap = if tr.label_contrast > 0.0 {
        valid_gap_batches(&tr, &vdata, &data.genres, t.valid_windows, t.batch_size)?
    } else {
        Vec::new()
    };
    let mut job = PriorJob {
        tr,
        data,
        valid,
        valid_gap,
        batch_size: t.batch_size,
        baseline,
        vqvae: vq_cfg,
        vocab: corpus.vocab.clone(),
    };
    let mut logger = Logger::new(
        &opts.out,
        log_columns_with_baseline(),
        opts.resume.then_some(start),
    )?;
    let lo = LoopOpts {
        out: opts.out.clone(),
        total_steps: t.steps,
        valid_every: t.valid_every,
        ckpt_every: t.ckpt_every,
        log_every: t.log_every,
        keep_checkpoints: t.keep_checkpoints,
        quiet: opts.quiet,
        resume_hint: format!(
            "jukebox train prior --level {} --vqvae {} --corpus {} --out {} --resume",
            crate::level::Level(opts.level),
            opts.vqvae.display(),
            opts.corpus.display(),
            opts.out.display()
        ),
        stop_after: opts.stop_after,
    };
    driver::run(&mut job, &lo, start, &mut logger)
}

fn log_columns_with_baseline() -> Vec<String> {
    let mut c = log_columns();
    c.push("baseline_unigram_bits".into());
    c.push("valid_label_gap".into());
    c
}

/// Held-out batches for [`mean_gap`]: `windows` fixed windows of `data`, each scored with the
/// artist unknown (as `rank-labels` scores genres) under its own genres and one wrong genre of
/// `genres` (the training data's, as in training, so a held-out set of few genres has some).
fn valid_gap_batches(
    tr: &PriorTrainer,
    data: &PriorData,
    genres: &[u32],
    windows: usize,
    batch_size: usize,
) -> Result<Vec<PriorBatch>> {
    let pos = data.pool.fixed(windows, tr.cfg.n_ctx, data.ratio);
    let mut out = Vec::new();
    for (c, chunk) in pos.chunks(batch_size.max(1)).enumerate() {
        let mut wrong = Vec::new();
        for (i, w) in chunk.iter().enumerate() {
            let mut rng = CounterRng::new(tr.seed, Stream::Contrast, i as u64, u64::MAX - c as u64);
            let own = &data.pool.tracks[w.track].genres;
            wrong.extend(labels::wrong_genre(&mut rng, genres, own).map(|g| (i, g)));
        }
        if !wrong.is_empty() {
            let drop = vec![LabelDrop::Artist; chunk.len()];
            out.push(tr.batch_contrast(data, chunk, &drop, &wrong)?);
        }
    }
    Ok(out)
}

/// Mean wrong − true gap in bits per token over [`valid_gap_batches`] (NaN when there are none).
fn mean_gap(tr: &PriorTrainer, batches: &[PriorBatch]) -> Result<f64> {
    let (mut sum, mut n) = (0f64, 0usize);
    for b in batches {
        if let Some((_, gap)) = tr.loss_terms(b)?.contrast {
            sum += gap * b.contrast.len() as f64;
            n += b.contrast.len();
        }
    }
    Ok(if n == 0 { f64::NAN } else { sum / n as f64 })
}
