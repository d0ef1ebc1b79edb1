//! The report's inline SVG summary plot: per feature, each cell's mean with its spread over seeds.

use super::html::{esc, human as f};
use std::fmt::Write;

/// One row of a dot plot: a cell's values over seeds.
pub struct Row<'a> {
    pub label: &'a str,
    pub anchor: &'a str,
    pub values: Vec<f64>,
    pub control: bool,
}

/// A panel per feature, cells as rows: the min–max over seeds as a bar, the mean as a dot.
pub fn dot_plot(features: &[(&str, Vec<Row>)]) -> String {
    const LABEL_W: f64 = 260.0;
    const PANEL_W: f64 = 170.0;
    const ROW_H: f64 = 16.0;
    const TOP: f64 = 34.0;
    let n_rows = features.first().map_or(0, |(_, r)| r.len());
    let w = LABEL_W + PANEL_W * features.len() as f64 + 10.0;
    let h = TOP + ROW_H * n_rows as f64 + 24.0;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" \
         viewBox=\"0 0 {w:.0} {h:.0}\" font-family=\"sans-serif\" font-size=\"11\" role=\"img\">"
    );
    if let Some((_, rows)) = features.first() {
        for (i, r) in rows.iter().enumerate() {
            let y = TOP + ROW_H * (i as f64 + 0.7);
            let _ = write!(
                s,
                "<a href=\"#{}\"><text x=\"4\" y=\"{y:.1}\"{}>{}</text></a>",
                esc(r.anchor),
                if r.control { " fill=\"#777\"" } else { "" },
                esc(r.label)
            );
        }
    }
    for (k, (name, rows)) in features.iter().enumerate() {
        let x0 = LABEL_W + PANEL_W * k as f64;
        let all: Vec<f64> = rows
            .iter()
            .flat_map(|r| r.values.iter().copied())
            .filter(|v| v.is_finite())
            .collect();
        let (mut lo, mut hi) = all
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(*v), b.max(*v))
            });
        if !lo.is_finite() {
            lo = 0.0;
            hi = 1.0;
        }
        if hi - lo < 1e-9 {
            lo -= 0.5;
            hi += 0.5;
        }
        let px = |v: f64| x0 + 10.0 + (v - lo) / (hi - lo) * (PANEL_W - 24.0);
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"14\" font-weight=\"bold\">{}</text>\
             <text x=\"{:.1}\" y=\"27\" fill=\"#555\">{} … {}</text>\
             <rect x=\"{:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#ccc\"/>",
            x0 + 8.0,
            esc(name),
            x0 + 8.0,
            short(lo),
            short(hi),
            x0 + 4.0,
            PANEL_W - 8.0,
            ROW_H * rows.len() as f64
        );
        for (i, r) in rows.iter().enumerate() {
            let y = TOP + ROW_H * (i as f64 + 0.5);
            let v: Vec<f64> = r.values.iter().copied().filter(|v| v.is_finite()).collect();
            if v.is_empty() {
                continue;
            }
            let mn = v.iter().copied().fold(f64::INFINITY, f64::min);
            let mx = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let color = if r.control { "#999" } else { "#2a6fdb" };
            let _ = write!(
                s,
                "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{color}\" stroke-width=\"3\" opacity=\"0.45\"/>\
                 <circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"3.5\" fill=\"{color}\"><title>{}: mean {} (min {}, max {}, {} seeds)</title></circle>",
                px(mn),
                px(mx).max(px(mn) + 0.5),
                px(mean),
                esc(r.label),
                f(mean),
                f(mn),
                f(mx),
                v.len()
            );
        }
    }
    let _ = write!(
        s,
        "<text x=\"4\" y=\"{:.1}\" fill=\"#555\">dot: mean over seeds; bar: min–max over seeds; grey: control cells</text></svg>",
        h - 6.0
    );
    s
}

fn short(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}
