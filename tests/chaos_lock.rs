//! One session per repository: a second `autoresearch run` while one is running is refused
//! with exit code 6 and a message naming the holder, changing nothing; a session that
//! stopped (Ctrl-C) or was SIGKILLed does not leave the lock stuck.

mod chaos_support;
mod common;

use chaos_support::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const ORPHANS: &str = include_str!("fixtures/chaos/orphans.py");

/// A session whose baseline is running (and hanging) once this returns. The returned
/// tempdir holds the FIFO and must outlive the session.
fn running_session(dir: &std::path::Path) -> (Live, tempfile::TempDir) {
    let meet = tempfile::tempdir().unwrap();
    let ready = meet.path().join("ready");
    fifo(&ready);
    let live = Live::start(
        dir,
        1,
        &[
            ("ORPHAN_HANG", "1"),
            ("ORPHAN_READY", ready.to_str().unwrap()),
        ],
    );
    assert_eq!(wait_fifo(&ready), "ready\n");
    (live, meet)
}

#[test]
fn a_second_session_is_refused_with_exit_6_and_changes_nothing() {
    let dir = repo_with(ORPHANS, &config(""));
    let d = dir.path();
    let (live, _meet) = running_session(d);
    let rows = journal_rows(d);
    let head = common::git(d, &["rev-parse", "HEAD"]);

    let second = launch(d, 1, Kill::Never, &[]);
    assert_eq!(second.status.code(), Some(6), "{}", second.describe());
    let err = second.stderr.trim();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    let pid = live.child.id();
    assert!(
        err.contains("another autoresearch session")
            && err.contains(&format!("pid {pid}"))
            && err.contains("wait for it to finish"),
        "{err}"
    );
    assert!(
        second.events.is_empty(),
        "the refused session emitted events"
    );
    assert_eq!(
        journal_rows(d),
        rows,
        "the refused session wrote to the journal"
    );
    assert_eq!(common::git(d, &["rev-parse", "HEAD"]), head);

    // Ctrl-C on the first; then the lock is free and the session resumes.
    kill(Pid::from_raw(pid as i32), Signal::SIGINT).unwrap();
    let first = live.finish();
    assert_eq!(first.status.code(), Some(130), "{}", first.describe());
    let again = launch(d, 1, Kill::Never, &[]);
    assert!(again.status.success(), "{}", again.describe());
    check_consistent(d).unwrap();
}

#[test]
fn a_sigkilled_session_does_not_leave_the_lock_stuck() {
    let dir = repo_with(ORPHANS, &config(""));
    let d = dir.path();
    let (mut live, _meet) = running_session(d);
    let pid = live.child.id();
    live.child.kill().unwrap();
    assert!(live.finish().killed());
    // The lock file is still there, naming the dead process: only the kernel's flock counts.
    let lock = std::fs::read_to_string(d.join(".autoresearch/lock")).unwrap();
    assert_eq!(lock.trim(), pid.to_string());

    let next = launch(d, 2, Kill::Never, &[]);
    assert!(next.status.success(), "{}", next.describe());
    assert_eq!(next.events[0]["resumed"], true);
    check_consistent(d).unwrap();
    assert_eq!(finished_experiments(d), 2);
}
