//! Deciding: the baseline's seeded runs, the candidate's runs as the policy asks, the OOM
//! retry, the keep/discard decision, drift rechecks, and the records, chart and report
//! that follow each decision.

use super::run::{BATCH_SCALE_KEY, RunResult};
use super::{Event, Outcome, Session, SessionError, now, rel};
use crate::decision::policy::{self, Earlier, Verdict};
use crate::experiment::{Category, ExperimentRecord, Status};

/// How often the progress chart is redrawn while experiments finish, at most.
pub(crate) const CHART_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

pub use crate::experiment::{RUNS_KEY, SD_KEY};

/// Why a candidate crashed: the run's own reason, and which run it was when good runs came
/// before it.
pub(crate) fn crash_reason(why: &str, seed: u64, good_runs: usize) -> String {
    if good_runs == 0 {
        why.to_string()
    } else {
        format!(
            "run {} (seed {seed}) crashed after {good_runs} good run(s): {why}",
            good_runs + 1
        )
    }
}

/// A pruned experiment's reason: the rule's note, and how many good runs came before.
pub(crate) fn pruned_reason(note: &str, good_runs: usize) -> String {
    if good_runs == 0 {
        note.to_string()
    } else {
        format!("{note}; after {good_runs} good run(s)")
    }
}

/// A decision's evidence line: the move from the value it was compared with to its mean,
/// the policy's words, and for a revisit which visit it was.
pub(crate) fn evidence(
    compared_with: Option<f64>,
    mean: f64,
    policy: &str,
    earlier: &Earlier,
    new_runs: usize,
) -> String {
    let evidence = match compared_with {
        Some(b) => {
            let delta = mean - b;
            let pct = if b != 0.0 {
                100.0 * delta / b.abs()
            } else {
                0.0
            };
            format!("{b:.6} → {mean:.6} (Δ {delta:+.6}, {pct:+.2}%); {policy}")
        }
        None => policy.to_string(),
    };
    if earlier.visits > 0 {
        format!(
            "visit {} ({} earlier run(s), {new_runs} new): {evidence}",
            earlier.visits + 1,
            earlier.runs.len()
        )
    } else {
        evidence
    }
}

impl Session<'_> {
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
                return self.record_interrupted(&mut rec, &r, &values);
            }
            if let Err(why) = &r.value {
                return Err(self.baseline_crashed(&mut rec, &r, &values, why, seed)?);
            }
            values.push(r.value.as_ref().copied().unwrap_or(f64::NAN));
            last = Some(r);
        }
        let r = last.expect("the baseline plan has at least one seed");
        self.baseline_measured(&mut rec, &r, &values)
    }

    /// Records the baseline as crashed (`values`: its good runs before the one that failed
    /// with `why` on `seed`) and gives the error that ends the session.
    pub(crate) fn baseline_crashed(
        &mut self,
        rec: &mut ExperimentRecord,
        r: &RunResult,
        values: &[f64],
        why: &str,
        seed: u64,
    ) -> Result<SessionError, SessionError> {
        let reason = if values.is_empty() {
            why.to_string()
        } else {
            format!(
                "run {} of the baseline (seed {seed}): {why}",
                values.len() + 1
            )
        };
        self.finalize(rec, r, values, Status::Crash, reason.clone())?;
        self.announce(rec, None);
        Ok(SessionError::BaselineFailed {
            reason,
            log: rec.log_path.clone().unwrap_or_default(),
        })
    }

    /// Records the measured baseline as the first keep.
    pub(crate) fn baseline_measured(
        &mut self,
        rec: &mut ExperimentRecord,
        r: &RunResult,
        values: &[f64],
    ) -> Result<(), SessionError> {
        let why = match policy::repeats_suffix(values) {
            Some(s) => format!("the unmodified code ({s})"),
            None => "the unmodified code".to_string(),
        };
        self.finalize(rec, r, values, Status::Keep, why)?;
        self.announce(rec, None);
        self.refresh_chart();
        Ok(())
    }

    /// The spec's OOM remedy, one retry with half the batch: records `rec` as crashed
    /// with `why` and journals its retry (attempt 2), which runs the same commit.
    pub(crate) fn oom_retry(
        &mut self,
        rec: &mut ExperimentRecord,
        r: &RunResult,
        why: &str,
    ) -> Result<ExperimentRecord, SessionError> {
        let reason = format!("{why}; retrying once with batch scale ×0.5");
        self.finalize(rec, r, &[], Status::Crash, reason)?;
        let mut retry = rec.clone();
        retry.attempt = 2;
        retry.status = Status::Running;
        retry.description = format!("{} (OOM retry: batch scale ×0.5)", rec.description);
        retry.reason.clear();
        retry.started_at = now();
        retry.finished_at = None;
        retry.metric = None;
        retry.metrics.clear();
        retry.id = self.journal.insert(self.row.id, &retry)?;
        Ok(retry)
    }

    /// Runs a committed experiment as often as the policy asks, decides, records, and
    /// moves the branch. `earlier`: what earlier experiments measured of the same code
    /// against the same best (a revisited near miss), or nothing.
    pub(crate) fn measure_and_decide(
        &mut self,
        rec: ExperimentRecord,
        earlier: &Earlier,
    ) -> Result<Outcome, SessionError> {
        self.measure_and_decide_from(rec, earlier, Vec::new())
    }

    /// [`Session::measure_and_decide`] for an experiment that has `runs` already (one a
    /// killed session left running, whose job the next run follows: `self.attach`).
    pub(crate) fn measure_and_decide_from(
        &mut self,
        mut rec: ExperimentRecord,
        earlier: &Earlier,
        mut runs: Vec<(u64, f64)>,
    ) -> Result<Outcome, SessionError> {
        let mut scale = self.batch_scale;
        let dir = self.config.metric.direction;
        // One read of the journal's runs gives both the best's runs and the noise model.
        let measurements = self.journal.measurements(self.row.id)?;
        let best_runs = self
            .best()
            .map(|b| super::run::runs_in(&measurements, &self.code_ids(b)))
            .unwrap_or_default();
        let noise = super::progress::noise_of(&measurements);
        // The best does not move while this experiment is measured.
        let judge = self.prune_reference()?;
        loop {
            let verdict = policy::decide_again(
                &self.config.decision,
                dir,
                &noise,
                &best_runs,
                earlier,
                &runs,
            );
            let seed = match verdict {
                Verdict::Measure { ref seeds, .. } if !seeds.is_empty() => seeds[0],
                Verdict::Measure { .. } => unreachable!("decide asks for at least one seed"),
                Verdict::Keep { evidence } | Verdict::Discard { evidence } if runs.is_empty() => {
                    unreachable!("decided without a run: {evidence}")
                }
                v => return self.conclude(rec, earlier, &runs, v, scale),
            };
            // A reattached job runs the seed it was submitted with.
            let seed = self.attach.as_ref().map_or(seed, |a| a.seed);
            let r = self.measure_judged(&rec, seed, scale, runs.len(), judge.clone())?;
            if r.interrupted() {
                let values: Vec<f64> = runs.iter().map(|m| m.1).collect();
                self.record_interrupted(&mut rec, &r, &values)?;
                return Ok(Outcome::Interrupted);
            }
            if r.pruned.is_some() {
                let values: Vec<f64> = runs.iter().map(|m| m.1).collect();
                self.record_pruned(&mut rec, &r, &values)?;
                return Ok(Outcome::Ran);
            }
            match r.value {
                Ok(v) => {
                    runs.push((seed, v));
                    self.last_run = Some(r);
                }
                Err(ref why) if r.oom() && rec.attempt == 1 && runs.is_empty() => {
                    scale *= 0.5;
                    // The tree still holds the experiment's commit: the retry runs it again.
                    rec = self.oom_retry(&mut rec, &r, why)?;
                }
                Err(ref why) => {
                    let reason = crash_reason(why, seed, runs.len());
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
        earlier: &Earlier,
        runs: &[(u64, f64)],
        verdict: Verdict,
        scale: f64,
    ) -> Result<Outcome, SessionError> {
        let status = verdict.status().unwrap_or(Status::Discard);
        // A revisit's record stands for the code: its mean and n are over every run of it.
        let values: Vec<f64> = earlier.runs.iter().chain(runs).map(|m| m.1).collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let prev_best = self.best().and_then(|b| b.metric);
        let evidence = evidence(prev_best, mean, verdict.evidence(), earlier, runs.len());
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
    pub(crate) fn after_decision(
        &mut self,
        rec: &ExperimentRecord,
        prev_best: Option<f64>,
    ) -> Result<(), SessionError> {
        self.announce(rec, prev_best);
        crate::chaos::point("decision");
        self.since_recheck += 1;
        self.maybe_recheck()?;
        self.refresh_chart();
        self.maybe_report()
    }

    /// Emits the decision event for a finalised experiment.
    pub(crate) fn announce(&mut self, rec: &ExperimentRecord, prev_best: Option<f64>) {
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
        self.remeasure_best("rechecked the best")?;
        Ok(())
    }

    /// Runs the best once more on a seed it has not run and folds the value into its mean
    /// (journal, results.tsv). `what` starts the note. False when there is no best or the
    /// run gave no value (a warning says why).
    pub(crate) fn remeasure_best(&mut self, what: &str) -> Result<bool, SessionError> {
        let Some(best) = self.best().cloned() else {
            return Ok(false);
        };
        let before = self.runs_of_code(&best)?;
        let seed = policy::recheck_seeds(&before)[0];
        let r = self.measure(&best, seed, self.batch_scale, before.len())?;
        match r.value {
            Ok(v) => {
                self.fold_into_best(&best, &before, seed, v, what)?;
                Ok(true)
            }
            Err(why) => {
                self.warn(format!("{what}: the run failed: {why}"));
                Ok(false)
            }
        }
    }

    /// Folds a new run (`seed`, `v`) of the best into its mean over `before` and it
    /// (journal, results.tsv), with a note that starts with `what`.
    pub(crate) fn fold_into_best(
        &mut self,
        best: &ExperimentRecord,
        before: &[(u64, f64)],
        seed: u64,
        v: f64,
        what: &str,
    ) -> Result<(), SessionError> {
        let old = best.metric.unwrap_or(f64::NAN);
        let mut all: Vec<f64> = before.iter().map(|m| m.1).collect();
        all.push(v);
        let mut updated = best.clone();
        updated.metric = Some(all.iter().sum::<f64>() / all.len() as f64);
        updated.metrics.insert(RUNS_KEY.into(), all.len() as f64);
        if let Some(sd) = crate::decision::stats::std_dev(&all) {
            updated.metrics.insert(SD_KEY.into(), sd);
        }
        self.journal.update(&updated)?;
        if let Some(h) = std::sync::Arc::make_mut(&mut self.history)
            .iter_mut()
            .find(|h| h.id == best.id)
        {
            *h = updated;
        }
        self.write_results()?;
        let noise = self.noise()?.summary();
        self.note(format!(
            "{what} on a new seed ({seed}): {v:.6} against its mean {old:.6} ({:+.6}: drift plus noise); now n={}; noise {noise}",
            v - old,
            all.len()
        ));
        Ok(())
    }

    /// Finalises a record in the journal and results.tsv, then moves the branch.
    pub(crate) fn finalize(
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
        self.remember(rec.clone());
        self.add_result(rec)?;
        Ok(())
    }

    /// Records an experiment whose run the pruning rule stopped (`values`: its earlier good
    /// runs), puts the branch back at the best, and goes on as after any decision.
    pub(crate) fn record_pruned(
        &mut self,
        rec: &mut ExperimentRecord,
        r: &RunResult,
        values: &[f64],
    ) -> Result<(), SessionError> {
        let (note, _) = r.pruned.clone().expect("a pruned run");
        let prev_best = self.best().and_then(|b| b.metric);
        let reason = pruned_reason(&note, values.len());
        self.finalize(rec, r, values, Status::Pruned, reason)?;
        self.reset_to_best()?;
        self.after_decision(rec, prev_best)
    }

    /// Records a run stopped by the user and puts the branch back at the best commit.
    pub(crate) fn record_interrupted(
        &mut self,
        rec: &mut ExperimentRecord,
        r: &RunResult,
        values: &[f64],
    ) -> Result<(), SessionError> {
        let why = "interrupted by the user".to_string();
        self.finalize(rec, r, values, Status::Interrupted, why)?;
        self.reset_to_best()
    }

    pub(crate) fn reset_to_best(&mut self) -> Result<(), SessionError> {
        if self.engine {
            // Worktrees are put at each run's commit; the checkout is not the session's.
            return Ok(());
        }
        let best = self.best_commit();
        crate::chaos::point("reset");
        self.repo.reset_hard(&best)?;
        Ok(())
    }

    /// A progress report every `report_every` finished experiments.
    pub(crate) fn maybe_report(&mut self) -> Result<(), SessionError> {
        let n = self.config.report_every;
        let done = self.finished().filter(|r| r.iteration > 0).count();
        if n == 0 || done == 0 || done % n as usize != 0 {
            return Ok(());
        }
        self.report()
    }

    /// Redraws `.autoresearch/progress.png` and `.svg` after an experiment, at most every
    /// [`CHART_EVERY`] (drawing 10,000 points takes longer than a short experiment's
    /// harness work); the session's end draws the last state.
    pub(crate) fn refresh_chart(&mut self) {
        self.chart_stale = true;
        if self.chart_drawn.is_some_and(|t| t.elapsed() < CHART_EVERY) {
            return;
        }
        self.draw_chart();
    }

    /// Draws the progress chart now. A chart that cannot be drawn is a warning, never a
    /// reason to stop the research.
    pub(crate) fn draw_chart(&mut self) {
        use crate::report::{ChartSeries, chart, render_png, render_svg};
        self.chart_drawn = Some(std::time::Instant::now());
        self.chart_stale = false;
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
            Some(&self.settings),
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
        crate::chaos::point("report");
        let path = rel(self.repo.root(), &path);
        self.send(Event::Report { markdown, path });
        Ok(())
    }
}
