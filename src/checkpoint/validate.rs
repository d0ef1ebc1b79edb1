//! Key/shape validation: record what a model asks for, compare with what a checkpoint holds.

use crate::error::TensorMismatch;
use anyhow::Result;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// A VarBuilder backend that records every `(key, shape)` a model constructor requests and
/// hands back a zero-stride broadcast of one zero, so building even the 5B prior allocates
/// nothing. Build a model with [`ShapeRecorder::var_builder`], then read [`ShapeRecorder::records`]
/// to get the key table the model expects.
#[derive(Clone, Default)]
pub struct ShapeRecorder {
    records: Arc<Mutex<KeyTable>>,
}

/// `(key, shape)` pairs in request order.
pub type KeyTable = Vec<(String, Vec<usize>)>;

impl ShapeRecorder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn var_builder(&self, dtype: DType, dev: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), dtype, dev.clone())
    }

    /// Every request in order, with repeated requests of the same key and shape kept once.
    pub fn records(&self) -> KeyTable {
        let r = match self.records.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let mut seen = BTreeSet::new();
        r.into_iter()
            .filter(|(k, s)| seen.insert((k.clone(), s.clone())))
            .collect()
    }
}

impl SimpleBackend for ShapeRecorder {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        match self.records.lock() {
            Ok(mut g) => g.push((name.to_string(), s.dims().to_vec())),
            Err(p) => p.into_inner().push((name.to_string(), s.dims().to_vec())),
        }
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        candle_core::bail!("ShapeRecorder: `{name}` was requested without a shape")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

/// Compare an expected key/shape table with what a checkpoint holds. Returns one error that
/// lists every missing key, every unexpected key and every shape mismatch (expected vs found).
pub fn check_tensors(
    expected: &[(String, Vec<usize>)],
    found: &HashMap<String, Vec<usize>>,
) -> Result<()> {
    let mut want: HashMap<&str, &Vec<usize>> = HashMap::new();
    for (k, s) in expected {
        want.entry(k.as_str()).or_insert(s);
    }
    let mut m = TensorMismatch::default();
    for (k, s) in &want {
        match found.get(*k) {
            None => m.missing.push((k.to_string(), s.to_vec())),
            Some(f) if f != *s => m.mis_shaped.push((k.to_string(), s.to_vec(), f.clone())),
            Some(_) => {}
        }
    }
    m.unexpected = found
        .iter()
        .filter(|(k, _)| !want.contains_key(k.as_str()))
        .map(|(k, s)| (k.clone(), s.clone()))
        .collect();
    if m.is_empty() {
        return Ok(());
    }
    m.missing.sort();
    m.mis_shaped.sort();
    m.unexpected.sort();
    // Nothing expected is there: most likely another kind of checkpoint (a prior given as a
    // VQ-VAE, ...); the message says so rather than only listing a thousand keys.
    m.nothing_expected_present = !want.is_empty() && m.missing.len() == want.len();
    Err(m.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_records_without_allocating() {
        let r = ShapeRecorder::new();
        let vb = r.var_builder(DType::F32, &Device::Cpu);
        let t = vb.pp("prior").get((8192, 4800), "x_emb.weight").unwrap();
        assert_eq!(t.dims(), &[8192, 4800]);
        // A broadcast of one element: every stride is 0.
        assert!(t.stride().iter().all(|&s| s == 0));
        let _ = vb.get(3, "b").unwrap();
        let _ = vb.pp("prior").get((8192, 4800), "x_emb.weight").unwrap();
        assert_eq!(
            r.records(),
            vec![
                ("prior.x_emb.weight".to_string(), vec![8192, 4800]),
                ("b".to_string(), vec![3])
            ]
        );
    }

    #[test]
    fn check_lists_every_problem() {
        let expected = vec![
            ("a".to_string(), vec![2, 3]),
            ("b".to_string(), vec![4]),
            ("c".to_string(), vec![1]),
        ];
        let found: HashMap<String, Vec<usize>> = [
            ("a".to_string(), vec![3, 2]),
            ("c".to_string(), vec![1]),
            ("z".to_string(), vec![5]),
        ]
        .into();
        let e = format!("{:#}", check_tensors(&expected, &found).unwrap_err());
        assert!(
            e.contains("1 missing, 1 unexpected and 1 mis-shaped"),
            "{e}"
        );
        assert!(e.contains("missing     b  expected [4]"), "{e}");
        assert!(e.contains("unexpected  z  found [5]"), "{e}");
        assert!(
            e.contains("shape       a  expected [2, 3], found [3, 2]"),
            "{e}"
        );
        let ok: HashMap<String, Vec<usize>> = [
            ("a".to_string(), vec![2, 3]),
            ("b".to_string(), vec![4]),
            ("c".to_string(), vec![1]),
        ]
        .into();
        check_tensors(&expected, &ok).unwrap();
        // The error is typed: a caller gets every key without parsing the message.
        let err = check_tensors(&expected, &found).unwrap_err();
        let m = err.downcast_ref::<TensorMismatch>().unwrap();
        assert_eq!(m.missing, vec![("b".to_string(), vec![4])]);
        assert_eq!(
            m.mis_shaped,
            vec![("a".to_string(), vec![2, 3], vec![3, 2])]
        );
    }
}
