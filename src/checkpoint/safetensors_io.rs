//! Safetensors: validated lazy reading and streaming (atomic) writing.

use super::store::{Buf, Entry, Format, Store};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub fn dtype_from_st(d: safetensors::Dtype) -> Result<DType> {
    use safetensors::Dtype as S;
    Ok(match d {
        S::F16 => DType::F16,
        S::BF16 => DType::BF16,
        S::F32 => DType::F32,
        S::F64 => DType::F64,
        S::I64 => DType::I64,
        S::I32 => DType::I32,
        S::I16 => DType::I16,
        S::U8 | S::BOOL => DType::U8,
        S::U32 => DType::U32,
        other => bail!("unsupported safetensors dtype {other:?}"),
    })
}

pub fn dtype_name(d: DType) -> Result<&'static str> {
    Ok(match d {
        DType::F16 => "F16",
        DType::BF16 => "BF16",
        DType::F32 => "F32",
        DType::F64 => "F64",
        DType::I64 => "I64",
        DType::I32 => "I32",
        DType::I16 => "I16",
        DType::U8 => "U8",
        DType::U32 => "U32",
        other => bail!("dtype {other:?} cannot be written to safetensors here"),
    })
}

/// Open a safetensors file. The `safetensors` crate validates the header: its length against
/// the file, and that the offsets tile the data region exactly (no overlap, no gap, nothing out of
/// bounds), so a hostile file is refused before anything is allocated from it.
pub fn open(path: &Path, buf: Arc<Buf>) -> Result<Store> {
    let (n, meta) = safetensors::SafeTensors::read_metadata(buf.bytes())
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| format!("{} is not a valid safetensors file", path.display()))?;
    let base = 8 + n;
    let file = Arc::new(path.to_path_buf());
    let mut entries = BTreeMap::new();
    for (name, info) in meta.tensors() {
        let dtype = dtype_from_st(info.dtype)
            .with_context(|| format!("{}: tensor `{name}`", path.display()))?;
        let (s, e) = info.data_offsets;
        let range = (base + s, base + e);
        let entry = Entry::new(
            dtype,
            info.shape.clone(),
            None,
            buf.clone(),
            range,
            0,
            file.clone(),
        )
        .with_context(|| format!("{}: tensor `{name}`", path.display()))?;
        entries.insert(name, entry);
    }
    let metadata = meta
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Ok(Store {
        path: path.to_path_buf(),
        format: Format::Safetensors,
        entries,
        metadata,
    })
}

/// One tensor to write: its name, dtype, shape and a way to get its bytes (called once, in
/// order, so a large model is streamed one tensor at a time).
pub struct WriteItem<'a> {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub bytes: Box<dyn FnOnce() -> Result<Vec<u8>> + 'a>,
}

impl<'a> WriteItem<'a> {
    /// An item from a candle tensor (any device; written in its own dtype).
    pub fn from_tensor(name: impl Into<String>, t: &'a Tensor) -> WriteItem<'a> {
        WriteItem {
            name: name.into(),
            dtype: t.dtype(),
            shape: t.dims().to_vec(),
            bytes: Box::new(move || tensor_bytes(t)),
        }
    }
}

/// Row-major little-endian bytes of a tensor.
pub fn tensor_bytes(t: &Tensor) -> Result<Vec<u8>> {
    let t = t.to_device(&candle_core::Device::Cpu)?.flatten_all()?;
    fn le<T: Copy>(v: Vec<T>, f: impl Fn(T) -> Vec<u8>) -> Vec<u8> {
        v.into_iter().flat_map(f).collect()
    }
    Ok(match t.dtype() {
        DType::F32 => le(t.to_vec1::<f32>()?, |x| x.to_le_bytes().to_vec()),
        DType::F64 => le(t.to_vec1::<f64>()?, |x| x.to_le_bytes().to_vec()),
        DType::F16 => le(t.to_vec1::<half::f16>()?, |x| x.to_le_bytes().to_vec()),
        DType::BF16 => le(t.to_vec1::<half::bf16>()?, |x| x.to_le_bytes().to_vec()),
        DType::I64 => le(t.to_vec1::<i64>()?, |x| x.to_le_bytes().to_vec()),
        DType::I32 => le(t.to_vec1::<i32>()?, |x| x.to_le_bytes().to_vec()),
        DType::I16 => le(t.to_vec1::<i16>()?, |x| x.to_le_bytes().to_vec()),
        DType::U32 => le(t.to_vec1::<u32>()?, |x| x.to_le_bytes().to_vec()),
        DType::U8 => t.to_vec1::<u8>()?,
        other => bail!("cannot serialise dtype {other:?}"),
    })
}

/// Write a safetensors file atomically, streaming tensor by tensor. Items are written in the
/// given order; names must be unique.
pub fn write(
    path: &Path,
    items: Vec<WriteItem<'_>>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert("__metadata__".into(), serde_json::to_value(metadata)?);
    }
    let mut off = 0usize;
    let mut sizes = Vec::with_capacity(items.len());
    for it in &items {
        let n = it.shape.iter().product::<usize>() * it.dtype.size_in_bytes();
        if header.contains_key(&it.name) {
            bail!(
                "duplicate tensor name `{}` while writing {}",
                it.name,
                path.display()
            );
        }
        header.insert(
            it.name.clone(),
            serde_json::json!({"dtype": dtype_name(it.dtype)?, "shape": it.shape, "data_offsets": [off, off + n]}),
        );
        sizes.push(n);
        off += n;
    }
    let mut h = serde_json::to_vec(&serde_json::Value::Object(header))?;
    // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
    while (h.len() + 8) % 8 != 0 {
        h.push(b' ');
    }
    crate::util::atomic_write_with(path, |f| {
        let mut w = std::io::BufWriter::new(f);
        w.write_all(&(h.len() as u64).to_le_bytes())?;
        w.write_all(&h)?;
        for (it, n) in items.into_iter().zip(sizes) {
            let name = it.name.clone();
            let b = (it.bytes)().with_context(|| format!("tensor `{name}`"))?;
            if b.len() != n {
                bail!("tensor `{name}`: {} bytes for a declared {n}", b.len());
            }
            w.write_all(&b)?;
        }
        w.flush()?;
        Ok(())
    })
    .with_context(|| format!("cannot write {}", PathBuf::from(path).display()))
}
