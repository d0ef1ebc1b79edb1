//! Prior training on cached VQ-VAE codes: teacher-forced cross-entropy in bits per token,
//! label windows with dropout to id 0, upsamplers conditioned on the level above.

use super::ckpt::{Checkpoint, LoopState};
use super::data::{Pool, Track, WindowPos};
use super::init::init_varmap;
use super::labels::{contrast_loss, genre_set, row_bits, wrong_genre, LabelDrop, Pair};
use super::optim::{Adam, OptimConfig, StepInfo};
use super::rng::{CounterRng, Stream};
use crate::config::PriorConfig;
use crate::prior::Prior;
use anyhow::Context;
use candle_core::{DType, Device, Result, Tensor, Var, D};
use candle_nn::{VarBuilder, VarMap};
use std::collections::{BTreeMap, HashMap};

/// Codes of one track at every level (official order), with its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeTrack {
    pub codes: Vec<Vec<u32>>,
    pub artist: u32,
    pub genres: Vec<u32>,
    /// Where the file starts inside its song, and the song's length, in audio samples.
    pub offset_samples: usize,
    pub total_samples: usize,
    pub name: String,
}

/// Windows of one level (and the level above, for upsamplers).
pub struct PriorData {
    pub level: usize,
    /// Tokens of `level`, with labels.
    pub pool: Pool<u32>,
    /// Tokens of `level + 1` per track (upsamplers only).
    pub upper: Vec<Vec<u32>>,
    /// Level-above tokens per token of this level (hop ratio), 1 for the top prior.
    pub ratio: usize,
    /// Audio samples per token at `level`.
    pub hop: usize,
    /// The tracks' distinct genre ids, sorted, without "unknown" 0: the wrong genres of the
    /// label-contrast term are drawn from these.
    pub genres: Vec<u32>,
}

impl PriorData {
    pub fn new(
        tracks: &[CodeTrack],
        level: usize,
        hops: &[usize],
        upsampler: bool,
    ) -> anyhow::Result<Self> {
        let mut pool = Vec::with_capacity(tracks.len());
        let mut upper = Vec::new();
        for t in tracks {
            let c = t
                .codes
                .get(level)
                .with_context(|| format!("track {} has no level {level} codes", t.name))?;
            pool.push(Track {
                data: c.clone(),
                len: c.len(),
                artist: t.artist,
                genres: t.genres.clone(),
                offset_samples: t.offset_samples,
                total_samples: t.total_samples,
                name: t.name.clone(),
            });
            if upsampler {
                let u = t.codes.get(level + 1).with_context(|| {
                    format!(
                        "track {} has no level {} codes for the upsampler",
                        t.name,
                        level + 1
                    )
                })?;
                upper.push(u.clone());
            }
        }
        let ratio = if upsampler {
            hops[level + 1] / hops[level]
        } else {
            1
        };
        Ok(Self {
            level,
            pool: Pool::new(pool),
            upper,
            ratio,
            hop: hops[level],
            genres: genre_set(tracks.iter().map(|t| t.genres.as_slice())),
        })
    }
}

/// One batch of prior windows.
pub struct PriorBatch {
    pub tokens: Tensor,
    pub y: Option<Tensor>,
    pub z_cond: Option<Tensor>,
    /// 1 for real tokens, 0 for padding past the end of a short track (B, T) f32.
    pub mask: Tensor,
    /// Label-contrast pairs; their wrong-genre rows come after the batch's own rows.
    pub contrast: Vec<Pair>,
}

/// Cross-entropy in bits of every token, flattened: logits (B, T, V), targets (B, T) → (B·T,).
pub fn token_bits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let v = logits.dim(D::Minus1)?;
    let n = logits.elem_count() / v;
    let z = logits.to_dtype(DType::F32)?.reshape((n, v))?;
    let t = targets.to_dtype(DType::U32)?.reshape(n)?;
    // The fused op where it applies, else the scorer's own `nll_bits`, so training and scoring
    // measure the same thing.
    if crate::ops::train_fast() && crate::ops::fused_train::applicable(&[&z]) {
        z.contiguous()?
            .apply_op2(&t, crate::ops::fused_train::CrossEntropyOp)?
            / std::f64::consts::LN_2
    } else {
        crate::prior::nll_bits(&z, &t)
    }
}

/// Mean masked cross-entropy in bits per token; logits (B, T, V), targets (B, T), mask (B, T).
pub fn masked_bits(logits: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<(Tensor, f64)> {
    masked_mean(&token_bits(logits, targets)?, mask)
}

/// Mean of `bits` over the positions where `mask` is 1 (same element count, any shape), and how
/// many there are.
fn masked_mean(bits: &Tensor, mask: &Tensor) -> Result<(Tensor, f64)> {
    let n = bits.elem_count();
    let m = mask.to_dtype(DType::F32)?.reshape(n)?;
    let count = m.sum_all()?.to_scalar::<f32>()? as f64;
    let mean = ((bits.reshape(n)? * &m)?.sum_all()? / count.max(1.0))?;
    Ok((mean, count))
}

/// What [`PriorTrainer::loss_terms`] computes.
pub struct LossTerms {
    /// Mean bits per real token of the batch's own rows, differentiable.
    pub bits: Tensor,
    /// Real tokens among those rows.
    pub count: f64,
    /// The label-contrast term (differentiable) and the mean wrong − true gap, with pairs.
    pub contrast: Option<(Tensor, f64)>,
}

/// The prior with its optimiser.
pub struct PriorTrainer {
    pub cfg: PriorConfig,
    pub varmap: VarMap,
    pub model: Prior,
    pub opt: Adam,
    pub seed: u64,
    pub init_scale: f64,
    /// Share of training windows whose artist and genres are replaced by id 0 ("unknown").
    pub label_dropout: f64,
    /// Share of windows with only the artist or only the genres dropped (half each).
    pub label_dropout_single: f64,
    /// Weight of the label-contrast term (0: off) and its margin in bits per token.
    pub label_contrast: f64,
    pub label_margin: f64,
    pub device: Device,
}

/// Per-step numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct PriorStep {
    pub bits: f64,
    pub dropped: usize,
    pub opt: StepInfo,
    /// The label-contrast term and the mean wrong − true gap in bits per token, when on.
    pub contrast: Option<(f64, f64)>,
}

impl PriorStep {
    pub fn values(&self) -> BTreeMap<String, f64> {
        let mut v = BTreeMap::from([
            ("loss".to_string(), self.bits),
            ("bits_per_token".to_string(), self.bits),
            ("label_dropped".to_string(), self.dropped as f64),
            ("lr".to_string(), self.opt.lr),
            ("grad_norm".to_string(), self.opt.grad_norm),
        ]);
        if let Some((term, gap)) = self.contrast {
            v.insert("loss".to_string(), self.bits + term);
            v.insert("contrast_loss".to_string(), term);
            v.insert("label_gap".to_string(), gap);
        }
        v
    }
}

/// Column names of the prior log.
pub fn log_columns() -> Vec<String> {
    [
        "loss",
        "bits_per_token",
        "label_dropped",
        "lr",
        "grad_norm",
        "contrast_loss",
        "label_gap",
        "step_s",
        "valid_bits_per_token",
        "valid_tokens",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn lock(vm: &VarMap) -> Result<std::sync::MutexGuard<'_, HashMap<String, Var>>> {
    vm.data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("VarMap lock poisoned".into()))
}

impl PriorTrainer {
    pub fn new(
        cfg: &PriorConfig,
        optim: &OptimConfig,
        seed: u64,
        init_scale: f64,
        label_dropout: f64,
        device: &Device,
    ) -> Result<Self> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let model = Prior::new(cfg, vb)?;
        init_varmap(
            &varmap,
            seed ^ 0x5052_494F_5200 ^ cfg.level as u64,
            init_scale,
        )?;
        let vars: Vec<(String, Var)> = lock(&varmap)?
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let opt = Adam::new(vars, optim.clone())?;
        Ok(Self {
            cfg: cfg.clone(),
            varmap,
            model,
            opt,
            seed,
            init_scale,
            label_dropout,
            label_dropout_single: 0.0,
            label_contrast: 0.0,
            label_margin: 0.25,
            device: device.clone(),
        })
    }

    /// Label columns of the window `w`, with dropout when `drop`; `genres` replaces the
    /// track's own genres (label contrast).
    fn y_row(
        &self,
        data: &PriorData,
        w: WindowPos,
        drop: LabelDrop,
        genres: Option<&[u32]>,
    ) -> Vec<i64> {
        let Some(lab) = &self.cfg.labels else {
            return vec![];
        };
        let tr = &data.pool.tracks[w.track];
        // The timing embedding asserts total < max_duration and a start inside the song.
        let max = (lab.max_duration * crate::prior::SAMPLE_RATE) as i64 - 1;
        let total = (tr.total_samples.max(1) as i64).clamp(
            (lab.min_duration * crate::prior::SAMPLE_RATE).ceil() as i64,
            max.max(1),
        );
        let sample_length = (self.cfg.n_ctx * data.hop) as i64;
        let last_start = (total - 1).min(max + 1 - sample_length);
        let offset = ((tr.offset_samples + w.start * data.hop) as i64)
            .min(last_start)
            .max(0);
        let mut row = vec![
            total,
            offset,
            sample_length,
            if drop.artist() {
                0
            } else {
                (tr.artist as usize).min(lab.n_artists.saturating_sub(1)) as i64
            },
        ];
        let own = genres.unwrap_or(&tr.genres);
        for g in 0..lab.max_genres {
            let id = if drop.genres() {
                if g == 0 {
                    0
                } else {
                    -1
                }
            } else {
                match own.get(g) {
                    Some(&x) => (x as usize).min(lab.n_genres.saturating_sub(1)) as i64,
                    None if g == 0 => 0,
                    None => -1,
                }
            };
            row.push(id);
        }
        row
    }

    /// Assemble a batch from window positions; `drop[i]` applies label dropout (artist and
    /// genres) to item i.
    pub fn batch(
        &self,
        data: &PriorData,
        windows: &[WindowPos],
        drop: &[bool],
    ) -> Result<PriorBatch> {
        let drops: Vec<LabelDrop> = drop
            .iter()
            .map(|&d| if d { LabelDrop::Both } else { LabelDrop::None })
            .collect();
        self.batch_with(data, windows, &drops)
    }

    /// [`Self::batch`] with a [`LabelDrop`] per item.
    pub fn batch_with(
        &self,
        data: &PriorData,
        windows: &[WindowPos],
        drop: &[LabelDrop],
    ) -> Result<PriorBatch> {
        self.batch_contrast(data, windows, drop, &[])
    }

    /// [`Self::batch_with`], then one row per `(item, genre)` of `wrong`: item's window and
    /// labels with that genre alone, paired with the item for the label-contrast term.
    pub fn batch_contrast(
        &self,
        data: &PriorData,
        windows: &[WindowPos],
        drop: &[LabelDrop],
        wrong: &[(usize, u32)],
    ) -> Result<PriorBatch> {
        let rows: Vec<(usize, Option<u32>)> = (0..windows.len())
            .map(|i| (i, None))
            .chain(wrong.iter().map(|&(i, g)| (i, Some(g))))
            .collect();
        let (b, n) = (rows.len(), self.cfg.n_ctx);
        let mut toks = Vec::with_capacity(b * n);
        let mut mask = Vec::with_capacity(b * n);
        let mut ys = Vec::new();
        let mut zc = Vec::new();
        for &(i, genre) in &rows {
            let w = windows[i];
            let len = data.pool.tracks[w.track].len;
            toks.extend(data.pool.slice(w, n).into_iter().map(|x| x as i64));
            mask.extend((0..n).map(|j| if w.start + j < len { 1f32 } else { 0.0 }));
            let d = drop.get(i).copied().unwrap_or(LabelDrop::None);
            ys.extend(self.y_row(data, w, d, genre.as_ref().map(std::slice::from_ref)));
            if self.cfg.cond.is_some() {
                let up = &data.upper[w.track];
                let (s, m) = (w.start / data.ratio, n / data.ratio);
                zc.extend((0..m).map(|j| up.get(s + j).copied().unwrap_or(0) as i64));
            }
        }
        let dev = &self.device;
        let y = if ys.is_empty() {
            None
        } else {
            Some(Tensor::from_vec(ys.clone(), (b, ys.len() / b), dev)?)
        };
        let z_cond = if zc.is_empty() {
            None
        } else {
            Some(Tensor::from_vec(zc.clone(), (b, zc.len() / b), dev)?)
        };
        Ok(PriorBatch {
            tokens: Tensor::from_vec(toks, (b, n), dev)?,
            y,
            z_cond,
            mask: Tensor::from_vec(mask, (b, n), dev)?,
            contrast: (0..wrong.len())
                .map(|k| Pair {
                    truth: wrong[k].0,
                    wrong: windows.len() + k,
                })
                .collect(),
        })
    }

    /// The training batch of `step`: random windows, label dropout by the counter RNG.
    pub fn train_batch(
        &self,
        data: &PriorData,
        batch_size: usize,
        step: u64,
    ) -> Result<(PriorBatch, usize)> {
        let lvl = self.cfg.level as u64;
        let windows: Vec<WindowPos> = (0..batch_size as u64)
            .map(|s| {
                data.pool
                    .draw(self.seed ^ lvl, step, s, self.cfg.n_ctx, data.ratio)
            })
            .collect();
        let drop: Vec<LabelDrop> = (0..batch_size as u64)
            .map(|s| {
                let mut rng =
                    CounterRng::new(self.seed, Stream::LabelDrop, lvl * 1_000_003 + s, step);
                LabelDrop::draw(&mut rng, self.label_dropout, self.label_dropout_single)
            })
            .collect();
        let n_drop = drop.iter().filter(|d| **d == LabelDrop::Both).count();
        let mut wrong = Vec::new();
        if self.label_contrast > 0.0 {
            for (i, w) in windows.iter().enumerate() {
                let mut rng = CounterRng::new(
                    self.seed,
                    Stream::Contrast,
                    lvl * 1_000_003 + i as u64,
                    step,
                );
                let own = &data.pool.tracks[w.track].genres;
                // Only where the window is labelled as `rank-labels` scores a genre (artist
                // unknown): with the artist known, many wrong genres are told by the artist
                // alone (a composer never labelled `rock`), without reading the codes.
                if drop[i] == LabelDrop::Artist {
                    wrong.extend(wrong_genre(&mut rng, &data.genres, own).map(|g| (i, g)));
                }
            }
        }
        Ok((self.batch_contrast(data, &windows, &drop, &wrong)?, n_drop))
    }

    /// Mean bits per real token of a batch, differentiable; also the token count.
    pub fn loss(&self, b: &PriorBatch) -> Result<(Tensor, f64)> {
        let t = self.loss_terms(b)?;
        Ok((t.bits, t.count))
    }

    /// Mean bits per real token of the batch's own rows, plus the label-contrast term when the
    /// batch has pairs (then also the term and the mean gap, for the log).
    pub fn loss_terms(&self, b: &PriorBatch) -> Result<LossTerms> {
        let logits = self
            .model
            .forward(&b.tokens, b.y.as_ref(), b.z_cond.as_ref())?;
        let shift = self.model.music_shift() as f64;
        let targets = if shift > 0.0 {
            (b.tokens.to_dtype(DType::F32)? + shift)?
        } else {
            b.tokens.clone()
        };
        if b.contrast.is_empty() {
            let (bits, count) = masked_bits(&logits, &targets, &b.mask)?;
            return Ok(LossTerms {
                bits,
                count,
                contrast: None,
            });
        }
        let (rows, t) = b.tokens.dims2()?;
        let own = rows - b.contrast.len();
        let per_token = token_bits(&logits, &targets)?.reshape((rows, t))?;
        let (bits, count) = masked_mean(&per_token.narrow(0, 0, own)?, &b.mask.narrow(0, 0, own)?)?;
        let rb = row_bits(&per_token, &b.mask)?;
        let (term, gap) = contrast_loss(&rb, &b.contrast, self.label_margin, self.label_contrast)?;
        Ok(LossTerms {
            bits,
            count,
            contrast: Some((term, gap)),
        })
    }

    pub fn train_step(&mut self, b: &PriorBatch, dropped: usize, step: u64) -> Result<PriorStep> {
        let LossTerms {
            bits: loss,
            contrast,
            ..
        } = self.loss_terms(b)?;
        let bits = loss.to_scalar::<f32>()? as f64;
        let (total, contrast) = match contrast {
            Some((term, gap)) => {
                let v = term.to_scalar::<f32>()? as f64;
                ((loss + term)?, Some((v, gap)))
            }
            None => (loss, None),
        };
        let grads = total.backward()?;
        let opt = self.opt.step(&grads, step)?;
        Ok(PriorStep {
            bits,
            dropped,
            opt,
            contrast,
        })
    }

    /// Token-weighted bits per token over validation batches (no label dropout).
    pub fn evaluate(&self, batches: &[PriorBatch]) -> Result<(f64, f64)> {
        let (mut sum, mut count) = (0f64, 0f64);
        for b in batches {
            let (l, c) = self.loss(b)?;
            sum += l.detach().to_scalar::<f32>()? as f64 * c;
            count += c;
        }
        Ok((sum / count.max(1.0), count))
    }

    /// Fixed validation batches spread over `data`.
    pub fn valid_batches(
        &self,
        data: &PriorData,
        windows: usize,
        batch_size: usize,
    ) -> Result<Vec<PriorBatch>> {
        let pos = data.pool.fixed(windows, self.cfg.n_ctx, data.ratio);
        pos.chunks(batch_size.max(1))
            .map(|c| self.batch(data, c, &vec![false; c.len()]))
            .collect()
    }

    pub fn weights(&self) -> Result<HashMap<String, Tensor>> {
        lock(&self.varmap)?
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?)))
            .collect()
    }

    /// Start from existing weights (fine-tuning). Label tables may grow: rows beyond the
    /// source's keep their fresh initialisation, so new artists and genres can be added.
    /// Returns the keys that were initialised fresh because the source lacks them.
    pub fn load_init(&mut self, weights: &HashMap<String, Tensor>) -> anyhow::Result<Vec<String>> {
        let data = lock(&self.varmap)?;
        let mut fresh = Vec::new();
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for k in names {
            let var = &data[k];
            let Some(src) = weights.get(k) else {
                fresh.push(k.clone());
                continue;
            };
            let src = src.to_dtype(DType::F32)?.to_device(&self.device)?;
            if src.dims() == var.dims() {
                var.set(&src)?;
            } else if k.starts_with("y_emb.")
                && src.rank() == 2
                && src.dim(1)? == var.dim(1)?
                && src.dim(0)? <= var.dim(0)?
            {
                let rows = src.dim(0)?;
                let rest = var.as_tensor().narrow(0, rows, var.dim(0)? - rows)?;
                var.set(&Tensor::cat(&[&src, &rest], 0)?)?;
            } else {
                return Err(anyhow::Error::new(crate::error::TensorMismatch {
                    mis_shaped: vec![(k.clone(), var.dims().to_vec(), src.dims().to_vec())],
                    ..Default::default()
                })
                .context("the initial weights do not fit this prior"));
            }
        }
        Ok(fresh)
    }

    pub fn checkpoint(&self, step: u64) -> Result<Checkpoint> {
        Ok(Checkpoint {
            model: self.weights()?,
            optimizer: self.opt.state_tensors(),
            buffers: HashMap::new(),
            state: LoopState {
                step,
                adam_t: self.opt.t,
                seed: self.seed,
                rng: "counter".into(),
                extra: HashMap::new(),
            },
        })
    }

    pub fn restore(&mut self, ck: &Checkpoint) -> anyhow::Result<u64> {
        {
            let data = lock(&self.varmap)?;
            super::ckpt::check_present(
                "the checkpoint",
                data.iter().map(|(k, v)| (k.as_str(), v.dims())),
                &ck.model,
            )?;
            for (k, var) in data.iter() {
                var.set(&ck.model[k].to_dtype(var.dtype())?.to_device(&self.device)?)?;
            }
        }
        self.opt.load_state(ck.state.adam_t, &ck.optimizer)?;
        self.seed = ck.state.seed;
        Ok(ck.state.step)
    }
}
