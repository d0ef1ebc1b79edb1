//! A torch-free writer of torch.save checkpoints: the legacy (pre-1.6) stream of the official
//! `.pth.tar` files, and the zip container. Used by tests and fuzzing to build files with
//! official key names, shared storages, strided views, f16 storages — and hostile variants
//! (a forbidden global, a lying storage size, a missing zip member).
//!
//! The layout follows torch's `_legacy_save`: pickles of the magic number, the protocol (1001),
//! `sys_info`, the object `{'hps': {...}, 'model': OrderedDict, 'opt': None, 'step': int}`, the
//! list of storage keys; then per storage an 8-byte little-endian element count and the raw bytes.

use super::safetensors_io::tensor_bytes;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use std::io::Write;
use std::path::Path;

/// Minimal protocol-2 pickle emitter (no memo: each object is written where it is used).
#[derive(Default)]
struct Pickler {
    out: Vec<u8>,
}

impl Pickler {
    fn op(&mut self, b: u8) {
        self.out.push(b);
    }
    fn proto(&mut self) {
        self.out.extend_from_slice(&[0x80, 2]);
    }
    fn stop(&mut self) {
        self.op(b'.');
    }
    fn mark(&mut self) {
        self.op(b'(');
    }
    fn none(&mut self) {
        self.op(b'N');
    }
    fn boolean(&mut self, v: bool) {
        self.op(if v { 0x88 } else { 0x89 });
    }
    fn int(&mut self, v: i64) {
        if (0..256).contains(&v) {
            self.out.extend_from_slice(&[b'K', v as u8]);
        } else if (0..65536).contains(&v) {
            self.op(b'M');
            self.out.extend_from_slice(&(v as u16).to_le_bytes());
        } else if i32::try_from(v).is_ok() {
            self.op(b'J');
            self.out.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            self.out.extend_from_slice(&[0x8a, 8]);
            self.out.extend_from_slice(&v.to_le_bytes());
        }
    }
    fn float(&mut self, v: f64) {
        self.op(b'G');
        self.out.extend_from_slice(&v.to_be_bytes());
    }
    fn str(&mut self, s: &str) {
        self.op(b'X');
        self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
    }
    fn global(&mut self, module: &str, name: &str) {
        self.op(b'c');
        self.out
            .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }
    fn tuple_of_ints(&mut self, v: &[usize]) {
        self.mark();
        for &x in v {
            self.int(x as i64);
        }
        self.op(b't');
    }
}

/// A value in `hps` / metrics.
#[derive(Debug, Clone)]
pub enum HpsValue {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    /// `module.name(arg)`: an arbitrary global call, as a hostile or exotic file would have.
    Call(String, String, String),
}

fn storage_class(d: DType) -> Result<&'static str> {
    Ok(match d {
        DType::F32 => "FloatStorage",
        DType::F16 => "HalfStorage",
        DType::BF16 => "BFloat16Storage",
        DType::F64 => "DoubleStorage",
        DType::I64 => "LongStorage",
        DType::I32 => "IntStorage",
        DType::I16 => "ShortStorage",
        DType::U8 => "ByteStorage",
        other => bail!("no torch storage class for {other:?}"),
    })
}

struct StorageSpec {
    dtype: DType,
    bytes: Vec<u8>,
}

struct TensorSpec {
    key: String,
    storage: usize,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

/// Builds a checkpoint in memory; see the module docs.
pub struct LegacyWriter {
    storages: Vec<StorageSpec>,
    tensors: Vec<TensorSpec>,
    /// Entries of `hps` (the official files keep hyperparameters there).
    pub hps: Vec<(String, HpsValue)>,
    pub step: i64,
    /// Write `{'model': sd, ...}` (true, official) or the bare state dict (false, HF bin).
    pub wrap_model: bool,
    /// Prefix every key with `module.` (a DistributedDataParallel save).
    pub module_prefix: bool,
    /// Hostile: a state-dict entry built by an arbitrary global call.
    pub model_call: Option<(String, String, String, String)>,
    /// Hostile: add this to the element count the pickle declares for storage 0.
    pub declared_numel_delta: i64,
    /// Hostile: zip only — leave out the data file of this storage.
    pub omit_storage: Option<usize>,
}

impl Default for LegacyWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl LegacyWriter {
    pub fn new() -> Self {
        Self {
            storages: vec![],
            tensors: vec![],
            hps: vec![],
            step: 0,
            wrap_model: true,
            module_prefix: false,
            model_call: None,
            declared_numel_delta: 0,
            omit_storage: None,
        }
    }

    /// Add a raw storage (little-endian bytes of `dtype`); returns its index.
    pub fn add_storage(&mut self, dtype: DType, bytes: Vec<u8>) -> Result<usize> {
        storage_class(dtype)?;
        if !bytes.len().is_multiple_of(dtype.size_in_bytes()) {
            bail!(
                "{} bytes is not a whole number of {dtype:?} elements",
                bytes.len()
            );
        }
        self.storages.push(StorageSpec { dtype, bytes });
        Ok(self.storages.len() - 1)
    }

    /// Add a tensor that views `storage` (element offset, shape, element strides).
    pub fn add_view(
        &mut self,
        key: &str,
        storage: usize,
        offset: usize,
        shape: &[usize],
        stride: &[usize],
    ) -> Result<()> {
        if storage >= self.storages.len() || shape.len() != stride.len() {
            bail!("bad view of `{key}`");
        }
        self.tensors.push(TensorSpec {
            key: key.to_string(),
            storage,
            offset,
            shape: shape.to_vec(),
            stride: stride.to_vec(),
        });
        Ok(())
    }

    /// Add a contiguous tensor with its own storage (in the tensor's dtype); returns the storage.
    pub fn add_tensor(&mut self, key: &str, t: &Tensor) -> Result<usize> {
        let s = self.add_storage(t.dtype(), tensor_bytes(t)?)?;
        let shape = t.dims().to_vec();
        self.add_view(key, s, 0, &shape, &super::store::contiguous_strides(&shape))?;
        Ok(s)
    }

    /// Store `key` as the same tensor (same storage, offset, shape and strides) as `other`.
    pub fn tie(&mut self, key: &str, other: &str) -> Result<()> {
        let t = self
            .tensors
            .iter()
            .find(|t| t.key == other)
            .context("tie: unknown tensor")?;
        let (s, o, sh, st) = (t.storage, t.offset, t.shape.clone(), t.stride.clone());
        self.add_view(key, s, o, &sh, &st)
    }

    fn storage_key(i: usize) -> String {
        // The legacy format keys storages by their address; any string works.
        format!("{}", 94_000_000_000_000usize + i * 4096)
    }

    /// The main object pickle; `zip` selects the zip-container persistent ids.
    fn main_pickle(&self, zip: bool) -> Result<Vec<u8>> {
        let mut p = Pickler::default();
        p.proto();
        if self.wrap_model {
            p.op(b'}');
            p.mark();
            p.str("hps");
            p.op(b'}');
            p.mark();
            for (k, v) in &self.hps {
                p.str(k);
                match v {
                    HpsValue::Int(i) => p.int(*i),
                    HpsValue::Float(f) => p.float(*f),
                    HpsValue::Str(s) => p.str(s),
                    HpsValue::Bool(b) => p.boolean(*b),
                    HpsValue::Call(m, n, a) => {
                        p.global(m, n);
                        p.mark();
                        p.str(a);
                        p.op(b't');
                        p.op(b'R');
                    }
                }
            }
            p.op(b'u');
            p.str("model");
        }
        // The state dict: OrderedDict() with a `_metadata` BUILD, as torch writes it.
        p.global("collections", "OrderedDict");
        p.op(b')');
        p.op(b'R');
        p.mark();
        for t in &self.tensors {
            let key = if self.module_prefix {
                format!("module.{}", t.key)
            } else {
                t.key.clone()
            };
            p.str(&key);
            let st = &self.storages[t.storage];
            let mut numel = (st.bytes.len() / st.dtype.size_in_bytes()) as i64;
            if t.storage == 0 {
                numel += self.declared_numel_delta;
            }
            p.global("torch._utils", "_rebuild_tensor_v2");
            p.mark();
            // persistent id
            p.mark();
            p.str("storage");
            p.global("torch", storage_class(st.dtype)?);
            if zip {
                p.str(&t.storage.to_string());
            } else {
                p.str(&Self::storage_key(t.storage));
            }
            p.str("cpu");
            p.int(numel);
            if !zip {
                p.none();
            }
            p.op(b't');
            p.op(b'Q');
            p.int(t.offset as i64);
            p.tuple_of_ints(&t.shape);
            p.tuple_of_ints(&t.stride);
            p.boolean(false);
            p.global("collections", "OrderedDict");
            p.op(b')');
            p.op(b'R');
            p.op(b't');
            p.op(b'R');
        }
        if let Some((k, m, n, a)) = &self.model_call {
            p.str(k);
            p.global(m, n);
            p.mark();
            p.str(a);
            p.op(b't');
            p.op(b'R');
        }
        p.op(b'u');
        // _metadata, as the BUILD state of the OrderedDict.
        p.op(b'}');
        p.mark();
        p.str("_metadata");
        p.global("collections", "OrderedDict");
        p.op(b')');
        p.op(b'R');
        p.op(b'u');
        p.op(b'b');
        if self.wrap_model {
            p.str("opt");
            p.none();
            p.str("step");
            p.int(self.step);
            p.op(b'u');
        }
        p.stop();
        Ok(p.out)
    }

    /// The legacy stream, as bytes.
    pub fn to_legacy_bytes(&self) -> Result<Vec<u8>> {
        let mut out = vec![];
        // magic number 0x1950a86a20f9469cfc6c as LONG1
        out.extend_from_slice(&[
            0x80, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.',
        ]);
        let mut p = Pickler::default();
        p.proto();
        p.int(1001);
        p.stop();
        // sys_info
        p.proto();
        p.op(b'}');
        p.mark();
        p.str("protocol_version");
        p.int(1001);
        p.str("little_endian");
        p.boolean(true);
        p.str("type_sizes");
        p.op(b'}');
        p.mark();
        for (k, v) in [("short", 2), ("int", 4), ("long", 4)] {
            p.str(k);
            p.int(v);
        }
        p.op(b'u');
        p.op(b'u');
        p.stop();
        out.extend_from_slice(&p.out);
        out.extend_from_slice(&self.main_pickle(false)?);
        let used: Vec<usize> = (0..self.storages.len())
            .filter(|i| self.tensors.iter().any(|t| t.storage == *i))
            .collect();
        let mut p = Pickler::default();
        p.proto();
        p.op(b']');
        p.mark();
        for &i in &used {
            p.str(&Self::storage_key(i));
        }
        p.op(b'e');
        p.stop();
        out.extend_from_slice(&p.out);
        for &i in &used {
            let s = &self.storages[i];
            out.extend_from_slice(
                &((s.bytes.len() / s.dtype.size_in_bytes()) as u64).to_le_bytes(),
            );
            out.extend_from_slice(&s.bytes);
        }
        Ok(out)
    }

    /// The zip container (`archive/data.pkl`, `archive/data/N`), as bytes.
    pub fn to_zip_bytes(&self) -> Result<Vec<u8>> {
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        z.start_file("archive/data.pkl", opts)?;
        z.write_all(&self.main_pickle(true)?)?;
        z.start_file("archive/byteorder", opts)?;
        z.write_all(b"little")?;
        for (i, s) in self.storages.iter().enumerate() {
            if self.omit_storage == Some(i) || !self.tensors.iter().any(|t| t.storage == i) {
                continue;
            }
            z.start_file(format!("archive/data/{i}"), opts)?;
            z.write_all(&s.bytes)?;
        }
        z.start_file("archive/version", opts)?;
        z.write_all(b"3\n")?;
        Ok(z.finish()?.into_inner())
    }

    /// Write the legacy stream atomically.
    pub fn write_legacy(&self, path: &Path) -> Result<()> {
        crate::util::atomic_write(path, &self.to_legacy_bytes()?)
    }

    /// Write the zip container atomically.
    pub fn write_zip(&self, path: &Path) -> Result<()> {
        crate::util::atomic_write(path, &self.to_zip_bytes()?)
    }
}
