//! The library's error type at its public boundary ([`crate::Jukebox`]).
//!
//! Inside the library errors travel as `anyhow::Error`, each layer adding context ("loading
//! models/default: ..."). The problems a caller may want to handle (an unknown label name, a
//! checkpoint whose tensors do not fit, audio that cannot be used, a run stopped by Ctrl-C) are
//! raised as the typed errors below where they are found; anyhow keeps them through that context.
//! [`Error`] then gives a caller a [`ErrorKind`] to match, the typed details, and the whole message.

use std::fmt;
use std::path::PathBuf;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, for a caller that handles some errors differently from others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An artist or genre name that the model does not know ([`UnknownLabel`]).
    UnknownLabel,
    /// A checkpoint whose tensors do not match the model ([`TensorMismatch`], or
    /// [`ModelMismatch`] when several components of a model directory do not).
    Checkpoint,
    /// Audio that cannot be decoded or used ([`BadAudio`]).
    Audio,
    /// A run stopped before it finished ([`Interrupted`]); what it did is saved.
    Interrupted,
    /// A tensor operation failed (shapes, devices, memory).
    Tensor,
    /// Reading or writing a file failed.
    Io,
    /// Anything else: bad arguments, configs, corrupt state; the message says what.
    Other,
}

/// The library's error: a kind, and the full message chain of what happened.
#[derive(thiserror::Error)]
#[error("{inner:#}")]
pub struct Error {
    kind: ErrorKind,
    inner: anyhow::Error,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The typed details of this error, if it carries `T` (e.g. [`UnknownLabel`]).
    pub fn details<T: std::error::Error + Send + Sync + 'static>(&self) -> Option<&T> {
        self.inner.chain().find_map(|e| e.downcast_ref::<T>())
    }

    /// The error with its context, for code that works with `anyhow`.
    pub fn into_anyhow(self) -> anyhow::Error {
        self.inner
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} error: {:#}", self.kind, self.inner)
    }
}

impl From<anyhow::Error> for Error {
    fn from(inner: anyhow::Error) -> Self {
        // A typed error anywhere in the chain decides the kind, the innermost cause otherwise.
        let kind = inner
            .chain()
            .find_map(|e| {
                if e.is::<UnknownLabel>() {
                    Some(ErrorKind::UnknownLabel)
                } else if e.is::<TensorMismatch>() || e.is::<ModelMismatch>() {
                    Some(ErrorKind::Checkpoint)
                } else if e.is::<BadAudio>() {
                    Some(ErrorKind::Audio)
                } else if e.is::<Interrupted>() {
                    Some(ErrorKind::Interrupted)
                } else {
                    None
                }
            })
            .or_else(|| {
                inner.chain().find_map(|e| {
                    if e.is::<candle_core::Error>() {
                        Some(ErrorKind::Tensor)
                    } else if e.is::<std::io::Error>() {
                        Some(ErrorKind::Io)
                    } else {
                        None
                    }
                })
            })
            .unwrap_or(ErrorKind::Other);
        Self { kind, inner }
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        anyhow::Error::new(e).into()
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        anyhow::Error::new(e).into()
    }
}

/// Our error inside candle-style model code, whose `new` and `forward` return candle's
/// `Result`. Candle's error keeps only a message, so this carries the whole chain as text; only
/// untyped problems (a config, a timing label) cross here, because typed ones (tensors, labels,
/// audio) are checked before a model is built or run.
pub fn into_candle(e: anyhow::Error) -> candle_core::Error {
    struct Chain(anyhow::Error);
    impl fmt::Display for Chain {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{:#}", self.0)
        }
    }
    candle_core::Error::Wrapped(Box::new(Chain(e)))
}

/// A label name not in the model's lists, with the nearest names it has.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct UnknownLabel {
    /// `artist` or `genre`.
    pub field: String,
    /// The name as given.
    pub name: String,
    /// The nearest names the model knows, best first (may be empty).
    pub nearest: Vec<String>,
    message: String,
}

impl UnknownLabel {
    /// `message` is the full text shown to the user (it names the label and its suggestions).
    pub fn new(field: &str, name: &str, nearest: Vec<String>, message: String) -> Self {
        Self {
            field: field.to_string(),
            name: name.to_string(),
            nearest,
            message,
        }
    }
}

/// A checkpoint's tensors against the model's expected key/shape table: every missing,
/// unexpected and mis-shaped key, named.
#[derive(Debug, Clone, Default, PartialEq, thiserror::Error)]
pub struct TensorMismatch {
    /// Expected keys the checkpoint lacks, with the expected shape.
    pub missing: Vec<(String, Vec<usize>)>,
    /// Keys the model does not use, with their shape.
    pub unexpected: Vec<(String, Vec<usize>)>,
    /// Keys present with another shape: (key, expected, found).
    pub mis_shaped: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// True when no expected key is present at all: most likely another kind of checkpoint.
    pub nothing_expected_present: bool,
}

impl TensorMismatch {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mis_shaped.is_empty()
    }
}

impl fmt::Display for TensorMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Mis-shaped keys first (the most telling), then a bounded listing of the rest.
        const SHOWN: usize = 60;
        let lines: Vec<String> = self
            .mis_shaped
            .iter()
            .map(|(k, s, g)| format!("  shape       {k}  expected {s:?}, found {g:?}"))
            .chain(
                self.missing
                    .iter()
                    .map(|(k, s)| format!("  missing     {k}  expected {s:?}")),
            )
            .chain(
                self.unexpected
                    .iter()
                    .map(|(k, s)| format!("  unexpected  {k}  found {s:?}")),
            )
            .collect();
        write!(
            f,
            "{} missing, {} unexpected and {} mis-shaped tensors:\n{}",
            self.missing.len(),
            self.unexpected.len(),
            self.mis_shaped.len(),
            lines[..lines.len().min(SHOWN)].join("\n")
        )?;
        if lines.len() > SHOWN {
            write!(f, "\n  ... and {} more", lines.len() - SHOWN)?;
        }
        if self.nothing_expected_present {
            write!(
                f,
                "\nnone of the expected tensors is present: this looks like a different kind of \
                 checkpoint (see `jukebox inspect FILE` for what it holds)"
            )?;
        }
        Ok(())
    }
}

/// Tensor mismatches in several components of a model directory, each with its component's
/// name ("vqvae", "prior level 2"); the message lists them component by component.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ModelMismatch {
    pub components: Vec<(String, TensorMismatch)>,
    message: String,
}

impl ModelMismatch {
    pub fn new(components: Vec<(String, TensorMismatch)>, message: String) -> Self {
        Self {
            components,
            message,
        }
    }
}

/// Audio that cannot be decoded or used (corrupt, unsupported, empty, unreadable).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct BadAudio {
    /// The file.
    pub path: PathBuf,
    message: String,
}

impl BadAudio {
    /// `message` is the full text shown to the user (it names the file).
    pub fn new(path: impl Into<PathBuf>, message: String) -> Self {
        Self {
            path: path.into(),
            message,
        }
    }
}

/// A run stopped before it finished (Ctrl-C); what it finished is saved and resumes.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Interrupted {
    /// Where the run saved its state, when it has one folder.
    pub run_dir: Option<PathBuf>,
    message: String,
}

impl Interrupted {
    pub fn new(run_dir: Option<PathBuf>, message: String) -> Self {
        Self { run_dir, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn typed_errors_keep_their_kind_and_details_through_context() {
        let raw: anyhow::Result<()> = Err(UnknownLabel::new(
            "genre",
            "rokc",
            vec!["rock".into()],
            "unknown genre `rokc`; nearest names: rock".into(),
        )
        .into());
        let e: Error = raw.context("planning the study").unwrap_err().into();
        assert_eq!(e.kind(), ErrorKind::UnknownLabel);
        assert_eq!(e.details::<UnknownLabel>().unwrap().nearest, vec!["rock"]);
        assert_eq!(
            e.to_string(),
            "planning the study: unknown genre `rokc`; nearest names: rock"
        );
        assert!(e.details::<BadAudio>().is_none());
    }

    #[test]
    fn plain_errors_are_classified_by_their_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e: Error = anyhow::Error::new(io).context("reading x").into();
        assert_eq!(e.kind(), ErrorKind::Io);
        let e: Error = candle_core::Error::Msg("shape".into()).into();
        assert_eq!(e.kind(), ErrorKind::Tensor);
        let e: Error = anyhow::anyhow!("bad flag").into();
        assert_eq!(e.kind(), ErrorKind::Other);
        let e: Error = anyhow::Error::new(Interrupted::new(
            Some("runs/a".into()),
            "sampling in runs/a was interrupted".into(),
        ))
        .into();
        assert_eq!(e.kind(), ErrorKind::Interrupted);
        assert_eq!(e.to_string(), "sampling in runs/a was interrupted");
        // Through candle's error the whole chain survives as text.
        let c = into_candle(anyhow::anyhow!("root").context("outer"));
        assert_eq!(c.to_string(), "outer: root");
    }

    #[test]
    fn a_tensor_mismatch_names_every_key_and_bounds_the_listing() {
        let m = TensorMismatch {
            missing: vec![("b".into(), vec![4])],
            unexpected: vec![("c".into(), vec![1])],
            mis_shaped: vec![("a".into(), vec![2], vec![3])],
            nothing_expected_present: false,
        };
        let s = m.to_string();
        assert!(s.starts_with("1 missing, 1 unexpected and 1 mis-shaped tensors:\n  shape       a  expected [2], found [3]"), "{s}");
        assert!(
            s.contains("  missing     b  expected [4]") && s.contains("  unexpected  c  found [1]")
        );
        let many = TensorMismatch {
            missing: (0..70).map(|i| (format!("k{i}"), vec![1])).collect(),
            nothing_expected_present: true,
            ..Default::default()
        };
        let s = many.to_string();
        assert!(s.contains("  ... and 10 more"), "{s}");
        assert!(s.contains("different kind of checkpoint"), "{s}");
        let e: Error = anyhow::Error::new(many).into();
        assert_eq!(e.kind(), ErrorKind::Checkpoint);
        assert_eq!(e.details::<TensorMismatch>().unwrap().missing.len(), 70);
    }
}
