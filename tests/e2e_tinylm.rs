//! End to end on the bundled example: `autoresearch demo` copies examples/tinylm into a
//! fresh repository, prepares Python with numpy (a cached venv), and runs the baseline and
//! two experiments with a short budget. This is the README's first command, shortened.

mod common;
use common::*;

#[test]
fn demo_runs_the_baseline_and_two_experiments_on_tinylm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = bin()
        .args(["demo", "--budget", "2s", "-n", "2", "--json", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // Every event is one JSON object; the session ends normally.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.first().unwrap()["event"], "session_started");
    assert_eq!(events.last().unwrap()["event"], "session_ended");
    let decisions = events.iter().filter(|e| e["event"] == "decision").count();
    assert_eq!(decisions, 3, "baseline + 2 experiments");

    let rows = results(&dir);
    assert_eq!(rows.len(), 3, "{rows:?}");
    let baseline: f64 = rows[0][1].parse().unwrap();
    assert!(
        baseline > 0.5 && baseline < 8.0,
        "val_bpb {baseline} must beat a uniform guess (8.0)"
    );
    assert_eq!(rows[0][3], "keep");
    assert!(rows[0][4].starts_with("baseline"));
    // The built-in search turns the first constant first.
    assert!(
        rows[1][4].starts_with("LEARNING_RATE 2.5e-4 → 5.0e-4"),
        "{rows:?}"
    );
    for r in &rows {
        assert!(
            ["keep", "discard", "crash"].contains(&r[3].as_str()),
            "{r:?}"
        );
    }
    assert_eq!(dirty(&dir), "");
    // The research branch holds the best; the checkout stays where it was.
    let branches = git(&dir, &["branch", "--list", "autoresearch/*"]);
    assert_eq!(branches.lines().count(), 1, "{branches}");
    assert_eq!(git(&dir, &["rev-parse", "--abbrev-ref", "HEAD"]), "main");
    // The chart was refreshed after each experiment.
    let png = std::fs::read(dir.join(".autoresearch/progress.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // The reports say what the demo ran with (its budget, its -n), not what the example's
    // autoresearch.toml says (20s, max_iterations = 10).
    let status = bin().args(["status", "--repo"]).arg(&dir).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("- **Experiments:** 2 / 2 ("), "{status}");
    assert!(status.contains("- **Budget per run:** 2s"), "{status}");
}
