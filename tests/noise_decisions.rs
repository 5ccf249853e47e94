//! Black-box tests of noise-aware decisions: `autoresearch run` on temp git repos whose
//! fixture script's metric is `TRUE[LR] + NOISE[LR][seed]`, two planned tables, so every
//! run's value, and therefore every decision, is known in advance. Asserts the verdicts, the
//! journal's (seed, value) measurements, results.tsv's `n=…, ±…` notes and the evidence.
//!
//! The baseline (LR = 0.1) reads 1.00, 1.01, 0.99 on seeds 1, 2, 3: mean 1.0, σ̂ = 0.01 on
//! 2 df, so the threshold is z'·σ̂ = 4.53 × 0.01 = 0.0453 and a single run is kept at once
//! only beyond 2 × 0.0453 = 0.0906. The built-in search's first proposal is LR 0.1 → 0.2.

mod common;
use common::*;
use std::path::Path;

/// The fixture script: planned true values and per-(LR, seed) noise, from a JSON table.
fn planned(truth: &str, noise: &str) -> String {
    train_py(&format!(
        "TRUE = {truth}\nNOISE = {noise}\nseed = int(os.environ['AUTORESEARCH_SEED'])\nvalue = TRUE[LR] + NOISE[LR][seed - 1]\nprint(f'val_bpb: {{value:.6f}}')"
    ))
}

fn noise_aware() -> String {
    config("").replace("mode = \"greedy\"", "mode = \"noise-aware\"")
}

/// (experiment iteration, seed, value) of every measurement, in order.
fn measurements(dir: &Path) -> Vec<(i64, u64, f64)> {
    let conn = rusqlite::Connection::open(dir.join(".autoresearch/journal.sqlite")).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT e.iteration, m.seed, m.value FROM measurements m \
             JOIN experiments e ON e.id = m.experiment_id ORDER BY m.id",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Rounds to the 6 decimals the script prints, so planned values compare exactly.
fn at6(rows: Vec<(i64, u64, f64)>) -> Vec<(i64, u64, String)> {
    rows.into_iter()
        .map(|(i, s, v)| (i, s, format!("{v:.6}")))
        .collect()
}

fn m(i: i64, s: u64, v: &str) -> (i64, u64, String) {
    (i, s, v.to_string())
}

fn session(truth: &str, noise: &str, cfg: &str, n: &str) -> tempfile::TempDir {
    let dir = repo(&[
        ("train.py", &planned(truth, noise)),
        ("autoresearch.toml", cfg),
    ]);
    let out = run(dir.path(), &["-n", n]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(dirty(dir.path()), "");
    dir
}

/// Whether train.py at the best commit (the research branch) starts with `prefix`.
fn train_starts_with(dir: &Path, prefix: &str) -> bool {
    common::best_file(dir, "train.py").starts_with(prefix)
}

/// LR 0.2 has the baseline's true value; its seed-1 run is lucky (0.995 < 1.000).
const NOISE_ONLY_TRUTH: &str = "{0.1: 1.0, 0.2: 1.0}";
const NOISE_ONLY_NOISE: &str =
    "{0.1: [0.0, 0.01, -0.01, 0.0, 0.0], 0.2: [-0.005, 0.02, -0.01, 0.0, 0.0]}";

#[test]
fn a_noise_only_change_is_not_kept_after_a_paired_second_run() {
    let dir = session(NOISE_ONLY_TRUTH, NOISE_ONLY_NOISE, &noise_aware(), "1");
    assert_eq!(
        at6(measurements(dir.path())),
        [
            m(0, 1, "1.000000"),
            m(0, 2, "1.010000"),
            m(0, 3, "0.990000"),
            // Lucky by 0.005 on seed 1: a near miss, so seed 2 (the best's) pairs it...
            m(1, 1, "0.995000"),
            // ...and 1.020 against 1.010 turns the mean paired gain negative.
            m(1, 2, "1.020000"),
        ]
    );
    let j = journal(dir.path());
    assert_eq!(j[1].1, "discard", "{:?}", j[1]);
    assert!(j[1].3.contains("not better (n=2)"), "{:?}", j[1]);
    let rows = results(dir.path());
    assert_eq!(rows[0][1], "1.000000");
    assert_eq!(rows[0][4], "baseline (n=3, ±0.0100)");
    assert_eq!(rows[1][3], "discard");
    assert_eq!(rows[1][4], "LR 0.1 → 0.2 (n=2, ±0.0177)");
    assert!(train_starts_with(dir.path(), "LR = 0.1"));
}

#[test]
fn greedy_keeps_the_same_noise_only_change_because_its_one_run_was_lucky() {
    let dir = session(NOISE_ONLY_TRUTH, NOISE_ONLY_NOISE, &config(""), "1");
    assert_eq!(
        at6(measurements(dir.path())),
        [m(0, 1, "1.000000"), m(1, 1, "0.995000")]
    );
    let j = journal(dir.path());
    assert_eq!(j[1].1, "keep", "{:?}", j[1]);
    assert!(j[1].3.contains("greedy: Δ=-0.0050"), "{:?}", j[1]);
    let rows = results(dir.path());
    assert_eq!(rows[0][4], "baseline", "one run: no repeats note");
    assert_eq!(rows[1][4], "LR 0.1 → 0.2");
    assert!(train_starts_with(dir.path(), "LR = 0.2"));
}

#[test]
fn a_real_gain_within_the_noise_is_confirmed_with_paired_seeds_and_kept() {
    // True gain 0.03 < 0.0453: no single run can clear the threshold; three paired runs
    // (gains 0.028, 0.031, 0.028) pass the paired t-test.
    let dir = session(
        "{0.1: 1.0, 0.2: 0.97}",
        "{0.1: [0.0, 0.01, -0.01, 0.0, 0.0], 0.2: [0.002, 0.009, -0.008, 0.0, 0.0]}",
        &noise_aware(),
        "1",
    );
    assert_eq!(
        at6(measurements(dir.path()))[3..],
        [
            m(1, 1, "0.972000"),
            m(1, 2, "0.979000"),
            m(1, 3, "0.962000"),
        ]
    );
    let j = journal(dir.path());
    assert_eq!(j[1].1, "keep", "{:?}", j[1]);
    assert!(j[1].3.contains("paired t: p<0.001 (n=3)"), "{:?}", j[1]);
    let rows = results(dir.path());
    assert_eq!(rows[1][1], "0.971000", "results.tsv shows the mean");
    assert_eq!(rows[1][3], "keep");
    assert!(
        rows[1][4].starts_with("LR 0.1 → 0.2 (n=3, ±0.0"),
        "{:?}",
        rows[1]
    );
    assert!(train_starts_with(dir.path(), "LR = 0.2"));
}

#[test]
fn a_near_miss_that_fails_the_paired_test_is_discarded() {
    // A true gain of 0.005, buried in seed noise: gains 0.02, −0.005, 0.0 → mean 0.005,
    // paired t p ≈ 0.27.
    let dir = session(
        "{0.1: 1.0, 0.2: 0.995}",
        "{0.1: [0.0, 0.01, -0.01, 0.0, 0.0], 0.2: [-0.015, 0.02, -0.005, 0.0, 0.0]}",
        &noise_aware(),
        "1",
    );
    assert_eq!(
        measurements(dir.path()).len(),
        6,
        "3 baseline + 3 candidate"
    );
    let j = journal(dir.path());
    assert_eq!(j[1].1, "discard", "{:?}", j[1]);
    assert!(
        j[1].3.contains("paired t: p=0.") && j[1].3.contains("≥ 0.05"),
        "{:?}",
        j[1]
    );
    assert!(train_starts_with(dir.path(), "LR = 0.1"));
}

#[test]
fn a_large_real_gain_is_kept_after_one_run() {
    let dir = session(
        "{0.1: 1.0, 0.2: 0.8}",
        "{0.1: [0.0, 0.01, -0.01, 0.0, 0.0], 0.2: [0.003, 0.0, 0.0, 0.0, 0.0]}",
        &noise_aware(),
        "1",
    );
    assert_eq!(at6(measurements(dir.path()))[3..], [m(1, 1, "0.803000")]);
    let j = journal(dir.path());
    assert_eq!(j[1].1, "keep", "{:?}", j[1]);
    assert!(
        j[1].3.contains("beyond 2×4.53σ=0.0453 in 1 run (σ=0.0100)"),
        "{:?}",
        j[1]
    );
    let rows = results(dir.path());
    assert_eq!(rows[1][4], "LR 0.1 → 0.2", "one run: no repeats note");
}

#[test]
fn a_deterministic_script_costs_two_baseline_runs_and_one_run_per_candidate() {
    // val_bpb = (LR − 0.4)² + 1, no noise: LR 0.2 and 0.4 are kept, 0.8 discarded.
    let body = "value = (LR - 0.4) ** 2 + 1\nprint(f'val_bpb: {value:.6f}')";
    let cfg = noise_aware().replace("[decision]", "[decision]\nrecheck_every = 1");
    let dir = repo(&[("train.py", &train_py(body)), ("autoresearch.toml", &cfg)]);
    let out = run(dir.path(), &["-n", "3"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        at6(measurements(dir.path())),
        [
            // Two identical runs: σ = 0, no third.
            m(0, 1, "1.090000"),
            m(0, 2, "1.090000"),
            m(1, 1, "1.040000"),
            m(2, 1, "1.000000"),
            m(3, 1, "1.160000"),
            // And no drift recheck, even with recheck_every = 1: it cannot drift.
        ]
    );
    let j = journal(dir.path());
    let statuses: Vec<&str> = j.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(statuses, ["keep", "keep", "keep", "discard"]);
    assert!(
        j[1].3.contains("with σ=0 (deterministic, n=1)"),
        "{:?}",
        j[1]
    );
    let rows = results(dir.path());
    assert_eq!(rows[0][4], "baseline (n=2, ±0)");
    assert_eq!(rows[1][4], "LR 0.1 → 0.2");
}

#[test]
fn a_drift_recheck_remeasures_the_best_on_a_new_seed_and_updates_its_mean() {
    // recheck_every = 1: after the discard, the baseline runs again with seed 4, the first
    // it has not run (an independent run: a repeated seed would mostly repeat its number);
    // its record becomes the mean of four runs.
    let cfg = noise_aware().replace("[decision]", "[decision]\nrecheck_every = 1");
    let dir = session(NOISE_ONLY_TRUTH, NOISE_ONLY_NOISE, &cfg, "1");
    let ms = at6(measurements(dir.path()));
    assert_eq!(ms.len(), 6, "{ms:?}");
    assert_eq!(ms[5], m(0, 4, "1.000000"));
    let rows = results(dir.path());
    assert_eq!(rows[0][4], "baseline (n=4, ±0.0082)");
    let out = bin()
        .args(["status", "--repo"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // The user sees the pooled noise estimate: baseline (4 runs) and candidate (2 runs).
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("Noise estimate:** σ = 0.0"), "{shown}");
}

/// A fixture where only `LR` 0.1 (the baseline) and 0.2 are planned: every other value the
/// search tries (0.05, 0.15, 0.0667, 0.125, 0.08, 0.4, …) is clearly worse (1.1), so the
/// search runs out of moves after six experiments.
fn one_near_miss(truth_02: f64, noise_02: &str) -> String {
    train_py(&format!(
        "TRUE = {{0.1: 1.0, 0.2: {truth_02}}}\nNOISE = {{0.1: [0.0, 0.01, -0.01, 0.0, 0.0, 0.0, 0.0], 0.2: {noise_02}}}\nseed = int(os.environ['AUTORESEARCH_SEED'])\nvalue = TRUE.get(LR, 1.1) + (NOISE.get(LR, []) + [0.0] * 20)[seed - 1]\nprint(f'val_bpb: {{value:.6f}}')"
    ))
}

fn exhausting_session(train: &str, cfg: &str) -> (tempfile::TempDir, String) {
    let dir = repo(&[("train.py", train), ("autoresearch.toml", cfg)]);
    let out = run(dir.path(), &["-n", "20"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(dirty(dir.path()), "");
    (dir, text(&out))
}

/// The runs of one iteration: (seed, value).
fn runs_of(dir: &Path, iteration: i64) -> Vec<(u64, String)> {
    at6(measurements(dir))
        .into_iter()
        .filter(|r| r.0 == iteration)
        .map(|r| (r.1, r.2))
        .collect()
}

#[test]
fn a_near_miss_is_measured_again_when_the_search_runs_dry_and_kept_on_all_its_runs() {
    // LR 0.2 truly gains 0.02. Its first visit (seeds 1-3: 0.99, 0.985, 0.995 against 1.00,
    // 1.01, 0.99) gains 0.01 on average, paired t p ≈ 0.19: a near miss, discarded. The
    // five other moves are worse. With nothing new to try, the session first measures the
    // best again (seeds 4-6: 1.0 each) so that both sides will have six runs, then LR 0.2
    // on seeds 4-6 (0.985, 0.98, 0.985), and decides on all six runs: Δ = −0.0133, below
    // the 2.43σ̂ = 0.0145 that would keep it outright, so the pooled t decides (σ̂ = 0.0060
    // on 7 df, 6 runs against 6): p ≈ 0.003 < α/2 = 0.025.
    let cfg = noise_aware().replace("[decision]", "[decision]\nrecheck_every = 0\nrevisits = 3");
    let train = one_near_miss(0.98, "[0.01, 0.005, 0.015, 0.005, 0.0, 0.005]");
    let (dir, out) = exhausting_session(&train, &cfg);
    let j = journal(dir.path());
    assert_eq!(j[1].1, "discard", "{:?}", j[1]);
    assert!(j[1].3.contains("paired t: p=0.1"), "{:?}", j[1]);
    for e in &j[2..7] {
        assert_eq!(e.1, "discard", "{e:?}");
    }
    // The best got three more seeds before the revisit.
    let base: Vec<u64> = runs_of(dir.path(), 0).iter().map(|r| r.0).collect();
    assert_eq!(base, [1, 2, 3, 4, 5, 6]);
    assert!(
        out.contains(
            "before measuring `LR 0.1 → 0.2` again (to 6 runs), measured the best again on a new seed (4)"
        ),
        "{out}"
    );
    // The revisit: experiment 7, the same description, seeds new to it.
    assert_eq!(j[7].0, 7);
    assert_eq!(j[7].1, "keep", "{:?}", j[7]);
    assert!(
        j[7].3.starts_with("visit 2 (3 earlier run(s), 3 new): "),
        "{:?}",
        j[7]
    );
    assert!(
        j[7].3.contains("pooled t: p=0.00")
            && j[7].3.contains("(n=6 vs 6, df=7, Δ of the means -0.0133)")
            && j[7].3.contains("< α=0.025"),
        "{:?}",
        j[7]
    );
    let runs = runs_of(dir.path(), 7);
    assert_eq!(
        runs[..3],
        [
            (4, "0.985000".to_string()),
            (5, "0.980000".to_string()),
            (6, "0.985000".to_string())
        ]
    );
    // Once its children are all worse, the new best is measured again up to 12 runs.
    assert_eq!(
        runs[3..].iter().map(|r| r.0).collect::<Vec<_>>(),
        [7, 8, 9, 10, 11, 12]
    );
    assert_ne!(j[7].4, j[1].4, "the revisit is a commit of its own");
    let rows = results(dir.path());
    assert_eq!(rows[7][3], "keep");
    assert_eq!(
        rows[7][1], "0.983333",
        "the mean of all twelve runs of LR 0.2"
    );
    assert!(
        rows[7][4].starts_with("LR 0.1 → 0.2 (n=12, ±0.0"),
        "{:?}",
        rows[7]
    );
    assert!(train_starts_with(dir.path(), "LR = 0.2"));
    // The user is told why the same change runs again.
    assert!(
        out.contains("measuring `LR 0.1 → 0.2` again (visit 2, 3 run(s) so far"),
        "{out}"
    );
    // From the new best the search goes on (LR 0.4, …), then runs dry for good: every
    // other child of LR 0.2 is worse, so there is no near miss to revisit.
    assert!(j.len() > 8, "{j:?}");
    assert!(j[8..].iter().all(|e| e.1 == "discard"), "{j:?}");
    assert!(out.contains("nothing left to try"), "{out}");
    // The summary says the first visit's discard was overturned.
    let out = bin()
        .args(["summary", "--repo"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let md = std::fs::read_to_string(dir.path().join("autoresearch-summary.md")).unwrap();
    assert!(
        md.contains("not enough to keep; kept when measured again (iteration 7)"),
        "{md}"
    );
}

#[test]
fn a_noise_only_near_miss_measured_again_is_discarded_once_its_gain_is_gone() {
    // LR 0.2 is noise only. First visit: gains 0.01, −0.005, 0.01 → a near miss (p ≈ 0.21).
    // The best is measured to six runs first (seeds 4-6: 1.0 each); the revisit's seeds 4-6
    // read 1.0, 1.005, 1.01: the pooled gain shrinks to 0 on the sixth run (rule 1), and a
    // code with no gain left is not revisited again.
    let cfg = noise_aware().replace("[decision]", "[decision]\nrecheck_every = 0\nrevisits = 3");
    let train = one_near_miss(1.0, "[-0.01, 0.005, -0.01, 0.0, 0.005, 0.01, 0.0]");
    let (dir, out) = exhausting_session(&train, &cfg);
    let j = journal(dir.path());
    assert_eq!(j.len(), 8, "baseline, 6 moves, 1 revisit: {j:?}");
    assert_eq!(j[7].1, "discard", "{:?}", j[7]);
    assert!(
        j[7].3.starts_with("visit 2 (3 earlier run(s), 3 new): ")
            && j[7].3.contains("not better (n=6)"),
        "{:?}",
        j[7]
    );
    assert_eq!(runs_of(dir.path(), 7).len(), 3);
    assert!(train_starts_with(dir.path(), "LR = 0.1"));
    // With no near miss left, the best itself is measured again on new seeds (a lucky best
    // would make every candidate look worse), up to 3 + 3 × 3 = 12 runs, then the session
    // ends.
    let seeds: Vec<u64> = runs_of(dir.path(), 0).iter().map(|r| r.0).collect();
    assert_eq!(seeds, (1..=12).collect::<Vec<u64>>());
    assert!(
        out.contains("before measuring `LR 0.1 → 0.2` again (to 6 runs), measured the best again on a new seed (4)"),
        "{out}"
    );
    assert!(
        out.contains("no near miss shows a gain: measured the best again on a new seed (7)"),
        "{out}"
    );
    assert_eq!(results(dir.path())[0][4], "baseline (n=12, ±0.0043)");
    assert!(out.contains("nothing left to try"), "{out}");
}

#[test]
fn revisits_are_capped_and_greedy_never_revisits() {
    // The gain of the first test, but `revisits = 0`: the session ends when the search runs
    // dry, as does a greedy session (one run per code, never twice).
    let train = one_near_miss(0.98, "[0.01, 0.005, 0.015, -0.01, -0.005, -0.01, 0.0]");
    let off = noise_aware().replace("[decision]", "[decision]\nrecheck_every = 0\nrevisits = 0");
    let (dir, out) = exhausting_session(&train, &off);
    assert_eq!(journal(dir.path()).len(), 7, "baseline and 6 moves");
    assert!(!out.contains("again (visit"), "{out}");
    let (dir, out) = exhausting_session(&train, &config(""));
    let j = journal(dir.path());
    let commits: std::collections::HashSet<_> = j.iter().map(|e| e.4.clone()).collect();
    assert_eq!(commits.len(), j.len(), "no code measured twice: {j:?}");
    assert!(!out.contains("again (visit"), "{out}");
    assert!(out.contains("nothing left to try"), "{out}");
}

#[test]
fn a_session_killed_during_a_revisit_resumes_and_revisits_again() {
    // The first test's problem; the orchestrator is SIGKILLed just after committing the
    // revisit (the 7th commit: experiments 1-6 made one each), before journaling its sha.
    let cfg = noise_aware().replace("[decision]", "[decision]\nrecheck_every = 0\nrevisits = 3");
    let train = one_near_miss(0.98, "[0.01, 0.005, 0.015, 0.005, 0.0, 0.005]");
    let dir = repo(&[("train.py", &train), ("autoresearch.toml", &cfg)]);
    let killed = bin()
        .env("AUTORESEARCH_CHAOS_KILL_AT", "commit:7")
        .args(["run", "--yes", "--grace", "1", "--repo"])
        .arg(dir.path())
        .args(["-n", "20"])
        .output()
        .unwrap();
    assert!(!killed.status.success(), "{}", text(&killed));
    let out = run(dir.path(), &["-n", "20"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(dirty(dir.path()), "");
    let j = journal(dir.path());
    assert!(
        j.iter()
            .any(|e| e.0 == 7 && !matches!(e.1.as_str(), "keep" | "discard" | "crash")),
        "the killed visit is on record as unfinished: {j:?}"
    );
    // The killed visit ran nothing and is not counted; the resumed session visits again
    // and keeps LR 0.2 on the same evidence as an unbroken session.
    let keeps: Vec<_> = j.iter().filter(|e| e.1 == "keep" && e.0 > 0).collect();
    assert_eq!(keeps.len(), 1, "{j:?}");
    assert!(
        keeps[0]
            .3
            .starts_with("visit 2 (3 earlier run(s), 3 new): "),
        "{:?}",
        keeps[0]
    );
    assert!(train_starts_with(dir.path(), "LR = 0.2"));
    // Every finished experiment is once in results.tsv.
    let rows = results(dir.path());
    let finished = j
        .iter()
        .filter(|e| matches!(e.1.as_str(), "keep" | "discard" | "crash"))
        .count();
    assert_eq!(rows.len(), finished, "{rows:?}\n{j:?}");
}
