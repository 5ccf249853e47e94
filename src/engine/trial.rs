//! A trial: one experiment's measurements on their way to a decision. It holds what the
//! policy compares against (the best when the trial started: its commit, runs and the
//! noise), the runs so far, the seeds still to run and how many are in flight. The
//! coordinator asks the policy again each time nothing of the trial is in flight, so that
//! with one worker the decisions are the policy's one run at a time; with more, the seeds
//! the policy asks for at once run side by side.

use crate::decision::policy::{Earlier, NoiseModel};
use crate::experiment::ExperimentRecord;
use crate::session::RunResult;
use std::collections::VecDeque;

/// What a trial measures.
pub(crate) enum Kind {
    /// The unmodified code, on the baseline plan's seeds.
    Baseline,
    /// A proposal (or a near miss measured again, with its earlier runs).
    Candidate { earlier: Earlier },
    /// The best, once more on a new seed (a drift recheck, or before a revisit).
    /// `before`: its runs so far; `what` starts the note; `leftover`: it was the
    /// leftover of an exhausted proposer, so a failure ends the session.
    Remeasure {
        before: Vec<(u64, f64)>,
        what: String,
        leftover: Option<String>,
    },
}

pub(crate) struct Trial {
    pub rec: ExperimentRecord,
    pub kind: Kind,
    /// The batch scale its runs use (halved by an OOM retry).
    pub scale: f64,
    /// The best when the trial started: what a candidate is compared with.
    pub best_commit: String,
    pub best_runs: Vec<(u64, f64)>,
    pub noise: NoiseModel,
    /// This visit's (seed, value) runs.
    pub runs: Vec<(u64, f64)>,
    pub pending: VecDeque<u64>,
    pub in_flight: usize,
    /// Runs started for this record, for run folder labels.
    pub started: usize,
    /// The last good run (its log and metrics go on the record).
    pub last: Option<RunResult>,
    /// The first run that failed: its result, the reason and its seed.
    pub failed: Option<(RunResult, String, u64)>,
    /// A run the user interrupted.
    pub interrupted: Option<RunResult>,
    /// Runs a killed session left going, followed when their seed is dispatched.
    pub attached: Vec<crate::session::Attached>,
    /// A run the pruning rule stopped.
    pub pruned: Option<RunResult>,
}

impl Trial {
    pub(crate) fn new(
        rec: ExperimentRecord,
        kind: Kind,
        scale: f64,
        best_commit: String,
        best_runs: Vec<(u64, f64)>,
        noise: NoiseModel,
    ) -> Trial {
        Trial {
            rec,
            kind,
            scale,
            best_commit,
            best_runs,
            noise,
            runs: Vec::new(),
            pending: VecDeque::new(),
            in_flight: 0,
            started: 0,
            last: None,
            failed: None,
            interrupted: None,
            attached: Vec::new(),
            pruned: None,
        }
    }

    /// The run folder's label for the next run: `0007`, then `0007-2`, …
    pub(crate) fn next_label(&mut self) -> String {
        let k = self.started;
        self.started += 1;
        if k == 0 {
            format!("{:04}", self.rec.id)
        } else {
            format!("{:04}-{}", self.rec.id, k + 1)
        }
    }

    /// Of `seeds`, those this visit has not run yet.
    pub(crate) fn asks_for(&self, seeds: &[u64]) -> VecDeque<u64> {
        seeds
            .iter()
            .copied()
            .filter(|s| !self.runs.iter().any(|r| r.0 == *s))
            .collect()
    }

    pub(crate) fn values(&self) -> Vec<f64> {
        self.runs.iter().map(|r| r.1).collect()
    }
}
