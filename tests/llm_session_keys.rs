//! The API keys never reach disk: a whole session with fake keys in the environment (an
//! OpenAI-compatible server that needs the key, a training edit that prints its
//! environment, a crash and its repair, a rejection), then every file under the repo and
//! every git object is searched for the keys, and so are stdout and stderr.

mod common;
mod llm_session_support;
mod llm_support;

use common::{dirty, text};
use llm_session_support::*;
use llm_support::{Server, ok, openai_answer};
use std::path::Path;

fn random_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", nanos, std::process::id())
}

/// Every regular file under `dir`, .git included.
fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            files_under(&e.path(), out);
        } else if t.is_file() {
            out.push(e.path());
        }
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn no_key_reaches_any_file_git_object_or_output() {
    let openai_key = format!("sk-test-{}", random_suffix());
    let anthropic_key = format!("sk-ant-test-{}", random_suffix());
    let server = Server::start(vec![
        // A debugging edit that dumps the environment, and a typo that crashes it.
        ok(openai_answer(&answer(
            "LR 0.2 with an environment dump",
            "import sys",
            "import sys, os\nprint(sorted(os.environ.items()))\nLR = 0.2 * SCAEL",
        ))),
        // The repair (it is sent the crash's log tail).
        ok(openai_answer(&answer(
            "fix the SCAEL typo",
            "LR = 0.2 * SCAEL",
            "LR = 0.2 * 1",
        ))),
        // A forbidden edit: rejected.
        ok(openai_answer(&block_answer(
            "shorter budget",
            "prepare.py",
            "TIME_BUDGET = 300",
            "TIME_BUDGET = 1",
        ))),
        ok(openai_answer(&answer(
            "LR 0.2 -> 0.3",
            "LR = 0.2 * 1",
            "LR = 0.3",
        ))),
    ]);
    let dir = repo_with(&openai_agent(&server.url, ""));
    let out = run_n(
        dir.path(),
        2,
        &[
            ("OPENAI_API_KEY", &openai_key),
            ("ANTHROPIC_API_KEY", &anthropic_key),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let rows = rows(dir.path());
    assert_eq!(
        shape(&rows),
        [
            (0, 1, "keep"),
            (1, 1, "crash"),
            (1, 2, "keep"),
            (2, 1, "rejected"),
            (3, 1, "keep")
        ],
        "{rows:#?}"
    );
    // The key was in play: it went to the server as a bearer token.
    let reqs = server.received();
    assert_eq!(reqs.len(), 4);
    assert!(
        reqs.iter()
            .all(|r| r.header("authorization") == Some(format!("Bearer {openai_key}").as_str()))
    );
    // The edit really printed the environment into the run's log.
    let log = file(dir.path(), rows[2].log_path.as_deref().unwrap());
    assert!(log.contains("('PATH', "), "{log}");
    // Training never sees the keys: the runner removes credentials from its environment.
    assert!(!log.contains("OPENAI_API_KEY"), "{log}");
    assert!(!log.contains("ANTHROPIC_API_KEY"), "{log}");
    for key in [&openai_key, &anthropic_key] {
        assert!(!contains(&out.stdout, key), "key on stdout");
        assert!(!contains(&out.stderr, key), "key on stderr");
        // No request body (the prompts, with the crash's log tail) carries it either.
        assert!(reqs.iter().all(|r| !r.body.contains(key.as_str())));
    }
    let mut files = Vec::new();
    files_under(dir.path(), &mut files);
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("prompt.md") || f.ends_with("run.log")),
        "prompts and logs were written"
    );
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for key in [&openai_key, &anthropic_key] {
            assert!(!contains(&bytes, key), "key found in {}", f.display());
        }
    }
    // Git objects are compressed on disk: read them all back through git.
    let objects = std::process::Command::new("git")
        .args(["cat-file", "--batch-all-objects", "--batch"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(objects.status.success());
    assert!(objects.stdout.len() > 1000, "git objects were read");
    for key in [&openai_key, &anthropic_key] {
        assert!(!contains(&objects.stdout, key), "key in a git object");
    }
    assert_eq!(dirty(dir.path()), "");
}
