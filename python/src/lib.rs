//! `jukebox_rs._native`: the Python face of `jukebox::Jukebox`. Arrays in and out are numpy
//! (audio float32, codes int64); errors are `jukebox_rs.JukeboxError` with the CLI's messages;
//! the GIL is released while the model computes (a progress callback takes it back briefly).

use jukebox::sample::{Mode, Progress, SampleRequest};
use jukebox::{Jukebox as Core, Takes as CoreTakes};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::path::PathBuf;

create_exception!(
    _native,
    JukeboxError,
    PyException,
    "A clear error from jukebox-rs: bad input, a missing file, a model that does not fit."
);
create_exception!(
    _native,
    UnknownLabelError,
    JukeboxError,
    "An artist or genre the model does not know; `nearest` lists the closest names it has."
);
create_exception!(
    _native,
    CheckpointError,
    JukeboxError,
    "A checkpoint whose tensors do not match the model (every key is named in the message)."
);
create_exception!(
    _native,
    AudioError,
    JukeboxError,
    "Audio that cannot be decoded or used: corrupt, unsupported, empty or unreadable."
);
create_exception!(
    _native,
    RunInterrupted,
    JukeboxError,
    "A run stopped before it finished; what it did is saved and resumes."
);

/// The library's error as the matching `JukeboxError` subclass, with the CLI's message.
fn err(e: impl Into<jukebox::Error>) -> PyErr {
    use jukebox::error::{ErrorKind, UnknownLabel};
    let e: jukebox::Error = e.into();
    let msg = format!("{e}");
    match e.kind() {
        ErrorKind::UnknownLabel => {
            let pe = UnknownLabelError::new_err(msg);
            if let Some(u) = e.details::<UnknownLabel>() {
                Python::with_gil(|py| {
                    let _ = pe.value(py).setattr("nearest", u.nearest.clone());
                    let _ = pe.value(py).setattr("name", u.name.clone());
                });
            }
            pe
        }
        ErrorKind::Checkpoint => CheckpointError::new_err(msg),
        ErrorKind::Audio => AudioError::new_err(msg),
        ErrorKind::Interrupted => RunInterrupted::new_err(msg),
        _ => JukeboxError::new_err(msg),
    }
}

/// A model, ready to sample, encode and decode.
#[pyclass(module = "jukebox_rs._native", frozen)]
struct Jukebox {
    core: Core,
}

/// Takes of one run: `audio[level]` and `codes[level]` hold one row per take.
#[pyclass(module = "jukebox_rs._native", get_all, frozen)]
struct Takes {
    run_dir: String,
    sample_rate: u32,
    audio: Py<PyDict>,
    codes: Py<PyDict>,
    takes: Py<PyDict>,
}

#[pymethods]
impl Takes {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Takes(run_dir={:?}, levels={})",
            self.run_dir,
            self.audio.bind(py).keys()
        )
    }
}

fn to_py_takes(py: Python<'_>, t: CoreTakes) -> PyResult<Takes> {
    let audio = PyDict::new(py);
    for (l, rows) in t.audio {
        let list = PyList::empty(py);
        for r in rows {
            list.append(r.into_pyarray(py))?;
        }
        audio.set_item(l, list)?;
    }
    let codes = PyDict::new(py);
    for (l, rows) in t.codes {
        let list = PyList::empty(py);
        for r in rows {
            list.append(r.into_pyarray(py))?;
        }
        codes.set_item(l, list)?;
    }
    let takes = PyDict::new(py);
    for (l, v) in t.takes {
        takes.set_item(l, v)?;
    }
    Ok(Takes {
        run_dir: t.run_dir.display().to_string(),
        sample_rate: t.sample_rate,
        audio: audio.unbind(),
        codes: codes.unbind(),
        takes: takes.unbind(),
    })
}

/// Run `f` without the GIL, reporting progress to `cb` (a callable taking a dict) if given.
fn with_progress<T: Send>(
    py: Python<'_>,
    cb: Option<PyObject>,
    f: impl FnOnce(Option<&(dyn Fn(&Progress) + Sync)>) -> jukebox::error::Result<T> + Send,
) -> PyResult<T> {
    let report = move |p: &Progress| {
        if let Some(cb) = &cb {
            Python::with_gil(|py| {
                let d = PyDict::new(py);
                let _ = d.set_item("level", p.level);
                let _ = d.set_item("window", p.window);
                let _ = d.set_item("windows", p.windows);
                let _ = d.set_item("tokens", p.tokens);
                let _ = d.set_item("tokens_total", p.tokens_total);
                if let Err(e) = cb.call1(py, (d,)) {
                    e.print(py);
                }
            });
        }
    };
    py.allow_threads(|| f(Some(&report))).map_err(err)
}

fn genres_of(genre: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    match genre {
        None => Ok(vec![]),
        Some(g) => {
            if let Ok(s) = g.extract::<String>() {
                Ok(vec![s])
            } else {
                g.extract::<Vec<String>>()
            }
        }
    }
}

#[pymethods]
impl Jukebox {
    /// Load a model directory or a hub id from the Hugging Face cache (`org/name[@revision]`).
    #[new]
    fn new(py: Python<'_>, model: PathBuf) -> PyResult<Self> {
        let m = model.to_string_lossy().into_owned();
        let core = py.allow_threads(|| Core::load(&m)).map_err(err)?;
        Ok(Self { core })
    }

    #[getter]
    fn sample_rate(&self) -> u32 {
        self.core.sample_rate()
    }

    #[getter]
    fn model_dir(&self) -> String {
        self.core.model_dir().path.display().to_string()
    }

    /// New takes in a new run directory. `genre` is a name or a list (a bag of genres).
    #[pyo3(signature = (run_dir, seconds, *, prompt=None, prompt_seconds=None, genre=None,
        artist="unknown", takes=1, seed=0, temperature=0.99, top_k=0, top_p=0.0, levels="all",
        total_seconds=None, dtype="f32", progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn sample(
        &self,
        py: Python<'_>,
        run_dir: PathBuf,
        seconds: f64,
        prompt: Option<PathBuf>,
        prompt_seconds: Option<f64>,
        genre: Option<&Bound<'_, PyAny>>,
        artist: &str,
        takes: usize,
        seed: u64,
        temperature: f64,
        top_k: usize,
        top_p: f64,
        levels: &str,
        total_seconds: Option<f64>,
        dtype: &str,
        progress: Option<PyObject>,
    ) -> PyResult<Takes> {
        let genres = genres_of(genre)?;
        let weights = jukebox::prior::WeightFormat::parse(dtype)
            .map_err(|e| err(anyhow::anyhow!("dtype: {e}")))?;
        let items =
            jukebox::sample::request::items(artist, &genres, None, takes, seed).map_err(err)?;
        let req = SampleRequest {
            mode: Some(if prompt.is_some() {
                Mode::Primed
            } else {
                Mode::Ancestral
            }),
            prompt,
            prompt_seconds,
            seconds: Some(seconds),
            total_seconds,
            items,
            temperature,
            top_k,
            top_p,
            levels: levels.to_string(),
            weights,
            ..Default::default()
        };
        let t = with_progress(py, progress, |p| self.core.sample(&req, &run_dir, p, None))?;
        to_py_takes(py, t)
    }

    /// Finish a run directory (stopped, or made by the CLI).
    #[pyo3(signature = (run_dir, *, progress=None))]
    fn resume(
        &self,
        py: Python<'_>,
        run_dir: PathBuf,
        progress: Option<PyObject>,
    ) -> PyResult<Takes> {
        let t = with_progress(py, progress, |p| self.core.resume(&run_dir, p, None))?;
        to_py_takes(py, t)
    }

    /// Extend take `take` of `run_dir` into `takes` new takes, `seconds` long in total, in `dst`.
    #[pyo3(signature = (run_dir, take, seconds, dst, *, takes=1, seed=0, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn continue_take(
        &self,
        py: Python<'_>,
        run_dir: PathBuf,
        take: usize,
        seconds: f64,
        dst: PathBuf,
        takes: usize,
        seed: u64,
        progress: Option<PyObject>,
    ) -> PyResult<Takes> {
        let t = with_progress(py, progress, |p| {
            self.core
                .continue_take(&run_dir, take, seconds, takes, seed, &dst, p)
        })?;
        to_py_takes(py, t)
    }

    /// Sample the lower levels of a run for the chosen takes.
    #[pyo3(signature = (run_dir, takes, *, levels=None, progress=None))]
    fn upsample(
        &self,
        py: Python<'_>,
        run_dir: PathBuf,
        takes: Vec<usize>,
        levels: Option<Vec<usize>>,
        progress: Option<PyObject>,
    ) -> PyResult<Takes> {
        let t = with_progress(py, progress, |p| {
            self.core.upsample(&run_dir, &takes, levels, p)
        })?;
        to_py_takes(py, t)
    }

    /// A genre × artist × seed study on one prompt into `out` (as `jukebox study`; resumed if
    /// it exists). Returns {dir, report, groups_run, groups_skipped}.
    #[pyo3(signature = (out, *, genres, artists, seeds=2, seed=0, prompt=None,
        prompt_seconds=None, seconds=None, levels=None, temperature=None, controls=true,
        rank=true, dtype=None))]
    #[allow(clippy::too_many_arguments)]
    fn study<'py>(
        &self,
        py: Python<'py>,
        out: PathBuf,
        genres: Vec<String>,
        artists: Vec<String>,
        seeds: u64,
        seed: u64,
        prompt: Option<PathBuf>,
        prompt_seconds: Option<f64>,
        seconds: Option<f64>,
        levels: Option<String>,
        temperature: Option<f64>,
        controls: bool,
        rank: bool,
        dtype: Option<String>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let spec = jukebox::study::PlanSpec {
            prompt: prompt.map(|p| p.display().to_string()),
            prompt_seconds,
            seconds,
            genres: Some(genres),
            artists: Some(artists),
            seeds: Some(seeds),
            seed: Some(seed),
            levels,
            temperature,
            controls: Some(controls),
            dtype,
            ..Default::default()
        };
        let s = py
            .allow_threads(|| self.core.study(spec, &out, rank))
            .map_err(err)?;
        let d = PyDict::new(py);
        d.set_item("dir", s.dir.display().to_string())?;
        d.set_item("report", s.report.map(|p| p.display().to_string()))?;
        d.set_item("groups_run", s.groups_run)?;
        d.set_item("groups_skipped", s.groups_skipped)?;
        Ok(d)
    }

    /// Codes (int64) of mono 44.1 kHz float32 audio at `level` (0 bottom .. 2 top).
    #[pyo3(signature = (audio, level=2))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        audio: PyReadonlyArray1<'py, f32>,
        level: usize,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let a = audio.as_slice()?.to_vec();
        let c = py
            .allow_threads(|| self.core.encode(&a, level))
            .map_err(err)?;
        Ok(c.into_pyarray(py))
    }

    /// Audio (float32) of int64 codes at `level`.
    #[pyo3(signature = (codes, level=2))]
    fn decode<'py>(
        &self,
        py: Python<'py>,
        codes: PyReadonlyArray1<'py, i64>,
        level: usize,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let c = codes.as_slice()?.to_vec();
        let a = py
            .allow_threads(|| self.core.decode(&c, level))
            .map_err(err)?;
        Ok(a.into_pyarray(py))
    }

    /// Genres (and artists) ranked by how well they explain the prompt: a dict with the
    /// no-label `baseline` bits per token and `labels`, best first.
    #[pyo3(signature = (prompt, *, prompt_seconds=None, artists=false))]
    fn rank_labels<'py>(
        &self,
        py: Python<'py>,
        prompt: PathBuf,
        prompt_seconds: Option<f64>,
        artists: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let r = py
            .allow_threads(|| self.core.rank_labels(&prompt, prompt_seconds, artists))
            .map_err(err)?;
        let d = PyDict::new(py);
        d.set_item("baseline", r.baseline_bits)?;
        let rows = PyList::empty(py);
        for s in &r.scored {
            let row = PyDict::new(py);
            row.set_item("kind", s.candidate.field.name())?;
            row.set_item("label", &s.candidate.name)?;
            row.set_item("bits", s.bits)?;
            row.set_item("delta", s.bits - r.baseline_bits)?;
            rows.append(row)?;
        }
        d.set_item("labels", rows)?;
        Ok(d)
    }
}

/// Decode an audio file to 44.1 kHz mono float32, with the CLI's checks: (samples, warnings).
#[pyfunction]
fn load_audio<'py>(
    py: Python<'py>,
    path: PathBuf,
) -> PyResult<(Bound<'py, PyArray1<f32>>, Vec<String>)> {
    let a = py
        .allow_threads(|| jukebox::audio::load(&path))
        .map_err(err)?;
    Ok((a.samples.into_pyarray(py), a.warnings))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Jukebox>()?;
    m.add_class::<Takes>()?;
    m.add_function(wrap_pyfunction!(load_audio, m)?)?;
    m.add("JukeboxError", m.py().get_type::<JukeboxError>())?;
    m.add("UnknownLabelError", m.py().get_type::<UnknownLabelError>())?;
    m.add("CheckpointError", m.py().get_type::<CheckpointError>())?;
    m.add("AudioError", m.py().get_type::<AudioError>())?;
    m.add("RunInterrupted", m.py().get_type::<RunInterrupted>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
