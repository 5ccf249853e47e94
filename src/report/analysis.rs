//! The numbers every report shares: baseline, best, the running best each experiment was
//! judged against, and each kept result's own gain. Pure computation over records.

use crate::experiment::{Direction, ExperimentRecord, Status};

/// A kept experiment and how much it moved the best.
#[derive(Debug, Clone, Copy)]
pub struct Improvement<'a> {
    pub record: &'a ExperimentRecord,
    /// The metric it has.
    pub value: f64,
    /// The best before it.
    pub previous: f64,
    /// Positive when better, in the metric's units (direction applied).
    pub gain: f64,
}

/// Derived facts about a list of records (oldest first).
#[derive(Debug, Clone)]
pub struct Analysis<'a> {
    pub direction: Direction,
    pub baseline: Option<&'a ExperimentRecord>,
    /// The best kept result (the earliest one on a tie).
    pub best: Option<&'a ExperimentRecord>,
    /// Per record, the best kept metric before it: what it had to beat.
    pub reference: Vec<Option<f64>>,
    /// Kept results after the baseline, in order.
    pub improvements: Vec<Improvement<'a>>,
}

/// True for the unmodified code measured first.
pub fn is_baseline(r: &ExperimentRecord) -> bool {
    r.iteration == 0 || r.category == crate::experiment::Category::Baseline
}

/// The experiments after `r` that ran the same code (a near miss measured again), in
/// order; none for a record with no state hash (an imported row).
pub fn later_visits<'a>(
    records: &'a [ExperimentRecord],
    r: &'a ExperimentRecord,
) -> impl Iterator<Item = &'a ExperimentRecord> {
    records
        .iter()
        .filter(move |l| l.id > r.id && !r.state_hash.is_empty() && l.state_hash == r.state_hash)
}

impl<'a> Analysis<'a> {
    pub fn new(direction: Direction, records: &'a [ExperimentRecord]) -> Self {
        let kept_metric = |r: &ExperimentRecord| match (r.status, r.metric) {
            (Status::Keep, Some(m)) if m.is_finite() => Some(m),
            _ => None,
        };
        // The baseline is the first kept measurement of the unmodified code; files from
        // elsewhere may lack one, and then the first kept result stands in.
        let baseline = records
            .iter()
            .find(|r| is_baseline(r) && kept_metric(r).is_some())
            .or_else(|| records.iter().find(|r| kept_metric(r).is_some()));

        let mut best: Option<(&ExperimentRecord, f64)> = None;
        let mut reference = Vec::with_capacity(records.len());
        let mut improvements = Vec::new();
        for r in records {
            reference.push(best.map(|(_, v)| v));
            let Some(value) = kept_metric(r) else {
                continue;
            };
            match best {
                None => best = Some((r, value)),
                Some((_, previous)) => {
                    let is_base = baseline.is_some_and(|b| std::ptr::eq(b, r));
                    if !is_base {
                        improvements.push(Improvement {
                            record: r,
                            value,
                            previous,
                            gain: direction.gain(value, previous),
                        });
                    }
                    if direction.better(value, previous) {
                        best = Some((r, value));
                    }
                }
            }
        }
        Analysis {
            direction,
            baseline,
            best: best.map(|(r, _)| r),
            reference,
            improvements,
        }
    }

    pub fn baseline_value(&self) -> Option<f64> {
        self.baseline.and_then(|r| r.metric)
    }

    pub fn best_value(&self) -> Option<f64> {
        self.best.and_then(|r| r.metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_support::rec;

    #[test]
    fn running_best_and_gains_for_minimize() {
        let records = vec![
            rec(0, Status::Keep, Some(1.0), "baseline"),
            rec(1, Status::Discard, Some(1.1), "a"),
            rec(2, Status::Keep, Some(0.9), "b"),
            rec(3, Status::Crash, None, "c"),
            rec(4, Status::Keep, Some(0.85), "d"),
        ];
        let a = Analysis::new(Direction::Minimize, &records);
        assert_eq!(a.baseline_value(), Some(1.0));
        assert_eq!(a.best_value(), Some(0.85));
        assert_eq!(
            a.reference,
            vec![None, Some(1.0), Some(1.0), Some(0.9), Some(0.9)]
        );
        let gains: Vec<f64> = a.improvements.iter().map(|i| i.gain).collect();
        assert!((gains[0] - 0.1).abs() < 1e-12 && (gains[1] - 0.05).abs() < 1e-12);
    }

    #[test]
    fn maximize_picks_the_highest() {
        let records = vec![
            rec(0, Status::Keep, Some(0.5), "baseline"),
            rec(1, Status::Keep, Some(0.7), "a"),
            rec(2, Status::Discard, Some(0.9), "noise"),
        ];
        let a = Analysis::new(Direction::Maximize, &records);
        assert_eq!(a.best_value(), Some(0.7));
        assert!((a.improvements[0].gain - 0.2).abs() < 1e-12);
    }
}
