//! A lazily loaded set of named tensors from one checkpoint (a file or a sharded set).
//!
//! Every entry points into a memory-mapped file (or, for compressed zip members, a buffer read
//! once); nothing is copied until a tensor is asked for. Views with strides and offsets (torch
//! pickles) are materialised on load.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes a store reads from.
pub enum Buf {
    Mmap(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Buf {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Buf::Mmap(m) => m,
            Buf::Owned(v) => v,
        }
    }

    /// Map a file read-only.
    pub fn map(path: &Path) -> Result<Arc<Buf>> {
        let f =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: read-only map; a checkpoint modified while it is loaded is outside our contract
        // (the same assumption candle's mmaped safetensors make).
        let m = unsafe { memmap2::Mmap::map(&f) }
            .with_context(|| format!("cannot map {}", path.display()))?;
        Ok(Arc::new(Buf::Mmap(m)))
    }
}

/// The container a store was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Safetensors,
    /// torch.save zip container (torch >= 1.6, HF `pytorch_model.bin`).
    TorchZip,
    /// The legacy (pre-1.6) torch.save stream of the official `.pth.tar` files.
    TorchLegacy,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Safetensors => "safetensors",
            Format::TorchZip => "torch zip pickle",
            Format::TorchLegacy => "legacy torch pickle (pre-1.6)",
        })
    }
}

/// One tensor: where its bytes are and how to read them.
#[derive(Clone)]
pub struct Entry {
    pub dtype: DType,
    pub shape: Vec<usize>,
    buf: Arc<Buf>,
    /// Byte offset of element 0 in `buf`.
    offset: usize,
    /// Element strides; `None` when contiguous.
    strides: Option<Vec<usize>>,
    /// The file this entry came from (for messages).
    pub file: Arc<PathBuf>,
    /// Identity of the underlying storage (same value = shared storage, e.g. tied tensors).
    pub storage_id: (usize, usize),
}

impl Entry {
    /// Build an entry, checking that every element it addresses lies inside `buf[start..end]`.
    pub fn new(
        dtype: DType,
        shape: Vec<usize>,
        strides: Option<Vec<usize>>,
        buf: Arc<Buf>,
        range: (usize, usize),
        elem_offset: usize,
        file: Arc<PathBuf>,
    ) -> Result<Entry> {
        let es = dtype.size_in_bytes();
        let (start, end) = range;
        if start > end || end > buf.bytes().len() {
            bail!(
                "data range {start}..{end} lies outside the file ({} bytes)",
                buf.bytes().len()
            );
        }
        let numel = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .context("shape overflows")?;
        // Extent in elements: the last addressed element + 1 (0 for empty tensors).
        let extent = if numel == 0 {
            0
        } else {
            match &strides {
                None => numel,
                Some(st) => {
                    if st.len() != shape.len() {
                        bail!("{} strides for {} dims", st.len(), shape.len());
                    }
                    shape
                        .iter()
                        .zip(st)
                        .try_fold(1usize, |a, (&d, &s)| {
                            (d - 1).checked_mul(s).and_then(|x| a.checked_add(x))
                        })
                        .context("strides overflow")?
                }
            }
        };
        let need = elem_offset
            .checked_add(extent)
            .and_then(|e| e.checked_mul(es))
            .context("tensor extent overflows")?;
        // Materialising a view allocates numel elements: never more than its storage holds
        // (a zero-stride view of a tiny storage could otherwise ask for terabytes).
        if numel.saturating_mul(es) > end - start {
            bail!(
                "tensor of shape {shape:?} has more elements than its storage ({} bytes)",
                end - start
            );
        }
        if need > end - start {
            bail!(
                "tensor of shape {shape:?} at element offset {elem_offset} needs {need} bytes, its storage has {}",
                end - start
            );
        }
        let strides = match strides {
            Some(s) if s != contiguous_strides(&shape) && numel > 1 => Some(s),
            _ => None,
        };
        Ok(Entry {
            dtype,
            storage_id: (Arc::as_ptr(&buf) as *const u8 as usize, start),
            shape,
            buf,
            offset: start + elem_offset * es,
            strides,
            file,
        })
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_contiguous(&self) -> bool {
        self.strides.is_none()
    }

    /// The tensor's bytes in its own dtype, row-major (copied only for strided views).
    pub fn bytes(&self) -> Cow<'_, [u8]> {
        let es = self.dtype.size_in_bytes();
        let data = self.buf.bytes();
        match &self.strides {
            None => Cow::Borrowed(&data[self.offset..self.offset + self.numel() * es]),
            Some(st) => {
                let n = self.numel();
                let mut out = Vec::with_capacity(n * es);
                let mut idx = vec![0usize; self.shape.len()];
                for _ in 0..n {
                    let e: usize = idx.iter().zip(st).map(|(i, s)| i * s).sum();
                    let p = self.offset + e * es;
                    out.extend_from_slice(&data[p..p + es]);
                    for d in (0..idx.len()).rev() {
                        idx[d] += 1;
                        if idx[d] < self.shape[d] {
                            break;
                        }
                        idx[d] = 0;
                    }
                }
                Cow::Owned(out)
            }
        }
    }

    /// Load as a candle tensor in its stored dtype.
    pub fn load_raw(&self, dev: &Device) -> candle_core::Result<Tensor> {
        Tensor::from_raw_buffer(&self.bytes(), self.dtype, &self.shape, dev)
    }

    /// Load and convert to `dtype`.
    pub fn load(&self, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let t = self.load_raw(&Device::Cpu)?;
        let t = if t.dtype() == dtype {
            t
        } else {
            t.to_dtype(dtype)?
        };
        t.to_device(dev)
    }
}

pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// Named tensors from one checkpoint (file or shard set), in key order.
pub struct Store {
    pub path: PathBuf,
    pub format: Format,
    pub entries: BTreeMap<String, Entry>,
    /// Safetensors header metadata, or the scalar/strings part of a torch checkpoint's `hps`.
    pub metadata: BTreeMap<String, String>,
}

impl Store {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Load one tensor converted to `dtype`; the error names the key and file.
    pub fn load(&self, key: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        let e = self
            .entries
            .get(key)
            .with_context(|| format!("{} has no tensor `{key}`", self.path.display()))?;
        e.load(dtype, dev)
            .with_context(|| format!("cannot load `{key}` from {}", e.file.display()))
    }

    /// Every (key, shape) pair.
    pub fn shapes(&self) -> std::collections::HashMap<String, Vec<usize>> {
        self.entries
            .iter()
            .map(|(k, e)| (k.clone(), e.shape.clone()))
            .collect()
    }

    /// Parameter count, each key counted (tied tensors stored twice count twice).
    pub fn n_elements(&self) -> usize {
        self.entries.values().map(Entry::numel).sum()
    }

    /// Parameter count with tensors that share storage (tied weights) counted once.
    pub fn n_elements_unique(&self) -> usize {
        let mut seen = std::collections::HashSet::new();
        self.entries
            .values()
            .filter(|e| seen.insert((e.storage_id, e.offset, e.shape.clone())))
            .map(Entry::numel)
            .sum()
    }

    /// Count of entries per dtype.
    pub fn dtype_counts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for e in self.entries.values() {
            *m.entry(format!("{:?}", e.dtype).to_lowercase())
                .or_insert(0) += 1;
        }
        m
    }
}
