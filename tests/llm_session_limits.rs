//! End-to-end against a scripted llama.cpp-like server on 127.0.0.1 (an 8192-token
//! context, answers that small models give): the start-up check, bounded calls, prompts
//! that fit, every call in the journal, and `status` counting rejected proposals apart.

mod common;
mod llm_session_support;
mod llm_support;

use common::{dirty, git, text};
use llm_session_support::*;
use llm_support::{Reply, Server, llama_cpp_props, models, ok, openai_answer, openai_cut_off};
use std::path::Path;

/// One row of `llm_calls`.
#[derive(Debug)]
struct Call {
    iteration: i64,
    purpose: String,
    outcome: String,
    finish_reason: Option<String>,
    prompt: String,
    answer: Option<String>,
    duration_s: f64,
    input_tokens: i64,
    reason: String,
}

fn calls(dir: &Path) -> Vec<Call> {
    let conn = rusqlite::Connection::open(dir.join(".autoresearch/journal.sqlite")).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, autoresearch::store::SCHEMA_VERSION);
    let mut stmt = conn
        .prepare("SELECT iteration, purpose, outcome, finish_reason, prompt, answer, duration_s, input_tokens, reason FROM llm_calls ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| {
        Ok(Call {
            iteration: r.get(0)?,
            purpose: r.get(1)?,
            outcome: r.get(2)?,
            finish_reason: r.get(3)?,
            prompt: r.get(4)?,
            answer: r.get(5)?,
            duration_s: r.get(6)?,
            input_tokens: r.get(7)?,
            reason: r.get(8)?,
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// A llama-server with SmolLM2 loaded and 8192 tokens of context.
fn llama_server(script: Vec<Reply>) -> Server {
    Server::with_routes(
        script,
        vec![
            (
                "/v1/models",
                models(&["SmolLM2-135M-Instruct-Q8_0.gguf"], None),
            ),
            ("/props", llama_cpp_props(8192)),
        ],
    )
}

/// A repo whose read-only prepare.py is about 30 KB, committed.
fn repo_with_big_prepare(agent: &str) -> tempfile::TempDir {
    let dir = repo_with(agent);
    let mut text = String::from("TIME_BUDGET = 300\n");
    for k in 0..600 {
        text.push_str(&format!(
            "DATA_SHARD_{k:04} = 'https://example.org/shard/{k}.bin'\n"
        ));
    }
    std::fs::write(dir.path().join("prepare.py"), text).unwrap();
    git(dir.path(), &["commit", "-qam", "big prepare.py"]);
    dir
}

fn status(dir: &Path) -> String {
    let out = common::bin()
        .args(["status", "--repo"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_small_model_session_runs_its_iterations_and_every_call_is_on_record() {
    let server = llama_server(vec![
        ok(openai_cut_off(
            "DESCRIPTION: raise LR\ntrain.py\n```python\n<<<<<<< SEARCH\nLR = 0.1\n=======\nLR = 0.",
        )),
        ok(openai_answer("I think you should raise the learning rate.")),
        ok(openai_answer(&answer(
            "raise LR 0.1 -> 0.2",
            "LR = 0.1",
            "LR = 0.2",
        ))),
        ok(openai_answer(&answer(
            "LR 0.2 -> 0.3",
            "LR = 0.2",
            "LR = 0.3",
        ))),
    ]);
    let dir = repo_with_big_prepare(&openai_agent(&server.url, ""));
    let out = run_n(dir.path(), 2, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = rows(dir.path());
    assert_eq!(
        shape(&rows),
        [
            (0, 1, "keep"),
            (1, 1, "rejected"),
            (2, 1, "rejected"),
            (3, 1, "keep"),
            (4, 1, "keep")
        ],
        "{rows:#?}"
    );
    assert!(
        rows[1].reason.contains("cut off at max_tokens = 2048"),
        "{:?}",
        rows[1]
    );
    // Every call bounded, every prompt within the 8192-token context.
    let reqs = server.received();
    assert_eq!(reqs.len(), 4);
    for r in &reqs {
        let body = r.json();
        assert_eq!(body["max_tokens"], 2048);
        let bytes: usize = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap().len())
            .sum();
        assert!(bytes / 3 + 2048 <= 8192, "{bytes} bytes");
    }
    // Every call on record, rejected ones with their prompt and raw answer.
    let calls = calls(dir.path());
    let got: Vec<(i64, &str, &str, Option<&str>)> = calls
        .iter()
        .map(|c| {
            (
                c.iteration,
                c.purpose.as_str(),
                c.outcome.as_str(),
                c.finish_reason.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, "propose", "rejected", Some("length")),
            (2, "propose", "rejected", Some("stop")),
            (3, "propose", "used", Some("stop")),
            (4, "propose", "used", Some("stop")),
        ]
    );
    assert!(calls[1].reason.contains("no edit blocks"), "{:?}", calls[1]);
    assert_eq!(
        calls[1].answer.as_deref(),
        Some("I think you should raise the learning rate.")
    );
    assert!(
        calls
            .iter()
            .all(|c| c.prompt.contains("LR = 0.") && c.duration_s >= 0.0 && c.input_tokens == 900)
    );
    // Rejections are not iterations.
    let s = status(dir.path());
    assert!(s.contains("**Experiments:** 2 "), "{s}");
    assert!(s.contains("; 2 rejected proposals)"), "{s}");
    assert!(
        s.contains("4 calls: 2 used, 2 rejected, 0 failed (1 cut off at max_tokens)"),
        "{s}"
    );
    assert_eq!(dirty(dir.path()), "");
}

#[test]
fn nothing_listening_stops_before_the_baseline_with_one_line_naming_the_fix() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = repo_with(&openai_agent(&format!("http://127.0.0.1:{port}"), ""));
    let out = run_n(dir.path(), 6, &[]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("cannot reach the LLM server at http://127.0.0.1:"),
        "{stderr}"
    );
    assert!(lines[0].contains("fix [agent] base_url"), "{stderr}");
    assert!(!lines[0].contains("unusable"), "{stderr}");
    // No baseline ran: no journal, no research branch, nothing written.
    assert!(!dir.path().join(".autoresearch/journal.sqlite").exists());
    assert_eq!(git(dir.path(), &["branch", "--list", "autoresearch/*"]), "");
    assert!(!dir.path().join("results.tsv").exists());
}

#[test]
fn a_server_that_goes_away_is_not_an_unusable_proposal() {
    // One answer, then the server is gone (its listener closed): connection refused.
    let server = llama_server(vec![ok(openai_answer(&answer(
        "raise LR 0.1 -> 0.2",
        "LR = 0.1",
        "LR = 0.2",
    )))]);
    let dir = repo_with(&openai_agent(&server.url, ""));
    let out = run_n(dir.path(), 5, &[]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("did not answer 3 proposals in a row")
            && stderr.contains("connection refused")
            && stderr.contains("[agent] base_url"),
        "{stderr}"
    );
    assert!(!stderr.contains("unusable"), "{stderr}");
    let rows = rows(dir.path());
    assert_eq!(
        shape(&rows),
        [(0, 1, "keep"), (1, 1, "keep")],
        "no rejected rows for calls that got no answer: {rows:#?}"
    );
    let calls = calls(dir.path());
    let outcomes: Vec<(i64, &str)> = calls
        .iter()
        .map(|c| (c.iteration, c.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [(1, "used"), (2, "failed"), (2, "failed"), (2, "failed")]
    );
    assert!(calls[1].answer.is_none() && calls[1].reason.contains("connection refused"));
    assert_eq!(best_commit(dir.path(), false), rows[1].commit);
    assert_eq!(dirty(dir.path()), "");
}

#[test]
fn max_iterations_counts_experiments_not_rejected_proposals() {
    let prose = || ok(openai_answer("I would raise the learning rate."));
    let server = llama_server(vec![
        prose(),
        ok(openai_answer(&answer(
            "raise LR 0.1 -> 0.2",
            "LR = 0.1",
            "LR = 0.2",
        ))),
        prose(),
        ok(openai_answer(&answer(
            "LR 0.2 -> 0.3",
            "LR = 0.2",
            "LR = 0.3",
        ))),
    ]);
    let agent = format!("max_iterations = 2\n{}", openai_agent(&server.url, ""));
    let dir = repo_with(&agent);
    let out = common::bin()
        .args(["run", "--yes", "--json", "--grace", "1", "--repo"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let rows = rows(dir.path());
    assert_eq!(
        shape(&rows),
        [
            (0, 1, "keep"),
            (1, 1, "rejected"),
            (2, 1, "keep"),
            (3, 1, "rejected"),
            (4, 1, "keep")
        ],
        "{rows:#?}"
    );
    let ended = events(&out)
        .into_iter()
        .find(|e| e["event"] == "session_ended")
        .unwrap();
    assert!(
        ended["reason"].as_str().unwrap().contains("max_iterations"),
        "{ended}"
    );
    let s = status(dir.path());
    assert!(s.contains("**Experiments:** 2 / 2 "), "{s}");
    assert!(s.contains("; 2 rejected proposals)"), "{s}");
}
