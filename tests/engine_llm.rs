//! The engine with an LLM proposer: `--workers 1` against a real HTTP server on 127.0.0.1
//! speaking Chat Completions. Proposals are asked for while the worker trains, so some are
//! made on a best that has moved by the time they run: they are re-based onto it.

mod common;
mod llm_session_support;
mod llm_support;

use common::{dirty, git, text};
use llm_session_support::*;
use llm_support::{Concurrent, Reply, Server, ok, openai_answer};

/// A server on which calls overlap: each answer widens the net to a new size (WIDTH does
/// not move val_bpb, so the best stays the baseline and every proposal applies).
fn widening() -> Concurrent {
    Concurrent::start(|n| {
        let width = format!("WIDTH = {}", 4 + n);
        openai_answer(&answer(&format!("width {n}"), "WIDTH = 4", &width))
    })
}

#[test]
fn proposals_prepared_ahead_are_rebased_onto_the_new_best() {
    let reply = |d: &str, s: &str, r: &str| ok(openai_answer(&answer(d, s, r)));
    let server = Server::start(vec![
        reply("raise LR 0.1 -> 0.2", "LR = 0.1", "LR = 0.2"),
        reply("widen 4 -> 8", "WIDTH = 4", "WIDTH = 8"),
        reply("narrow 4 -> 2", "WIDTH = 4", "WIDTH = 2"),
        reply("widen 4 -> 16", "WIDTH = 4", "WIDTH = 16"),
    ]);
    let dir = repo_with(&openai_agent_ahead(&server.url, ""));
    let out = run_engine(dir.path(), 3, 1);
    assert!(out.status.success(), "{}", text(&out));
    let rows = rows(dir.path());
    let shape: Vec<(i64, &str)> = rows
        .iter()
        .map(|r| (r.iteration, r.status.as_str()))
        .collect();
    assert_eq!(
        shape,
        [(0, "keep"), (1, "keep"), (2, "discard"), (3, "discard")],
        "{rows:?}"
    );
    assert_eq!(rows[1].description, "raise LR 0.1 -> 0.2");
    assert!(
        rows.iter()
            .skip(1)
            .all(|r| r.proposer == "openai:test-model")
    );
    // The WIDTH proposals were made on the baseline and ran on top of the LR keep.
    for r in &rows[2..] {
        let at = |c: &str| git(dir.path(), &["show", &format!("{c}:train.py")]);
        let text = at(&r.commit);
        assert!(text.starts_with("LR = 0.2\nWIDTH = "), "{text}");
        assert!(!text.contains("WIDTH = 4\n"), "{text}");
        assert_eq!(
            git(dir.path(), &["rev-parse", &format!("{}^", r.commit)]),
            rows[1].commit
        );
    }
    assert_eq!(
        git(dir.path(), &["rev-parse", "autoresearch/t"]),
        rows[1].commit
    );
    // The checkout is the user's: on main, the baseline's files, clean.
    assert_eq!(
        git(dir.path(), &["rev-parse", "--abbrev-ref", "HEAD"]),
        "main"
    );
    assert!(file(dir.path(), "train.py").starts_with("LR = 0.1"));
    assert_eq!(dirty(dir.path()), "");
    assert!(common::survivors(dir.path()).is_empty());
    // The second call was made while experiment 1 trained, and its prompt says so.
    let second = last_user(&server.received()[1].json());
    assert!(
        second.contains(
            "| 1 | raise LR 0.1 -> 0.2 | hyperparameters | - | running | training now: result not known yet |"
        ),
        "{second}"
    );
    // Each experiment's call is on record under its number, asked ahead as it was.
    let conn = rusqlite::Connection::open(dir.path().join(".autoresearch/journal.sqlite")).unwrap();
    let calls: Vec<(i64, String)> = conn
        .prepare("SELECT iteration, outcome FROM llm_calls ORDER BY iteration, id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let ran: Vec<(i64, &str)> = calls
        .iter()
        .filter(|(i, _)| *i <= 3)
        .map(|(i, o)| (*i, o.as_str()))
        .collect();
    assert_eq!(ran, [(1, "used"), (2, "used"), (3, "used")], "{calls:?}");
    // A spare prepared but never started is on record too (one asked as the session
    // ended may still be on its way: at most one row per request).
    assert!(calls.len() <= server.received().len(), "{calls:?}");
}

#[test]
fn llm_calls_for_the_queue_run_side_by_side_and_each_is_on_record_once() {
    let server = widening();
    let prices = "price_input = 1000.0\nprice_output = 1000.0\nstream = false";
    let dir = repo_with(&openai_agent_ahead(&server.url, prices));
    let out = run_engine(dir.path(), 6, 2);
    assert!(out.status.success(), "{}", text(&out));
    // Two workers: two calls at a time by default, and they were in flight together.
    assert!(server.peak() >= 2, "peak {} in flight", server.peak());
    let rows = rows(dir.path());
    assert_eq!(rows.len(), 7, "{rows:?}");
    assert!(rows[1..].iter().all(|r| r.status == "discard"), "{rows:?}");
    // Every request the server answered is one row of llm_calls, none twice, each under
    // the experiment it made; the experiments' costs are the calls' costs.
    let conn = rusqlite::Connection::open(dir.path().join(".autoresearch/journal.sqlite")).unwrap();
    let calls: Vec<(i64, f64)> = conn
        .prepare("SELECT iteration, cost_usd FROM llm_calls ORDER BY iteration")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(calls.len(), server.received(), "{calls:?}");
    let its: Vec<i64> = calls.iter().map(|c| c.0).collect();
    assert_eq!(its, [1, 2, 3, 4, 5, 6], "{calls:?}");
    let per_call: f64 = calls.iter().map(|c| c.1).sum();
    let recorded: f64 = rows.iter().filter_map(|r| r.cost_usd).sum();
    assert!(
        per_call > 0.0 && (per_call - recorded).abs() < 1e-9,
        "{per_call} vs {recorded}"
    );
    assert_eq!(dirty(dir.path()), "");
    assert!(common::survivors(dir.path()).is_empty());
}

#[test]
fn a_rejected_key_while_a_run_trains_ends_the_session_after_that_run_is_recorded() {
    // The second call (made while experiment 1 trains) is refused: nothing new starts,
    // experiment 1 finishes and is decided, and the session ends with exit 5.
    let refused = Reply::Json(
        401,
        r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#.into(),
        Vec::new(),
    );
    let server = Server::start(vec![
        ok(openai_answer(&answer(
            "raise LR 0.1 -> 0.2",
            "LR = 0.1",
            "LR = 0.2",
        ))),
        refused,
    ]);
    let dir = repo_with(&openai_agent_ahead(&server.url, ""));
    let out = run_engine(dir.path(), 3, 1);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        text(&out)
    );
    let rows = rows(dir.path());
    assert_eq!(shape(&rows), [(0, 1, "keep"), (1, 1, "keep")], "{rows:?}");
    assert_eq!(
        git(dir.path(), &["rev-parse", "autoresearch/t"]),
        rows[1].commit
    );
    assert_eq!(dirty(dir.path()), "");
    assert!(common::survivors(dir.path()).is_empty());
}

#[test]
fn the_hybrids_llm_calls_for_the_queue_run_side_by_side_too() {
    // The default beside an LLM (`tuner = "search"`): each concurrent call is a hybrid of
    // its own, so the LLM's calls still overlap.
    let server = widening();
    let dir = repo_with(&openai_agent_ahead(
        &server.url,
        "tuner = \"search\"\nstream = false",
    ));
    let out = run_engine(dir.path(), 4, 2);
    assert!(out.status.success(), "{}", text(&out));
    assert!(server.peak() >= 2, "peak {} in flight", server.peak());
    let rows = rows(dir.path());
    assert_eq!(rows.len(), 5, "{rows:?}");
}
