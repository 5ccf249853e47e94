//! Shared by the bad_inputs_* tests: a committed fixture repo, running the binary until it
//! refuses, and the checks that a refusal is one line, has the documented exit code and
//! left the repository exactly as it was.
#![allow(dead_code)]

#[path = "../common/mod.rs"]
mod common;

pub use common::{PREPARE, git, repo};
use std::path::Path;

/// The training script of the fixture repo (never run: every case fails before training).
pub const TRAIN: &str = "LR = 0.1\nprint('val_bpb: 1.0')\n";

/// The exit codes of `autoresearch::cli::exit`, repeated so a change to them fails here.
pub const CONFIG: i32 = 2;
pub const REPOSITORY: i32 = 3;
pub const LOCKED: i32 = 6;

/// A valid config for the fixture repo, with `extra` top-level keys and `metric` extra keys.
pub fn config_with(extra: &str, metric_extra: &str) -> String {
    format!(
        "editable = [\"train.py\"]\nread_only = [\"prepare.py\"]\ncommand = \"python3 train.py\"\nbudget = \"1s\"\ntimeout = \"20s\"\ntag = \"t\"\n{extra}\n[metric]\nname = \"val_bpb\"\ndirection = \"minimize\"\n{metric_extra}"
    )
}

/// A committed repo with train.py and prepare.py, and `config` as an untracked
/// autoresearch.toml (None: no config file at all).
pub fn fixture(config: Option<&str>) -> tempfile::TempDir {
    let dir = repo(&[("train.py", TRAIN), ("prepare.py", PREPARE)]);
    if let Some(c) = config {
        std::fs::write(dir.path().join("autoresearch.toml"), c).unwrap();
    }
    dir
}

/// What the user saw when the binary refused to start.
#[derive(Debug)]
pub struct Refusal {
    pub code: i32,
    /// The single stderr line, without the `error: ` prefix.
    pub message: String,
}

/// Runs `autoresearch run --yes --repo <dir> <args>` and returns its refusal. Fails the
/// test unless it exited non-zero with exactly one line on stderr.
pub fn refuse(dir: &Path, args: &[&str]) -> Refusal {
    let out = common::run(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out.status.code().expect("exited, not killed by a signal");
    assert_ne!(code, 0, "it started: {}", common::text(&out));
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "not one line: {}", common::text(&out));
    let message = lines[0]
        .strip_prefix("error: ")
        .unwrap_or_else(|| panic!("no `error: ` prefix: {stderr}"))
        .to_string();
    // `--nocapture` prints what the user saw, for docs/bad-inputs.md.
    eprintln!("CATALOGUE\t{code}\t{message}");
    Refusal { code, message }
}

/// Asserts that `message` contains every part, with the whole message in the failure.
#[track_caller]
pub fn says(r: &Refusal, parts: &[&str]) {
    for p in parts {
        assert!(r.message.contains(p), "missing {p:?} in: {}", r.message);
    }
}

/// The repository state a refusal must not change: branch, HEAD, tracked files, branches.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    head: String,
    branch: String,
    status: String,
    branches: String,
    train: Vec<u8>,
}

pub fn snapshot(dir: &Path) -> Snapshot {
    let quiet = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    Snapshot {
        head: quiet(&["rev-parse", "HEAD"]),
        branch: quiet(&["symbolic-ref", "-q", "HEAD"]),
        status: quiet(&["status", "--porcelain", "--untracked-files=all"]),
        branches: quiet(&["branch", "--list"]),
        train: std::fs::read(dir.join("train.py")).unwrap_or_default(),
    }
}

/// Same HEAD, branch, branches and tree (so no new session branch), and no results file.
#[track_caller]
pub fn untouched(dir: &Path, before: &Snapshot) {
    let after = snapshot(dir);
    assert_eq!(&after, before, "the refusal changed the repository");
    assert!(!dir.join("results.tsv").exists(), "results.tsv was created");
}

/// Runs `autoresearch run --yes --repo <dir> <args>`: (exit code, stderr), for refusals
/// by the argument parser, whose message spans several lines.
pub fn cli(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = common::run(dir, args);
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
