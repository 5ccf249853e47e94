//! Measuring and deciding: one run of a commit (with the read-only check, the log, the
//! metric and the crash reason), the baseline, the OOM retry, the keep/discard decision and
//! the records that follow it.

use super::{Event, Outcome, Session, SessionError, now, rel};
use crate::experiment::{Category, ExperimentRecord, Status};
use crate::metric::{self, Metrics};
use crate::runner::{Exit, Job, RunOutcome};
use std::path::PathBuf;
use std::time::Duration;

/// Every training process of a session carries this variable (its value is the session's
/// token), so a resumed session can find and kill what a killed one left running.
pub const SESSION_ENV: &str = "AUTORESEARCH_SESSION_ID";

/// Metrics-map key recording a batch scale that differs from the platform's default.
pub const BATCH_SCALE_KEY: &str = "autoresearch_batch_scale";

/// The seed of single-run experiments (greedy mode): fixed, as karpathy's script fixes it.
pub const DEFAULT_SEED: u64 = 42;

/// One run's result.
pub(crate) struct RunResult {
    pub outcome: RunOutcome,
    pub metrics: Metrics,
    /// The primary metric, or why the run counts as a crash.
    pub value: Result<f64, String>,
    pub memory_gb: Option<f64>,
    /// Read-only files the run (or the proposal) changed and the tool restored.
    pub restored: Vec<String>,
}

impl RunResult {
    fn interrupted(&self) -> bool {
        self.outcome.exit == Exit::Interrupted
    }
    fn oom(&self) -> bool {
        self.value.is_err()
            && (self.metrics.oom
                || matches!(self.outcome.exit, Exit::Code(137) | Exit::Signal(9)))
    }
}

fn signal_name(n: i32) -> String {
    nix::sys::signal::Signal::try_from(n).map_or_else(|_| format!("signal {n}"), |s| s.as_str().to_string())
}

/// Why a finished run does not count, or its metric.
pub(crate) fn classify(
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
            return Err(format!("killed by SIGKILL{}", if m.oom { " (out of memory)" } else { " (out of memory?)" }));
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

impl Session<'_> {
    /// Runs the current tree once with `seed` and reads the result.
    pub(crate) fn run_once(
        &mut self,
        rec: &ExperimentRecord,
        seed: u64,
        batch_scale: f64,
        label: &str,
    ) -> Result<RunResult, SessionError> {
        let restored = self.restore_read_only(rec)?;
        let run_dir = self.state_dir().join("runs").join(label);
        let log_path = run_dir.join("run.log");
        let mut env = self.platform.env(self.config.budget, seed);
        for (k, v) in &mut env {
            if k == "AUTORESEARCH_BATCH_SCALE" {
                *v = format!("{batch_scale}");
            }
        }
        env.push((SESSION_ENV.into(), self.session_token.clone()));
        let job = Job {
            command: self.config.command.clone(),
            cwd: self.repo.root().to_path_buf(),
            env,
            budget: self.config.budget,
            timeout: self.config.timeout,
            grace: self.opts.grace,
            log_path: log_path.clone(),
            max_log_bytes: self.opts.max_log_bytes,
        };
        self.send(Event::RunStarted {
            iteration: rec.iteration,
            attempt: rec.attempt,
            commit: self.repo.short(&rec.commit),
            seed,
            budget_s: self.config.budget.as_secs_f64(),
            timeout_s: self.config.timeout.as_secs_f64(),
            log: rel(self.repo.root(), &log_path),
        });
        let executor = self.executor;
        let iteration = rec.iteration;
        let started = std::time::Instant::now();
        let emit = &mut self.emit;
        let outcome = executor.run(&job, &self.cancel, &mut |line: &str| {
            let numbers = metric::inline_numbers(line, 4);
            if !numbers.is_empty() {
                emit(&Event::RunOutput {
                    iteration,
                    elapsed_s: started.elapsed().as_secs_f64(),
                    numbers,
                });
            }
        })?;
        let metrics = metric::parse_file(&log_path, &self.config.metric).unwrap_or_default();
        let value = classify(&outcome, &metrics, &self.config.metric.name, self.config.timeout);
        let memory_gb = metrics
            .memory_gb(&self.config.metric)
            .or_else(|| outcome.peak_rss_bytes.map(|b| b as f64 / (1u64 << 30) as f64));
        self.send(Event::RunFinished {
            iteration,
            attempt: rec.attempt,
            exit: format!("{:?}", outcome.exit),
            duration_s: outcome.duration.as_secs_f64(),
            metric: value.as_ref().ok().copied(),
            memory_gb,
            crash: value.as_ref().err().cloned(),
        });
        Ok(RunResult {
            outcome,
            metrics,
            value,
            memory_gb,
            restored,
        })
    }

    /// Puts back read-only files that differ from the session's start.
    fn restore_read_only(&mut self, rec: &ExperimentRecord) -> Result<Vec<String>, SessionError> {
        let now_hashes = super::start::hash_files(self.repo.root(), &self.config.read_only);
        let changed: Vec<PathBuf> = self
            .read_only_hashes
            .iter()
            .filter(|(p, h)| now_hashes.get(*p) != Some(*h))
            .map(|(p, _)| p.clone())
            .collect();
        let mut restored = Vec::new();
        for p in changed {
            let name = p.to_string_lossy().into_owned();
            self.repo
                .git(&["checkout", &self.row.base_commit, "--", &name])?;
            self.warn(format!(
                "read-only file {name} had changed before experiment {}; restored it from the session's start",
                rec.iteration
            ));
            restored.push(name);
        }
        Ok(restored)
    }

    /// Runs the unmodified code and records it as the baseline.
    pub(crate) fn run_baseline(&mut self) -> Result<(), SessionError> {
        let files = self.repo.read_files(&self.config.editable);
        let mut rec = self.new_record(0, "baseline", Category::Baseline);
        rec.commit = self.repo.head()?;
        rec.parent = rec.commit.clone();
        rec.proposer = "baseline".into();
        rec.state_hash = crate::agent::state_hash(&files);
        rec.id = self.journal.insert(self.row.id, &rec)?;
        let label = format!("{:04}", rec.id);
        let r = self.run_once(&rec, DEFAULT_SEED, self.batch_scale, &label)?;
        if r.interrupted() {
            self.finalize(&mut rec, &r, Status::Interrupted, "interrupted by the user".into())?;
            return Ok(());
        }
        match &r.value {
            Ok(_) => {
                let why = "the unmodified code".to_string();
                self.finalize(&mut rec, &r, Status::Keep, why)?;
                Ok(())
            }
            Err(reason) => {
                let reason = reason.clone();
                self.finalize(&mut rec, &r, Status::Crash, reason.clone())?;
                Err(SessionError::BaselineFailed {
                    reason,
                    log: rec.log_path.clone().unwrap_or_default(),
                })
            }
        }
    }

    /// Runs a committed experiment, decides, records, and moves the branch.
    pub(crate) fn measure_and_decide(
        &mut self,
        mut rec: ExperimentRecord,
    ) -> Result<Outcome, SessionError> {
        let mut scale = self.batch_scale;
        loop {
            let label = if rec.attempt > 1 {
                format!("{:04}-{}", rec.id, rec.attempt)
            } else {
                format!("{:04}", rec.id)
            };
            let r = self.run_once(&rec, DEFAULT_SEED, scale, &label)?;
            if r.interrupted() {
                self.finalize(&mut rec, &r, Status::Interrupted, "interrupted by the user".into())?;
                self.reset_to_best()?;
                return Ok(Outcome::Interrupted);
            }
            if r.oom() && rec.attempt == 1 {
                // The spec's remedy: one retry with half the batch.
                let reason = format!(
                    "{}; retrying once with batch scale ×0.5",
                    r.value.as_ref().err().cloned().unwrap_or_default()
                );
                self.finalize(&mut rec, &r, Status::Crash, reason)?;
                scale *= 0.5;
                let mut retry = rec.clone();
                retry.id = 0;
                retry.attempt = 2;
                retry.status = Status::Running;
                retry.description = format!("{} (OOM retry: batch scale ×0.5)", rec.description);
                retry.reason.clear();
                retry.started_at = now();
                retry.finished_at = None;
                retry.metric = None;
                retry.metrics.clear();
                retry.id = self.journal.insert(self.row.id, &retry)?;
                // The tree still holds the experiment's commit: the retry runs it again.
                rec = retry;
                continue;
            }
            let (status, reason) = match &r.value {
                Err(reason) => (Status::Crash, reason.clone()),
                Ok(v) => self.decide(*v),
            };
            if status == Status::Keep && (scale - self.platform.adjustments.batch_scale).abs() > 1e-12 {
                rec.metrics.insert(BATCH_SCALE_KEY.into(), scale);
            }
            let prev_best = self.best().and_then(|b| b.metric);
            self.finalize(&mut rec, &r, status, reason)?;
            if status == Status::Keep {
                self.batch_scale = scale;
            } else {
                self.reset_to_best()?;
            }
            let gain = match (rec.metric, prev_best) {
                (Some(v), Some(b)) => Some(self.config.metric.direction.gain(v, b)),
                _ => None,
            };
            let e = Event::Decision {
                record: rec.clone(),
                best: self.best().and_then(|b| b.metric),
                baseline: self.baseline().and_then(|b| b.metric),
                gain,
            };
            self.send(e);
            self.maybe_report()?;
            return Ok(Outcome::Ran);
        }
    }

    /// Greedy rule (karpathy's): keep only a strictly better value; a tie keeps the simpler,
    /// older code.
    fn decide(&self, value: f64) -> (Status, String) {
        let dir = self.config.metric.direction;
        let Some(best) = self.best().and_then(|b| b.metric) else {
            return (Status::Keep, "no best yet".into());
        };
        let delta = value - best;
        let pct = if best != 0.0 { 100.0 * delta / best.abs() } else { 0.0 };
        let evidence = format!("{best:.6} → {value:.6} (Δ {delta:+.6}, {pct:+.2}%)");
        if dir.better(value, best) {
            (Status::Keep, evidence)
        } else if value == best {
            (Status::Discard, format!("{evidence}; a tie keeps the simpler code"))
        } else {
            (Status::Discard, evidence)
        }
    }

    /// Finalises a record in the journal and results.tsv, then moves the branch.
    fn finalize(
        &mut self,
        rec: &mut ExperimentRecord,
        r: &RunResult,
        status: Status,
        reason: String,
    ) -> Result<(), SessionError> {
        rec.status = status;
        rec.metric = r.value.as_ref().ok().copied().or(r.metrics.primary);
        rec.metrics.extend(r.metrics.values.iter().map(|(k, v)| (k.clone(), *v)));
        rec.memory_gb = r.memory_gb;
        rec.reason = if r.restored.is_empty() {
            reason
        } else {
            format!("{reason}; restored read-only {}", r.restored.join(", "))
        };
        rec.log_path = Some(rel(self.repo.root(), &r.outcome.log_path));
        rec.finished_at = Some(now());
        rec.duration_s = Some(r.outcome.duration.as_secs_f64());
        self.journal.update(rec)?;
        self.history.push(rec.clone());
        self.write_results()?;
        Ok(())
    }

    fn reset_to_best(&mut self) -> Result<(), SessionError> {
        let best = self.best_commit();
        self.repo.reset_hard(&best)?;
        Ok(())
    }

    /// A progress report every `report_every` finished experiments.
    fn maybe_report(&mut self) -> Result<(), SessionError> {
        let n = self.config.report_every;
        let done = self.finished().filter(|r| r.iteration > 0).count();
        if n == 0 || done == 0 || done % n as usize != 0 {
            return Ok(());
        }
        self.report()
    }

    /// Writes `.autoresearch/progress.md` and emits it.
    pub fn report(&mut self) -> Result<(), SessionError> {
        let markdown = super::progress::render(
            &self.config,
            &self.row,
            &self.history,
            self.started.elapsed(),
        );
        let path = self.state_dir().join("progress.md");
        std::fs::write(&path, &markdown).map_err(|source| SessionError::Io {
            path: path.clone(),
            source,
        })?;
        let path = rel(self.repo.root(), &path);
        self.send(Event::Report { markdown, path });
        Ok(())
    }
}
