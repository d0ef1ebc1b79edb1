//! The three claims the study measures (README, "What it does", `jukebox study`), over seeds:
//! 1. primed beats ancestral (prompt retention and bits per token);
//! 2. labels lower the sampling entropy and make the style more consistent across seeds;
//! 3. seeds vary a lot within a cell, compared with the distance between cells.

use super::metrics::{f, level_set, Separability};
use super::plan::{Mode, Plan, RunnerKind};
use super::stats;
use super::store::ItemRecord;

/// One measured comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    pub claim: u8,
    pub level: usize,
    pub metric: String,
    /// What is compared (e.g. `primed`, `ancestral`).
    pub a: String,
    pub b: String,
    /// Number of values (pairs for paired tests).
    pub n: usize,
    pub mean_a: f64,
    pub se_a: f64,
    pub mean_b: f64,
    pub se_b: f64,
    /// mean(a − b) and its standard error.
    pub diff: f64,
    pub diff_se: f64,
    /// Permutation p-value (two-sided unless stated), or NaN where a bootstrap interval is used.
    pub p: f64,
    /// 95 % bootstrap interval of `diff` (NaN where a p-value is used).
    pub ci: (f64, f64),
    /// The direction the claim predicts: `a < b` or `a > b`.
    pub expect: String,
    /// `yes` (predicted direction, p < 0.05 or interval excluding 0), `no` (significant the other
    /// way), or `inconclusive`.
    pub verdict: String,
    /// The cells the numbers came from.
    pub cells: Vec<String>,
}

pub const STATEMENTS: [&str; 3] = [
    "Primed sampling beats ancestral: the continuation keeps the prompt's tempo and onset pattern, and the model is more certain (fewer bits per token).",
    "Giving genre and artist lowers the entropy of generation and gives a more consistent style across seeds.",
    "The same inputs still vary a lot from seed to seed: compare the spread within a cell with the distance between cells.",
];

fn verdict(diff: f64, p: f64, ci: (f64, f64), expect_less: bool) -> String {
    let sig = if p.is_nan() {
        !(ci.0 <= 0.0 && ci.1 >= 0.0)
    } else {
        p < 0.05
    };
    if diff.is_nan() || !sig {
        "inconclusive".into()
    } else if (diff < 0.0) == expect_less {
        "yes".into()
    } else {
        "no".into()
    }
}

fn paired(
    claim: u8,
    level: usize,
    metric: &str,
    (a, b): (&str, &str),
    pairs: &[(f64, f64)],
    expect_less: bool,
    cells: Vec<String>,
) -> Claim {
    // A number the runner could not measure (NaN) drops its pair.
    let pairs: Vec<(f64, f64)> = pairs
        .iter()
        .copied()
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    let xa: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let xb: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    let d: Vec<f64> = pairs.iter().map(|p| p.0 - p.1).collect();
    let seed =
        stats::STATS_SEED ^ ((claim as u64) << 12) ^ ((level as u64) << 4) ^ metric.len() as u64;
    let (diff, diff_se, p) = stats::paired_test(&d, seed);
    Claim {
        claim,
        level,
        metric: metric.into(),
        a: a.into(),
        b: b.into(),
        n: pairs.len(),
        mean_a: stats::mean(&xa),
        se_a: stats::std_err(&xa),
        mean_b: stats::mean(&xb),
        se_b: stats::std_err(&xb),
        diff,
        diff_se,
        p,
        ci: (f64::NAN, f64::NAN),
        expect: if expect_less {
            format!("{a} < {b}")
        } else {
            format!("{a} > {b}")
        },
        verdict: verdict(diff, p, (f64::NAN, f64::NAN), expect_less),
        cells,
    }
}

/// Measure all claims from the item records and the separability tests.
pub fn measure(plan: &Plan, items: &[ItemRecord], sep: &[Separability]) -> Vec<Claim> {
    let mut out = vec![];
    for &level in &plan.levels {
        primed_vs_ancestral(plan, items, level, &mut out);
        labels_vs_none_entropy(plan, items, level, &mut out);
        labels_vs_none_spread(plan, items, level, &mut out);
        within_vs_between(plan, sep, level, &mut out);
    }
    out
}

fn find_item<'a>(items: &'a [ItemRecord], cell: &str, seed: u64) -> Option<&'a ItemRecord> {
    items.iter().find(|it| it.cell == cell && it.seed == seed)
}

/// Claim 1: primed against ancestral, paired by label set and seed.
fn primed_vs_ancestral(plan: &Plan, items: &[ItemRecord], level: usize, out: &mut Vec<Claim>) {
    let find = |cell: &str, seed: u64| find_item(items, cell, seed);
    type Get = fn(&super::store::LevelRecord) -> f64;
    let metrics: [(&str, Get, bool); 3] = [
        ("tempo_err_bpm", |l| l.features.tempo_err_bpm, true),
        ("onset_corr", |l| l.features.onset_corr, false),
        ("bits_own", |l| l.bits_own, true),
    ];
    for (metric, get, less) in metrics {
        let mut pairs = vec![];
        let mut cells = vec![];
        for pc in plan.cells.iter().filter(|c| c.mode == Mode::Primed) {
            let Some(ac) = plan.cells.iter().find(|c| {
                c.mode == Mode::Ancestral
                    && c.genre_ids == pc.genre_ids
                    && c.artist_id == pc.artist_id
            }) else {
                continue;
            };
            let mut used = false;
            for &seed in &plan.seeds {
                if let (Some(p), Some(a)) = (find(&pc.id, seed), find(&ac.id, seed)) {
                    if let (Some(lp), Some(la)) = (p.level(level), a.level(level)) {
                        pairs.push((get(lp), get(la)));
                        used = true;
                    }
                }
            }
            if used {
                cells.push(pc.id.clone());
                cells.push(ac.id.clone());
            }
        }
        if !pairs.is_empty() {
            out.push(paired(
                1,
                level,
                metric,
                ("primed", "ancestral"),
                &pairs,
                less,
                cells,
            ));
        }
    }
}

/// Claim 2a: labels against no labels in sampling entropy, paired by mode and seed.
fn labels_vs_none_entropy(plan: &Plan, items: &[ItemRecord], level: usize, out: &mut Vec<Claim>) {
    let find = |cell: &str, seed: u64| find_item(items, cell, seed);
    for (metric, get) in [
        (
            "entropy_filtered_bits",
            (|l| l.entropy_filtered_bits) as fn(&super::store::LevelRecord) -> f64,
        ),
        ("entropy_raw_bits", |l| l.entropy_raw_bits),
    ] {
        let mut pairs = vec![];
        let mut cells = vec![];
        for nc in plan
            .cells
            .iter()
            .filter(|c| c.no_label && c.mode == Mode::Primed)
        {
            for lc in plan
                .cells
                .iter()
                .filter(|c| !c.no_label && c.mode == nc.mode)
            {
                let mut used = false;
                for &seed in &plan.seeds {
                    if let (Some(x), Some(y)) = (find(&lc.id, seed), find(&nc.id, seed)) {
                        if let (Some(lx), Some(ly)) = (x.level(level), y.level(level)) {
                            pairs.push((get(lx), get(ly)));
                            used = true;
                        }
                    }
                }
                if used {
                    cells.push(lc.id.clone());
                }
            }
            cells.push(nc.id.clone());
        }
        if !pairs.is_empty() {
            out.push(paired(
                2,
                level,
                metric,
                ("labels", "no labels"),
                &pairs,
                true,
                cells,
            ));
        }
    }
}

/// Claim 2b: the spread of spectral features across seeds, labelled cells against the
/// no-label cell.
fn labels_vs_none_spread(plan: &Plan, items: &[ItemRecord], level: usize, out: &mut Vec<Claim>) {
    let set = level_set(plan, items, level, &|c| c.mode == Mode::Primed);
    let spread_of = |cell: &str| -> Option<f64> {
        let zs: Vec<&Vec<f64>> = set
            .items
            .iter()
            .zip(&set.z)
            .filter(|((it, _), _)| it.cell == cell)
            .map(|(_, z)| z)
            .collect();
        let mut d = vec![];
        for i in 0..zs.len() {
            for j in i + 1..zs.len() {
                d.push(stats::euclid(zs[i], zs[j]));
            }
        }
        (!d.is_empty()).then(|| stats::mean(&d))
    };
    let nolabel = plan
        .cells
        .iter()
        .find(|c| c.no_label && c.mode == Mode::Primed);
    if let Some(nc) = nolabel {
        if let Some(ns) = spread_of(&nc.id) {
            let mut spreads = vec![];
            let mut cells = vec![];
            for lc in plan
                .cells
                .iter()
                .filter(|c| !c.no_label && c.mode == Mode::Primed)
            {
                if let Some(s) = spread_of(&lc.id) {
                    spreads.push(s);
                    cells.push(lc.id.clone());
                }
            }
            cells.push(nc.id.clone());
            if !spreads.is_empty() {
                let d: Vec<f64> = spreads.iter().map(|s| s - ns).collect();
                let ci = stats::bootstrap_ci(&d, stats::STATS_SEED ^ 0x2b ^ ((level as u64) << 4));
                let diff = stats::mean(&d);
                out.push(Claim {
                    claim: 2,
                    level,
                    metric: "seed_spread_spectral".into(),
                    a: "labels".into(),
                    b: "no labels".into(),
                    n: spreads.len(),
                    mean_a: stats::mean(&spreads),
                    se_a: stats::std_err(&spreads),
                    mean_b: ns,
                    se_b: 0.0,
                    diff,
                    diff_se: stats::std_err(&d),
                    p: f64::NAN,
                    ci,
                    expect: "labels < no labels".into(),
                    verdict: verdict(diff, f64::NAN, ci, true),
                    cells,
                });
            }
        }
    }
}

/// Claim 3: within-cell seed spread against between-cell distance (primed sweep cells).
fn within_vs_between(plan: &Plan, sep: &[Separability], level: usize, out: &mut Vec<Claim>) {
    for t in sep
        .iter()
        .filter(|t| t.level == level && t.mode == Mode::Primed && t.factor == "cell")
    {
        let r = &t.result;
        let cells: Vec<String> = plan
            .cells
            .iter()
            .filter(|c| c.mode == Mode::Primed && !c.no_label)
            .map(|c| c.id.clone())
            .collect();
        out.push(Claim {
            claim: 3,
            level,
            metric: format!("{}_distance", t.space),
            a: "within cell (seeds)".into(),
            b: "between cells".into(),
            n: r.n_items,
            mean_a: r.within,
            se_a: r.within_se,
            mean_b: r.between,
            se_b: r.between_se,
            diff: r.within - r.between,
            diff_se: (r.within_se.powi(2) + r.between_se.powi(2)).sqrt(),
            p: r.p,
            ci: (f64::NAN, f64::NAN),
            expect: "within cell (seeds) < between cells".into(),
            verdict: verdict(r.within - r.between, r.p, (f64::NAN, f64::NAN), true),
            cells,
        });
    }
}

/// `claims.csv`; its last column, `runner`, says what produced the numbers (`model`, or `fake`
/// for the fake runner, whose numbers are not from a model).
pub fn claims_csv(claims: &[Claim], runner: RunnerKind) -> String {
    let mut s = String::from(
        "claim,level,metric,a,b,n,mean_a,se_a,mean_b,se_b,diff,diff_se,p,ci_lo,ci_hi,expect,verdict,cells,runner\n",
    );
    for c in claims {
        s.push_str(&crate::util::csv_line([
            c.claim.to_string(),
            c.level.to_string(),
            c.metric.clone(),
            c.a.clone(),
            c.b.clone(),
            c.n.to_string(),
            f(c.mean_a),
            f(c.se_a),
            f(c.mean_b),
            f(c.se_b),
            f(c.diff),
            f(c.diff_se),
            f(c.p),
            f(c.ci.0),
            f(c.ci.1),
            c.expect.clone(),
            c.verdict.clone(),
            c.cells.join(" "),
            runner.to_string(),
        ]));
    }
    s
}
