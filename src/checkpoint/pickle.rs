//! A pickle reader that never executes anything.
//!
//! Globals become data. The allow-list (conventions.md, "Checkpoints") names the globals that are
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
use std::collections::HashMap;
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

/// The globals we interpret (conventions.md). Storage classes are allowed too (see
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

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    /// Every storage named by a persistent id, in order of appearance.
    storages: Vec<Rc<StorageRef>>,
}

impl<'a> Vm<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .with_context(|| {
                format!(
                    "pickle truncated: needs {n} bytes at offset {}, {} left",
                    self.pos,
                    self.data.len() - self.pos
                )
            })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into()?))
    }
    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .context("pickle truncated: unterminated line")?;
        let s = std::str::from_utf8(&rest[..n]).context("pickle text argument is not UTF-8")?;
        self.pos += n + 1;
        Ok(s)
    }
    fn len_u64(&mut self) -> Result<usize> {
        let n = self.u64()?;
        usize::try_from(n).context("length does not fit in memory")
    }
    fn pop(&mut self) -> Result<Value> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            bail!("pickle pops past a MARK at offset {}", self.pos);
        }
        self.stack.pop().context("pickle stack underflow")
    }
    fn top(&mut self) -> Result<&mut Value> {
        self.stack.last_mut().context("pickle stack underflow")
    }
    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let m = self.marks.pop().context("pickle has no MARK to pop to")?;
        if m > self.stack.len() {
            bail!("pickle MARK is above the stack");
        }
        Ok(self.stack.split_off(m))
    }
    fn push(&mut self, v: Value) -> Result<()> {
        if self.stack.len() > self.data.len() {
            bail!("pickle stack grows beyond the file size");
        }
        self.stack.push(v);
        Ok(())
    }
    fn utf8(b: &[u8]) -> Result<String> {
        String::from_utf8(b.to_vec()).context("pickle string is not UTF-8")
    }
    fn memo_get(&self, i: u32) -> Result<Value> {
        self.memo
            .get(&i)
            .cloned()
            .with_context(|| format!("pickle memo has no entry {i}"))
    }

    fn run(&mut self) -> Result<Value> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let p = self.u8()?;
                    if p > 5 {
                        bail!("unsupported pickle protocol {p}");
                    }
                }
                0x95 => {
                    let n = self.len_u64()?; // FRAME: just a length hint
                    if n > self.data.len() - self.pos {
                        bail!("pickle FRAME of {n} bytes exceeds the file");
                    }
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v)?
                }
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'J' => {
                    let v = i32::from_le_bytes(self.take(4)?.try_into()?);
                    self.push(Value::Int(v as i64))?
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64))?
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(v as i64))?
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        self.u32()? as usize
                    };
                    let b = self.take(n)?;
                    let v = if n <= 8 {
                        let mut buf = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                            [0xffu8; 8]
                        } else {
                            [0u8; 8]
                        };
                        buf[..n].copy_from_slice(b);
                        Value::Int(i64::from_le_bytes(buf))
                    } else {
                        Value::BigInt(b.into())
                    };
                    self.push(v)?
                }
                b'I' | b'L' => {
                    let s = self.line()?.trim_end_matches('L');
                    let v = match s {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        _ => Value::Int(
                            s.parse()
                                .with_context(|| format!("bad pickle integer `{s}`"))?,
                        ),
                    };
                    self.push(v)?
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take(8)?.try_into()?);
                    self.push(Value::Float(v))?
                }
                b'F' => {
                    let s = self.line()?;
                    self.push(Value::Float(
                        s.parse()
                            .with_context(|| format!("bad pickle float `{s}`"))?,
                    ))?
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.u32()? as usize,
                        0x8c => self.u8()? as usize,
                        _ => self.len_u64()?,
                    };
                    let s = Self::utf8(self.take(n)?)?;
                    self.push(Value::Str(s.into()))?
                }
                b'V' => {
                    let s = self.line()?.to_string();
                    self.push(Value::Str(s.into()))?
                }
                b'T' | b'U' | b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'T' | b'B' => self.u32()? as usize,
                        b'U' | b'C' => self.u8()? as usize,
                        _ => self.len_u64()?,
                    };
                    let b = self.take(n)?.to_vec();
                    // Python-2 strings (T/U) are bytes; keep text when it is UTF-8.
                    let v = match op {
                        b'T' | b'U' => String::from_utf8(b)
                            .map(|s| Value::Str(s.into()))
                            .unwrap_or_else(|e| Value::Bytes(e.into_bytes().into())),
                        _ => Value::Bytes(b.into()),
                    };
                    self.push(v)?
                }
                b'S' => {
                    let s = self.line()?;
                    let s = s.trim_matches(|c| c == '\'' || c == '"').to_string();
                    self.push(Value::Str(s.into()))?
                }
                b')' => self.push(Value::Tuple(Rc::new(vec![])))?,
                b']' => self.push(Value::List(Rc::new(RefCell::new(vec![]))))?,
                b'}' => self.push(Value::Dict(Rc::new(RefCell::new(vec![]))))?,
                0x8f => self.push(Value::Inert("set"))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(Rc::new(items)))?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n
                        || self.marks.last().is_some_and(|&m| m > self.stack.len() - n)
                    {
                        bail!("pickle TUPLE{n} needs {n} items");
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Value::Tuple(Rc::new(items)))?
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(Rc::new(RefCell::new(items))))?
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let d = pairs(items)?;
                    self.push(Value::Dict(Rc::new(RefCell::new(d))))?
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![(k, v)])?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let d = pairs(items)?;
                    self.set_items(d)?
                }
                0x90 => {
                    // ADDITEMS (sets): contents are irrelevant to checkpoints.
                    self.pop_mark()?;
                }
                0x91 => {
                    self.pop_mark()?;
                    self.push(Value::Inert("frozenset"))?
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Value::Global(format!("{module}.{name}").into()))?
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module.as_str(), name.as_str()) {
                        (Some(m), Some(n)) => {
                            self.push(Value::Global(format!("{m}.{n}").into()))?
                        }
                        _ => bail!("STACK_GLOBAL needs two strings"),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let v = call(&f, &args)?;
                    self.push(v)?
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = call(&cls, &args)?;
                    self.push(v)?
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = call(&cls, &args)?;
                    self.push(v)?
                }
                b'i' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let args = self.pop_mark()?;
                    let g = Value::Global(format!("{module}.{name}").into());
                    let v = call(&g, &Value::Tuple(Rc::new(args)))?;
                    self.push(v)?
                }
                b'o' => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        bail!("pickle OBJ without a class");
                    }
                    let cls = items.remove(0);
                    let v = call(&cls, &Value::Tuple(Rc::new(items)))?;
                    self.push(v)?
                }
                b'b' => {
                    // BUILD: OrderedDict `_metadata`, numpy dtype state... nothing we keep.
                    let _state = self.pop()?;
                    self.top()?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = persistent_load(&pid)?;
                    if let Value::Storage(s) = &v {
                        self.storages.push(s.clone());
                    }
                    self.push(v)?
                }
                b'P' => {
                    let s = self.line()?.to_string();
                    bail!("text persistent id `{s}` is not a torch storage");
                }
                b'q' => {
                    let i = self.u8()? as u32;
                    let v = self.top()?.clone();
                    self.memo.insert(i, v);
                }
                b'r' => {
                    let i = self.u32()?;
                    let v = self.top()?.clone();
                    self.memo.insert(i, v);
                }
                b'p' => {
                    let i: u32 = self.line()?.parse().context("bad PUT index")?;
                    let v = self.top()?.clone();
                    self.memo.insert(i, v);
                }
                0x94 => {
                    let i = self.memo.len() as u32;
                    let v = self.top()?.clone();
                    self.memo.insert(i, v);
                }
                b'h' => {
                    let i = self.u8()? as u32;
                    let v = self.memo_get(i)?;
                    self.push(v)?
                }
                b'j' => {
                    let i = self.u32()?;
                    let v = self.memo_get(i)?;
                    self.push(v)?
                }
                b'g' => {
                    let i: u32 = self.line()?.parse().context("bad GET index")?;
                    let v = self.memo_get(i)?;
                    self.push(v)?
                }
                0x82..=0x84 => bail!(
                    "pickle uses the extension registry (EXT opcodes), which is not supported"
                ),
                0x97 => {
                    bail!("pickle uses out-of-band buffers (NEXT_BUFFER), which is not supported")
                }
                0x98 => {}
                _ => bail!("unknown pickle opcode 0x{op:02x} at offset {at}"),
            }
        }
    }

    fn append(&mut self, items: Vec<Value>) -> Result<()> {
        match self.top()? {
            Value::List(l) => {
                l.borrow_mut().extend(items);
                Ok(())
            }
            Value::Opaque(_) | Value::Inert(_) => Ok(()),
            other => bail!("pickle APPEND to a {}", other.type_name()),
        }
    }

    fn set_items(&mut self, kv: Vec<(Value, Value)>) -> Result<()> {
        match self.top()? {
            Value::Dict(d) => {
                // Duplicate keys are kept (no O(n^2) scan on hostile input); a state dict with a
                // repeated key is refused later.
                d.borrow_mut().extend(kv);
                Ok(())
            }
            Value::Opaque(_) | Value::Inert(_) => Ok(()),
            other => bail!("pickle SETITEM on a {}", other.type_name()),
        }
    }
}

fn pairs(items: Vec<Value>) -> Result<Vec<(Value, Value)>> {
    if items.len() % 2 != 0 {
        bail!("pickle dict has an odd number of items");
    }
    let mut it = items.into_iter();
    let mut out = vec![];
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

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
fn call(f: &Value, args: &Value) -> Result<Value> {
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

fn persistent_load(pid: &Value) -> Result<Value> {
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
pub struct Parsed {
    pub value: Value,
    /// Bytes consumed, up to and including STOP.
    pub len: usize,
    /// Every storage a persistent id named.
    pub storages: Vec<Rc<StorageRef>>,
}

/// Parse one pickle starting at `data[0]`.
pub fn parse(data: &[u8]) -> Result<Parsed> {
    let mut vm = Vm {
        data,
        pos: 0,
        stack: vec![],
        marks: vec![],
        memo: HashMap::new(),
        storages: vec![],
    };
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
