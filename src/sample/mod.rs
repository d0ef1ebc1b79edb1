//! The sampling pipeline: ancestral, primed, continue and upsample across the three levels,
//! windowed as the official `sample.py`, resumable after every window.

pub mod pipeline;

/// The sampling temperature every command defaults to (the official `sample.py` uses 0.99 at
/// every level).
pub const DEFAULT_TEMPERATURE: f64 = 0.99;
pub mod request;
pub mod run;
pub mod state;

pub use pipeline::{run, Outcome, Progress, RunOptions, Summary};
pub use request::{add_levels, continue_run, create_run, fork_take, parse_levels, SampleRequest};
pub use run::{model_identity, ItemSpec, LevelSettings, Mode, Parent, RunSpec};
pub use state::RunState;
pub mod score;
