//! `jukebox serve`: a local web app for the listen–pick–extend loop. Generate a few takes, listen
//! to each level with its spectrogram, mark favourites, extend a take into new takes (a tree of
//! runs), upsample only the chosen ones, download them, and run studies.
//!
//! Everything the app makes is a run (or study) directory under `--runs`, the same the CLI
//! makes: `jukebox sample --resume/--continue` and `jukebox upsample` work on them, and the app
//! shows runs the CLI made. The page is compiled into the binary (no CDN); progress comes over
//! server-sent events; jobs run one at a time (by default) in child processes (see `jobs`).

pub mod api;
pub mod jobs;
pub mod paths;
pub mod runs;

use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub bind: SocketAddr,
    /// The default model directory.
    pub model: PathBuf,
    /// A folder of further model directories, offered by name.
    pub models: Option<PathBuf>,
    /// Where runs, studies, uploads and the job files live.
    pub runs: PathBuf,
    /// Bundled prompts.
    pub prompts: PathBuf,
    /// Required on every request when set.
    pub token: Option<String>,
    /// Jobs run at the same time.
    pub workers: usize,
    /// Largest upload, bytes.
    pub max_upload: usize,
    /// The program that runs jobs (this binary).
    pub exe: PathBuf,
}

/// Shared by every handler.
pub struct App {
    pub cfg: ServeConfig,
    pub queue: Arc<jobs::Queue>,
    /// Held while a new run or study directory is named and created, so two requests never
    /// take the same name.
    pub create: Mutex<()>,
}

impl App {
    pub fn uploads(&self) -> PathBuf {
        self.cfg.runs.join(".prompts")
    }
}

/// A random token (hex of 16 bytes from the OS).
pub fn random_token() -> Result<String> {
    let mut b = [0u8; 16];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("cannot read /dev/urandom for a token")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Serve until Ctrl-C. `ready(url)` is called once the socket listens (the URL carries the
/// token when one is set).
pub fn serve(mut cfg: ServeConfig, ready: impl FnOnce(String)) -> Result<()> {
    if !cfg.bind.ip().is_loopback() && cfg.token.is_none() {
        bail!(
            "binding to {} exposes the app to the network: pass --token (or --token generate)",
            cfg.bind
        );
    }
    std::fs::create_dir_all(&cfg.runs)
        .with_context(|| format!("cannot create {}", cfg.runs.display()))?;
    cfg.runs = std::fs::canonicalize(&cfg.runs)?;
    let book = jobs::Book::open(&cfg.runs.join(".jobs"))?;
    let queue = jobs::Queue::new(book, cfg.exe.clone());
    queue.start_workers(cfg.workers);
    let app = Arc::new(App {
        cfg,
        queue,
        create: Mutex::new(()),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(app.cfg.bind)
            .await
            .with_context(|| format!("cannot listen on {}", app.cfg.bind))?;
        let addr = listener.local_addr()?;
        let url = match &app.cfg.token {
            Some(t) => format!("http://{addr}/?token={t}"),
            None => format!("http://{addr}/"),
        };
        ready(url);
        axum::serve(listener, api::router(app))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("the server stopped")
    })
}
