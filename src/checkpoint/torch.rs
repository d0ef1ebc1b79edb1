//! torch.save containers: the zip archive (torch >= 1.6) and the legacy stream (official files).

use super::pickle::{self, StorageRef, TensorRef, Value};
use super::store::{Buf, Entry, Format, Store};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

/// torch's legacy magic number 0x1950a86a20f9469cfc6c, as little-endian bytes.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// Pick the state dict out of a checkpoint object: `obj['model']` (official files, DDP saves),
/// `obj['state_dict']`, or the object itself (HF `pytorch_model.bin`). Also returns the scalar
/// items of `hps` for display.
fn state_dict(top: &Value) -> Result<(Value, BTreeMap<String, String>)> {
    let mut meta = BTreeMap::new();
    if let Some(h) = top.get("hps") {
        pickle::scalar_items(&h, "hps", &mut meta, 0);
    }
    if let Some(step) = top.get("step").and_then(|s| s.as_usize()) {
        meta.insert("step".into(), step.to_string());
    }
    for k in ["model", "state_dict"] {
        if let Some(m) = top.get(k) {
            return Ok((m, meta));
        }
    }
    Ok((top.clone(), meta))
}

/// The official loader strips a leading `module.` (DistributedDataParallel saves).
fn strip_module(k: String) -> String {
    match k.strip_prefix("module.") {
        Some(s) => s.to_string(),
        None => k,
    }
}

/// Where each root storage's bytes are: (buffer, byte range).
type Located = HashMap<String, (Arc<Buf>, (usize, usize))>;

fn build_entries(
    path: &Path,
    entries: Vec<(String, Rc<TensorRef>)>,
    located: &Located,
) -> Result<BTreeMap<String, Entry>> {
    let file = Arc::new(path.to_path_buf());
    let mut out = BTreeMap::new();
    for (k, t) in entries {
        let st: &StorageRef = &t.storage;
        let (root, view_off) = match &st.view {
            Some((_, off, _)) => (&st.key, *off),
            None => (&st.key, 0),
        };
        let (buf, range) = located.get(root).with_context(|| {
            format!(
                "{}: tensor `{k}` uses storage `{root}`, which has no data",
                path.display()
            )
        })?;
        let offset = t
            .offset
            .checked_add(view_off)
            .with_context(|| format!("{}: tensor `{k}`: offset overflows", path.display()))?;
        let e = Entry::new(
            st.dtype,
            t.shape.clone(),
            Some(t.stride.clone()),
            buf.clone(),
            *range,
            offset,
            file.clone(),
        )
        .with_context(|| format!("{}: tensor `{k}`", path.display()))?;
        let k = strip_module(k);
        if out.insert(k.clone(), e).is_some() {
            bail!(
                "{}: key `{k}` appears twice (once with a `module.` prefix?)",
                path.display()
            );
        }
    }
    Ok(out)
}

/// Root storages (not views) named anywhere in the pickle, with dtype and element count; a
/// storage named twice with different types or sizes is an error.
fn root_storages(
    storages: &[Rc<StorageRef>],
    path: &Path,
) -> Result<HashMap<String, (candle_core::DType, usize)>> {
    let mut m: HashMap<String, (candle_core::DType, usize)> = HashMap::new();
    for s in storages {
        let v = (s.dtype, s.numel);
        if let Some(old) = m.insert(s.key.clone(), v) {
            if old != v {
                bail!(
                    "{}: storage `{}` is declared as {old:?} and as {v:?}",
                    path.display(),
                    s.key
                );
            }
        }
    }
    Ok(m)
}

pub fn open_legacy(path: &Path, buf: Arc<Buf>) -> Result<Store> {
    let data = buf.bytes();
    let ctx = || {
        format!(
            "{} is not a readable legacy torch checkpoint",
            path.display()
        )
    };
    let mut pos = 0usize;
    let mut next = |what: &str| -> Result<pickle::Parsed> {
        let p = pickle::parse(&data[pos..])
            .with_context(|| format!("reading the {what} pickle at offset {pos}"))?;
        pos += p.len;
        Ok(p)
    };
    let magic = next("magic number").with_context(ctx)?;
    match magic.value {
        Value::BigInt(b) if *b == LEGACY_MAGIC[..] => {}
        _ => bail!(
            "{}: wrong magic number (not a torch.save legacy file)",
            path.display()
        ),
    }
    let proto = next("protocol").with_context(ctx)?;
    if !matches!(proto.value, Value::Int(1001)) {
        bail!(
            "{}: unsupported legacy protocol {:?}",
            path.display(),
            proto.value
        );
    }
    let sys = next("sys_info").with_context(ctx)?;
    if let Some(Value::Bool(false)) = sys.value.get("little_endian") {
        bail!(
            "{}: big-endian checkpoints are not supported",
            path.display()
        );
    }
    let main = next("main").with_context(ctx)?;
    let keys = next("storage keys").with_context(ctx)?;
    let keys: Vec<String> = keys
        .value
        .items()
        .with_context(|| format!("{}: the storage key list is not a list", path.display()))?
        .into_iter()
        .map(|k| match k {
            Value::Str(s) => Ok(s.to_string()),
            Value::Int(i) => Ok(i.to_string()),
            other => bail!("{}: storage key is a {}", path.display(), other.type_name()),
        })
        .collect::<Result<_>>()?;
    let roots = root_storages(&main.storages, path)?;
    let mut located: Located = HashMap::new();
    for k in &keys {
        let (dtype, numel) = *roots.get(k).with_context(|| {
            format!(
                "{}: storage `{k}` is listed but never described",
                path.display()
            )
        })?;
        let es = dtype.size_in_bytes();
        let hdr = data.get(pos..pos + 8).with_context(|| {
            format!(
                "{}: truncated before storage `{k}` at offset {pos}",
                path.display()
            )
        })?;
        let n = u64::from_le_bytes(hdr.try_into()?);
        pos += 8;
        if n != numel as u64 {
            bail!(
                "{}: storage `{k}` holds {n} elements in the file but the pickle declares {numel}",
                path.display()
            );
        }
        let bytes = numel.checked_mul(es).context("storage size overflows")?;
        if bytes > data.len() - pos {
            bail!(
                "{}: storage `{k}` needs {bytes} bytes at offset {pos}, the file has {} left (truncated?)",
                path.display(),
                data.len() - pos
            );
        }
        located.insert(k.clone(), (buf.clone(), (pos, pos + bytes)));
        pos += bytes;
    }
    let (sd, metadata) = state_dict(&main.value)?;
    let entries =
        pickle::state_dict_entries(&sd).with_context(|| format!("{}: `model`", path.display()))?;
    let entries = build_entries(path, entries, &located)?;
    Ok(Store {
        path: path.to_path_buf(),
        format: Format::TorchLegacy,
        entries,
        metadata,
    })
}

pub fn open_zip(path: &Path, buf: Arc<Buf>) -> Result<Store> {
    let data = buf.bytes();
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(data))
        .with_context(|| format!("{} is not a readable zip archive", path.display()))?;
    let pkls: Vec<String> = z
        .file_names()
        .filter(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .map(str::to_string)
        .collect();
    let pkl = match pkls.as_slice() {
        [one] => one.clone(),
        [] => bail!(
            "{}: zip archive has no `<folder>/data.pkl`; not a torch checkpoint",
            path.display()
        ),
        _ => bail!(
            "{}: zip archive has several data.pkl files: {pkls:?}",
            path.display()
        ),
    };
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let pbytes =
        read_member(&mut z, &pkl, None).with_context(|| format!("{}: {pkl}", path.display()))?;
    let parsed = pickle::parse(&pbytes)
        .with_context(|| format!("{}: {pkl} is not a valid pickle", path.display()))?;
    let roots = root_storages(&parsed.storages, path)?;
    let mut located: Located = HashMap::new();
    for (k, (dtype, numel)) in &roots {
        let name = format!("{prefix}data/{k}");
        let want = numel
            .checked_mul(dtype.size_in_bytes())
            .context("storage size overflows")?;
        let (stored, start, size) = match z.by_name(&name) {
            Ok(f) => (
                f.compression() == zip::CompressionMethod::Stored,
                f.data_start(),
                f.size(),
            ),
            Err(e) => bail!(
                "{}: storage `{k}` has no data file `{name}` ({e})",
                path.display()
            ),
        };
        if size != want as u64 {
            bail!(
                "{}: `{name}` holds {size} bytes but storage `{k}` needs {want} ({numel} x {dtype:?})",
                path.display()
            );
        }
        let start = usize::try_from(start).context("offset overflows")?;
        if stored && start.checked_add(want).is_some_and(|e| e <= data.len()) {
            located.insert(k.clone(), (buf.clone(), (start, start + want)));
        } else {
            let v = read_member(&mut z, &name, Some(want))
                .with_context(|| format!("{}: {name}", path.display()))?;
            let b = Arc::new(Buf::Owned(v));
            located.insert(k.clone(), (b, (0, want)));
        }
    }
    let (sd, metadata) = state_dict(&parsed.value)?;
    let entries = pickle::state_dict_entries(&sd)
        .with_context(|| format!("{}: state dict", path.display()))?;
    let entries = build_entries(path, entries, &located)?;
    Ok(Store {
        path: path.to_path_buf(),
        format: Format::TorchZip,
        entries,
        metadata,
    })
}

/// Read one zip member, never more than `limit` bytes (or its compressed size x 1100, the
/// deflate ratio bound, when no limit is known), so a lying header cannot make us allocate.
fn read_member(
    z: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>,
    name: &str,
    limit: Option<usize>,
) -> Result<Vec<u8>> {
    let f = z
        .by_name(name)
        .with_context(|| format!("missing `{name}`"))?;
    let cap = match f.compression() {
        zip::CompressionMethod::Stored => f.compressed_size(),
        _ => f.compressed_size().saturating_mul(1100),
    };
    let cap = limit.map_or(cap, |l| (l as u64).min(cap));
    let mut v = Vec::new();
    f.take(cap.saturating_add(1)).read_to_end(&mut v)?;
    if limit.is_some_and(|l| v.len() != l) {
        bail!(
            "`{name}` decompresses to {} bytes, expected {}",
            v.len(),
            limit.unwrap_or(0)
        );
    }
    Ok(v)
}
