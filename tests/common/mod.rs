//! Shared helpers for black-box tests: temp git repos with fixture training scripts, the
//! binary, and readers for what it leaves behind.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub const IDENTITY: [(&str, &str); 4] = [
    ("GIT_AUTHOR_NAME", "test"),
    ("GIT_AUTHOR_EMAIL", "test@example.com"),
    ("GIT_COMMITTER_NAME", "test"),
    ("GIT_COMMITTER_EMAIL", "test@example.com"),
];

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .envs(IDENTITY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A committed repo holding `files` (and a karpathy-shaped prepare.py unless given).
pub fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("prepare.py"), PREPARE).unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "init"]);
    dir
}

/// autoresearch.toml for fixture scripts: tiny budget, python3.
pub fn config(extra: &str) -> String {
    format!(
        "editable = [\"train.py\"]\nread_only = [\"prepare.py\"]\ncommand = \"python3 train.py\"\nbudget = \"1s\"\ntimeout = \"20s\"\ntag = \"t\"\n{extra}\n[decision]\nmode = \"greedy\"\n\n[metric]\nname = \"val_bpb\"\ndirection = \"minimize\"\n"
    )
}

/// A karpathy-shaped fixture: `LR` is the knob; `body` computes `value` from LR and prints.
pub fn train_py(body: &str) -> String {
    format!(
        "LR = 0.1  # the knob the built-in search turns first\nimport os, sys, math, time\n{body}\n"
    )
}

pub const PREPARE: &str = "TIME_BUDGET = 300\n";

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_autoresearch"));
    c.env_remove("ANTHROPIC_API_KEY")
        .env_remove("OPENAI_API_KEY");
    c.env("AUTORESEARCH_PLATFORM", "cpu");
    c
}

/// Runs `autoresearch run --yes --grace 1 <args>` in `dir`.
pub fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    bin()
        .args(["run", "--yes", "--grace", "1", "--repo"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

pub fn text(out: &std::process::Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// results.tsv rows as columns (header skipped).
pub fn results(dir: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("results.tsv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "commit\tval_bpb\tmemory_gb\tstatus\tdescription"
    );
    lines
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// (iteration, status, metric, reason, commit) of every journal row.
pub fn journal(dir: &Path) -> Vec<(i64, String, Option<f64>, String, String)> {
    let conn = rusqlite::Connection::open(dir.join(".autoresearch/journal.sqlite")).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT iteration, status, metric, reason, commit_sha FROM experiments ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The research branch of the fixtures' config (`tag = "t"`).
pub const BRANCH: &str = "autoresearch/t";

/// A file as the best commit has it (the research branch; the user's checkout is never
/// moved by a session).
pub fn best_file(dir: &Path, name: &str) -> String {
    let out = Command::new("git")
        .args(["show", &format!("{BRANCH}:{name}")])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "no {name} on {BRANCH}");
    String::from_utf8(out.stdout).unwrap()
}

/// The research branch's commit, full or `--short=7`.
pub fn best_commit(dir: &Path, short: bool) -> String {
    if short {
        git(dir, &["rev-parse", "--short=7", BRANCH])
    } else {
        git(dir, &["rev-parse", BRANCH])
    }
}

/// The user's checkout as a session must leave it: still on `main`, at its only commit
/// (`init`), nothing changed.
pub fn assert_checkout_untouched(dir: &Path) {
    assert_eq!(git(dir, &["rev-parse", "--abbrev-ref", "HEAD"]), "main");
    assert_eq!(git(dir, &["log", "-1", "--format=%s", "HEAD"]), "init");
    assert_eq!(dirty(dir), "", "the user's checkout changed");
}

/// Tracked changes in the work tree (must be empty after every session).
pub fn dirty(dir: &Path) -> String {
    git(dir, &["status", "--porcelain", "--untracked-files=no"])
}

/// Processes that carry this repo's session token (none may survive a session).
pub fn survivors(dir: &Path) -> Vec<i32> {
    let root = PathBuf::from(git(dir, &["rev-parse", "--show-toplevel"]));
    let mut found = Vec::new();
    for id in 1..=20 {
        let token = format!("{}#{id}", root.display());
        found.extend(autoresearch::runner::local::processes_with_env(
            autoresearch::session::SESSION_ENV,
            &token,
        ));
    }
    found
}
