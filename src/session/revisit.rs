//! Revisiting near misses: when the proposer has nothing new to try, the session measures
//! the most promising discarded child of the best again, on seeds it has not run, and
//! decides on all its runs (old and new) rather than ending with compute to spare.
//!
//! Why: a candidate that gains about one σ cannot be confirmed by three runs, and the
//! built-in search never proposes a state twice, so without this a noisy session stops as
//! soon as every move from the best was tried once, leaving real gains unconfirmed. Each
//! revisit adds up to `1 + confirm_runs` runs; the k-th look at the same code tests at α/k
//! ([`Earlier::alpha`]), so looking again cannot make noise pass much more often.
//!
//! Eligible: noise-aware mode with `revisits > 0` and a noise estimate above 0; an
//! experiment discarded against the current best (its parent is the best's commit) whose
//! runs, pooled over its visits, still show a gain; at most `revisits` visits after the
//! first. The one with the largest gain in standard errors goes first. The best is measured
//! again first whenever it has fewer runs than that near miss will have (and, with no near
//! miss left, up to as many runs as a fully revisited one, `baseline_runs + revisits × (1 +
//! confirm_runs)` = 21 by default): a best that was lucky makes every candidate look worse.

use super::run::runs_in;
use super::{Session, SessionError};
use crate::agent::{FileChange, Proposal, Usage};
use crate::config::DecisionMode;
use crate::decision::policy::{self, Earlier, NoiseModel};
use crate::experiment::{ExperimentRecord, Status};
use std::collections::BTreeMap;

/// A near miss to measure again: the proposal that restores its files, and what its earlier
/// visits measured.
pub(crate) struct Revisit {
    pub proposal: Proposal,
    pub earlier: Earlier,
}

/// What the session does when the proposer has nothing new.
pub(crate) enum Leftover {
    /// Measure this near miss again.
    Revisit(Revisit),
    /// Run the best once more first; the text begins the note that says why.
    MeasureBest(String),
    /// Nothing worth a run: the session ends.
    Nothing,
}

impl Session<'_> {
    /// The most useful run left when the proposer is exhausted (see the module docs). The
    /// best and the near miss about to be revisited are kept at about the same number of
    /// runs: the variance of a difference of means is smallest when both sides are measured
    /// equally, and a best measured few times may simply have been lucky.
    pub(crate) fn leftover(&mut self) -> Result<Leftover, SessionError> {
        let cfg = self.config.decision.clone();
        if cfg.mode != DecisionMode::NoiseAware || cfg.revisits == 0 || self.cancel.requested() {
            return Ok(Leftover::Nothing);
        }
        let Some(best) = self.best().cloned() else {
            return Ok(Leftover::Nothing);
        };
        // One read of the journal's runs serves the noise model and every code below.
        let measurements = self.journal.measurements(self.row.id)?;
        let noise = super::progress::noise_of(&measurements);
        if noise.sigma().is_none_or(|s| s == 0.0) {
            return Ok(Leftover::Nothing);
        }
        let per_visit = 1 + cfg.confirm_runs as usize;
        let cap = cfg.baseline_runs as usize + cfg.revisits as usize * per_visit;
        let best_runs = runs_in(&measurements, &self.code_ids(&best));
        let best_n = best_runs.len();
        match self.near_miss_to_revisit(&best, &best_runs, &noise, &measurements) {
            Some((revisit, why)) => {
                let target = cap.min(revisit.earlier.runs.len() + per_visit);
                if best_n < target {
                    return Ok(Leftover::MeasureBest(format!(
                        "before measuring `{}` again (to {target} runs), measured the best again",
                        revisit.proposal.description
                    )));
                }
                self.note(why);
                Ok(Leftover::Revisit(revisit))
            }
            None if best_n < cap => Ok(Leftover::MeasureBest(
                "the proposer has nothing new and no near miss shows a gain: measured the best again"
                    .to_string(),
            )),
            None => Ok(Leftover::Nothing),
        }
    }

    /// The near miss with the strongest evidence of a gain over the best, with the note
    /// announcing its revisit; `None` when no discarded child of the best qualifies.
    fn near_miss_to_revisit(
        &self,
        best: &ExperimentRecord,
        best_runs: &[(u64, f64)],
        noise: &NoiseModel,
        measurements: &[crate::store::Measurement],
    ) -> Option<(Revisit, String)> {
        let cfg = &self.config.decision;
        let dir = self.config.metric.direction;
        // Each state's visits against the current best, oldest first.
        let mut visits: BTreeMap<&str, Vec<&ExperimentRecord>> = BTreeMap::new();
        for r in self.history.iter() {
            // Interrupted, rejected or unfinished visits measured nothing to decide on.
            if matches!(r.status, Status::Keep | Status::Discard | Status::Crash)
                && r.parent == best.commit
                && !r.state_hash.is_empty()
                && r.state_hash != best.state_hash
                && r.iteration > 0
            {
                visits.entry(r.state_hash.as_str()).or_default().push(r);
            }
        }
        // For every code that qualifies: (score, id of its last visit, its visits, its runs).
        type Ranked<'r> = (f64, i64, &'r [&'r ExperimentRecord], Vec<(u64, f64)>);
        let mut ranked: Vec<Ranked<'_>> = Vec::new();
        for recs in visits.values() {
            // Only a code that was run and discarded each time: a crash is never retried.
            if recs.iter().any(|r| r.status != Status::Discard)
                || recs.len() > cfg.revisits as usize
            {
                continue;
            }
            let last = recs.last().expect("a state has a visit");
            let runs = runs_in(measurements, &self.code_ids(last));
            if let Some(score) = policy::near_miss_score(dir, noise, best_runs, &runs) {
                ranked.push((score, last.id, recs.as_slice(), runs));
            }
        }
        // The strongest evidence first; the earlier experiment breaks a tie.
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (score, _, recs, runs) in ranked {
            let last = recs.last().expect("a state has a visit");
            // A commit pruned by `git gc` cannot be restored: try the next one.
            let Some(proposal) = self.restore_proposal(last) else {
                continue;
            };
            let earlier = Earlier {
                runs,
                visits: u32::try_from(recs.len()).unwrap_or(u32::MAX),
            };
            let why = format!(
                "the proposer has nothing new; measuring `{}` again (visit {}, {} run(s) so far, gain {score:.2} standard errors)",
                last.description,
                recs.len() + 1,
                earlier.runs.len(),
            );
            return Some((Revisit { proposal, earlier }, why));
        }
        None
    }

    /// A proposal that puts back the editable files as `rec` ran them, read from its commit.
    /// `None` when that commit is gone (pruned by `git gc`) or holds none of the files.
    pub(crate) fn restore_proposal(&self, rec: &ExperimentRecord) -> Option<Proposal> {
        let changes: Vec<FileChange> = self
            .config
            .editable
            .iter()
            .filter_map(|path| {
                let contents = self.repo.file_at(&rec.commit, path)?;
                Some(FileChange {
                    path: path.clone(),
                    contents,
                })
            })
            .collect();
        if changes.is_empty() {
            return None;
        }
        Some(Proposal {
            description: rec.description.clone(),
            category: rec.category,
            changes,
            scratchpad: None,
            usage: Usage::default(),
        })
    }
}
