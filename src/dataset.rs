//! Training corpora: a folder of audio files plus `metadata.csv` (or `.jsonl`) with path, artist,
//! genres and optional lyrics/license/source/author.
//!
//! - [`metadata`]: the file format (CSV/JSONL), parsed with line numbers for errors.
//! - [`vocab`]: `labels/artists.txt` + `labels/genres.txt` (`name;id`, id 0 = `unknown`).
//! - [`corpus`]: [`Corpus::open`], items with label ids, the decoded-audio cache, the split.

pub mod corpus;
pub mod metadata;
pub mod vocab;

pub use corpus::{scan, Corpus, Item, Problem, Scan, Split, Totals, MIN_SECONDS, SAMPLE_RATE};
pub use metadata::{Record, CSV_HEADER, MAX_GENRES};
pub use vocab::{key, Vocab, UNKNOWN};
