//! HTTP routes. Every handler answers JSON errors (`{"error": "..."}`) with a 4xx status for
//! anything a request got wrong; heavy work (opening a model, checking a prompt, drawing a
//! spectrogram) runs on the blocking pool, and sampling runs in the job queue's children.

use super::jobs::{Job, Kind};
use super::paths::{check_name, existing_child, existing_nested, PathError};
use super::runs;
use super::App;
use crate::checkpoint::ModelDir;
use crate::labels::{Field, IdSet};
use crate::sample::{self, Mode, RunSpec, SampleRequest};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

type S = Arc<App>;

/// A refused request.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<PathError> for ApiError {
    fn from(e: PathError) -> Self {
        match e {
            PathError::BadName(m) => ApiError(StatusCode::BAD_REQUEST, m),
            PathError::NotFound(m) => ApiError(StatusCode::NOT_FOUND, m),
        }
    }
}

fn bad(m: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, m.to_string())
}
fn bad_anyhow(e: anyhow::Error) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, format!("{e:#}"))
}
fn not_found(m: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, m.to_string())
}
fn conflict(m: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::CONFLICT, m.to_string())
}

type R<T> = Result<T, ApiError>;

/// Run blocking work off the async threads; a panic becomes a 500, not a dead server.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> R<T> + Send + 'static) -> R<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {e}"),
        ))
    })
}

pub fn router(app: S) -> Router {
    let limit = app.cfg.max_upload;
    Router::new()
        .route("/", get(index))
        .route("/app.js", get(app_js))
        .route("/style.css", get(style_css))
        .route("/api/info", get(info))
        .route("/api/models/{model}/labels", get(labels))
        .route("/api/prompts", get(prompts).post(upload_prompt))
        .route("/api/runs", get(list_runs))
        .route("/api/runs/{run}", get(one_run))
        .route("/api/runs/{run}/audio/{level}/{take}", get(take_audio))
        .route("/api/runs/{run}/prompt/{level}", get(prompt_audio))
        .route(
            "/api/runs/{run}/spectrogram/{level}/{take}",
            get(spectrogram),
        )
        .route("/api/runs/{run}/takes/{take}/zip", get(take_zip))
        .route("/api/runs/{run}/takes/{take}/favourite", post(favourite))
        .route("/api/runs/{run}/takes/{take}/extend", post(extend))
        .route("/api/runs/{run}/upsample", post(upsample))
        .route("/api/jobs", get(jobs))
        .route("/api/jobs/sample", post(new_sample))
        .route("/api/jobs/study", post(new_study))
        .route("/api/jobs/{id}/cancel", post(cancel))
        .route("/api/jobs/{id}/resume", post(resume))
        .route("/api/events", get(events))
        .route("/studies/{study}/{*path}", get(study_file))
        .fallback(|| async { not_found("no such page") })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(app.clone(), check_token))
        .with_state(app)
}

/// With a token set, every request must carry it (`x-jukebox-token` header or `?token=`).
async fn check_token(State(app): State<S>, req: Request, next: Next) -> Response {
    if let Some(tok) = &app.cfg.token {
        let header_ok = req
            .headers()
            .get("x-jukebox-token")
            .and_then(|v| v.to_str().ok())
            == Some(tok.as_str());
        let query_ok = req.uri().query().is_some_and(|q| {
            q.split('&')
                .any(|kv| kv.strip_prefix("token=") == Some(tok.as_str()))
        });
        if !header_ok && !query_ok {
            return ApiError(
                StatusCode::UNAUTHORIZED,
                "this server needs its token: open the URL it printed".into(),
            )
            .into_response();
        }
    }
    next.run(req).await
}

async fn index() -> Html<&'static str> {
    Html(include_str!("assets/index.html"))
}
async fn app_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/app.js"),
    )
}
async fn style_css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/style.css"),
    )
}

/// The model directories the app offers: `default` and every model under `--models`.
fn models(app: &App) -> Vec<(String, PathBuf)> {
    let mut v = vec![("default".to_string(), app.cfg.model.clone())];
    if let Some(root) = &app.cfg.models {
        if let Ok(rd) = std::fs::read_dir(root) {
            let mut names: Vec<String> = rd
                .flatten()
                .filter(|e| e.path().join("config.json").exists())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| check_name(n).is_ok() && n != "default")
                .collect();
            names.sort();
            v.extend(names.into_iter().map(|n| (n.clone(), root.join(n))));
        }
    }
    v
}

fn model_path(app: &App, name: Option<&str>) -> R<PathBuf> {
    let name = name.unwrap_or("default");
    check_name(name)?;
    models(app)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p)
        .ok_or_else(|| not_found(format!("no model `{name}`")))
}

/// Prompts: uploads (`RUNS/.prompts`) first, then the bundled ones.
fn prompt_list(app: &App) -> Vec<(String, PathBuf)> {
    let mut v = vec![];
    for dir in [app.uploads(), app.cfg.prompts.clone()] {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            let mut names: Vec<String> = rd
                .flatten()
                .filter(|e| e.path().is_file())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| check_name(n).is_ok() && crate::audio::is_audio_name(n))
                .collect();
            names.sort();
            for n in names {
                if !v.iter().any(|(m, _)| *m == n) {
                    v.push((n.clone(), dir.join(n)));
                }
            }
        }
    }
    v
}

fn prompt_path(app: &App, name: &str) -> R<PathBuf> {
    check_name(name)?;
    prompt_list(app)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p)
        .ok_or_else(|| not_found(format!("no prompt `{name}`")))
}

async fn info(State(app): State<S>) -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "models": models(&app).into_iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "prompts": prompt_list(&app).into_iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "default_prompt": "amen.wav",
    }))
}

async fn labels(State(app): State<S>, UrlPath(model): UrlPath<String>) -> R<Json<Value>> {
    let path = model_path(&app, Some(&model))?;
    blocking(move || {
        let md = ModelDir::open(&path).map_err(bad_anyhow)?;
        let top = md.config.top_level();
        let prior = &md.config.priors[top];
        if prior.labels.is_none() {
            return Ok(Json(json!({ "genres": [], "artists": [] })));
        }
        let ids = IdSet::for_model(&path, prior).map_err(bad_anyhow)?;
        let names = |f: Field| -> Vec<String> {
            ids.table(f)
                .entries
                .iter()
                .map(|(n, _)| n.clone())
                .collect()
        };
        Ok(Json(json!({
            "genres": names(Field::Genre),
            "artists": names(Field::Artist),
        })))
    })
    .await
}

async fn prompts(State(app): State<S>) -> Json<Value> {
    Json(json!(prompt_list(&app)
        .into_iter()
        .map(|(n, _)| n)
        .collect::<Vec<_>>()))
}

#[derive(Deserialize)]
struct NameQuery {
    name: String,
}

/// Save an uploaded prompt after decoding it with the CLI's checks.
async fn upload_prompt(
    State(app): State<S>,
    Query(q): Query<NameQuery>,
    body: Bytes,
) -> R<Json<Value>> {
    let name = check_name(&q.name)?.to_string();
    if !crate::audio::is_audio_name(&name) {
        return Err(bad(format!(
            "`{name}`: upload a .wav, .flac, .mp3 or .ogg file"
        )));
    }
    if body.is_empty() {
        return Err(bad("the upload is empty"));
    }
    let dir = app.uploads();
    blocking(move || {
        std::fs::create_dir_all(&dir).map_err(|e| bad(format!("cannot store uploads: {e}")))?;
        let tmp = dir.join(format!(".upload-{}", std::process::id()));
        std::fs::write(&tmp, &body).map_err(|e| bad(format!("cannot store the upload: {e}")))?;
        let audio = match crate::audio::load(&tmp) {
            Ok(a) => a,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(bad(format!("{name}: {e:#}")));
            }
        };
        let dst = dir.join(&name);
        std::fs::rename(&tmp, &dst).map_err(|e| bad(format!("cannot store the upload: {e}")))?;
        Ok(Json(json!({
            "name": name,
            "seconds": audio.samples.len() as f64 / audio.sample_rate as f64,
            "warnings": audio.warnings,
        })))
    })
    .await
}

async fn list_runs(State(app): State<S>) -> R<Json<Value>> {
    let root = app.cfg.runs.clone();
    blocking(move || {
        let (runs, studies) = runs::list(&root);
        Ok(Json(json!({ "runs": runs, "studies": studies })))
    })
    .await
}

async fn one_run(State(app): State<S>, UrlPath(run): UrlPath<String>) -> R<Json<Value>> {
    existing_child(&app.cfg.runs, &run)?;
    let root = app.cfg.runs.clone();
    blocking(move || {
        let v = runs::run_view(&root, &run).map_err(|e| not_found(format!("{e:#}")))?;
        Ok(Json(json!(v)))
    })
    .await
}

fn wav_response(path: &Path, download: Option<String>) -> R<Response> {
    let bytes = std::fs::read(path).map_err(|_| not_found("no such audio (yet)"))?;
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, "audio/wav".parse().expect("mime"));
    if let Some(name) = download {
        if let Ok(v) = format!("attachment; filename=\"{name}\"").parse() {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok((h, bytes).into_response())
}

#[derive(Deserialize)]
struct DownloadQuery {
    #[serde(default)]
    download: Option<u8>,
}

async fn take_audio(
    State(app): State<S>,
    UrlPath((run, level, take)): UrlPath<(String, usize, usize)>,
    Query(q): Query<DownloadQuery>,
) -> R<Response> {
    let dir = existing_child(&app.cfg.runs, &run)?;
    let p = dir.join(format!("level_{level}/sample_{take}.wav"));
    let name = q
        .download
        .map(|_| format!("{run}-take{take}-level{level}.wav"));
    wav_response(&p, name)
}

async fn prompt_audio(
    State(app): State<S>,
    UrlPath((run, level)): UrlPath<(String, usize)>,
) -> R<Response> {
    let dir = existing_child(&app.cfg.runs, &run)?;
    wav_response(&dir.join(format!("prompt/level_{level}.wav")), None)
}

async fn spectrogram(
    State(app): State<S>,
    UrlPath((run, level, take)): UrlPath<(String, usize, usize)>,
) -> R<Response> {
    let dir = existing_child(&app.cfg.runs, &run)?;
    blocking(move || {
        let wav = dir.join(format!("level_{level}/sample_{take}.wav"));
        if !wav.exists() {
            return Err(not_found("no such audio (yet)"));
        }
        let png = dir.join(format!("spectrograms/level_{level}_sample_{take}.png"));
        let stale = match (std::fs::metadata(&png), std::fs::metadata(&wav)) {
            (Ok(p), Ok(w)) => p.modified().ok() < w.modified().ok(),
            _ => true,
        };
        if stale {
            let a = crate::audio::load(&wav).map_err(bad_anyhow)?;
            crate::dsp::spectrogram_png(
                &png,
                &a.samples,
                a.sample_rate,
                &crate::dsp::SpectrogramOpts::default(),
            )
            .map_err(bad_anyhow)?;
        }
        let bytes = std::fs::read(&png).map_err(|_| not_found("no spectrogram"))?;
        Ok(([(header::CONTENT_TYPE, "image/png")], bytes).into_response())
    })
    .await
}

/// One take as a zip: its WAV at every level and the run's `run.toml`.
async fn take_zip(
    State(app): State<S>,
    UrlPath((run, take)): UrlPath<(String, usize)>,
) -> R<Response> {
    let dir = existing_child(&app.cfg.runs, &run)?;
    blocking(move || {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        let mut add = |name: String, path: &Path| -> R<()> {
            let bytes = std::fs::read(path).map_err(|_| not_found(format!("no {name}")))?;
            zip.start_file(name, opts).map_err(bad)?;
            zip.write_all(&bytes).map_err(bad)?;
            Ok(())
        };
        add("run.toml".into(), &dir.join("run.toml"))?;
        let mut any = false;
        for l in (0..3).rev() {
            let p = dir.join(format!("level_{l}/sample_{take}.wav"));
            if p.exists() {
                add(format!("level_{l}/sample_{take}.wav"), &p)?;
                any = true;
            }
        }
        if !any {
            return Err(not_found(format!("take {take} has no audio")));
        }
        let bytes = zip.finish().map_err(bad)?.into_inner();
        let disp = format!("attachment; filename=\"{run}-take{take}.zip\"");
        Ok((
            [
                (header::CONTENT_TYPE, "application/zip".to_string()),
                (header::CONTENT_DISPOSITION, disp),
            ],
            bytes,
        )
            .into_response())
    })
    .await
}

#[derive(Deserialize)]
struct FavouriteForm {
    on: bool,
}

async fn favourite(
    State(app): State<S>,
    UrlPath((run, take)): UrlPath<(String, usize)>,
    Json(f): Json<FavouriteForm>,
) -> R<Json<Value>> {
    let dir = existing_child(&app.cfg.runs, &run)?;
    let spec = RunSpec::load(&dir).map_err(|e| not_found(format!("{e:#}")))?;
    if take >= spec.items.len() {
        return Err(not_found(format!("take {take} does not exist")));
    }
    runs::set_favourite(&dir, take, f.on).map_err(bad_anyhow)?;
    Ok(Json(json!({ "favourite": f.on })))
}

/// The job args that (re)run a run directory to its end.
fn resume_args(dir: &Path) -> Vec<String> {
    vec![
        "sample".into(),
        "--resume".into(),
        dir.display().to_string(),
        "--progress".into(),
        "json".into(),
    ]
}

fn queue(app: &App, kind: Kind, title: String, target: String, args: Vec<String>) -> R<u64> {
    let id = app
        .queue
        .lock()
        .add(kind, title, target, args)
        .map_err(bad_anyhow)?;
    app.queue.notify();
    Ok(id)
}

#[derive(Deserialize, Debug)]
pub struct SampleForm {
    pub model: Option<String>,
    pub prompt: Option<String>,
    pub mode: Option<String>,
    pub prompt_seconds: Option<f64>,
    pub seconds: f64,
    #[serde(default)]
    pub artist: String,
    #[serde(default)]
    pub genre: String,
    #[serde(default = "one")]
    pub takes: usize,
    #[serde(default)]
    pub seed: u64,
    pub temperature: Option<f64>,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    pub levels: Option<String>,
}

fn one() -> usize {
    1
}

/// Most takes one request may ask for.
const MAX_TAKES: usize = 16;

async fn new_sample(State(app): State<S>, Json(f): Json<SampleForm>) -> R<Json<Value>> {
    if f.takes == 0 || f.takes > MAX_TAKES {
        return Err(bad(format!("takes must be 1..={MAX_TAKES}")));
    }
    let model = model_path(&app, f.model.as_deref())?;
    let mode = match f.mode.as_deref() {
        None | Some("primed") => Mode::Primed,
        Some("ancestral") => Mode::Ancestral,
        Some(m) => return Err(bad(format!("unknown mode `{m}`: primed or ancestral"))),
    };
    let prompt = match mode {
        Mode::Primed => Some(prompt_path(
            &app,
            f.prompt
                .as_deref()
                .ok_or_else(|| bad("primed mode needs a prompt"))?,
        )?),
        Mode::Ancestral => None,
    };
    let app2 = app.clone();
    blocking(move || {
        let md = ModelDir::open(&model).map_err(bad_anyhow)?;
        let genres: Vec<String> = f
            .genre
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .collect();
        let artist = match f.artist.trim() {
            "" => crate::labels::UNKNOWN,
            a => a,
        };
        let req = SampleRequest {
            mode: Some(mode),
            prompt,
            prompt_seconds: f.prompt_seconds,
            seconds: Some(f.seconds),
            items: sample::request::items(artist, &genres, None, f.takes, f.seed)
                .map_err(bad_anyhow)?,
            temperature: f.temperature.unwrap_or(crate::sample::DEFAULT_TEMPERATURE),
            top_k: f.top_k.unwrap_or(0),
            top_p: f.top_p.unwrap_or(0.0),
            levels: f.levels.clone().unwrap_or_else(|| "top".into()),
            ..Default::default()
        };
        let spec = RunSpec::build(&req, &md).map_err(bad_anyhow)?;
        let _guard = app2.create.lock().unwrap_or_else(|e| e.into_inner());
        let name = runs::next_name(&app2.cfg.runs, "run");
        let dir = app2.cfg.runs.join(&name);
        sample::create_run(&dir, &spec).map_err(bad_anyhow)?;
        let title = format!(
            "{} take(s), {} s{}",
            f.takes,
            f.seconds,
            if genres.is_empty() {
                String::new()
            } else {
                format!(", {}", genres.join("+"))
            }
        );
        let id = queue(&app2, Kind::Sample, title, name.clone(), resume_args(&dir))?;
        Ok(Json(json!({ "job": id, "run": name })))
    })
    .await
}

#[derive(Deserialize)]
struct ExtendForm {
    seconds: f64,
    #[serde(default = "one")]
    takes: usize,
    #[serde(default)]
    seed: u64,
}

async fn extend(
    State(app): State<S>,
    UrlPath((run, take)): UrlPath<(String, usize)>,
    Json(f): Json<ExtendForm>,
) -> R<Json<Value>> {
    let src = existing_child(&app.cfg.runs, &run)?;
    if f.takes == 0 || f.takes > MAX_TAKES {
        return Err(bad(format!("takes must be 1..={MAX_TAKES}")));
    }
    if app.queue.lock().busy(&run) {
        return Err(conflict(format!("{run} is still being sampled")));
    }
    blocking(move || {
        let spec = RunSpec::load(&src).map_err(|e| not_found(format!("{e:#}")))?;
        let md = ModelDir::open(&spec.model).map_err(bad_anyhow)?;
        let _guard = app.create.lock().unwrap_or_else(|e| e.into_inner());
        let name = runs::next_name(&app.cfg.runs, "run");
        let dir = app.cfg.runs.join(&name);
        sample::fork_take(&md, &src, take, &dir, f.seconds, f.takes, f.seed).map_err(|e| {
            let _ = std::fs::remove_dir_all(&dir);
            bad_anyhow(e)
        })?;
        let title = format!("extend {run} take {take} to {:.2} s", f.seconds);
        let id = queue(&app, Kind::Extend, title, name.clone(), resume_args(&dir))?;
        Ok(Json(json!({ "job": id, "run": name })))
    })
    .await
}

#[derive(Deserialize)]
struct UpsampleForm {
    takes: Vec<usize>,
    levels: Option<String>,
}

async fn upsample(
    State(app): State<S>,
    UrlPath(run): UrlPath<String>,
    Json(f): Json<UpsampleForm>,
) -> R<Json<Value>> {
    let dir = existing_child(&app.cfg.runs, &run)?;
    if f.takes.is_empty() {
        return Err(bad("choose at least one take to upsample"));
    }
    blocking(move || {
        let _guard = app.create.lock().unwrap_or_else(|e| e.into_inner());
        if app.queue.lock().busy(&run) {
            return Err(conflict(format!("{run} is still being sampled")));
        }
        let mut spec = RunSpec::load(&dir).map_err(|e| not_found(format!("{e:#}")))?;
        let md = ModelDir::open(&spec.model).map_err(bad_anyhow)?;
        let n = md.config.priors.len();
        let add = match &f.levels {
            Some(s) => Some(sample::parse_levels(s, n).map_err(bad_anyhow)?),
            None => None,
        };
        sample::add_levels(&mut spec, n, add, Some(f.takes.clone()), &dir).map_err(bad_anyhow)?;
        spec.save(&dir).map_err(bad_anyhow)?;
        let takes: Vec<String> = f.takes.iter().map(|t| t.to_string()).collect();
        let title = format!("upsample {run} take(s) {}", takes.join(","));
        let id = queue(&app, Kind::Upsample, title, run.clone(), resume_args(&dir))?;
        Ok(Json(json!({ "job": id, "run": run })))
    })
    .await
}

#[derive(Deserialize)]
struct StudyForm {
    model: Option<String>,
    prompt: Option<String>,
    prompt_seconds: Option<f64>,
    /// Total seconds of each sample (default: the CLI's, prompt + 3).
    seconds: Option<f64>,
    genres: String,
    artists: String,
    #[serde(default = "one")]
    seeds: usize,
    levels: Option<String>,
}

async fn new_study(State(app): State<S>, Json(f): Json<StudyForm>) -> R<Json<Value>> {
    let model = model_path(&app, f.model.as_deref())?;
    let prompt = prompt_path(&app, f.prompt.as_deref().unwrap_or("amen.wav"))?;
    if f.seeds == 0 || f.seeds > MAX_TAKES {
        return Err(bad(format!("seeds must be 1..={MAX_TAKES}")));
    }
    for (what, v) in [("genres", &f.genres), ("artists", &f.artists)] {
        if v.trim().is_empty() || v.contains(['\n', '\0']) {
            return Err(bad(format!("give the study's {what}, comma-separated")));
        }
    }
    let _guard = app.create.lock().unwrap_or_else(|e| e.into_inner());
    let name = runs::next_name(&app.cfg.runs, "study");
    let dir = app.cfg.runs.join(&name);
    let mut args: Vec<String> = vec![
        "study".into(),
        "--model".into(),
        model.display().to_string(),
        "--prompt".into(),
        prompt.display().to_string(),
        "--genre".into(),
        f.genres.trim().into(),
        "--artist".into(),
        f.artists.trim().into(),
        "--seeds".into(),
        f.seeds.to_string(),
        "-o".into(),
        dir.display().to_string(),
        "--quiet".into(),
    ];
    if let Some(ps) = f.prompt_seconds {
        args.extend(["--prompt-seconds".into(), ps.to_string()]);
    }
    if let Some(s) = f.seconds {
        args.extend(["--seconds".into(), s.to_string()]);
    }
    if let Some(l) = &f.levels {
        args.extend(["--levels".into(), l.clone()]);
    }
    let title = format!("study {} × {}", f.genres.trim(), f.artists.trim());
    let id = queue(&app, Kind::Study, title, name.clone(), args)?;
    Ok(Json(json!({ "job": id, "study": name })))
}

fn jobs_value(app: &App) -> Value {
    let b = app.queue.lock();
    let jobs: Vec<&Job> = b.jobs.values().rev().collect();
    json!(jobs)
}

async fn jobs(State(app): State<S>) -> Json<Value> {
    Json(jobs_value(&app))
}

async fn cancel(State(app): State<S>, UrlPath(id): UrlPath<u64>) -> R<Json<Value>> {
    app.queue.cancel(id).map_err(|e| {
        if e == "no such job" {
            not_found(e)
        } else {
            conflict(e)
        }
    })?;
    Ok(Json(json!({ "job": id })))
}

async fn resume(State(app): State<S>, UrlPath(id): UrlPath<u64>) -> R<Json<Value>> {
    let args = {
        let b = app.queue.lock();
        let j = b.jobs.get(&id).ok_or_else(|| not_found("no such job"))?;
        if b.busy(&j.target) {
            return Err(conflict(format!(
                "{} is already queued or running",
                j.target
            )));
        }
        j.args.clone()
    };
    app.queue.requeue(id, args).map_err(conflict)?;
    Ok(Json(json!({ "job": id })))
}

/// Server-sent events: the job list, whenever it changes (bursts merged over 100 ms).
async fn events(
    State(app): State<S>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let rx = app.queue.changed.subscribe();
    let stream = futures_util::stream::unfold((rx, app, true), |(mut rx, app, first)| async move {
        if !first {
            rx.changed().await.ok()?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        rx.borrow_and_update();
        let data = jobs_value(&app).to_string();
        Some((
            Ok(Event::default().event("jobs").data(data)),
            (rx, app, false),
        ))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// A study's report and its files, read-only.
async fn study_file(
    State(app): State<S>,
    UrlPath((study, path)): UrlPath<(String, String)>,
) -> R<Response> {
    let dir = existing_child(&app.cfg.runs, &study)?;
    if !dir.join("plan.toml").exists() {
        return Err(not_found(format!("{study} is not a study")));
    }
    let segs: Vec<&str> = path.split('/').collect();
    let p = existing_nested(&dir, &segs)?;
    if !p.is_file() {
        return Err(not_found("no such file"));
    }
    let mime = match p.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("wav") => "audio/wav",
        Some("png") => "image/png",
        Some("csv") => "text/csv; charset=utf-8",
        Some("json") => "application/json",
        Some("toml") | Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    };
    let bytes = tokio::fs::read(&p)
        .await
        .map_err(|_| not_found("no such file"))?;
    Ok(([(header::CONTENT_TYPE, mime)], bytes).into_response())
}
