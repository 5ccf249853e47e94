//! Black-box tests of the engine: `autoresearch run --workers 3` on a temp git repo. Runs
//! really overlap (the baseline's seeds meet at a rendezvous that a one-at-a-time loop
//! could never reach), each in its own worktree that sees the checkout's untracked data,
//! the journal says where each ran, the research branch ends at the best, and the user's
//! checkout is neither switched nor reset.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

/// The unmodified code (LR = 0.1) waits, up to 20 s, until three runs of it are alive at
/// once; its log says whether they met. Every run prints the data file it reads through
/// the worktree's link to the checkout's untracked `data/`.
const BODY: &str = r#"
meet = os.environ['MEET_DIR']
worker = os.environ.get('AUTORESEARCH_WORKER', '?')
print('data:', open('data/x.txt').read().strip(), 'worker', worker, 'cwd', os.getcwd())
if LR == 0.1:
    # Not the pid alone: in the box each run has its own pid namespace, so pids repeat.
    open(os.path.join(meet, f'{worker}-{os.getpid()}-{time.time_ns()}'), 'w').close()
    for _ in range(400):
        if len(os.listdir(meet)) >= 3:
            print('met', len(os.listdir(meet)))
            break
        time.sleep(0.05)
    else:
        print('alone')
value = (LR - 0.4) ** 2 + 1
print(f'val_bpb: {value:.6f}')
"#;

fn setup() -> (tempfile::TempDir, tempfile::TempDir) {
    let cfg = config("").replace("mode = \"greedy\"", "mode = \"noise-aware\"");
    let dir = repo(&[
        ("train.py", &train_py(BODY)),
        ("autoresearch.toml", &cfg),
        (".gitignore", "data/\n"),
    ]);
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/x.txt"), "shards-ok\n").unwrap();
    (dir, tempfile::tempdir().unwrap())
}

fn run_workers(dir: &Path, meet: &Path, args: &[&str]) -> std::process::Output {
    bin()
        .args(["run", "--yes", "--grace", "1", "--repo"])
        .arg(dir)
        .args(args)
        .env("MEET_DIR", meet)
        .output()
        .unwrap()
}

/// (experiment iteration, seed, worker, device) of every run.
fn runs(dir: &Path) -> Vec<(i64, i64, Option<i64>, Option<String>)> {
    let conn = rusqlite::Connection::open(dir.join(".autoresearch/journal.sqlite")).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT e.iteration, m.seed, m.worker, m.device FROM measurements m
             JOIN experiments e ON e.id = m.experiment_id ORDER BY m.id",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn three_workers_run_side_by_side_in_worktrees_and_leave_the_checkout_alone() {
    let (dir, meet) = setup();
    let head_before = git(dir.path(), &["rev-parse", "HEAD"]);
    let out = run_workers(dir.path(), meet.path(), &["--workers", "3", "-n", "5"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("3 worker(s): cpu ×3"), "{stdout}");

    // The baseline's three seeds ran at the same time, on three workers.
    let all = runs(dir.path());
    let baseline: Vec<_> = all.iter().filter(|r| r.0 == 0).collect();
    assert_eq!(baseline.len(), 3, "{all:?}");
    let mut workers: Vec<i64> = baseline.iter().map(|r| r.2.unwrap()).collect();
    workers.sort_unstable();
    assert_eq!(workers, [1, 2, 3]);
    assert!(all.iter().all(|r| r.3.as_deref() == Some("cpu")), "{all:?}");
    for k in ["0001", "0001-2", "0001-3"] {
        let log =
            std::fs::read_to_string(dir.path().join(format!(".autoresearch/runs/{k}/run.log")))
                .unwrap();
        assert!(
            log.contains("met 3"),
            "run {k} did not meet the others:\n{log}"
        );
        assert!(log.contains("data: shards-ok"), "{log}");
        assert!(log.contains(".autoresearch/worktrees/w"), "{log}");
    }

    // Every finished experiment once in results.tsv; the branch at the best of them.
    let rows = results(dir.path());
    assert_eq!(rows.len(), 6, "baseline + 5 experiments: {rows:?}");
    let j = journal(dir.path());
    assert!(j.iter().all(|r| r.1 != "running"), "{j:?}");
    let best = j.iter().rev().find(|r| r.1 == "keep").unwrap();
    assert_eq!(git(dir.path(), &["rev-parse", "autoresearch/t"]), best.4);
    assert!(
        best.2.unwrap() < 1.09,
        "something better than the baseline was kept: {j:?}"
    );
    // Each kept commit descends from the one kept before it.
    let kept: Vec<&String> = j.iter().filter(|r| r.1 == "keep").map(|r| &r.4).collect();
    for pair in kept.windows(2) {
        git(
            dir.path(),
            &["merge-base", "--is-ancestor", pair[0], pair[1]],
        );
    }

    // The user's checkout: still on main, at the same commit, with the same files.
    assert_eq!(
        git(dir.path(), &["rev-parse", "--abbrev-ref", "HEAD"]),
        "main"
    );
    assert_eq!(git(dir.path(), &["rev-parse", "HEAD"]), head_before);
    assert!(
        std::fs::read_to_string(dir.path().join("train.py"))
            .unwrap()
            .starts_with("LR = 0.1")
    );
    assert_eq!(dirty(dir.path()), "");
    assert!(git(dir.path(), &["status", "--porcelain"]).is_empty());
    assert!(survivors(dir.path()).is_empty());
}

#[test]
fn ctrl_c_with_runs_in_flight_records_them_interrupted_and_leaves_nothing_running() {
    let (dir, meet) = setup();
    // Runs of the unmodified code wait at the rendezvous for a fourth that never comes
    // (four are needed: see below), so three runs are in flight when the signal arrives.
    let train = train_py(&BODY.replace(">= 3", ">= 4"));
    std::fs::write(dir.path().join("train.py"), train).unwrap();
    git(dir.path(), &["commit", "-qam", "wait for four"]);
    let head_before = git(dir.path(), &["rev-parse", "HEAD"]);
    let mut child = bin()
        .args(["run", "--yes", "--grace", "1", "--workers", "3", "--repo"])
        .arg(dir.path())
        .env("MEET_DIR", meet.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait (by events, not by time) until three runs have checked in.
    loop {
        if std::fs::read_dir(meet.path()).unwrap().count() >= 3 {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the session ended early: {status}");
        }
        std::thread::yield_now();
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let j = journal(dir.path());
    assert_eq!(j.len(), 1, "{j:?}");
    assert_eq!(j[0].1, "interrupted");
    assert!(survivors(dir.path()).is_empty());
    assert_eq!(
        git(dir.path(), &["rev-parse", "--abbrev-ref", "HEAD"]),
        "main"
    );
    assert_eq!(git(dir.path(), &["rev-parse", "HEAD"]), head_before);
    assert_eq!(dirty(dir.path()), "");

    // Resumed, the session measures its baseline again (the three files left at the
    // rendezvous let the new runs through at once) and goes on.
    let out = run_workers(dir.path(), meet.path(), &["--workers", "3", "-n", "2"]);
    assert!(out.status.success(), "{}", text(&out));
    let j = journal(dir.path());
    assert_eq!(j[0].1, "interrupted");
    assert!(j.iter().any(|r| r.0 == 0 && r.1 == "keep"), "{j:?}");
    assert!(survivors(dir.path()).is_empty());
}
