//! `jukebox serve`: the local web app (see `jukebox::serve`).

use anyhow::{Context, Result};
use jukebox::serve::{random_token, serve, ServeConfig};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The default model directory.
    #[arg(long, default_value = "models/default")]
    pub model: PathBuf,
    /// A folder of further model directories, offered by name in the page.
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Where runs, studies, uploads and the job queue live [default: runs, under the current directory].
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
    /// Address to listen on; anything but loopback needs --token.
    #[arg(long, default_value = "127.0.0.1:8421")]
    pub bind: std::net::SocketAddr,
    /// Require this token on every request (`generate`: make a random one and print it).
    #[arg(long)]
    pub token: Option<String>,
    /// Jobs run at the same time.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Largest prompt upload, in MiB.
    #[arg(long, default_value_t = 64)]
    pub max_upload_mib: usize,
}

pub fn run(a: Args) -> Result<()> {
    let token = match a.token.as_deref() {
        Some("generate") => Some(random_token()?),
        Some("") => anyhow::bail!("--token must not be empty"),
        t => t.map(str::to_string),
    };
    let model = jukebox::util::resolve_default(&a.model.to_string_lossy());
    jukebox::checkpoint::ModelDir::open(&model).with_context(|| {
        format!(
            "cannot open the model {} (pass --model DIR)",
            model.display()
        )
    })?;
    let cfg = ServeConfig {
        bind: a.bind,
        model: std::path::absolute(&model)?,
        models: a.models,
        runs: a.runs,
        prompts: jukebox::util::resolve_default("data/prompts"),
        token,
        workers: a.jobs.max(1),
        max_upload: a.max_upload_mib.max(1) << 20,
        exe: std::env::current_exe().context("cannot find this program to run jobs")?,
    };
    let runs = cfg.runs.clone();
    serve(cfg, |url| {
        // Write errors are ignored: a closed stdout must not stop the server.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "jukebox serve: open {url}");
        let _ = writeln!(
            out,
            "runs in {}; Ctrl-C stops the server (interrupted jobs can be resumed from the page)",
            runs.display()
        );
        let _ = out.flush();
    })
}
