//! The Markdown report: one table per measurement, each with its baselines, and a list of
//! every comparison the model loses (the misses a reader must see explained).

use super::labels::{self, label_bound, LabelResult, Section, Spread};
use super::recon::level_name;
use super::{QualityReport, SplitInfo};
use std::fmt::Write;

fn split_line(what: &str, s: &SplitInfo) -> String {
    format!(
        "| {what} | `{}` | {} | {} | {}{} |",
        s.corpus,
        s.train_files,
        s.valid_files,
        if s.held_out { "yes" } else { "**no**" },
        if s.held_out {
            ""
        } else {
            " (no artist has two files: measured on training files)"
        }
    )
}

fn f(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "n/a".into()
    }
}

/// The comparisons the model loses, as sentences (empty when it wins them all).
pub fn misses(r: &QualityReport) -> Vec<String> {
    let mut out = Vec::new();
    for lv in &r.recon.levels {
        let mut lost = Vec::new();
        for b in r
            .recon
            .baselines
            .iter()
            .filter(|b| b.matches_level.is_none() || b.matches_level == lv.matches_level)
        {
            let worse: Vec<&str> = [
                ("STFT distance", lv.stft_distance >= b.stft_distance),
                (
                    "spectral convergence",
                    lv.spectral_convergence >= b.spectral_convergence,
                ),
                ("log-mel distance", lv.log_mel_db >= b.log_mel_db),
                ("SNR", lv.snr_db <= b.snr_db),
            ]
            .iter()
            .filter(|x| x.1)
            .map(|x| x.0)
            .collect();
            if !worse.is_empty() {
                lost.push(format!("{} on {}", b.name, worse.join(", ")));
            }
        }
        if !lost.is_empty() {
            out.push(format!(
                "Reconstruction, {}: not better than {}.",
                lv.name,
                lost.join("; ")
            ));
        }
    }
    for b in &r.bits {
        if b.prior_bits >= b.unigram_bits {
            out.push(format!(
                "Prior, level {}: {} bits/token held out is not below the unigram's {}.",
                b.level,
                f(b.prior_bits, 3),
                f(b.unigram_bits, 3)
            ));
        }
    }
    if let Some(t) = &r.tempo {
        for m in t.rows.iter().filter(|x| !x.baseline) {
            for b in t
                .rows
                .iter()
                .filter(|x| x.baseline && is_tempo_baseline(&x.name))
            {
                if m.mean_folded_error >= b.mean_folded_error {
                    out.push(format!(
                        "Tempo, {}: mean folded error {} BPM is not below \"{}\" ({} BPM).",
                        m.name,
                        f(m.mean_folded_error, 1),
                        b.name,
                        f(b.mean_folded_error, 1)
                    ));
                }
            }
        }
    }
    if let Some(l) = &r.labels {
        out.extend(label_misses(l));
    }
    if let Some(l) = &r.loops {
        out.extend(super::loops::misses(l));
    }
    if let Some(x) = &r.separation {
        out.extend(super::separation::misses(x));
    }
    out
}

/// The label comparisons the model loses: the prompt's known genre not ranked first, held-out
/// genre accuracy not above chance or not above the bag of codes.
pub fn label_misses(l: &LabelResult) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(p) = l.prompt.measured() {
        if let Some((id, name)) = &p.expected {
            for (early, what) in [(false, "whole windows"), (true, "early tokens")] {
                let rank = p.genres.rank_of(*id, early).unwrap_or(0);
                if rank != 1 {
                    out.push(format!(
                        "Labels, prompt ({what}): its genre `{name}` ranks {rank} of {}, not first.",
                        p.genres.scored.len()
                    ));
                }
            }
        }
    }
    if let Some(a) = l.accuracy.measured() {
        for (early, what) in [(false, "whole windows"), (true, "first {} tokens")] {
            let what = what.replace("{}", &a.early.to_string());
            if a.accuracy(early) <= a.chance() {
                out.push(format!(
                    "Labels, held-out genre accuracy ({what}): {} is not above chance ({}).",
                    pct(a.accuracy(early)),
                    pct(a.chance())
                ));
            }
            if a.accuracy(early) <= a.bag_accuracy(early) {
                out.push(format!(
                    "Labels, held-out genre accuracy ({what}): {} is not above the bag of codes \
                     ({}).",
                    pct(a.accuracy(early)),
                    pct(a.bag_accuracy(early))
                ));
            }
        }
    }
    out
}

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.0} %", 100.0 * x)
    } else {
        "n/a".into()
    }
}

fn delta(x: f64, base: f64) -> String {
    if (x - base).is_finite() {
        format!("{:+.4}", x - base)
    } else {
        "n/a".into()
    }
}

/// Per-label tables are printed up to this many labels.
const MAX_LABEL_ROWS: usize = 32;

fn spread_rows(s: &mut String, sp: &Spread) {
    let kind = sp.field.name();
    let b = &sp.baseline;
    let cell = |x: Option<&labels::LabelScore>, early: bool| match x {
        Some(x) => {
            let (v, base) = if early {
                (x.early, b.early)
            } else {
                (x.whole, b.whole)
            };
            format!("`{}` {} ({})", x.name, f(v, 4), delta(v, base))
        }
        None => "–".into(),
    };
    let _ = writeln!(
        s,
        "| best {kind} (Δ vs no label) | {} | {} |",
        cell(sp.best(false), false),
        cell(sp.best(true), true)
    );
    let _ = writeln!(
        s,
        "| worst {kind} (Δ vs no label) | {} | {} |",
        cell(sp.worst(false), false),
        cell(sp.worst(true), true)
    );
    let _ = writeln!(
        s,
        "| **spread: worst − best {kind}** ({} {kind}s) | **{}** | **{}** |",
        sp.scored.len(),
        f(sp.spread(false), 4),
        f(sp.spread(true), 4)
    );
}

fn label_table(s: &mut String, sp: &Spread, early_k: usize) {
    if sp.scored.len() > MAX_LABEL_ROWS {
        let _ = writeln!(
            s,
            "\n({} {}s: the per-label table is left out.)",
            sp.scored.len(),
            sp.field.name()
        );
        return;
    }
    let kind = sp.field.name();
    let _ = writeln!(
        s,
        "\n| {kind} | whole windows | Δ vs no label | rank | first {early_k} tokens | Δ vs no label | rank |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
    let b = &sp.baseline;
    let _ = writeln!(
        s,
        "| baseline: no label | {} | – | – | {} | – | – |",
        f(b.whole, 4),
        f(b.early, 4)
    );
    for x in sp.ranked(false) {
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} | {} | {} | {} |",
            x.name,
            f(x.whole, 4),
            delta(x.whole, b.whole),
            sp.rank_of(x.id, false).unwrap_or(0),
            f(x.early, 4),
            delta(x.early, b.early),
            sp.rank_of(x.id, true).unwrap_or(0)
        );
    }
}

/// The label sections as Markdown (also printed alone by `jukebox quality --labels-only`).
pub fn labels_markdown(l: &LabelResult) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Labels: prompt label spread (top level)\n");
    match &l.prompt {
        Section::Skipped(why) => {
            let _ = writeln!(s, "Skipped: {why}.");
        }
        Section::Measured(p) => {
            let g = p.genres.scored.len();
            let _ = writeln!(
                s,
                "`{}`: {:.2} s = {} top-level tokens, scored teacher-forced in {} window(s) of \
                 {} tokens (the windows of `jukebox rank-labels` and `logits`; the whole-window \
                 figure is what `rank-labels` prints). Every genre is scored with artist \
                 `unknown`, every artist with genre `unknown`; song length max(prompt, the \
                 prior's minimum), offset 0. \"First {} tokens\" averages positions 0..{} of each \
                 window ({} positions), where the window has the least context of its own and a \
                 label matters most. Baseline: no label (artist and genre `unknown`). Bound: \
                 against no label a true label saves at most log2({g}) = {:.2} bits per window, \
                 i.e. ≤ {} bits/token over whole windows and ≤ {} over the first {} tokens; the \
                 spread worst − best has no such bound (it is what a wrong label costs). The \
                 bag-of-codes rows rank the genres by the histograms of the held-out genre \
                 accuracy section below (order ignored), when a corpus is given.\n",
                p.prompt,
                p.seconds,
                p.tokens,
                p.windows,
                p.n_ctx,
                p.early,
                p.early,
                p.early_positions,
                label_bound(g),
                f(p.bound_whole(), 4),
                f(p.bound_early(), 4),
                p.early
            );
            let _ = writeln!(
                s,
                "| figure (bits/token) | whole windows | first {} tokens of each window |",
                p.early
            );
            let _ = writeln!(s, "|---|---:|---:|");
            let _ = writeln!(
                s,
                "| baseline: no label | {} | {} |",
                f(p.genres.baseline.whole, 4),
                f(p.genres.baseline.early, 4)
            );
            spread_rows(&mut s, &p.genres);
            if let Some((id, name)) = &p.expected {
                let cell = |early: bool| match p.genres.get(*id) {
                    Some(x) => {
                        let (v, b) = if early {
                            (x.early, p.genres.baseline.early)
                        } else {
                            (x.whole, p.genres.baseline.whole)
                        };
                        format!(
                            "rank {} of {g}: {} ({})",
                            p.genres.rank_of(*id, early).unwrap_or(0),
                            f(v, 4),
                            delta(v, b)
                        )
                    }
                    None => "–".into(),
                };
                let _ = writeln!(
                    s,
                    "| the prompt's genre `{name}` (Δ vs no label) | {} | {} |",
                    cell(false),
                    cell(true)
                );
            }
            let _ = writeln!(
                s,
                "| bound: log2({g}) bits per window over the tokens (true label vs no label) | {} | {} |",
                f(p.bound_whole(), 4),
                f(p.bound_early(), 4)
            );
            if let Some(bag) = &p.bag {
                let best = |early: bool| match bag.best(early) {
                    Some(x) => {
                        let (v, b) = if early {
                            (x.early, bag.baseline.early)
                        } else {
                            (x.whole, bag.baseline.whole)
                        };
                        format!(
                            "`{}` {} ({} vs all genres pooled)",
                            x.name,
                            f(v, 4),
                            delta(v, b)
                        )
                    }
                    None => "–".into(),
                };
                let _ = writeln!(
                    s,
                    "| baseline: bag of codes (each genre's training-code histogram), best genre | {} | {} |",
                    best(false),
                    best(true)
                );
                if let Some((id, name)) = &p.expected {
                    let rank = |early: bool| {
                        bag.rank_of(*id, early)
                            .map_or("–".into(), |r| format!("rank {r} of {g}"))
                    };
                    let _ = writeln!(
                        s,
                        "| baseline: bag of codes, the prompt's genre `{name}` | {} | {} |",
                        rank(false),
                        rank(true)
                    );
                }
            }
            if let Some(a) = &p.artists {
                spread_rows(&mut s, a);
            }
            if let Some(note) = &p.expected_note {
                let _ = writeln!(s, "\nNote: {note}.");
            }
            label_table(&mut s, &p.genres, p.early);
            if let Some(a) = &p.artists {
                label_table(&mut s, a, p.early);
            }
        }
    }
    let _ = writeln!(s, "\n## Labels: held-out genre accuracy (top level)\n");
    match &l.accuracy {
        Section::Skipped(why) => {
            let _ = writeln!(s, "Skipped: {why}.");
        }
        Section::Measured(a) => {
            let _ = writeln!(
                s,
                "Each held-out file of `{}` (the priors' split: seed {}, fraction {}{}) is encoded \
                 from its start, at most {} window(s), and every genre of the model is scored on \
                 its top-level codes (artist `unknown`, the file's own timing labels). A hit: the \
                 genre with the fewest bits is one of the file's genres. The mean rank (1 = \
                 fewest bits, the best-ranked of the file's genres) is finer: it moves before the \
                 top pick does; a random order gives (n + 1) / (g + 1) for g of n genres. \
                 Baselines: chance, a \
                 genre picked at random ({} genres); and a bag of codes, the trivial classifier \
                 that ignores order and context: each genre's histogram of top-level codes from \
                 {} one-window clips of its training files ({}; add-one smoothed), the file \
                 going to the genre under which its tokens cost the fewest bits. If the bag beats \
                 the prior, the codes tell the genres apart and the prior does not use its \
                 labels as well as a histogram does.\n",
                a.split.corpus,
                a.split.seed,
                a.split.valid_fraction,
                if a.split.held_out {
                    ""
                } else {
                    "; **nothing is held out**: no artist has two files, so these are training files"
                },
                a.windows_per_file,
                a.n_genres,
                a.bag_clips,
                a.bag_tokens
                    .iter()
                    .map(|(g, n)| format!("`{g}` {n} tokens"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let _ = writeln!(
                s,
                "| figure | whole windows | first {} tokens of each window |",
                a.early
            );
            let _ = writeln!(s, "|---|---:|---:|");
            let _ = writeln!(
                s,
                "| **top-1 genre accuracy** | **{}/{} = {}** | **{}/{} = {}** |",
                a.hits(false),
                a.files.len(),
                pct(a.accuracy(false)),
                a.hits(true),
                a.files.len(),
                pct(a.accuracy(true))
            );
            let _ = writeln!(
                s,
                "| baseline: chance (1/#genres per file genre) | {} | {} |",
                pct(a.chance()),
                pct(a.chance())
            );
            let _ = writeln!(
                s,
                "| baseline: bag of codes (each genre's training-code histogram) | {}/{} = {} | {}/{} = {} |",
                a.bag_hits(false),
                a.files.len(),
                pct(a.bag_accuracy(false)),
                a.bag_hits(true),
                a.files.len(),
                pct(a.bag_accuracy(true))
            );
            let _ = writeln!(
                s,
                "| mean rank of the file's genre (1 = first of {}) | {:.2} | {:.2} |",
                a.n_genres,
                a.mean_rank(false, false),
                a.mean_rank(true, false)
            );
            let _ = writeln!(
                s,
                "| baseline: chance, mean rank | {:.2} | {:.2} |",
                a.chance_rank(),
                a.chance_rank()
            );
            let _ = writeln!(
                s,
                "| baseline: bag of codes, mean rank | {:.2} | {:.2} |",
                a.mean_rank(false, true),
                a.mean_rank(true, true)
            );
            let _ = writeln!(
                s,
                "\n| file | genre | tokens | best genre (whole) | best genre (first {}) | bag of codes (whole) |",
                a.early
            );
            let _ = writeln!(s, "|---|---|---:|---|---|---|");
            for r in &a.files {
                let mark = |hit: bool| if hit { " ✓" } else { "" };
                let _ = writeln!(
                    s,
                    "| `{}` | {} | {} | `{}`{} | `{}`{} | `{}`{} |",
                    r.rel,
                    r.genres.join(", "),
                    r.tokens,
                    r.best_whole,
                    mark(r.hit_whole),
                    r.best_early,
                    mark(r.hit_early),
                    r.bag_whole,
                    mark(r.bag_hit_whole)
                );
            }
            if !a.left_out.is_empty() {
                let _ = writeln!(s, "\nLeft out:");
                for x in &a.left_out {
                    let _ = writeln!(s, "- {x}");
                }
            }
        }
    }
    s
}

/// The trivial baselines a continuation is judged against (the other baseline rows are context).
fn is_tempo_baseline(name: &str) -> bool {
    name.starts_with("repeat the prompt") || name == "silence" || name.starts_with("unprimed")
}

pub fn markdown(r: &QualityReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Measured quality of `{}`\n", r.model);
    let _ = writeln!(
        s,
        "Measured on {} with `jukebox quality` (CPU, {:.0} s in all):\n",
        r.date,
        r.timings.iter().map(|t| t.1).sum::<f64>()
    );
    if !r.command.is_empty() {
        let _ = writeln!(s, "```sh\n{}\n```\n", r.command);
    }
    let _ = writeln!(
        s,
        "Every figure stands beside a trivial baseline. Held-out audio is the validation split \
         training uses (`Corpus::split`: per artist, files ordered by a hash of (seed, path), the \
         first round(fraction · n) held out, at least one when the artist has two or more), seed {} \
         and fraction {}.\n",
        r.recon_split.seed, r.recon_split.valid_fraction
    );
    let _ = writeln!(
        s,
        "| used for | corpus | training files | held-out files | held out |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---|");
    let _ = writeln!(
        s,
        "{}",
        split_line("reconstruction, codebooks", &r.recon_split)
    );
    let _ = writeln!(
        s,
        "{}\n",
        split_line("prior bits per token", &r.prior_split)
    );

    let _ = writeln!(s, "## VQ-VAE reconstruction\n");
    let _ = writeln!(
        s,
        "{} held-out clips of {:.2} s, each encoded and decoded at one level. Multi-resolution \
         STFT distance (`dsp::multires_stft_distance`, the official multispectral loss: norm of \
         the magnitude difference, mean over three resolutions; it grows with clip length, so \
         compare rows), spectral convergence (the same normalised by the input's norm: silence \
         scores 1), log-mel distance (mean |dB| difference of the clip-average mel spectra: \
         timbre balance) and SNR (silence scores 0 dB). Lower is better except SNR. A decoder \
         that gets the spectrum right but not the phase scores a low SNR; the spectral figures \
         are the ones that matter for a VQ-VAE. Baselines: silence; each level's bit rate \
         (tokens per second × log2 of the codebook) spent on plain 8-bit µ-law at a lower sample \
         rate (the trivial codec at equal cost); and two references that spend far more: 8-bit \
         µ-law at the full rate and an unquantised 4 kHz low-pass.\n",
        r.clips, r.clip_seconds
    );
    let _ = writeln!(
        s,
        "| codec | kbit/s | STFT distance ↓ | spectral convergence ↓ | log-mel (dB) ↓ | SNR (dB) ↑ |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
    let line = |x: &super::ReconRow, name: String| {
        format!(
            "| {name} | {} | {} | {} | {} | {} |",
            x.kbps.map_or("–".to_string(), |k| f(k, 1)),
            f(x.stft_distance, 1),
            f(x.spectral_convergence, 3),
            f(x.log_mel_db, 2),
            f(x.snr_db, 2)
        )
    };
    for x in &r.recon.levels {
        let _ = writeln!(s, "{}", line(x, format!("**{}**", x.name)));
    }
    for x in &r.recon.baselines {
        let name = match x.matches_level {
            Some(l) => format!("baseline: {} (the bit rate of level {l})", x.name),
            None => format!("baseline: {}", x.name),
        };
        let _ = writeln!(s, "{}", line(x, name));
    }

    let _ = writeln!(s, "\n## Codebook usage\n");
    let _ = writeln!(
        s,
        "Codes of the same held-out clips. Perplexity is 2^(entropy of the code histogram): the \
         number of equally used codes that would give the same entropy. The trivial ceiling is \
         the codebook size (every code equally used); a collapsed codebook scores near 1.\n"
    );
    let _ = writeln!(
        s,
        "| level | tokens | distinct codes | perplexity | perplexity / codebook |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    for u in &r.recon.usage {
        let _ = writeln!(
            s,
            "| {} | {} | {} / {} ({:.0} %) | {} | {:.0} % |",
            level_name(u.level, r.recon.usage.len()),
            u.tokens,
            u.distinct,
            u.bins,
            100.0 * u.distinct as f64 / u.bins.max(1) as f64,
            f(u.perplexity, 1),
            100.0 * u.perplexity / u.bins.max(1) as f64
        );
    }

    if !r.recon.shift.is_empty() {
        shift_section(&mut s, &r.recon.shift);
    }

    let _ = writeln!(s, "\n## Prior bits per token (held out)\n");
    let _ = writeln!(
        s,
        "Teacher-forced over whole context windows of held-out audio, with each file's artist, \
         genres and timing labels from the corpus metadata (as training validates; upsamplers \
         see the level above's codes of the same audio). Baseline: the unigram of the training \
         codes (histogram of training clips, add-one smoothed) on the same tokens. Lower is \
         better; log2(codebook) is the uniform guess.\n"
    );
    let _ = writeln!(s, "| level | windows | tokens | prior | unigram baseline | prior − unigram | unigram trained on |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
    for b in &r.bits {
        let _ = writeln!(
            s,
            "| {} | {} | {} | **{}** | {} | {} | {} tokens |",
            level_name(b.level, r.bits.len()),
            b.windows,
            b.tokens,
            f(b.prior_bits, 3),
            f(b.unigram_bits, 3),
            f(b.prior_bits - b.unigram_bits, 3),
            b.unigram_train_tokens
        );
    }

    if let Some(t) = &r.tempo {
        let sr = t.sample_rate.max(1) as f64;
        let _ = writeln!(s, "\n## Tempo of primed continuations\n");
        let _ = writeln!(
            s,
            "The prompt's first {:.2} s, continued to {:.2} s; seeds {:?}; levels {:?}; {:.0} s of \
             sampling. Tempo (`dsp::tempo_bpm`) is read on the continued span only ({:.2} s after \
             the prompt), against the prompt's tempo, {} BPM ({}). \"Folded\" forgives octave errors \
             (half or double time). Baselines: loop the prompt (audio, or its codes through the \
             decoder), silence (no tempo: the error is the whole tempo), and unprimed samples \
             with the same labels and seeds (the same span).\n",
            t.prompt_samples as f64 / sr,
            t.sample_length as f64 / sr,
            t.seeds,
            t.levels,
            t.sampling_seconds,
            (t.sample_length - t.prompt_samples) as f64 / sr,
            t.prompt_bpm,
            t.bpm_source
        );
        let _ = writeln!(
            s,
            "| condition | tempo per sample (BPM) | mean error (BPM) | mean folded error (BPM) |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|");
        for x in &t.rows {
            let est: Vec<String> = x.estimates.iter().map(|e| f(*e, 1)).collect();
            let name = if x.baseline {
                format!("baseline: {}", x.name)
            } else {
                format!("**{}**", x.name)
            };
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} |",
                est.join(", "),
                f(x.mean_error, 1),
                f(x.mean_folded_error, 1)
            );
        }
    }

    if let Some(l) = &r.loops {
        let _ = writeln!(s);
        s.push_str(&super::loops::markdown(l));
    }
    if let Some(l) = &r.labels {
        let _ = writeln!(s);
        s.push_str(&labels_markdown(l));
    }
    if let Some(x) = &r.separation {
        let _ = writeln!(s);
        s.push_str(&super::separation::markdown(x));
    }

    let m = misses(r);
    let _ = writeln!(s, "\n## Where the model does not beat its baseline\n");
    if m.is_empty() {
        let _ = writeln!(s, "None: the model beats every baseline above.");
    } else {
        for x in &m {
            let _ = writeln!(s, "- {x}");
        }
    }
    let _ = writeln!(s, "\n## Timings\n");
    let _ = writeln!(s, "| stage | seconds |");
    let _ = writeln!(s, "|---|---:|");
    for (k, v) in &r.timings {
        let _ = writeln!(s, "| {k} | {v:.1} |");
    }
    s
}

/// Code stability under sub-hop shifts (`recon::shift_stability`).
fn shift_section(s: &mut String, rows: &[super::recon::ShiftRow]) {
    let _ = writeln!(s, "\n## Code stability under small shifts\n");
    let _ = writeln!(
        s,
        "The same held-out clips, started a fraction of a hop later: the share of codes that stay \
         the same, each shifted token compared with the original token it overlaps most ({} s at \
         either end left out). A bar that repeats after a length that is not a whole number of \
         tokens (at hop 128 and 137 BPM a bar is 603.5 tokens) lands on another phase of the hop \
         grid each time, so these shares say how far a prior can continue a groove by repeating \
         codes it has seen. Control: a whole hop (the same codes one token later; a convolutional \
         encoder gives 100 %). Baseline: chance, the share of equal codes between two unrelated \
         tokens (the sum of squared code frequencies).\n",
        super::recon::SHIFT_MARGIN_SECONDS
    );
    let shifts = rows.first().map(|r| r.shares.len()).unwrap_or(0);
    let mut head = String::from("| level | hop |");
    for k in 0..shifts {
        head.push_str(match k {
            0 => " hop/8 |",
            1 => " hop/4 |",
            2 => " hop/2 |",
            _ => " control: one hop |",
        });
    }
    let _ = writeln!(s, "{head} baseline: chance |");
    let _ = writeln!(s, "|---|---:|{}---:|", "---:|".repeat(shifts));
    for r in rows {
        let cells: String = r
            .shares
            .iter()
            .map(|(shift, share)| format!(" {:.1} % ({shift} samples) |", 100.0 * share))
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} |{cells} {:.1} % |",
            level_name(r.level, rows.len()),
            r.hop,
            100.0 * r.chance
        );
    }
}
