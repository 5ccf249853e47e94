//! The chaos test with three workers: the orchestrator is SIGKILLed at exact points while
//! runs are in flight on several workers, then resumed; see `chaos_support::engine` for the
//! invariants checked after each.

mod chaos_support;
mod common;
use chaos_support::engine::run_engine_points;
use chaos_support::{Kill, config, config_with};

fn at(label: &'static str, ns: &[u64], first: u64) -> Vec<(Kill, u64)> {
    ns.iter().map(|&n| (Kill::At(label, n), first)).collect()
}

#[test]
fn killed_with_runs_in_flight_on_three_workers() {
    let mut points = Vec::new();
    points.extend(at("run_line", &[1, 3, 6], 4));
    points.extend(at("measurement", &[2, 4], 4));
    points.extend(at("commit", &[2, 3], 4));
    points.extend(at("decision", &[1, 3], 4));
    points.extend(at("results", &[2, 4], 4));
    points.extend(at("journal_update", &[3], 4));
    run_engine_points(&config(""), &points);
}

#[test]
fn killed_in_noise_aware_mode_with_parallel_repeats() {
    let cfg = config_with("", "mode = \"noise-aware\"");
    let mut points = Vec::new();
    points.extend(at("measurement", &[2, 3, 5], 3));
    points.extend(at("decision", &[2], 3));
    run_engine_points(&cfg, &points);
}
