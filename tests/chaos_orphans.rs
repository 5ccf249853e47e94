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
    sigkill_then_resume(
        &config(""),
        autoresearch::runner::sandbox::Probe::cached().boxed,
    );
}

/// Without any sandbox (no box, no cgroup) the escapees outlive the killed orchestrator,
/// and the resume finds them by the session's token and kills them.
#[test]
fn without_a_sandbox_the_resume_kills_what_outlived_a_sigkill() {
    sigkill_then_resume(&config("[sandbox]\nmode = \"none\"\n"), false);
}

fn sigkill_then_resume(cfg: &str, boxed: bool) {
    let dir = repo_with(ORPHANS, cfg);
    let d = dir.path();
    let m1 = marker(d, "killed");
    let (mut live, escapees) = hanging_session(d, &m1);
    live.child.kill().unwrap();
    let killed = live.finish();
    assert!(killed.killed(), "{}", killed.describe());
    // In the box the run's pid namespace dies with the orchestrator (its parent-death
    // signal kills `unshare`, which kills the namespace); without it the escapees outlive
    // the orchestrator, and the resume must clean them up.
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

/// The baseline of a session stopped by `sig` mid-run: exit 130 as for Ctrl-C, the run
/// recorded as interrupted, and nothing of it alive.
fn stopped_by(sig: Signal, what: &str) {
    let dir = repo_with(ORPHANS, &config(""));
    let d = dir.path();
    let m = marker(d, what);
    let (live, escapees) = hanging_session(d, &m);
    kill(Pid::from_raw(live.child.id() as i32), sig).unwrap();
    let run = live.finish();
    assert_eq!(run.status.code(), Some(130), "{}", run.describe());
    let rows = journal_rows(d);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].status, "interrupted", "{rows:?}");
    for (pid, start) in &escapees {
        assert!(!alive(*pid, *start), "process {pid} survived {sig:?}");
    }
    assert_eq!(processes_with_arg(&m), vec![]);
    assert!(survivors(d).is_empty());
    assert_eq!(common::dirty(d), "");
}

#[test]
fn sigterm_mid_run_stops_like_ctrl_c_and_leaves_nothing_alive() {
    stopped_by(Signal::SIGTERM, "sigterm");
}

/// Whether this process ignores SIGHUP (run under `nohup`): its children would too.
fn sighup_ignored_here() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .unwrap();
    u64::from_str_radix(mask.trim(), 16).unwrap() & 1 != 0
}

#[test]
fn sighup_mid_run_stops_like_ctrl_c_and_leaves_nothing_alive() {
    if sighup_ignored_here() {
        eprintln!("SKIPPED: the tests run with SIGHUP ignored (nohup), as the session would");
        return;
    }
    stopped_by(Signal::SIGHUP, "sighup");
}

/// A script that ignores SIGTERM, under a grace period longer than any test: the first
/// SIGTERM asks for the clean stop (which would wait out the grace), the second kills now.
#[test]
fn a_second_signal_kills_at_once() {
    use std::io::BufRead;
    let dir = repo_with(ORPHANS, &config(""));
    let d = dir.path();
    let m = marker(d, "second");
    let meet = tempfile::tempdir().unwrap();
    let ready = meet.path().join("ready");
    fifo(&ready);
    let mut child = common::bin()
        .args([
            "run", "--yes", "--json", "--grace", "100000", "-n", "1", "--repo",
        ])
        .arg(d)
        .envs(common::IDENTITY)
        .env("ORPHAN_MARKER", &m)
        .env("ORPHAN_HANG", "1")
        .env("ORPHAN_IGNORE_TERM", "1")
        .env("ORPHAN_READY", &ready)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    assert_eq!(wait_fifo(&ready), "ready\n");
    let pid = Pid::from_raw(child.id() as i32);
    kill(pid, Signal::SIGTERM).unwrap();
    // The first is taken (said on stderr) before the second is sent: two pending signals
    // of one kind would be one.
    let said = lines
        .iter()
        .find(|l| l.contains("SIGTERM: stopping after cleaning up the current run"));
    assert!(said.is_some(), "the first SIGTERM was not acknowledged");
    kill(pid, Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let rows = journal_rows(d);
    assert_eq!(rows[0].status, "interrupted", "{rows:?}");
    assert_eq!(processes_with_arg(&m), vec![]);
    assert!(survivors(d).is_empty());
}

/// Under `nohup` (SIGHUP ignored at start) a SIGHUP mid-run changes nothing: the run
/// finishes and is recorded as usual.
#[test]
fn under_nohup_a_sighup_is_ignored_and_the_session_goes_on() {
    let dir = repo_with(include_str!("fixtures/chaos/gate.py"), &config(""));
    let d = dir.path();
    let meet = tempfile::tempdir().unwrap();
    let gate = meet.path().join("gate");
    fifo(&gate);
    let bin = env!("CARGO_BIN_EXE_autoresearch");
    let mut child = std::process::Command::new("sh")
        .args(["-c", "trap '' HUP; exec \"$@\"", "sh", bin])
        .args([
            "run", "--yes", "--json", "--grace", "0.2", "-n", "1", "--repo",
        ])
        .arg(d)
        .envs(common::IDENTITY)
        .env("AUTORESEARCH_PLATFORM", "cpu")
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .env("CHAOS_GATE", &gate)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The experiment's run opens the gate for reading; once our end is open it is waiting
    // on us, mid-run: the moment for the SIGHUP.
    let writer = std::fs::OpenOptions::new().write(true).open(&gate).unwrap();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGHUP).unwrap();
    drop(writer);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let rows = journal_rows(d);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.status != "interrupted"), "{rows:?}");
    assert!(survivors(d).is_empty());
}

/// The terminal really goes away: the session runs on a pseudo-terminal whose master end
/// is closed mid-run, so the kernel sends the hangup and every later print to the terminal
/// fails. The session still stops cleanly: exit 130, the run recorded as interrupted.
#[test]
fn a_closed_terminal_stops_the_session_cleanly() {
    let dir = repo_with(ORPHANS, &config(""));
    let d = dir.path();
    let m = marker(d, "hangup");
    let meet = tempfile::tempdir().unwrap();
    let ready = meet.path().join("ready");
    fifo(&ready);
    // pty.fork: the child is a session leader whose controlling terminal is the pty.
    let driver = r#"
import os, pty, sys
binary, repo, ready = sys.argv[1:4]
pid, master = pty.fork()
if pid == 0:
    os.execv(binary, [binary, "run", "--yes", "--grace", "0.2", "-n", "1", "--repo", repo])
with open(ready) as f:
    f.read()
os.close(master)
_, status = os.waitpid(pid, 0)
print("exit", os.waitstatus_to_exitcode(status))
"#;
    let out = std::process::Command::new(python())
        .args(["-c", driver, env!("CARGO_BIN_EXE_autoresearch")])
        .arg(d)
        .arg(&ready)
        .envs(common::IDENTITY)
        .env("AUTORESEARCH_PLATFORM", "cpu")
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .env("ORPHAN_MARKER", &m)
        .env("ORPHAN_HANG", "1")
        .env("ORPHAN_READY", &ready)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("exit 130"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = journal_rows(d);
    assert_eq!(rows[0].status, "interrupted", "{rows:?}");
    assert_eq!(processes_with_arg(&m), vec![]);
    assert!(survivors(d).is_empty());
}
