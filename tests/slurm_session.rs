//! Sessions through a real Slurm (`[executor] kind = "slurm"`), black-box: `.ci/run`
//! starts a one-node cluster (`.ci/slurm-up`); here each run is a job. Two workers' jobs
//! provably run side by side (they wait for each other, and Slurm's own start and end
//! times overlap); the job never sees the orchestrator's API key; a run past its hard
//! timeout is cancelled and recorded as a timeout; Ctrl-C leaves no job behind; a
//! SIGKILLed orchestrator's running jobs are reattached by the resume (one worker and
//! two), each result recorded once, and a job of the session no experiment can use is
//! cancelled. Skips with a message
//! where no Slurm answers, unless AUTORESEARCH_REQUIRE_SLURM is set (CI sets it).

mod chaos_support;
mod common;

use chaos_support::{fifo, open_gate, wait_fifo};
use common::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

const TRAIN: &str = include_str!("fixtures/slurm/train.py");

/// The one-node cluster has two CPUs and some tests need both at once: they take turns.
static CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds the cluster for the test that calls it (a failed test's turn passes on).
fn cluster() -> std::sync::MutexGuard<'static, ()> {
    CLUSTER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn slurm_up() -> bool {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if !up {
        assert!(
            std::env::var_os("AUTORESEARCH_REQUIRE_SLURM").is_none(),
            "AUTORESEARCH_REQUIRE_SLURM is set but no Slurm answers: run .ci/slurm-up"
        );
        eprintln!(
            "SKIPPED: no Slurm answers here (`sinfo` failed); run .ci/slurm-up to test the Slurm executor"
        );
    }
    up
}

fn slurm_repo(decision: &str, timeout: &str) -> tempfile::TempDir {
    let cfg = config(
        "\n[executor]\nkind = \"slurm\"\ncpus_per_job = 1\ntime_margin = \"1m\"\n\n[sandbox]\nmode = \"none\"\nnetwork = \"allow\"",
    )
    .replace("[decision]\nmode = \"greedy\"\n", decision)
    .replace("timeout = \"20s\"", &format!("timeout = \"{timeout}\""));
    repo(&[
        ("train.py", TRAIN),
        ("prepare.py", PREPARE),
        ("autoresearch.toml", &cfg),
    ])
}

/// `scontrol show job -o <id>` as a map.
fn job(id: &str) -> HashMap<String, String> {
    let out = Command::new("scontrol")
        .args(["show", "job", "-o", id])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn job_id(dir: &Path, run: &str) -> String {
    std::fs::read_to_string(dir.join(".autoresearch/runs").join(run).join("job.id"))
        .unwrap_or_else(|e| panic!("run {run} has no job.id: {e}"))
        .trim()
        .to_string()
}

/// Ids of queued or running jobs whose comment holds `marker`.
fn live_jobs(marker: &str) -> Vec<String> {
    let out = Command::new("squeue")
        .args(["-h", "-o", "%i|%k|%T"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(marker))
        .map(|l| l.split('|').next().unwrap_or("").to_string())
        .collect()
}

/// Whether no job of the session in `dir` is queued or running.
fn none_left(dir: &Path) -> bool {
    live_jobs(&dir.display().to_string()).is_empty()
}

#[test]
fn two_workers_run_their_jobs_side_by_side_without_the_key() {
    if !slurm_up() {
        return;
    }
    let _turn = cluster();
    let dir = slurm_repo("[decision]\n", "60s");
    let meet = tempfile::tempdir().unwrap();
    let out = bin()
        .args([
            "run",
            "--yes",
            "--grace",
            "1",
            "-n",
            "2",
            "--workers",
            "2",
            "--repo",
        ])
        .arg(dir.path())
        .env("SLURM_TEST_MEET", meet.path())
        .env("OPENAI_API_KEY", "sk-slurm-secret-42")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("executor: Slurm"), "{stdout}");
    let rows = journal(dir.path());
    assert_eq!(rows[0].1, "keep", "{rows:?}");
    assert!(rows.len() >= 3, "{rows:?}");
    assert!(rows.iter().all(|r| r.1 != "running"), "{rows:?}");
    // The baseline's first two seeds met: Slurm ran them at the same time.
    let (a, b) = (
        job(&job_id(dir.path(), "0001")),
        job(&job_id(dir.path(), "0001-2")),
    );
    for j in [&a, &b] {
        assert_eq!(j["JobState"], "COMPLETED", "{j:?}");
    }
    assert!(
        a["StartTime"] <= b["EndTime"] && b["StartTime"] <= a["EndTime"],
        "Slurm's own times overlap: {:?} {:?}",
        (&a["StartTime"], &a["EndTime"]),
        (&b["StartTime"], &b["EndTime"])
    );
    // The job got the run's environment but never the orchestrator's credentials.
    let log = std::fs::read_to_string(dir.path().join(".autoresearch/runs/0001/run.log")).unwrap();
    assert!(log.contains("key: none"), "{log}");
    assert!(log.contains(&format!("slurm job: {}", job_id(dir.path(), "0001"))));
    let script =
        std::fs::read_to_string(dir.path().join(".autoresearch/runs/0001/job.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --cpus-per-task=1"), "{script}");
    assert!(!script.contains("sk-slurm-secret-42"));
    // Every run's job id is in the journal, beside its measurement.
    let conn = rusqlite::Connection::open(dir.path().join(".autoresearch/journal.sqlite")).unwrap();
    let (runs, with_ids): (i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COUNT(job_id) FROM measurements",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(
        runs >= 3 && with_ids == runs,
        "{runs} runs, {with_ids} with a job id"
    );
    let ids: Vec<String> = conn
        .prepare("SELECT job_id FROM measurements")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(ids.contains(&job_id(dir.path(), "0001")), "{ids:?}");
    // Each run's time in Slurm's queue is on record, and `status` reports it per worker.
    let queued: i64 = conn
        .query_row("SELECT COUNT(queue_s) FROM measurements", [], |r| r.get(0))
        .unwrap();
    assert_eq!(queued, runs);
    let status = bin()
        .args(["status", "--repo"])
        .arg(dir.path())
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(status.contains("## Workers"), "{status}");
    assert!(
        status.contains("| 1 | ") && status.contains("| 2 | "),
        "{status}"
    );
    assert!(status.contains("duty cycle"), "{status}");
    assert_eq!(dirty(dir.path()), "");
    assert!(none_left(dir.path()));
}

#[test]
fn a_run_past_its_hard_timeout_is_cancelled_and_recorded_as_a_timeout() {
    if !slurm_up() {
        return;
    }
    let _turn = cluster();
    let dir = slurm_repo("[decision]\nmode = \"greedy\"\n", "3s");
    let out = bin()
        .args(["run", "--yes", "--grace", "1", "-n", "1", "--repo"])
        .arg(dir.path())
        .env("SLURM_TEST_MODE", "hang")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let rows = journal(dir.path());
    assert_eq!(rows[1].1, "crash", "{rows:?}");
    assert!(rows[1].3.contains("timeout"), "{rows:?}");
    let j = job(&job_id(dir.path(), "0002"));
    assert_eq!(j["JobState"], "CANCELLED", "{j:?}");
    assert!(none_left(dir.path()));
}

/// `autoresearch run --json` in the background with the gate fixture, once its
/// experiment's job is running (the job opened the gate).
fn running_session(dir: &Path, gate: &Path, n: &str) -> std::process::Child {
    let mut child = bin()
        .args(["run", "--yes", "--json", "--grace", "1", "-n", n, "--repo"])
        .arg(dir)
        .env("SLURM_TEST_MODE", "gate")
        .env("SLURM_TEST_GATE", gate)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || for _ in BufReader::new(out).lines() {});
    assert_eq!(wait_fifo(gate), "running\n");
    child
}

#[test]
fn ctrl_c_cancels_the_job_and_leaves_nothing_in_the_queue() {
    if !slurm_up() {
        return;
    }
    let _turn = cluster();
    let dir = slurm_repo("[decision]\nmode = \"greedy\"\n", "60s");
    let gate = dir.path().join("gate");
    fifo(&gate);
    let mut child = running_session(dir.path(), &gate, "3");
    let id = job_id(dir.path(), "0002");
    assert_eq!(job(&id)["JobState"], "RUNNING");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(job(&id)["JobState"], "CANCELLED");
    assert!(none_left(dir.path()));
    let rows = journal(dir.path());
    assert_eq!(rows[1].1, "interrupted", "{rows:?}");
    assert_eq!(dirty(dir.path()), "");
}

/// A session in the background whose runs `labels` (`0002`, …) hold until `release`
/// is opened: returns once each of them is running as a job.
fn gated_session(
    dir: &Path,
    gates: &Path,
    release: &Path,
    labels: &[&str],
    args: &[&str],
) -> std::process::Child {
    for l in labels {
        fifo(&gates.join(l));
    }
    fifo(release);
    let mut child = bin()
        .args(["run", "--yes", "--json", "--grace", "1"])
        .args(args)
        .arg("--repo")
        .arg(dir)
        .env("SLURM_TEST_MODE", "release")
        .env("SLURM_TEST_GATE", gates)
        .env("SLURM_TEST_RELEASE", release)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || for _ in BufReader::new(out).lines() {});
    for l in labels {
        assert_eq!(wait_fifo(&gates.join(l)), "running\n", "run {l}");
    }
    child
}

/// Resumes the session in `dir` with `args`; once it says it reattached, opens `release`
/// so the jobs it follows finish. Returns its output.
fn resume_and_release(dir: &Path, release: &Path, args: &[&str]) -> (bool, String) {
    let mut child = bin()
        .args(["run", "--yes", "--json", "--grace", "1"])
        .args(args)
        .arg("--repo")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains("reattached to job") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(std::time::Duration::from_secs(120))
        .expect("the resumed session says it reattached");
    open_gate(release);
    let status = child.wait().unwrap();
    let stdout = reader.join().unwrap();
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.success(), format!("{stdout}\n{stderr}"))
}

/// (experiment iteration, job id) of every measurement, in order.
fn measured_jobs(dir: &Path) -> Vec<(i64, String)> {
    let conn = rusqlite::Connection::open(dir.join(".autoresearch/journal.sqlite")).unwrap();
    conn.prepare(
        "SELECT e.iteration, COALESCE(m.job_id, '') FROM measurements m JOIN experiments e ON e.id = m.experiment_id ORDER BY m.id",
    )
    .unwrap()
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The session's token (its jobs' comment): the repository's path and the session's id.
fn token(dir: &Path) -> String {
    format!("{}#1", dir.display())
}

#[test]
fn a_killed_orchestrators_job_is_reattached_by_the_resume_and_recorded_once() {
    if !slurm_up() {
        return;
    }
    let _turn = cluster();
    let dir = slurm_repo("[decision]\nmode = \"greedy\"\n", "60s");
    let (gates, release) = (dir.path().join("gates"), dir.path().join("release"));
    std::fs::create_dir(&gates).unwrap();
    let mut child = gated_session(dir.path(), &gates, &release, &["0002"], &["-n", "3"]);
    let id = job_id(dir.path(), "0002");
    child.kill().unwrap();
    child.wait().unwrap();
    // The orchestrator is gone; its job is not.
    assert_eq!(job(&id)["JobState"], "RUNNING");
    // A job of the session that no experiment can use (as if left by a trial the journal
    // never recorded): the resume cancels it.
    let stray = Command::new("sbatch")
        .args(["--parsable", "--job-name=autoresearch-0099", "--time=5"])
        .arg(format!("--comment={}", token(dir.path())))
        .arg(format!(
            "--output={}",
            dir.path().join("stray.log").display()
        ))
        .args(["--wrap", "sleep 300"])
        .output()
        .unwrap();
    assert!(stray.status.success(), "{}", text(&stray));
    let stray = String::from_utf8_lossy(&stray.stdout).trim().to_string();
    let (ok, output) = resume_and_release(dir.path(), &release, &["-n", "1"]);
    assert!(ok, "{output}");
    assert!(
        output.contains(&format!("reattached to job(s) {id}")),
        "{output}"
    );
    assert!(output.contains("cancelled 1 job(s)"), "{output}");
    let log = |run: &str| {
        std::fs::read_to_string(
            dir.path()
                .join(".autoresearch/runs")
                .join(run)
                .join("run.log"),
        )
        .unwrap_or_default()
    };
    assert_eq!(job(&id)["JobState"], "COMPLETED", "{}", log("0002"));
    assert_eq!(job(&stray)["JobState"], "CANCELLED");
    // Followed, not run again: the run folder kept its job, and its result is on record
    // once, decided like any other.
    assert_eq!(job_id(dir.path(), "0002"), id);
    let rows = journal(dir.path());
    assert_eq!(rows.len(), 3, "the reattached one and one more: {rows:?}");
    assert!(matches!(rows[1].1.as_str(), "keep" | "discard"), "{rows:?}");
    assert!(rows.iter().all(|r| r.1 != "interrupted"), "{rows:?}");
    let measured = measured_jobs(dir.path());
    assert_eq!(
        measured.iter().filter(|m| m.1 == id).count(),
        1,
        "{measured:?}"
    );
    assert_eq!(
        measured.iter().filter(|m| m.0 == 1).count(),
        1,
        "{measured:?}"
    );
    let tsv = std::fs::read_to_string(dir.path().join("results.tsv")).unwrap();
    assert_eq!(tsv.lines().count(), 4, "a header and three rows: {tsv}");
    assert!(none_left(dir.path()));
    assert_eq!(dirty(dir.path()), "");
}

#[test]
fn two_workers_killed_mid_run_resume_and_record_each_run_once() {
    if !slurm_up() {
        return;
    }
    let _turn = cluster();
    let dir = slurm_repo("[decision]\nmode = \"greedy\"\n", "60s");
    let (gates, release) = (dir.path().join("gates"), dir.path().join("release"));
    std::fs::create_dir(&gates).unwrap();
    let args = ["-n", "2", "--workers", "2"];
    let mut child = gated_session(dir.path(), &gates, &release, &["0002", "0003"], &args);
    let ids = [job_id(dir.path(), "0002"), job_id(dir.path(), "0003")];
    child.kill().unwrap();
    child.wait().unwrap();
    for id in &ids {
        assert_eq!(job(id)["JobState"], "RUNNING");
    }
    let (ok, output) = resume_and_release(dir.path(), &release, &["-n", "1", "--workers", "2"]);
    assert!(ok, "{output}");
    for id in &ids {
        assert!(output.contains(id.as_str()), "{output}");
        assert_eq!(job(id)["JobState"], "COMPLETED");
    }
    assert!(!output.contains("cancelled"), "{output}");
    // Both jobs said so as events (the terminal's and the dashboard's source).
    assert_eq!(
        output.matches(r#""state":"reattached""#).count(),
        2,
        "{output}"
    );
    let rows = journal(dir.path());
    assert_eq!(rows.len(), 4, "two reattached and one more: {rows:?}");
    assert!(
        rows.iter()
            .all(|r| matches!(r.1.as_str(), "keep" | "discard")),
        "{rows:?}"
    );
    // Each run once: four measurements, four distinct jobs, the two followed among them.
    let measured = measured_jobs(dir.path());
    assert_eq!(measured.len(), 4, "{measured:?}");
    let distinct: std::collections::BTreeSet<&String> = measured.iter().map(|m| &m.1).collect();
    assert_eq!(distinct.len(), 4, "{measured:?}");
    for id in &ids {
        assert!(distinct.contains(id), "{measured:?}");
    }
    let tsv = std::fs::read_to_string(dir.path().join("results.tsv")).unwrap();
    assert_eq!(tsv.lines().count(), 5, "a header and four rows: {tsv}");
    assert!(none_left(dir.path()));
    assert_eq!(dirty(dir.path()), "");
}

#[test]
fn shared_dir_holds_the_runs_and_worktrees_the_jobs_use() {
    if !slurm_up() {
        return;
    }
    let _turn = cluster();
    let shared = tempfile::tempdir().unwrap();
    let dir = slurm_repo("[decision]\nmode = \"greedy\"\n", "60s");
    let toml = dir.path().join("autoresearch.toml");
    let cfg = std::fs::read_to_string(&toml).unwrap();
    // A folder nobody can write: refused before any run, naming the key and the fix.
    let bad = cfg.replace(
        "kind = \"slurm\"\n",
        "kind = \"slurm\"\nshared_dir = \"/proc/autoresearch-shared\"\n",
    );
    std::fs::write(&toml, &bad).unwrap();
    git(dir.path(), &["commit", "-qam", "shared_dir"]);
    let out = bin()
        .args(["run", "--yes", "-n", "1", "--repo"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[executor] shared_dir /proc/autoresearch-shared: cannot write there"),
        "{stderr}"
    );
    assert!(!dir.path().join(".autoresearch/journal.sqlite").exists());
    let good = cfg.replace(
        "kind = \"slurm\"\n",
        &format!(
            "kind = \"slurm\"\nshared_dir = \"{}\"\n",
            shared.path().display()
        ),
    );
    std::fs::write(&toml, &good).unwrap();
    git(dir.path(), &["commit", "-qam", "shared_dir"]);
    let out = bin()
        .args(["run", "--yes", "-n", "2", "--workers", "2", "--repo"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let home = std::fs::read_link(dir.path().join(".autoresearch/runs")).unwrap();
    let real_shared = std::fs::canonicalize(shared.path()).unwrap();
    assert!(home.starts_with(shared.path()), "{}", home.display());
    // The jobs were told the shared paths, and wrote their logs there.
    let script = std::fs::read_to_string(home.join("0002/job.sbatch")).unwrap();
    let output = script.lines().find(|l| l.contains("--output=")).unwrap();
    let chdir = script.lines().find(|l| l.contains("--chdir=")).unwrap();
    assert!(
        output.contains(&real_shared.display().to_string()),
        "{script}"
    );
    assert!(
        chdir.contains(&real_shared.join("").display().to_string())
            && chdir.contains("worktrees/w"),
        "{script}"
    );
    let log = std::fs::read_to_string(home.join("0002/run.log")).unwrap();
    assert!(log.contains("val_bpb:"), "{log}");
    let rows = journal(dir.path());
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r.1 != "running"), "{rows:?}");
    assert_eq!(dirty(dir.path()), "");
    assert!(none_left(dir.path()));
}

#[test]
fn the_box_runs_inside_the_job_and_a_node_without_it_says_so() {
    if !slurm_up() {
        return;
    }
    let _turn = cluster();
    let boxed = |dir: &Path| {
        let toml = dir.join("autoresearch.toml");
        let cfg = std::fs::read_to_string(&toml)
            .unwrap()
            .replace("[sandbox]\nmode = \"none\"\nnetwork = \"allow\"", "");
        std::fs::write(&toml, cfg).unwrap();
        git(dir, &["commit", "-qam", "the box"]);
    };
    let dir = slurm_repo("[decision]\nmode = \"greedy\"\n", "60s");
    boxed(dir.path());
    let out = bin()
        .args(["run", "--yes", "-n", "1", "--repo"])
        .arg(dir.path())
        .output()
        .unwrap();
    if String::from_utf8_lossy(&out.stdout).contains("sandbox: none") {
        assert!(
            std::env::var_os("AUTORESEARCH_REQUIRE_SANDBOX").is_none(),
            "{}",
            text(&out)
        );
        eprintln!("SKIPPED: no box on this machine");
        return;
    }
    assert!(out.status.success(), "{}", text(&out));
    let script =
        std::fs::read_to_string(dir.path().join(".autoresearch/runs/0001/job.sbatch")).unwrap();
    assert!(script.contains("exec unshare"), "{script}");
    assert_eq!(journal(dir.path()).len(), 2);
    // A node where user namespaces are off (here: an `unshare` that refuses inside jobs
    // only, as the login node's works): the run fails with a line that says why and how.
    let dir = slurm_repo("[decision]\nmode = \"greedy\"\n", "60s");
    boxed(dir.path());
    let bin_dir = tempfile::tempdir().unwrap();
    let fake = bin_dir.path().join("unshare");
    let real = String::from_utf8_lossy(
        &Command::new("sh")
            .args(["-c", "command -v unshare"])
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .to_string();
    std::fs::write(
        &fake,
        format!("#!/bin/sh\nif [ -n \"$SLURM_JOB_ID\" ]; then echo 'unshare: Operation not permitted' >&2; exit 1; fi\nexec {real} \"$@\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = bin()
        .args(["run", "--yes", "-n", "1", "--repo"])
        .arg(dir.path())
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("the sandbox cannot start on node") && all.contains("mode = \"none\""),
        "{all}"
    );
    assert!(none_left(dir.path()));
}
