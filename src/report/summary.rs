//! The end-of-session summary (`autoresearch-summary.md`): what happened, what worked,
//! what didn't, and what to try next. Pure rendering; the caller writes the file.

use super::analysis::{Analysis, is_baseline, later_visits};
use super::next_steps::derive_next_steps;
use super::tally::{self, Tally};
use super::{
    SessionInfo, cell, direction_words, fmt_change, fmt_duration, fmt_metric, short_commit, shorten,
};
use crate::experiment::{ExperimentRecord, Status};
use std::collections::BTreeMap;
use std::fmt::Write;

const TOP_IMPROVEMENTS: usize = 10;
/// Rows per category in "what didn't work"; a long night would drown the page otherwise.
const FAILURES_PER_CATEGORY: usize = 10;
/// Unread lines of an imported file listed; the rest are counted.
const MAX_UNREAD_LINES: usize = 20;

/// Renders the summary. `next_steps` is the LLM's text when one wrote it; otherwise the
/// steps are derived from the data. `chart_path` is embedded as an image when given.
pub fn render_summary(
    info: &SessionInfo,
    records: &[ExperimentRecord],
    next_steps: Option<&str>,
    chart_path: Option<&str>,
) -> String {
    let a = Analysis::new(info.direction, records);
    let metric = &info.metric_name;
    let mut out = String::new();
    let _ = writeln!(out, "# Autoresearch summary\n");
    let _ = writeln!(out, "- **Branch:** {}", cell(&info.branch));
    let _ = writeln!(out, "- **Platform:** {}", cell(&info.platform));
    let ended = info.ended_at.as_deref().unwrap_or("still running");
    let _ = writeln!(out, "- **Dates:** {} → {ended}", info.started_at);
    let t = Tally::of(records);
    let _ = writeln!(
        out,
        "- **Experiments:** {} ({})",
        // An imported file has no limit to speak of.
        info.max_iterations.map_or_else(
            || t.experiments.to_string(),
            |_| tally::of_limit(t.experiments, info.max_iterations)
        ),
        t.breakdown()
    );
    // Zero means unknown (an imported file); a real session never has a zero budget.
    let or_unknown = |d: std::time::Duration| {
        if d.is_zero() {
            "unknown".to_string()
        } else {
            fmt_duration(d)
        }
    };
    let _ = writeln!(out, "- **Budget per run:** {}", or_unknown(info.budget));
    let _ = writeln!(
        out,
        "- **Metric:** {metric} ({})",
        direction_words(info.direction)
    );
    let _ = writeln!(out, "- **Time elapsed:** {}", or_unknown(info.elapsed));
    if let Some(line) = super::noise_line(info) {
        let _ = writeln!(out, "{line}");
    }
    if let Some(h) = &info.hypothesis {
        let _ = writeln!(out, "- **Hypothesis tested first:** {}", cell(h));
    }

    results_table(&a, metric, &mut out);
    top_improvements(&a, metric, &mut out);
    out.push_str(&super::by_proposer::render(info.direction, metric, records));
    what_did_not_work(records, &a, &mut out);

    let _ = writeln!(out, "\n## Recommended next steps\n");
    match next_steps {
        Some(text) if !text.trim().is_empty() => {
            let _ = writeln!(out, "{}", text.trim());
        }
        _ => out.push_str(&derive_next_steps(info, records)),
    }

    if let Some(path) = chart_path {
        let _ = writeln!(out, "\n## Progress chart\n\n![progress]({path})");
    }
    unread_lines(info, &mut out);
    out
}

/// Lines of an imported file the summary does not stand on, and why.
fn unread_lines(info: &SessionInfo, out: &mut String) {
    if info.unread_lines.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n## Lines not read\n\n{} line(s) of the file were not experiment rows:\n",
        info.unread_lines.len()
    );
    let _ = writeln!(out, "| Line | Why |");
    let _ = writeln!(out, "|---:|---|");
    for (line, why) in info.unread_lines.iter().take(MAX_UNREAD_LINES) {
        let _ = writeln!(out, "| {line} | {} |", cell(why));
    }
    if info.unread_lines.len() > MAX_UNREAD_LINES {
        let _ = writeln!(
            out,
            "\n…and {} more.",
            info.unread_lines.len() - MAX_UNREAD_LINES
        );
    }
}

fn results_table(a: &Analysis, metric: &str, out: &mut String) {
    let _ = writeln!(out, "\n## Results\n");
    let (Some(base), Some(best)) = (a.baseline, a.best) else {
        let _ = writeln!(out, "No kept result: nothing to compare yet.");
        return;
    };
    let (bv, sv) = (
        base.metric.unwrap_or(f64::NAN),
        best.metric.unwrap_or(f64::NAN),
    );
    let _ = writeln!(out, "| | {metric} | Iteration | Commit |");
    let _ = writeln!(out, "|---|---:|---:|---|");
    let _ = writeln!(
        out,
        "| Baseline | {} | {} | {} |",
        fmt_metric(bv),
        base.iteration,
        short_commit(&base.commit)
    );
    let _ = writeln!(
        out,
        "| Best | {} | {} | {} |",
        fmt_metric(sv),
        best.iteration,
        short_commit(&best.commit)
    );
    let verdict = if a.direction.better(sv, bv) {
        "better"
    } else {
        "no improvement"
    };
    let _ = writeln!(
        out,
        "| Improvement | {} | | {verdict} |",
        fmt_change(sv, bv)
    );
}

fn top_improvements(a: &Analysis, metric: &str, out: &mut String) {
    let _ = writeln!(out, "\n## Top improvements\n");
    let mut gains: Vec<_> = a.improvements.iter().filter(|i| i.gain > 0.0).collect();
    if gains.is_empty() {
        let _ = writeln!(out, "None: no experiment beat the baseline.");
        return;
    }
    // Largest own gain first; the earlier experiment wins a tie.
    gains.sort_by(|x, y| {
        y.gain
            .total_cmp(&x.gain)
            .then(x.record.iteration.cmp(&y.record.iteration))
    });
    let _ = writeln!(
        out,
        "Ranked by each experiment's own gain over the best before it.\n"
    );
    let _ = writeln!(
        out,
        "| Rank | Iteration | Commit | {metric} | Δ vs previous best | Category | Change |"
    );
    let _ = writeln!(out, "|---:|---:|---|---:|---:|---|---|");
    for (rank, i) in gains.iter().take(TOP_IMPROVEMENTS).enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            rank + 1,
            i.record.iteration,
            short_commit(&i.record.commit),
            fmt_metric(i.value),
            fmt_change(i.value, i.previous),
            i.record.category.as_str(),
            cell(&i.record.description)
        );
    }
}

/// One line saying how an experiment failed.
fn outcome(r: &ExperimentRecord, reference: Option<f64>, a: &Analysis) -> String {
    let why = if r.reason.trim().is_empty() {
        "no reason recorded".to_string()
    } else {
        shorten(r.reason.lines().next().unwrap_or(""), 80)
    };
    match (r.status, r.metric, reference) {
        (Status::Discard, Some(v), Some(best)) => {
            let gain = a.direction.gain(v, best);
            let change = fmt_change(v, best);
            if gain < 0.0 {
                format!("discard: worse, {change} vs the best then")
            } else {
                format!("discard: {change} vs the best then, not enough to keep")
            }
        }
        (Status::Discard, _, _) => "discard: no metric".to_string(),
        (Status::Crash, _, _) => format!("crash: {why}"),
        (status, _, _) => format!("{status}: {why}"),
    }
}

/// Notes on a discarded near miss that a later visit of the same code kept (a revisit).
fn with_later_visit(text: String, r: &ExperimentRecord, records: &[ExperimentRecord]) -> String {
    let kept_later = later_visits(records, r).find(|l| l.status == Status::Keep);
    match kept_later {
        Some(l) if r.status == Status::Discard => {
            format!(
                "{text}; kept when measured again (iteration {})",
                l.iteration
            )
        }
        _ => text,
    }
}

fn what_did_not_work(records: &[ExperimentRecord], a: &Analysis, out: &mut String) {
    let _ = writeln!(out, "\n## What didn't work\n");
    let mut by_cat: BTreeMap<&str, Vec<(&ExperimentRecord, Option<f64>)>> = BTreeMap::new();
    let mut rejected = 0usize;
    // An experiment is decided by its last attempt (the Tally's rule): a crash that an OOM
    // retry or a repair went on from is not a failure of its own.
    let superseded = tally::superseded(records);
    for (r, reference) in records.iter().zip(&a.reference) {
        if is_baseline(r) || superseded.contains(&r.id) {
            continue;
        }
        match r.status {
            Status::Discard | Status::Pruned | Status::Crash => by_cat
                .entry(r.category.as_str())
                .or_default()
                .push((r, *reference)),
            Status::Rejected => rejected += 1,
            _ => {}
        }
    }
    if by_cat.is_empty() {
        let _ = writeln!(out, "Nothing: every experiment that ran was kept.");
    }
    for (cat, failures) in &by_cat {
        let crashes = failures
            .iter()
            .filter(|(r, _)| r.status == Status::Crash)
            .count();
        let _ = writeln!(
            out,
            "### {cat} ({} discarded, {crashes} crashed)\n",
            failures.len() - crashes
        );
        let _ = writeln!(out, "| Iteration | Outcome | Change |");
        let _ = writeln!(out, "|---:|---|---|");
        for (r, reference) in failures.iter().take(FAILURES_PER_CATEGORY) {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                r.iteration,
                cell(&with_later_visit(outcome(r, *reference, a), r, records)),
                cell(&r.description)
            );
        }
        if failures.len() > FAILURES_PER_CATEGORY {
            let _ = writeln!(
                out,
                "\n…and {} more.",
                failures.len() - FAILURES_PER_CATEGORY
            );
        }
        out.push('\n');
    }
    if rejected > 0 {
        let _ = writeln!(
            out,
            "Rejected before running: {rejected} proposal(s) (forbidden path, no change or a repeat)."
        );
    }
    // One blank line before the next section, however the loop above ended.
    let trimmed = out.trim_end_matches('\n').len();
    out.truncate(trimmed);
    out.push('\n');
}
