//! `STUDY/index.html`: a self-contained, offline report (no CDN, no external script or style).
//!
//! Order: prompt and its reconstruction, the prompt's top labels (if `label_ranking.csv` exists),
//! the measured claims, the genre × artist grids (players and spectrograms per seed and level),
//! the summary plot, sortable metric tables, and the run parameters. With `?selfcheck` in the URL
//! an inline script loads every image and audio file and writes the result into the page
//! (`#selfcheck`), which the headless-browser test reads.

use super::claims::{Claim, STATEMENTS};
use super::html::{esc, human as f};
use super::metrics::{CellPair, Separability};
use super::plan::{Cell, Mode, Plan};
use super::store::{ItemRecord, Layout};
use super::svg;
use super::PromptInfo;
use crate::level::Level;
use std::fmt::Write;
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

/// Render the report.
pub fn render(d: &ReportData) -> String {
    let p = d.plan;
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Jukebox study: {}</title><style>{STYLE}</style></head><body>\n",
        esc(&p.prompt)
    );
    let _ = writeln!(
        s,
        "<h1>Jukebox study</h1><p>Prompt <code>{}</code>, model <code>{}</code>: {} cells × {} seeds, \
         {:.2} s of prompt continued to {:.2} s. Spectrograms share one dB scale ({} … {} dB).</p>\
         <p id=\"selfcheck\" class=\"small\"></p>",
        esc(&p.prompt),
        esc(&p.model),
        p.cells.len(),
        p.seeds.len(),
        p.prompt_samples as f64 / p.sample_rate as f64,
        p.total_samples as f64 / p.sample_rate as f64,
        super::features::spectrogram_opts().db_min,
        super::features::spectrogram_opts().db_max
    );
    if p.runner == super::plan::RunnerKind::Fake {
        let _ = writeln!(
            s,
            "<p id=\"fake-runner\" style=\"background:#c00;color:#fff;font-weight:bold;padding:0.5em\">\
             fake runner: numbers are not from a model (this study was made with \
             <code>--fake-runner</code>, a deterministic stand-in for tests and demos)</p>"
        );
    }
    super::glance::section(&mut s, d);
    prompt_section(&mut s, d);
    ranking_section(&mut s, d);
    claims_section(&mut s, d);
    for mode in [Mode::Primed, Mode::Ancestral] {
        grid_section(&mut s, d, mode);
    }
    summary_section(&mut s, d);
    tables_section(&mut s, d);
    params_section(&mut s, d);
    let _ = write!(s, "<script>{SCRIPT}</script>\n</body></html>\n");
    s
}

fn prompt_section(s: &mut String, d: &ReportData) {
    let p = d.plan;
    let _ = write!(
        s,
        "<h2 id=\"prompt\">Prompt</h2><table class=\"prompt\"><tr><th>audio</th><th>player</th><th>spectrogram</th></tr>\
         <tr><td>prompt ({:.2} s, tempo {} BPM)</td><td><audio controls preload=\"none\" src=\"prompt/prompt.wav\"></audio></td>\
         <td><img src=\"prompt/prompt.png\" alt=\"prompt spectrogram\"></td></tr>",
        p.prompt_samples as f64 / p.sample_rate as f64,
        f(d.prompt.tempo_bpm)
    );
    for &l in &p.levels {
        let _ = write!(
            s,
            "<tr><td>reconstruction, {} (level {l}, hop {})</td>\
             <td><audio controls preload=\"none\" src=\"prompt/level_{l}.wav\"></audio></td>\
             <td><img src=\"prompt/level_{l}.png\" alt=\"reconstruction level {l}\"></td></tr>",
            Level(l),
            p.hops[l]
        );
    }
    s.push_str("</table>\n");
}

fn ranking_section(s: &mut String, d: &ReportData) {
    s.push_str("<h2 id=\"labels\">Which labels explain the prompt</h2>");
    match d.ranking {
        Some((header, rows)) => {
            s.push_str("<p>From <code>label_ranking.csv</code> (teacher-forced bits per token of the prompt's codes under each label, best first).</p>");
            s.push_str("<table class=\"sortable\"><thead><tr>");
            for h in header {
                let _ = write!(s, "<th>{}</th>", esc(h));
            }
            s.push_str("</tr></thead><tbody>");
            for r in rows.iter().take(20) {
                s.push_str("<tr>");
                for c in r {
                    // Decimals for people; the CSV keeps six places.
                    let shown = match c.parse::<f64>() {
                        Ok(x) if c.contains('.') => f(x),
                        _ => c.clone(),
                    };
                    let _ = write!(s, "<td>{}</td>", esc(&shown));
                }
                s.push_str("</tr>");
            }
            s.push_str("</tbody></table>\n");
        }
        None => s.push_str(
            "<p class=\"small\">No <code>label_ranking.csv</code> in this study. Run \
             <code>jukebox rank-labels --prompt … -o STUDY/label_ranking.csv</code> and \
             <code>jukebox study merge STUDY</code> to show it here.</p>\n",
        ),
    }
}

fn cell_links(cells: &[String]) -> String {
    cells
        .iter()
        .map(|c| format!("<a href=\"#cell-{0}\">{0}</a>", esc(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn claims_section(s: &mut String, d: &ReportData) {
    s.push_str(
        "<h2 id=\"claims\">The claims, measured</h2><p class=\"small\">Mean ± standard error over seeds. \
         Paired differences use an exact (n ≤ 12) or 2000-draw sign-flip permutation test; the seed \
         spread uses a 95 % bootstrap interval; within-vs-between uses a 2000-draw label permutation \
         test. All resampling is seeded. Verdict: <b>yes</b> = the predicted direction at p &lt; 0.05 \
         (or an interval excluding 0). Also in <a href=\"claims.csv\">claims.csv</a>.</p>",
    );
    for (k, st) in STATEMENTS.iter().enumerate() {
        let rows: Vec<&Claim> = d
            .claims
            .iter()
            .filter(|c| c.claim as usize == k + 1)
            .collect();
        let _ = write!(s, "<h3 id=\"claim-{}\">{}. {}</h3>", k + 1, k + 1, esc(st));
        if rows.is_empty() {
            s.push_str("<p class=\"small\">Not measurable in this study (the control cells or seeds it needs are missing).</p>");
            continue;
        }
        s.push_str(
            "<table class=\"sortable\"><thead><tr><th>level</th><th>metric</th><th>a</th><th>mean a ± se</th>\
             <th>b</th><th>mean b ± se</th><th>a − b ± se</th><th>n</th><th>p</th><th>95% CI</th>\
             <th>expected</th><th>verdict</th><th>cells</th></tr></thead><tbody>",
        );
        for c in rows {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} ± {}</td><td>{}</td><td>{} ± {}</td><td>{} ± {}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td class=\"small\">{}</td></tr>",
                c.level,
                esc(&c.metric),
                esc(&c.a),
                f(c.mean_a),
                f(c.se_a),
                esc(&c.b),
                f(c.mean_b),
                f(c.se_b),
                f(c.diff),
                f(c.diff_se),
                c.n,
                if c.p.is_nan() { "–".into() } else { f(c.p) },
                if c.ci.0.is_nan() { "–".into() } else { format!("[{}, {}]", f(c.ci.0), f(c.ci.1)) },
                esc(&c.expect),
                esc(&c.verdict),
                esc(&c.verdict),
                cell_links(&c.cells)
            );
        }
        s.push_str("</tbody></table>\n");
    }
}

fn item_html(s: &mut String, p: &Plan, cell: &Cell, sample: usize) {
    let seed = p.seeds[sample];
    let _ = write!(
        s,
        "<div class=\"item\"><span class=\"small\">seed {seed}</span>"
    );
    for &l in &p.levels {
        let wav = Layout::rel_wav(&cell.id, sample, l);
        let png = Layout::rel_png(&cell.id, sample, l);
        let _ = write!(
            s,
            "<div class=\"small\">{}</div><audio controls preload=\"none\" src=\"{}\"></audio>\
             <img src=\"{}\" alt=\"{} seed {seed} level {l}\" loading=\"eager\">",
            Level(l),
            esc(&wav),
            esc(&png),
            esc(&cell.id)
        );
    }
    s.push_str("</div>");
}

fn grid_section(s: &mut String, d: &ReportData, mode: Mode) {
    let p = d.plan;
    let cells: Vec<&Cell> = p.cells.iter().filter(|c| c.mode == mode).collect();
    if cells.is_empty() {
        return;
    }
    let title = match mode {
        Mode::Primed => "Primed: genre × artist",
        Mode::Ancestral => "Ancestral control: same labels and seeds, no prompt",
    };
    let _ = write!(s, "<h2 id=\"grid-{}\">{title}</h2>", mode.as_str());
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
    if !genres.is_empty() {
        s.push_str("<table class=\"grid\"><tr><th>genre \\ artist</th>");
        for a in &artists {
            let _ = write!(s, "<th>{}</th>", esc(a));
        }
        s.push_str("</tr>");
        for g in &genres {
            let _ = write!(s, "<tr><th>{}</th>", esc(g));
            for a in &artists {
                s.push_str("<td>");
                if let Some(c) = cells
                    .iter()
                    .find(|c| !c.no_label && c.genres.join("+") == *g && &c.artist == a)
                {
                    let _ = write!(
                        s,
                        "<div id=\"cell-{0}\" class=\"small\">{0}</div>",
                        esc(&c.id)
                    );
                    for i in 0..p.seeds.len() {
                        item_html(s, p, c, i);
                    }
                }
                s.push_str("</td>");
            }
            s.push_str("</tr>");
        }
        s.push_str("</table>");
    }
    for c in cells.iter().filter(|c| c.no_label) {
        let _ = write!(
            s,
            "<h3 id=\"cell-{0}\" class=\"ctl\">Control: no labels (unknown artist and genre) — {0}</h3><table class=\"grid\"><tr>",
            esc(&c.id)
        );
        for i in 0..p.seeds.len() {
            s.push_str("<td>");
            item_html(s, p, c, i);
            s.push_str("</td>");
        }
        s.push_str("</tr></table>");
    }
    s.push('\n');
}

fn summary_section(s: &mut String, d: &ReportData) {
    let p = d.plan;
    s.push_str("<h2 id=\"summary\">Summary: features per cell, spread over seeds</h2>");
    type Get = fn(&super::store::LevelRecord) -> f64;
    let feats: [(&str, Get); 6] = [
        ("tempo error (BPM)", |l| l.features.tempo_err_bpm),
        ("onset corr.", |l| l.features.onset_corr),
        ("centroid (Hz)", |l| l.features.centroid_hz),
        ("flatness", |l| l.features.flatness),
        ("RMS (dBFS)", |l| l.features.rms_db),
        ("entropy (bits)", |l| l.entropy_filtered_bits),
    ];
    for &l in &p.levels {
        let _ = write!(s, "<h3>{} (level {l})</h3>", Level(l));
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
        s.push_str(&plot);
    }
    s.push('\n');
}

fn tables_section(s: &mut String, d: &ReportData) {
    let p = d.plan;
    s.push_str(
        "<h2 id=\"metrics\">Metrics per sample</h2><p class=\"small\">Click a header to sort. All columns \
         are in <a href=\"metrics.csv\">metrics.csv</a> (band shares too); code histograms in \
         <a href=\"codes_hist.csv\">codes_hist.csv</a>.</p><table class=\"sortable\"><thead><tr>\
         <th>cell</th><th>mode</th><th>seed</th><th>level</th><th>H raw</th><th>H filtered</th><th>bits own</th>\
         <th>bits no-label</th><th>codes used</th><th>tempo</th><th>tempo err</th><th>onset corr</th>\
         <th>spec dist dB</th><th>centroid</th><th>bandwidth</th><th>flatness</th><th>RMS dB</th></tr></thead><tbody>",
    );
    for it in d.items {
        let Some(c) = p.cell(&it.cell) else { continue };
        for l in &it.levels {
            let x = &l.features;
            let _ = write!(
                s,
                "<tr><td><a href=\"#cell-{0}\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3}</td>",
                esc(&c.id),
                c.mode.as_str(),
                it.seed,
                l.level
            );
            for v in [
                l.entropy_raw_bits,
                l.entropy_filtered_bits,
                l.bits_own,
                l.bits_nolabel,
                l.codes_used as f64,
            ] {
                let _ = write!(s, "<td>{}</td>", f(v));
            }
            for v in [
                x.tempo_bpm,
                x.tempo_err_bpm,
                x.onset_corr,
                x.spec_dist_db,
                x.centroid_hz,
                x.bandwidth_hz,
                x.flatness,
                x.rms_db,
            ] {
                let _ = write!(s, "<td>{}</td>", f(v));
            }
            s.push_str("</tr>");
        }
    }
    s.push_str("</tbody></table>\n");
    s.push_str(
        "<h2 id=\"separability\">Did the labels change the output more than chance?</h2><p class=\"small\">\
         Mean distance between two samples of the same group (seed-to-seed spread) against two samples of \
         different groups; p from 2000 label permutations (one-sided: between &gt; within). Spectral \
         distances use z-scored timbre features; code distances the JS divergence (bits) of code histograms. \
         Also in <a href=\"separability.csv\">separability.csv</a>.</p><table class=\"sortable\"><thead><tr>\
         <th>level</th><th>mode</th><th>groups by</th><th>space</th><th>items</th><th>groups</th>\
         <th>within ± se</th><th>between ± se</th><th>p</th><th>answer</th></tr></thead><tbody>",
    );
    for t in d.separability {
        let r = &t.result;
        let ans = if r.p < 0.05 {
            "yes: more than chance"
        } else {
            "no evidence"
        };
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ± {}</td><td>{} ± {}</td><td>{}</td><td>{}</td></tr>",
            t.level,
            t.mode.as_str(),
            esc(&t.factor),
            esc(&t.space),
            r.n_items,
            r.n_groups,
            f(r.within),
            f(r.within_se),
            f(r.between),
            f(r.between_se),
            f(r.p),
            ans
        );
    }
    s.push_str("</tbody></table>\n");
    s.push_str(
        "<h2 id=\"pairs\">Cell pairs</h2><p class=\"small\">JS divergence (bits) of pooled code histograms and \
         distance of mean z-scored spectral features, per level; also in <a href=\"cell_pairs.csv\">cell_pairs.csv</a>.</p>\
         <table class=\"sortable\"><thead><tr><th>level</th><th>cell a</th><th>cell b</th><th>JS bits</th>\
         <th>feature distance</th></tr></thead><tbody>",
    );
    for q in d.pairs {
        let _ = write!(
            s,
            "<tr><td>{}</td><td><a href=\"#cell-{1}\">{1}</a></td><td><a href=\"#cell-{2}\">{2}</a></td><td>{3}</td><td>{4}</td></tr>",
            q.level,
            esc(&q.a),
            esc(&q.b),
            f(q.js_bits),
            f(q.feature_dist)
        );
    }
    s.push_str("</tbody></table>\n");
}

fn params_section(s: &mut String, d: &ReportData) {
    let p = d.plan;
    let _ = write!(
        s,
        "<h2 id=\"params\">Run parameters</h2><table><tr><th>model</th><td>{}</td></tr>\
         <tr><th>prompt</th><td>{} ({} samples)</td></tr><tr><th>total length</th><td>{} samples ({} s asked)</td></tr>\
         <tr><th>levels</th><td>{:?} (hops {:?})</td></tr><tr><th>temperature / top-k / top-p</th><td>{} / {} / {}</td></tr>\
         <tr><th>seeds</th><td>{:?}</td></tr><tr><th>controls</th><td>{}</td></tr>\
         <tr><th>batch groups</th><td>{} (max {} cells each)</td></tr></table>",
        esc(&p.model),
        esc(&p.prompt),
        p.prompt_samples,
        p.total_samples,
        p.seconds,
        p.levels,
        p.hops,
        p.temperature,
        p.top_k,
        p.top_p,
        p.seeds,
        p.controls,
        p.groups.len(),
        p.max_batch
    );
    let _ = write!(
        s,
        "<details><summary>plan.toml</summary><pre>{}</pre></details>",
        esc(&p.to_toml().unwrap_or_default())
    );
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
