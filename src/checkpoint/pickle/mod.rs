//! A pickle reader that never executes anything.
//!
//! Globals become data. The allow-list ([`ALLOWED_GLOBALS`], docs/CONVENTIONS.md "Checkpoints") names the globals that are
//! *interpreted*: `OrderedDict` becomes a dict, `_rebuild_tensor_v2` / `_rebuild_parameter` a
//! tensor reference, `torch.Size` a tuple, `_codecs.encode` bytes, numpy scalars/dtypes an inert
//! placeholder. Any other global becomes [`Value::Opaque`] carrying its name; calling or building
//! it stays opaque. Whoever consumes the result decides: inside `model` an opaque value is an
//! error naming the global, elsewhere (`hps`, `opt`, metrics) it is ignored.
//!
//! Every length is checked against the bytes left before anything is allocated.

use anyhow::{bail, Context, Result};
use candle_core::DType;
use std::cell::RefCell;
use std::rc::Rc;

/// A storage named by a persistent id: `('storage', torch.XStorage, key, location, numel[, view])`.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    pub key: String,
    pub dtype: DType,
    /// Elements (of `dtype`) in the storage, as the pickle claims.
    pub numel: usize,
    /// Legacy view metadata: (view key, element offset into the root, view numel).
    pub view: Option<(String, usize, usize)>,
}

/// A tensor rebuilt by `_rebuild_tensor_v2(storage, offset, size, stride, ...)`.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    pub storage: Rc<StorageRef>,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too wide for i64, little-endian two's complement (e.g. torch's magic number).
    BigInt(Rc<[u8]>),
    Float(f64),
    /// Strings and bytes are shared, so a memo GET repeated many times stays cheap.
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Rc<Vec<Value>>),
    List(Rc<RefCell<Vec<Value>>>),
    /// Dicts keep insertion order (state dicts are ordered).
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    Global(Rc<str>),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
    /// An allow-listed object with no meaning for us (numpy scalar, numpy dtype, storage class).
    Inert(&'static str),
    /// A global outside the allow-list, or anything produced from it; carries the global's name.
    Opaque(Rc<str>),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_usize(&self) -> Option<usize> {
        match self {
            Value::Int(i) if *i >= 0 => Some(*i as usize),
            Value::Bool(b) => Some(*b as usize),
            _ => None,
        }
    }

    /// Items of a tuple or list.
    pub fn items(&self) -> Option<Vec<Value>> {
        match self {
            Value::Tuple(t) => Some(t.as_ref().clone()),
            Value::List(l) => Some(l.borrow().clone()),
            _ => None,
        }
    }

    /// Look up a string key in a dict.
    pub fn get(&self, key: &str) -> Option<Value> {
        match self {
            // Python keeps the last value of a repeated key.
            Value::Dict(d) => d
                .borrow()
                .iter()
                .rev()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v.clone()),
            _ => None,
        }
    }

    pub fn type_name(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) | Value::BigInt(_) => "int".into(),
            Value::Float(_) => "float".into(),
            Value::Str(_) => "str".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::Tuple(_) => "tuple".into(),
            Value::List(_) => "list".into(),
            Value::Dict(_) => "dict".into(),
            Value::Global(g) => format!("global {g}"),
            Value::Storage(_) => "storage".into(),
            Value::Tensor(_) => "tensor".into(),
            Value::Inert(n) => (*n).into(),
            Value::Opaque(g) => format!("object of {g}"),
        }
    }
}

/// dtype of a `torch.XStorage` class.
pub fn storage_dtype(global: &str) -> Option<DType> {
    Some(match global {
        "torch.FloatStorage" => DType::F32,
        "torch.HalfStorage" => DType::F16,
        "torch.BFloat16Storage" => DType::BF16,
        "torch.DoubleStorage" => DType::F64,
        "torch.LongStorage" => DType::I64,
        "torch.IntStorage" => DType::I32,
        "torch.ShortStorage" => DType::I16,
        "torch.ByteStorage" | "torch.BoolStorage" => DType::U8,
        _ => return None,
    })
}

/// The globals we interpret (docs/CONVENTIONS.md, "Checkpoints"). Storage classes are allowed too (see
/// [`storage_dtype`]); other `torch.*Storage` classes (e.g. CharStorage) are allowed but their
/// dtype is unsupported.
pub const ALLOWED_GLOBALS: &[&str] = &[
    "collections.OrderedDict",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_parameter",
    "torch.Size",
    "numpy.dtype",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "_codecs.encode",
];

pub fn is_allowed(global: &str) -> bool {
    ALLOWED_GLOBALS.contains(&global)
        || (global.starts_with("torch.") && global.ends_with("Storage"))
}

mod vm;
pub use vm::{MAX_CONTAINERS, MAX_NESTING};

fn arg(args: &[Value], i: usize, f: &str) -> Result<Value> {
    args.get(i)
        .cloned()
        .with_context(|| format!("{f} called with {} arguments", args.len()))
}

fn usize_list(v: &Value, what: &str) -> Result<Vec<usize>> {
    v.items()
        .with_context(|| format!("{what} is not a tuple"))?
        .iter()
        .map(|x| {
            x.as_usize()
                .with_context(|| format!("{what} holds a non-index {}", x.type_name()))
        })
        .collect()
}

/// "Call" a global: interpret allow-listed ones, keep everything else opaque.
pub(super) fn call(f: &Value, args: &Value) -> Result<Value> {
    let g = match f {
        Value::Global(g) => g.clone(),
        Value::Opaque(g) => return Ok(Value::Opaque(g.clone())),
        Value::Inert(n) => return Ok(Value::Inert(n)),
        other => bail!("pickle calls a {}", other.type_name()),
    };
    if !is_allowed(&g) {
        return Ok(Value::Opaque(g));
    }
    let a = args.items().unwrap_or_default();
    Ok(match g.as_ref() {
        "collections.OrderedDict" => {
            let mut d = vec![];
            if let Some(init) = a.first() {
                for p in init
                    .items()
                    .context("OrderedDict initialiser is not a sequence")?
                {
                    let kv = p
                        .items()
                        .filter(|kv| kv.len() == 2)
                        .context("OrderedDict item is not a pair")?;
                    d.push((kv[0].clone(), kv[1].clone()));
                }
            }
            Value::Dict(Rc::new(RefCell::new(d)))
        }
        "torch._utils._rebuild_tensor_v2" => {
            let f = "_rebuild_tensor_v2";
            let storage = match arg(&a, 0, f)? {
                Value::Storage(s) => s,
                other => bail!(
                    "{f}: first argument is a {}, not a storage",
                    other.type_name()
                ),
            };
            let offset = arg(&a, 1, f)?
                .as_usize()
                .with_context(|| format!("{f}: bad storage offset"))?;
            let shape = usize_list(&arg(&a, 2, f)?, "tensor size")?;
            let stride = usize_list(&arg(&a, 3, f)?, "tensor stride")?;
            if shape.len() != stride.len() {
                bail!("{f}: size {shape:?} and stride {stride:?} differ in rank");
            }
            Value::Tensor(Rc::new(TensorRef {
                storage,
                offset,
                shape,
                stride,
            }))
        }
        "torch._utils._rebuild_parameter" => arg(&a, 0, "_rebuild_parameter")?,
        "torch.Size" => Value::Tuple(Rc::new(
            arg(&a, 0, "torch.Size")?
                .items()
                .context("torch.Size of a non-tuple")?,
        )),
        "_codecs.encode" => {
            let s = arg(&a, 0, "_codecs.encode")?;
            let s = s.as_str().context("_codecs.encode of a non-string")?;
            // torch/numpy use it for latin-1 bytes: each char is one byte.
            Value::Bytes(
                s.chars()
                    .map(|c| c as u32 as u8)
                    .collect::<Vec<u8>>()
                    .into(),
            )
        }
        "numpy.dtype" => Value::Inert("numpy dtype"),
        "numpy.core.multiarray.scalar" | "numpy._core.multiarray.scalar" => {
            Value::Inert("numpy scalar")
        }
        _ => Value::Inert("torch storage class"),
    })
}

pub(super) fn persistent_load(pid: &Value) -> Result<Value> {
    let t = pid.items().context("persistent id is not a tuple")?;
    if t.first().and_then(Value::as_str) != Some("storage") || t.len() < 5 {
        bail!("persistent id is not a torch storage reference");
    }
    let cls = match &t[1] {
        Value::Global(g) => g.clone(),
        other => bail!("storage type is a {}", other.type_name()),
    };
    let dtype = storage_dtype(&cls).with_context(|| format!("unsupported storage type {cls}"))?;
    let key = match &t[2] {
        Value::Str(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        other => bail!("storage key is a {}", other.type_name()),
    };
    let numel = t[4].as_usize().context("storage size is not a count")?;
    let view = match t.get(5) {
        None | Some(Value::None) => None,
        Some(v) => {
            let vm = v
                .items()
                .filter(|x| x.len() == 3)
                .context("bad storage view metadata")?;
            let vk = vm[0].as_str().context("bad view key")?.to_string();
            let off = vm[1].as_usize().context("bad view offset")?;
            let n = vm[2].as_usize().context("bad view size")?;
            Some((vk, off, n))
        }
    };
    Ok(Value::Storage(Rc::new(StorageRef {
        key,
        dtype,
        numel,
        view,
    })))
}

/// The result of [`parse`].
#[derive(Debug)]
pub struct Parsed {
    pub value: Value,
    /// Bytes consumed, up to and including STOP.
    pub len: usize,
    /// Every storage a persistent id named.
    pub storages: Vec<Rc<StorageRef>>,
}

/// Parse one pickle starting at `data[0]`.
pub fn parse(data: &[u8]) -> Result<Parsed> {
    let mut vm = vm::Vm::new(data);
    let value = vm.run()?;
    Ok(Parsed {
        value,
        len: vm.pos,
        storages: vm.storages,
    })
}

/// Collect the `(key, tensor)` entries of a state dict, refusing anything that is not a tensor
/// (an opaque value names its global).
pub fn state_dict_entries(v: &Value) -> Result<Vec<(String, Rc<TensorRef>)>> {
    let d = match v {
        Value::Dict(d) => d.borrow().clone(),
        Value::Opaque(g) => bail!(
            "the state dict is built by `{g}`, which is not on the allow-list; refusing to load it"
        ),
        other => bail!("the state dict is a {}, not a dict", other.type_name()),
    };
    let mut out = Vec::with_capacity(d.len());
    for (k, v) in d {
        let k = match k {
            Value::Str(s) => s,
            other => bail!("state dict key is a {}", other.type_name()),
        };
        match v {
            Value::Tensor(t) => out.push((k.to_string(), t)),
            Value::Opaque(g) => bail!(
                "state dict entry `{k}` uses the global `{g}`, which is not on the allow-list; refusing to load it"
            ),
            other => bail!("state dict entry `{k}` is a {}, not a tensor", other.type_name()),
        }
    }
    Ok(out)
}

/// Flatten scalar entries of a dict (e.g. `hps`) to strings, for display; nested containers and
/// opaque objects are skipped. Never fails.
pub fn scalar_items(
    v: &Value,
    prefix: &str,
    out: &mut std::collections::BTreeMap<String, String>,
    depth: usize,
) {
    if depth > 4 || out.len() > 10_000 {
        return;
    }
    if let Value::Dict(d) = v {
        for (k, v) in d.borrow().iter() {
            let Some(k) = k.as_str() else { continue };
            let name = if prefix.is_empty() {
                k.to_string()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                Value::Int(i) => {
                    out.insert(name, i.to_string());
                }
                Value::Float(f) => {
                    out.insert(name, f.to_string());
                }
                Value::Bool(b) => {
                    out.insert(name, b.to_string());
                }
                Value::Str(s) => {
                    out.insert(name, s.to_string());
                }
                Value::Dict(_) => scalar_items(v, &name, out, depth + 1),
                _ => {}
            }
        }
    }
}
