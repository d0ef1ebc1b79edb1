//! Parity: the label half of `fixtures-lyrics/` (official openai/jukebox outputs).
//!
//! - `lyrics_cases.json`: every lyric-window, text, artist/genre and vocabulary case, exactly;
//! - each `<name>_io.safetensors`: the base `y` and its parts, the full lyric tokens, `y` and the
//!   window `y`s with their lyric indices, and the timing bins, all rebuilt from the
//!   human-readable `io_inputs` of `config_<name>.json`.
//!
//! The models themselves are checked in `lyrics_models.rs`.

use super::timing::read_ints;
use super::Report;
use crate::labels::{
    relevant_lyric_tokens, timing_bins, to_ascii, Arith, IdSet, Labeller, LyricVocab, Meta,
};
use anyhow::{bail, Context, Result};
use safetensors::SafeTensors;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

fn ints(v: &Value) -> Option<Vec<i64>> {
    v.as_array()?.iter().map(Value::as_i64).collect()
}

/// Record an exact comparison of two integer lists.
fn compare(report: &mut Report, name: String, got: &[i64], want: &[i64]) {
    if got.len() != want.len() {
        report.fail(
            name,
            format!("length {} but the reference has {}", got.len(), want.len()),
        );
        return;
    }
    let bad = got.iter().zip(want).filter(|(a, b)| a != b).count();
    let detail = match got.iter().zip(want).position(|(a, b)| a != b) {
        Some(i) => format!(
            "{} values; first mismatch at {i}: got {}, want {}",
            want.len(),
            got[i],
            want[i]
        ),
        None => format!("{} values", want.len()),
    };
    report.exact(name, bad, 0, detail);
}

pub fn run(dir: &Path, report: &mut Report) -> Result<()> {
    let manifest = read_json(&dir.join("manifest.json"))?;
    let cases_file = manifest
        .pointer("/lyrics_cases/file")
        .and_then(Value::as_str)
        .unwrap_or("lyrics_cases.json")
        .to_string();
    report.guard("lyrics_cases", |r| check_cases(&dir.join(&cases_file), r));
    let models = manifest
        .get("models")
        .and_then(Value::as_object)
        .context("manifest.json has no `models`")?;
    for (name, m) in models {
        report.guard(&format!("labels/{name}"), |r| check_model(dir, name, m, r));
    }
    Ok(())
}

fn vocab_by_name(name: &str) -> Result<LyricVocab> {
    match name {
        "v2" => Ok(LyricVocab::V2),
        "v3" => Ok(LyricVocab::V3),
        other => bail!("unknown vocabulary `{other}`"),
    }
}

fn check_cases(path: &Path, report: &mut Report) -> Result<()> {
    let cases = read_json(path)?;
    let list = |key: &str| -> Result<&Vec<Value>> {
        cases
            .get(key)
            .and_then(Value::as_array)
            .with_context(|| format!("{}: no `{key}` list", path.display()))
    };

    // Vocabularies: every character → id, and nothing more.
    let vocab = cases
        .get("vocab")
        .and_then(Value::as_object)
        .context("no `vocab` object")?;
    let mut bad = 0;
    let mut total = 0;
    for (vname, table) in vocab {
        let v = vocab_by_name(vname)?;
        let table = table.as_object().context("vocab table is not an object")?;
        bad += usize::from(table.len() != v.n_vocab());
        for (ch, id) in table {
            total += 1;
            let got = if ch == "<unk>" {
                Some(0)
            } else {
                let mut it = ch.chars();
                match (it.next(), it.next()) {
                    (Some(c), None) => v.id(c),
                    _ => None,
                }
            };
            bad += usize::from(got != id.as_i64());
        }
    }
    report.exact("lyrics_cases/vocab", bad, 0, format!("{total} entries"));

    // Lyric windows, including the float32/float64 pair and the cases that must fail.
    let windows = list("lyric_window")?;
    let mut bad = Vec::new();
    for (i, c) in windows.iter().enumerate() {
        let num = |k: &str| {
            c.get(k)
                .and_then(Value::as_i64)
                .with_context(|| format!("lyric_window[{i}].{k}"))
        };
        let full = c.get("full_tokens").and_then(ints).context("full_tokens")?;
        let arith = match c.get("arith").and_then(Value::as_str) {
            Some("torch_int64") => Arith::F32,
            _ => Arith::F64,
        };
        let got = relevant_lyric_tokens(
            &full,
            num("n_tokens")? as usize,
            num("total_length")?,
            num("offset")?,
            num("duration")?,
            arith,
        );
        let ok = match (got, c.get("error")) {
            (Err(_), Some(_)) => true,
            (Ok(w), None) => {
                Some(&w.tokens) == c.get("tokens").and_then(ints).as_ref()
                    && Some(&w.indices) == c.get("indices").and_then(ints).as_ref()
            }
            _ => false,
        };
        if !ok {
            bad.push(i);
        }
    }
    report.exact(
        "lyrics_cases/lyric_window",
        bad.len(),
        0,
        format!(
            "{} cases{}",
            windows.len(),
            if bad.is_empty() {
                String::new()
            } else {
                format!("; failing {bad:?}")
            }
        ),
    );

    // Text: unidecode, clean, tokenise.
    let texts = list("text")?;
    let (mut bad_u, mut bad_c, mut bad_t) = (Vec::new(), Vec::new(), Vec::new());
    for (i, c) in texts.iter().enumerate() {
        let s = |k: &str| {
            c.get(k)
                .and_then(Value::as_str)
                .with_context(|| format!("text[{i}].{k}"))
        };
        let v = vocab_by_name(s("vocab")?)?;
        let text = s("text")?;
        if to_ascii(text) != s("unidecode")? {
            bad_u.push(i);
        }
        let cleaned = v.clean(text);
        if cleaned != s("cleaned")?
            || c.get("n_vocab").and_then(Value::as_u64) != Some(v.n_vocab() as u64)
        {
            bad_c.push(i);
        }
        if Some(v.tokenize_cleaned(&cleaned)) != c.get("tokens").and_then(ints) {
            bad_t.push(i);
        }
    }
    for (name, b) in [("unidecode", bad_u), ("cleaned", bad_c), ("tokens", bad_t)] {
        let detail = format!(
            "{} cases{}",
            texts.len(),
            if b.is_empty() {
                String::new()
            } else {
                format!("; failing {b:?}")
            }
        );
        report.exact(format!("lyrics_cases/text_{name}"), b.len(), 0, detail);
    }

    // Artist and genre ids with the official (unknown → 0) lookup.
    let ag = list("artist_genre")?;
    let mut bad = Vec::new();
    for (i, c) in ag.iter().enumerate() {
        let s = |k: &str| {
            c.get(k)
                .and_then(Value::as_str)
                .with_context(|| format!("artist_genre[{i}].{k}"))
        };
        let ids = IdSet::official_by_name(s("ids")?)?;
        let (artist, _) = ids.artist_lookup(s("artist")?);
        let (genres, _) = ids.genre_lookup(s("genre")?);
        if Some(artist) != c.get("artist_id").and_then(Value::as_i64)
            || Some(genres) != c.get("genre_ids").and_then(ints)
        {
            bad.push(i);
        }
    }
    report.exact(
        "lyrics_cases/artist_genre",
        bad.len(),
        0,
        format!(
            "{} cases{}",
            ag.len(),
            if bad.is_empty() {
                String::new()
            } else {
                format!("; failing {bad:?}")
            }
        ),
    );
    Ok(())
}

/// The official labeller of a fixture prior, from its resolved hparams.
fn labeller_from_hps(hps: &Value, vq: &Value) -> Result<Labeller> {
    let num = |k: &str| {
        hps.get(k)
            .and_then(Value::as_f64)
            .with_context(|| format!("hps.{k} is missing"))
    };
    let level = num("level")? as usize;
    let downs = vq.get("downs_t").and_then(ints).context("vqvae.downs_t")?;
    let strides = vq
        .get("strides_t")
        .and_then(ints)
        .context("vqvae.strides_t")?;
    if level >= downs.len() || downs.len() != strides.len() {
        bail!("vqvae downs_t/strides_t do not cover level {level}");
    }
    let raw_to_tokens: i64 = (0..=level)
        .map(|l| strides[l].pow(downs[l] as u32))
        .product();
    let use_tokens = hps
        .get("use_tokens")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let n_tokens = if use_tokens {
        num("n_tokens")? as usize
    } else {
        0
    };
    let vocab = if n_tokens > 0 {
        Some(LyricVocab::from_n_vocab(num("n_vocab")? as usize)?)
    } else {
        None
    };
    let v3 = hps
        .get("labels_v3")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let sr = num("sr")?;
    let ids: Arc<IdSet> = if v3 { IdSet::v3() } else { IdSet::v2() };
    Ok(Labeller {
        ids,
        max_genres: num("max_bow_genre_size")? as usize,
        n_tokens,
        vocab,
        sample_length: num("n_ctx")? as i64 * raw_to_tokens,
        raw_to_tokens,
        strict: false,
        length_range: Some((num("min_duration")? * sr, num("max_duration")? * sr)),
        sample_rate: sr,
        quiet: true,
    })
}

fn check_model(dir: &Path, name: &str, m: &Value, report: &mut Report) -> Result<()> {
    let file = |k: &str, default: String| {
        m.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or(default)
    };
    let config = read_json(&dir.join(file("config_file", format!("config_{name}.json"))))?;
    let io_path = dir.join(file("io_file", format!("{name}_io.safetensors")));
    let bytes =
        std::fs::read(&io_path).with_context(|| format!("cannot read {}", io_path.display()))?;
    let st = SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{} is not safetensors", io_path.display()))?;
    let hps = config.get("hps").context("config has no `hps`")?;
    let lab = labeller_from_hps(hps, config.get("vqvae").context("config has no `vqvae`")?)?;
    let inputs = config
        .get("io_inputs")
        .context("config has no `io_inputs`")?;
    let metas = inputs
        .get("metas")
        .and_then(Value::as_array)
        .context("io_inputs.metas")?;
    let tf_start = inputs
        .get("tf_start")
        .and_then(Value::as_i64)
        .context("io_inputs.tf_start")?;
    let p = |k: &str| format!("labels/{name}/{k}");

    let mut bases = Vec::new();
    for (b, meta) in metas.iter().enumerate() {
        let s = |k: &str| {
            meta.get(k)
                .and_then(Value::as_str)
                .with_context(|| format!("metas[{b}].{k}"))
        };
        let n = |k: &str| {
            meta.get(k)
                .and_then(Value::as_i64)
                .with_context(|| format!("metas[{b}].{k}"))
        };
        let item = Meta::new(
            s("artist")?,
            s("genre")?,
            meta.get("lyrics")
                .and_then(Value::as_str)
                .map(str::to_string),
        );
        bases.push(
            lab.base(&item, n("total_length")?, n("offset")?)
                .with_context(|| format!("metas[{b}]"))?,
        );
    }
    let col = |c: usize| bases.iter().map(|b| b.y[c]).collect::<Vec<_>>();
    let flat_base: Vec<i64> = bases.iter().flat_map(|b| b.y.clone()).collect();
    compare(
        report,
        p("label_base_y"),
        &flat_base,
        &read_ints(&st, "label_base_y")?.0,
    );
    compare(
        report,
        p("label_total_length"),
        &col(0),
        &read_ints(&st, "label_total_length")?.0,
    );
    compare(
        report,
        p("label_offset"),
        &col(1),
        &read_ints(&st, "label_offset")?.0,
    );
    compare(
        report,
        p("label_sample_length"),
        &col(2)[..1],
        &read_ints(&st, "label_sample_length")?.0,
    );
    compare(
        report,
        p("label_artist_id"),
        &col(3),
        &read_ints(&st, "label_artist_id")?.0,
    );
    let genres: Vec<i64> = bases
        .iter()
        .flat_map(|b| b.y[4..4 + lab.max_genres].to_vec())
        .collect();
    compare(
        report,
        p("label_genre_ids"),
        &genres,
        &read_ints(&st, "label_genre_ids")?.0,
    );
    if lab.n_tokens > 0 {
        for (b, base) in bases.iter().enumerate() {
            let key = format!("label_full_tokens_row{b}");
            compare(report, p(&key), &base.full_tokens, &read_ints(&st, &key)?.0);
        }
    }

    let (y, idx) = lab.get_y_batch(&bases, tf_start)?;
    compare(report, p("y"), &y, &read_ints(&st, "y")?.0);
    if lab.n_tokens > 0 {
        compare(
            report,
            p("y_lyric_indices"),
            &idx.concat(),
            &read_ints(&st, "y_lyric_indices")?.0,
        );
    }

    let (starts, _) = read_ints(&st, "window_starts")?;
    let (mut wy, mut wi) = (Vec::new(), Vec::new());
    for &s in &starts {
        let (y, idx) = lab
            .get_y_batch(&bases, s)
            .with_context(|| format!("window start {s}"))?;
        wy.extend(y);
        wi.extend(idx.concat());
    }
    compare(report, p("window_y"), &wy, &read_ints(&st, "window_y")?.0);
    if lab.n_tokens > 0 {
        compare(
            report,
            p("window_lyric_indices"),
            &wi,
            &read_ints(&st, "window_lyric_indices")?.0,
        );
    }

    // Timing bins of `y` (the conditioner's input), when the prior has timing labels.
    if hps.get("labels").and_then(Value::as_bool).unwrap_or(true)
        && st.tensor("timing_bins_total").is_ok()
    {
        let num = |k: &str| {
            hps.get(k)
                .and_then(Value::as_f64)
                .with_context(|| format!("hps.{k}"))
        };
        let n_ctx = num("n_ctx")? as usize;
        let (mut total, mut abs, mut rel) = (Vec::new(), Vec::new(), Vec::new());
        for row in y.chunks(lab.y_len()) {
            let t = timing_bins(
                row[0],
                row[1],
                row[2],
                n_ctx,
                num("t_bins")? as usize,
                num("min_duration")?,
                num("max_duration")?,
                lab.sample_rate,
            )?;
            total.push(t.total);
            abs.extend(t.absolute);
            rel.extend(t.relative);
        }
        compare(
            report,
            p("timing_bins_total"),
            &total,
            &read_ints(&st, "timing_bins_total")?.0,
        );
        compare(
            report,
            p("timing_bins_absolute"),
            &abs,
            &read_ints(&st, "timing_bins_absolute")?.0,
        );
        compare(
            report,
            p("timing_bins_relative"),
            &rel,
            &read_ints(&st, "timing_bins_relative")?.0,
        );
    }
    Ok(())
}
