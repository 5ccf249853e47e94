//! The records of decisions the engine makes (`engine::decide`): the baseline's (measured
//! or crashed), an OOM retry's, each experiment's final record (journal, the research
//! branch on a keep, results.tsv), a recheck folded into the best, and the chart and
//! progress report that follow.

use super::run::RunResult;
use super::{Event, Session, SessionError, now, rel};
use crate::decision::policy::{self, Earlier};
use crate::experiment::{ExperimentRecord, Status};

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
        let old_best = self.best_commit();
        self.journal.update(rec)?;
        self.remember(rec.clone());
        // The branch follows the journal at once, before any file that could fail to be
        // written: a keep on record is the branch's commit.
        if status == Status::Keep && rec.commit != old_best {
            let branch = self.row.branch.clone();
            self.repo.move_branch(&branch, &rec.commit, &old_best)?;
        }
        self.add_result(rec)?;
        Ok(())
    }

    /// Records a run stopped by the user and puts the branch back at the best commit.
    pub(crate) fn record_interrupted(
        &mut self,
        rec: &mut ExperimentRecord,
        r: &RunResult,
        values: &[f64],
    ) -> Result<(), SessionError> {
        let why = "interrupted by the user".to_string();
        self.finalize(rec, r, values, Status::Interrupted, why)
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
