//! Parity of the prior models against the official code on `fixtures-lyrics/`: the merged
//! 1b_lyrics sequence (prime attention), the 5b_lyrics encoder + cross-attention, and an
//! all-dense prior. Labels (`y`) come from the io files, so this checks the model half alone.

use super::Report;
use crate::config::{ConditionerConfig, LabelConfig, LyricsConfig, PriorConfig};
use crate::labels::{IdSet, Labeller, Meta};
use crate::prior::{self, Prior, Record, SampleOpts};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

const TOL: f64 = 1e-4;
pub const MODELS: &[&str] = &["lyrics_1b", "lyrics_5b", "dense"];

fn u(v: &Value, k: &str) -> Result<usize> {
    v.get(k)
        .and_then(Value::as_u64)
        .map(|x| x as usize)
        .with_context(|| format!("hps: missing or non-integer `{k}`"))
}
fn f(v: &Value, k: &str) -> Result<f64> {
    v.get(k)
        .and_then(Value::as_f64)
        .with_context(|| format!("hps: missing number `{k}`"))
}
fn b(v: &Value, k: &str) -> bool {
    v.get(k).and_then(Value::as_bool).unwrap_or(false)
}
fn ou(v: &Value, k: &str) -> Option<usize> {
    v.get(k).and_then(Value::as_u64).map(|x| x as usize)
}

/// Official resolved hparams (`hps` of `make_models.make_prior`) plus the VQ-VAE facts
/// (`l_bins`, `downs_t`, `strides_t`, `z_shapes`) → our [`PriorConfig`].
pub fn prior_config_from_hps(hps: &Value, vqvae: &Value) -> Result<PriorConfig> {
    let level = u(hps, "level")?;
    let list = |k: &str| -> Result<Vec<usize>> {
        vqvae
            .get(k)
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|x| x.as_u64().map(|y| y as usize)).collect())
            .with_context(|| format!("vqvae: missing list `{k}`"))
    };
    let downs = list("downs_t")?;
    let strides = list("strides_t")?;
    let levels = vqvae
        .get("z_shapes")
        .and_then(Value::as_array)
        .map_or(downs.len(), Vec::len);
    if level >= levels {
        bail!("hps level {level} but the VQ-VAE has {levels} levels");
    }
    let top = level + 1 == levels;
    let raw_to_tokens = (0..=level)
        .map(|l| strides[l].pow(downs[l] as u32))
        .product();
    let labels = if b(hps, "labels") {
        let yb = hps
            .get("y_bins")
            .and_then(Value::as_array)
            .context("hps: missing y_bins")?;
        let get = |i: usize| {
            yb.get(i)
                .and_then(Value::as_u64)
                .map(|x| x as usize)
                .context("hps: bad y_bins")
        };
        Some(LabelConfig {
            n_genres: get(0)?,
            n_artists: get(1)?,
            max_genres: u(hps, "max_bow_genre_size")?,
            include_time_signal: top,
            t_bins: u(hps, "t_bins")?,
            min_duration: f(hps, "min_duration")?,
            max_duration: f(hps, "max_duration")?,
        })
    } else {
        None
    };
    let cond = if top {
        None
    } else {
        Some(ConditionerConfig {
            width: u(hps, "cond_width")?,
            depth: u(hps, "cond_depth")?,
            m_conv: f(hps, "cond_m_conv")?,
            dilation_growth_rate: u(hps, "cond_dilation_growth_rate")?,
            dilation_cycle: ou(hps, "cond_dilation_cycle"),
            res_scale: b(hps, "cond_res_scale"),
            down_t: downs[level + 1],
            stride_t: strides[level + 1],
        })
    };
    let n_tokens = ou(hps, "n_tokens").unwrap_or(0);
    let lyrics = if b(hps, "use_tokens") && n_tokens > 0 {
        let n_vocab = u(hps, "n_vocab")?;
        if b(hps, "single_enc_dec") {
            Some(LyricsConfig::Merged { n_tokens, n_vocab })
        } else {
            Some(LyricsConfig::Encoder {
                n_tokens,
                n_vocab,
                width: u(hps, "prime_width")?,
                depth: u(hps, "prime_depth")?,
                heads: u(hps, "prime_heads")?,
                blocks: u(hps, "prime_blocks")?,
                attn_order: u(hps, "prime_attn_order")?,
            })
        }
    } else {
        None
    };
    let alignment = match (ou(hps, "alignment_layer"), ou(hps, "alignment_head")) {
        (Some(l), Some(h)) if lyrics.is_some() => Some((l, h)),
        _ => None,
    };
    let l_bins = vqvae
        .get("l_bins")
        .and_then(Value::as_u64)
        .context("vqvae: missing l_bins")? as usize;
    let cfg = PriorConfig {
        level,
        n_ctx: u(hps, "n_ctx")?,
        width: u(hps, "prior_width")?,
        depth: u(hps, "prior_depth")?,
        heads: u(hps, "heads")?,
        blocks: ou(hps, "blocks"),
        attn_order: u(hps, "attn_order")?,
        bins: l_bins,
        m_attn: f(hps, "m_attn")?,
        m_mlp: f(hps, "m_mlp")?,
        merged_decoder: b(hps, "merged_decoder"),
        labels,
        cond,
        lyrics,
        raw_to_tokens,
        alignment,
    };
    cfg.validate()?;
    Ok(cfg)
}

/// A fixture model: its config, the prior, and the io tensors.
pub struct Loaded {
    pub config: Value,
    pub prior: Prior,
    pub io: HashMap<String, Tensor>,
}

pub fn load(dir: &Path, name: &str) -> Result<Loaded> {
    let cp = dir.join(format!("config_{name}.json"));
    let text =
        std::fs::read_to_string(&cp).with_context(|| format!("cannot read {}", cp.display()))?;
    let config: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", cp.display()))?;
    let hps = config
        .get("hps")
        .with_context(|| format!("{}: no `hps`", cp.display()))?;
    let vq = config
        .get("vqvae")
        .with_context(|| format!("{}: no `vqvae`", cp.display()))?;
    let cfg = prior_config_from_hps(hps, vq).with_context(|| format!("config {}", cp.display()))?;
    let wp = dir.join(format!("model_{name}.safetensors"));
    let bytes = std::fs::read(&wp).with_context(|| format!("cannot read {}", wp.display()))?;
    let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu)?;
    let prior =
        Prior::new(&cfg, vb).with_context(|| format!("building {name} from {}", wp.display()))?;
    let ip = dir.join(format!("{name}_io.safetensors"));
    let io = candle_core::safetensors::load(&ip, &Device::Cpu)
        .with_context(|| format!("cannot read {}", ip.display()))?;
    Ok(Loaded { config, prior, io })
}

fn get<'a>(io: &'a HashMap<String, Tensor>, k: &str) -> Result<&'a Tensor> {
    io.get(k)
        .with_context(|| format!("io file has no tensor `{k}`"))
}

fn mismatches(a: &Tensor, b: &Tensor) -> Result<usize> {
    if a.dims() != b.dims() {
        bail!("shape mismatch: got {:?}, want {:?}", a.dims(), b.dims());
    }
    let a = a.to_dtype(DType::I64)?.flatten_all()?.to_vec1::<i64>()?;
    let b = b.to_dtype(DType::I64)?.flatten_all()?.to_vec1::<i64>()?;
    Ok(a.iter().zip(&b).filter(|(x, y)| x != y).count())
}

/// Row-mean cross-entropy in bits: logits (N, T, V), targets (N, T) → (N,).
fn row_bits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    Ok(prior::nll_bits(logits, targets)?.mean(1)?)
}

pub fn run(dir: &Path, report: &mut Report) -> Result<()> {
    for name in MODELS {
        let tag = format!("lyrics_models/{name}");
        report.guard(&tag.clone(), |r| check_model(dir, name, &tag, r));
    }
    Ok(())
}

fn check_model(dir: &Path, name: &str, tag: &str, r: &mut Report) -> Result<()> {
    let Loaded { config, prior, io } = load(dir, name)?;
    if io.contains_key("align_tokens") || prior.cfg.alignment.is_some() {
        r.guard(&format!("{tag}/alignment"), |r| {
            check_alignment(&config, &prior, &io, tag, r)
        });
    }
    let y = get(&io, "y")?;
    let music = get(&io, "tf_music_tokens")?;
    let cond = prior.conditioning(Some(y), None)?;
    let c = Case {
        prior: &prior,
        io: &io,
        tag,
    };
    c.labels_half(y, &cond, r)?;
    let seq = prior.raw_sequence(music, &cond)?;
    if let Ok(want) = get(&io, "prior_input_tokens") {
        r.exact(
            format!("{tag}/prior_input_tokens"),
            mismatches(&seq, want)?,
            0,
            "",
        );
    }
    let lyric_loss = c.lyric_encoder(y, r)?;
    let logits = c.teacher_forcing(&seq, &cond, r)?;
    c.losses(&config, &logits, &seq, music.dim(1)?, lyric_loss, r)?;
    c.greedy_sampling(&config, &cond, y.dim(0)?, r)
}

/// One fixture model's parity checks, section by section.
struct Case<'a> {
    prior: &'a Prior,
    io: &'a HashMap<String, Tensor>,
    tag: &'a str,
}

impl Case<'_> {
    /// The labels half the model owns: y_cond, timing bins and their embedding, x_cond.
    fn labels_half(&self, y: &Tensor, cond: &prior::Conditioning, r: &mut Report) -> Result<()> {
        let (prior, io, tag) = (self.prior, self.io, self.tag);
        let labels = prior
            .labels
            .as_ref()
            .context("fixture prior without labels")?;
        r.close(
            format!("{tag}/y_cond"),
            &cond.start,
            get(io, "y_cond")?,
            TOL,
        );
        let rows = labels.rows(y)?;
        let mut bad = 0;
        for (i, row) in rows.iter().enumerate() {
            let lc = &labels.cfg;
            let bins = prior::timing_bins(
                row.total_length,
                row.offset,
                row.sample_length,
                prior.cfg.n_ctx,
                lc.t_bins,
                prior::SAMPLE_RATE,
                lc.min_duration,
                lc.max_duration,
            )?;
            let want = |k: &str| -> Result<Vec<i64>> {
                Ok(get(io, k)?.get(i)?.flatten_all()?.to_vec1::<i64>()?)
            };
            bad += usize::from(want("timing_bins_total")? != vec![bins.total]);
            bad += want("timing_bins_absolute")?
                .iter()
                .zip(&bins.absolute)
                .filter(|(a, b)| a != b)
                .count();
            bad += want("timing_bins_relative")?
                .iter()
                .zip(&bins.relative)
                .filter(|(a, b)| a != b)
                .count();
        }
        r.exact(format!("{tag}/timing_bins"), bad, 0, "");
        if let Some(te) = labels.timing_emb(y)? {
            r.close(
                format!("{tag}/timing_emb"),
                &te,
                get(io, "timing_emb")?,
                TOL,
            );
        }
        match &cond.x_cond {
            Some(xc) => r.close(format!("{tag}/x_cond"), xc, get(io, "x_cond")?, TOL),
            None => r.fail(format!("{tag}/x_cond"), "no x_cond built"),
        }

        Ok(())
    }

    /// The 5b lyric encoder, layer by layer; the lyric tokens' bits per row when there is one.
    fn lyric_encoder(&self, y: &Tensor, r: &mut Report) -> Result<Option<Tensor>> {
        let (prior, io, tag) = (self.prior, self.io, self.tag);
        let mut lyric_loss = None;
        if let Some(enc) = &prior.encoder {
            let k = prior.n_lyric_tokens();
            let lyr = y.narrow(1, y.dim(1)? - k, k)?;
            let mut rec = Record::default();
            let out = enc.forward(&lyr, Some(&mut rec))?;
            r.close(
                format!("{tag}/enc_transformer_input"),
                &out.transformer_input,
                get(io, "enc_transformer_input")?,
                TOL,
            );
            let mut worst = 0f64;
            for (i, lo) in rec.layer_outputs.iter().enumerate() {
                worst = worst.max(super::max_abs_diff(
                    lo,
                    get(io, &format!("enc_layer_{i}_output"))?,
                )?);
            }
            r.value(
                format!("{tag}/enc_layer_outputs({})", rec.layer_outputs.len()),
                worst,
                TOL,
            );
            r.close(
                format!("{tag}/enc_acts"),
                &out.acts,
                get(io, "enc_acts")?,
                TOL,
            );
            r.close(
                format!("{tag}/encoder_kv"),
                &out.encoder_kv,
                get(io, "encoder_kv")?,
                TOL,
            );
            let ll = enc.lyric_logits(&out.encoder_kv)?;
            r.close(
                format!("{tag}/lyric_logits"),
                &ll,
                get(io, "lyric_logits")?,
                TOL,
            );
            lyric_loss = Some(row_bits(&ll, &lyr.to_dtype(DType::I64)?)?);
        }

        Ok(lyric_loss)
    }

    /// Teacher forcing: every layer, the logits, attention weights of prime/cross layers.
    fn teacher_forcing(
        &self,
        seq: &Tensor,
        cond: &prior::Conditioning,
        r: &mut Report,
    ) -> Result<Tensor> {
        let (prior, io, tag) = (self.prior, self.io, self.tag);
        let attn_layers: Vec<usize> = prior
            .transformer
            .layers
            .iter()
            .enumerate()
            .filter(|(_, l)| matches!(l.kind, prior::AttnKind::Prime | prior::AttnKind::Cross))
            .map(|(i, _)| i)
            .collect();
        let mut rec = Record::default();
        let (logits, x_in) = prior.forward_seq(seq, cond, Some(&mut rec), &attn_layers)?;
        r.close(
            format!("{tag}/tf_transformer_input"),
            &x_in,
            get(io, "tf_transformer_input")?,
            TOL,
        );
        let mut worst = 0f64;
        for (i, lo) in rec.layer_outputs.iter().enumerate() {
            worst = worst.max(super::max_abs_diff(
                lo,
                get(io, &format!("tf_layer_{i}_output"))?,
            )?);
        }
        r.value(
            format!("{tag}/tf_layer_outputs({})", rec.layer_outputs.len()),
            worst,
            TOL,
        );
        r.close(
            format!("{tag}/tf_logits"),
            &logits,
            get(io, "tf_logits")?,
            TOL,
        );
        let p = prior.lyric_prefix_len();
        for (layer, w) in &rec.attn_weights {
            let w = if p > 0 {
                let l = w.dim(2)?;
                w.narrow(2, p, l - p)?.narrow(3, 0, p)?
            } else {
                w.clone()
            };
            r.close(
                format!("{tag}/attn_layer{layer}"),
                &w,
                get(io, &format!("attn_layer{layer}"))?,
                TOL,
            );
        }

        Ok(logits)
    }

    /// Per-row losses (bits): prime, gen, and the official weighted total.
    fn losses(
        &self,
        config: &Value,
        logits: &Tensor,
        seq: &Tensor,
        t: usize,
        lyric_loss: Option<Tensor>,
        r: &mut Report,
    ) -> Result<()> {
        let (prior, io, tag) = (self.prior, self.io, self.tag);
        let p = prior.lyric_prefix_len();
        let gen = row_bits(&logits.narrow(1, p, t)?, &seq.narrow(1, p, t)?)?;
        let prime = if p > 0 {
            Some(row_bits(&logits.narrow(1, 0, p)?, &seq.narrow(1, 0, p)?)?)
        } else {
            lyric_loss
        };
        r.close(
            format!("{tag}/tf_gen_loss"),
            &gen,
            get(io, "tf_gen_loss")?,
            TOL,
        );
        let n_rows = gen.dim(0)?;
        let prime = match prime {
            Some(pl) => pl,
            None => Tensor::zeros(n_rows, DType::F32, &Device::Cpu)?,
        };
        r.close(
            format!("{tag}/tf_prime_loss"),
            &prime,
            get(io, "tf_prime_loss")?,
            TOL,
        );
        let hps = &config["hps"];
        let pdims = prior.n_lyric_tokens() as f64;
        let gdims = prior.cfg.n_ctx as f64;
        let frac = hps
            .get("prime_loss_fraction")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let total =
            ((prime * (frac * pdims / (pdims + gdims)))? + (gen * (gdims / (pdims + gdims)))?)?;
        r.close(format!("{tag}/tf_loss"), &total, get(io, "tf_loss")?, TOL);

        Ok(())
    }

    /// Greedy KV-cached sampling: ancestral, then primed with the fixture's chunk size.
    fn greedy_sampling(
        &self,
        config: &Value,
        cond: &prior::Conditioning,
        n: usize,
        r: &mut Report,
    ) -> Result<()> {
        let (prior, io, tag) = (self.prior, self.io, self.tag);
        let chunk = config["io_inputs"]
            .get("main_chunk_size")
            .and_then(Value::as_u64)
            .unwrap_or(32) as usize;
        let seeds: Vec<u64> = (0..n as u64).collect();
        let opts = SampleOpts {
            temp: 1.0,
            top_k: 1,
            chunk_size: chunk,
            keep_logits: true,
            ..Default::default()
        };
        for mode in ["anc", "primed"] {
            let prime = if mode == "anc" {
                Tensor::zeros((n, 0), DType::I64, &Device::Cpu)?
            } else {
                get(io, "primed_prime")?.clone()
            };
            let n_new = prior.cfg.n_ctx - prime.dim(1)?;
            let out =
                prior::sample_window(prior, cond, &prime, n_new, &seeds, &opts, &mut |_, _| {})?;
            let logits = out.logits.context("no logits kept")?;
            r.close(
                format!("{tag}/{mode}_step_logits"),
                &logits,
                get(io, &format!("{mode}_step_logits"))?,
                TOL,
            );
            r.exact(
                format!("{tag}/{mode}_tokens"),
                mismatches(&out.tokens, get(io, &format!("{mode}_tokens"))?)?,
                0,
                "",
            );
            if let Ok(want) = get(io, &format!("{mode}_raw_tokens")) {
                r.exact(
                    format!("{tag}/{mode}_raw_tokens"),
                    mismatches(&out.raw, want)?,
                    0,
                    "",
                );
            }
        }
        Ok(())
    }
}

/// The official labeller of a fixture prior (v2 or v3 ids per `hps.labels_v3`).
fn fixture_labeller(config: &Value, prior: &Prior) -> Result<Labeller> {
    let v3 = config["hps"]
        .get("labels_v3")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let sr = config["hps"]
        .get("sr")
        .and_then(Value::as_f64)
        .unwrap_or(prior::SAMPLE_RATE);
    let ids = if v3 { IdSet::v3() } else { IdSet::v2() };
    let mut lab = Labeller::new(ids, &prior.cfg, sr)?;
    lab.quiet = true;
    Ok(lab)
}

/// Official `align.get_alignment` on `align_tokens` (hop n_ctx/2) against `alignment_row{b}`.
fn check_alignment(
    config: &Value,
    prior: &Prior,
    io: &HashMap<String, Tensor>,
    tag: &str,
    r: &mut Report,
) -> Result<()> {
    let lab = fixture_labeller(config, prior)?;
    let metas = config["io_inputs"]
        .get("metas")
        .and_then(Value::as_array)
        .context("config has no io_inputs.metas")?;
    let tokens = get(io, "align_tokens")?
        .to_dtype(DType::I64)?
        .to_vec2::<i64>()?;
    if metas.len() != tokens.len() {
        bail!(
            "{} metas but align_tokens has {} rows",
            metas.len(),
            tokens.len()
        );
    }
    let mut bases = Vec::with_capacity(metas.len());
    for (b, m) in metas.iter().enumerate() {
        let s = |k: &str| {
            m.get(k)
                .and_then(Value::as_str)
                .with_context(|| format!("metas[{b}].{k}"))
        };
        let n = |k: &str| {
            m.get(k)
                .and_then(Value::as_i64)
                .with_context(|| format!("metas[{b}].{k}"))
        };
        let meta = Meta::new(
            s("artist")?,
            s("genre")?,
            m.get("lyrics").and_then(Value::as_str).map(str::to_string),
        );
        bases.push(
            lab.base(&meta, n("total_length")?, n("offset")?)
                .with_context(|| format!("metas[{b}]"))?,
        );
    }
    let hop = prior.cfg.n_ctx / 2;
    let al = prior::align::get_alignments(prior, &lab, &bases, &tokens, hop)?;
    for (b, a) in al.iter().enumerate() {
        let rows = a.len();
        let cols = a.first().map_or(0, Vec::len);
        let flat: Vec<f32> = a.iter().flatten().copied().collect();
        let got = Tensor::from_vec(flat, (rows, cols), &Device::Cpu)?;
        r.close(
            format!("{tag}/alignment_row{b}"),
            &got,
            get(io, &format!("alignment_row{b}"))?,
            TOL,
        );
    }
    Ok(())
}
