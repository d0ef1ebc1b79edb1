//! Training logs: `train_log.csv` (one wide row per event) and `metrics.jsonl`, both rewritten
//! atomically on every flush so that a crash never leaves a torn line.

use crate::util::atomic_write;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One logged event: a training step or a validation pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub step: u64,
    /// "train" or "valid".
    pub split: &'static str,
    pub values: BTreeMap<String, f64>,
}

pub struct Logger {
    csv: PathBuf,
    jsonl: PathBuf,
    columns: Vec<String>,
    rows: Vec<Row>,
}

impl Logger {
    /// A logger over `out`, with a fixed column list. With `resume_step`, rows already on disk
    /// up to that step are kept and later ones (logged after the checkpoint) are dropped.
    pub fn new(out: &Path, columns: Vec<String>, resume_step: Option<u64>) -> Result<Self> {
        let mut lg = Self {
            csv: out.join("train_log.csv"),
            jsonl: out.join("metrics.jsonl"),
            columns,
            rows: Vec::new(),
        };
        if let Some(step) = resume_step {
            lg.rows = lg
                .read_existing()?
                .into_iter()
                .filter(|r| r.step <= step)
                .collect();
        }
        Ok(lg)
    }

    fn read_existing(&self) -> Result<Vec<Row>> {
        let Ok(text) = std::fs::read_to_string(&self.csv) else {
            return Ok(Vec::new());
        };
        let mut lines = text.lines();
        let header: Vec<&str> = match lines.next() {
            Some(h) => h.split(',').collect(),
            None => return Ok(Vec::new()),
        };
        let mut rows = Vec::new();
        for (i, line) in lines.enumerate() {
            let cells: Vec<&str> = line.split(',').collect();
            let step: u64 = cells
                .first()
                .and_then(|s| s.parse().ok())
                .with_context(|| format!("{} line {}: bad step", self.csv.display(), i + 2))?;
            let split = if cells.get(1) == Some(&"valid") {
                "valid"
            } else {
                "train"
            };
            let mut values = BTreeMap::new();
            for (h, c) in header.iter().zip(&cells).skip(2) {
                if let Ok(v) = c.parse::<f64>() {
                    values.insert(h.to_string(), v);
                }
            }
            rows.push(Row {
                step,
                split,
                values,
            });
        }
        Ok(rows)
    }

    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    pub fn flush(&self) -> Result<()> {
        let mut csv = String::from("step,split");
        for c in &self.columns {
            csv.push(',');
            csv.push_str(c);
        }
        csv.push('\n');
        let mut jsonl = String::new();
        for r in &self.rows {
            csv.push_str(&format!("{},{}", r.step, r.split));
            for c in &self.columns {
                csv.push(',');
                if let Some(v) = r.values.get(c) {
                    csv.push_str(&format!("{v}"));
                }
            }
            csv.push('\n');
            let mut o = serde_json::Map::new();
            o.insert("step".into(), r.step.into());
            o.insert("split".into(), r.split.into());
            for (k, v) in &r.values {
                o.insert(
                    k.clone(),
                    serde_json::Number::from_f64(*v)
                        .map(Into::into)
                        .unwrap_or(serde_json::Value::Null),
                );
            }
            jsonl.push_str(&serde_json::Value::Object(o).to_string());
            jsonl.push('\n');
        }
        atomic_write(&self.csv, csv.as_bytes())?;
        atomic_write(&self.jsonl, jsonl.as_bytes())
    }
}

/// A progress bar with loss and ETA, hidden when stderr is not a terminal or `quiet`.
pub fn progress(total: u64, start: u64, quiet: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    let pb = if quiet || !std::io::stderr().is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total)
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  {msg}  ETA {eta_precise}",
    ) {
        pb.set_style(style);
    }
    pb.set_position(start);
    pb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_roundtrip_and_resume_truncation() -> Result<()> {
        let d = tempfile::tempdir()?;
        let cols = vec!["loss".to_string(), "snr_l0".to_string()];
        let mut lg = Logger::new(d.path(), cols.clone(), None)?;
        for s in 1..=5u64 {
            lg.push(Row {
                step: s,
                split: "train",
                values: BTreeMap::from([("loss".into(), s as f64 * 0.5)]),
            });
        }
        lg.push(Row {
            step: 5,
            split: "valid",
            values: BTreeMap::from([("snr_l0".into(), 3.25)]),
        });
        lg.flush()?;
        let text = std::fs::read_to_string(d.path().join("train_log.csv"))?;
        assert!(
            text.starts_with("step,split,loss,snr_l0\n1,train,0.5,\n"),
            "{text}"
        );
        assert!(text.contains("5,valid,,3.25\n"));
        let lg2 = Logger::new(d.path(), cols, Some(3))?;
        assert_eq!(lg2.rows().len(), 3);
        assert_eq!(lg2.rows()[2].values["loss"], 1.5);
        let jl = std::fs::read_to_string(d.path().join("metrics.jsonl"))?;
        assert_eq!(jl.lines().count(), 6);
        assert!(jl.lines().last().unwrap_or("").contains("\"snr_l0\":3.25"));
        Ok(())
    }
}
