//! A node that goes down under a running job, on the real one-node Slurm (`.ci/slurm-up`):
//! Slurm requeues the job, the tool waits for it to start again (its time in the queue not
//! counted) and records the run once, as a measurement, not as a crash. Its own binary, so
//! that taking the node down disturbs no other test. Skips like `slurm_session.rs`.

mod chaos_support;
mod common;

use chaos_support::{fifo, wait_fifo};
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const TRAIN: &str = include_str!("fixtures/slurm/train.py");

fn scontrol(args: &[&str]) -> String {
    let out = Command::new("scontrol").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn field(text: &str, key: &str) -> String {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or("")
        .to_string()
}

#[test]
fn a_run_whose_node_goes_down_is_requeued_and_recorded_once() {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%N"])
        .output()
        .ok()
        .filter(|o| o.status.success() && !o.stdout.is_empty());
    let Some(nodes) = up else {
        assert!(
            std::env::var_os("AUTORESEARCH_REQUIRE_SLURM").is_none(),
            "AUTORESEARCH_REQUIRE_SLURM is set but no Slurm answers"
        );
        eprintln!("SKIPPED: no Slurm answers here; run .ci/slurm-up");
        return;
    };
    let node = String::from_utf8_lossy(&nodes.stdout).trim().to_string();
    let cfg = config(
        "\n[executor]\nkind = \"slurm\"\ncpus_per_job = 1\n\n[sandbox]\nmode = \"none\"\nnetwork = \"allow\"",
    )
    .replace("timeout = \"20s\"", "timeout = \"60s\"");
    let dir = repo(&[
        ("train.py", TRAIN),
        ("prepare.py", PREPARE),
        ("autoresearch.toml", &cfg),
    ]);
    let gate = dir.path().join("gate");
    fifo(&gate);
    let mut child = bin()
        .args([
            "run", "--yes", "--json", "--grace", "1", "-n", "1", "--repo",
        ])
        .arg(dir.path())
        .env("SLURM_TEST_MODE", "gate-once")
        .env("SLURM_TEST_GATE", &gate)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    assert_eq!(wait_fifo(&gate), "running\n");
    let id = std::fs::read_to_string(dir.path().join(".autoresearch/runs/0002/job.id"))
        .unwrap()
        .trim()
        .to_string();
    // The node fails under the job; Slurm requeues it.
    scontrol(&[
        "update",
        &format!("nodename={node}"),
        "state=down",
        "reason=autoresearch-test",
    ]);
    let requeued = scontrol(&["show", "job", "-o", &id]);
    assert_eq!(field(&requeued, "Restarts"), "1", "{requeued}");
    // (ReturnToService=2 brings the node back on its own.) Slurm holds a requeued job
    // back for two minutes, so that the node has cleaned up its first start; the test
    // plays that time forward once the node says it has (started sooner, Slurm kills the
    // job itself: "Job credential revoked").
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let n = scontrol(&["show", "node", "-o", &node]);
        let state = field(&n, "State");
        let job_state = field(&scontrol(&["show", "job", "-o", &id]), "JobState");
        if job_state == "PENDING" && !state.contains("COMPLETING") && !state.contains("DOWN") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the node never became ready again: {n}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    scontrol(&["update", &format!("jobid={id}"), "StartTime=now"]);
    let status = child.wait().unwrap();
    let events = lines.join().unwrap();
    assert!(status.success(), "{events:#?}");
    let rows = journal(dir.path());
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        rows[1].1, "keep",
        "measured, not a crash: {rows:?}\n{events:#?}"
    );
    assert_eq!(rows[1].2, Some(1.04));
    let done = scontrol(&["show", "job", "-o", &id]);
    assert_eq!(field(&done, "JobState"), "COMPLETED", "{done}");
    assert_eq!(dirty(dir.path()), "");
}
