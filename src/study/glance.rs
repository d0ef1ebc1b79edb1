//! The report's opening summary: the three claims with their verdicts and effect sizes per level,
//! the label ranking's spread against what a label can explain at most, and a warning when no
//! label moves the model's likelihood beyond that.

use super::claims::{Claim, STATEMENTS};
use super::html::{esc, human};
use super::report::ReportData;
use std::fmt::Write as _;

/// What the label ranking shows, from `label_ranking.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct RankingGlance {
    /// Best − worst bits per token among genres (or artists, when no genre was ranked).
    pub field: String,
    pub n_labels: usize,
    pub spread: f64,
    /// Labels in the larger field (genres or artists): the bound's N.
    pub n_max: usize,
    /// Largest |bits − no label| over every ranked label.
    pub max_delta: f64,
    pub best: String,
    /// log2(#labels) bits per scored window, per token: the most a true label can save against
    /// no label (see models/default/TRAINING.md). #labels is the larger field's count.
    pub bound: f64,
}

/// Summarise the ranking; `tokens` top-level tokens were scored in windows of `window` tokens.
pub fn ranking_glance(
    header: &[String],
    rows: &[Vec<String>],
    tokens: usize,
    window: usize,
) -> Option<RankingGlance> {
    let col = |name: &str| header.iter().position(|h| h == name);
    let (kind, label, bits, delta) = (
        col("kind")?,
        col("label")?,
        col("bits_per_token")?,
        col("delta_bits")?,
    );
    let parsed: Vec<(&str, &str, f64, f64)> = rows
        .iter()
        .filter_map(|r| {
            Some((
                r.get(kind)?.as_str(),
                r.get(label)?.as_str(),
                r.get(bits)?.parse().ok()?,
                r.get(delta)?.parse().ok()?,
            ))
        })
        .filter(|r| r.0 != "none")
        .collect();
    let field = if parsed.iter().any(|r| r.0 == "genre") {
        "genre"
    } else {
        "artist"
    };
    let of: Vec<&(&str, &str, f64, f64)> = parsed.iter().filter(|r| r.0 == field).collect();
    if of.is_empty() || tokens == 0 || window == 0 {
        return None;
    }
    let n_max = ["genre", "artist"]
        .iter()
        .map(|k| parsed.iter().filter(|r| r.0 == *k).count())
        .max()
        .unwrap_or(1);
    let windows = tokens.div_ceil(window);
    let best = of.iter().min_by(|a, b| a.2.total_cmp(&b.2))?;
    let worst = of.iter().max_by(|a, b| a.2.total_cmp(&b.2))?;
    Some(RankingGlance {
        field: field.to_string(),
        n_labels: of.len(),
        spread: worst.2 - best.2,
        n_max,
        max_delta: parsed.iter().map(|r| r.3.abs()).fold(0.0, f64::max),
        best: best.1.to_string(),
        bound: (n_max as f64).log2() * windows as f64 / tokens as f64,
    })
}

/// One claim at one level: verdict tally and the first metric's effect.
fn claim_line(rows: &[&Claim]) -> String {
    let tally = |v: &str| rows.iter().filter(|c| c.verdict == v).count();
    let first = rows[0];
    format!(
        "{} of {} metrics yes, {} no, {} inconclusive; e.g. {}: {} − {} = {} ± {}",
        tally("yes"),
        rows.len(),
        tally("no"),
        tally("inconclusive"),
        esc(&first.metric),
        esc(&first.a),
        esc(&first.b),
        human(first.diff),
        human(first.diff_se)
    )
}

/// The summary block, placed right under the report's title.
pub fn section(s: &mut String, d: &ReportData) {
    let p = d.plan;
    s.push_str("<div id=\"glance\" style=\"background:#f6f8fa;border:1px solid #ddd;padding:0.6em 1em\"><h2 style=\"margin-top:0\">At a glance</h2><ul>");
    let mut levels = p.levels.clone();
    levels.sort_unstable_by(|a, b| b.cmp(a));
    for (k, st) in STATEMENTS.iter().enumerate() {
        let short = st.split(':').next().unwrap_or(st);
        let _ = write!(
            s,
            "<li><b>Claim {}</b> ({}): ",
            k + 1,
            esc(short.trim_end_matches('.'))
        );
        let mut parts = Vec::new();
        for &l in &levels {
            let rows: Vec<&Claim> = d
                .claims
                .iter()
                .filter(|c| c.claim as usize == k + 1 && c.level == l)
                .collect();
            if !rows.is_empty() {
                parts.push(format!("level {l}: {}", claim_line(&rows)));
            }
        }
        if parts.is_empty() {
            s.push_str("not measurable in this study");
        } else {
            s.push_str(&parts.join("; "));
        }
        s.push_str(". <a href=\"#claim-");
        let _ = write!(s, "{}\">details</a></li>", k + 1);
    }
    let top = p.hops.len().saturating_sub(1);
    let tokens = p.prompt_samples / p.hops.get(top).copied().unwrap_or(1).max(1);
    // rank-labels scores in windows of the top prior's context; one window if the model is gone.
    let window = crate::checkpoint::ModelDir::open(std::path::Path::new(&p.model))
        .ok()
        .and_then(|md| md.config.priors.get(md.config.top_level()).map(|c| c.n_ctx))
        .unwrap_or(tokens);
    match d
        .ranking
        .and_then(|(h, r)| ranking_glance(h, r, tokens, window))
    {
        Some(g) => {
            let _ = write!(
                s,
                "<li><b>Labels on the prompt</b>: best {} <code>{}</code>; {} {}s span {} bits/token \
                 (best − worst), and no label moves the prompt's bits by more than {} against no \
                 label. A true label can save at most log2({}) bits per window of {} tokens: {} \
                 bits/token over these {} tokens.</li>",
                g.field,
                esc(&g.best),
                g.n_labels,
                g.field,
                human(g.spread),
                human(g.max_delta),
                g.n_max,
                window,
                human(g.bound),
                tokens
            );
            if g.max_delta <= g.bound {
                let _ = write!(
                    s,
                    "<li class=\"no\">Warning: no label changes the model's likelihood of the \
                     prompt by more than a true label could explain ({} ≤ {} bits/token), so the \
                     ranking cannot show whether this model uses its labels; differences between \
                     cells may be chance. See the separability table below.</li>",
                    human(g.max_delta),
                    human(g.bound)
                );
            }
        }
        None => {
            s.push_str("<li>No label ranking in this study (<code>label_ranking.csv</code>).</li>")
        }
    }
    s.push_str("</ul></div>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_numbers() {
        assert_eq!(human(137.0), "137");
        assert_eq!(human(136.94), "137");
        assert_eq!(human(13.456), "13.5");
        assert_eq!(human(2.4149), "2.41");
        assert_eq!(human(0.012345), "0.0123");
        assert_eq!(human(-0.5), "-0.500");
        assert_eq!(human(0.0), "0.00");
        assert_eq!(human(0.000163), "0.000163");
        assert_eq!(human(1.634e-9), "1.63e-9");
        assert_eq!(human(f64::NAN), "–");
    }

    #[test]
    fn ranking_glance_reads_the_csv_columns() {
        let header: Vec<String> = "rank,kind,id,label,artist,genre,bits_per_token,delta_bits"
            .split(',')
            .map(String::from)
            .collect();
        let row = |s: &str| s.split(',').map(String::from).collect::<Vec<_>>();
        let rows = vec![
            row("1,genre,3,rock,unknown,rock,3.90,-0.002"),
            row(",none,0,no label,unknown,unknown,3.902,0"),
            row("2,genre,1,breakbeat,unknown,breakbeat,3.91,+0.008"),
            row("3,artist,2,kit,kit,unknown,3.95,+0.048"),
        ];
        let g = ranking_glance(&header, &rows, 512, 512).unwrap();
        assert_eq!(
            (g.field.as_str(), g.n_labels, g.best.as_str()),
            ("genre", 2, "rock")
        );
        assert!((g.spread - 0.01).abs() < 1e-12);
        assert!((g.max_delta - 0.048).abs() < 1e-12);
        assert!((g.bound - 1.0 / 512.0).abs() < 1e-12);
        // Two windows of 256: twice the bits a label can save, over the same tokens.
        let g = ranking_glance(&header, &rows, 512, 256).unwrap();
        assert!((g.bound - 2.0 / 512.0).abs() < 1e-12);
        assert!(ranking_glance(&header, &rows, 0, 512).is_none());
    }
}
