//! What one training run is made of and gives: the job (environment, sandbox, log) the
//! engine's workers submit, the paths a run must not change, the metric and the crash
//! reason read from its log, and the measurements and noise read back from the journal.
//! Decides nothing.

use super::{Event, Session, SessionError, rel};
use crate::decision::policy::NoiseModel;
use crate::experiment::{ExperimentRecord, Status};
use crate::metric::{self, Metrics};
use crate::runner::{Exit, Job, RunOutcome, RunnerError, sandbox};
use crate::store::Measurement;
use std::path::PathBuf;
use std::time::Duration;

/// Every training process of a session carries this variable (its value is the session's
/// token), so a resumed session can find and kill what a killed one left running.
pub const SESSION_ENV: &str = "AUTORESEARCH_SESSION_ID";

pub use crate::experiment::BATCH_SCALE_KEY;

/// One run's result.
pub(crate) struct RunResult {
    pub outcome: RunOutcome,
    pub metrics: Metrics,
    /// The primary metric, or why the run counts as a crash.
    pub value: Result<f64, String>,
    pub memory_gb: Option<f64>,
    /// Read-only files the run (or the proposal) changed and the tool restored.
    pub restored: Vec<String>,
    /// Its training curve, as read from its progress lines (empty when it printed none).
    pub curve: crate::decision::curve::Curve,
    /// Stopped by the pruning rule: the note, and the fraction of the budget it ran.
    pub pruned: Option<(String, f64)>,
}

impl RunResult {
    /// Stopped by the user (a pruned run was stopped by the rule, not interrupted).
    pub(crate) fn interrupted(&self) -> bool {
        self.outcome.exit == Exit::Interrupted && self.pruned.is_none()
    }
    /// The event that says this run of `rec` ended (on `worker`, on the engine).
    pub(crate) fn finished(&self, worker: Option<usize>, rec: &ExperimentRecord) -> Event {
        Event::RunFinished {
            worker,
            iteration: rec.iteration,
            attempt: rec.attempt,
            exit: format!("{:?}", self.outcome.exit),
            duration_s: self.outcome.duration.as_secs_f64(),
            metric: self.value.as_ref().ok().copied(),
            memory_gb: self.memory_gb,
            crash: self.value.as_ref().err().cloned(),
        }
    }

    /// A run that changed what it must not counts as a crash that names what it did,
    /// whatever it printed (and is never retried as an OOM).
    pub(crate) fn tampered(&mut self, tampered: &super::guard::Tampered) {
        if !tampered.is_empty() && !self.interrupted() {
            self.value = Err(super::guard::tamper_reason(tampered));
            self.metrics.oom = false;
        }
    }

    pub(crate) fn oom(&self) -> bool {
        self.value.is_err()
            && (self.metrics.oom || matches!(self.outcome.exit, Exit::Code(137) | Exit::Signal(9)))
    }
}

/// What the box keeps read-only for a training run, relative to the repository (and to an
/// engine worktree): git's data, the session's state, the files the proposer edits and
/// those that must not change, the results file and the config.
pub(crate) fn protected_paths(
    config: &crate::config::Config,
    repo: &std::path::Path,
) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = vec![".git".into(), super::STATE_DIR.into()];
    paths.extend(config.editable.iter().cloned());
    paths.extend(config.read_only.iter().cloned());
    paths.push(config.results.clone());
    // Compared canonical: `--repo .` and an absolute root name the same folder.
    let canonical = |p: &std::path::Path| std::fs::canonicalize(p).ok();
    if let (Some(source), Some(root)) = (
        config.source.as_deref().and_then(canonical),
        canonical(repo),
    ) {
        if let Ok(own) = source.strip_prefix(&root) {
            paths.push(own.to_path_buf());
        }
    }
    paths
}

fn signal_name(n: i32) -> String {
    nix::sys::signal::Signal::try_from(n)
        .map_or_else(|_| format!("signal {n}"), |s| s.as_str().to_string())
}

/// Why a finished run does not count, or its metric.
pub fn classify(
    outcome: &RunOutcome,
    m: &Metrics,
    name: &str,
    timeout: Duration,
) -> Result<f64, String> {
    let oom = if m.oom { " (out of memory)" } else { "" };
    match outcome.exit {
        Exit::TimedOut => {
            return Err(format!(
                "timeout: still running after {}s, killed",
                timeout.as_secs()
            ));
        }
        Exit::Interrupted => return Err("interrupted".into()),
        Exit::Signal(9) | Exit::Code(137) => {
            return Err(format!(
                "killed by SIGKILL{}",
                if m.oom {
                    " (out of memory)"
                } else {
                    " (out of memory?)"
                }
            ));
        }
        Exit::Signal(n) => return Err(format!("killed by {}{oom}", signal_name(n))),
        Exit::Code(0) => {}
        Exit::Code(n) => {
            let last = m.last_line.as_deref().unwrap_or("no output");
            return Err(if m.oom {
                format!("out of memory (exit {n}): {last}")
            } else {
                format!("exit {n}: {last}")
            });
        }
    }
    match m.primary {
        None => Err(format!(
            "no `{name}:` line in the output (last line: {})",
            m.last_line.as_deref().unwrap_or("none")
        )),
        Some(v) if v.is_nan() => Err(format!("{name} is NaN")),
        Some(v) if v.is_infinite() => Err(format!("{name} is {v}")),
        Some(v) => Ok(v),
    }
}

/// Reads a finished run's log: its metrics, its value or crash reason, its peak memory.
pub(crate) fn read_result(
    outcome: RunOutcome,
    spec: &crate::config::MetricSpec,
    timeout: Duration,
) -> RunResult {
    let metrics = metric::parse_file(&outcome.log_path, spec).unwrap_or_default();
    let value = classify(&outcome, &metrics, &spec.name, timeout);
    let memory_gb = metrics.memory_gb(spec).or_else(|| {
        outcome
            .peak_rss_bytes
            .map(|b| b as f64 / (1u64 << 30) as f64)
    });
    RunResult {
        outcome,
        metrics,
        value,
        memory_gb,
        restored: Vec::new(),
        curve: Default::default(),
        pruned: None,
    }
}

/// Reads a run's progress lines only as fast as anyone can watch them: a script that
/// floods its output must not pay for a regex on every line.
pub(crate) struct Progress {
    started: std::time::Instant,
    last: Option<std::time::Instant>,
}

impl Progress {
    /// How often a progress line is parsed for the live display.
    const EVERY: Duration = Duration::from_millis(100);

    pub(crate) fn new() -> Self {
        Progress {
            started: std::time::Instant::now(),
            last: None,
        }
    }

    /// The numbers of `line` with the seconds since the start, when it is time to show
    /// some and the line has any.
    pub(crate) fn line(&mut self, line: &str) -> Option<(f64, Vec<(String, f64)>)> {
        let now = std::time::Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Self::EVERY)
        {
            return None;
        }
        let numbers = metric::inline_numbers(line, 4);
        if numbers.is_empty() {
            return None;
        }
        self.last = Some(now);
        Some((now.duration_since(self.started).as_secs_f64(), numbers))
    }
}

impl Session<'_> {
    /// The job for one run of the tree at `cwd` with `seed`, logging to `runs/<label>`.
    /// `extra`: the worker's own variables (its device).
    pub(crate) fn job_for(
        &self,
        cwd: &std::path::Path,
        seed: u64,
        batch_scale: f64,
        label: &str,
        extra: &[(String, String)],
    ) -> Result<Job, SessionError> {
        let run_dir = self.state_dir().join("runs").join(label);
        let log_path = run_dir.join("run.log");
        let mut env = self.platform.env(self.config.budget, seed);
        for (k, v) in &mut env {
            if k == "AUTORESEARCH_BATCH_SCALE" {
                *v = format!("{batch_scale}");
            }
        }
        // The spec's OOM remedy on CUDA adds gradient checkpointing to the halved batch.
        if batch_scale < self.platform.adjustments.batch_scale
            && self.platform.accelerator == crate::platform::Accelerator::Cuda
        {
            env.push(("AUTORESEARCH_GRAD_CHECKPOINT".into(), "1".into()));
        }
        env.push((SESSION_ENV.into(), self.session_token.clone()));
        env.extend(extra.iter().cloned());
        // Resolved again for each run from the probe cached at the start (cheap), so the
        // session holds no sandbox state of its own.
        let sandbox = sandbox::resolve(
            &self.config.sandbox,
            self.repo.root(),
            &protected_paths(&self.config, self.repo.root()),
            sandbox::Probe::cached(),
        )
        .map_err(RunnerError::from)?
        .sandbox;
        Ok(Job {
            command: self.config.command.clone(),
            cwd: cwd.to_path_buf(),
            env,
            budget: self.config.budget,
            timeout: self.config.timeout,
            grace: self.opts.grace,
            log_path,
            max_log_bytes: self.opts.max_log_bytes,
            sandbox,
            attach: None,
        })
    }

    /// The event that says `job` (a run of `rec` with `seed`) starts.
    pub(crate) fn run_started(
        &self,
        worker: Option<usize>,
        rec: &ExperimentRecord,
        seed: u64,
        job: &Job,
    ) -> Event {
        Event::RunStarted {
            worker,
            iteration: rec.iteration,
            attempt: rec.attempt,
            commit: self.repo.short(&rec.commit),
            seed,
            budget_s: self.config.budget.as_secs_f64(),
            timeout_s: self.config.timeout.as_secs_f64(),
            log: rel(self.repo.root(), &job.log_path),
        }
    }

    /// The run-to-run noise: every group of repeated measurements of one code version.
    pub(crate) fn noise(&self) -> Result<NoiseModel, SessionError> {
        Ok(super::progress::noise_from(&self.journal, self.row.id)?)
    }

    /// The (seed, value) runs of the code `rec` ran (see [`Session::code_ids`]), in the
    /// order they ran.
    pub(crate) fn runs_of_code(
        &self,
        rec: &ExperimentRecord,
    ) -> Result<Vec<(u64, f64)>, SessionError> {
        Ok(runs_in(
            &self.journal.measurements(self.row.id)?,
            &self.code_ids(rec),
        ))
    }

    /// Every decided experiment that ran the same files as `rec` (a near miss measured
    /// again is one code with two experiments), and `rec` itself. A record with no state
    /// hash (an imported row) stands alone.
    pub(crate) fn code_ids(&self, rec: &ExperimentRecord) -> std::collections::HashSet<i64> {
        if rec.state_hash.is_empty() {
            return std::collections::HashSet::from([rec.id]);
        }
        self.history
            .iter()
            .filter(|r| r.state_hash == rec.state_hash)
            .filter(|r| r.id == rec.id || matches!(r.status, Status::Keep | Status::Discard))
            .map(|r| r.id)
            .collect()
    }
}

/// The (seed, value) runs among `measurements` that belong to the experiments `ids`, in
/// order; runs that gave no value are left out.
pub(crate) fn runs_in(
    measurements: &[Measurement],
    ids: &std::collections::HashSet<i64>,
) -> Vec<(u64, f64)> {
    measurements
        .iter()
        .filter(|m| ids.contains(&m.experiment_id))
        .filter_map(|m| Some((m.seed, m.value?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trivial_crashes_are_told_from_real_failures() {
        use super::super::repair::trivial_crash;
        let typo = "Traceback (most recent call last):\n  File \"train.py\", line 3, in <module>\n    lr = LRR * 2\nNameError: name 'LRR' is not defined\n";
        assert!(trivial_crash(typo));
        assert!(trivial_crash(
            "  File \"train.py\", line 9\n    x = (\n        ^\nSyntaxError: '(' was never closed"
        ));
        let oom = "Traceback (most recent call last):\ntorch.OutOfMemoryError: CUDA out of memory.";
        assert!(!trivial_crash(oom));
        assert!(!trivial_crash(
            "Traceback (most recent call last):\nValueError: loss is nan"
        ));
        assert!(!trivial_crash(
            "NameError mentioned in a log line without a traceback"
        ));
    }

    #[test]
    fn classify_names_each_failure() {
        let out = |exit| RunOutcome {
            exit,
            duration: Duration::from_secs(1),
            peak_rss_bytes: None,
            log_path: PathBuf::from("run.log"),
            output_bytes: 0,
            stragglers_killed: 0,
            job_id: None,
            queued: None,
        };
        let m = Metrics::default();
        let t = Duration::from_secs(70);
        assert!(
            classify(&out(Exit::TimedOut), &m, "val_bpb", t)
                .unwrap_err()
                .contains("after 70s")
        );
        assert!(
            classify(&out(Exit::Signal(11)), &m, "val_bpb", t)
                .unwrap_err()
                .contains("SIGSEGV")
        );
        assert!(
            classify(&out(Exit::Code(137)), &m, "val_bpb", t)
                .unwrap_err()
                .contains("out of memory")
        );
        let mut m2 = Metrics {
            primary: Some(f64::INFINITY),
            ..Metrics::default()
        };
        assert_eq!(
            classify(&out(Exit::Code(0)), &m2, "val_bpb", t).unwrap_err(),
            "val_bpb is inf"
        );
        m2.primary = Some(0.9);
        assert_eq!(classify(&out(Exit::Code(0)), &m2, "val_bpb", t), Ok(0.9));
    }
}
