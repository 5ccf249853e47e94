//! LocalExecutor against real processes: exit codes, signals, timeouts, cancellation,
//! escaped grandchildren, huge and odd output, memory. Liveness is checked by scanning
//! /proc for a tag every run carries, never by trusting the executor.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::time::Duration;

use autoresearch::runner::local::{LocalExecutor, kill_processes_with_env, processes_with_env};
use autoresearch::runner::{Cancel, Executor, Exit, Job, RunOutcome, RunnerError};

const TAG: &str = "AUTORESEARCH_TEST_TAG";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runner")
}

/// A tag unique to one test in one test process.
fn tag(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

fn job(dir: &Path, command: &str, tag: &str) -> Job {
    Job {
        command: command.to_string(),
        cwd: fixtures(),
        env: vec![(TAG.to_string(), tag.to_string())],
        budget: Duration::from_secs(60),
        timeout: Duration::from_secs(120),
        grace: Duration::from_secs(2),
        log_path: dir.join("logs/nested/run.log"),
        max_log_bytes: 64 << 20,
        sandbox: Default::default(),
        attach: None,
    }
}

/// Runs the job; returns the outcome and every line `on_line` saw.
fn run(job: &Job, cancel: &Cancel) -> (RunOutcome, Vec<String>) {
    let mut lines = Vec::new();
    let outcome = LocalExecutor::new()
        .run(job, cancel, &mut |l| lines.push(l.to_string()))
        .expect("the run itself should not fail");
    (outcome, lines)
}

/// The pid is neither alive nor a zombie left for us to reap. (Pid reuse within a test
/// is not a practical concern.)
fn assert_gone(pid: &str) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
    assert!(stat.is_err(), "process {pid} is still there: {stat:?}");
}

/// The pid printed on a line starting with `prefix` ("bg 1234").
fn pid_after(lines: &[String], prefix: &str) -> String {
    let line = lines.iter().find(|l| l.starts_with(prefix));
    let line = line.unwrap_or_else(|| panic!("no line starting with {prefix:?}: {lines:?}"));
    line[prefix.len()..].split(' ').next().unwrap().to_string()
}

fn assert_none_alive(tag: &str) {
    let alive = processes_with_env(TAG, tag);
    assert!(alive.is_empty(), "processes of the run survived: {alive:?}");
}

#[test]
fn prints_lines_and_a_metric_then_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let t = tag("metric");
    let job = job(dir.path(), "sh metric.sh", &t);
    let me = std::thread::current().id();
    let mut lines = Vec::new();
    let out = LocalExecutor::new()
        .run(&job, &Cancel::new(), &mut |l| {
            assert_eq!(
                std::thread::current().id(),
                me,
                "on_line off the caller's thread"
            );
            lines.push(l.to_string());
        })
        .unwrap();
    assert_eq!(out.exit, Exit::Code(0));
    assert!(out.exit.success());
    let log = std::fs::read_to_string(&job.log_path).unwrap();
    for want in ["step 1 loss 3.2", "warning: on stderr", "val_bpb: 0.9979"] {
        assert!(log.contains(want), "log lacks {want:?}: {log}");
        assert!(lines.iter().any(|l| l == want), "on_line missed {want:?}");
    }
    // The partial last line reaches both the log and on_line. (stdout and stderr race
    // each other, so the order across streams is not asserted.)
    assert!(
        log.contains("val_bpb: 0.9979\nno trailing newline"),
        "{log}"
    );
    assert!(
        lines.iter().any(|l| l == "no trailing newline"),
        "{lines:?}"
    );
    assert_eq!(out.output_bytes, log.len() as u64);
    assert_eq!(out.log_path, job.log_path);
    assert_eq!(out.stragglers_killed, 0);
    assert!(out.peak_rss_bytes.is_some());
}

#[test]
fn exit_code_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = run(
        &job(dir.path(), "echo failing; exit 3", &tag("exit3")),
        &Cancel::new(),
    );
    assert_eq!(out.exit, Exit::Code(3));
}

#[test]
fn death_by_a_foreign_signal_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = run(
        &job(dir.path(), "kill -SEGV $$", &tag("segv")),
        &Cancel::new(),
    );
    assert_eq!(out.exit, Exit::Signal(11));
}

#[test]
fn env_is_passed_stdin_is_null_and_each_run_gets_its_own_token() {
    let dir = tempfile::tempdir().unwrap();
    let t = tag("env");
    // `cat` would hang forever on an inherited terminal; on /dev/null it ends at once.
    let cmd = "cat; echo \"tag=$AUTORESEARCH_TEST_TAG token=$AUTORESEARCH_RUN_TOKEN pwd=$(pwd)\"";
    let job = job(dir.path(), cmd, &t);
    let (a, first) = run(&job, &Cancel::new());
    let (b, second) = run(&job, &Cancel::new());
    assert_eq!((a.exit, b.exit), (Exit::Code(0), Exit::Code(0)));
    let token = |lines: &[String]| {
        let line = lines
            .iter()
            .find(|l| l.starts_with("tag="))
            .unwrap()
            .clone();
        assert!(line.contains(&format!("tag={t} ")), "{line}");
        assert!(
            line.contains(&format!("pwd={}", fixtures().display())),
            "{line}"
        );
        line.split("token=")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string()
    };
    let (ta, tb) = (token(&first), token(&second));
    assert!(!ta.is_empty());
    assert_ne!(ta, tb);
}

#[test]
fn hang_is_timed_out_and_nothing_survives() {
    let dir = tempfile::tempdir().unwrap();
    let t = tag("hang");
    let mut job = job(dir.path(), "sleep 1000 & echo \"bg $!\"; sleep 1000", &t);
    job.timeout = Duration::from_secs(1);
    job.grace = Duration::from_millis(500);
    let (out, lines) = run(&job, &Cancel::new());
    assert_eq!(out.exit, Exit::TimedOut);
    assert!(out.duration >= job.timeout);
    assert!(out.duration < Duration::from_secs(30), "{:?}", out.duration);
    assert_none_alive(&t);
    assert_gone(&pid_after(&lines, "bg "));
}

#[test]
fn ignoring_sigterm_still_ends_in_sigkill_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let t = tag("trap");
    let mut job = job(dir.path(), "trap '' TERM; echo ready; sleep 1000", &t);
    job.timeout = Duration::from_secs(1);
    job.grace = Duration::from_millis(500);
    let (out, lines) = run(&job, &Cancel::new());
    assert_eq!(out.exit, Exit::TimedOut);
    assert_eq!(lines, vec!["ready"]);
    // SIGKILL only comes after the grace: the run cannot end sooner.
    assert!(
        out.duration >= job.timeout + job.grace,
        "{:?}",
        out.duration
    );
    assert!(out.duration < Duration::from_secs(30), "{:?}", out.duration);
    assert_none_alive(&t);
}

#[test]
fn escaped_and_background_grandchildren_are_killed() {
    let dir = tempfile::tempdir().unwrap();
    let t = tag("tree");
    let (out, lines) = run(&job(dir.path(), "python3 tree.py", &t), &Cancel::new());
    assert_eq!(out.exit, Exit::Code(0));
    // Both grandchildren were started, and the daemon really left the run's group.
    let daemon = lines.iter().find(|l| l.starts_with("daemon ")).unwrap();
    let words: Vec<&str> = daemon.split(' ').collect();
    assert_ne!(
        words[3], words[5],
        "the daemon should be in its own group: {daemon}"
    );
    assert!(out.stragglers_killed >= 2, "{}", out.stragglers_killed);
    assert_none_alive(&t);
    // Both were adopted by this (subreaper) process, killed and reaped: no zombies.
    assert_gone(&pid_after(&lines, "bg "));
    assert_gone(&pid_after(&lines, "daemon "));
}

#[test]
fn a_flood_is_capped_without_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let cap: u64 = 1 << 20;
    let mut job = job(dir.path(), "python3 flood.py", &tag("flood"));
    job.max_log_bytes = cap;
    let (out, lines) = run(&job, &Cancel::new());
    assert_eq!(out.exit, Exit::Code(0));
    let stderr: u64 = (0..500)
        .step_by(50)
        .map(|i: i32| format!("stderr note {i}\n").len() as u64)
        .sum();
    let total = 6 + 500 * 100_000 + stderr + 13;
    assert_eq!(out.output_bytes, total);
    let log = std::fs::read(&job.log_path).unwrap();
    let marker = format!(
        "[autoresearch: {} bytes of output dropped here]\n",
        total - cap
    );
    assert!(log.len() as u64 >= cap && log.len() as u64 <= cap + marker.len() as u64 + 1);
    assert!(log.starts_with(b"START\n"));
    assert!(log.ends_with(b"\nEND-OF-FLOOD\n"));
    let text = String::from_utf8_lossy(&log);
    assert_eq!(text.matches(&marker).count(), 1, "marker missing");
    // Lines are handed on only as fast as anyone can watch them (the log has them all):
    // a sample, each line whole, the last one among them.
    assert!(
        lines.len() < 500 * 1000 / 10,
        "{} lines handed on",
        lines.len()
    );
    let whole = |l: &String| {
        l == "START" || l == "END-OF-FLOOD" || l.starts_with("stderr note ") || *l == "y".repeat(99)
    };
    assert!(lines.iter().all(whole), "a line in pieces");
    assert_eq!(lines.last().unwrap(), "END-OF-FLOOD");
}

#[test]
fn a_ten_megabyte_line_without_newline() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), "python3 longline.py", &tag("longline"));
    let (out, lines) = run(&job, &Cancel::new());
    assert_eq!(out.exit, Exit::Code(0));
    assert_eq!(out.output_bytes, 10_000_000);
    assert_eq!(std::fs::metadata(&job.log_path).unwrap().len(), 10_000_000);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].len() <= 8192 && lines[0].starts_with("xxxx"));
}

#[test]
fn non_utf8_output_is_kept_raw_in_the_log_and_lossy_in_lines() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), r"printf 'caf\351 \377ok\n'", &tag("utf8"));
    let (out, lines) = run(&job, &Cancel::new());
    assert_eq!(out.exit, Exit::Code(0));
    assert_eq!(std::fs::read(&job.log_path).unwrap(), b"caf\xe9 \xffok\n");
    assert_eq!(lines, vec!["caf\u{FFFD} \u{FFFD}ok"]);
}

#[test]
fn cancel_from_on_line_interrupts_and_nothing_survives() {
    let dir = tempfile::tempdir().unwrap();
    let t = tag("cancel");
    let job = job(
        dir.path(),
        "sleep 1000 & echo \"bg $!\"; echo ready; wait",
        &t,
    );
    let cancel = Cancel::new();
    let mut lines = Vec::new();
    let out = LocalExecutor::new()
        .run(&job, &cancel, &mut |l| {
            lines.push(l.to_string());
            if l == "ready" {
                cancel.set(1);
            }
        })
        .unwrap();
    assert_eq!(out.exit, Exit::Interrupted);
    assert_none_alive(&t);
    assert_gone(&pid_after(&lines, "bg "));
}

#[test]
fn cancel_level_two_kills_at_once_without_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let t = tag("cancel2");
    let mut job = job(dir.path(), "trap '' TERM; echo ready; sleep 1000", &t);
    // A grace this long would fail the upper bound below if it were waited for.
    job.grace = Duration::from_secs(600);
    let cancel = Cancel::new();
    let out = LocalExecutor::new()
        .run(&job, &cancel, &mut |l| {
            if l == "ready" {
                cancel.set(2);
            }
        })
        .unwrap();
    assert_eq!(out.exit, Exit::Interrupted);
    assert!(out.duration < Duration::from_secs(30), "{:?}", out.duration);
    assert_none_alive(&t);
}

#[test]
fn peak_memory_of_the_tree_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let t = tag("alloc");
    let job = job(dir.path(), "python3 alloc.py", &t);
    let cancel = Cancel::new();
    // The script holds its memory until stopped; the executor samples before it signals.
    let out = LocalExecutor::new()
        .run(&job, &cancel, &mut |l| {
            if l.starts_with("allocated") {
                cancel.set(1);
            }
        })
        .unwrap();
    assert_eq!(out.exit, Exit::Interrupted);
    let peak = out.peak_rss_bytes.unwrap();
    assert!(peak >= 150 << 20, "peak {peak}");
    assert_none_alive(&t);
}

#[test]
fn spawn_failure_is_a_spawn_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = job(dir.path(), "true", &tag("spawn"));
    job.cwd = dir.path().join("no/such/dir");
    let err = LocalExecutor::new()
        .run(&job, &Cancel::new(), &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, RunnerError::Spawn { .. }), "{err}");
}

#[test]
fn unwritable_log_folder_is_a_log_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "").unwrap();
    let mut job = job(dir.path(), "true", &tag("logdir"));
    job.log_path = dir.path().join("file/run.log");
    let err = LocalExecutor::new()
        .run(&job, &Cancel::new(), &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, RunnerError::Log { .. }), "{err}");
}

#[test]
fn a_full_disk_is_a_log_error_and_the_run_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let t = tag("full");
    let mut job = job(dir.path(), "sleep 1000 & echo \"bg $!\"; wait", &t);
    // Every write to /dev/full fails with ENOSPC.
    job.log_path = PathBuf::from("/dev/full");
    let err = LocalExecutor::new()
        .run(&job, &Cancel::new(), &mut |_| {})
        .unwrap_err();
    match err {
        RunnerError::Log { source, .. } => assert_eq!(source.raw_os_error(), Some(28)),
        other => panic!("expected a log error, got {other}"),
    }
    assert_none_alive(&t);
}

/// Kills and reaps the child even when an assertion fails first, so no test leaks it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn processes_with_env_finds_and_kills_tagged_processes() {
    use std::os::unix::process::ExitStatusExt;
    let t = tag("helper");
    let mut child = KillOnDrop(
        std::process::Command::new("sleep")
            .arg("1000")
            .env(TAG, &t)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id() as i32;
    // spawn() returns once the exec has begun, but the kernel publishes the new
    // environment a moment later: wait for it by asking the function under test (bounded).
    let found = (0..5_000)
        .map(|_| processes_with_env(TAG, &t))
        .find(|p| !p.is_empty());
    assert_eq!(found, Some(vec![pid]));
    assert!(processes_with_env(TAG, &format!("{t}-other")).is_empty());
    assert_eq!(kill_processes_with_env(TAG, &t, &[]), 1);
    assert_eq!(child.0.wait().unwrap().signal(), Some(9));
    assert!(processes_with_env(TAG, &t).is_empty());
}

#[test]
fn a_panicking_on_line_does_not_leave_the_run_behind() {
    let dir = tempfile::tempdir().unwrap();
    let t = tag("panic");
    let job = job(dir.path(), "echo ready; exec sleep 1000", &t);
    let result = std::panic::catch_unwind(|| {
        LocalExecutor::new().run(&job, &Cancel::new(), &mut |l| {
            if l == "ready" {
                panic!("display failed");
            }
        })
    });
    assert!(result.is_err());
    // The group was SIGKILLed during the unwind; wait for the kernel to finish it off
    // by polling the scan (bounded), since nothing reaps it for us here.
    let survivors = (0..5_000)
        .map(|_| processes_with_env(TAG, &t))
        .find(|p| p.is_empty());
    assert_eq!(survivors, Some(vec![]));
}
