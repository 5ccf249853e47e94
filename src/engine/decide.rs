//! What a finished run leads to: its measurement in the journal, and once nothing of its
//! trial is in flight, the policy's next step: more seeds, a keep or discard, an OOM retry,
//! a crash (and a repair request), a recheck's new mean.
//!
//! A keep moves the research branch from the trial's parent to its commit by
//! compare-and-swap. A candidate that beats its parent after another experiment became the
//! best meanwhile is not kept over a best it was never compared with: it is recorded as a
//! discard that says so, and its change is queued again on top of the new best (as a
//! combination), where it is measured like any other proposal.

use super::coordinator::{Engine, Ready};
use super::proposals::{Ask, Request};
use super::trial::{Kind, Trial};
use crate::agent::{AgentError, Proposal, Usage};
use crate::decision::policy::{self, Earlier, Verdict};
use crate::experiment::{ExperimentRecord, Status};
use crate::session::{BATCH_SCALE_KEY, EndReason, RunResult, SessionError, crash_reason, rel};
use crate::store::{Measurement, RunPlace};
use std::collections::BTreeMap;

impl Engine<'_, '_> {
    /// Journals a finished run and, when its trial has nothing else in flight, moves the
    /// trial on.
    pub(super) fn run_done(
        &mut self,
        id: u64,
        seed: u64,
        r: RunResult,
        place: &RunPlace,
    ) -> Result<(), SessionError> {
        self.s.journal.check_in_place()?;
        let root = self.s.repo.root().to_path_buf();
        let t = self.trials.get_mut(&id).expect("a run's trial");
        t.in_flight -= 1;
        self.s.send(r.finished(Some(place.worker), &t.rec));
        if r.interrupted() {
            t.interrupted.get_or_insert(r);
        } else {
            self.s.journal.add_run(
                &Measurement {
                    experiment_id: t.rec.id,
                    seed,
                    value: r.value.as_ref().ok().copied(),
                    log_path: Some(rel(&root, &r.outcome.log_path)),
                    job_id: r.outcome.job_id.clone(),
                    queue_s: r.outcome.queued.map(|q| q.as_secs_f64()),
                },
                place,
            )?;
            let first_baseline_run = matches!(t.kind, Kind::Baseline) && t.runs.is_empty();
            self.s
                .record_curve(t.rec.id, seed, &r, first_baseline_run)?;
            match &r.value {
                _ if r.pruned.is_some() => {
                    t.pruned.get_or_insert(r);
                }
                Ok(v) => {
                    t.runs.push((seed, *v));
                    t.last = Some(r);
                }
                Err(why) => {
                    if t.failed.is_none() {
                        let why = why.clone();
                        t.failed = Some((r, why, seed));
                    }
                }
            }
        }
        if t.in_flight > 0 {
            return Ok(());
        }
        let t = self.trials.remove(&id).expect("the trial");
        self.advance(id, t)
    }

    /// The next step of a trial with nothing in flight.
    fn advance(&mut self, id: u64, mut t: Trial) -> Result<(), SessionError> {
        if let Some(r) = t.interrupted.take() {
            if !matches!(t.kind, Kind::Remeasure { .. }) {
                let values = t.values();
                self.s.record_interrupted(&mut t.rec, &r, &values)?;
            }
            return Ok(());
        }
        match &t.kind {
            Kind::Baseline => {
                let values = t.values();
                if let Some((r, why, seed)) = t.failed.take() {
                    return Err(self
                        .s
                        .baseline_crashed(&mut t.rec, &r, &values, &why, seed)?);
                }
                if !policy::baseline_needs_more(&self.s.config.decision, &values) {
                    t.pending.clear();
                }
                if !t.pending.is_empty() {
                    self.trials.insert(id, t);
                    return Ok(());
                }
                let r = t.last.take().expect("a measured baseline has a run");
                self.s.baseline_measured(&mut t.rec, &r, &values)
            }
            Kind::Candidate { .. } if t.pruned.is_some() => {
                let r = t.pruned.take().expect("a pruned run");
                self.pruned(t, r)
            }
            Kind::Candidate { earlier } => {
                if let Some((r, why, seed)) = t.failed.take() {
                    return self.crashed(t, r, why, seed);
                }
                let verdict = policy::decide_again(
                    &self.s.config.decision,
                    self.s.config.metric.direction,
                    &t.noise,
                    &t.best_runs,
                    earlier,
                    &t.runs,
                );
                if let Verdict::Measure { seeds, .. } = &verdict {
                    t.pending = t.asks_for(seeds);
                    if !t.pending.is_empty() {
                        self.trials.insert(id, t);
                        return Ok(());
                    }
                }
                self.conclude(t, &verdict)
            }
            Kind::Remeasure { .. } => self.remeasured(t),
        }
    }

    /// Records a keep or discard.
    fn conclude(&mut self, mut t: Trial, verdict: &Verdict) -> Result<(), SessionError> {
        let Kind::Candidate { earlier } = &t.kind else {
            unreachable!("only candidates are concluded")
        };
        let mut status = verdict.status().unwrap_or(Status::Discard);
        let values: Vec<f64> = earlier.runs.iter().chain(&t.runs).map(|m| m.1).collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let best_now = self.s.best_commit();
        let stale = t.best_commit != best_now;
        let prev_best = self.s.best().and_then(|b| b.metric);
        // What it was compared with: its parent's value.
        let parent_value = if stale {
            let v: Vec<f64> = t.best_runs.iter().map(|m| m.1).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        } else {
            prev_best
        };
        let mut evidence = crate::session::evidence(
            parent_value,
            mean,
            verdict.evidence(),
            earlier,
            t.runs.len(),
        );
        let mut again = None;
        if status == Status::Keep && stale {
            status = Status::Discard;
            let best_it = self.s.best().map_or(0, |b| b.iteration);
            evidence = format!(
                "{evidence}; it beat its parent, but experiment {best_it} became the best while it ran: queued again against the new best"
            );
            again = Some(best_it);
        }
        if status == Status::Keep
            && (t.scale - self.s.platform.adjustments.batch_scale).abs() > 1e-12
        {
            t.rec.metrics.insert(BATCH_SCALE_KEY.into(), t.scale);
        }
        let r = t.last.take().expect("a decided experiment has a run");
        self.s.finalize(&mut t.rec, &r, &values, status, evidence)?;
        if status == Status::Keep {
            self.s.batch_scale = t.scale;
        }
        if let Some(best_it) = again {
            let runs = t.runs.clone();
            self.queue_again(&t.rec, &runs, best_it);
        }
        self.after_decision(&t.rec, prev_best)
    }

    /// Queues `rec`'s change again on the current best: re-based there when it applies
    /// (a combination of both gains), else its own files committed on top of the best (the
    /// lines both changed take its values) and measured against the best with the runs it
    /// has as an earlier visit.
    fn queue_again(&mut self, rec: &ExperimentRecord, runs: &[(u64, f64)], best_it: u64) {
        let Some(mut proposal) = self.s.restore_proposal(rec) else {
            return;
        };
        let best = self.s.best_commit();
        let files: BTreeMap<_, _> = proposal
            .changes
            .iter()
            .map(|c| (c.path.clone(), c.contents.clone()))
            .collect();
        let scratch = self.s.state_dir().join("tmp");
        let (files, earlier, how) =
            match super::proposals::rebase(&self.s.repo, &files, &rec.parent, &best, &scratch) {
                Some(rebased) => (rebased, Earlier::default(), "again, on top of"),
                None => {
                    let earlier = Earlier {
                        runs: runs.to_vec(),
                        visits: 1,
                    };
                    (files, earlier, "against")
                }
            };
        let hash = crate::agent::state_hash(&files);
        proposal.changes = files
            .into_iter()
            .map(|(path, contents)| crate::agent::FileChange { path, contents })
            .collect();
        proposal.description = format!("{} ({how} {best_it})", rec.description);
        self.ready.push_front(Ready {
            proposal,
            parent: best,
            earlier,
            prompt: None,
            hash,
            calls: Vec::new(),
            proposer: None,
        });
    }

    /// A candidate whose run the pruning rule stopped: recorded as pruned, with its note.
    fn pruned(&mut self, mut t: Trial, r: RunResult) -> Result<(), SessionError> {
        let values = t.values();
        let prev_best = self.s.best().and_then(|b| b.metric);
        let (note, _) = r.pruned.clone().expect("a pruned run");
        let reason = crate::session::pruned_reason(&note, values.len());
        self.s
            .finalize(&mut t.rec, &r, &values, Status::Pruned, reason)?;
        self.after_decision(&t.rec, prev_best)
    }

    /// A crashed candidate: one OOM retry at half the batch, else the crash is recorded
    /// and, for a trivial slip, the proposer is asked for a repair.
    fn crashed(
        &mut self,
        mut t: Trial,
        r: RunResult,
        why: String,
        seed: u64,
    ) -> Result<(), SessionError> {
        if r.oom() && t.rec.attempt == 1 && t.runs.is_empty() {
            let retry = self.s.oom_retry(&mut t.rec, &r, &why)?;
            let Kind::Candidate { earlier } = t.kind else {
                unreachable!("a crashed candidate")
            };
            let id = self.add_trial(retry, Kind::Candidate { earlier })?;
            if let Some(nt) = self.trials.get_mut(&id) {
                nt.scale = t.scale * 0.5;
                nt.best_commit = t.best_commit;
            }
            return Ok(());
        }
        let reason = crash_reason(&why, seed, t.runs.len());
        let values = t.values();
        self.s
            .finalize(&mut t.rec, &r, &values, Status::Crash, reason)?;
        let repair = if t.runs.is_empty() {
            self.s.repair_traceback(&t.rec, &r.outcome.log_path)
        } else {
            None
        };
        self.after_decision(&t.rec, None)?;
        if let Some(tail) = repair.filter(|_| self.stop != Some(EndReason::Interrupted)) {
            let snapshot =
                Box::new(self.snapshot(t.rec.iteration, t.rec.commit.clone(), Some(tail.clone())));
            self.send_request(Request {
                ask: Ask::Repair {
                    crashed: Box::new(t.rec),
                    traceback: tail,
                },
                snapshot,
            })?;
        }
        Ok(())
    }

    /// The proposer's answer to a repair request: committed as the crashed experiment's
    /// next attempt (on the current best), or a warning.
    pub(super) fn on_repair(
        &mut self,
        crashed: ExperimentRecord,
        result: Option<Result<Proposal, AgentError>>,
        prompt: Option<String>,
        usage: Usage,
    ) -> Result<(), SessionError> {
        let p = match result {
            None => return Ok(()),
            Some(Err(e)) => {
                self.s.unrecorded_cost_usd += usage.cost_usd;
                self.s.warn(format!(
                    "no repair for experiment {}: {e}",
                    crashed.iteration
                ));
                return Ok(());
            }
            Some(Ok(p)) => p,
        };
        let editable = self.s.config.editable.clone();
        let interrupted = self.stop == Some(EndReason::Interrupted);
        if interrupted || self.s.forbidden(&p.changes).is_some() {
            self.s.unrecorded_cost_usd += p.usage.cost_usd;
            if !interrupted {
                self.s.warn(format!(
                    "the repair for experiment {} edits non-editable files; not applied",
                    crashed.iteration
                ));
            }
            return Ok(());
        }
        let mut files = self.s.repo.files_at(&crashed.commit, &editable);
        files.extend(
            p.changes
                .iter()
                .map(|c| (c.path.clone(), c.contents.clone())),
        );
        let best = self.s.best_commit();
        if crashed.parent != best {
            let scratch = self.s.state_dir().join("tmp");
            let Some(f) =
                super::proposals::rebase(&self.s.repo, &files, &crashed.parent, &best, &scratch)
            else {
                self.s.warn(format!(
                    "the repair for experiment {} conflicts with the new best; not applied",
                    crashed.iteration
                ));
                return Ok(());
            };
            files = f;
        }
        let before = self.s.repo.files_at(&best, &editable);
        self.s.pending_prompt = prompt;
        if let Ok(rec) = self.s.commit_repair(&crashed, &p, &files, &before)? {
            self.add_trial(
                rec,
                Kind::Candidate {
                    earlier: Earlier::default(),
                },
            )?;
        }
        Ok(())
    }

    /// A recheck of the best came back: fold its value into the best's mean.
    fn remeasured(&mut self, t: Trial) -> Result<(), SessionError> {
        let Kind::Remeasure {
            before,
            what,
            leftover,
        } = t.kind
        else {
            unreachable!("a remeasure trial")
        };
        self.exhausted = None;
        match t.runs.last() {
            Some(&(seed, v)) => self.s.fold_into_best(&t.rec, &before, seed, v, &what),
            None => {
                let why = t.failed.map(|f| f.1).unwrap_or_default();
                self.s.warn(format!("{what}: the run failed: {why}"));
                if let Some(why) = leftover {
                    self.stop = Some(EndReason::Exhausted(why));
                }
                Ok(())
            }
        }
    }

    /// Emits the decision, queues a recheck of the best now and then, reports progress.
    fn after_decision(
        &mut self,
        rec: &ExperimentRecord,
        prev_best: Option<f64>,
    ) -> Result<(), SessionError> {
        self.s.announce(rec, prev_best);
        crate::chaos::point("decision");
        self.exhausted = None;
        self.s.since_recheck += 1;
        let rechecking = self
            .trials
            .values()
            .any(|t| matches!(t.kind, Kind::Remeasure { .. }));
        if policy::needs_recheck(&self.s.config.decision, self.s.since_recheck)
            && !self.s.cancel.requested()
            && !rechecking
        {
            self.s.since_recheck = 0;
            if !self.s.noise()?.is_deterministic() {
                self.start_remeasure("rechecked the best".into(), None)?;
            }
        }
        self.s.refresh_chart();
        self.s.maybe_report()
    }
}
