//! Disk trouble mid-session: results.tsv's folder turning into a file, and a file size
//! limit standing in for a full disk (tests run as root, where chmod stops nothing). The
//! session stops with exit code 1 and one line naming the file and the fix; the journal is
//! intact, the branch at the best commit with a clean tree; once fixed, a run resumes.

mod chaos_support;
mod common;

use chaos_support::*;

const GATE: &str = include_str!("fixtures/chaos/gate.py");

#[test]
fn results_folder_gone_mid_session_stops_cleanly_and_resumes() {
    let dir = repo_with(GATE, &config("results = \"out/results.tsv\""));
    let d = dir.path();
    std::fs::create_dir(d.join("out")).unwrap();
    let meet = tempfile::tempdir().unwrap();
    let gate = meet.path().join("gate");
    fifo(&gate);
    let mut live = Live::start(d, 3, &[("CHAOS_GATE", gate.to_str().unwrap())]);
    live.wait_for("run_started", |e| e["iteration"] == 1);
    // While experiment 1 runs, its results file's folder becomes a file.
    std::fs::remove_dir_all(d.join("out")).unwrap();
    std::fs::write(d.join("out"), "not a folder").unwrap();
    open_gate(&gate);
    let run = live.finish();

    assert_eq!(run.status.code(), Some(1), "{}", run.describe());
    let err = run.stderr.trim();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("out/results.tsv")
            && err.contains("Not a directory")
            && err.contains("writable"),
        "{err}"
    );
    // The experiment itself was recorded before results.tsv failed, and the branch is at it.
    let rows = journal_rows(d);
    assert_eq!(
        rows.iter()
            .map(|r| (r.iteration, r.status.as_str()))
            .collect::<Vec<_>>(),
        [(0, "keep"), (1, "keep")]
    );
    std::fs::remove_file(d.join("out")).unwrap();
    check_at_best(d).unwrap();

    std::fs::create_dir(d.join("out")).unwrap();
    let resumed = launch(d, 1, Kill::Never, &[]);
    assert!(resumed.status.success(), "{}", resumed.describe());
    check_consistent_at(d, "out/results.tsv").unwrap();
    assert_eq!(finished_experiments(d), 2);
}

#[test]
fn a_full_disk_stops_cleanly_and_nothing_is_corrupted() {
    let dir = repo_with(TRAIN, &config(""));
    let d = dir.path();
    // 400 blocks of 512 bytes per file: the journal's write-ahead log reaches it after a few
    // experiments. SIGXFSZ is ignored so the write fails with EFBIG, as on a full disk.
    let run = launch_under("trap '' XFSZ; ulimit -f 400", d, 40, &[]);
    assert_eq!(run.status.code(), Some(1), "{}", run.describe());
    let err = run.stderr.trim();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("journal")
            && err.contains("check free disk space")
            && !err.contains("move it aside"),
        "{err}"
    );
    assert!(
        finished_experiments(d) >= 1,
        "the limit came too early to test much"
    );
    // Intact: the journal passes its integrity check and results.tsv agrees with it.
    check_after_kill(d).unwrap();
    check_at_best(d).unwrap();

    let before = finished_experiments(d);
    let resumed = launch(d, 2, Kill::Never, &[]);
    assert!(resumed.status.success(), "{}", resumed.describe());
    check_consistent(d).unwrap();
    assert_eq!(finished_experiments(d), before + 2);
}
