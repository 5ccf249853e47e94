//! Black-box tests of `autoresearch run` on temp git repos with fixture scripts: the
//! decisions, the records, the branch position, the clean tree, and no surviving process.

mod common;
use common::*;

/// val_bpb = (LR - 0.4)^2 + 1: doubling LR helps twice (0.1 → 0.2 → 0.4), then hurts.
const QUADRATIC: &str = "value = (LR - 0.4) ** 2 + 1\nprint('step 1 | loss: 3.0')\nprint('---')\nprint(f'val_bpb: {value:.6f}')\nprint('peak_vram_mb: 2048.0')\nprint('num_params_M: 1.5')";

#[test]
fn keeps_improvements_discards_regressions_and_leaves_the_branch_at_the_best() {
    let dir = repo(&[
        ("train.py", &train_py(QUADRATIC)),
        ("prepare.py", PREPARE),
        ("autoresearch.toml", &config("")),
    ]);
    let out = run(dir.path(), &["-n", "4"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = results(dir.path());
    let summary: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r[1].as_str(), r[3].as_str(), r[4].as_str()))
        .collect();
    assert_eq!(summary[0], ("1.090000", "keep", "baseline"));
    assert_eq!(summary[1], ("1.040000", "keep", "LR 0.1 → 0.2"));
    assert_eq!(summary[2], ("1.000000", "keep", "LR 0.2 → 0.4"));
    assert_eq!(summary[3], ("1.160000", "discard", "LR 0.4 → 0.8"));
    assert_eq!(rows.len(), 5, "baseline + 4 experiments");
    assert_eq!(rows[0][2], "2.0", "memory_gb from peak_vram_mb");
    // The research branch points at the best commit; the user's checkout is untouched.
    assert_eq!(best_commit(dir.path(), true), rows[2][0]);
    assert!(best_file(dir.path(), "train.py").starts_with("LR = 0.4"));
    assert_checkout_untouched(dir.path());
    assert_eq!(
        git(dir.path(), &["log", "-1", "--format=%s", BRANCH]),
        "exp: LR 0.2 → 0.4"
    );
    // The journal holds every experiment with its evidence.
    let j = journal(dir.path());
    assert_eq!(j.len(), 5);
    assert!(j.iter().all(|r| r.1 != "running"));
    assert!(j[3].3.contains("1.000000 → 1.160000"), "{:?}", j[3]);
    // results.tsv and the tool's folder stay out of git.
    assert!(git(dir.path(), &["status", "--porcelain"]).is_empty());
    assert!(survivors(dir.path()).is_empty());
}

#[test]
fn crashes_are_recorded_with_a_reason_and_reset() {
    let body = "if LR > 0.15:\n    raise ValueError('boom: LR too high')\nprint(f'val_bpb: {1.0 + LR:.6f}')";
    let dir = repo(&[
        ("train.py", &train_py(body)),
        ("autoresearch.toml", &config("")),
    ]);
    let out = run(dir.path(), &["-n", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = results(dir.path());
    assert_eq!(rows[1][1..4], ["0.000000", "0.0", "crash"]);
    let j = journal(dir.path());
    assert!(
        j[1].3.contains("exit 1") && j[1].3.contains("boom: LR too high"),
        "{:?}",
        j[1]
    );
    assert!(best_file(dir.path(), "train.py").starts_with("LR = 0.1"));
    assert_eq!(dirty(dir.path()), "");
}

#[test]
fn nan_and_missing_metric_are_crashes() {
    let body = "if LR > 0.15:\n    print('val_bpb: nan')\nelif LR < 0.07:\n    print('training done, forgot the summary')\nelse:\n    print(f'val_bpb: {1.0 + LR:.6f}')";
    let dir = repo(&[
        ("train.py", &train_py(body)),
        ("autoresearch.toml", &config("")),
    ]);
    let out = run(dir.path(), &["-n", "2"]);
    assert!(out.status.success(), "{}", text(&out));
    let j = journal(dir.path());
    assert_eq!(j[1].1, "crash");
    assert!(j[1].3.contains("val_bpb is NaN"), "{:?}", j[1]);
    assert_eq!(j[2].1, "crash");
    assert!(
        j[2].3.contains("no `val_bpb:` line") && j[2].3.contains("forgot the summary"),
        "{:?}",
        j[2]
    );
}

#[test]
fn a_hanging_run_is_killed_at_the_timeout_with_its_grandchildren() {
    // Above LR 0.15 the script spawns a background child, a setsid escapee, then hangs.
    let body = "import subprocess\nif LR > 0.15:\n    subprocess.Popen(['sleep', '1000'])\n    subprocess.Popen(['setsid', 'sleep', '1000'])\n    time.sleep(1000)\nprint(f'val_bpb: {1.0 + LR:.6f}')";
    let cfg = config("").replace("timeout = \"20s\"", "timeout = \"3s\"");
    let dir = repo(&[("train.py", &train_py(body)), ("autoresearch.toml", &cfg)]);
    let out = run(dir.path(), &["-n", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let j = journal(dir.path());
    assert_eq!(j[1].1, "crash");
    assert!(j[1].3.contains("timeout"), "{:?}", j[1]);
    assert!(
        survivors(dir.path()).is_empty(),
        "processes survived: {:?}",
        survivors(dir.path())
    );
    assert_eq!(dirty(dir.path()), "");
}

#[test]
fn flooding_output_is_capped_and_the_metric_still_read() {
    // ~50 MB of output, then the summary.
    let body = "line = 'x' * 1023 + '\\n'\nfor _ in range(50 * 1024):\n    sys.stdout.write(line)\nprint(f'val_bpb: {1.0 + LR:.6f}')";
    let dir = repo(&[
        ("train.py", &train_py(body)),
        ("autoresearch.toml", &config("")),
    ]);
    let out = run(dir.path(), &["-n", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = results(dir.path());
    assert_eq!(rows[0][1], "1.100000");
    let log = dir.path().join(".autoresearch/runs/0001/run.log");
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(size < 17 * 1024 * 1024, "log not capped: {size} bytes");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("bytes of output dropped here"),
        "the cap says so in the log"
    );
    assert!(
        log.trim_end().ends_with("val_bpb: 1.100000"),
        "the tail is kept"
    );
}

#[test]
fn a_failing_baseline_stops_with_exit_4_and_names_the_log() {
    let dir = repo(&[
        (
            "train.py",
            &train_py("raise SystemExit('no data: run prepare.py first')"),
        ),
        ("autoresearch.toml", &config("")),
    ]);
    let out = run(dir.path(), &["-n", "3"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("baseline run failed") && err.contains("run.log"),
        "{err}"
    );
    assert_eq!(results(dir.path())[0][3], "crash");
    assert_eq!(dirty(dir.path()), "");
}

#[test]
fn resuming_continues_the_session_without_duplicating_records() {
    let dir = repo(&[
        ("train.py", &train_py(QUADRATIC)),
        ("autoresearch.toml", &config("")),
    ]);
    let first = run(dir.path(), &["-n", "1"]);
    assert!(first.status.success(), "{}", text(&first));
    let second = run(dir.path(), &["-n", "2", "--json"]);
    assert!(second.status.success(), "{}", text(&second));
    let started = String::from_utf8_lossy(&second.stdout)
        .lines()
        .next()
        .unwrap()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&started).unwrap();
    assert_eq!(v["event"], "session_started");
    assert_eq!(v["resumed"], true);
    // Every line is in an envelope: when, to the millisecond, and which session.
    let stdout = String::from_utf8_lossy(&second.stdout).to_string();
    for line in stdout.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        let at = e["at"]
            .as_str()
            .unwrap_or_else(|| panic!("no time: {line}"));
        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{line}");
        assert_eq!(at.len(), "2026-12-01T12:00:00.000Z".len(), "{line}");
        assert_eq!(e["session"], "t", "{line}");
    }
    let rows = results(dir.path());
    let descs: Vec<&str> = rows.iter().map(|r| r[4].as_str()).collect();
    assert_eq!(
        descs,
        ["baseline", "LR 0.1 → 0.2", "LR 0.2 → 0.4", "LR 0.4 → 0.8"]
    );
}

#[test]
fn refuses_a_dirty_tree_and_an_existing_branch() {
    let dir = repo(&[
        ("train.py", &train_py(QUADRATIC)),
        ("autoresearch.toml", &config("")),
    ]);
    std::fs::write(dir.path().join("train.py"), "LR = 0.3\n").unwrap();
    let out = run(dir.path(), &["-n", "1"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("uncommitted changes in train.py"));
    git(dir.path(), &["checkout", "train.py"]);
    git(dir.path(), &["branch", "autoresearch/t"]);
    let out = run(dir.path(), &["-n", "1"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("branch autoresearch/t already exists") && err.contains("--tag"),
        "{err}"
    );
}

#[test]
fn ctrl_c_stops_cleanly_and_records_the_run_as_interrupted() {
    use std::io::{BufRead, BufReader};
    let body = "if LR > 0.15:\n    print('waiting', flush=True)\n    time.sleep(1000)\nprint(f'val_bpb: {1.0 + LR:.6f}')";
    let dir = repo(&[
        ("train.py", &train_py(body)),
        ("autoresearch.toml", &config("")),
    ]);
    let mut child = bin()
        .args(["run", "--yes", "--json", "--grace", "1", "--repo"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut events = Vec::new();
    // Keep reading to the end: the session reports after the signal too.
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        if v["event"] == "run_started" && v["iteration"] == 1 {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGINT,
            )
            .unwrap();
        }
        events.push(v["event"].as_str().unwrap_or("").to_string());
    }
    assert_eq!(events.last().map(String::as_str), Some("session_ended"));
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let j = journal(dir.path());
    assert_eq!(j.last().unwrap().1, "interrupted");
    assert_eq!(
        results(dir.path()).len(),
        1,
        "interrupted runs are not results"
    );
    assert_eq!(dirty(dir.path()), "");
    assert!(best_file(dir.path(), "train.py").starts_with("LR = 0.1"));
    assert!(survivors(dir.path()).is_empty());
}

#[test]
fn a_target_value_stops_the_session_once_reached() {
    let dir = repo(&[
        ("train.py", &train_py(QUADRATIC)),
        ("autoresearch.toml", &config("")),
    ]);
    let out = run(dir.path(), &["-n", "10", "--target", "1.0"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = results(dir.path());
    // 1.09 → 1.04 → 1.00: the target is met after the second experiment.
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("the target value was reached"));
}

#[test]
fn a_time_limit_stops_starting_experiments() {
    let body = "time.sleep(1)\nprint(f'val_bpb: {1.0 + LR:.6f}')";
    let dir = repo(&[
        ("train.py", &train_py(body)),
        ("autoresearch.toml", &config("")),
    ]);
    let out = run(dir.path(), &["-n", "10", "--for", "1500ms"]);
    assert!(out.status.success(), "{}", text(&out));
    // Each run takes at least a second: at most the baseline and one experiment start
    // before 1.5 s are up.
    let rows = results(dir.path());
    assert!(!rows.is_empty() && rows.len() <= 2, "{rows:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("the --for time is up"));
    assert_eq!(dirty(dir.path()), "");
}

#[test]
fn out_of_memory_gets_one_retry_with_half_the_batch_and_gradient_checkpointing() {
    // Above LR 0.15 the full batch does not fit; half of it does, and is better.
    let body = "scale = float(os.environ['AUTORESEARCH_BATCH_SCALE'])\nckpt = os.environ.get('AUTORESEARCH_GRAD_CHECKPOINT', '0')\nprint(f'batch_scale: {scale}')\nprint(f'grad_checkpoint: {ckpt}')\nif LR > 0.15 and scale >= 1.0:\n    sys.exit('torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB')\nprint(f'val_bpb: {1.0 + abs(LR - 0.3):.6f}')";
    let dir = repo(&[
        ("train.py", &train_py(body)),
        ("autoresearch.toml", &config("")),
    ]);
    let out = bin()
        .env("AUTORESEARCH_PLATFORM", "cuda")
        .args(["run", "--yes", "--grace", "1", "-n", "2", "--repo"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let j = journal(dir.path());
    // baseline, the OOM crash (attempt 1), its retry (attempt 2), the next experiment.
    assert_eq!(j[1].1, "crash");
    assert!(
        j[1].3.contains("out of memory") && j[1].3.contains("retrying once with batch scale ×0.5"),
        "{:?}",
        j[1]
    );
    assert_eq!(j[2].1, "keep", "{:?}", j[2]);
    assert_eq!(j[1].4, j[2].4, "the retry runs the same commit");
    let rows = results(dir.path());
    assert_eq!(rows[2][4], "LR 0.1 → 0.2 (OOM retry: batch scale ×0.5)");
    // The halved batch stays in force for the experiments built on the kept retry.
    let log = std::fs::read_to_string(dir.path().join(".autoresearch/runs/0004/run.log")).unwrap();
    assert!(log.contains("batch_scale: 0.5"), "{log}");
    let retry_log =
        std::fs::read_to_string(dir.path().join(".autoresearch/runs/0003/run.log")).unwrap();
    assert!(retry_log.contains("grad_checkpoint: 1"), "{retry_log}");
    assert_eq!(dirty(dir.path()), "");
}
