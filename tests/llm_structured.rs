//! Constrained output against real HTTP servers on 127.0.0.1: a proposal asked for in a
//! JSON schema (`response_format: json_schema`, streamed or not), read into edits; a
//! server that refuses the schema is asked for SEARCH/REPLACE text from then on;
//! `[agent] structured` chooses.

mod llm_support;

use autoresearch::agent::Proposer;
use autoresearch::agent::llm::LlmProposer;
use autoresearch::config::{AgentBackend, AgentConfig, Structured};
use llm_support::*;

fn openai(server: &Server, structured: Structured) -> (tempfile::TempDir, World, LlmProposer) {
    let repo = repo();
    let mut a = agent(AgentBackend::OpenAi, &format!("{}/v1", server.url));
    a.model = Some("m".into());
    a.structured = structured;
    let cfg = config(a);
    let p = LlmProposer::with_key(&cfg.agent, None).unwrap();
    let w = World::new(repo.path(), cfg);
    (repo, w, p)
}

fn json_answer(search: &str, replace: &str) -> String {
    serde_json::json!({
        "description": "raise LR 0.04 -> 0.08",
        "category": "hyperparameters",
        "scratchpad": "LR sweep: trying 0.08",
        "edits": [{"path": "train.py", "search": search, "replace": replace}]
    })
    .to_string()
}

#[test]
fn by_default_a_chat_completions_proposal_is_asked_and_read_as_json() {
    let server = Server::start(vec![openai_stream(
        &json_answer("LR = 0.04", "LR = 0.08"),
        9,
        "stop",
    )]);
    let (_repo, w, mut p) = openai(&server, Structured::Auto);
    let prop = p.propose(&w.ctx()).unwrap();
    assert_eq!(prop.changes[0].contents, TRAIN.replace("0.04", "0.08"));
    assert_eq!(prop.description, "raise LR 0.04 -> 0.08");
    assert_eq!(prop.scratchpad.as_deref(), Some("LR sweep: trying 0.08"));
    let body = server.finish()[0].json();
    let format = &body["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["strict"], true);
    let schema = &format["json_schema"]["schema"];
    assert_eq!(
        schema["properties"]["edits"]["items"]["properties"]["path"]["enum"],
        serde_json::json!(["train.py"])
    );
    // A server on this machine: each edit's search is one of the file's lines.
    let search = &schema["properties"]["edits"]["items"]["properties"]["search"]["enum"];
    let lines: Vec<&str> = TRAIN.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(search, &serde_json::json!(lines), "{schema}");
    let system = body["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("Answer with one JSON object"), "{system}");
    assert!(!system.contains("<<<<<<< SEARCH"), "{system}");
}

#[test]
fn a_json_block_that_does_not_apply_is_asked_for_again_in_json() {
    let server = Server::start(vec![
        ok(openai_answer(&json_answer("LR = 0.05", "LR = 0.08"))),
        ok(openai_answer(&json_answer("LR = 0.04", "LR = 0.08"))),
    ]);
    let (_repo, w, mut p) = openai(&server, Structured::Json);
    let prop = p.propose(&w.ctx()).unwrap();
    assert_eq!(prop.changes[0].contents, TRAIN.replace("0.04", "0.08"));
    let reqs = server.finish();
    assert_eq!(reqs.len(), 2);
    let again = reqs[1].json();
    assert!(again.get("response_format").is_some());
    let follow_up = again["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(follow_up.contains("LR = 0.05"), "{follow_up}");
}

#[test]
fn a_server_that_refuses_the_schema_is_asked_for_text_from_then_on() {
    let refused = Reply::Json(
        400,
        r#"{"error":{"message":"'response_format' of type 'json_schema' is not supported with this model","type":"invalid_request_error","param":"response_format"}}"#.into(),
        Vec::new(),
    );
    let server = Server::start(vec![
        refused,
        ok(openai_answer(GOOD_ANSWER)),
        ok(openai_answer(GOOD_ANSWER)),
    ]);
    let (_repo, mut w, mut p) = openai(&server, Structured::Auto);
    p.propose(&w.ctx()).unwrap();
    w.iteration = 2;
    p.propose(&w.ctx()).unwrap();
    let reqs = server.finish();
    let formats: Vec<bool> = reqs
        .iter()
        .map(|r| r.json().get("response_format").is_some())
        .collect();
    assert_eq!(formats, [true, false, false]);
    let text_prompt = reqs[1].json()["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text_prompt.contains("<<<<<<< SEARCH"), "asked as text");
    let purposes: Vec<String> = p.take_calls().into_iter().map(|c| c.purpose).collect();
    assert_eq!(purposes, ["propose", "as-text", "propose"]);
}

#[test]
fn off_and_the_messages_api_ask_for_text() {
    let server = Server::start(vec![ok(openai_answer(GOOD_ANSWER))]);
    let (_repo, w, mut p) = openai(&server, Structured::Off);
    p.propose(&w.ctx()).unwrap();
    assert!(server.finish()[0].json().get("response_format").is_none());

    let server = Server::start(vec![ok(anthropic_answer(GOOD_ANSWER))]);
    let repo = repo();
    let cfg = config(agent(AgentBackend::Anthropic, &server.url));
    let mut p = LlmProposer::with_key(&cfg.agent, Some(KEY.into())).unwrap();
    let w = World::new(repo.path(), cfg);
    p.propose(&w.ctx()).unwrap();
    let body = server.finish()[0].json();
    assert!(body.get("response_format").is_none());
    assert!(
        body["system"][0]["text"]
            .as_str()
            .unwrap()
            .contains("<<<<<<< SEARCH")
    );
}

#[test]
fn structured_is_read_from_the_config_and_a_bad_value_names_the_choices() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["train.py", "prepare.py"] {
        std::fs::write(dir.path().join(f), "X = 1\n").unwrap();
    }
    let path = dir.path().join("autoresearch.toml");
    let base = "editable = [\"train.py\"]\nbudget = \"1s\"\n[metric]\nname = \"val_bpb\"\ndirection = \"minimize\"\n[agent]\nbackend = \"openai\"\nmodel = \"m\"\n";
    let cfg =
        autoresearch::config::load_str(&format!("{base}structured = \"off\"\n"), &path).unwrap();
    assert_eq!(cfg.agent.structured, Structured::Off);
    assert_eq!(
        autoresearch::config::load_str(base, &path).unwrap().agent,
        AgentConfig {
            backend: AgentBackend::OpenAi,
            model: Some("m".into()),
            ..AgentConfig::default()
        }
    );
    let e = autoresearch::config::load_str(&format!("{base}structured = \"yaml\"\n"), &path)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("agent.structured") && e.contains("use one of auto, json, off"),
        "{e}"
    );
}
