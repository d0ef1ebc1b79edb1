//! Labels: artist/genre id lists, the `y` rows, timing bins, the lyric tokenizer and window.
//!
//! Everything here follows the official openai/jukebox code (`data/labels.py`,
//! `data/artist_genre_processor.py`, `data/text_processor.py`, `prior/conditioners.py`); where a
//! detail decides bit-exact parity (fp32 timing bins, the fp32 lyric midpoint, unidecode 1.4.0,
//! Python `lower()`), it is replicated and tested against `tests/fixtures/reference/`.

pub mod ids;
pub mod labeller;
pub mod lyrics;
mod search;
pub mod timing;
mod unidecode_table;

/// The name of label id 0 in every list: artist and genre "unknown" (official `ids` files).
pub const UNKNOWN: &str = "unknown";

pub use ids::{norm_v2, Field, IdKind, IdSet};
pub use labeller::{BaseLabel, Labeller, Meta, WindowLabel};
pub use lyrics::{relevant_lyric_tokens, to_ascii, Arith, LyricVocab, LyricWindow};
pub use search::display_name;
pub use timing::{timing_bins, timing_bins_for, timing_bins_rows, TimingBins};
