//! The progress report (`.autoresearch/progress.md`): where the session stands right now.
//! Pure rendering; the caller writes the file and prints it.

use super::analysis::{Analysis, is_baseline};
use super::tally::{self, Tally};
use super::{
    SessionInfo, cell, direction_words, fmt_change, fmt_duration, fmt_metric, short_commit,
};
use crate::experiment::ExperimentRecord;
use std::fmt::Write;

/// How many of the latest experiments the table shows.
const LAST_N: usize = 5;

/// Renders progress.md for `records` (oldest first).
pub fn render_progress(info: &SessionInfo, records: &[ExperimentRecord]) -> String {
    let a = Analysis::new(info.direction, records);
    let mut out = String::new();
    let metric = &info.metric_name;
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(out, "# Autoresearch progress\n");
    let _ = writeln!(out, "- **Branch:** {}", cell(&info.branch));
    let _ = writeln!(
        out,
        "- **Metric:** {metric} ({})",
        direction_words(info.direction)
    );
    match a.best {
        Some(best) => {
            let _ = writeln!(
                out,
                "- **Best so far:** {} at iteration {} (commit {})",
                fmt_metric(best.metric.unwrap_or(f64::NAN)),
                best.iteration,
                short_commit(&best.commit)
            );
        }
        None => {
            let _ = writeln!(out, "- **Best so far:** none yet (no kept result)");
        }
    }
    match (a.baseline_value(), a.best_value()) {
        (Some(base), Some(best)) => {
            let verdict = if info.direction.better(best, base) {
                "better"
            } else {
                "no improvement yet"
            };
            let _ = writeln!(out, "- **Baseline:** {}", fmt_metric(base));
            let _ = writeln!(
                out,
                "- **Delta vs baseline:** {}, {verdict}",
                fmt_change(best, base)
            );
        }
        _ => {
            let _ = writeln!(out, "- **Baseline:** not measured yet");
        }
    }
    let t = Tally::of(records);
    let _ = writeln!(
        out,
        "- **Experiments:** {} ({})",
        tally::of_limit(t.experiments, info.max_iterations),
        t.breakdown()
    );
    if !info.budget.is_zero() {
        let _ = writeln!(out, "- **Budget per run:** {}", fmt_duration(info.budget));
    }
    let _ = writeln!(out, "- **Elapsed:** {}", fmt_duration(info.elapsed));
    if let Some(line) = super::noise_line(info) {
        let _ = writeln!(out, "{line}");
    }

    let _ = writeln!(out, "\n## Last {LAST_N} experiments\n");
    if records.is_empty() {
        let _ = writeln!(out, "No experiments yet.");
    } else {
        let _ = writeln!(out, "| Iteration | Commit | {metric} | Status | Change |");
        let _ = writeln!(out, "|---:|---|---:|---|---|");
        let start = records.len().saturating_sub(LAST_N);
        for r in &records[start..] {
            let value = r.metric.map_or_else(|| "—".to_string(), fmt_metric);
            let _ = writeln!(
                out,
                "| {} | {} | {value} | {} | {} |",
                r.iteration,
                short_commit(&r.commit),
                r.status,
                cell(&r.description)
            );
        }
    }

    let _ = writeln!(out, "\n## Current direction\n");
    match records.iter().rev().find(|r| !is_baseline(r)) {
        Some(r) => {
            let _ = writeln!(
                out,
                "**{}** (iteration {}): {}",
                r.category.as_str(),
                r.iteration,
                cell(&r.description)
            );
        }
        None => {
            let _ = writeln!(out, "No proposal yet: the baseline comes first.");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{Direction, Status};
    use crate::report::test_support::rec;
    use std::time::Duration;

    fn info() -> SessionInfo {
        SessionInfo {
            branch: "autoresearch/t".into(),
            platform: "CPU".into(),
            metric_name: "val_bpb".into(),
            direction: Direction::Minimize,
            budget: Duration::from_secs(300),
            max_iterations: None,
            started_at: "s".into(),
            ended_at: None,
            elapsed: Duration::ZERO,
            noise: None,
            unread_lines: Vec::new(),
            hypothesis: None,
            fixed_seed: None,
        }
    }

    #[test]
    fn empty_session_says_so() {
        let md = render_progress(&info(), &[]);
        assert!(md.contains("none yet"), "{md}");
        assert!(md.contains("No experiments yet."));
        assert!(md.contains("No proposal yet"));
        assert!(
            md.contains("0 / unlimited (0 kept, 0 discarded, 0 crashed)"),
            "{md}"
        );
    }

    #[test]
    fn table_keeps_only_the_last_five() {
        let mut records = vec![rec(0, Status::Keep, Some(1.0), "baseline")];
        for i in 1..=7 {
            records.push(rec(i, Status::Discard, Some(1.1), &format!("try {i}")));
        }
        let md = render_progress(&info(), &records);
        assert!(!md.contains("try 2 |") && md.contains("| try 3 |") && md.contains("try 7"));
        assert!(md.contains("(iteration 7): try 7"));
    }
}
