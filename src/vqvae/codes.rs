//! Codes files (docs/CONVENTIONS.md): safetensors with int64 tensors `level_0`, `level_1`, `level_2`
//! of shape [samples, tokens], and `sample_rate` and `hop_lengths` in the header metadata.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype, SafeTensors};
use std::path::Path;

/// Hard limit on levels in a codes file (the official model has 3).
pub const MAX_LEVELS: usize = 8;

/// The content of a codes file. `levels[L]` is `Some((samples, tokens))` u32 codes when the
/// file holds level L.
#[derive(Debug, Clone)]
pub struct Codes {
    pub levels: Vec<Option<Tensor>>,
    pub sample_rate: u32,
    pub hop_lengths: Vec<usize>,
}

impl Codes {
    /// The codes of one level, or an error naming the levels the file does hold.
    pub fn level(&self, level: usize) -> Result<&Tensor> {
        match self.levels.get(level).and_then(|c| c.as_ref()) {
            Some(t) => Ok(t),
            None => {
                let have: Vec<String> = self
                    .levels
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.is_some())
                    .map(|(i, _)| i.to_string())
                    .collect();
                bail!(
                    "the codes file has no level {level} (it holds levels [{}])",
                    have.join(", ")
                )
            }
        }
    }
}

/// Write codes atomically. `levels[L]` = `Some(codes (samples, tokens))` of any integer dtype.
pub fn save_codes(
    path: &Path,
    levels: &[Option<Tensor>],
    sample_rate: u32,
    hop_lengths: &[usize],
) -> Result<()> {
    let mut bufs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (l, c) in levels.iter().enumerate() {
        let Some(c) = c else { continue };
        let dims = c.dims().to_vec();
        if dims.len() != 2 {
            bail!("codes for level {l} must be (samples, tokens), got shape {dims:?}");
        }
        let v: Vec<i64> = c
            .to_dtype(DType::I64)
            .and_then(|t| t.flatten_all()?.to_vec1::<i64>())
            .with_context(|| format!("codes for level {l} are not integers"))?;
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        bufs.push((format!("level_{l}"), dims, bytes));
    }
    if bufs.is_empty() {
        bail!("no codes to write to {}", path.display());
    }
    // The crate's writer takes a BTreeMap: `safetensors::serialize` writes metadata in HashMap
    // order, which differs between processes and broke byte-identical resumed runs.
    let items = bufs
        .into_iter()
        .map(|(name, shape, bytes)| crate::checkpoint::WriteItem {
            name,
            dtype: DType::I64,
            shape,
            bytes: Box::new(move || Ok(bytes)),
        })
        .collect();
    let meta = std::collections::BTreeMap::from([
        ("sample_rate".to_string(), sample_rate.to_string()),
        (
            "hop_lengths".to_string(),
            serde_json::to_string(hop_lengths)?,
        ),
        ("format".to_string(), "jukebox-codes".to_string()),
    ]);
    crate::checkpoint::safetensors_io::write(path, items, &meta)
}

/// Read a codes file written by [`save_codes`] (or any safetensors file in that layout).
pub fn load_codes(path: &Path) -> Result<Codes> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read codes file {}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes).with_context(|| {
        let hint = match crate::util::sniff_kind(&bytes[..bytes.len().min(16)]) {
            Some(k) if k.contains("audio") => {
                format!(" (it is {k}: make codes from it with `jukebox encode`)")
            }
            Some(k) => format!(" (it looks like {k})"),
            None => String::new(),
        };
        format!("{} is not a safetensors codes file{hint}", path.display())
    })?;
    let (_, meta) = SafeTensors::read_metadata(&bytes)
        .with_context(|| format!("{}: unreadable safetensors header", path.display()))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let sample_rate = match meta.get("sample_rate") {
        Some(s) => s.trim().parse::<u32>().with_context(|| {
            format!(
                "{}: metadata sample_rate {s:?} is not an integer",
                path.display()
            )
        })?,
        None => 44100,
    };
    let hop_lengths: Vec<usize> = match meta.get("hop_lengths") {
        Some(s) => serde_json::from_str(s).with_context(|| {
            format!(
                "{}: metadata hop_lengths {s:?} is not a list of integers",
                path.display()
            )
        })?,
        None => vec![],
    };
    let mut levels: Vec<Option<Tensor>> = vec![];
    for name in st.names() {
        let Some(l) = name
            .strip_prefix("level_")
            .and_then(|s| s.parse::<usize>().ok())
        else {
            bail!(
                "{}: unexpected tensor {name:?} (a codes file holds level_0, level_1, …)",
                path.display()
            );
        };
        if l >= MAX_LEVELS {
            bail!(
                "{}: level {l} is beyond the limit of {MAX_LEVELS} levels",
                path.display()
            );
        }
        let view = st.tensor(name)?;
        let shape = view.shape().to_vec();
        if shape.len() != 2 {
            bail!(
                "{}: {name} must be [samples, tokens], got shape {shape:?}",
                path.display()
            );
        }
        let vals: Vec<i64> = match view.dtype() {
            Dtype::I64 => view
                .data()
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
            Dtype::I32 => view
                .data()
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as i64)
                .collect(),
            dt => bail!(
                "{}: {name} has dtype {dt:?}, expected int64",
                path.display()
            ),
        };
        if let Some(bad) = vals.iter().find(|&&v| v < 0 || v > u32::MAX as i64) {
            bail!("{}: {name} holds the invalid code {bad}", path.display());
        }
        let vals: Vec<u32> = vals.into_iter().map(|v| v as u32).collect();
        let t = Tensor::from_vec(vals, (shape[0], shape[1]), &Device::Cpu)?;
        if levels.len() <= l {
            levels.resize(l + 1, None);
        }
        levels[l] = Some(t);
    }
    if levels.iter().all(|c| c.is_none()) {
        bail!("{}: the file holds no codes", path.display());
    }
    Ok(Codes {
        levels,
        sample_rate,
        hop_lengths,
    })
}
