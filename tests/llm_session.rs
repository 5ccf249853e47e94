//! End-to-end: `autoresearch run` with `[agent] backend = "openai"` against a real HTTP
//! server on 127.0.0.1 speaking Chat Completions, scripted per request. Asserts what the
//! binary leaves behind: journal rows and reasons, results.tsv, the branch, a clean tree.

mod common;
mod llm_session_support;
mod llm_support;

use common::{dirty, git, results, survivors, text};
use llm_session_support::*;
use llm_support::{Reply, Server, llama_cpp_props, models, ok, openai_answer};

const LR_UP: (&str, &str) = ("LR = 0.1", "LR = 0.2");

fn good() -> Reply {
    ok(openai_answer(&answer(
        "raise LR 0.1 -> 0.2",
        LR_UP.0,
        LR_UP.1,
    )))
}

#[test]
fn an_improvement_is_kept_and_a_regression_discarded() {
    let server = Server::start(vec![
        good(),
        ok(openai_answer(&answer(
            "lower LR 0.2 -> 0.05",
            "LR = 0.2",
            "LR = 0.05",
        ))),
    ]);
    let dir = repo_with(&openai_agent(&server.url, ""));
    let out = run_n(dir.path(), 2, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = rows(dir.path());
    assert_eq!(
        shape(&rows),
        [(0, 1, "keep"), (1, 1, "keep"), (2, 1, "discard")]
    );
    assert_eq!(rows[1].description, "raise LR 0.1 -> 0.2");
    assert_eq!(rows[1].metric, Some(1.04));
    assert!(
        rows[2].reason.contains("1.040000 → 1.122500"),
        "{:?}",
        rows[2]
    );
    assert_eq!(rows[1].proposer, "openai:test-model");
    // Usage of each answer is on its experiment (900 prompt, 80 completion tokens).
    assert_eq!(rows[1].tokens_in, Some(900.0));
    assert_eq!(rows[1].tokens_out, Some(80.0));
    // The tool's numbers have typed columns; the metrics JSON is the script's.
    assert_eq!(
        rows[1].metrics.get("autoresearch_tokens_in"),
        None,
        "{:?}",
        rows[1]
    );
    assert_eq!(rows[1].metrics["val_bpb"], 1.04);
    let tsv = results(dir.path());
    let cols: Vec<(&str, &str)> = tsv.iter().map(|r| (r[1].as_str(), r[3].as_str())).collect();
    assert_eq!(
        cols,
        [
            ("1.090000", "keep"),
            ("1.040000", "keep"),
            ("1.122500", "discard")
        ]
    );
    // The branch is at the kept commit, the tree clean, train.py as kept.
    assert_eq!(best_commit(dir.path(), false), rows[1].commit);
    assert!(best_file(dir.path(), "train.py").starts_with("LR = 0.2\n"));
    assert_eq!(dirty(dir.path()), "");
    // The wire: the endpoint, the model, and the second prompt knows the first result.
    let reqs = server.received();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/v1/chat/completions");
    assert_eq!(reqs[0].json()["model"], "test-model");
    assert_eq!(reqs[0].header("authorization"), None, "no key, no header");
    let second = last_user(&reqs[1].json());
    assert!(second.contains("raise LR 0.1 -> 0.2"), "{second}");
    assert!(
        second.contains("LR = 0.2"),
        "the prompt shows the kept file"
    );
    // The prompt of each experiment is saved beside its runs.
    let prompts = std::fs::read_dir(dir.path().join(".autoresearch/runs"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path().join("prompt.md")).ok())
        .collect::<Vec<_>>();
    assert_eq!(prompts.len(), 2, "one prompt.md per experiment");
    assert!(prompts.iter().all(|p| p.contains("Make val_bpb go down.")));
    assert!(survivors(dir.path()).is_empty());
}

#[test]
fn bad_answers_are_recorded_as_rejections_and_the_loop_goes_on() {
    let prepare_before = common::PREPARE;
    let server = Server::start(vec![
        ok(openai_answer(&block_answer(
            "shorter budget",
            "prepare.py",
            "TIME_BUDGET = 300",
            "TIME_BUDGET = 1",
        ))),
        ok(openai_answer(
            "I think raising the learning rate would help. Let me know if you want me to try it!",
        )),
        ok(openai_answer("")),
        ok(openai_answer(
            "\u{0}\u{1}\u{7f}\u{fffd}\u{fffd}PK\u{3}\u{4}\u{14}\u{0}\u{8}\u{0}\u{0}ÿØÿà\u{10}JFIF",
        )),
        good(),
    ]);
    let dir = repo_with(&openai_agent(&server.url, ""));
    let out = run_n(dir.path(), 1, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = rows(dir.path());
    assert_eq!(
        shape(&rows),
        [
            (0, 1, "keep"),
            (1, 1, "rejected"),
            (2, 1, "rejected"),
            (3, 1, "rejected"),
            (4, 1, "rejected"),
            (5, 1, "keep"),
        ],
        "each answer is a numbered iteration; -n counts the one that ran: {rows:#?}"
    );
    let reasons: Vec<&str> = rows[1..5].iter().map(|r| r.reason.as_str()).collect();
    assert!(
        reasons[0].contains("prepare.py") && reasons[0].contains("not editable"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("no edit blocks"), "{reasons:?}");
    assert!(reasons[2].contains("empty answer"), "{reasons:?}");
    assert!(reasons[3].contains("no edit blocks"), "{reasons:?}");
    // Rejections never ran: no commit, no log, not in results.tsv.
    assert!(
        rows[1..5]
            .iter()
            .all(|r| r.commit.is_empty() && r.log_path.is_none())
    );
    let tsv = results(dir.path());
    assert_eq!(tsv.len(), 2, "baseline and the kept experiment");
    assert_eq!(best_file(dir.path(), "prepare.py"), prepare_before);
    assert_eq!(best_commit(dir.path(), false), rows[5].commit);
    assert_eq!(dirty(dir.path()), "");
    assert_eq!(git(dir.path(), &["status", "--porcelain"]), "");
    assert_eq!(server.received().len(), 5);
}

#[test]
fn an_unmatched_block_is_asked_again_and_the_correction_applied() {
    let server = Server::start(vec![
        ok(openai_answer(&answer(
            "raise LR 0.1 -> 0.2",
            "LEARNING_RATE = 0.1",
            "LEARNING_RATE = 0.2",
        ))),
        ok(openai_answer(
            "train.py\n```\n<<<<<<< SEARCH\nLR = 0.1\n=======\nLR = 0.2\n>>>>>>> REPLACE\n```\n",
        )),
    ]);
    let dir = repo_with(&openai_agent(&server.url, ""));
    let out = run_n(dir.path(), 1, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = rows(dir.path());
    assert_eq!(shape(&rows), [(0, 1, "keep"), (1, 1, "keep")]);
    assert_eq!(rows[1].description, "raise LR 0.1 -> 0.2");
    // Both calls' tokens are on the one experiment.
    assert_eq!(rows[1].tokens_in, Some(1800.0));
    let reqs = server.received();
    assert_eq!(reqs.len(), 2);
    // The second ask carries the conversation and names the failing block.
    let body = reqs[1].json();
    let msgs = body["messages"].as_array().unwrap();
    let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    let follow_up = last_user(&body);
    assert!(follow_up.contains("LEARNING_RATE = 0.1"), "{follow_up}");
    assert!(
        follow_up.contains("LR = 0.1"),
        "the closest lines: {follow_up}"
    );
    assert!(best_file(dir.path(), "train.py").starts_with("LR = 0.2\n"));
    assert_eq!(dirty(dir.path()), "");
}

#[test]
fn a_name_error_is_repaired_as_attempt_two_of_the_same_experiment() {
    let server = Server::start(vec![
        ok(openai_answer(&answer(
            "LR as a square root",
            "LR = 0.1",
            "LR = math.sqrt(0.04)",
        ))),
        ok(openai_answer(&answer(
            "import math",
            "LR = math.sqrt(0.04)",
            "import math\nLR = math.sqrt(0.04)",
        ))),
    ]);
    let dir = repo_with(&openai_agent(&server.url, ""));
    let out = run_n(dir.path(), 1, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = rows(dir.path());
    assert_eq!(
        shape(&rows),
        [(0, 1, "keep"), (1, 1, "crash"), (1, 2, "keep")],
        "{rows:#?}"
    );
    assert!(rows[1].reason.contains("NameError"), "{:?}", rows[1]);
    assert!(
        rows[2].description == "LR as a square root (repaired: import math)",
        "{:?}",
        rows[2]
    );
    assert_eq!(rows[2].metric, Some(1.04), "LR = 0.2");
    // The repair request carries the traceback of the crash.
    let reqs = server.received();
    assert_eq!(reqs.len(), 2);
    let repair = last_user(&reqs[1].json());
    assert!(
        repair.contains("Traceback (most recent call last)"),
        "{repair}"
    );
    assert!(
        repair.contains("NameError: name 'math' is not defined"),
        "{repair}"
    );
    assert!(
        repair.contains("LR = math.sqrt(0.04)"),
        "the crashed file: {repair}"
    );
    let tsv = results(dir.path());
    let statuses: Vec<&str> = tsv.iter().map(|r| r[3].as_str()).collect();
    assert_eq!(statuses, ["keep", "crash", "keep"]);
    assert_eq!(best_commit(dir.path(), false), rows[2].commit);
    assert!(best_file(dir.path(), "train.py").starts_with("import math\nLR = math.sqrt(0.04)\n"));
    assert_eq!(dirty(dir.path()), "");
}

#[test]
fn a_rejected_key_stops_the_session_with_exit_5_at_the_best_commit() {
    let key = "sk-test-401-abcdefghijklmnop";
    let server = Server::start(vec![
        good(),
        Reply::Json(
            401,
            serde_json::json!({"error": {"message": format!("Incorrect API key provided: {key}"), "type": "invalid_request_error", "code": "invalid_api_key"}}).to_string(),
            Vec::new(),
        ),
    ]);
    let dir = repo_with(&openai_agent(&server.url, ""));
    let out = run_n(dir.path(), 3, &[("OPENAI_API_KEY", key)]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains("401"), "{stderr}");
    assert!(
        lines[0].contains("set OPENAI_API_KEY to a valid key"),
        "names the fix: {stderr}"
    );
    assert!(!stderr.contains(key), "the key is never shown: {stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(key));
    // No retries on 401; the key went as a bearer token.
    let reqs = server.received();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs[1].header("authorization"),
        Some(format!("Bearer {key}").as_str())
    );
    let rows = rows(dir.path());
    assert_eq!(shape(&rows), [(0, 1, "keep"), (1, 1, "keep")]);
    assert_eq!(best_commit(dir.path(), false), rows[1].commit);
    assert_checkout_untouched(dir.path());
    assert_eq!(dirty(dir.path()), "");
}

#[test]
fn a_429_with_retry_after_is_retried_then_the_answer_used() {
    let server = Server::start(vec![
        Reply::Json(
            429,
            r#"{"error":{"message":"Rate limit reached","type":"requests"}}"#.into(),
            vec![("retry-after", "0".into())],
        ),
        good(),
    ]);
    let dir = repo_with(&openai_agent(&server.url, ""));
    let out = run_n(dir.path(), 1, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = rows(dir.path());
    assert_eq!(shape(&rows), [(0, 1, "keep"), (1, 1, "keep")], "{rows:#?}");
    let reqs = server.received();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body, reqs[1].body, "the same request, retried");
    assert_eq!(dirty(dir.path()), "");
}

#[test]
fn max_cost_usd_stops_the_session_cleanly_once_reached() {
    // 900 prompt + 80 completion tokens at $1000/M each: $0.98 per answer.
    let server = Server::start(vec![
        good(),
        ok(openai_answer(&answer(
            "lower LR 0.2 -> 0.05",
            "LR = 0.2",
            "LR = 0.05",
        ))),
        ok(openai_answer(&answer(
            "LR 0.2 -> 0.3",
            "LR = 0.2",
            "LR = 0.3",
        ))),
    ]);
    let dir = repo_with(&openai_agent(
        &server.url,
        "price_input = 1000.0\nprice_output = 1000.0\nmax_cost_usd = 1.5",
    ));
    let out = run_n(dir.path(), 5, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = rows(dir.path());
    assert_eq!(
        shape(&rows),
        [(0, 1, "keep"), (1, 1, "keep"), (2, 1, "discard")],
        "{rows:#?}"
    );
    let cost = rows[1].cost_usd.unwrap();
    assert!((cost - 0.98).abs() < 1e-9, "{cost}");
    assert_eq!(server.received().len(), 2, "no call past the limit");
    let ended = events(&out)
        .into_iter()
        .find(|e| e["event"] == "session_ended")
        .expect("a session_ended event");
    assert!(
        ended["reason"].as_str().unwrap().contains("max_cost_usd"),
        "{ended}"
    );
    assert_eq!(best_commit(dir.path(), false), rows[1].commit);
    assert_eq!(dirty(dir.path()), "");
}

#[test]
fn unusable_answers_still_count_towards_max_cost_usd() {
    let prose = || ok(openai_answer("I would try a larger learning rate."));
    let server = Server::start(vec![prose(), prose(), good()]);
    let dir = repo_with(&openai_agent(
        &server.url,
        "price_input = 1000.0\nprice_output = 1000.0\nmax_cost_usd = 1.5",
    ));
    let out = run_n(dir.path(), 3, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = rows(dir.path());
    assert_eq!(
        shape(&rows),
        [(0, 1, "keep"), (1, 1, "rejected"), (2, 1, "rejected")],
        "{rows:#?}"
    );
    for r in &rows[1..] {
        let cost = r.cost_usd.unwrap();
        assert!((cost - 0.98).abs() < 1e-9, "{r:?}");
    }
    assert_eq!(server.received().len(), 2);
    assert_eq!(dirty(dir.path()), "");
}

#[test]
fn a_local_server_gets_no_price_warning_and_its_context_is_announced() {
    let server = Server::with_routes(
        vec![good()],
        vec![
            ("/v1/models", models(&["test-model"], None)),
            ("/props", llama_cpp_props(8192)),
        ],
    );
    let dir = repo_with(&openai_agent(&server.url, ""));
    let out = run_n(dir.path(), 1, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let messages: Vec<String> = events(&out)
        .into_iter()
        .filter(|e| e["event"] == "warning" || e["event"] == "note")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !messages.iter().any(|m| m.contains("no prices known")),
        "a server on 127.0.0.1 costs nothing: {messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("context 8192 tokens") && m.contains("answers up to 2048 tokens")),
        "{messages:?}"
    );
    // The probes came before the first proposal, and the call asked for the bounded answer.
    let probes: Vec<String> = server.probes().iter().map(|r| r.path.clone()).collect();
    assert_eq!(probes, ["/v1/models", "/props"]);
    assert_eq!(server.received()[0].json()["max_tokens"], 2048);
}
