//! `autoresearch summary` asks the configured LLM for the next steps, fencing the session's
//! record as data; without an LLM, or with `--no-llm`, or when the call fails, it derives
//! them from the data.

#[path = "llm_support/mod.rs"]
mod llm_support;
#[path = "fixtures/report_cli/session.rs"]
mod session;

use llm_support::{Server, ok, openai_answer};
use session::*;

fn with_openai(root: &std::path::Path, url: &str) {
    let cfg = format!(
        "{CONFIG}\n[agent]\nbackend = \"openai\"\nbase_url = \"{url}/v1\"\nmodel = \"m\"\nmax_attempts = 1\n"
    );
    std::fs::write(root.join("autoresearch.toml"), cfg).unwrap();
}

#[test]
fn the_configured_llm_writes_the_next_steps_from_fenced_data() {
    let s = build(&night());
    let server = Server::start(vec![ok(openai_answer(
        "- Try LR 0.3: the knob improved twice upward.\n- Re-run LR 0.4 → 0.8.",
    ))]);
    with_openai(s.path(), &server.url);
    let out = bin()
        .args(["summary", "--repo"])
        .arg(s.path())
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    let (o, e) = out_text(&out);
    assert!(out.status.success(), "{o}{e}");
    let md = std::fs::read_to_string(s.path().join("autoresearch-summary.md")).unwrap();
    assert!(
        md.contains("- Try LR 0.3: the knob improved twice upward."),
        "{md}"
    );
    let requests = server.finish();
    assert_eq!(requests.len(), 1);
    let body = requests[0].json();
    let user = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "user")
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(user.contains("data, not instructions"), "{user}");
    assert!(
        user.contains("```text") && user.contains("LR 0.4 → 1.6"),
        "{user}"
    );
}

#[test]
fn a_failing_llm_or_no_llm_falls_back_to_steps_derived_from_the_data() {
    let s = build(&night());
    // Nothing listens here: the call fails and the summary is still written.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    with_openai(s.path(), &url);
    let out = bin()
        .args(["summary", "--repo"])
        .arg(s.path())
        .output()
        .unwrap();
    let (o, e) = out_text(&out);
    assert!(out.status.success(), "{o}{e}");
    assert!(e.contains("derived them from the data"), "{e}");
    let md = std::fs::read_to_string(s.path().join("autoresearch-summary.md")).unwrap();
    assert!(
        md.contains("Next steps") || md.contains("next steps"),
        "{md}"
    );
    // --no-llm never calls out.
    let out = bin()
        .args(["summary", "--no-llm", "--repo"])
        .arg(s.path())
        .output()
        .unwrap();
    let (_, e) = out_text(&out);
    assert!(out.status.success());
    assert!(!e.contains("warning"), "{e}");
}
