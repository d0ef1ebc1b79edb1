//! Prior sampling throughput with the KV cache: steps/s at several cache fill levels and after
//! a real prime (prefill timed separately), as a share of the memory-bandwidth roofline.

use super::{load_average, min_median, random_vb, reset_peak_rss, sys, Bandwidth, Measurement};
use crate::config::{LabelConfig, PriorConfig};
use crate::prior::{sampler, Conditioning, Prior, PriorCache, SampleOpts, WeightFormat};
use crate::util::uniform;
use candle_core::{bail, DType, Device, Result, Tensor};
use std::time::Instant;

/// Preset names accepted by `--prior`.
pub const PRIOR_PRESETS: [&str; 3] = ["small", "mid", "1b"];

fn labels(n_genres: usize, n_artists: usize, t_bins: usize) -> LabelConfig {
    LabelConfig {
        n_genres,
        n_artists,
        max_genres: 1,
        include_time_signal: true,
        t_bins,
        min_duration: 0.0,
        max_duration: 600.0,
    }
}

/// The prior configs of `tests/fixtures/reference/bench.py` (attn_order 2 = block, transpose,
/// previous-block; untied head; artist/genre/timing labels), in official terms.
pub fn prior_preset(name: &str) -> Result<PriorConfig> {
    let (n_ctx, width, depth, heads, blocks, bins, lab) = match name {
        // The fixture top prior.
        "small" => (64, 64, 4, 2, 8, 64, labels(12, 20, 16)),
        // Width 1024, depth 24, 8 heads, n_ctx 8192.
        "mid" => (8192, 1024, 24, 8, 128, 2048, labels(120, 4111, 128)),
        // The 1b_lyrics decoder's shape without the lyric layers.
        "1b" => (6144, 2048, 72, 2, 64, 2048, labels(604, 7898, 64)),
        other => bail!(
            "unknown prior preset `{other}`: use one of {}",
            PRIOR_PRESETS.join(", ")
        ),
    };
    Ok(PriorConfig {
        level: 2,
        n_ctx,
        width,
        depth,
        heads,
        blocks: Some(blocks),
        attn_order: 2,
        bins,
        m_attn: 0.25,
        m_mlp: 1.0,
        merged_decoder: true,
        labels: Some(lab),
        cond: None,
        lyrics: None,
        raw_to_tokens: 128,
        alignment: None,
    })
}

/// Weight bytes one sampling step reads: every transformer weight, the output head, and one
/// row of each embedding table, all stored with `elem` bytes per element.
pub fn weight_bytes_per_step(cfg: &PriorConfig, elem: usize) -> usize {
    let (dense, outputs, rest) = weight_counts(cfg);
    (dense + outputs + rest) * elem
}

/// (dense weight elements, dense outputs (one bias each), everything else a step reads).
fn weight_counts(cfg: &PriorConfig) -> (usize, usize, usize) {
    let (w, s) = (cfg.width, cfg.n_state());
    let m = (w as f64 * cfg.m_mlp) as usize;
    let dense = cfg.depth * (w * 3 * s + s * w + w * m + m * w);
    let outputs = cfg.depth * (3 * s + w + m + w);
    let rest = cfg.depth * 4 * w + cfg.vocab() * w + 2 * w;
    (dense, outputs, rest)
}

/// [`weight_bytes_per_step`] for a weight format: q8 reads its dense weights as one byte each
/// plus a scale per output, everything else in f32 (the model it was quantised from).
pub fn format_bytes_per_step(cfg: &PriorConfig, f: WeightFormat) -> usize {
    match f {
        WeightFormat::Q8 => {
            let (dense, outputs, rest) = weight_counts(cfg);
            dense + (2 * outputs + rest) * 4
        }
        other => weight_bytes_per_step(cfg, other.elem_bytes()),
    }
}

/// What to measure for one prior preset.
#[derive(Debug, Clone)]
pub struct PriorBenchOpts {
    pub preset: String,
    pub cfg: PriorConfig,
    pub batches: Vec<usize>,
    pub formats: Vec<WeightFormat>,
    /// Fill levels to time (`empty`, `half`, `full`).
    pub fills: Vec<String>,
    /// Prime length for the primed measurement (0: skip it).
    pub prime: usize,
    /// Steps timed per measurement.
    pub tokens: usize,
    pub reps: usize,
    /// Prefill chunk (tokens per pass).
    pub chunk: usize,
}

/// The conditioning of `batch` items with fixed labels.
fn conditioning(prior: &Prior, batch: usize) -> Result<Conditioning> {
    let sl = (prior.cfg.sample_length() * 4) as i64;
    let row = [sl, 0, prior.cfg.sample_length() as i64, 1, 2];
    let y: Vec<i64> = (0..batch).flat_map(|_| row).collect();
    let y = Tensor::from_vec(y, (batch, 5), prior.device())?;
    prior.conditioning(Some(&y), None)
}

/// `n` sampling steps exactly as `sample_window` takes them (step, host-side draw, accept);
/// returns the last step's tokens.
pub fn run_steps(
    prior: &Prior,
    cache: &mut PriorCache,
    cond: &Conditioning,
    n: usize,
    seeds: &[u64],
    opts: &SampleOpts,
) -> Result<Vec<i64>> {
    let mut toks = vec![];
    for _ in 0..n {
        let pos = cache.pos;
        let logits = prior.step(cache, cond)?;
        let rows = logits.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        toks = rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let u = uniform(seeds[i], opts.level, opts.window, pos as u64);
                sampler::sample_token(row, opts, u).0 as i64
            })
            .collect();
        cache.accept(&Tensor::new(toks.as_slice(), prior.device())?)?;
    }
    Ok(toks)
}

/// Put the cache at position `pos` with a known previous token, without running the prefix:
/// the cost of a step does not depend on the cached values, only on how many are read.
fn seek(cache: &mut PriorCache, pos: usize, batch: usize, dev: &Device) -> Result<()> {
    cache.reset();
    cache.pos = pos;
    if pos > 0 {
        cache.last = Some(Tensor::zeros(batch, DType::I64, dev)?);
    }
    Ok(())
}

/// The preset's random prior with its dense weights in `f` (the same values for every format:
/// half precision rounds them, q8 quantises the f32 ones).
fn build(cfg: &PriorConfig, f: WeightFormat, dev: &Device) -> Result<Prior> {
    Prior::new_as(cfg, random_vb(1, f.float_dtype(), dev), f)
}

/// Logits of `steps` teacher-forced sampling steps (batch 1) of `prior` and of the same model
/// in f32: (max |Δ|, RMS of Δ over the RMS of the f32 logits, share of steps whose argmax
/// agrees). The steps take the sampling path (the persistent step where it applies).
fn logits_error(
    o: &PriorBenchOpts,
    prior: &Prior,
    dev: &Device,
    steps: usize,
) -> Result<(f64, f64, f64)> {
    let reference = build(&o.cfg, WeightFormat::F32, dev)?;
    let toks: Vec<i64> = (0..steps)
        .map(|i| (uniform(17, 0, 0, i as u64) * o.cfg.bins as f64) as i64)
        .collect();
    let run = |p: &Prior| -> Result<Vec<Vec<f32>>> {
        let cond = conditioning(p, 1)?;
        let mut cache = p.new_cache(1)?;
        let mut out = vec![];
        for &t in &toks {
            out.push(
                p.step(&mut cache, &cond)?
                    .to_dtype(DType::F32)?
                    .flatten_all()?
                    .to_vec1()?,
            );
            cache.accept(&Tensor::new(&[t], dev)?)?;
        }
        Ok(out)
    };
    let (a, b) = (run(&reference)?, run(prior)?);
    let (mut max, mut se, mut ss, mut agree) = (0f64, 0f64, 0f64, 0usize);
    let argmax = |v: &[f32]| {
        v.iter()
            .enumerate()
            .max_by(|x, y| x.1.total_cmp(y.1))
            .map(|x| x.0)
    };
    for (ra, rb) in a.iter().zip(&b) {
        for (x, y) in ra.iter().zip(rb) {
            let d = (*x as f64 - *y as f64).abs();
            max = max.max(d);
            se += d * d;
            ss += (*x as f64).powi(2);
        }
        agree += (argmax(ra) == argmax(rb)) as usize;
    }
    Ok((
        max,
        (se / ss.max(f64::MIN_POSITIVE)).sqrt(),
        agree as f64 / steps.max(1) as f64,
    ))
}

/// Fill the roofline fields of a sampling measurement.
fn roofline(
    m: &mut Measurement,
    prior: &Prior,
    batch: usize,
    pos0: usize,
    steps: usize,
    f: WeightFormat,
    bw: Option<&Bandwidth>,
) {
    let wb = format_bytes_per_step(&prior.cfg, f) as f64;
    let kv: f64 = (pos0..pos0 + steps)
        .map(|p| PriorCache::bytes_read_at(&prior.transformer, batch, p, 0) as f64)
        .sum::<f64>()
        / steps.max(1) as f64;
    let bytes = wb + kv;
    m.weight_bytes = Some(wb);
    m.bytes_per_step = Some(bytes);
    if let (Some(bw), Some(sps)) = (bw, m.steps_per_s) {
        m.roofline_share = Some(sps * bytes / bw.copy);
        m.roofline_share_read = Some(sps * bytes / bw.read);
    }
}

/// Run every measurement of one preset; `emit` receives each as soon as it is taken.
pub fn bench_prior(
    o: &PriorBenchOpts,
    dev: &Device,
    bw: Option<&Bandwidth>,
    emit: &mut dyn FnMut(Measurement),
) -> Result<()> {
    let seq = o.cfg.seq_len();
    let tokens = o.tokens.clamp(1, seq);
    for &f in &o.formats {
        let dn = f.name();
        reset_peak_rss();
        let t = Instant::now();
        let prior = build(&o.cfg, f, dev)?;
        if prior.weight_format() != f {
            bail!(
                "built {:?} weights for --dtype {}",
                prior.weight_format(),
                f.name()
            );
        }
        let mut m = Measurement::new("prior_build", &o.preset, dn);
        m.wall_s = t.elapsed().as_secs_f64();
        m.weight_bytes = Some(format_bytes_per_step(&o.cfg, f) as f64);
        m.peak_rss = sys::peak_rss();
        emit(m);
        let opts = SampleOpts::default();
        for &b in &o.batches {
            let cond = conditioning(&prior, b)?;
            let seeds: Vec<u64> = (0..b as u64).collect();
            let mut cache = prior.new_cache(b)?;
            for fill in &o.fills {
                let pos0 = match fill.as_str() {
                    "empty" => 0,
                    "half" => seq / 2,
                    "full" => seq - tokens,
                    other => bail!("unknown fill level `{other}`: use empty, half or full"),
                };
                // Warm-up (allocator, thread pool), then the timed repeats.
                seek(&mut cache, pos0, b, dev)?;
                run_steps(&prior, &mut cache, &cond, tokens.min(4), &seeds, &opts)?;
                let mut ts = vec![];
                reset_peak_rss();
                for _ in 0..o.reps.max(1) {
                    seek(&mut cache, pos0, b, dev)?;
                    let t = Instant::now();
                    run_steps(&prior, &mut cache, &cond, tokens, &seeds, &opts)?;
                    ts.push(t.elapsed().as_secs_f64());
                }
                let (best, med) = min_median(&mut ts);
                let mut m = Measurement::new("prior_sample", &o.preset, dn);
                m.batch = Some(b);
                m.fill = Some(fill.clone());
                m.pos = Some(pos0);
                m.prime = Some(0);
                m.tokens = Some(tokens);
                m.wall_s = best;
                m.wall_s_median = Some(med);
                m.steps_per_s = Some(tokens as f64 / best);
                m.tokens_per_s_total = Some((b * tokens) as f64 / best);
                m.peak_rss = sys::peak_rss();
                roofline(&mut m, &prior, b, pos0, tokens, f, bw);
                emit(m);
            }
            let prime = o.prime.min(seq.saturating_sub(tokens + 1));
            if prime > 0 {
                bench_primed(o, &prior, &cond, b, prime, tokens, f, &seeds, bw, emit)?;
            }
        }
        // After the timings, so that the f32 copy it builds does not count in their peak memory.
        if f != WeightFormat::F32 {
            let steps = tokens.clamp(1, 32);
            let t = Instant::now();
            let (max, rel, agree) = logits_error(o, &prior, dev, steps)?;
            let mut m = Measurement::new("prior_logits_error", &o.preset, dn);
            m.wall_s = t.elapsed().as_secs_f64();
            m.tokens = Some(steps);
            m.logits_max_err = Some(max);
            m.logits_rel_rms_err = Some(rel);
            m.argmax_agree = Some(agree);
            emit(m);
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn bench_primed(
    o: &PriorBenchOpts,
    prior: &Prior,
    cond: &Conditioning,
    b: usize,
    prime: usize,
    tokens: usize,
    f: WeightFormat,
    seeds: &[u64],
    bw: Option<&Bandwidth>,
    emit: &mut dyn FnMut(Measurement),
) -> Result<()> {
    let dn = f.name();
    let dev = prior.device();
    let ids: Vec<i64> = (0..b * prime)
        .map(|i| (uniform(9, 0, 0, i as u64) * prior.cfg.bins as f64) as i64)
        .collect();
    let prime_t = Tensor::from_vec(ids, (b, prime), dev)?;
    let opts = SampleOpts::default();
    let mut pre = vec![];
    let mut steps = vec![];
    let mut peak = None;
    for _ in 0..o.reps.clamp(1, 2) {
        let mut cache = prior.new_cache(b)?;
        reset_peak_rss();
        let t = Instant::now();
        // As primed sampling does: the cache only (the next step computes its logits).
        prior.fill_cache(&mut cache, cond, &prime_t, o.chunk)?;
        pre.push(t.elapsed().as_secs_f64());
        peak = sys::peak_rss();
        let t = Instant::now();
        run_steps(prior, &mut cache, cond, tokens, seeds, &opts)?;
        steps.push(t.elapsed().as_secs_f64());
    }
    let (pbest, pmed) = min_median(&mut pre);
    let mut m = Measurement::new("prior_prefill", &o.preset, dn);
    m.batch = Some(b);
    m.prime = Some(prime);
    m.tokens = Some(prime);
    m.wall_s = pbest;
    m.wall_s_median = Some(pmed);
    m.tokens_per_s_total = Some((b * prime) as f64 / pbest);
    m.peak_rss = peak;
    m.amx = Some(f == WeightFormat::BF16 && prior.device().is_cpu() && crate::ops::amx::enabled());
    emit(m);
    let (best, med) = min_median(&mut steps);
    let mut m = Measurement::new("prior_sample", &o.preset, dn);
    m.batch = Some(b);
    m.fill = Some("prime".into());
    m.pos = Some(prime);
    m.prime = Some(prime);
    m.tokens = Some(tokens);
    m.wall_s = best;
    m.wall_s_median = Some(med);
    m.steps_per_s = Some(tokens as f64 / best);
    m.tokens_per_s_total = Some((b * tokens) as f64 / best);
    m.load1 = load_average();
    roofline(&mut m, prior, b, prime, tokens, f, bw);
    emit(m);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prior::sample_window;

    #[test]
    fn presets_have_the_issue_shapes() {
        let mid = prior_preset("mid").unwrap();
        assert_eq!(
            (mid.width, mid.depth, mid.heads, mid.n_ctx),
            (1024, 24, 8, 8192)
        );
        let big = prior_preset("1b").unwrap();
        assert_eq!((big.width, big.depth), (2048, 72));
        // 1b-size: ~0.9 G weights read per step (≈ 3.6 GB in f32).
        let wb = weight_bytes_per_step(&big, 4) as f64;
        assert!((3.5e9..3.8e9).contains(&wb), "{wb}");
        assert!(prior_preset("huge").is_err());
    }

    #[test]
    fn bench_steps_are_the_sampler_steps() {
        // The timed loop must do exactly what sample_window does: same tokens.
        let cfg = prior_preset("small").unwrap();
        let prior = Prior::new(&cfg, random_vb(3, DType::F32, &Device::Cpu)).unwrap();
        let cond = conditioning(&prior, 2).unwrap();
        let seeds = [5u64, 6];
        let opts = SampleOpts::default();
        let empty = Tensor::zeros((2, 0), DType::I64, &Device::Cpu).unwrap();
        let want = sample_window(&prior, &cond, &empty, 6, &seeds, &opts, &mut |_, _| {}).unwrap();
        let want: Vec<Vec<i64>> = want.tokens.to_vec2().unwrap();
        let mut cache = prior.new_cache(2).unwrap();
        let last = run_steps(&prior, &mut cache, &cond, 6, &seeds, &opts).unwrap();
        assert_eq!(last, vec![want[0][5], want[1][5]]);
        assert_eq!(cache.pos, 6);
    }

    #[test]
    fn harness_smoke_on_the_small_config() {
        let o = PriorBenchOpts {
            preset: "small".into(),
            cfg: prior_preset("small").unwrap(),
            batches: vec![1, 2],
            formats: vec![WeightFormat::F32, WeightFormat::F16, WeightFormat::Q8],
            fills: vec!["empty".into(), "full".into()],
            prime: 16,
            tokens: 3,
            reps: 1,
            chunk: 8,
        };
        let bw = Bandwidth {
            copy: 1e10,
            read: 2e10,
            threads: 1,
            bytes: 0,
        };
        let mut got = vec![];
        bench_prior(&o, &Device::Cpu, Some(&bw), &mut |m| got.push(m)).unwrap();
        // Per format: build + per batch (2 fills + prefill + primed), and the logits error of
        // the two that are not f32.
        assert_eq!(got.len(), 3 * (1 + 2 * 4) + 2);
        let s: Vec<&Measurement> = got.iter().filter(|m| m.kind == "prior_sample").collect();
        assert_eq!(s.len(), 18);
        for m in &s {
            assert!(m.steps_per_s.unwrap() > 0.0);
            let r = m.roofline_share.unwrap();
            assert!(r > 0.0 && r.is_finite());
            // f16 storage halves the weight bytes; q8 reads a byte per dense weight.
            let f = WeightFormat::parse(&m.dtype).unwrap();
            let want = match f {
                WeightFormat::F16 => weight_bytes_per_step(&o.cfg, 2),
                WeightFormat::Q8 => {
                    let (dense, outputs, rest) = weight_counts(&o.cfg);
                    assert!(dense > 4 * (outputs + rest), "dense weights dominate");
                    dense + 4 * (2 * outputs + rest)
                }
                _ => weight_bytes_per_step(&o.cfg, 4),
            };
            assert_eq!(m.weight_bytes.unwrap(), want as f64);
        }
        // Half precision and q8 change the logits a little, not the model.
        for m in got.iter().filter(|m| m.kind == "prior_logits_error") {
            let (max, rel) = (m.logits_max_err.unwrap(), m.logits_rel_rms_err.unwrap());
            assert!(
                max > 0.0 && rel > 0.0 && rel < 0.05,
                "{}: {max} {rel}",
                m.dtype
            );
            assert!(m.argmax_agree.unwrap() >= 0.5, "{}", m.dtype);
        }
        let full = s
            .iter()
            .find(|m| m.fill.as_deref() == Some("full"))
            .unwrap();
        assert_eq!(full.pos, Some(64 - 3));
        let primed = s
            .iter()
            .find(|m| m.fill.as_deref() == Some("prime"))
            .unwrap();
        assert_eq!(primed.pos, Some(16));
        // Each prefill says whether it ran on AMX tiles: only bf16 weights can, and only where
        // the path is on.
        for m in got.iter().filter(|m| m.kind == "prior_prefill") {
            let want = m.dtype == "bf16" && crate::ops::amx::enabled();
            assert_eq!(m.amx, Some(want), "{}", m.dtype);
        }
    }
}
