//! Bounded calls, the start-up check and prompts that fit, through `LlmProposer` against
//! real HTTP servers on 127.0.0.1 speaking Chat Completions (llama.cpp's and vLLM's
//! extras included) and the Messages API. Every call is on the proposer's record.

mod llm_support;

use autoresearch::agent::llm::LlmProposer;
use autoresearch::agent::{AgentError, CallOutcome, Proposer};
use autoresearch::config::AgentBackend;
use llm_support::*;

fn openai_proposer(
    server: &Server,
    extra: impl FnOnce(&mut autoresearch::config::AgentConfig),
) -> (tempfile::TempDir, World, LlmProposer) {
    let repo = repo();
    let mut a = agent(AgentBackend::OpenAi, &format!("{}/v1", server.url));
    a.model = Some("smollm2-135m".into());
    extra(&mut a);
    let cfg = config(a);
    let p = LlmProposer::with_key(&cfg.agent, None).unwrap();
    let w = World::new(repo.path(), cfg);
    (repo, w, p)
}

fn fatal(r: Result<impl std::fmt::Debug, AgentError>) -> String {
    match r {
        Err(AgentError::Fatal(m)) => m,
        other => panic!("expected Fatal, got {other:?}"),
    }
}

/// A read-only prepare.py of about 30 KB, as in the issue.
fn big_prepare(repo: &std::path::Path) -> String {
    let mut text = String::new();
    for k in 0..600 {
        text.push_str(&format!(
            "DATA_SHARD_{k:04} = 'https://example.org/shard/{k}.bin'\n"
        ));
    }
    std::fs::write(repo.join("prepare.py"), &text).unwrap();
    text
}

/// Bytes of what a Chat Completions request asks the model to read.
fn prompt_bytes(body: &serde_json::Value) -> usize {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap().len())
        .sum()
}

#[test]
fn configured_max_tokens_is_sent_and_a_cut_off_answer_says_so() {
    let half = "DESCRIPTION: raise LR\nCATEGORY: hyperparameters\n\ntrain.py\n```python\n<<<<<<< SEARCH\nLR = 0.04\n=======\nLR = 0.0";
    let server = Server::start(vec![ok(openai_cut_off(half)), ok(openai_cut_off(""))]);
    let (_repo, w, mut p) = openai_proposer(&server, |a| a.max_tokens = Some(300));
    let m = match p.propose(&w.ctx()) {
        Err(AgentError::Invalid(m)) => m,
        other => panic!("{other:?}"),
    };
    assert!(
        m.starts_with("the answer was cut off at max_tokens = 300"),
        "{m}"
    );
    assert!(m.contains("raise [agent] max_tokens"), "{m}");
    let m = match p.propose(&w.ctx()) {
        Err(AgentError::Invalid(m)) => m,
        other => panic!("{other:?}"),
    };
    assert!(
        m.contains("cut off at max_tokens = 300 before any text"),
        "{m}"
    );
    let reqs = server.finish();
    assert!(reqs.iter().all(|r| r.json()["max_tokens"] == 300));
    // Both calls are on the record, with the raw answer and the finish reason.
    let calls = p.take_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].finish_reason.as_deref(), Some("length"));
    assert_eq!(calls[0].answer.as_deref(), Some(half));
    assert_eq!(calls[0].outcome, CallOutcome::Rejected);
    assert!(calls[0].reason.contains("cut off"), "{:?}", calls[0]);
    assert_eq!(calls[0].usage.output_tokens, 80);
    assert!(calls[0].prompt.starts_with("--- system ---\n"));
    assert!(calls[0].prompt.contains("LR = 0.04"));
    assert!(calls[0].duration_s >= 0.0);
    assert!(p.take_calls().is_empty(), "taken once");
}

#[test]
fn nothing_listening_fails_the_start_up_check_naming_the_fix() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let repo = repo();
    let mut a = agent(AgentBackend::OpenAi, &format!("http://127.0.0.1:{port}/v1"));
    a.model = Some("m".into());
    let mut p = LlmProposer::with_key(&a, None).unwrap();
    let m = fatal(p.check());
    assert!(
        m.starts_with("cannot reach the LLM server at http://127.0.0.1:"),
        "{m}"
    );
    assert!(m.contains("connection refused"), "{m}");
    assert!(m.contains("fix [agent] base_url"), "{m}");
    assert!(!m.contains('\n'));
    drop(repo);
}

#[test]
fn a_refused_key_at_start_up_names_the_variable() {
    let server = Server::with_routes(
        vec![],
        vec![(
            "/v1/models",
            Reply::Json(
                401,
                r#"{"error":{"message":"Incorrect API key provided: sk-test-SECRET-0123456789","type":"invalid_request_error","code":"invalid_api_key"}}"#.into(),
                Vec::new(),
            ),
        )],
    );
    // The script is empty: the server answers GETs until dropped.
    let repo = repo();
    let mut a = agent(AgentBackend::OpenAi, &format!("{}/v1", server.url));
    a.model = Some("gpt-4o".into());
    let mut p = LlmProposer::with_key(&a, Some(KEY.into())).unwrap();
    let m = fatal(p.check());
    assert!(
        m.contains("401") && m.contains("set OPENAI_API_KEY to a valid key"),
        "{m}"
    );
    assert!(!m.contains(KEY), "the key is never shown: {m}");
    drop(repo);
}

#[test]
fn a_model_the_server_does_not_serve_is_named_with_those_it_does() {
    let server = Server::with_routes(
        vec![],
        vec![(
            "/v1/models",
            models(&["qwen2.5-coder:7b", "llama3.2:3b"], None),
        )],
    );
    let (_repo, _w, mut p) = openai_proposer(&server, |_| {});
    let m = fatal(p.check());
    assert!(
        m.contains("\"smollm2-135m\" is not served")
            && m.contains("qwen2.5-coder:7b, llama3.2:3b")
            && m.contains("set [agent] model"),
        "{m}"
    );
}

#[test]
fn the_context_comes_from_llama_cpp_props_vllm_models_or_the_config() {
    let llama = Server::with_routes(
        vec![],
        vec![
            (
                "/v1/models",
                models(&["SmolLM2-135M-Instruct-Q8_0.gguf"], None),
            ),
            ("/props", llama_cpp_props(8192)),
        ],
    );
    let (_r, _w, mut p) = openai_proposer(&llama, |_| {});
    let notes = p.check().unwrap();
    assert_eq!(p.context_tokens(), Some(8192));
    assert!(
        notes.iter().any(|n| n.contains("serves one model")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("context 8192 tokens (the server)")),
        "{notes:?}"
    );
    assert_eq!(
        llama
            .probes()
            .iter()
            .map(|r| r.path.as_str())
            .collect::<Vec<_>>(),
        ["/v1/models", "/props"]
    );

    let vllm = Server::with_routes(
        vec![],
        vec![("/v1/models", models(&["smollm2-135m"], Some(32768)))],
    );
    let (_r, _w, mut p) = openai_proposer(&vllm, |_| {});
    p.check().unwrap();
    assert_eq!(p.context_tokens(), Some(32768));
    assert_eq!(vllm.probes().len(), 1, "no /props needed");

    let neither = Server::with_routes(vec![], vec![("/props", llama_cpp_props(8192))]);
    let (_r, _w, mut p) = openai_proposer(&neither, |a| a.context_tokens = Some(4096));
    let notes = p.check().unwrap();
    assert_eq!(p.context_tokens(), Some(4096), "the config wins");
    assert!(
        notes.iter().any(|n| n.contains("[agent] context_tokens")),
        "{notes:?}"
    );
}

#[test]
fn a_30_kb_read_only_file_is_shortened_to_fit_an_8192_token_context() {
    let server = Server::with_routes(
        vec![ok(openai_answer(GOOD_ANSWER))],
        vec![("/props", llama_cpp_props(8192))],
    );
    let (repo, w, mut p) = openai_proposer(&server, |_| {});
    let prepare = big_prepare(repo.path());
    p.check().unwrap();
    p.propose(&w.ctx()).unwrap();
    let reqs = server.finish();
    let body = reqs[0].json();
    // A quarter of the context for the answer; the prompt within the rest at 3 bytes a token.
    assert_eq!(body["max_tokens"], 2048);
    let bytes = prompt_bytes(&body);
    assert!(bytes / 3 <= 8192 - 2048, "{bytes} bytes");
    let system = body["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains("DATA_SHARD_0000"),
        "the read-only file's head is shown"
    );
    assert!(
        !system.contains(prepare.lines().last().unwrap()),
        "its tail is cut"
    );
    assert!(system.contains("(truncated: first"), "and the cut is said");
    // The editable file is shown whole.
    let task = body["messages"][1]["content"].as_str().unwrap();
    assert!(task.contains(TRAIN.trim_end()));
}

#[test]
fn a_context_overflow_shrinks_the_prompt_once_and_the_context_is_remembered() {
    let server = Server::start(vec![
        llama_cpp_overflow(25_081, 8192),
        ok(openai_answer(GOOD_ANSWER)),
        ok(openai_answer(GOOD_ANSWER)),
    ]);
    let (repo, mut w, mut p) = openai_proposer(&server, |_| {});
    big_prepare(repo.path());
    let prop = p.propose(&w.ctx()).unwrap();
    assert_eq!(prop.changes[0].contents, TRAIN.replace("0.04", "0.08"));
    assert_eq!(p.context_tokens(), Some(8192));
    // The next proposal fits from the start: never the same prompt again.
    w.iteration = 2;
    p.propose(&w.ctx()).unwrap();
    let reqs = server.finish();
    assert_eq!(reqs.len(), 3);
    let sizes: Vec<usize> = reqs.iter().map(|r| prompt_bytes(&r.json())).collect();
    assert!(sizes[1] < sizes[0] && sizes[2] < sizes[0], "{sizes:?}");
    assert_ne!(reqs[0].body, reqs[1].body);
    // The first prompt was ~25k tokens for its bytes: the shorter one fits 8192 with room.
    let per_token = sizes[0] as f64 / 25_081.0;
    assert!(
        (sizes[1] as f64 / per_token) as u64 + 2048 <= 8192,
        "{sizes:?}"
    );
    assert_eq!(reqs[1].json()["max_tokens"], 2048);
    let calls = p.take_calls();
    let kinds: Vec<(&str, CallOutcome)> = calls
        .iter()
        .map(|c| (c.purpose.as_str(), c.outcome))
        .collect();
    assert_eq!(
        kinds,
        [
            ("propose", CallOutcome::Failed),
            ("shorter", CallOutcome::Used),
            ("propose", CallOutcome::Used)
        ]
    );
    assert!(
        calls[0].reason.contains("exceeds the model's context"),
        "{:?}",
        calls[0]
    );
}

#[test]
fn a_second_overflow_is_fatal_and_names_the_fix() {
    let overflow = || {
        Reply::Json(
            400,
            r#"{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 9100 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#.into(),
            Vec::new(),
        )
    };
    let server = Server::start(vec![overflow(), overflow()]);
    let (_repo, w, mut p) = openai_proposer(&server, |_| {});
    let m = fatal(p.propose(&w.ctx()));
    assert!(m.contains("does not fit the model's context"), "{m}");
    assert!(
        m.contains("--ctx-size") && m.contains("[agent] context_tokens"),
        "{m}"
    );
    assert_eq!(server.finish().len(), 2, "one retry, shorter, then stop");
    assert_eq!(p.context_tokens(), Some(8192));
}

#[test]
fn an_editable_file_too_large_for_the_context_is_fatal_before_any_call() {
    let server = Server::start(vec![ok(openai_answer(GOOD_ANSWER))]);
    let (_repo, mut w, mut p) = openai_proposer(&server, |a| a.context_tokens = Some(1024));
    let huge = "X = 1\n".repeat(2000);
    w.files.insert("train.py".into(), huge);
    let m = fatal(p.propose(&w.ctx()));
    assert!(
        m.contains("cannot fit the model's context of 1024 tokens"),
        "{m}"
    );
    assert!(m.contains("editable files are 12000 bytes"), "{m}");
    assert!(server.received().is_empty(), "nothing was sent");
}

#[test]
fn anthropic_checks_the_key_at_start_up_and_stays_bounded() {
    let server = Server::with_routes(
        vec![],
        vec![(
            "/v1/models",
            Reply::Json(
                401,
                r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#.into(),
                Vec::new(),
            ),
        )],
    );
    let a = agent(AgentBackend::Anthropic, &server.url);
    let mut p = LlmProposer::with_key(&a, Some(KEY.into())).unwrap();
    let m = fatal(p.check());
    assert!(m.contains("set ANTHROPIC_API_KEY"), "{m}");
    let probe = &server.probes()[0];
    assert_eq!(probe.header("x-api-key"), Some(KEY));
    assert_eq!(probe.header("anthropic-version"), Some("2023-06-01"));
}

#[test]
fn price_warnings_only_where_tokens_cost_money_and_no_price_is_known() {
    let note = |url: &str, prices: Option<autoresearch::config::ModelPrices>| {
        let mut a = agent(AgentBackend::OpenAi, url);
        a.model = Some("some-finetune".into());
        a.prices = prices;
        LlmProposer::with_key(&a, None).unwrap().cost_note()
    };
    let remote = "https://llm.example.com/v1";
    assert!(
        note(remote, None)
            .unwrap()
            .contains("no prices known for model \"some-finetune\"")
    );
    assert_eq!(
        note(remote, Some(Default::default())),
        None,
        "zero prices configured"
    );
    assert_eq!(note("http://localhost:8080/v1", None), None);
    assert_eq!(note("http://127.0.0.1:8080/v1", None), None);
}

#[test]
fn a_server_without_a_model_listing_passes_the_check_and_a_failing_one_does_not() {
    let plain = Server::with_routes(
        vec![],
        vec![(
            "/v1/models",
            Reply::Json(501, "Unsupported method ('GET')".into(), Vec::new()),
        )],
    );
    let (_r, _w, mut p) = openai_proposer(&plain, |_| {});
    let notes = p.check().unwrap();
    assert!(
        notes.iter().any(|n| n.contains("context size unknown")),
        "{notes:?}"
    );
    let failing = Server::with_routes(
        vec![],
        vec![(
            "/v1/models",
            Reply::Json(
                503,
                r#"{"error":{"message":"Loading model"}}"#.into(),
                Vec::new(),
            ),
        )],
    );
    let (_r, _w, mut p) = openai_proposer(&failing, |_| {});
    let m = fatal(p.check());
    assert!(
        m.contains("failed at start-up") && m.contains("Loading model"),
        "{m}"
    );
}
