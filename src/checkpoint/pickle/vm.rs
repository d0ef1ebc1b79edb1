//! The pickle virtual machine: opcodes → [`Value`]s. Nothing is executed; see the parent module.
//!
//! ## Container lifetimes
//!
//! Lists, dicts and tuples are `Rc`s, and a pickle can make a container that contains itself
//! (`d = {}; d['x'] = d`: a memo GET or DUP, then SETITEM). An `Rc` cycle is never freed, and
//! walking it (`Debug`, a consumer that recurses) never ends. A pickle can also nest containers a
//! million deep (`N` then a million TUPLE1s is 1 MB), and dropping that recursively overflows the
//! stack. So the VM keeps a strong reference to every container it creates
//! ([`Vm::containers`], in creation order) and, when it stops:
//!
//! - on success it walks the result (iteratively): a container that contains itself, or nesting
//!   deeper than [`MAX_NESTING`], is refused with an error. Real checkpoints (state dicts,
//!   optimizer state, hyperparameters) never hold either, and refusing keeps every value this
//!   module hands out a finite tree or DAG that any consumer can walk or drop safely. (The other
//!   option, replacing the back-reference with a placeholder, would silently change the data.)
//! - in every case it then empties each container the result does not reach (that breaks any
//!   cycle left in the memo or popped off the stack) and releases its references newest first.
//!   Because it still holds every container while it empties them, no drop recurses more than one
//!   level, however deep the garbage was.
//!
//! On an error the result reaches nothing, so everything is emptied and freed.

use super::{call, persistent_load, StorageRef, Value};
use anyhow::{bail, Context, Result};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

pub(super) struct Vm<'a> {
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
    pub(super) stack: Vec<Value>,
    pub(super) marks: Vec<usize>,
    pub(super) memo: HashMap<u32, Value>,
    /// Every storage named by a persistent id, in order of appearance.
    pub(super) storages: Vec<Rc<StorageRef>>,
    /// Every list, dict and tuple pushed so far, in creation order (see the module docs), and
    /// their addresses. Holding them keeps addresses unique for the VM's lifetime.
    pub(super) containers: Vec<Value>,
    pub(super) tracked: HashSet<usize>,
}

/// Deepest nesting of lists, dicts and tuples accepted in a result. Checkpoints nest a handful of
/// levels (`{'model': OrderedDict{key: tensor(storage, size, stride)}}`).
pub const MAX_NESTING: usize = 256;

/// Most containers one pickle may create. A state dict makes about six per tensor; this allows
/// over half a million tensors while bounding the VM's bookkeeping (about 100 bytes each).
pub const MAX_CONTAINERS: usize = 1 << 22;

/// The address of a container's shared allocation; `None` for scalars.
fn addr(v: &Value) -> Option<usize> {
    match v {
        Value::Tuple(t) => Some(Rc::as_ptr(t) as *const u8 as usize),
        Value::List(l) => Some(Rc::as_ptr(l) as *const u8 as usize),
        Value::Dict(d) => Some(Rc::as_ptr(d) as *const u8 as usize),
        _ => None,
    }
}

/// The `i`-th value a container holds directly (a dict's keys and values alternate).
fn child(v: &Value, i: usize) -> Option<Value> {
    match v {
        Value::Tuple(t) => t.get(i).cloned(),
        Value::List(l) => l.borrow().get(i).cloned(),
        Value::Dict(d) => d.borrow().get(i / 2).map(|(k, v)| {
            if i.is_multiple_of(2) {
                k.clone()
            } else {
                v.clone()
            }
        }),
        _ => None,
    }
}

/// Refuse a result that contains itself or nests deeper than [`MAX_NESTING`]; return the
/// addresses of the containers it reaches. Iterative, each container visited once.
fn check_result(root: &Value) -> Result<HashSet<usize>> {
    const ON_PATH: usize = usize::MAX;
    // address → ON_PATH while being walked, then the height of its subtree.
    let mut state: HashMap<usize, usize> = HashMap::new();
    let Some(a) = addr(root) else {
        return Ok(HashSet::new());
    };
    let too_deep = || {
        anyhow::anyhow!(
            "pickle nests lists, dicts or tuples more than {MAX_NESTING} deep; a checkpoint never \
             needs that (hostile or corrupt file)"
        )
    };
    state.insert(a, ON_PATH);
    // (container, next child to visit, greatest height among its children so far)
    let mut path: Vec<(Value, usize, usize)> = vec![(root.clone(), 0, 0)];
    while let Some((node, next, below)) = path.last_mut() {
        if let Some(c) = child(node, *next) {
            *next += 1;
            let Some(ca) = addr(&c) else { continue };
            match state.get(&ca) {
                Some(&ON_PATH) => bail!(
                    "pickle builds a {} that contains itself (a reference cycle); a checkpoint \
                     never holds one (hostile or corrupt file)",
                    c.type_name()
                ),
                Some(&h) => *below = (*below).max(h),
                None => {
                    if path.len() >= MAX_NESTING {
                        return Err(too_deep());
                    }
                    state.insert(ca, ON_PATH);
                    path.push((c, 0, 0));
                }
            }
        } else {
            let height = *below + 1;
            let (node, _, _) = path.pop().expect("path is not empty");
            if height > MAX_NESTING {
                return Err(too_deep());
            }
            state.insert(addr(&node).expect("only containers are walked"), height);
            if let Some((_, _, below)) = path.last_mut() {
                *below = (*below).max(height);
            }
        }
    }
    Ok(state.into_keys().collect())
}

impl<'a> Vm<'a> {
    /// A VM at the start of the pickle `data`.
    pub(super) fn new(data: &'a [u8]) -> Self {
        Vm {
            data,
            pos: 0,
            stack: vec![],
            marks: vec![],
            memo: HashMap::new(),
            storages: vec![],
            containers: vec![],
            tracked: HashSet::new(),
        }
    }

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
        // Every container reaches the stack when it is made (or returned by a call).
        if let Some(a) = addr(&v) {
            if self.tracked.insert(a) {
                if self.containers.len() >= MAX_CONTAINERS {
                    bail!(
                        "pickle creates more than {MAX_CONTAINERS} lists, dicts and tuples; a \
                         checkpoint never needs that many"
                    );
                }
                self.containers.push(v.clone());
            }
        }
        self.stack.push(v);
        Ok(())
    }

    /// Run the pickle, check the result (module docs) and free everything it does not reach.
    pub(super) fn run(&mut self) -> Result<Value> {
        let r = self.run_ops();
        self.finish(r)
    }

    fn finish(&mut self, r: Result<Value>) -> Result<Value> {
        match r.and_then(|v| check_result(&v).map(|keep| (v, keep))) {
            Ok((v, keep)) => {
                self.release(&keep);
                Ok(v)
            }
            Err(e) => {
                self.release(&HashSet::new());
                Err(e)
            }
        }
    }

    /// Empty every container not in `keep` and drop the VM's references, newest first. Nothing
    /// is freed recursively: while a container is emptied, the VM still holds all the others.
    fn release(&mut self, keep: &HashSet<usize>) {
        self.stack.clear();
        self.memo.clear();
        for c in &self.containers {
            if addr(c).is_some_and(|a| keep.contains(&a)) {
                continue;
            }
            match c {
                Value::List(l) => drop(std::mem::take(&mut *l.borrow_mut())),
                Value::Dict(d) => drop(std::mem::take(&mut *d.borrow_mut())),
                _ => {}
            }
        }
        // A tuple holds only values made before it, which are still held here: newest first,
        // each free reaches one level down at most.
        while let Some(c) = self.containers.pop() {
            drop(c);
        }
        self.tracked.clear();
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

    fn run_ops(&mut self) -> Result<Value> {
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
    if !items.len().is_multiple_of(2) {
        bail!("pickle dict has an odd number of items");
    }
    let mut it = items.into_iter();
    let mut out = vec![];
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Weak;

    enum W {
        T(Weak<Vec<Value>>),
        L(Weak<RefCell<Vec<Value>>>),
        D(Weak<RefCell<Vec<(Value, Value)>>>),
    }

    impl W {
        fn alive(&self) -> bool {
            match self {
                W::T(w) => w.strong_count() > 0,
                W::L(w) => w.strong_count() > 0,
                W::D(w) => w.strong_count() > 0,
            }
        }
    }

    /// Run `data`, note a weak reference to every container the VM made, then finish as `run`
    /// does. Returns the result and how many containers are still alive once it is dropped.
    fn run_and_count_survivors(data: &[u8]) -> (String, usize) {
        let mut vm = Vm::new(data);
        let r = vm.run_ops();
        let weak: Vec<W> = vm
            .containers
            .iter()
            .map(|c| match c {
                Value::Tuple(t) => W::T(Rc::downgrade(t)),
                Value::List(l) => W::L(Rc::downgrade(l)),
                Value::Dict(d) => W::D(Rc::downgrade(d)),
                _ => unreachable!("only containers are tracked"),
            })
            .collect();
        assert!(!weak.is_empty());
        let r = vm.finish(r);
        let shown = match &r {
            Ok(v) => v.type_name(),
            Err(e) => format!("error: {e:#}"),
        };
        drop(r);
        drop(vm);
        (shown, weak.iter().filter(|w| w.alive()).count())
    }

    /// `d = {}; d[1] = d; d[2] = (d,)`, then `tail`.
    fn cyclic_dict_then(tail: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 2, b'}', b'q', 0, b'K', 1, b'h', 0, b's'];
        p.extend_from_slice(&[b'K', 2, b'h', 0, 0x85, b's']);
        p.extend_from_slice(tail);
        p
    }

    #[test]
    fn every_container_is_freed_on_success_error_and_refusal() {
        for (tail, want) in [
            // popped garbage, result None
            (&b"0N."[..], "None"),
            // garbage left on the stack under a list result
            (b"]K\x05a.", "list"),
            // the parse fails after the cycle was made
            (b"\xff", "error: unknown pickle opcode"),
            // the cycle is the result
            (b".", "error: pickle builds a dict that contains itself"),
        ] {
            let (shown, alive) = run_and_count_survivors(&cyclic_dict_then(tail));
            assert!(shown.starts_with(want), "{tail:?}: {shown}");
            assert_eq!(alive, 0, "{tail:?}: {alive} container(s) leaked");
        }
    }

    /// The input the fuzzer's leak detector flagged: a legacy checkpoint whose `sys_info` pickle
    /// DUPs a dict into itself and then fails. Every container must still be freed.
    #[test]
    fn the_fuzzer_leak_input_leaks_nothing() {
        let file = include_bytes!("../../../fuzz/regressions/legacy_pickle/leak-rc-cycle-dict-dup");
        // magic number (15 bytes) and protocol (6 bytes) pickles, then sys_info.
        assert_eq!(&file[21..23], b"\x80\x02");
        let (shown, alive) = run_and_count_survivors(&file[21..]);
        assert!(shown.starts_with("error: "), "{shown}");
        assert_eq!(alive, 0, "{alive} container(s) leaked");
    }

    #[test]
    fn the_result_keeps_its_containers() {
        // ([None], {1: [None]}) with the list shared.
        let p = b"\x80\x02]Naq\x00}K\x01h\x00s\x86.";
        let mut vm = Vm::new(p);
        let v = vm.run().unwrap();
        let Value::Tuple(t) = &v else { panic!() };
        let (Value::List(l), Value::Dict(d)) = (&t[0], &t[1]) else {
            panic!()
        };
        assert_eq!(l.borrow().len(), 1);
        let Value::List(l2) = &d.borrow()[0].1 else {
            panic!()
        };
        assert!(Rc::ptr_eq(l, l2));
        // Held by their parents only: the VM let go of its references.
        assert_eq!(Rc::strong_count(t), 1);
        assert_eq!(Rc::strong_count(l), 2);
        assert_eq!(Rc::strong_count(d), 1);
    }

    #[test]
    fn nesting_limit_is_exact() {
        let nest = |n: usize| {
            let mut p = vec![0x80, 2, b'N'];
            p.extend(std::iter::repeat_n(0x85, n));
            p.push(b'.');
            p
        };
        assert!(crate::checkpoint::pickle::parse(&nest(MAX_NESTING)).is_ok());
        let e = format!(
            "{:#}",
            crate::checkpoint::pickle::parse(&nest(MAX_NESTING + 1)).unwrap_err()
        );
        assert!(e.contains("more than 256 deep"), "{e}");
    }
}
