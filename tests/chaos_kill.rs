//! The chaos test: the orchestrator is SIGKILLed at many exact points (inside the
//! proposal, between a journal write and the commit, mid-run, between the journal and
//! results.tsv, around a decision) and at the n-th JSON event of a kind, then run again.
//! After each resume every finished experiment is in the journal and in results.tsv exactly
//! once, the research branch is at the best commit, the user's checkout untouched, nothing of the killed session
//! runs, and the session goes on. `docs/robustness.md` publishes the count.

mod chaos_support;
mod common;

use chaos_support::{Kill, config_with, run_points, run_points_with};

/// `label:1..=max`, each in a killed session of `first` experiments.
fn at(label: &'static str, max: u64, first: u64) -> Vec<(Kill, u64)> {
    (1..=max).map(|n| (Kill::At(label, n), first)).collect()
}

#[test]
fn killed_around_proposals_and_commits() {
    let mut points = Vec::new();
    points.extend(at("propose", 4, 4));
    points.extend(at("proposal", 4, 4));
    points.extend(at("session_created", 1, 2));
    points.extend(at("files_written", 3, 3));
    points.extend(at("commit", 4, 4));
    run_points(&points);
}

#[test]
fn killed_around_journal_writes() {
    let mut points = Vec::new();
    // The first insert and update are the baseline's.
    points.extend(at("journal_insert", 5, 4));
    points.extend(at("journal_update", 6, 3));
    points.extend(at("measurement", 4, 3));
    run_points(&points);
}

#[test]
fn killed_mid_run_and_while_writing_results() {
    let mut points = Vec::new();
    // run_line:1 is the baseline's run.
    points.extend(at("run_line", 4, 3));
    // results:1 and results_tmp:1 are the rewrite at the session's start.
    points.extend(at("results_tmp", 4, 3));
    points.extend(at("results", 4, 3));
    run_points(&points);
}

#[test]
fn killed_around_decisions_resets_and_reports() {
    let mut points = Vec::new();
    // A discard resets nothing (the worker's worktree is checked out at the next parent
    // when the next run starts), so the decision and the progress report are the points.
    points.extend(at("decision", 4, 4));
    points.extend(at("report", 2, 4));
    run_points(&points);
}

#[test]
fn killed_by_the_test_at_the_nth_event() {
    let mut points = Vec::new();
    for (kind, max) in [
        ("proposal", 3),
        ("run_started", 4),
        ("run_finished", 3),
        ("decision", 3),
    ] {
        points.extend((1..=max).map(|n| (Kill::OnEvent(kind, n), 4)));
    }
    run_points(&points);
}

#[test]
fn killed_in_noise_aware_mode_with_repeats_and_rechecks() {
    // Three baseline seeds, a recheck of the best every two experiments.
    let cfg = config_with(
        "",
        "mode = \"noise-aware\"\nbaseline_runs = 3\nrecheck_every = 2",
    );
    let mut points = Vec::new();
    points.extend(at("measurement", 7, 3));
    points.extend(at("journal_update", 5, 3));
    points.extend((2..=5).map(|n| (Kill::At("results", n), 3)));
    points.extend(at("decision", 3, 3));
    run_points_with(&cfg, &points);
}
