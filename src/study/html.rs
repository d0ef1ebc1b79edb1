//! Text for the HTML report: escaping and numbers formatted for people (the CSV files keep
//! six places; these are only for reading).

/// HTML-escape text and attribute values.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A number as a person reads it: 137, 13.5, 2.41, 0.0123 (three significant digits below 1),
/// 1.63e-7 below 10⁻⁴.
pub fn human(x: f64) -> String {
    let a = x.abs();
    if x.is_nan() {
        "–".into()
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 || a == 0.0 {
        format!("{x:.2}")
    } else if a < 1e-4 {
        format!("{x:.2e}")
    } else {
        let digits = (2 - a.log10().floor() as i32).clamp(2, 8) as usize;
        format!("{x:.digits$}")
    }
}
