//! `STUDY/index.html`: a self-contained, offline report (no CDN, no external script or style).
//!
//! Order: prompt and its reconstruction, the prompt's top labels (if `label_ranking.csv` exists),
//! the measured claims, the genre × artist grids (players and spectrograms per seed and level),
//! the summary plot, sortable metric tables, and the run parameters. With `?selfcheck` in the URL
//! an inline script loads every image and audio file and writes the result into the page
//! (`#selfcheck`), which the headless-browser test reads.
//!
//! The page is `report.html.j2`, rendered by minijinja; this file only turns the study's records
//! into the template's context (numbers already formatted for people). Every value the template
//! prints is escaped by the engine, except the three blocks marked safe: the inline style and
//! script (constants) and the SVG summary plots (`svg.rs`, which escapes its own labels).

use super::claims::{Claim, STATEMENTS};
use super::html::{esc, human as f};
use super::metrics::{CellPair, Separability};
use super::plan::{Cell, Mode, Plan};
use super::store::{ItemRecord, Layout};
use super::svg;
use super::PromptInfo;
use crate::level::Level;
use minijinja::{AutoEscape, Environment, Value};
use serde::Serialize;
use std::path::Path;

pub struct ReportData<'a> {
    pub plan: &'a Plan,
    pub items: &'a [ItemRecord],
    pub prompt: &'a PromptInfo,
    pub separability: &'a [Separability],
    pub pairs: &'a [CellPair],
    pub claims: &'a [Claim],
    /// `label_ranking.csv` (from `jukebox rank-labels`), as header + rows.
    pub ranking: Option<&'a (Vec<String>, Vec<Vec<String>>)>,
}

/// Read `label_ranking.csv` if it exists, with a real CSV reader: its writer quotes fields that
/// hold commas or quotes (label names can), which splitting on `,` tore apart.
pub fn read_label_ranking(path: &Path) -> Option<(Vec<String>, Vec<Vec<String>>)> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_path(path)
        .ok()?;
    let header = r
        .headers()
        .ok()?
        .iter()
        .map(|s| s.trim().to_string())
        .collect();
    let rows = r
        .records()
        .filter_map(|rec| rec.ok())
        .filter(|rec| rec.iter().any(|f| !f.trim().is_empty()))
        .map(|rec| rec.iter().map(|f| f.trim().to_string()).collect())
        .collect();
    Some((header, rows))
}

const TEMPLATE: &str = include_str!("report.html.j2");

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;max-width:1600px;color:#222}\
h1{font-size:1.5em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;font-size:12px;margin:0.5em 0}\
td,th{border:1px solid #ddd;padding:3px 6px;vertical-align:top}\
th{background:#f3f3f3}table.sortable th{cursor:pointer}\
.grid td{min-width:230px}.item{margin:2px 0 6px 0}.item img{display:block;width:260px;height:110px}\
audio{width:220px;height:28px}.ctl{color:#777}.yes{color:#176d2c;font-weight:bold}\
.no{color:#a11;font-weight:bold}.inconclusive{color:#8a6d00}.small{font-size:11px;color:#555}\
.prompt img{width:420px;height:120px}pre{background:#f7f7f7;padding:8px;font-size:11px;overflow:auto}";

const SCRIPT: &str = r#"
function sortTable(th){const t=th.closest('table'),i=[...th.parentNode.children].indexOf(th),
b=t.tBodies[0],rows=[...b.rows],asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
rows.sort((x,y)=>{const a=x.cells[i].dataset.v??x.cells[i].textContent,c=y.cells[i].dataset.v??y.cells[i].textContent;
const na=parseFloat(a),nc=parseFloat(c);const r=(!isNaN(na)&&!isNaN(nc))?na-nc:a.localeCompare(c);return asc?r:-r});
rows.forEach(r=>b.appendChild(r));}
document.querySelectorAll('table.sortable th').forEach(th=>th.addEventListener('click',()=>sortTable(th)));
if(location.search.indexOf('selfcheck')>=0){
 const out=document.getElementById('selfcheck');
 const imgs=[...document.images].map(im=>new Promise(r=>{if(im.complete)r(im.naturalWidth>0?null:im.getAttribute('src'));
  else{im.onload=()=>r(im.naturalWidth>0?null:im.getAttribute('src'));im.onerror=()=>r(im.getAttribute('src'));}}));
 const auds=[...document.querySelectorAll('audio')].map(a=>new Promise(r=>{a.onloadedmetadata=()=>r(a.duration>0?null:a.getAttribute('src'));
  a.onerror=()=>r(a.getAttribute('src'));a.preload='metadata';a.load();}));
 Promise.all(imgs.concat(auds)).then(res=>{const bad=res.filter(x=>x);
  out.textContent='SELFCHECK images='+imgs.length+' audio='+auds.length+' bad='+bad.length+(bad.length?' '+bad.join(' '):'');
  out.dataset.done='1';});
}
"#;

/// The template engine: HTML escaping on every value with this crate's `esc` (so attribute
/// values such as file paths stay readable), and an error for a name the context lacks.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_formatter(|out, _state, value| {
        let text = if value.is_safe() {
            value.to_string()
        } else if value.is_none() {
            String::new()
        } else {
            esc(&value.to_string())
        };
        out.write_str(&text).map_err(minijinja::Error::from)
    });
    env.add_template("report.html.j2", TEMPLATE)
        .expect("report.html.j2 parses (checked by the tests)");
    env
}

/// Render the report.
pub fn render(d: &ReportData) -> String {
    let p = d.plan;
    let opts = super::features::spectrogram_opts();
    let ctx = Context {
        style: Value::from_safe_string(STYLE.into()),
        script: Value::from_safe_string(SCRIPT.into()),
        prompt: p.prompt.clone(),
        model: p.model.clone(),
        n_cells: p.cells.len(),
        n_seeds: p.seeds.len(),
        prompt_s: format!("{:.2}", p.prompt_samples as f64 / p.sample_rate as f64),
        total_s: format!("{:.2}", p.total_samples as f64 / p.sample_rate as f64),
        db_min: opts.db_min.to_string(),
        db_max: opts.db_max.to_string(),
        fake: p.runner == super::plan::RunnerKind::Fake,
        glance: super::glance::view(d),
        prompt_bpm: f(d.prompt.tempo_bpm),
        prompt_levels: p
            .levels
            .iter()
            .map(|&l| PromptLevel {
                level: l,
                name: Level(l).to_string(),
                hop: p.hops[l],
            })
            .collect(),
        ranking: d.ranking.map(|(header, rows)| RankingView {
            header: header.clone(),
            // Decimals for people; the CSV keeps six places.
            rows: rows
                .iter()
                .take(20)
                .map(|r| {
                    r.iter()
                        .map(|c| match c.parse::<f64>() {
                            Ok(x) if c.contains('.') => f(x),
                            _ => c.clone(),
                        })
                        .collect()
                })
                .collect(),
        }),
        claims: STATEMENTS
            .iter()
            .enumerate()
            .map(|(k, st)| ClaimGroup {
                k: k + 1,
                statement: st.to_string(),
                rows: d
                    .claims
                    .iter()
                    .filter(|c| c.claim as usize == k + 1)
                    .map(claim_row)
                    .collect(),
            })
            .collect(),
        grids: [Mode::Primed, Mode::Ancestral]
            .into_iter()
            .filter_map(|m| grid(p, m))
            .collect(),
        summary: summary(d),
        metrics: metric_rows(d),
        separability: d.separability.iter().map(separability_row).collect(),
        pairs: d
            .pairs
            .iter()
            .map(|q| PairRow {
                level: q.level,
                a: q.a.clone(),
                b: q.b.clone(),
                js_bits: f(q.js_bits),
                feature_dist: f(q.feature_dist),
            })
            .collect(),
        params: Params {
            prompt_samples: p.prompt_samples,
            total_samples: p.total_samples,
            seconds: p.seconds.to_string(),
            levels: format!("{:?}", p.levels),
            hops: format!("{:?}", p.hops),
            temperature: p.temperature.to_string(),
            top_k: p.top_k,
            top_p: p.top_p.to_string(),
            seeds: format!("{:?}", p.seeds),
            controls: p.controls.to_string(),
            groups: p.groups.len(),
            max_batch: p.max_batch,
            plan_toml: p.to_toml().unwrap_or_default(),
        },
    };
    environment()
        .get_template("report.html.j2")
        .and_then(|t| t.render(&ctx))
        // Every name the template uses is a field of `Context`, so this only fails on a template
        // bug, which the report tests catch.
        .unwrap_or_else(|e| panic!("report template: {e:#}"))
}

#[derive(Serialize)]
struct Context {
    style: Value,
    script: Value,
    prompt: String,
    model: String,
    n_cells: usize,
    n_seeds: usize,
    prompt_s: String,
    total_s: String,
    db_min: String,
    db_max: String,
    fake: bool,
    glance: super::glance::GlanceView,
    prompt_bpm: String,
    prompt_levels: Vec<PromptLevel>,
    ranking: Option<RankingView>,
    claims: Vec<ClaimGroup>,
    grids: Vec<Grid>,
    summary: Vec<SummaryLevel>,
    metrics: Vec<MetricRow>,
    separability: Vec<SeparabilityRow>,
    pairs: Vec<PairRow>,
    params: Params,
}

#[derive(Serialize)]
struct PromptLevel {
    level: usize,
    name: String,
    hop: usize,
}

#[derive(Serialize)]
struct RankingView {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

#[derive(Serialize)]
struct ClaimGroup {
    k: usize,
    statement: String,
    rows: Vec<ClaimRow>,
}

#[derive(Serialize)]
struct ClaimRow {
    level: usize,
    metric: String,
    a: String,
    mean_a: String,
    se_a: String,
    b: String,
    mean_b: String,
    se_b: String,
    diff: String,
    diff_se: String,
    n: usize,
    p: String,
    ci: String,
    expect: String,
    verdict: String,
    cells: Vec<String>,
}

fn claim_row(c: &Claim) -> ClaimRow {
    ClaimRow {
        level: c.level,
        metric: c.metric.clone(),
        a: c.a.clone(),
        mean_a: f(c.mean_a),
        se_a: f(c.se_a),
        b: c.b.clone(),
        mean_b: f(c.mean_b),
        se_b: f(c.se_b),
        diff: f(c.diff),
        diff_se: f(c.diff_se),
        n: c.n,
        p: f(c.p),
        ci: if c.ci.0.is_nan() {
            "–".into()
        } else {
            format!("[{}, {}]", f(c.ci.0), f(c.ci.1))
        },
        expect: c.expect.clone(),
        verdict: c.verdict.clone(),
        cells: c.cells.clone(),
    }
}

#[derive(Serialize)]
struct Grid {
    mode: &'static str,
    title: &'static str,
    artists: Vec<String>,
    genres: Vec<GenreRow>,
    controls: Vec<CellView>,
}

#[derive(Serialize)]
struct GenreRow {
    name: String,
    /// One per artist, in `Grid::artists` order; none where the plan has no such cell.
    cells: Vec<Option<CellView>>,
}

#[derive(Serialize)]
struct CellView {
    id: String,
    items: Vec<ItemView>,
}

#[derive(Serialize)]
struct ItemView {
    cell: String,
    seed: u64,
    levels: Vec<ItemLevel>,
}

#[derive(Serialize)]
struct ItemLevel {
    level: usize,
    name: String,
    wav: String,
    png: String,
}

fn cell_view(p: &Plan, cell: &Cell) -> CellView {
    let items = (0..p.seeds.len())
        .map(|sample| ItemView {
            cell: cell.id.clone(),
            seed: p.seeds[sample],
            levels: p
                .levels
                .iter()
                .map(|&l| ItemLevel {
                    level: l,
                    name: Level(l).to_string(),
                    wav: Layout::rel_wav(&cell.id, sample, l),
                    png: Layout::rel_png(&cell.id, sample, l),
                })
                .collect(),
        })
        .collect();
    CellView {
        id: cell.id.clone(),
        items,
    }
}

/// The genre × artist table of one mode (labelled cells), and its no-label control cells.
fn grid(p: &Plan, mode: Mode) -> Option<Grid> {
    let cells: Vec<&Cell> = p.cells.iter().filter(|c| c.mode == mode).collect();
    if cells.is_empty() {
        return None;
    }
    let mut genres: Vec<String> = vec![];
    let mut artists: Vec<String> = vec![];
    for c in cells.iter().filter(|c| !c.no_label) {
        let g = c.genres.join("+");
        if !genres.contains(&g) {
            genres.push(g);
        }
        if !artists.contains(&c.artist) {
            artists.push(c.artist.clone());
        }
    }
    let find = |g: &str, a: &str| {
        cells
            .iter()
            .find(|c| !c.no_label && c.genres.join("+") == g && c.artist == a)
            .map(|c| cell_view(p, c))
    };
    Some(Grid {
        mode: mode.as_str(),
        title: match mode {
            Mode::Primed => "Primed: genre × artist",
            Mode::Ancestral => "Ancestral control: same labels and seeds, no prompt",
        },
        genres: genres
            .iter()
            .map(|g| GenreRow {
                name: g.clone(),
                cells: artists.iter().map(|a| find(g, a)).collect(),
            })
            .collect(),
        artists,
        controls: cells
            .iter()
            .filter(|c| c.no_label)
            .map(|c| cell_view(p, c))
            .collect(),
    })
}

#[derive(Serialize)]
struct SummaryLevel {
    level: usize,
    name: String,
    /// Markup from `svg::dot_plot`, marked safe.
    plot: Value,
}

fn summary(d: &ReportData) -> Vec<SummaryLevel> {
    let p = d.plan;
    type Get = fn(&super::store::LevelRecord) -> f64;
    let feats: [(&str, Get); 6] = [
        ("tempo error (BPM)", |l| l.features.tempo_err_bpm),
        ("onset corr.", |l| l.features.onset_corr),
        ("centroid (Hz)", |l| l.features.centroid_hz),
        ("flatness", |l| l.features.flatness),
        ("RMS (dBFS)", |l| l.features.rms_db),
        ("entropy (bits)", |l| l.entropy_filtered_bits),
    ];
    p.levels
        .iter()
        .map(|&l| {
            let panels: Vec<(&str, Vec<svg::Row>)> = feats
                .iter()
                .map(|(name, get)| {
                    let rows = p
                        .cells
                        .iter()
                        .map(|c| svg::Row {
                            label: &c.id,
                            anchor: &c.id,
                            values: d
                                .items
                                .iter()
                                .filter(|it| it.cell == c.id)
                                .filter_map(|it| it.level(l).map(get))
                                .collect(),
                            control: c.control,
                        })
                        .collect();
                    (*name, rows)
                })
                .collect();
            // Anchors in the SVG link to the grid's `cell-…` ids.
            let plot = svg::dot_plot(&panels).replace("href=\"#", "href=\"#cell-");
            SummaryLevel {
                level: l,
                name: Level(l).to_string(),
                plot: Value::from_safe_string(plot),
            }
        })
        .collect()
}

#[derive(Serialize)]
struct MetricRow {
    cell: String,
    mode: &'static str,
    seed: u64,
    level: usize,
    values: Vec<String>,
}

fn metric_rows(d: &ReportData) -> Vec<MetricRow> {
    let mut out = vec![];
    for it in d.items {
        let Some(c) = d.plan.cell(&it.cell) else {
            continue;
        };
        for l in &it.levels {
            let x = &l.features;
            let values = [
                l.entropy_raw_bits,
                l.entropy_filtered_bits,
                l.bits_own,
                l.bits_nolabel,
                l.codes_used as f64,
                x.tempo_bpm,
                x.tempo_err_bpm,
                x.onset_corr,
                x.spec_dist_db,
                x.centroid_hz,
                x.bandwidth_hz,
                x.flatness,
                x.rms_db,
            ];
            out.push(MetricRow {
                cell: c.id.clone(),
                mode: c.mode.as_str(),
                seed: it.seed,
                level: l.level,
                values: values.into_iter().map(f).collect(),
            });
        }
    }
    out
}

#[derive(Serialize)]
struct SeparabilityRow {
    level: usize,
    mode: &'static str,
    factor: String,
    space: String,
    n_items: usize,
    n_groups: usize,
    within: String,
    within_se: String,
    between: String,
    between_se: String,
    p: String,
    answer: &'static str,
}

fn separability_row(t: &Separability) -> SeparabilityRow {
    let r = &t.result;
    SeparabilityRow {
        level: t.level,
        mode: t.mode.as_str(),
        factor: t.factor.clone(),
        space: t.space.clone(),
        n_items: r.n_items,
        n_groups: r.n_groups,
        within: f(r.within),
        within_se: f(r.within_se),
        between: f(r.between),
        between_se: f(r.between_se),
        p: f(r.p),
        answer: if r.p < 0.05 {
            "yes: more than chance"
        } else {
            "no evidence"
        },
    }
}

#[derive(Serialize)]
struct PairRow {
    level: usize,
    a: String,
    b: String,
    js_bits: String,
    feature_dist: String,
}

#[derive(Serialize)]
struct Params {
    prompt_samples: usize,
    total_samples: usize,
    seconds: String,
    levels: String,
    hops: String,
    temperature: String,
    top_k: usize,
    top_p: String,
    seeds: String,
    controls: String,
    groups: usize,
    max_batch: usize,
    plan_toml: String,
}

#[cfg(test)]
mod csv_tests {
    use super::read_label_ranking;

    /// A label with a comma and quotes, as the rank-labels writer quotes it, reads back whole
    /// (splitting on `,` made it two cells and shifted every later column).
    #[test]
    fn label_ranking_reads_quoted_fields() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("label_ranking.csv");
        std::fs::write(
            &p,
            "rank,kind,id,label,artist,genre,bits_per_token,delta_bits\n\
             1,genre,3,\"rock, hard \"\"edge\"\"\",unknown,\"rock, hard \"\"edge\"\"\",3.9,-0.01\n\
             2,genre,0,(no label),unknown,unknown,3.91,0\n",
        )
        .unwrap();
        let (header, rows) = read_label_ranking(&p).unwrap();
        assert_eq!(header.len(), 8);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].len(), 8, "{:?}", rows[0]);
        assert_eq!(rows[0][3], "rock, hard \"edge\"");
        assert_eq!(rows[0][6], "3.9");
        assert_eq!(rows[1][3], "(no label)");
        assert!(read_label_ranking(&dir.path().join("missing.csv")).is_none());
    }
}
