//! The report's opening summary: the three claims with their verdicts and effect sizes per level,
//! the label ranking's spread against what a label can explain at most, and a warning when no
//! label moves the model's likelihood beyond that.

use super::claims::{Claim, STATEMENTS};
use super::html::human;
use super::report::ReportData;
use serde::Serialize;

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
        first.metric,
        first.a,
        first.b,
        human(first.diff),
        human(first.diff_se)
    )
}

/// The summary block under the report's title, as the template's context (`glance` in
/// `report.html.j2`); the template escapes every string.
#[derive(Serialize)]
pub struct GlanceView {
    claims: Vec<ClaimGlance>,
    ranking: Option<RankingView>,
}

#[derive(Serialize)]
struct ClaimGlance {
    k: usize,
    short: String,
    text: String,
}

#[derive(Serialize)]
struct RankingView {
    field: String,
    best: String,
    n_labels: usize,
    spread: String,
    max_delta: String,
    n_max: usize,
    window: usize,
    bound: String,
    tokens: usize,
    /// No label moves the likelihood beyond what a true label could explain.
    warn: bool,
}

pub fn view(d: &ReportData) -> GlanceView {
    let p = d.plan;
    let mut levels = p.levels.clone();
    levels.sort_unstable_by(|a, b| b.cmp(a));
    let claims = STATEMENTS
        .iter()
        .enumerate()
        .map(|(k, st)| {
            let short = st.split(':').next().unwrap_or(st);
            let parts: Vec<String> = levels
                .iter()
                .filter_map(|&l| {
                    let rows: Vec<&Claim> = d
                        .claims
                        .iter()
                        .filter(|c| c.claim as usize == k + 1 && c.level == l)
                        .collect();
                    (!rows.is_empty()).then(|| format!("level {l}: {}", claim_line(&rows)))
                })
                .collect();
            ClaimGlance {
                k: k + 1,
                short: short.trim_end_matches('.').to_string(),
                text: if parts.is_empty() {
                    "not measurable in this study".into()
                } else {
                    parts.join("; ")
                },
            }
        })
        .collect();
    let top = p.hops.len().saturating_sub(1);
    let tokens = p.prompt_samples / p.hops.get(top).copied().unwrap_or(1).max(1);
    // rank-labels scores in windows of the top prior's context; one window if the model is gone.
    let window = crate::checkpoint::ModelDir::open(std::path::Path::new(&p.model))
        .ok()
        .and_then(|md| md.config.priors.get(md.config.top_level()).map(|c| c.n_ctx))
        .unwrap_or(tokens);
    let ranking = d
        .ranking
        .and_then(|(h, r)| ranking_glance(h, r, tokens, window))
        .map(|g| RankingView {
            warn: g.max_delta <= g.bound,
            spread: human(g.spread),
            max_delta: human(g.max_delta),
            bound: human(g.bound),
            field: g.field,
            best: g.best,
            n_labels: g.n_labels,
            n_max: g.n_max,
            window,
            tokens,
        });
    GlanceView { claims, ranking }
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
