//! Running one training job: the `Executor` trait and its local implementation. Owns the
//! process tree of a run from spawn to the last reaped descendant; never decides anything
//! about the result.

mod cgroup;
mod flood;
pub mod local;
mod logsink;
pub mod procs;
pub mod sandbox;
pub mod slurm;

pub use sandbox::{Sandbox, SandboxError};

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

/// Everything an executor needs to run one training job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Shell command line, run as `sh -c <command>`.
    pub command: String,
    /// Working directory (the repo or a worktree).
    pub cwd: PathBuf,
    /// Extra environment variables (AUTORESEARCH_*).
    pub env: Vec<(String, String)>,
    /// The soft budget the script is told about.
    pub budget: Duration,
    /// The hard limit: past it the group gets SIGTERM, then SIGKILL after `grace`.
    pub timeout: Duration,
    pub grace: Duration,
    /// stdout and stderr, interleaved, are streamed here.
    pub log_path: PathBuf,
    /// Cap on the log file; past it the head is kept, the tail is kept in a ring, and the
    /// log says how much was dropped.
    pub max_log_bytes: u64,
    /// How the command is isolated and limited (default: plain `sh -c`, no limits).
    pub sandbox: Sandbox,
    /// A job a killed session submitted for this very run and that still runs: followed
    /// to its end instead of starting the run again. Executors that cannot reattach
    /// (local processes die with their session) never get one.
    pub attach: Option<String>,
}

/// A job of a session still queued or running with the executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveJob {
    /// The executor's id (a Slurm job id).
    pub id: String,
    /// The run folder's label it runs for (`0007`, `0007-2`).
    pub label: String,
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Exit {
    /// Exited on its own with this code.
    Code(i32),
    /// Killed by this signal (not by us).
    Signal(i32),
    /// Killed by us at the hard timeout.
    TimedOut,
    /// Killed by us because the session was asked to stop.
    Interrupted,
}

impl Exit {
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub exit: Exit,
    pub duration: Duration,
    /// Peak resident memory of the process tree, sampled.
    pub peak_rss_bytes: Option<u64>,
    pub log_path: PathBuf,
    /// Bytes the script wrote (including what the cap dropped).
    pub output_bytes: u64,
    /// Processes still alive after the kill that had to be killed individually.
    pub stragglers_killed: usize,
    /// The scheduler's id for the run (a Slurm job id); none for local processes.
    pub job_id: Option<String>,
    /// How long it waited in the scheduler's queue before it started (Slurm); none for
    /// local processes. Never counted against the budget.
    pub queued: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("cannot start `{command}`: {source}; check the `command` in autoresearch.toml")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the run log {path}: {source}; check free disk space and permissions")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("waiting for the training process failed: {0}")]
    Wait(#[source] std::io::Error),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// Slurm refused or could not be asked: its own words and the fix.
    #[error("{0}")]
    Slurm(String),
}

/// What a scheduler says about a job on its way to running (never the script's words).
#[derive(Debug, Clone, PartialEq)]
pub enum JobNews {
    /// Waiting in the queue; `reason` is the scheduler's (`Priority`, `Resources`).
    Queued { job: String, reason: String },
    /// Started, after `queued_s` seconds in the queue.
    Started { job: String, queued_s: f64 },
    /// Put back in the queue by the scheduler (a node failed under it); its clock and
    /// log start again.
    Requeued { job: String, reason: String },
    /// Lost to a node failure or preemption and submitted again as a new job.
    Resubmitted { job: String, state: String },
    /// Followed after a resume: submitted by the session that was interrupted.
    Reattached { job: String },
}

impl JobNews {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            // Slurm says `None` until it has looked at a new job.
            JobNews::Queued { job, reason } if reason.is_empty() || reason == "None" => {
                format!("job {job} queued")
            }
            JobNews::Queued { job, reason } => format!("job {job} queued ({reason})"),
            JobNews::Started { job, queued_s } => {
                format!("job {job} started after {queued_s:.0} s in the queue")
            }
            JobNews::Requeued { job, reason } => {
                format!("job {job} requeued by Slurm ({reason}); its run starts again")
            }
            JobNews::Resubmitted { job, state } => {
                format!("job {job} ended with {state} (not the script's doing); submitted again")
            }
            JobNews::Reattached { job } => {
                format!("reattached to job {job}, submitted before the session was interrupted")
            }
        }
    }
}

/// Runs jobs. Local processes today; Slurm and containers later.
pub trait Executor: Send + Sync {
    /// Runs the job to completion (or timeout, or cancellation). `on_line` sees each
    /// output line (lossy UTF-8, truncated) as it arrives, for progress display.
    fn run(
        &self,
        job: &Job,
        cancel: &Cancel,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<RunOutcome, RunnerError>;

    /// [`Executor::run`], telling `on_news` what the scheduler says on the way (queued,
    /// started, requeued). Executors without a queue say nothing.
    fn run_watched(
        &self,
        job: &Job,
        cancel: &Cancel,
        on_line: &mut dyn FnMut(&str),
        _on_news: &mut dyn FnMut(JobNews),
    ) -> Result<RunOutcome, RunnerError> {
        self.run(job, cancel, on_line)
    }

    /// Ends what a killed session `session` left with this executor (Slurm jobs still
    /// queued or running), except the jobs in `keep` (a resume reattaches to them);
    /// returns how many it ended. Local processes are found by their environment
    /// instead, so the default does nothing.
    fn reap_session(&self, _session: &str, _keep: &[String]) -> usize {
        0
    }

    /// Readies the session's state folder (`.autoresearch/`) for this executor before
    /// any run: Slurm puts the run folders and worktrees where every node sees them
    /// (`shared_dir`) and checks it can write there. Returns a note for the user.
    fn prepare_state(&self, _state_dir: &std::path::Path) -> Result<Option<String>, RunnerError> {
        Ok(None)
    }

    /// The jobs of session `session` still queued or running, for a resume to reattach
    /// to. None by default: a local process does not outlive its session.
    fn live_jobs(&self, _session: &str) -> Vec<LiveJob> {
        Vec::new()
    }
}

/// A stop request shared between the signal handler, the loop and the executor.
/// Level 0: go on; 1: stop after cleaning up the current run; 2: stop now. It also counts
/// what is in progress (training runs, LLM calls), so that a Ctrl-C says what it stops.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    level: Arc<AtomicU8>,
    runs: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
    /// One run's own stop (see [`Cancel::for_run`]): level 1 for that run alone.
    run_stop: Option<RunStop>,
}

/// Stops one run cleanly (as a first Ctrl-C would: TERM, grace, KILL), and only it: the
/// pruning rule's way to end a hopeless run.
#[derive(Debug, Clone, Default)]
pub struct RunStop(Arc<AtomicBool>);

impl RunStop {
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What is in progress, for the Ctrl-C message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// At least one training run.
    Training,
    /// An LLM call and no training run.
    Asking,
    Idle,
}

/// Counts one activity while it lives.
#[derive(Debug)]
pub struct BusyGuard(Arc<AtomicUsize>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }
    /// The stop level this run sees: the session's, or 1 when its own stop was asked.
    pub fn level(&self) -> u8 {
        let own = self.run_stop.as_ref().is_some_and(RunStop::stopped);
        self.level.load(Ordering::SeqCst).max(u8::from(own))
    }
    /// Whether the session (not one run's own stop) was asked to stop.
    pub fn session_requested(&self) -> bool {
        self.level.load(Ordering::SeqCst) > 0
    }
    /// The same cancel for one run, with a stop of its own that ends only that run.
    pub fn for_run(&self) -> (Cancel, RunStop) {
        let stop = RunStop::default();
        let mut c = self.clone();
        c.run_stop = Some(stop.clone());
        (c, stop)
    }
    pub fn requested(&self) -> bool {
        self.level() > 0
    }
    /// Raises the level by one (a second Ctrl-C escalates).
    pub fn escalate(&self) {
        let _ = self
            .level
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| Some((l + 1).min(2)));
    }
    pub fn set(&self, level: u8) {
        self.level.store(level, Ordering::SeqCst);
    }
    /// A training run is in progress while the guard lives.
    pub fn training(&self) -> BusyGuard {
        self.runs.fetch_add(1, Ordering::SeqCst);
        BusyGuard(self.runs.clone())
    }
    /// An LLM call is in progress while the guard lives.
    pub fn asking(&self) -> BusyGuard {
        self.calls.fetch_add(1, Ordering::SeqCst);
        BusyGuard(self.calls.clone())
    }
    pub fn busy(&self) -> Busy {
        if self.runs.load(Ordering::SeqCst) > 0 {
            Busy::Training
        } else if self.calls.load(Ordering::SeqCst) > 0 {
            Busy::Asking
        } else {
            Busy::Idle
        }
    }
    /// The shared counter, for `signal_hook` registration.
    pub fn handle(&self) -> Arc<AtomicU8> {
        self.level.clone()
    }
}
