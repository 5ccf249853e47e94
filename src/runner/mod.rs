//! Running one training job: the `Executor` trait and its local implementation. Owns the
//! process tree of a run from spawn to the last reaped descendant; never decides anything
//! about the result.

mod cgroup;
pub mod local;
mod logsink;
pub mod procs;
pub mod sandbox;

pub use sandbox::{Sandbox, SandboxError};

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
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
}

/// A stop request shared between the signal handler, the loop and the executor.
/// Level 0: go on; 1: stop after cleaning up the current run; 2: stop now.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicU8>);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn level(&self) -> u8 {
        self.0.load(Ordering::SeqCst)
    }
    pub fn requested(&self) -> bool {
        self.level() > 0
    }
    /// Raises the level by one (a second Ctrl-C escalates).
    pub fn escalate(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| Some((l + 1).min(2)));
    }
    pub fn set(&self, level: u8) {
        self.0.store(level, Ordering::SeqCst);
    }
    /// The shared counter, for `signal_hook` registration.
    pub fn handle(&self) -> Arc<AtomicU8> {
        self.0.clone()
    }
}
