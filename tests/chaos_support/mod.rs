//! Helpers for the chaos tests: a repo with the chaos fixture, the binary launched with
//! `--json` and killed at a crash point or at the n-th event of a kind, and the checks that
//! must hold after any crash and resume.
#![allow(dead_code)]

pub mod engine;

use crate::common::{IDENTITY, PREPARE, bin, git};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;

pub const TRAIN: &str = include_str!("../fixtures/chaos/train.py");

/// The interpreter itself, not a version-manager shim (a pyenv shim costs ~200 ms a start,
/// which fifty kill points multiply).
pub fn python() -> &'static str {
    static PY: OnceLock<String> = OnceLock::new();
    PY.get_or_init(|| {
        let out = std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 is needed for the fixtures");
        let exe = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if exe.is_empty() {
            "python3".into()
        } else {
            exe
        }
    })
}

/// autoresearch.toml for the chaos fixture, greedy; `extra` goes before the sections.
pub fn config(extra: &str) -> String {
    config_with(extra, "mode = \"greedy\"")
}

/// autoresearch.toml with `decision` as the body of its `[decision]` section.
pub fn config_with(extra: &str, decision: &str) -> String {
    format!(
        "editable = [\"train.py\"]\nread_only = [\"prepare.py\"]\ncommand = \"{} train.py\"\nbudget = \"1s\"\ntimeout = \"20s\"\ntag = \"t\"\nreport_every = 2\n{extra}\n[decision]\n{decision}\n\n[metric]\nname = \"val_bpb\"\ndirection = \"minimize\"\n",
        python()
    )
}

/// A committed repo with the chaos fixture (or `train` instead) and `config`.
pub fn repo_with(train: &str, config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("train.py", train),
        ("prepare.py", PREPARE),
        ("autoresearch.toml", config),
    ] {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "init"]);
    dir
}

/// How the orchestrator is killed.
#[derive(Debug, Clone, Copy)]
pub enum Kill {
    /// `AUTORESEARCH_CHAOS_KILL_AT=<label>:<n>`: it kills itself there.
    At(&'static str, u64),
    /// The test SIGKILLs it when the n-th JSON event of this kind arrives.
    OnEvent(&'static str, usize),
    /// Not killed.
    Never,
}

impl std::fmt::Display for Kill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kill::At(l, n) => write!(f, "point {l}:{n}"),
            Kill::OnEvent(k, n) => write!(f, "event {k} #{n}"),
            Kill::Never => write!(f, "no kill"),
        }
    }
}

/// One invocation of `autoresearch run --json`.
pub struct Run {
    pub status: ExitStatus,
    pub events: Vec<serde_json::Value>,
    pub stderr: String,
}

impl Run {
    pub fn killed(&self) -> bool {
        self.status.signal() == Some(9)
    }
    pub fn describe(&self) -> String {
        let kinds: Vec<&str> = self
            .events
            .iter()
            .filter_map(|e| e["event"].as_str())
            .collect();
        format!(
            "status {:?}; events {kinds:?}; stderr: {}",
            self.status,
            self.stderr.trim()
        )
    }
}

/// Runs `autoresearch run --yes --json --grace 0.2 -n <n>` on `dir`, killing it as `kill`
/// says; `env` is added to its environment.
pub fn launch(dir: &Path, n: u64, kill: Kill, env: &[(&str, &str)]) -> Run {
    collect(command(dir, n, kill, env), kill)
}

/// Like [`launch`], run through `sh -c '<prefix>; exec "$@"'` (limits, ignored signals).
pub fn launch_under(prefix: &str, dir: &Path, n: u64, env: &[(&str, &str)]) -> Run {
    let inner = command(dir, n, Kill::Never, env);
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!("{prefix}; exec \"$@\""))
        .arg("sh")
        .arg(inner.get_program())
        .args(inner.get_args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    collect(cmd, Kill::Never)
}

fn command(dir: &Path, n: u64, kill: Kill, env: &[(&str, &str)]) -> std::process::Command {
    let mut cmd = bin();
    cmd.args(["run", "--yes", "--json", "--grace", "0.2", "-n"])
        .arg(n.to_string())
        .arg("--repo")
        .arg(dir)
        .envs(IDENTITY)
        .envs(env.iter().copied())
        .env_remove(autoresearch::chaos::CHAOS_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Kill::At(label, n) = kill {
        cmd.env(autoresearch::chaos::CHAOS_ENV, format!("{label}:{n}"));
    }
    cmd
}

/// Runs `cmd`, killing it as `kill` says, and collects its events.
fn collect(mut cmd: std::process::Command, kill: Kill) -> Run {
    let mut child = cmd.spawn().unwrap();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });
    let mut events = Vec::new();
    let mut seen = 0;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let Ok(line) = line else { break };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if let Kill::OnEvent(kind, n) = kill {
            if v["event"] == kind {
                seen += 1;
                if seen == n {
                    let _ = child.kill();
                }
            }
        }
        events.push(v);
    }
    let status = child.wait().unwrap();
    Run {
        status,
        events,
        stderr: stderr.join().unwrap(),
    }
}

/// One journal row, as the checks need it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub iteration: i64,
    pub status: String,
    pub commit: String,
    pub description: String,
}

pub fn journal_rows(dir: &Path) -> Vec<Row> {
    let conn = rusqlite::Connection::open_with_flags(
        dir.join(".autoresearch/journal.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok", "journal integrity");
    let mut stmt = conn
        .prepare("SELECT iteration, status, commit_sha, description FROM experiments ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| {
        Ok(Row {
            iteration: r.get(0)?,
            status: r.get(1)?,
            commit: r.get(2)?,
            description: r.get(3)?,
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn finished(rows: &[Row]) -> Vec<&Row> {
    rows.iter()
        .filter(|r| matches!(r.status.as_str(), "keep" | "discard" | "crash"))
        .collect()
}

/// (short commit, status, description) of one results.tsv row.
pub type TsvRow = (String, String, String);

/// Every results.tsv row; None if it is missing.
pub fn results_rows(dir: &Path) -> Result<Option<Vec<TsvRow>>, String> {
    results_rows_at(&dir.join("results.tsv"))
}

pub fn results_rows_at(path: &Path) -> Result<Option<Vec<TsvRow>>, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    let mut lines = text.lines();
    if lines.next() != Some("commit\tval_bpb\tmemory_gb\tstatus\tdescription") {
        return Err(format!("results.tsv has no header: {text:?}"));
    }
    if !text.ends_with('\n') {
        return Err(format!("results.tsv ends mid-line: {text:?}"));
    }
    lines
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            if cols.len() != 5 {
                return Err(format!(
                    "results.tsv row with {} columns: {l:?}",
                    cols.len()
                ));
            }
            // A repeated measurement's note, `(n=3, ±0.0021)`, is not part of the journal's
            // description.
            let desc = match cols[4].rfind(" (n=") {
                Some(i) if cols[4].ends_with(')') => &cols[4][..i],
                _ => cols[4],
            };
            Ok((cols[0].into(), cols[3].into(), desc.into()))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn short(commit: &str) -> String {
    commit.chars().take(7).collect()
}

fn as_tsv(rows: &[&Row]) -> Vec<TsvRow> {
    rows.iter()
        .map(|r| (short(&r.commit), r.status.clone(), r.description.clone()))
        .collect()
}

/// Right after a kill: the journal is readable and results.tsv is whole and holds the
/// journal's finished experiments, or all but the last (killed between the two writes).
pub fn check_after_kill(dir: &Path) -> Result<(), String> {
    if !dir.join(".autoresearch/journal.sqlite").exists() {
        return Ok(());
    }
    let rows = journal_rows(dir);
    let want = as_tsv(&finished(&rows));
    let Some(got) = results_rows(dir)? else {
        return Ok(());
    };
    let lag = want.len().saturating_sub(got.len());
    if lag > 1 || want[..got.len().min(want.len())] != got[..] || got.len() > want.len() {
        return Err(format!(
            "after the kill results.tsv {got:?} is not the journal's {want:?} (or all but its last)"
        ));
    }
    Ok(())
}

/// Processes still carrying this repo's session token.
pub fn survivors(dir: &Path) -> Vec<i32> {
    crate::common::survivors(dir)
}

/// After a completed (resumed) session: every finished experiment in the journal and in
/// results.tsv exactly once, no row left running, the branch at the last kept commit, a
/// clean tree, and no process of the session alive.
pub fn check_consistent(dir: &Path) -> Result<(), String> {
    check_consistent_at(dir, "results.tsv")
}

/// [`check_consistent`] with results.tsv at `results` (relative to the repo).
pub fn check_consistent_at(dir: &Path, results: &str) -> Result<(), String> {
    check_records(dir, results)?;
    check_at_best(dir)
}

/// No journal row left running, no commit finished twice, and results.tsv (at `results`,
/// relative to the repo) exactly the journal's finished experiments.
fn check_records(dir: &Path, results: &str) -> Result<(), String> {
    let rows = journal_rows(dir);
    if let Some(r) = rows.iter().find(|r| r.status == "running") {
        return Err(format!("a row is still running after the session: {r:?}"));
    }
    let done = finished(&rows);
    let mut commits: Vec<&str> = done.iter().map(|r| r.commit.as_str()).collect();
    commits.sort_unstable();
    if let Some(w) = commits.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("commit {} finished twice in the journal", w[0]));
    }
    let want = as_tsv(&done);
    let got = results_rows_at(&dir.join(results))?.ok_or("results.tsv is missing")?;
    if got != want {
        return Err(format!(
            "results.tsv {got:?} differs from the journal's finished experiments {want:?}"
        ));
    }
    Ok(())
}

/// The journal's last kept experiment: the best.
fn last_kept(dir: &Path) -> Result<Row, String> {
    finished(&journal_rows(dir))
        .into_iter()
        .rev()
        .find(|r| r.status == "keep")
        .cloned()
        .ok_or_else(|| "no kept experiment (not even the baseline)".to_string())
}

/// The session's research branch and where the user's checkout was when it began
/// (`base_branch`, `base_commit` of the journal's session row).
fn session_base(dir: &Path) -> Result<(String, String, String), String> {
    let conn = rusqlite::Connection::open_with_flags(
        dir.join(".autoresearch/journal.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .map_err(|e| e.to_string())?;
    conn.query_row(
        "SELECT branch, base_branch, base_commit FROM sessions ORDER BY id LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .map_err(|e| format!("no session row: {e}"))
}

/// The research branch at the journal's last kept commit; the user's checkout untouched
/// (still on the branch and at the commit the session began from, nothing changed or left
/// in it); every worker's worktree clean; no process of the session alive.
pub fn check_at_best(dir: &Path) -> Result<(), String> {
    let best = last_kept(dir)?;
    let (research, base_branch, base_commit) = session_base(dir)?;
    let at = git(dir, &["rev-parse", &research]);
    if at != best.commit {
        return Err(format!(
            "{research} is at {at}, the best (last kept) is {} ({})",
            best.commit, best.description
        ));
    }
    let branch = git(dir, &["rev-parse", "--abbrev-ref", "HEAD"]);
    let head = git(dir, &["rev-parse", "HEAD"]);
    if branch != base_branch || head != base_commit {
        return Err(format!(
            "the user's checkout was moved: {branch} at {head}, not {base_branch} at {base_commit}"
        ));
    }
    let dirty = crate::common::dirty(dir);
    if !dirty.is_empty() {
        return Err(format!("the tree is dirty: {dirty}"));
    }
    // Untracked leftovers too (a half-written results.tsv.tmp, an edit never committed).
    let untracked = git(dir, &["status", "--porcelain", "--ignored=no"]);
    if !untracked.is_empty() {
        return Err(format!("files left in the work tree: {untracked}"));
    }
    let trees = dir.join(".autoresearch/worktrees");
    for tree in std::fs::read_dir(&trees).into_iter().flatten().flatten() {
        let dirty = crate::common::dirty(&tree.path());
        if !dirty.is_empty() {
            return Err(format!(
                "worktree {} is dirty: {dirty}",
                tree.path().display()
            ));
        }
    }
    let alive = survivors(dir);
    if !alive.is_empty() {
        return Err(format!("processes of the session survived: {alive:?}"));
    }
    Ok(())
}

/// Experiments (not the baseline) that finished.
pub fn finished_experiments(dir: &Path) -> usize {
    if !dir.join(".autoresearch/journal.sqlite").exists() {
        return 0;
    }
    finished(&journal_rows(dir))
        .iter()
        .filter(|r| r.iteration > 0)
        .count()
}

/// One kill point: a fresh repo, a session of `first` experiments killed at `kill`, then a
/// resumed session of 2 that must finish; every invariant is checked. Err says what broke.
pub fn kill_and_resume(kill: Kill, first: u64) -> Result<(), String> {
    kill_and_resume_with(&config(""), kill, first).map(drop)
}

/// [`kill_and_resume`] with this autoresearch.toml. Ok(true) when a process of the killed
/// session was still alive before the resume (and the resume then had to kill it).
pub fn kill_and_resume_with(config: &str, kill: Kill, first: u64) -> Result<bool, String> {
    let dir = repo_with(TRAIN, config);
    let d = dir.path();
    let killed = launch(d, first, kill, &[]);
    if !killed.killed() {
        return Err(format!("never killed: {}", killed.describe()));
    }
    check_after_kill(d)?;
    // Killed mid-run, the fixture's detached grandchild usually outlives the orchestrator
    // and the resume must kill it. Whether it is still visible at this instant depends on
    // scheduling (a process that has just exec'd shows an empty environ), so the proof
    // that the final scan is not vacuous is made over all mid-run points together.
    let had_survivor = !survivors(d).is_empty();
    let before = finished_experiments(d);
    let resumed = launch(d, 2, Kill::Never, &[]);
    if !resumed.status.success() {
        return Err(format!("the resume failed: {}", resumed.describe()));
    }
    let started = resumed.events.first().ok_or("the resume printed nothing")?;
    if started["event"] != "session_started" || started["resumed"] != true {
        return Err(format!("the resume began with {started}"));
    }
    check_consistent(d)?;
    let after = finished_experiments(d);
    if after != before + 2 {
        return Err(format!(
            "the resumed session finished {} experiments, not 2",
            after as i64 - before as i64
        ));
    }
    Ok(had_survivor)
}

/// Runs every kill point, then fails listing those that broke an invariant.
pub fn run_points(points: &[(Kill, u64)]) {
    run_points_with(&config(""), points);
}

/// [`run_points`] with this autoresearch.toml.
pub fn run_points_with(config: &str, points: &[(Kill, u64)]) {
    let mut failures = Vec::new();
    let (mut mid_run, mut mid_run_survivors) = (0, 0);
    for &(kill, first) in points {
        let is_mid_run = matches!(kill, Kill::At("run_line", _));
        match kill_and_resume_with(config, kill, first) {
            Ok(had) => {
                if is_mid_run {
                    mid_run += 1;
                    mid_run_survivors += usize::from(had);
                }
            }
            Err(why) => failures.push(format!("{kill}: {why}")),
        }
    }
    // In the box a run's pid namespace dies with the orchestrator, so nothing outlives it
    // there by design (`tests/chaos_orphans.rs` checks both that and, with mode = "none",
    // the resume's clean-up).
    let boxed = autoresearch::runner::sandbox::Probe::cached().boxed;
    if mid_run > 0 && mid_run_survivors == 0 && !boxed {
        failures.push(format!(
            "no process outlived the orchestrator at any of {mid_run} mid-run kill points: the survivor scan proves nothing"
        ));
    }
    eprintln!(
        "chaos: {} kill points, {} passed",
        points.len(),
        points.len() - failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A session running in the background, its events read as they come.
pub struct Live {
    pub child: std::process::Child,
    lines: std::sync::mpsc::Receiver<serde_json::Value>,
    pub events: Vec<serde_json::Value>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Live {
    /// Starts `autoresearch run --yes --json --grace 0.2 -n <n>` on `dir`.
    pub fn start(dir: &Path, n: u64, env: &[(&str, &str)]) -> Live {
        let mut child = bin()
            .args(["run", "--yes", "--json", "--grace", "0.2", "-n"])
            .arg(n.to_string())
            .arg("--repo")
            .arg(dir)
            .envs(IDENTITY)
            .envs(env.iter().copied())
            .env_remove(autoresearch::chaos::CHAOS_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Live {
            child,
            lines,
            events: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// Blocks until an event of `kind` for which `pred` holds; panics if the session ends
    /// first.
    pub fn wait_for(
        &mut self,
        kind: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        loop {
            let Ok(v) = self.lines.recv() else {
                panic!(
                    "the session ended before a {kind} event: {:?}",
                    self.events
                        .iter()
                        .map(|e| e["event"].to_string())
                        .collect::<Vec<_>>()
                );
            };
            self.events.push(v.clone());
            if v["event"] == kind && pred(&v) {
                return v;
            }
        }
    }

    /// Waits for the end and collects the rest.
    pub fn finish(mut self) -> Run {
        while let Ok(v) = self.lines.recv() {
            self.events.push(v);
        }
        let status = self.child.wait().unwrap();
        Run {
            status,
            events: self.events,
            stderr: self.stderr.take().unwrap().join().unwrap(),
        }
    }
}

/// A FIFO at `path`, for a fixture and the test to meet at an exact moment.
pub fn fifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

/// Reads `path` (a FIFO) to its end: returns once a fixture has opened it, written and
/// closed it. Fails the test after a generous minute rather than hang forever.
pub fn wait_fifo(path: &Path) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::read_to_string(p));
    });
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(text) => text.unwrap(),
        Err(_) => panic!("nothing came through {} within a minute", path.display()),
    }
}

/// Opens `path` (a FIFO a fixture is blocked reading) and closes it: lets the fixture go on.
pub fn open_gate(path: &Path) {
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::OpenOptions::new().write(true).open(p).map(drop));
    });
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(r) => r.unwrap(),
        Err(_) => panic!("no run opened the gate {} within a minute", path.display()),
    }
}

/// Live (not zombie) processes whose command line holds `marker`, as (pid, start time):
/// found by scanning /proc, not by trusting any bookkeeping of the tool.
pub fn processes_with_arg(marker: &str) -> Vec<(i32, u64)> {
    let me = std::process::id() as i32;
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if !cmdline
            .split(|&b| b == 0)
            .any(|arg| arg == marker.as_bytes())
        {
            continue;
        }
        if let Some((zombie, start)) = stat_of(pid) {
            if !zombie {
                found.push((pid, start));
            }
        }
    }
    found
}

/// Whether this exact process (pid and start time) is alive and not a zombie.
pub fn alive(pid: i32, start: u64) -> bool {
    stat_of(pid).is_some_and(|(zombie, s)| !zombie && s == start)
}

fn stat_of(pid: i32) -> Option<(bool, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is the state (field 3); starttime is field 22.
    let zombie = matches!(fields.first()?, &"Z" | &"X");
    Some((zombie, fields.get(19)?.parse().ok()?))
}
