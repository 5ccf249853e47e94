//! Streamed answers (Chat Completions SSE with usage, Messages API events) from real HTTP
//! servers on 127.0.0.1, the fallback for a server that refuses `stream`, and a Ctrl-C
//! during a call: the session stops at once, saying what it stopped, with the call on
//! record.

mod common;
mod llm_session_support;
mod llm_support;

use autoresearch::agent::llm::LlmProposer;
use autoresearch::agent::{AgentError, CallOutcome, CallProgress, Proposer};
use autoresearch::config::AgentBackend;
use autoresearch::runner::Cancel;
use llm_support::*;
use std::sync::{Arc, Mutex};

fn openai(server: &Server) -> (tempfile::TempDir, World, LlmProposer) {
    let repo = repo();
    let mut a = agent(AgentBackend::OpenAi, &format!("{}/v1", server.url));
    a.model = Some("m".into());
    let cfg = config(a);
    let p = LlmProposer::with_key(&cfg.agent, None).unwrap();
    let w = World::new(repo.path(), cfg);
    (repo, w, p)
}

#[test]
fn a_streamed_chat_completions_answer_is_assembled_with_its_usage() {
    let server = Server::start(vec![
        openai_stream(GOOD_ANSWER, 7, "stop"),
        openai_stream("train.py\n<<<<<<< SEARCH\nLR = 0.04\n===", 5, "length"),
    ]);
    let (_repo, w, mut p) = openai(&server);
    let seen: Arc<Mutex<Vec<CallProgress>>> = Arc::default();
    let log = seen.clone();
    p.watch(
        Cancel::new(),
        Some(Arc::new(move |c: &CallProgress| {
            log.lock().unwrap().push(*c)
        })),
    );
    let prop = p.propose(&w.ctx()).unwrap();
    assert_eq!(prop.changes[0].contents, TRAIN.replace("0.04", "0.08"));
    assert_eq!(prop.description, "raise LR 0.04 -> 0.08");
    assert_eq!(
        (prop.usage.input_tokens, prop.usage.output_tokens),
        (900, 80)
    );
    let m = match p.propose(&w.ctx()) {
        Err(AgentError::Invalid(m)) => m,
        other => panic!("{other:?}"),
    };
    assert!(m.contains("cut off at max_tokens = 4096"), "{m}");
    let reqs = server.finish();
    let body = reqs[0].json();
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(body["max_tokens"], 4096);
    let calls = p.take_calls();
    assert_eq!(calls[0].answer.as_deref(), Some(GOOD_ANSWER));
    assert_eq!(calls[1].finish_reason.as_deref(), Some("length"));
    assert_eq!(calls[1].outcome, CallOutcome::Rejected);
    // Each watched call ends its progress line.
    let progress = seen.lock().unwrap();
    assert_eq!(
        progress.iter().filter(|c| c.done).count(),
        2,
        "{progress:?}"
    );
}

#[test]
fn a_streamed_messages_answer_is_assembled_with_its_usage() {
    let server = Server::start(vec![anthropic_stream(GOOD_ANSWER)]);
    let repo = repo();
    let cfg = config(agent(AgentBackend::Anthropic, &server.url));
    let mut p = LlmProposer::with_key(&cfg.agent, Some(KEY.into())).unwrap();
    let w = World::new(repo.path(), cfg);
    let prop = p.propose(&w.ctx()).unwrap();
    assert_eq!(prop.changes[0].contents, TRAIN.replace("0.04", "0.08"));
    assert_eq!(prop.usage.input_tokens, 1200);
    assert_eq!(prop.usage.output_tokens, 150);
    assert_eq!(prop.usage.cache_write_tokens, 3000);
    let reqs = server.finish();
    assert_eq!(reqs[0].json()["stream"], true);
    assert!(
        reqs[0].json().get("stream_options").is_none(),
        "OpenAI's only"
    );
    assert_eq!(p.take_calls()[0].finish_reason.as_deref(), Some("end_turn"));
}

#[test]
fn a_server_that_refuses_stream_is_asked_plainly_from_then_on() {
    let refused = Reply::Json(
        400,
        r#"{"error":{"message":"Unrecognized request argument supplied: stream_options","type":"invalid_request_error"}}"#.into(),
        Vec::new(),
    );
    let server = Server::start(vec![
        refused,
        ok(openai_answer(GOOD_ANSWER)),
        ok(openai_answer(GOOD_ANSWER)),
    ]);
    let (_repo, mut w, mut p) = openai(&server);
    p.propose(&w.ctx()).unwrap();
    w.iteration = 2;
    p.propose(&w.ctx()).unwrap();
    let reqs = server.finish();
    let streamed: Vec<bool> = reqs
        .iter()
        .map(|r| r.json().get("stream").is_some())
        .collect();
    assert_eq!(streamed, [true, false, false]);
}

#[test]
fn ctrl_c_during_a_call_stops_at_once_and_says_no_run_is_cleaned_up() {
    use llm_session_support::*;
    // The first proposal's call never gets an answer (the client's timeout is 20 s: a
    // session that waited for it would record a timeout, not an abandoned call).
    let server = Server::with_routes(vec![Reply::Hang], Vec::new());
    let dir = repo_with(&openai_agent(&server.url, ""));
    let child = common::bin()
        .args(["run", "--yes", "--grace", "1", "-n", "3", "--repo"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The baseline ran and the call is in flight.
    server.wait_for(1);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", common::text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("stopping: the LLM call in progress is abandoned"),
        "{stderr}"
    );
    assert!(!stderr.contains("cleaning up the current run"), "{stderr}");
    // The call is on record as abandoned, not as a server failure.
    let conn = rusqlite::Connection::open(dir.path().join(".autoresearch/journal.sqlite")).unwrap();
    let (outcome, reason): (String, String) = conn
        .query_row("SELECT outcome, reason FROM llm_calls", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(outcome, "failed");
    assert!(
        reason.contains("interrupted") && reason.contains("abandoned"),
        "{reason}"
    );
    let rows = rows(dir.path());
    assert_eq!(shape(&rows), [(0, 1, "keep")], "{rows:#?}");
    assert_eq!(common::dirty(dir.path()), "");
}

#[test]
fn a_stream_that_never_ends_is_cut_at_the_timeout_and_said_so() {
    let piece = serde_json::json!({"id": "chatcmpl-1", "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": "and so on "}, "finish_reason": null}]})
    .to_string();
    let server = Server::start(vec![Reply::Drip(piece)]);
    let repo = repo();
    let mut a = agent(AgentBackend::OpenAi, &format!("{}/v1", server.url));
    a.model = Some("m".into());
    a.timeout = Some(std::time::Duration::from_secs(1));
    a.max_attempts = Some(1);
    let cfg = config(a);
    let mut p = LlmProposer::with_key(&cfg.agent, None).unwrap();
    let w = World::new(repo.path(), cfg);
    let err = p.propose(&w.ctx()).unwrap_err().to_string();
    assert!(err.contains("[agent] timeout"), "{err}");
    let calls = p.take_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].outcome, CallOutcome::Failed);
    assert!(calls[0].reason.contains("[agent] timeout"), "{calls:?}");
}
