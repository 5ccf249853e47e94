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
        "{CONFIG}\n[agent]\nbackend = \"openai\"\nbase_url = \"{url}/v1\"\nmodel = \"m\"\nmax_attempts = 1\ntuner = \"off\"\n"
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

#[test]
fn model_text_with_an_unclosed_fence_and_headings_is_rendered_as_a_bounded_list() {
    let s = build(&night());
    let server = Server::start(vec![ok(openai_answer(
        "# My analysis\nTry LR 0.3 next.\n- Widen the <b>MLP</b>.\n```python\nLR = 0.3\n",
    ))]);
    with_openai(s.path(), &server.url);
    let out = bin()
        .args(["summary", "--repo"])
        .arg(s.path())
        .output()
        .unwrap();
    let (o, e) = out_text(&out);
    assert!(out.status.success(), "{o}{e}");
    let md = std::fs::read_to_string(s.path().join("autoresearch-summary.md")).unwrap();
    let section = md.split("## Recommended next steps").nth(1).unwrap();
    assert!(
        section.contains("- Try LR 0.3 next.\n- Widen the &lt;b&gt;MLP&lt;/b&gt;.\n"),
        "{section}"
    );
    assert!(
        !md.contains("# My analysis"),
        "no heading from the model: {md}"
    );
    assert!(
        !section.contains("LR = 0.3"),
        "the fenced code is not a step"
    );
    assert_eq!(
        md.lines()
            .filter(|l| l.trim_start().starts_with("```"))
            .count()
            % 2,
        0,
        "every fence in the document is closed: {md}"
    );
}
