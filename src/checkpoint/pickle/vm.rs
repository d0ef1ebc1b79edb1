//! The pickle virtual machine: opcodes → [`Value`]s. Nothing is executed; see the parent module.

use super::{call, persistent_load, StorageRef, Value};
use anyhow::{bail, Context, Result};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

pub(super) struct Vm<'a> {
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
    pub(super) stack: Vec<Value>,
    pub(super) marks: Vec<usize>,
    pub(super) memo: HashMap<u32, Value>,
    /// Every storage named by a persistent id, in order of appearance.
    pub(super) storages: Vec<Rc<StorageRef>>,
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

    pub(super) fn run(&mut self) -> Result<Value> {
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
