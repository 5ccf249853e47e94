//! Recommended next steps derived from the records alone, for when no LLM writes them:
//! near misses worth a re-run, the categories that paid off, and knobs tried one way only.

use super::analysis::{Analysis, is_baseline, later_visits};
use super::{SessionInfo, cell, fmt_change, fmt_metric};
use crate::experiment::{Category, ExperimentRecord, Status};
use std::collections::BTreeMap;
use std::fmt::Write;

/// A discard counts as a near miss within this fraction of the best when the noise is
/// unknown; with a noise estimate, two standard deviations.
const NEAR_MISS_FRACTION: f64 = 0.001;
const MAX_NEAR_MISSES: usize = 5;
const MAX_CATEGORIES: usize = 3;

/// A numeric knob change parsed from a description like `MATRIX_LR 0.04 → 0.08`.
#[derive(Debug, Clone, PartialEq)]
pub struct KnobChange {
    pub name: String,
    pub from: f64,
    pub to: f64,
}

/// Parses `NAME a → b` (or `->`) at the start of a description.
pub fn parse_knob_change(description: &str) -> Option<KnobChange> {
    let mut words = description.split_whitespace();
    let name = words.next()?;
    let from = words.next()?;
    let arrow = words.next()?;
    let to = words.next()?;
    let name_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !name_ok || !(arrow == "→" || arrow == "->") {
        return None;
    }
    let num = |s: &str| s.trim_end_matches([',', ';']).parse::<f64>().ok();
    Some(KnobChange {
        name: name.to_string(),
        from: num(from)?,
        to: num(to)?,
    })
}

/// Writes the next-steps section body (markdown bullets) from the data.
pub fn derive_next_steps(info: &SessionInfo, records: &[ExperimentRecord]) -> String {
    let a = Analysis::new(info.direction, records);
    let mut out = String::new();
    near_misses(info, records, &a, &mut out);
    best_categories(records, &mut out);
    one_way_knobs(records, &mut out);
    if out.is_empty() {
        out.push_str("- Not enough experiments yet to suggest anything: run more.\n");
    }
    out
}

fn near_misses(info: &SessionInfo, records: &[ExperimentRecord], a: &Analysis, out: &mut String) {
    let Some(best) = a.best_value() else {
        return;
    };
    let margin = match info.noise {
        Some((sigma, _)) if sigma > 0.0 => 2.0 * sigma,
        _ => (best.abs() * NEAR_MISS_FRACTION).max(f64::EPSILON),
    };
    // A code measured again later (a revisited near miss) speaks through its last visit.
    let mut misses: Vec<(&ExperimentRecord, f64, f64)> = records
        .iter()
        .zip(&a.reference)
        .filter(|(r, _)| r.status == Status::Discard && later_visits(records, r).next().is_none())
        .filter_map(|(r, reference)| {
            let reference = (*reference)?;
            let gain = info.direction.gain(r.metric?, reference);
            // A discard better than the best is no near miss (and a failed run logged as a
            // number would be the first listed): only those within the margin below it.
            (gain >= -margin && gain <= 0.0).then_some((r, gain, reference))
        })
        .collect();
    if misses.is_empty() {
        return;
    }
    misses.sort_by(|x, y| y.1.total_cmp(&x.1));
    let _ = writeln!(
        out,
        "- **Near misses worth a re-run** (discarded within {} of the best at the time; \
         noise may have hidden a gain):",
        fmt_metric(margin)
    );
    for (r, _, reference) in misses.iter().take(MAX_NEAR_MISSES) {
        let value = r.metric.unwrap_or(f64::NAN);
        let _ = writeln!(
            out,
            "  - iteration {}: {} ({}, {} vs the best then)",
            r.iteration,
            cell(&r.description),
            fmt_metric(value),
            fmt_change(value, *reference)
        );
    }
}

fn best_categories(records: &[ExperimentRecord], out: &mut String) {
    let mut by_cat: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();
    // Experiments, as the Tally counts them: by their last attempt.
    let superseded = super::tally::superseded(records);
    for r in records
        .iter()
        .filter(|r| !is_baseline(r) && !superseded.contains(&r.id))
    {
        if !matches!(r.status, Status::Keep | Status::Discard | Status::Crash) {
            continue;
        }
        let e = by_cat.entry(r.category.as_str()).or_default();
        e.0 += 1;
        if r.status == Status::Keep {
            e.1 += 1;
        }
    }
    let mut cats: Vec<(&str, usize, usize)> = by_cat
        .into_iter()
        .filter(|(c, (_, kept))| *kept > 0 && *c != Category::Baseline.as_str())
        .map(|(c, (tried, kept))| (c, tried, kept))
        .collect();
    if cats.is_empty() {
        return;
    }
    // Highest keep rate first; more evidence breaks ties.
    cats.sort_by(|x, y| {
        let rx = x.2 as f64 / x.1 as f64;
        let ry = y.2 as f64 / y.1 as f64;
        ry.total_cmp(&rx).then(y.1.cmp(&x.1))
    });
    let _ = writeln!(out, "- **Categories that paid off** (keep rate):");
    for (c, tried, kept) in cats.iter().take(MAX_CATEGORIES) {
        let _ = writeln!(
            out,
            "  - {c}: {kept} of {tried} kept ({:.0}%)",
            *kept as f64 / *tried as f64 * 100.0
        );
    }
}

fn one_way_knobs(records: &[ExperimentRecord], out: &mut String) {
    // name -> (tried up, tried down, kept moves as text)
    let mut knobs: BTreeMap<String, (usize, usize, Vec<String>)> = BTreeMap::new();
    for r in records.iter().filter(|r| !is_baseline(r)) {
        let Some(k) = parse_knob_change(&r.description) else {
            continue;
        };
        let e = knobs.entry(k.name.clone()).or_default();
        if k.to > k.from {
            e.0 += 1;
        } else if k.to < k.from {
            e.1 += 1;
        }
        if r.status == Status::Keep {
            e.2.push(format!("{} → {}", k.from, k.to));
        }
    }
    let one_way: Vec<_> = knobs
        .iter()
        .filter(|(_, (up, down, _))| (*up == 0) != (*down == 0))
        .collect();
    if one_way.is_empty() {
        return;
    }
    let _ = writeln!(out, "- **Knobs explored in one direction only:**");
    for (name, (up, down, kept)) in one_way {
        let (went, try_dir, n) = if *up > 0 {
            ("increased", "decreasing", up)
        } else {
            ("decreased", "increasing", down)
        };
        let kept_note = if kept.is_empty() {
            "none kept".to_string()
        } else {
            format!("kept {}", kept.join(", "))
        };
        let _ = writeln!(
            out,
            "  - {name}: only {went} ({n} tried, {kept_note}); try {try_dir} it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_knob_changes() {
        let k = parse_knob_change("MATRIX_LR 0.04 → 0.08").unwrap();
        assert_eq!((k.name.as_str(), k.from, k.to), ("MATRIX_LR", 0.04, 0.08));
        assert!(parse_knob_change("DEPTH 8 -> 12").is_some());
        assert_eq!(parse_knob_change("use GELU instead of ReLU"), None);
        assert_eq!(parse_knob_change("LR fast → slow"), None);
    }

    #[test]
    fn a_discard_better_than_the_best_is_no_near_miss() {
        use crate::experiment::{Direction, Status};
        use crate::report::test_support::rec;
        let records = vec![
            rec(0, Status::Keep, Some(1.0), "baseline"),
            rec(1, Status::Discard, Some(0.5), "better but discarded"),
            rec(2, Status::Discard, Some(1.001), "just worse"),
        ];
        let mut info = crate::report::SessionInfo::for_records("val_bpb", Direction::Minimize);
        info.noise = Some((0.01, 3));
        let a = Analysis::new(Direction::Minimize, &records);
        let mut out = String::new();
        near_misses(&info, &records, &a, &mut out);
        assert!(out.contains("just worse"), "{out}");
        assert!(!out.contains("better but discarded"), "{out}");
    }
}
