//! What each proposer brought (a hybrid session has two: the LLM and the built-in search):
//! its experiments, keeps, rejections, the gain its keeps made and the money its calls
//! cost. Pure computation and rendering over records.

use super::analysis::is_baseline;
use super::{cell, fmt_metric};
use crate::experiment::{Direction, ExperimentRecord, Status};
use std::fmt::Write;

/// One proposer's share of a session.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Share {
    pub proposer: String,
    /// Proposals that ran (first attempts that were not rejected).
    pub experiments: u64,
    pub kept: u64,
    /// Proposals refused before they ran (an unusable answer, a repeat).
    pub rejected: u64,
    /// How far its keeps moved the best, in the metric's units (always ≥ 0).
    pub gain: f64,
    /// The estimated LLM cost recorded on its experiments and rejections.
    pub cost_usd: f64,
}

/// The shares of every proposer in `records`, in order of first appearance; the baseline
/// and imported rows are left out.
pub fn shares(direction: Direction, records: &[ExperimentRecord]) -> Vec<Share> {
    let mut ordered: Vec<&ExperimentRecord> = records.iter().collect();
    ordered.sort_by_key(|r| r.id);
    let mut out: Vec<Share> = Vec::new();
    let mut best: Option<f64> = None;
    for r in ordered {
        if is_baseline(r) {
            if r.status.in_results_tsv() && best.is_none() {
                best = r.metric;
            }
            continue;
        }
        let i = match out.iter().position(|s| s.proposer == r.proposer) {
            Some(i) => i,
            None => {
                out.push(Share {
                    proposer: r.proposer.clone(),
                    ..Share::default()
                });
                out.len() - 1
            }
        };
        let s = &mut out[i];
        s.cost_usd += r
            .metrics
            .get(crate::session::COST_KEY)
            .copied()
            .unwrap_or(0.0);
        match r.status {
            Status::Rejected => s.rejected += 1,
            Status::Running => {}
            _ if r.attempt == 1 => s.experiments += 1,
            _ => {}
        }
        if r.status == Status::Keep {
            s.kept += 1;
            if let Some(v) = r.metric {
                if let Some(b) = best.filter(|b| direction.better(v, *b)) {
                    s.gain += (b - v).abs();
                }
                if best.is_none_or(|b| direction.better(v, b)) {
                    best = Some(v);
                }
            }
        }
    }
    out.retain(|s| s.proposer != "imported");
    out
}

/// The "By proposer" section, or nothing when one proposer did everything.
pub fn render(direction: Direction, metric: &str, records: &[ExperimentRecord]) -> String {
    let shares = shares(direction, records);
    if shares.len() < 2 {
        return String::new();
    }
    let mut out = String::new();
    let _ = writeln!(out, "\n## By proposer\n");
    let _ = writeln!(
        out,
        "| Proposer | Experiments | Kept | Rejected | Gain in {} | LLM cost |",
        cell(metric)
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for s in &shares {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | ${:.2} |",
            cell(&s.proposer),
            s.experiments,
            s.kept,
            s.rejected,
            fmt_metric(s.gain),
            s.cost_usd
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_support::rec;

    #[test]
    fn gains_runs_and_money_go_to_who_earned_them() {
        let mut records = vec![
            rec(0, Status::Keep, Some(1.10), "baseline"),
            rec(1, Status::Keep, Some(1.00), "use GELU"),
            rec(2, Status::Keep, Some(0.97), "LR 0.1 → 0.2"),
            rec(3, Status::Discard, Some(0.99), "LR 0.2 → 0.4"),
            rec(4, Status::Rejected, None, "(no usable proposal)"),
        ];
        for (i, r) in records.iter_mut().enumerate() {
            r.id = i as i64 + 1;
        }
        records[0].proposer = "baseline".into();
        records[0].category = crate::experiment::Category::Baseline;
        records[1].proposer = "openai:m".into();
        records[1]
            .metrics
            .insert(crate::session::COST_KEY.into(), 0.25);
        records[4].proposer = "openai:m".into();
        records[4]
            .metrics
            .insert(crate::session::COST_KEY.into(), 0.05);
        let s = shares(Direction::Minimize, &records);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].proposer, "openai:m");
        assert_eq!((s[0].experiments, s[0].kept, s[0].rejected), (1, 1, 1));
        assert!((s[0].gain - 0.10).abs() < 1e-9);
        assert!((s[0].cost_usd - 0.30).abs() < 1e-9);
        assert_eq!(s[1].proposer, "search");
        assert_eq!((s[1].experiments, s[1].kept, s[1].rejected), (2, 1, 0));
        assert!((s[1].gain - 0.03).abs() < 1e-9);
        let md = render(Direction::Minimize, "val_bpb", &records);
        assert!(md.contains("## By proposer"), "{md}");
        assert!(
            md.contains("| openai:m | 1 | 1 | 1 | 0.100000 | $0.30 |"),
            "{md}"
        );
        assert!(
            md.contains("| search | 2 | 1 | 0 | 0.030000 | $0.00 |"),
            "{md}"
        );
        // One proposer: no section.
        records[1].proposer = "search".into();
        records[4].proposer = "search".into();
        assert_eq!(render(Direction::Minimize, "val_bpb", &records), "");
    }
}
