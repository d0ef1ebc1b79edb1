//! The job queue. A job is one run of this program's own CLI in a child process (`sample
//! --resume RUN` for takes, extensions and upsampling; `study` for studies): a crash, an
//! out-of-memory kill or a bad model then ends that job, not the server, and every job works on
//! a directory the CLI understands. Jobs are files (`RUNS/.jobs/<id>.json`, written
//! atomically), so the queue survives page reloads and restarts; a job that was running when
//! the server died shows as `interrupted` and resumes from its last finished window.

use crate::sample::Progress;
use crate::util::atomic_write;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// New takes (a new run).
    Sample,
    /// A take extended into new takes (a forked run).
    Extend,
    /// Lower levels for chosen takes.
    Upsample,
    Study,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Running,
    Done,
    Failed,
    /// Stopped on request after saving; resumable.
    Cancelled,
    /// The server stopped while it ran; resumable.
    Interrupted,
}

impl Status {
    pub fn resumable(self) -> bool {
        matches!(
            self,
            Status::Cancelled | Status::Interrupted | Status::Failed
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: u64,
    pub kind: Kind,
    pub title: String,
    /// The run or study directory's name under the runs folder.
    pub target: String,
    /// Arguments of the child `jukebox` process.
    pub args: Vec<String>,
    pub status: Status,
    #[serde(default)]
    pub progress: Option<Progress>,
    /// Seconds left at the current level, from its rate so far.
    #[serde(default)]
    pub eta_s: Option<f64>,
    pub created: f64,
    #[serde(default)]
    pub started: Option<f64>,
    #[serde(default)]
    pub finished: Option<f64>,
    /// The last lines the job printed that were not progress.
    #[serde(default)]
    pub log: Vec<String>,
    #[serde(default)]
    pub error: Option<String>,
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Every job, its files, and the running children.
pub struct Book {
    dir: PathBuf,
    pub jobs: BTreeMap<u64, Job>,
    pids: BTreeMap<u64, u32>,
    /// Per running job: (level, time and tokens when its level started), for the ETA.
    level_start: BTreeMap<u64, (usize, f64)>,
}

impl Book {
    /// Load `dir/*.json`; jobs that were running become `interrupted`.
    pub fn open(dir: &Path) -> Result<Book> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut jobs = BTreeMap::new();
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let text = std::fs::read_to_string(&p)?;
            match serde_json::from_str::<Job>(&text) {
                Ok(mut j) => {
                    if j.status == Status::Running {
                        j.status = Status::Interrupted;
                        j.progress = None;
                        j.eta_s = None;
                    }
                    jobs.insert(j.id, j);
                }
                Err(e) => eprintln!("serve: skipping unreadable job file {}: {e}", p.display()),
            }
        }
        let b = Book {
            dir: dir.to_path_buf(),
            jobs,
            pids: BTreeMap::new(),
            level_start: BTreeMap::new(),
        };
        let ids: Vec<u64> = b.jobs.keys().copied().collect();
        for id in ids {
            b.save(id)?;
        }
        Ok(b)
    }

    pub fn save(&self, id: u64) -> Result<()> {
        let j = &self.jobs[&id];
        atomic_write(
            &self.dir.join(format!("{id:06}.json")),
            serde_json::to_string_pretty(j)?.as_bytes(),
        )
    }

    pub fn add(
        &mut self,
        kind: Kind,
        title: String,
        target: String,
        args: Vec<String>,
    ) -> Result<u64> {
        let id = self.jobs.keys().next_back().map_or(1, |k| k + 1);
        self.jobs.insert(
            id,
            Job {
                id,
                kind,
                title,
                target,
                args,
                status: Status::Queued,
                progress: None,
                eta_s: None,
                created: now(),
                started: None,
                finished: None,
                log: vec![],
                error: None,
            },
        );
        self.save(id)?;
        Ok(id)
    }

    /// Whether any queued or running job works on `target`.
    pub fn busy(&self, target: &str) -> bool {
        self.jobs
            .values()
            .any(|j| j.target == target && matches!(j.status, Status::Queued | Status::Running))
    }

    fn next_queued(&self) -> Option<u64> {
        self.jobs
            .values()
            .find(|j| j.status == Status::Queued && !self.running_target(&j.target))
            .map(|j| j.id)
    }

    fn running_target(&self, target: &str) -> bool {
        self.jobs
            .values()
            .any(|j| j.target == target && j.status == Status::Running)
    }

    fn progress(&mut self, id: u64, p: Progress) {
        let t = now();
        let start = self.level_start.entry(id).or_insert((p.level, t));
        if start.0 != p.level {
            *start = (p.level, t);
        }
        let elapsed = t - start.1;
        let eta = (p.tokens > 0 && elapsed > 0.5)
            .then(|| (p.tokens_total.saturating_sub(p.tokens)) as f64 * elapsed / p.tokens as f64);
        if let Some(j) = self.jobs.get_mut(&id) {
            j.progress = Some(p);
            j.eta_s = eta;
        }
    }
}

/// What the workers and the web handlers share.
pub struct Queue {
    pub book: Mutex<Book>,
    wake: Condvar,
    /// Bumped on every change, for the event stream.
    pub changed: tokio::sync::watch::Sender<u64>,
    /// The program that runs jobs (this binary).
    exe: PathBuf,
}

impl Queue {
    pub fn new(book: Book, exe: PathBuf) -> Arc<Queue> {
        Arc::new(Queue {
            book: Mutex::new(book),
            wake: Condvar::new(),
            changed: tokio::sync::watch::channel(0).0,
            exe,
        })
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn notify(&self) {
        self.changed.send_modify(|v| *v += 1);
        self.wake.notify_all();
    }

    /// Stop a job: a queued one is cancelled at once; a running one gets SIGINT, finishes its
    /// window, saves and exits (then shows as cancelled). Err: nothing to cancel.
    pub fn cancel(&self, id: u64) -> Result<(), String> {
        let mut b = self.lock();
        let pid = b.pids.get(&id).copied();
        let j = b.jobs.get_mut(&id).ok_or("no such job")?;
        match j.status {
            Status::Queued => {
                j.status = Status::Cancelled;
                j.finished = Some(now());
                let _ = b.save(id);
            }
            Status::Running => {
                if let Some(pid) = pid {
                    // SAFETY: kill(2) with a child's pid; no memory is touched.
                    unsafe { libc::kill(pid as i32, libc::SIGINT) };
                }
                j.log
                    .push("cancel requested: stopping after the current window".into());
            }
            s => return Err(format!("the job is {s:?}, not queued or running")),
        }
        drop(b);
        self.notify();
        Ok(())
    }

    /// Queue a stopped job again with `args` (its resume command).
    pub fn requeue(&self, id: u64, args: Vec<String>) -> Result<(), String> {
        let mut b = self.lock();
        let j = b.jobs.get_mut(&id).ok_or("no such job")?;
        if !j.status.resumable() {
            return Err(format!("the job is {:?}: nothing to resume", j.status));
        }
        j.status = Status::Queued;
        j.args = args;
        j.error = None;
        j.finished = None;
        let _ = b.save(id);
        drop(b);
        self.notify();
        Ok(())
    }

    /// Start `n` worker threads.
    pub fn start_workers(self: &Arc<Self>, n: usize) {
        for _ in 0..n.max(1) {
            let q = self.clone();
            std::thread::spawn(move || q.work());
        }
    }

    fn work(&self) {
        loop {
            let id = {
                let mut b = self.lock();
                loop {
                    if let Some(id) = b.next_queued() {
                        let j = b.jobs.get_mut(&id).expect("queued job");
                        j.status = Status::Running;
                        j.started = Some(now());
                        j.progress = None;
                        j.eta_s = None;
                        let _ = b.save(id);
                        break id;
                    }
                    b = self.wake.wait(b).unwrap_or_else(|e| e.into_inner());
                }
            };
            self.notify();
            let outcome = self.run_child(id);
            let mut b = self.lock();
            b.pids.remove(&id);
            b.level_start.remove(&id);
            if let Some(j) = b.jobs.get_mut(&id) {
                j.finished = Some(now());
                j.eta_s = None;
                match outcome {
                    Ok(0) => j.status = Status::Done,
                    // 130: stopped by SIGINT after saving (the CLI's Ctrl-C path).
                    Ok(130) => j.status = Status::Cancelled,
                    Ok(code) => {
                        j.status = Status::Failed;
                        j.error = Some(
                            j.log
                                .iter()
                                .rev()
                                .find(|l| l.starts_with("error"))
                                .cloned()
                                .unwrap_or(format!("exited with status {code}")),
                        );
                    }
                    Err(e) => {
                        j.status = Status::Failed;
                        j.error = Some(format!("{e:#}"));
                    }
                }
            }
            let _ = b.save(id);
            drop(b);
            self.notify();
        }
    }

    fn run_child(&self, id: u64) -> Result<i32> {
        let args = self.lock().jobs[&id].args.clone();
        let mut cmd = Command::new(&self.exe);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl in the forked child before exec; async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    // The child dies with the server, so a restarted server never finds a
                    // second writer on a run it marks interrupted.
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", self.exe.display()))?;
        self.lock().pids.insert(id, child.id());
        if let Some(err) = child.stderr.take() {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut b = self.lock();
                if let Ok(p) = serde_json::from_str::<Progress>(&line) {
                    b.progress(id, p);
                } else if !line.trim().is_empty() {
                    let j = b.jobs.get_mut(&id).expect("running job");
                    j.log.push(line);
                    let n = j.log.len();
                    if n > 30 {
                        j.log.drain(..n - 30);
                    }
                }
                drop(b);
                self.changed.send_modify(|v| *v += 1);
            }
        }
        let status = child.wait()?;
        Ok(status.code().unwrap_or(130))
    }
}
