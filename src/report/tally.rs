//! The one count of a session's experiments that every report, the chart title and the
//! terminal's final line print. Pure computation over records; never a second way to count.
//!
//! An experiment is one proposal that ran: its attempts (an OOM retry, a repair) are one
//! experiment, decided by its last attempt. The baseline is not an experiment; proposals
//! rejected before running are counted apart.

use super::analysis::is_baseline;
use crate::experiment::{ExperimentRecord, Status};
use serde::Serialize;
use std::collections::BTreeMap;

/// How many experiments ran and how each ended (by its last attempt).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Proposals that ran (kept + discarded + crashed + interrupted).
    pub experiments: u64,
    pub kept: u64,
    /// Discarded after their runs, or pruned during one (those are counted again in
    /// `pruned`).
    pub discarded: u64,
    pub crashed: u64,
    /// Discards stopped early by the pruning rule.
    pub pruned: u64,
    pub interrupted: u64,
    /// Started and not finished yet (a live session); not in `experiments`.
    pub running: u64,
    /// Extra attempts after an out-of-memory crash (half the batch).
    pub oom_retries: u64,
    /// Extra attempts after a trivial crash (the proposer's repair).
    pub repairs: u64,
    /// Proposals refused before they ran (forbidden path, no change, a repeat, no answer).
    pub rejected: u64,
    /// Rows the baseline has (its repeated seeds are in one row).
    pub baseline_runs: u64,
}

impl Tally {
    /// Counts `records` (any order; attempts are grouped by iteration).
    pub fn of(records: &[ExperimentRecord]) -> Tally {
        let mut t = Tally::default();
        let mut by_iteration: BTreeMap<u64, Vec<&ExperimentRecord>> = BTreeMap::new();
        for r in records {
            if is_baseline(r) {
                if r.status.in_results_tsv() {
                    t.baseline_runs += 1;
                }
                continue;
            }
            by_iteration.entry(r.iteration).or_default().push(r);
        }
        for attempts in by_iteration.values_mut() {
            attempts.sort_by_key(|r| (r.attempt, r.id));
            // The attempt that decides: the last one that ran (a rejected repair leaves the
            // crash it tried to fix as the outcome).
            let decided = attempts.iter().rev().find(|r| r.status != Status::Rejected);
            let Some(last) = decided else {
                t.rejected += 1;
                continue;
            };
            for r in attempts.iter().filter(|r| r.attempt > 1) {
                if r.status == Status::Rejected {
                    continue;
                }
                if r.description.contains("OOM retry") {
                    t.oom_retries += 1;
                } else {
                    t.repairs += 1;
                }
            }
            match last.status {
                Status::Keep => t.kept += 1,
                Status::Discard => t.discarded += 1,
                Status::Pruned => {
                    t.discarded += 1;
                    t.pruned += 1;
                }
                Status::Crash => t.crashed += 1,
                Status::Interrupted => t.interrupted += 1,
                Status::Running => {
                    t.running += 1;
                    continue;
                }
                Status::Rejected => unreachable!("filtered above"),
            }
            t.experiments += 1;
        }
        t
    }

    /// `3 kept, 10 discarded, 2 crashed` plus what else happened (`1 interrupted`, `1 OOM
    /// retry`, `2 repairs`, `4 rejected proposals`, `1 running`), zeros of those left out.
    pub fn breakdown(&self) -> String {
        let mut parts = vec![format!(
            "{} kept, {} discarded, {} crashed",
            self.kept, self.discarded, self.crashed
        )];
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut extra = Vec::new();
        if self.pruned > 0 {
            extra.push(format!("{} of the discards pruned early", self.pruned));
        }
        if self.interrupted > 0 {
            extra.push(format!("{} interrupted", self.interrupted));
        }
        if self.running > 0 {
            extra.push(format!("{} running", self.running));
        }
        if self.oom_retries > 0 {
            extra.push(plural(self.oom_retries, "OOM retry", "OOM retries"));
        }
        if self.repairs > 0 {
            extra.push(plural(self.repairs, "repair", "repairs"));
        }
        if self.rejected > 0 {
            extra.push(plural(
                self.rejected,
                "rejected proposal",
                "rejected proposals",
            ));
        }
        if !extra.is_empty() {
            parts.push(extra.join(", "));
        }
        parts.join("; ")
    }

    /// `15 experiments (3 kept, 10 discarded, 2 crashed; 1 OOM retry)`.
    pub fn headline(&self) -> String {
        let noun = if self.experiments == 1 {
            "experiment"
        } else {
            "experiments"
        };
        format!("{} {noun} ({})", self.experiments, self.breakdown())
    }
}

/// The ids of attempts that a later attempt of the same experiment went on from (the crash
/// before an OOM retry or a repair): the Tally counts an experiment by its last attempt,
/// and so must every section that counts records.
pub fn superseded(records: &[ExperimentRecord]) -> std::collections::BTreeSet<i64> {
    let mut last: BTreeMap<u64, (u32, i64)> = BTreeMap::new();
    for r in records.iter().filter(|r| r.status != Status::Rejected) {
        let e = last.entry(r.iteration).or_insert((r.attempt, r.id));
        *e = (*e).max((r.attempt, r.id));
    }
    records
        .iter()
        .filter(|r| r.status != Status::Rejected)
        .filter(|r| {
            last.get(&r.iteration)
                .is_some_and(|&l| l != (r.attempt, r.id))
        })
        .map(|r| r.id)
        .collect()
}

/// `9 / 15`, `9 / unlimited`: experiments against the limit that stops the session.
pub fn of_limit(done: u64, limit: Option<u64>) -> String {
    match limit {
        Some(n) => format!("{done} / {n}"),
        None => format!("{done} / unlimited"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_support::rec;

    #[test]
    fn attempts_are_one_experiment_decided_by_the_last() {
        let mut retry = rec(
            1,
            Status::Keep,
            Some(0.9),
            "LR 1 → 2 (OOM retry: batch scale ×0.5)",
        );
        retry.attempt = 2;
        retry.id = 10;
        let mut repair = rec(3, Status::Crash, None, "fix");
        repair.attempt = 2;
        repair.id = 11;
        let records = vec![
            rec(0, Status::Keep, Some(1.0), "baseline"),
            rec(1, Status::Crash, None, "LR 1 → 2"),
            retry,
            rec(2, Status::Discard, Some(1.1), "b"),
            rec(3, Status::Crash, None, "c"),
            repair,
            rec(4, Status::Rejected, None, "d"),
            rec(5, Status::Running, None, "e"),
        ];
        let t = Tally::of(&records);
        assert_eq!(
            (t.experiments, t.kept, t.discarded, t.crashed, t.running),
            (3, 1, 1, 1, 1)
        );
        assert_eq!(
            (t.oom_retries, t.repairs, t.rejected, t.baseline_runs),
            (1, 1, 1, 1)
        );
        assert_eq!(
            t.headline(),
            "3 experiments (1 kept, 1 discarded, 1 crashed; 1 running, 1 OOM retry, 1 repair, 1 rejected proposal)"
        );
    }

    #[test]
    fn a_rejected_repair_leaves_the_crash() {
        let mut rejected = rec(1, Status::Rejected, None, "repair");
        rejected.attempt = 2;
        let records = vec![rec(1, Status::Crash, None, "a"), rejected];
        let t = Tally::of(&records);
        assert_eq!(
            (t.experiments, t.crashed, t.rejected, t.repairs),
            (1, 1, 0, 0)
        );
        assert_eq!(of_limit(1, None), "1 / unlimited");
        assert_eq!(of_limit(1, Some(4)), "1 / 4");
    }
}
