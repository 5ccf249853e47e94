//! Secrets: a whole session runs with fake API keys in its environment and a training
//! script that prints its environment into the log. Afterwards no file the tool wrote (the
//! journal, run logs, results.tsv, progress.md, prompts, commits) and none of its output
//! holds a key, because training processes never get them.

mod chaos_support;
mod common;

use chaos_support::*;
use std::path::Path;

const PRINTENV: &str = include_str!("fixtures/chaos/printenv.py");

/// A value no file could hold by chance.
fn fake_key(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}{:x}{:x}", nanos, std::process::id())
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files_under(&path, out);
        } else if kind.is_file() {
            out.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn no_file_the_tool_wrote_holds_an_api_key() {
    let dir = repo_with(PRINTENV, &config(""));
    let d = dir.path();
    let anthropic = fake_key("sk-ant-fake-");
    let openai = fake_key("sk-fake-openai-");
    let other = fake_key("fake-wandb-");
    let canary = fake_key("visible-");
    let run = launch(
        d,
        3,
        Kill::Never,
        &[
            ("ANTHROPIC_API_KEY", anthropic.as_str()),
            ("OPENAI_API_KEY", openai.as_str()),
            ("WANDB_API_KEY", other.as_str()),
            ("CHAOS_CANARY", canary.as_str()),
        ],
    );
    assert!(run.status.success(), "{}", run.describe());
    check_consistent(d).unwrap();

    let mut files = Vec::new();
    files_under(d, &mut files);
    let logs: Vec<_> = files
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "run.log"))
        .collect();
    assert_eq!(logs.len(), 4, "baseline and 3 experiments: {files:?}");
    let log = std::fs::read_to_string(logs[0]).unwrap();
    // The search would find a leak: the script's environment is in the log, canary and all.
    assert!(log.contains(&format!("env CHAOS_CANARY={canary}")), "{log}");
    assert!(log.contains("env AUTORESEARCH_SESSION_ID="), "{log}");
    for name in ["journal.sqlite", "progress.md"] {
        assert!(
            files.iter().any(|p| p.ends_with(name)),
            "{name} was written: {files:?}"
        );
    }

    let history = common::git(d, &["log", "-p", "--all"]);
    let mut stdout = String::new();
    for e in &run.events {
        stdout.push_str(&e.to_string());
    }
    for key in [&anthropic, &openai, &other] {
        for path in &files {
            let bytes = std::fs::read(path).unwrap();
            assert!(
                !contains(&bytes, key),
                "{} holds an API key",
                path.display()
            );
        }
        assert!(!history.contains(key.as_str()), "a commit holds an API key");
        assert!(!stdout.contains(key.as_str()), "the events hold an API key");
        assert!(
            !run.stderr.contains(key.as_str()),
            "stderr holds an API key"
        );
    }
}
