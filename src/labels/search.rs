//! Searching the id lists: substring search that tolerates accents, and "did you mean".

use super::ids::{Field, IdSet};
use super::lyrics::to_ascii;

impl IdSet {
    /// Names containing `text`, sorted by id. Matching ignores case, and also compares ASCII
    /// transliterations (`beyonce` finds `beyoncé`), letting one `_` of a listed name stand for
    /// one letter of the query (v2 names have `_` where an accent was: `celine` finds `c_line_dion`).
    pub fn search(&self, field: Field, text: &str) -> Vec<(String, i64)> {
        let q = text.trim().to_lowercase();
        if q.is_empty() {
            return self.table(field).entries.clone();
        }
        let qa = ascii_form(&q);
        let mut hits: Vec<(String, i64)> = self
            .table(field)
            .entries
            .iter()
            .filter(|(n, _)| {
                let nl = n.to_lowercase();
                nl.contains(&q) || wild_contains(&ascii_form(&nl), &qa)
            })
            .cloned()
            .collect();
        hits.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        hits
    }

    /// Up to `n` names nearest to `text` by edit distance (for "did you mean").
    pub fn suggest(&self, field: Field, text: &str, n: usize) -> Vec<(String, i64)> {
        let table = self.table(field);
        let q = text.to_lowercase();
        let names = table
            .entries
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| plausible(n, &q));
        crate::util::nearest(&q, names, n)
            .into_iter()
            .filter_map(|name| table.entries.iter().find(|(m, _)| *m == name).cloned())
            .collect()
    }
}

/// A suggestion candidate: not empty and not much shorter than the query (one-letter v2 genre
/// words would otherwise match every query that contains the letter).
pub(super) fn plausible(name: &str, query: &str) -> bool {
    let n = name.chars().count();
    n > 0 && 2 * n >= query.chars().count()
}

/// ASCII transliteration with every other character as `_`.
fn ascii_form(s: &str) -> Vec<char> {
    to_ascii(s)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Whether `name` contains `q`, where at most one `_` of `name` may stand for a letter of `q`.
fn wild_contains(name: &[char], q: &[char]) -> bool {
    if q.is_empty() || q.len() > name.len() {
        return false;
    }
    name.windows(q.len()).any(|w| {
        let mut wild = 0;
        w.iter().zip(q).all(|(&a, &b)| {
            if a == b {
                true
            } else if a == '_' && wild == 0 {
                wild += 1;
                true
            } else {
                false
            }
        })
    })
}

/// A name with invisible characters made visible (the v3 genre list hides a U+200E).
pub fn display_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '\u{200b}'..='\u{200f}' | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{00ad}')
            || c.is_control()
        {
            out.push_str(&format!("<U+{:04X}>", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}
