//! Chaos with workers: the same kill points as the one-worker chaos test, on a session of
//! `--workers 3`, with runs in flight on several workers when the orchestrator dies. After
//! each kill and a resume: every finished experiment once in the journal and results.tsv,
//! nothing left `running`, the research branch at the best, every worktree clean at a
//! commit, the user's checkout untouched (still on main, same commit, nothing changed) and
//! no process of the session alive.

use super::*;

const WORKERS: &str = "3";

fn launch_workers(dir: &Path, n: u64, kill: Kill) -> Run {
    let mut cmd = command(dir, n, kill, &[]);
    cmd.args(["--workers", WORKERS]);
    collect(cmd, kill)
}

/// The engine's invariants after a completed (resumed) session: those of every session
/// ([`check_consistent`]: the checkout where the journal says the session began, every
/// worktree clean), and that place is where HEAD really was before it (`head_before`).
pub fn check_engine_consistent(dir: &Path, head_before: &str) -> Result<(), String> {
    check_consistent(dir)?;
    if git(dir, &["rev-parse", "HEAD"]) != head_before {
        return Err("the user's checkout was moved".into());
    }
    Ok(())
}

/// One kill point on a fresh repo with three workers, then a resume of 3 experiments.
pub fn kill_and_resume_engine(config: &str, kill: Kill, first: u64) -> Result<(), String> {
    let dir = repo_with(TRAIN, config);
    let d = dir.path();
    let head = git(d, &["rev-parse", "HEAD"]);
    let killed = launch_workers(d, first, kill);
    if !killed.killed() {
        return Err(format!("never killed: {}", killed.describe()));
    }
    check_after_kill(d)?;
    let before = finished_experiments(d);
    let resumed = launch_workers(d, 3, Kill::Never);
    if !resumed.status.success() {
        return Err(format!("the resume failed: {}", resumed.describe()));
    }
    let started = resumed.events.first().ok_or("the resume printed nothing")?;
    if started["event"] != "session_started" || started["resumed"] != true {
        return Err(format!("the resume began with {started}"));
    }
    check_engine_consistent(d, &head)?;
    let after = finished_experiments(d);
    if after != before + 3 {
        return Err(format!(
            "the resumed session finished {} experiments, not 3",
            after as i64 - before as i64
        ));
    }
    Ok(())
}

/// Runs every kill point with workers, then fails listing those that broke an invariant.
pub fn run_engine_points(config: &str, points: &[(Kill, u64)]) {
    let failures: Vec<String> = points
        .iter()
        .filter_map(|&(kill, first)| {
            kill_and_resume_engine(config, kill, first)
                .err()
                .map(|why| format!("{kill}: {why}"))
        })
        .collect();
    eprintln!(
        "chaos (3 workers): {} kill points, {} passed",
        points.len(),
        points.len() - failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
