//! End-to-end on the bundled example: examples/tinylm (numpy) in a fresh git repo, three
//! experiments of 2 s each proposed by a local OpenAI-compatible server (127.0.0.1) that
//! returns real SEARCH/REPLACE edits of train.py's constants.

mod common;
mod llm_session_support;
mod llm_support;

use common::{dirty, git, results, survivors, text};
use llm_session_support::*;
use llm_support::{Server, ok, openai_answer};
use std::path::{Path, PathBuf};
use std::process::Command;

fn has_numpy(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import numpy"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A Python with numpy: $AUTORESEARCH_DEMO_PYTHON, the `autoresearch demo` environment,
/// one cached under target/, the system's python3, or a new venv under target/ (needs
/// PyPI once).
fn python_with_numpy() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    let target_venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/e2e-venv");
    let mut candidates: Vec<PathBuf> = Vec::new();
    candidates.extend(std::env::var_os("AUTORESEARCH_DEMO_PYTHON").map(PathBuf::from));
    candidates.extend(cache.map(|c| c.join("autoresearch/demo-venv/bin/python")));
    candidates.push(target_venv.join("bin/python"));
    candidates.push(PathBuf::from("python3"));
    if let Some(p) = candidates.iter().find(|p| has_numpy(p)) {
        return Some(p.clone());
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&target_venv)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(target_venv.join("bin/python"))
            .args(["-m", "pip", "install", "-q", "numpy"])
            .status()
            .is_ok_and(|s| s.success());
    let python = target_venv.join("bin/python");
    (made && has_numpy(&python)).then_some(python)
}

/// The whole line of train.py that starts with `name =`, as a SEARCH block needs it.
fn line_of(train: &str, name: &str) -> String {
    train
        .lines()
        .find(|l| l.starts_with(&format!("{name} =")))
        .unwrap_or_else(|| panic!("train.py has no {name}"))
        .to_string()
}

#[test]
fn three_llm_experiments_on_tinylm() {
    let Some(python) = python_with_numpy() else {
        eprintln!(
            "SKIPPED: no Python with numpy (set AUTORESEARCH_DEMO_PYTHON or run `autoresearch demo` once)"
        );
        return;
    };
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tinylm");
    let train = std::fs::read_to_string(example.join("train.py")).unwrap();
    let data = tempfile::tempdir().unwrap();
    // Three edits of different constants: each applies whatever was kept before it.
    let edit = |desc: &str, name: &str, value: &str| {
        let old = line_of(&train, name);
        let new = format!("{name} = {value}");
        ok(openai_answer(&answer(desc, &old, &new)))
    };
    let server = Server::start(vec![
        edit("LEARNING_RATE 2.5e-4 -> 2e-3", "LEARNING_RATE", "2e-3"),
        edit("HIDDEN_DIM 128 -> 64", "HIDDEN_DIM", "64"),
        edit("WEIGHT_DECAY 0.0 -> 0.01", "WEIGHT_DECAY", "0.01"),
    ]);
    let python_cmd = format!("'{}' train.py", python.display());
    let toml = format!(
        "editable = [\"train.py\"]\nread_only = [\"prepare.py\"]\ncommand = \"{}\"\nbudget = \"2s\"\ntimeout = \"90s\"\ntag = \"e2e\"\n{}\n[decision]\nmode = \"greedy\"\n\n[metric]\nname = \"val_bpb\"\ndirection = \"minimize\"\nmemory_key = \"peak_mem_mb\"\n",
        python_cmd.replace('\\', "\\\\").replace('"', "\\\""),
        openai_agent(&server.url, "")
    );
    let mut files: Vec<(String, String)> =
        ["train.py", "prepare.py", "program.md", "requirements.txt"]
            .iter()
            .map(|f| {
                (
                    f.to_string(),
                    std::fs::read_to_string(example.join(f)).unwrap(),
                )
            })
            .collect();
    files.push(("autoresearch.toml".into(), toml));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let dir = common::repo(&refs);
    // The data is prepared once, as karpathy's prepare.py is (into a private cache).
    let prep = Command::new(&python)
        .arg("prepare.py")
        .current_dir(dir.path())
        .env("TINYLM_CACHE", data.path())
        .output()
        .unwrap();
    assert!(prep.status.success(), "prepare.py: {}", text(&prep));

    let out = run_n(
        dir.path(),
        3,
        &[("TINYLM_CACHE", &data.path().display().to_string())],
    );
    assert!(out.status.success(), "{}", text(&out));

    let tsv = results(dir.path());
    assert_eq!(tsv.len(), 4, "baseline + 3 experiments: {tsv:?}");
    assert_eq!(tsv[0][3], "keep");
    assert_eq!(tsv[0][4], "baseline");
    for row in &tsv {
        assert!(
            ["keep", "discard"].contains(&row[3].as_str()),
            "a valid decision for a real edit: {row:?}"
        );
        let v: f64 = row[1].parse().unwrap();
        assert!(v > 0.5 && v < 8.0, "a plausible val_bpb: {row:?}");
    }
    let descriptions: Vec<&str> = tsv[1..].iter().map(|r| r[4].as_str()).collect();
    assert_eq!(
        descriptions,
        [
            "LEARNING_RATE 2.5e-4 -> 2e-3",
            "HIDDEN_DIM 128 -> 64",
            "WEIGHT_DECAY 0.0 -> 0.01"
        ]
    );
    let rows = rows(dir.path());
    assert_eq!(shape(&rows).len(), 4, "no rejection, no crash: {rows:#?}");
    // The branch is at the last kept experiment, whose edits are all in train.py.
    let best = rows.iter().rev().find(|r| r.status == "keep").unwrap();
    assert_eq!(
        git(dir.path(), &["rev-parse", "autoresearch/e2e"]),
        best.commit
    );
    let now = git(dir.path(), &["show", "autoresearch/e2e:train.py"]);
    for (r, (name, value)) in rows[1..].iter().zip([
        ("LEARNING_RATE", "2e-3"),
        ("HIDDEN_DIM", "64"),
        ("WEIGHT_DECAY", "0.01"),
    ]) {
        let applied = now.contains(&format!("\n{name} = {value}\n"));
        assert_eq!(applied, r.status == "keep", "{name}: {r:?}");
    }
    assert_eq!(server.received().len(), 3);
    assert_eq!(dirty(dir.path()), "");
    // The user's checkout stays where it was.
    assert_eq!(
        git(dir.path(), &["rev-parse", "--abbrev-ref", "HEAD"]),
        "main"
    );
    assert!(survivors(dir.path()).is_empty());
}
