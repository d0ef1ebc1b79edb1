//! Checkpoints: readers for safetensors, torch zip pickles and legacy (pre-1.6) torch pickles,
//! the HF ↔ official key map, and [`ModelDir`], which turns a model directory into a config plus
//! VarBuilders whose keys are the **official** state-dict keys.
//!
//! Pickles are never executed: see [`pickle`] for the allow-list. Every size in a file is checked
//! against the file length before anything is allocated from it.

pub mod convert;
pub mod hub;
pub mod inspect;
pub mod keys;
pub mod model_dir;
mod open;
pub mod pickle;
pub mod safetensors_io;
pub mod shards;
pub mod store;
pub mod torch;
pub mod validate;
pub mod writer;

pub use keys::{Component, KeyMap};
pub use model_dir::{ComponentTensors, Layout, ModelDir};
pub use safetensors_io::WriteItem;
pub use store::{Entry, Format, Store};
pub use validate::{check_tensors, ShapeRecorder};
