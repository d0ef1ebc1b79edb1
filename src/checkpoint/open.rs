//! Opening a checkpoint: the file's first bytes pick the reader. Kept apart from `store` so
//! that the readers (`safetensors_io`, `torch`, `shards`) build a [`Store`] without the store
//! module depending back on them.

use super::store::{Buf, Store};
use anyhow::{bail, Result};
use std::path::Path;

impl Store {
    /// Open a checkpoint file (safetensors, torch zip or legacy torch stream, told apart by their
    /// first bytes), or a directory / index JSON of shards.
    pub fn open(path: &Path) -> Result<Store> {
        if path.is_dir() {
            return super::shards::open_dir(path);
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.ends_with(".index.json") {
            return super::shards::open_index(path);
        }
        let buf = Buf::map(path)?;
        let head = &buf.bytes()[..buf.bytes().len().min(16)];
        if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            super::torch::open_zip(path, buf)
        } else if head.starts_with(&[0x80]) {
            super::torch::open_legacy(path, buf)
        } else if head.len() >= 9 && head[8] == b'{' {
            super::safetensors_io::open(path, buf)
        } else if head.is_empty() {
            bail!("{} is empty: not a checkpoint", path.display())
        } else {
            let what = crate::util::sniff_kind(head)
                .map(|k| format!("it looks like {k}"))
                .unwrap_or_else(|| {
                    format!("it starts with bytes {:02x?}", &head[..head.len().min(8)])
                });
            bail!(
                "{} is not a checkpoint ({what}): expected safetensors, a torch zip (PK..) or a \
                 legacy torch pickle (0x80 ..)",
                path.display()
            )
        }
    }
}
