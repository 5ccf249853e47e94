//! Orphans: a training script that leaves a child, a `setsid` escapee and a daemonised
//! grandchild behind. Whether the orchestrator is SIGKILLed mid-run (then resumed), stopped
//! with Ctrl-C, or the run times out, nothing of the run is left alive afterwards. Checked
//! by scanning /proc for the processes' own marker, not by asking the tool.

mod chaos_support;
mod common;

use chaos_support::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const ORPHANS: &str = include_str!("fixtures/chaos/orphans.py");

/// A marker no other test's processes carry.
fn marker(dir: &std::path::Path, what: &str) -> String {
    format!(
        "chaos-orphan-{what}-{}",
        dir.file_name().unwrap().to_string_lossy()
    )
}

/// Starts a session whose baseline hangs after leaving its three escapees; returns it and
/// them (pid, start time), once the run has said it is ready.
fn hanging_session(dir: &std::path::Path, m: &str) -> (Live, Vec<(i32, u64)>) {
    let meet = tempfile::tempdir().unwrap();
    let ready = meet.path().join("ready");
    fifo(&ready);
    let live = Live::start(
        dir,
        1,
        &[
            ("ORPHAN_MARKER", m),
            ("ORPHAN_HANG", "1"),
            ("ORPHAN_READY", ready.to_str().unwrap()),
        ],
    );
    assert_eq!(wait_fifo(&ready), "ready\n");
    let escapees = processes_with_arg(m);
    assert_eq!(
        escapees.len(),
        3,
        "the fixture leaves three processes: {escapees:?}"
    );
    (live, escapees)
}

/// Whether `done` holds within a generous minute, checked as the kernel tears processes
/// down (asynchronously, after their killer has gone): a wait for a state, not a timing.
fn until(done: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

#[test]
fn sigkill_mid_run_then_resume_leaves_nothing_alive() {
    let dir = repo_with(ORPHANS, &config(""));
    let d = dir.path();
    let m1 = marker(d, "killed");
    let (mut live, escapees) = hanging_session(d, &m1);
    live.child.kill().unwrap();
    let killed = live.finish();
    assert!(killed.killed(), "{}", killed.describe());
    // In the box the run's pid namespace dies with the orchestrator (its parent-death
    // signal kills `unshare`, which kills the namespace); without it the escapees outlive
    // the orchestrator, and the resume must clean them up.
    let boxed = autoresearch::runner::sandbox::Probe::cached().boxed;
    if boxed {
        let gone = until(|| escapees.iter().all(|(p, s)| !alive(*p, *s)));
        assert!(gone, "the box's processes outlived the orchestrator");
    } else {
        let left: Vec<_> = escapees.iter().filter(|(p, s)| alive(*p, *s)).collect();
        assert_eq!(
            left.len(),
            3,
            "the escapees outlive the orchestrator: {left:?}"
        );
    }

    let m2 = marker(d, "resumed");
    let resumed = launch(d, 1, Kill::Never, &[("ORPHAN_MARKER", m2.as_str())]);
    assert!(resumed.status.success(), "{}", resumed.describe());
    let warned = resumed.events.iter().any(|e| {
        e["event"] == "warning"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("left running by the previous"))
    });
    assert!(
        warned || boxed,
        "the resume says it killed leftovers: {}",
        resumed.describe()
    );
    for (pid, start) in &escapees {
        assert!(
            !alive(*pid, *start),
            "process {pid} of the killed run is alive"
        );
    }
    assert_eq!(processes_with_arg(&m1), vec![], "nothing of the killed run");
    assert_eq!(
        processes_with_arg(&m2),
        vec![],
        "nothing of the resumed runs"
    );
    check_consistent(d).unwrap();
}

#[test]
fn ctrl_c_mid_run_leaves_nothing_alive() {
    let dir = repo_with(ORPHANS, &config(""));
    let d = dir.path();
    let m = marker(d, "ctrl-c");
    let (live, escapees) = hanging_session(d, &m);
    kill(Pid::from_raw(live.child.id() as i32), Signal::SIGINT).unwrap();
    let run = live.finish();
    assert_eq!(run.status.code(), Some(130), "{}", run.describe());
    for (pid, start) in &escapees {
        assert!(!alive(*pid, *start), "process {pid} survived Ctrl-C");
    }
    assert_eq!(processes_with_arg(&m), vec![]);
    assert!(survivors(d).is_empty());
    assert_eq!(common::dirty(d), "");
}

#[test]
fn a_timeout_leaves_nothing_alive() {
    let cfg = config("").replace("timeout = \"20s\"", "timeout = \"2s\"");
    let dir = repo_with(ORPHANS, &cfg);
    let d = dir.path();
    let m = marker(d, "timeout");
    let run = launch(
        d,
        1,
        Kill::Never,
        &[("ORPHAN_MARKER", m.as_str()), ("ORPHAN_HANG", "1")],
    );
    // The baseline timed out: exit 4, with the reason.
    assert_eq!(run.status.code(), Some(4), "{}", run.describe());
    assert!(run.stderr.contains("timeout"), "{}", run.stderr);
    assert_eq!(processes_with_arg(&m), vec![]);
    assert!(survivors(d).is_empty());
}
