//! A session: starting or resuming it (the lock, the journal, the research branch), and
//! what the engine (`crate::engine`, the loop itself) does to it one step at a time:
//! commit an experiment, run and measure it, decide, record, report. Emits `Event`s and
//! never prints. Invariant: the research branch points at the best commit, and the user's
//! checkout is never switched or reset.

mod commit;
mod cost;
pub mod events;
mod guard;
mod lock;
mod measure;
pub mod progress;
mod prune;
mod repair;
mod resume;
mod revisit;
mod run;
mod start;

pub use cost::{COST_KEY, TOKENS_IN_KEY, TOKENS_OUT_KEY};
pub(crate) use cost::{record_usage, write_calls};
pub use events::Event;
pub use lock::{LockError, SessionLock};
pub use measure::{RUNS_KEY, SD_KEY};
pub(crate) use measure::{crash_reason, evidence, pruned_reason};
pub(crate) use prune::CurveWatch;
pub(crate) use resume::Attached;
pub(crate) use revisit::Leftover;
pub(crate) use run::{BATCH_SCALE_KEY, Progress, RunResult, read_result, runs_in};
pub use run::{SESSION_ENV, classify};
pub use start::Setup;

use crate::agent::Proposer;
use crate::config::Config;
use crate::experiment::{Category, ExperimentRecord, Status};
use crate::platform::Platform;
use crate::runner::{Cancel, Executor, RunnerError};
use crate::store::{Journal, SessionRow, StoreError};
use crate::workspace::{GitError, Repo};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The tool's own folder inside the repository.
pub const STATE_DIR: &str = ".autoresearch";

/// Current time as RFC 3339 (UTC, seconds).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Limits for one invocation of `autoresearch run`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Experiments to run in this invocation (the baseline not counted).
    pub iterations: Option<u64>,
    /// Stop starting experiments after this much wall time.
    pub run_for: Option<Duration>,
    /// Stop once the best reaches this value.
    pub target: Option<f64>,
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Cap on one run's log.
    pub max_log_bytes: u64,
    /// Consecutive unusable proposals before giving up.
    pub max_failed_proposals: u32,
    /// Consecutive proposals without an answer (server down, each after its retries)
    /// before giving up.
    pub max_unanswered: u32,
    /// The engine's workers; empty: one, on this machine's first device.
    pub workers: Vec<crate::engine::WorkerSpec>,
    /// The user's hypothesis for an LLM proposer's first proposals (`run --hypothesis`).
    pub hypothesis: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            iterations: None,
            run_for: None,
            target: None,
            grace: Duration::from_secs(10),
            max_log_bytes: 16 * 1024 * 1024,
            max_failed_proposals: 20,
            max_unanswered: 3,
            workers: Vec::new(),
            hypothesis: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Runner(#[from] RunnerError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(
        "the baseline run failed: {reason}; fix the training script (log: {log}) and run again"
    )]
    BaselineFailed { reason: String, log: String },
    #[error("{0}")]
    Engine(String),
    #[error("the proposer stopped the session: {0}")]
    Proposer(String),
    #[error(
        "{0} proposals in a row were unusable (last: {1}); each prompt and answer is in the journal (llm_calls): a model that follows the edit format better, or a larger [agent] max_tokens if answers were cut off, may help"
    )]
    TooManyFailedProposals(u32, String),
    #[error(
        "the LLM server did not answer {0} proposals in a row (last: {1}); check that it is running at [agent] base_url, then run again to resume"
    )]
    LlmUnreachable(u32, String),
    #[error(
        "results file {0} is tracked by git; untrack it (`git rm --cached {0}`) or set `results` to another file"
    )]
    ResultsTracked(String),
    #[error(
        "the journal knows session `{tag}` but branch {branch} is gone; start a new session with another --tag"
    )]
    BranchMissing { tag: String, branch: String },
    /// A resume that would lose or mix something: what was found, and how to go on.
    #[error("{0}")]
    ResumeRefused(String),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why a session stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum EndReason {
    /// `--iterations` reached.
    Iterations,
    /// `max_iterations` of the config reached.
    MaxIterations,
    /// `--for` elapsed.
    Deadline,
    /// `--target` reached.
    Target,
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// The proposer has nothing left to try.
    Exhausted(String),
    /// `[agent] max_cost_usd` reached.
    CostLimit,
}

impl EndReason {
    pub fn describe(&self) -> String {
        match self {
            EndReason::Iterations => "the requested number of experiments ran".into(),
            EndReason::MaxIterations => "max_iterations reached".into(),
            EndReason::Deadline => "the --for time is up".into(),
            EndReason::Target => "the target value was reached".into(),
            EndReason::Interrupted => "interrupted".into(),
            EndReason::Exhausted(why) => format!("the proposer has nothing left to try ({why})"),
            EndReason::CostLimit => "[agent] max_cost_usd reached".into(),
        }
    }
}

/// A session in progress.
pub struct Session<'a> {
    pub(crate) repo: Repo,
    pub(crate) config: Config,
    pub(crate) platform: Platform,
    pub(crate) journal: Journal,
    pub(crate) executor: &'a dyn Executor,
    pub(crate) proposer: Box<dyn Proposer>,
    pub(crate) emit: &'a mut dyn FnMut(&Event),
    pub(crate) cancel: Cancel,
    pub(crate) opts: Options,
    pub(crate) row: SessionRow,
    /// Every experiment of this session in the journal's order (by id), oldest first.
    /// Shared: a proposal's snapshot takes it without a copy (one is made only when the
    /// session records while a proposer still holds it).
    pub(crate) history: std::sync::Arc<Vec<ExperimentRecord>>,
    /// The state hashes of the history's experiments that ran (all but rejections): what
    /// no proposer may offer again, kept as records arrive and shared like the history.
    pub(crate) seen_done: std::sync::Arc<HashSet<String>>,
    /// Value for AUTORESEARCH_SESSION_ID: tags every training process of this session.
    pub(crate) session_token: String,
    /// Unfinished experiments of the killed session whose jobs still run: followed first.
    pub(crate) adopt: Vec<resume::Adopt>,
    /// Batch scale in force (halved by an OOM retry that became the best).
    pub(crate) batch_scale: f64,
    pub(crate) scratchpad: Option<String>,
    /// Experiments decided since the best was last re-measured.
    pub(crate) since_recheck: u64,
    pub(crate) started: Instant,
    /// LLM cost with no record to carry it (a repair that could not be used).
    pub(crate) unrecorded_cost_usd: f64,
    /// When the progress chart was last drawn, and whether experiments finished since.
    pub(crate) chart_drawn: Option<Instant>,
    pub(crate) chart_stale: bool,
    pub(crate) _lock: SessionLock,
    /// The prompt behind the proposal being committed, when the proposer ran elsewhere.
    pub(crate) pending_prompt: Option<String>,
    /// Who made the proposal being recorded, when the proposer ran elsewhere (the engine's
    /// thread); `None`: the proposer's own `name()`.
    pub(crate) proposed_by: Option<String>,
    /// What this invocation runs with, as recorded in the journal for the reports.
    pub(crate) settings: crate::store::SessionSettings,
    /// What results.tsv holds as this session last wrote it (`None`: not known).
    pub(crate) results_written: Option<crate::store::results::Written>,
}

impl<'a> Session<'a> {
    /// The experiment the branch points at: the last kept one (the baseline first).
    pub fn best(&self) -> Option<&ExperimentRecord> {
        best_of(&self.history)
    }

    pub fn baseline(&self) -> Option<&ExperimentRecord> {
        baseline_of(&self.history)
    }

    pub fn history(&self) -> &[ExperimentRecord] {
        &self.history
    }

    pub fn session_row(&self) -> &SessionRow {
        &self.row
    }

    pub(crate) fn best_commit(&self) -> String {
        self.best()
            .map(|r| r.commit.clone())
            .unwrap_or_else(|| self.row.base_commit.clone())
    }

    pub(crate) fn state_dir(&self) -> PathBuf {
        self.repo.root().join(STATE_DIR)
    }

    pub(crate) fn send(&mut self, e: Event) {
        (self.emit)(&e.sanitized());
    }

    pub(crate) fn warn(&mut self, message: String) {
        self.send(Event::Warning { message });
    }

    pub(crate) fn note(&mut self, message: String) {
        self.send(Event::Note { message });
    }

    /// Runs the session until a stop condition; the tree is left at the best commit.
    pub fn run(&mut self) -> Result<EndReason, SessionError> {
        let result = crate::engine::run(self);
        // The chart is drawn at most every few seconds while experiments are short; its
        // last state is drawn now.
        if self.chart_stale {
            self.draw_chart();
        }
        let reason = result?;
        let (best, best_commit) = match self.best() {
            Some(b) => (b.metric, Some(b.commit.clone())),
            None => (None, None),
        };
        let baseline = self.baseline().and_then(|b| b.metric);
        let tally = crate::report::Tally::of(&self.history);
        self.send(Event::SessionEnded {
            reason: reason.describe(),
            best,
            best_commit,
            baseline,
            experiments: tally.experiments,
            tally,
        });
        Ok(reason)
    }

    pub(crate) fn finished(&self) -> impl Iterator<Item = &ExperimentRecord> {
        self.history.iter().filter(|r| r.status.in_results_tsv())
    }

    pub(crate) fn stop_reason(&self, ran_now: u64) -> Option<EndReason> {
        if self.cancel.requested() {
            return Some(EndReason::Interrupted);
        }
        if self.opts.iterations.is_some_and(|n| ran_now >= n) {
            return Some(EndReason::Iterations);
        }
        // The count the reports show against the limit: proposals that ran, attempts and
        // rejections not counted.
        let done = || crate::report::Tally::of(&self.history).experiments;
        if self.config.max_iterations.is_some_and(|n| done() >= n) {
            return Some(EndReason::MaxIterations);
        }
        if self
            .opts
            .run_for
            .is_some_and(|d| self.started.elapsed() >= d)
        {
            return Some(EndReason::Deadline);
        }
        // `[agent] max_cost_usd` is the engine's to check (`engine::limits`): it counts what
        // is in flight and prepared, and runs proposals already paid for first.
        if let (Some(target), Some(best)) = (self.opts.target, self.best().and_then(|b| b.metric)) {
            let dir = self.config.metric.direction;
            if !dir.better(target, best) {
                return Some(EndReason::Target);
            }
        }
        None
    }

    /// The last 40 lines of the most recent crash's log.
    pub(crate) fn last_crash_tail(&self) -> Option<String> {
        let crash = self
            .history
            .iter()
            .rev()
            .find(|r| r.status == Status::Crash)?;
        let path = self.repo.root().join(crash.log_path.as_ref()?);
        Some(repair::log_tail(&path, 40))
    }

    /// Defence in depth: the proposer is untrusted; only editable files may change. The
    /// reason a proposal's `changes` are refused, if they are.
    pub(crate) fn forbidden(&self, changes: &[crate::agent::FileChange]) -> Option<String> {
        let paths: Vec<String> = changes
            .iter()
            .filter(|c| !self.config.editable.contains(&c.path))
            .map(|c| c.path.display().to_string())
            .collect();
        (!paths.is_empty()).then(|| format!("edits non-editable files: {}", paths.join(", ")))
    }

    /// Total estimated LLM cost of this session so far.
    pub fn cost_usd(&self) -> f64 {
        self.history
            .iter()
            .filter_map(|r| r.metrics.get(COST_KEY))
            .sum::<f64>()
            + self.unrecorded_cost_usd
    }

    pub(crate) fn save_scratchpad(&mut self, text: &str) -> Result<(), SessionError> {
        const MAX: usize = 16 * 1024;
        let mut t = text.to_string();
        if t.len() > MAX {
            let mut cut = MAX;
            while !t.is_char_boundary(cut) {
                cut -= 1;
            }
            t.truncate(cut);
            t.push_str("\n[scratchpad truncated]\n");
        }
        let path = self.state_dir().join("scratchpad.md");
        std::fs::write(&path, &t).map_err(|source| SessionError::Io { path, source })?;
        self.scratchpad = Some(t);
        Ok(())
    }

    /// Regenerates results.tsv from the journal's view of this session.
    pub(crate) fn write_results(&mut self) -> Result<(), SessionError> {
        let path = self.repo.root().join(&self.config.results);
        self.results_written = None;
        self.results_written = Some(crate::store::results::write(
            &path,
            &self.config.metric.name,
            &self.history,
        )?);
        Ok(())
    }

    /// Puts `rec`, just finished and remembered, into results.tsv (appended when it is
    /// the last row, see [`crate::store::results::record`]).
    pub(crate) fn add_result(&mut self, rec: &ExperimentRecord) -> Result<(), SessionError> {
        let path = self.repo.root().join(&self.config.results);
        let written = self.results_written.take();
        self.results_written = Some(crate::store::results::record(
            &path,
            &self.config.metric.name,
            &self.history,
            rec,
            written,
        )?);
        Ok(())
    }

    /// Adds a finished (or rejected) record to the history, which stays in the journal's
    /// order (the order experiments started): the engine's workers finish them in any
    /// order, and a resume reads them back in this one.
    pub(crate) fn remember(&mut self, rec: ExperimentRecord) {
        if rec.status != Status::Rejected && !rec.state_hash.is_empty() {
            std::sync::Arc::make_mut(&mut self.seen_done).insert(rec.state_hash.clone());
        }
        let at = self.history.partition_point(|r| r.id < rec.id);
        std::sync::Arc::make_mut(&mut self.history).insert(at, rec);
    }
}

/// The state hashes of the experiments in `history` that ran (all but rejections).
pub(crate) fn seen_of(history: &[ExperimentRecord]) -> HashSet<String> {
    history
        .iter()
        .filter(|r| r.status != Status::Rejected && !r.state_hash.is_empty())
        .map(|r| r.state_hash.clone())
        .collect()
}

/// The experiment the branch points at: the last kept one.
pub fn best_of(history: &[ExperimentRecord]) -> Option<&ExperimentRecord> {
    history.iter().rev().find(|r| r.status == Status::Keep)
}

/// The baseline, once measured.
pub fn baseline_of(history: &[ExperimentRecord]) -> Option<&ExperimentRecord> {
    history
        .iter()
        .find(|r| r.iteration == 0 && r.status == Status::Keep)
}

/// What an experiment is, before it has a commit.
pub(crate) struct Draft<'d> {
    pub iteration: u64,
    pub attempt: u32,
    pub description: &'d str,
    pub category: Category,
    /// A near miss measured again: its state was run before, on purpose.
    pub repeat: bool,
}

/// Descriptions go into commit subjects and TSV cells: one line, bounded, with escape
/// sequences and other control or invisible characters removed.
pub(crate) fn one_line(s: &str) -> String {
    let out = crate::text::first_line(s, 200);
    if out.is_empty() {
        "(no description)".into()
    } else {
        out
    }
}

/// Path relative to the repo, for display.
pub(crate) fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}
