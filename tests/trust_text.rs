//! Untrusted text stays text, black-box: an LLM answer whose description carries ANSI
//! escapes, an OSC title sequence, bidi overrides and a line separator, and a training
//! script whose crash line does the same. None of it reaches the terminal, results.tsv,
//! the journal, a commit message or the progress report raw. Rows of docs/bad-inputs.md.

mod common;
mod llm_session_support;
mod llm_support;

use common::{git, text};
use llm_session_support::*;
use llm_support::{Server, ok, openai_answer};
use std::path::Path;

/// Characters that must never come out: ESC, BEL, CSI, bidi controls, separators.
fn hostile_chars(s: &str) -> Vec<char> {
    s.chars()
        .filter(|c| {
            matches!(
                c,
                '\u{1b}'
                    | '\u{7}'
                    | '\u{9b}'
                    | '\u{202a}'..='\u{202e}'
                    | '\u{2066}'..='\u{2069}'
                    | '\u{2028}'
                    | '\u{2029}'
            )
        })
        .collect()
}

#[track_caller]
fn clean_everywhere(dir: &Path, out: &std::process::Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = git(dir, &["log", "--all", "--format=%B"]);
    let tsv = std::fs::read_to_string(dir.join("results.tsv")).unwrap();
    let conn = rusqlite::Connection::open(dir.join(".autoresearch/journal.sqlite")).unwrap();
    let mut stmt = conn
        .prepare("SELECT description || ' ' || reason FROM experiments")
        .unwrap();
    let journal: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (what, s) in [
        ("stdout", stdout.to_string()),
        ("stderr", stderr.to_string()),
        ("git log", log),
        ("results.tsv", tsv),
        ("journal", journal.join("\n")),
    ] {
        assert!(
            hostile_chars(&s).is_empty(),
            "{what} has {:?}: {s}",
            hostile_chars(&s)
        );
    }
}

#[test]
fn an_llm_description_with_escapes_and_bidi_is_shown_and_stored_as_plain_text() {
    let evil =
        "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[31mraise \u{202e}LR\u{202c} 0.1 -> 0.2\u{2028}rm -rf ~";
    let server = Server::start(vec![ok(openai_answer(&answer(
        evil, "LR = 0.1", "LR = 0.2",
    )))]);
    let dir = repo_with(&openai_agent(&server.url, ""));
    // Not --json: the terminal's own rendering is what must stay clean.
    let out = common::bin()
        .args(["run", "--yes", "--grace", "1", "-n", "1", "--repo"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let rows = rows(dir.path());
    assert_eq!(rows[1].description, "raise LR 0.1 -> 0.2", "{rows:#?}");
    clean_everywhere(dir.path(), &out);
}

#[test]
fn a_crash_line_with_escapes_is_recorded_as_plain_text() {
    let body = "if LR != 0.1:\n    sys.stdout.write('\\x1b]0;owned\\x07\\x1b[2J\\u202eboom\\u2028second\\n')\n    sys.exit(3)\nprint(f'val_bpb: {1.0 + LR:.6f}')";
    let dir = common::repo(&[
        ("train.py", &common::train_py(body)),
        ("autoresearch.toml", &common::config("")),
    ]);
    let out = common::run(dir.path(), &["-n", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let j = common::journal(dir.path());
    assert_eq!(j[1].1, "crash", "{j:?}");
    assert!(
        j[1].3.contains("exit 3") && j[1].3.contains("boom"),
        "{j:?}"
    );
    clean_everywhere(dir.path(), &out);
}
