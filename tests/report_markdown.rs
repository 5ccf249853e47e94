//! Snapshots of progress.md and the summary for fixed sessions (times are fixed in the
//! records, so nothing needs redacting), plus the rules the snapshots alone would not pin.

mod report_common;

use autoresearch::experiment::{Direction, Status};
use autoresearch::report::{SessionInfo, derive_next_steps, render_progress, render_summary};
use autoresearch::store::import::parse_results;
use report_common::{info, maximize_night, minimize_night};

#[test]
fn progress_minimize_snapshot() {
    let md = render_progress(&info(Direction::Minimize, "val_bpb"), &minimize_night());
    insta::assert_snapshot!(md);
}

#[test]
fn progress_maximize_snapshot() {
    let mut i = info(Direction::Maximize, "accuracy");
    i.max_iterations = None;
    i.noise = None;
    i.ended_at = None;
    let md = render_progress(&i, &maximize_night());
    insta::assert_snapshot!(md);
}

#[test]
fn summary_minimize_snapshot() {
    let md = render_summary(
        &info(Direction::Minimize, "val_bpb"),
        &minimize_night(),
        None,
        Some("progress.png"),
    );
    insta::assert_snapshot!(md);
}

#[test]
fn summary_maximize_snapshot() {
    let mut i = info(Direction::Maximize, "accuracy");
    i.noise = None;
    let md = render_summary(&i, &maximize_night(), None, Some("progress.png"));
    insta::assert_snapshot!(md);
}

#[test]
fn summary_of_an_imported_file_snapshot() {
    let text = include_str!("fixtures/report/extra_columns_crlf.tsv");
    let imported = parse_results(text);
    let records = imported.to_records();
    let i = SessionInfo::for_records(&imported.metric_name, Direction::Minimize);
    assert_eq!(autoresearch::report::Tally::of(&records).experiments, 4);
    let md = render_summary(&i, &records, None, None);
    insta::assert_snapshot!(md);
}

#[test]
fn progress_best_and_delta_for_maximize() {
    let md = render_progress(&info(Direction::Maximize, "accuracy"), &maximize_night());
    assert!(
        md.contains("**Best so far:** 0.655000 at iteration 4"),
        "{md}"
    );
    assert!(md.contains("+0.043000 (+7.03%), better"), "{md}");
}

#[test]
fn summary_uses_llm_text_when_given() {
    let md = render_summary(
        &info(Direction::Minimize, "val_bpb"),
        &minimize_night(),
        Some("  Try a longer warmdown.  \n"),
        None,
    );
    let steps = md.split("## Recommended next steps").nth(1).unwrap();
    assert_eq!(steps.trim(), "Try a longer warmdown.");
    assert!(!md.contains("![progress]"));
}

#[test]
fn top_improvements_are_ranked_by_own_gain() {
    let md = render_summary(
        &info(Direction::Minimize, "val_bpb"),
        &minimize_night(),
        None,
        None,
    );
    let top = md.split("## Top improvements").nth(1).unwrap();
    let top = top.split("## What didn't work").next().unwrap();
    // Own gains: it1 0.0047, it4 0.0052, it8 0.0019.
    let order: Vec<usize> = ["| 1 | 4 |", "| 2 | 1 |", "| 3 | 8 |"]
        .iter()
        .map(|row| {
            top.find(row)
                .unwrap_or_else(|| panic!("{row} missing in {top}"))
        })
        .collect();
    assert!(order[0] < order[1] && order[1] < order[2], "{top}");
}

#[test]
fn derived_steps_find_near_misses_and_one_way_knobs() {
    let steps = derive_next_steps(&info(Direction::Minimize, "val_bpb"), &minimize_night());
    // 0.9884 vs best-at-the-time 0.9880 is within 2σ = 0.0016.
    assert!(
        steps.contains("iteration 5: ADAM_BETA2 0.95 → 0.99"),
        "{steps}"
    );
    // 0.9951 vs 0.9932 (0.0019 worse) is not.
    assert!(!steps.contains("iteration 2:"), "{steps}");
    assert!(
        steps.contains(
            "WARMDOWN_RATIO: only increased (2 tried, kept 0.2 → 0.4, 0.4 → 0.5); try decreasing it"
        ),
        "{steps}"
    );
    assert!(
        steps.contains("training-dynamics: 2 of 2 kept (100%)"),
        "{steps}"
    );
}

#[test]
fn empty_records_render_without_panicking() {
    let i = info(Direction::Minimize, "val_bpb");
    let md = render_summary(&i, &[], None, None);
    assert!(md.contains("No kept result"));
    assert!(md.contains("Not enough experiments"));
    let only_crash = vec![report_common::rec(
        0,
        Status::Crash,
        None,
        autoresearch::experiment::Category::Baseline,
        "baseline",
        "boom",
    )];
    assert!(render_progress(&i, &only_crash).contains("none yet"));
}
