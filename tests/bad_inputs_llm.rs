//! Bad LLM output: through `agent::edits::parse`/`apply` (pure, all blocks or none) and
//! through `LlmProposer` against a real HTTP server on 127.0.0.1. Each is an unusable
//! proposal with a one-line reason; the session records the attempt as `rejected` and asks
//! again (20 unusable proposals in a row stop it with exit 5). The work tree is never
//! touched. Rows of docs/bad-inputs.md.

mod llm_support;

use autoresearch::agent::edits::{ApplyError, FailureKind, ParseError, apply, parse};
use autoresearch::agent::llm::LlmProposer;
use autoresearch::agent::{AgentError, Proposer};
use autoresearch::config::AgentBackend;
use llm_support::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn files() -> BTreeMap<PathBuf, String> {
    BTreeMap::from([(PathBuf::from("train.py"), TRAIN.to_string())])
}

fn editable() -> Vec<PathBuf> {
    vec![PathBuf::from("train.py")]
}

/// Parses and applies `answer` to train.py; the error as the user reads it.
#[track_caller]
fn apply_err(answer: &str) -> ApplyError {
    let p = parse(answer).expect("parses");
    let before = files();
    let e = apply(&before, &p.edits, &editable()).expect_err("must not apply");
    assert_eq!(before, files(), "all or none: the input is untouched");
    one_line(&e.to_string());
    e
}

#[track_caller]
fn one_line(m: &str) {
    assert!(!m.contains('\n'), "not one line: {m:?}");
    // `--nocapture` prints what the user saw, for docs/bad-inputs.md.
    eprintln!("CATALOGUE\t{m}");
}

fn block(path: &str, search: &str, replace: &str) -> String {
    format!("{path}\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n")
}

#[test]
fn prose_only_has_no_edits() {
    let p = parse("I think we should raise the learning rate.\nIt may help.\n").unwrap();
    assert!(p.edits.is_empty());
}

#[test]
fn block_for_an_unknown_file() {
    let e = apply_err(&block("model.py", "x = 1\n", "x = 2\n"));
    assert_eq!(
        e,
        ApplyError::Forbidden {
            paths: vec!["model.py".into()]
        }
    );
    assert!(e.to_string().contains("change only the editable files"));
}

#[test]
fn block_for_the_read_only_prepare_py() {
    let answer = format!(
        "{}{}",
        block("train.py", "LR = 0.04\n", "LR = 0.08\n"),
        block("prepare.py", "SEQ_LEN = 256\n", "SEQ_LEN = 64\n")
    );
    let e = apply_err(&answer);
    assert!(
        e.to_string()
            .starts_with("edits to files that are not editable: prepare.py;"),
        "{e}"
    );
}

#[test]
fn paths_that_escape_the_repository() {
    for path in ["../train.py", "/etc/passwd", "./sub/../../train.py"] {
        let e = apply_err(&block(path, "x\n", "y\n"));
        assert!(matches!(e, ApplyError::Forbidden { .. }), "{path}: {e}");
    }
}

#[test]
fn editable_file_that_does_not_exist_needs_whole_file() {
    let p = parse(&block("model.py", "x = 1\n", "x = 2\n")).unwrap();
    let ed = vec![PathBuf::from("train.py"), PathBuf::from("model.py")];
    let e = apply(&files(), &p.edits, &ed).unwrap_err();
    one_line(&e.to_string());
    assert!(
        e.to_string()
            .contains("the file does not exist; use WHOLE FILE")
    );
}

#[test]
fn overlapping_blocks() {
    let answer = format!(
        "{}{}",
        block(
            "train.py",
            "LR = 0.04\nBATCH = 64\n",
            "LR = 0.1\nBATCH = 64\n"
        ),
        block("train.py", "BATCH = 64\n", "BATCH = 32\n")
    );
    let e = apply_err(&answer);
    assert!(
        matches!(
            e,
            ApplyError::Overlap {
                first: 1,
                second: 2,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("merge them into one block"));
}

#[test]
fn whole_file_and_a_block_for_the_same_file() {
    let answer = format!(
        "train.py\n<<<<<<< WHOLE FILE\nLR = 1\n>>>>>>> END\n{}",
        block("train.py", "BATCH = 64\n", "BATCH = 32\n")
    );
    assert!(matches!(apply_err(&answer), ApplyError::Overlap { .. }));
}

#[test]
fn no_op_edit() {
    let e = apply_err(&block("train.py", "LR = 0.04\n", "LR = 0.04\n"));
    assert_eq!(e, ApplyError::NoOp);
    assert!(e.to_string().contains("must differ"));
}

#[test]
fn block_that_does_not_match_shows_the_closest_lines() {
    let e = apply_err(&block("train.py", "LR = 0.05\n", "LR = 0.08\n"));
    let ApplyError::Blocks(f) = &e else {
        panic!("{e}")
    };
    assert_eq!(f[0].kind, FailureKind::NotFound);
    assert!(
        f[0].closest.contains(&(3, "LR = 0.04".to_string())),
        "{f:?}"
    );
    assert!(e.to_string().contains("copy them exactly"), "{e}");
}

#[test]
fn block_that_matches_twice() {
    let p = parse(&block("train.py", "x = 1\n", "x = 2\n")).unwrap();
    let f = BTreeMap::from([(PathBuf::from("train.py"), "x = 1\ny = 0\nx = 1\n".into())]);
    let e = apply(&f, &p.edits, &editable()).unwrap_err();
    one_line(&e.to_string());
    assert!(
        e.to_string()
            .contains("occur 2 times (lines 1, 3); include more context")
    );
}

#[test]
fn empty_search_section() {
    let e = apply_err(&block("train.py", "", "LR = 1\n"));
    assert!(e.to_string().contains("SEARCH section is empty"), "{e}");
}

#[test]
fn unterminated_block() {
    let e = parse("train.py\n<<<<<<< SEARCH\nLR = 0.04\n=======\nLR = 1\n").unwrap_err();
    one_line(&e.to_string());
    assert!(matches!(e, ParseError::Unterminated { index: 1, .. }));
    assert!(e.to_string().contains("needs a `>>>>>>> REPLACE` line"));
}

#[test]
fn block_without_a_path() {
    let e = parse("<<<<<<< SEARCH\nLR = 0.04\n=======\nLR = 1\n>>>>>>> REPLACE\n").unwrap_err();
    one_line(&e.to_string());
    assert_eq!(e, ParseError::MissingPath { index: 1 });
}

/// Deterministic junk bytes (xorshift), read as an LLM answer would be: lossily.
fn junk(n: usize, mut seed: u64) -> String {
    let bytes: Vec<u8> = (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn binary_junk_parses_to_nothing_or_fails_cleanly() {
    for seed in 1..50 {
        let text = junk(4096, seed);
        if let Ok(p) = parse(&text) {
            if !p.edits.is_empty() {
                let _ = apply(&files(), &p.edits, &editable());
            }
        }
    }
    let p = parse(&junk(4096, 7)).unwrap();
    assert!(p.edits.is_empty());
}

#[test]
fn two_megabyte_answer_with_one_block_at_the_end() {
    let mut answer = "Let me think about this carefully.\n".repeat(60_000);
    answer.push_str("DESCRIPTION: raise LR\n");
    answer.push_str(&block("train.py", "LR = 0.04\n", "LR = 0.08\n"));
    assert!(answer.len() > 2_000_000);
    let p = parse(&answer).unwrap();
    let out = apply(&files(), &p.edits, &editable()).unwrap();
    assert_eq!(out[Path::new("train.py")], TRAIN.replace("0.04", "0.08"));
}

// Through the proposer and a real HTTP server.

fn propose(answer: &str) -> Result<autoresearch::agent::Proposal, AgentError> {
    let server = Server::start(vec![ok(anthropic_answer(answer))]);
    let repo = repo();
    let cfg = config(agent(AgentBackend::Anthropic, &server.url));
    let mut p = LlmProposer::with_key(&cfg.agent, Some(KEY.into())).unwrap();
    let w = World::new(repo.path(), cfg);
    let r = p.propose(&w.ctx());
    assert_eq!(server.finish().len(), 1, "one call, no retry for these");
    // The proposer never writes: the work tree is exactly the commit.
    assert_eq!(git(repo.path(), &["status", "--porcelain"]), "");
    r
}

#[track_caller]
fn invalid(r: Result<autoresearch::agent::Proposal, AgentError>) -> String {
    match r {
        Err(e @ AgentError::Invalid(_)) => {
            let m = e.to_string();
            one_line(&m);
            m
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn http_empty_answer() {
    let m = invalid(propose("   \n"));
    assert!(m.contains("the model gave an empty answer"), "{m}");
}

#[test]
fn http_prose_only() {
    let m = invalid(propose("I would lower the learning rate a bit."));
    assert!(m.contains("the answer has no edit blocks"), "{m}");
}

#[test]
fn http_binary_junk() {
    let m = invalid(propose(&junk(64 * 1024, 3)));
    assert!(m.contains("no edit blocks"), "{m}");
}

#[test]
fn http_two_megabyte_answer() {
    let mut answer = "thinking...\n".repeat(180_000);
    assert!(answer.len() > 2_000_000);
    let m = invalid(propose(&answer));
    assert!(m.contains("no edit blocks"), "{m}");
    answer.push_str(&block("train.py", "LR = 0.04\n", "LR = 0.08\n"));
    let prop = propose(&answer).unwrap();
    assert_eq!(prop.changes[0].contents, TRAIN.replace("0.04", "0.08"));
}

#[test]
fn http_edit_to_prepare_py() {
    let m = invalid(propose(&block(
        "prepare.py",
        "SEQ_LEN = 256\n",
        "SEQ_LEN = 64\n",
    )));
    assert!(m.contains("not editable: prepare.py"), "{m}");
}

#[test]
fn http_no_op_edit() {
    let m = invalid(propose(&block("train.py", "LR = 0.04\n", "LR = 0.04\n")));
    assert!(m.contains("change nothing"), "{m}");
}

#[test]
fn http_answer_that_is_not_json() {
    let server = Server::start(vec![ok("<html>502 Bad Gateway</html>".into())]);
    let repo = repo();
    let cfg = config(agent(AgentBackend::Anthropic, &server.url));
    let mut p = LlmProposer::with_key(&cfg.agent, Some(KEY.into())).unwrap();
    let w = World::new(repo.path(), cfg);
    let m = invalid(p.propose(&w.ctx()));
    assert!(m.contains("is not JSON"), "{m}");
}
