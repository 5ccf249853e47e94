//! Measuring and deciding: one run of a commit (with the read-only check, the log, the
//! metric and the crash reason), the baseline, the OOM retry, the keep/discard decision and
//! the records that follow it.

use super::{Event, Outcome, Session, SessionError, now, rel};
use crate::decision::policy::{self, NoiseModel, Verdict};
use crate::experiment::{Category, ExperimentRecord, Status};
use crate::metric::{self, Metrics};
use crate::runner::{Exit, Job, RunOutcome, RunnerError, sandbox};
use crate::store::Measurement;
use std::path::PathBuf;
use std::time::Duration;

/// Every training process of a session carries this variable (its value is the session's
/// token), so a resumed session can find and kill what a killed one left running.
pub const SESSION_ENV: &str = "AUTORESEARCH_SESSION_ID";

/// Metrics-map key recording a batch scale that differs from the platform's default.
pub const BATCH_SCALE_KEY: &str = "autoresearch_batch_scale";

pub use crate::experiment::{RUNS_KEY, SD_KEY};

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
            && (self.metrics.oom || matches!(self.outcome.exit, Exit::Code(137) | Exit::Signal(9)))
    }
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
        // Resolved again for each run from the probe cached at the start (cheap), so the
        // session holds no sandbox state of its own.
        let sandbox = sandbox::resolve(
            &self.config.sandbox,
            self.repo.root(),
            sandbox::Probe::cached(),
        )
        .map_err(RunnerError::from)?
        .sandbox;
        let job = Job {
            command: self.config.command.clone(),
            cwd: self.repo.root().to_path_buf(),
            env,
            budget: self.config.budget,
            timeout: self.config.timeout,
            grace: self.opts.grace,
            log_path: log_path.clone(),
            max_log_bytes: self.opts.max_log_bytes,
            sandbox,
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
            super::chaos::point("run_line");
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
        let value = classify(
            &outcome,
            &metrics,
            &self.config.metric.name,
            self.config.timeout,
        );
        let memory_gb = metrics.memory_gb(&self.config.metric).or_else(|| {
            outcome
                .peak_rss_bytes
                .map(|b| b as f64 / (1u64 << 30) as f64)
        });
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

    /// Runs one measurement of `rec`'s code (the `k`-th of this record) and journals it.
    fn measure(
        &mut self,
        rec: &ExperimentRecord,
        seed: u64,
        scale: f64,
        k: usize,
    ) -> Result<RunResult, SessionError> {
        let label = if k == 0 {
            format!("{:04}", rec.id)
        } else {
            format!("{:04}-{}", rec.id, k + 1)
        };
        let r = self.run_once(rec, seed, scale, &label)?;
        if !r.interrupted() {
            self.journal.add_measurement(&Measurement {
                experiment_id: rec.id,
                seed,
                value: r.value.as_ref().ok().copied(),
                log_path: Some(rel(self.repo.root(), &r.outcome.log_path)),
            })?;
        }
        Ok(r)
    }

    /// The run-to-run noise: every group of repeated measurements of one code version.
    pub(crate) fn noise(&self) -> Result<NoiseModel, SessionError> {
        Ok(super::progress::noise_from(&self.journal, self.row.id)?)
    }

    /// The (seed, value) runs of one experiment.
    fn runs_of(&self, experiment_id: i64) -> Result<Vec<(u64, f64)>, SessionError> {
        Ok(self
            .journal
            .measurements(self.row.id)?
            .into_iter()
            .filter(|m| m.experiment_id == experiment_id)
            .filter_map(|m| Some((m.seed, m.value?)))
            .collect())
    }

    /// Runs the unmodified code (several seeds in noise-aware mode, to measure the noise)
    /// and records it as the baseline.
    pub(crate) fn run_baseline(&mut self) -> Result<(), SessionError> {
        let files = self.repo.read_files(&self.config.editable);
        let mut rec = self.new_record(0, "baseline", Category::Baseline);
        rec.commit = self.repo.head()?;
        rec.parent = rec.commit.clone();
        rec.proposer = "baseline".into();
        rec.state_hash = crate::agent::state_hash(&files);
        rec.id = self.journal.insert(self.row.id, &rec)?;
        let mut values = Vec::new();
        let mut last = None;
        for (k, seed) in policy::baseline_plan(&self.config.decision)
            .into_iter()
            .enumerate()
        {
            if !values.is_empty() && !policy::baseline_needs_more(&self.config.decision, &values) {
                break;
            }
            let r = self.measure(&rec, seed, self.batch_scale, k)?;
            if r.interrupted() {
                self.finalize(
                    &mut rec,
                    &r,
                    &values,
                    Status::Interrupted,
                    "interrupted by the user".into(),
                )?;
                return Ok(());
            }
            if let Err(reason) = &r.value {
                let reason = if values.is_empty() {
                    reason.clone()
                } else {
                    format!("run {} of the baseline (seed {seed}): {reason}", k + 1)
                };
                self.finalize(&mut rec, &r, &values, Status::Crash, reason.clone())?;
                self.announce(&rec, None);
                return Err(SessionError::BaselineFailed {
                    reason,
                    log: rec.log_path.clone().unwrap_or_default(),
                });
            }
            values.push(r.value.as_ref().copied().unwrap_or(f64::NAN));
            last = Some(r);
        }
        let r = last.expect("the baseline plan has at least one seed");
        let why = match policy::repeats_suffix(&values) {
            Some(s) => format!("the unmodified code ({s})"),
            None => "the unmodified code".to_string(),
        };
        self.finalize(&mut rec, &r, &values, Status::Keep, why)?;
        self.announce(&rec, None);
        self.refresh_chart();
        Ok(())
    }

    /// Runs a committed experiment as often as the policy asks, decides, records, and
    /// moves the branch.
    pub(crate) fn measure_and_decide(
        &mut self,
        mut rec: ExperimentRecord,
    ) -> Result<Outcome, SessionError> {
        let mut scale = self.batch_scale;
        let dir = self.config.metric.direction;
        let best_id = self.best().map(|b| b.id);
        let best_runs = match best_id {
            Some(id) => self.runs_of(id)?,
            None => Vec::new(),
        };
        let noise = self.noise()?;
        let mut runs: Vec<(u64, f64)> = Vec::new();
        loop {
            let verdict = policy::decide(&self.config.decision, dir, &noise, &best_runs, &runs);
            let seed = match verdict {
                Verdict::Measure { ref seeds, .. } if !seeds.is_empty() => seeds[0],
                Verdict::Measure { .. } => unreachable!("decide asks for at least one seed"),
                Verdict::Keep { evidence } | Verdict::Discard { evidence } if runs.is_empty() => {
                    unreachable!("decided without a run: {evidence}")
                }
                v => return self.conclude(rec, &runs, v, scale),
            };
            let r = self.measure(&rec, seed, scale, runs.len())?;
            if r.interrupted() {
                let values: Vec<f64> = runs.iter().map(|m| m.1).collect();
                self.finalize(
                    &mut rec,
                    &r,
                    &values,
                    Status::Interrupted,
                    "interrupted by the user".into(),
                )?;
                self.reset_to_best()?;
                return Ok(Outcome::Interrupted);
            }
            match r.value {
                Ok(v) => {
                    runs.push((seed, v));
                    self.last_run = Some(r);
                }
                Err(ref why) if r.oom() && rec.attempt == 1 && runs.is_empty() => {
                    // The spec's remedy: one retry with half the batch.
                    let reason = format!("{why}; retrying once with batch scale ×0.5");
                    self.finalize(&mut rec, &r, &[], Status::Crash, reason)?;
                    scale *= 0.5;
                    let mut retry = rec.clone();
                    retry.attempt = 2;
                    retry.status = Status::Running;
                    retry.description =
                        format!("{} (OOM retry: batch scale ×0.5)", rec.description);
                    retry.reason.clear();
                    retry.started_at = now();
                    retry.finished_at = None;
                    retry.metric = None;
                    retry.metrics.clear();
                    retry.id = self.journal.insert(self.row.id, &retry)?;
                    // The tree still holds the experiment's commit: the retry runs it again.
                    rec = retry;
                }
                Err(ref why) => {
                    let reason = if runs.is_empty() {
                        why.clone()
                    } else {
                        format!(
                            "run {} (seed {seed}) crashed after {} good run(s): {why}",
                            runs.len() + 1,
                            runs.len()
                        )
                    };
                    let values: Vec<f64> = runs.iter().map(|m| m.1).collect();
                    self.finalize(&mut rec, &r, &values, Status::Crash, reason)?;
                    let repair = if runs.is_empty() {
                        self.try_repair(&rec, &r.outcome.log_path)?
                    } else {
                        None
                    };
                    if repair.is_none() {
                        self.reset_to_best()?;
                    }
                    self.after_decision(&rec, None)?;
                    return match repair {
                        Some(repaired) => repaired.run(self),
                        None => Ok(Outcome::Ran),
                    };
                }
            }
        }
    }

    /// Records a keep or discard verdict and moves the branch.
    fn conclude(
        &mut self,
        mut rec: ExperimentRecord,
        runs: &[(u64, f64)],
        verdict: Verdict,
        scale: f64,
    ) -> Result<Outcome, SessionError> {
        let status = verdict.status().unwrap_or(Status::Discard);
        let values: Vec<f64> = runs.iter().map(|m| m.1).collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let prev_best = self.best().and_then(|b| b.metric);
        let evidence = match prev_best {
            Some(b) => {
                let delta = mean - b;
                let pct = if b != 0.0 {
                    100.0 * delta / b.abs()
                } else {
                    0.0
                };
                format!(
                    "{b:.6} → {mean:.6} (Δ {delta:+.6}, {pct:+.2}%); {}",
                    verdict.evidence()
                )
            }
            None => verdict.evidence().to_string(),
        };
        if status == Status::Keep && (scale - self.platform.adjustments.batch_scale).abs() > 1e-12 {
            rec.metrics.insert(BATCH_SCALE_KEY.into(), scale);
        }
        let r = self
            .last_run
            .take()
            .expect("a decided experiment has a run");
        self.finalize(&mut rec, &r, &values, status, evidence)?;
        if status == Status::Keep {
            self.batch_scale = scale;
        } else {
            self.reset_to_best()?;
        }
        self.after_decision(&rec, prev_best)?;
        Ok(Outcome::Ran)
    }

    /// Emits the decision, re-measures the best now and then, reports progress.
    fn after_decision(
        &mut self,
        rec: &ExperimentRecord,
        prev_best: Option<f64>,
    ) -> Result<(), SessionError> {
        self.announce(rec, prev_best);
        super::chaos::point("decision");
        self.since_recheck += 1;
        self.maybe_recheck()?;
        self.refresh_chart();
        self.maybe_report()
    }

    /// Emits the decision event for a finalised experiment.
    fn announce(&mut self, rec: &ExperimentRecord, prev_best: Option<f64>) {
        let gain = match (rec.metric, prev_best) {
            (Some(v), Some(b)) if rec.status != Status::Crash => {
                Some(self.config.metric.direction.gain(v, b))
            }
            _ => None,
        };
        let e = Event::Decision {
            record: Box::new(rec.clone()),
            best: self.best().and_then(|b| b.metric),
            baseline: self.baseline().and_then(|b| b.metric),
            gain,
        };
        self.send(e);
    }

    /// Re-measures the best to catch drift (a shared or throttled GPU), unless the script
    /// is deterministic.
    fn maybe_recheck(&mut self) -> Result<(), SessionError> {
        if !policy::needs_recheck(&self.config.decision, self.since_recheck)
            || self.cancel.requested()
        {
            return Ok(());
        }
        self.since_recheck = 0;
        if self.noise()?.is_deterministic() {
            return Ok(());
        }
        let Some(best) = self.best().cloned() else {
            return Ok(());
        };
        let before = self.runs_of(best.id)?;
        let seed = policy::recheck_seeds(&before)[0];
        let r = self.measure(&best, seed, self.batch_scale, before.len())?;
        let old = best.metric.unwrap_or(f64::NAN);
        match r.value {
            Ok(v) => {
                let mut all: Vec<f64> = before.iter().map(|m| m.1).collect();
                all.push(v);
                let mut updated = best.clone();
                updated.metric = Some(all.iter().sum::<f64>() / all.len() as f64);
                updated.metrics.insert(RUNS_KEY.into(), all.len() as f64);
                if let Some(sd) = crate::decision::stats::std_dev(&all) {
                    updated.metrics.insert(SD_KEY.into(), sd);
                }
                self.journal.update(&updated)?;
                if let Some(h) = self.history.iter_mut().find(|h| h.id == best.id) {
                    *h = updated;
                }
                self.write_results()?;
                let noise = self.noise()?.summary();
                self.warn(format!(
                    "rechecked the best (seed {seed}): {v:.6} against its mean {old:.6} (drift {:+.6}); noise now {noise}",
                    v - old
                ));
            }
            Err(why) => self.warn(format!("rechecking the best failed: {why}")),
        }
        Ok(())
    }

    /// Finalises a record in the journal and results.tsv, then moves the branch.
    fn finalize(
        &mut self,
        rec: &mut ExperimentRecord,
        r: &RunResult,
        values: &[f64],
        status: Status,
        reason: String,
    ) -> Result<(), SessionError> {
        rec.status = status;
        rec.metrics
            .extend(r.metrics.values.iter().map(|(k, v)| (k.clone(), *v)));
        rec.metric = if values.is_empty() {
            r.value.as_ref().ok().copied().or(r.metrics.primary)
        } else {
            Some(values.iter().sum::<f64>() / values.len() as f64)
        };
        if values.len() > 1 {
            rec.metrics.insert(RUNS_KEY.into(), values.len() as f64);
            if let Some(sd) = crate::decision::stats::std_dev(values) {
                rec.metrics.insert(SD_KEY.into(), sd);
            }
        }
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

    pub(crate) fn reset_to_best(&mut self) -> Result<(), SessionError> {
        let best = self.best_commit();
        super::chaos::point("reset");
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

    /// Redraws `.autoresearch/progress.png` and `.svg` after each experiment. A chart that
    /// cannot be drawn is a warning, never a reason to stop the research.
    fn refresh_chart(&mut self) {
        use crate::report::{ChartSeries, chart, render_png, render_svg};
        let series = ChartSeries::from_records(
            &self.config.metric.name,
            self.config.metric.direction,
            &self.history,
        );
        let dir = self.state_dir();
        let result = render_png(&series, chart::DEFAULT_WIDTH, chart::DEFAULT_HEIGHT)
            .map_err(|e| e.to_string())
            .and_then(|png| {
                crate::store::results::write_bytes_atomic(&dir.join("progress.png"), &png)
                    .map_err(|e| e.to_string())
            })
            .and_then(|()| render_svg(&series).map_err(|e| e.to_string()))
            .and_then(|svg| {
                crate::store::results::write_bytes_atomic(&dir.join("progress.svg"), svg.as_bytes())
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = result {
            self.warn(format!("could not refresh the progress chart: {e}"));
        }
    }

    /// Writes `.autoresearch/progress.md` and emits it.
    pub fn report(&mut self) -> Result<(), SessionError> {
        let info = super::progress::session_info(
            &self.config,
            &self.row,
            &self.history,
            self.started.elapsed(),
            &self.noise()?,
            None,
        );
        let markdown = crate::report::render_progress(&info, &self.history);
        let path = self.state_dir().join("progress.md");
        std::fs::write(&path, &markdown).map_err(|source| SessionError::Io {
            path: path.clone(),
            source,
        })?;
        super::chaos::point("report");
        let path = rel(self.repo.root(), &path);
        self.send(Event::Report { markdown, path });
        Ok(())
    }
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
