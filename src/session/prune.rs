//! Pruning in a session, for every worker of the engine: each run's
//! curve read from its output lines, the reference a candidate is judged against (built
//! from the journal), and the clean stop of a run the rule calls hopeless. The rule itself
//! is `decision::prune`; this never decides a keep or discard.

use super::{Session, SessionError};
use crate::config::PruneMode;
use crate::decision::curve::{Curve, CurveSpec};
use crate::decision::prune::{Finished, Reference, Watch};
use crate::runner::{Cancel, Exit, RunStop};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reads one run's curve from its lines and, for a judged candidate, stops the run when the
/// rule says so.
pub(crate) struct CurveWatch {
    spec: CurveSpec,
    budget_s: f64,
    started: Instant,
    curve: Curve,
    judge: Option<(Watch, RunStop)>,
    pruned: Option<(String, f64)>,
}

impl CurveWatch {
    /// `judge`: the reference and the run's own stop, for a candidate that may be pruned.
    pub(crate) fn new(
        spec: CurveSpec,
        budget: Duration,
        judge: Option<(Arc<Reference>, RunStop)>,
    ) -> CurveWatch {
        let budget_s = budget.as_secs_f64().max(1e-3);
        CurveWatch {
            spec,
            budget_s,
            started: Instant::now(),
            curve: Curve::default(),
            judge: judge.map(|(r, stop)| (Watch::new(r), stop)),
            pruned: None,
        }
    }

    /// One output line of the run. Every line counts (a burst of lines delivered late still
    /// holds one point each); with karpathy's pattern, a flood of other lines costs one
    /// substring search each (see [`CurveSpec::parse`]).
    pub(crate) fn line(&mut self, line: &str) {
        let Some((value, progress)) = self.spec.parse(line) else {
            return;
        };
        let frac = progress.unwrap_or_else(|| self.started.elapsed().as_secs_f64() / self.budget_s);
        self.curve.push(frac, value);
        if let Some((watch, stop)) = &mut self.judge {
            if let Some(note) = watch.point(frac, value) {
                self.pruned = Some((note.to_string(), frac));
                stop.stop();
            }
        }
    }

    /// Puts the curve on the run's result and, when the rule stopped it (and neither the
    /// session nor the run's own end came first), makes it a pruned run.
    pub(crate) fn finish(self, r: &mut super::RunResult, cancel: &Cancel) {
        r.curve = self.curve;
        if let Some((note, frac)) = self.pruned {
            if r.outcome.exit == Exit::Interrupted && !cancel.session_requested() {
                r.value = Err(note.clone());
                r.pruned = Some((note, frac));
            }
        }
    }
}

impl Session<'_> {
    /// What a candidate of the current best is judged against, when pruning is on and the
    /// record allows it (enough finished runs with curves, a curve of the best).
    pub(crate) fn prune_reference(&self) -> Result<Option<Arc<Reference>>, SessionError> {
        let cfg = &self.config.prune;
        let Some(best) = self.best().filter(|_| cfg.enabled()) else {
            return Ok(None);
        };
        let Some(best_value) = best.metric else {
            return Ok(None);
        };
        let code = |hash: &str, id: i64| {
            if hash.is_empty() {
                format!("#{id}")
            } else {
                hash.to_string()
            }
        };
        // Only the latest runs the reference keeps are read (what it drops, the rest of a
        // long session, is never parsed): the same curves, in the same order.
        let usable = |c: &crate::store::CurveRow| {
            c.pruned_at.is_none() && c.value.is_some_and(f64::is_finite) && !c.curve.is_empty()
        };
        let history: Vec<Finished> = self
            .journal
            .latest_curves(self.row.id, crate::decision::prune::MAX_HISTORY, usable)?
            .into_iter()
            .filter_map(|c| {
                Some(Finished {
                    code: code(&c.state_hash, c.experiment_id),
                    value: c.value?,
                    curve: c.curve,
                })
            })
            .collect();
        let r = Reference::new(
            cfg,
            self.config.metric.direction,
            &self.config.metric.name,
            history,
            &code(&best.state_hash, best.id),
            best_value,
            self.win_rate(),
        );
        Ok(r.armed().then(|| Arc::new(r)))
    }

    /// The share of decided candidates that were kept, smoothed (Laplace): how often a
    /// candidate wins, which the rule's error budget is scaled by.
    fn win_rate(&self) -> f64 {
        use crate::experiment::Status;
        let decided = self
            .history
            .iter()
            .filter(|r| r.iteration > 0)
            .filter(|r| matches!(r.status, Status::Keep | Status::Discard | Status::Pruned));
        let (mut kept, mut n) = (0usize, 0usize);
        for r in decided {
            n += 1;
            kept += usize::from(r.status == Status::Keep);
        }
        (kept + 1) as f64 / (n + 2) as f64
    }

    /// Journals a finished run's curve (nothing for a run that printed none), and with
    /// `[prune] enabled = true` says once when the baseline printed no curve.
    pub(crate) fn record_curve(
        &mut self,
        experiment_id: i64,
        seed: u64,
        r: &super::RunResult,
        first_baseline_run: bool,
    ) -> Result<(), SessionError> {
        if r.curve.is_empty() {
            if first_baseline_run && self.config.prune.mode == PruneMode::On {
                self.warn(
                    "[prune] enabled = true, but the baseline printed no training curve: nothing will be pruned; set [prune] curve = '…' to a pattern of its progress lines".into(),
                );
            }
            return Ok(());
        }
        let pruned_at = r.pruned.as_ref().map(|p| p.1);
        self.journal
            .add_curve(experiment_id, seed, &r.curve, pruned_at)?;
        Ok(())
    }
}
