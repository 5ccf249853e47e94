//! End-to-end: the hybrid (`[agent] tuner = "search"`, the default beside an LLM) against
//! real HTTP servers on 127.0.0.1 speaking Chat Completions. The LLM proposes ideas, the
//! built-in search tunes the numbers between them, and stands in while the LLM cannot be
//! used (garbage answers, a server that goes away, the cost cap), so that `-n` experiments
//! run to the end. Asserts the journal's rows and their proposers, the notes said once,
//! the branch and a clean tree.

mod common;
mod llm_session_support;
mod llm_support;

use common::{dirty, git, text};
use llm_session_support::*;
use llm_support::{Reply, Server, ok, openai_answer};

const LLM: &str = "openai:test-model";

fn hybrid(url: &str, extra: &str) -> String {
    openai_agent(url, &format!("tuner = \"search\"\n{extra}"))
}

/// [`hybrid`] with the default queue, for the engine's tests with workers.
fn hybrid_ahead(url: &str, extra: &str) -> String {
    openai_agent_ahead(url, &format!("tuner = \"search\"\n{extra}"))
}

fn good(description: &str, search: &str, replace: &str) -> Reply {
    ok(openai_answer(&answer(description, search, replace)))
}

fn garbage() -> Reply {
    ok(openai_answer(
        "I think raising the learning rate would help. Let me know if you want me to try it!",
    ))
}

/// Rows that ran (kept, discarded or crashed), as (proposer, status).
fn ran(rows: &[Row]) -> Vec<(&str, &str)> {
    rows.iter()
        .filter(|r| r.iteration > 0 && matches!(r.status.as_str(), "keep" | "discard" | "crash"))
        .map(|r| (r.proposer.as_str(), r.status.as_str()))
        .collect()
}

/// The warning events whose message contains `needle`.
fn warnings_with(out: &std::process::Output, needle: &str) -> Vec<String> {
    events(out)
        .into_iter()
        .filter(|e| e["event"] == "warning")
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .filter(|m| m.contains(needle))
        .collect()
}

#[test]
fn an_llm_that_only_answers_garbage_leaves_the_night_to_the_tuner() {
    let server = Server::start((0..40).map(|_| garbage()).collect());
    let dir = repo_with(&hybrid(&server.url, ""));
    let out = run_n(dir.path(), 6, &[]);
    assert!(out.status.success(), "exit 0, not 5: {}", text(&out));
    let rows = rows(dir.path());
    let ran = ran(&rows);
    assert_eq!(ran.len(), 6, "all six experiments ran: {rows:#?}");
    assert!(ran.iter().all(|(p, _)| *p == "search"), "{ran:?}");
    let rejected: Vec<&Row> = rows.iter().filter(|r| r.status == "rejected").collect();
    assert!(
        rejected.len() >= 3 && rejected.iter().all(|r| r.proposer == LLM),
        "the unusable answers are on record as the LLM's: {rejected:#?}"
    );
    // A tuner experiment after each unusable answer, benched after 3, then asked again
    // with back-off (after 2, then 4 tuner experiments): fewer calls than experiments.
    let asked = server.received().len();
    assert!((3..=4).contains(&asked), "{asked} calls");
    let said = warnings_with(&out, "the LLM cannot be used");
    assert_eq!(said.len(), 1, "said once: {said:#?}");
    assert!(
        said[0].contains("no valid edit") && said[0].contains("llm_calls"),
        "names the cause and where to look: {}",
        said[0]
    );
    let best = rows.iter().rfind(|r| r.status == "keep").unwrap();
    assert_eq!(
        best_commit(dir.path(), false),
        best.commit,
        "the branch is at the best"
    );
    assert_eq!(dirty(dir.path()), "");
}

#[test]
fn a_server_that_goes_down_mid_session_is_used_again_when_it_comes_back() {
    let server = Server::start(vec![
        good("raise LR 0.1 -> 0.2", "LR = 0.1", "LR = 0.2"),
        // Down: every attempt of one proposal (max_attempts = 2) ends without an answer.
        Reply::Close,
        Reply::Close,
        // Back.
        good("widen the model", "WIDTH = 4", "WIDTH = 9"),
        good("wider still", "WIDTH = 9", "WIDTH = 17"),
    ]);
    let dir = repo_with(&hybrid(&server.url, ""));
    let out = run_n(dir.path(), 9, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = rows(dir.path());
    let ran = ran(&rows);
    assert_eq!(ran.len(), 9, "{rows:#?}");
    let by: Vec<&str> = ran.iter().map(|(p, _)| *p).collect();
    assert_eq!(by[0], LLM, "the LLM proposes first: {by:?}");
    assert_eq!(by[1], "search", "its keep gives the tuner turns: {by:?}");
    let back = by.iter().rposition(|p| *p == LLM).unwrap();
    assert!(
        back > 1 && by[1..back].contains(&"search"),
        "the LLM proposes again after the outage: {by:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.proposer == LLM && r.description.contains("widen the model")),
        "{rows:#?}"
    );
    // Down, then gone for good after its script: each outage is said once.
    let down = warnings_with(&out, "the LLM cannot be used");
    assert!(
        !down.is_empty() && down[0].contains("did not answer") && down[0].contains("base_url"),
        "{down:#?}"
    );
    assert_eq!(warnings_with(&out, "answers usably again").len(), 1);
    assert!(
        warnings_with(&out, "the LLM server did not answer")
            .iter()
            .all(|m| !m.starts_with("the LLM server did not answer")),
        "no per-call warning: the hybrid's one line says it"
    );
    // An unanswered call is not an unusable proposal.
    assert!(rows.iter().all(|r| r.status != "rejected"), "{rows:#?}");
    assert_eq!(dirty(dir.path()), "");
    assert_eq!(git(dir.path(), &["status", "--porcelain"]), "");
}

#[test]
fn a_server_that_refuses_connections_mid_session_does_not_end_the_session() {
    // One answer, then the listener is gone: every later call is refused.
    let server = Server::start(vec![good("raise LR 0.1 -> 0.2", "LR = 0.1", "LR = 0.2")]);
    let dir = repo_with(&hybrid(&server.url, ""));
    let out = run_n(dir.path(), 7, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = rows(dir.path());
    assert_eq!(ran(&rows).len(), 7, "{rows:#?}");
    let said = warnings_with(&out, "the LLM cannot be used");
    assert_eq!(said.len(), 1, "{said:#?}");
    assert!(said[0].contains("did not answer"), "{}", said[0]);
    let ended = events(&out)
        .into_iter()
        .find(|e| e["event"] == "session_ended")
        .unwrap();
    assert!(
        ended["reason"]
            .as_str()
            .unwrap()
            .contains("number of experiments ran"),
        "{ended}"
    );
}

#[test]
fn the_cost_cap_stops_the_llm_and_the_tuner_goes_on() {
    // 900 prompt + 80 completion tokens at $1000/M each: $0.98 per answer.
    let server = Server::start(vec![
        good("raise LR 0.1 -> 0.2", "LR = 0.1", "LR = 0.2"),
        good("widen the model", "WIDTH = 4", "WIDTH = 9"),
        good("never asked", "WIDTH = 9", "WIDTH = 17"),
    ]);
    let dir = repo_with(&hybrid(
        &server.url,
        "price_input = 1000.0\nprice_output = 1000.0\nmax_cost_usd = 1.5",
    ));
    let out = run_n(dir.path(), 8, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = rows(dir.path());
    let ran = ran(&rows);
    assert_eq!(ran.len(), 8, "{rows:#?}");
    assert_eq!(
        ran.iter().filter(|(p, _)| *p == LLM).count(),
        2,
        "the LLM until the cap: {ran:?}"
    );
    assert_eq!(server.received().len(), 2, "no call past the cap");
    let said = warnings_with(&out, "max_cost_usd is reached");
    assert_eq!(said.len(), 1, "{said:#?}");
    assert_eq!(dirty(dir.path()), "");
}

#[test]
fn the_summary_reports_gains_runs_and_money_per_proposer() {
    let server = Server::start(vec![
        good("raise LR 0.1 -> 0.2", "LR = 0.1", "LR = 0.2"),
        good("widen the model", "WIDTH = 4", "WIDTH = 9"),
    ]);
    let dir = repo_with(&hybrid(
        &server.url,
        "price_input = 1000.0\nprice_output = 1000.0",
    ));
    let out = common::bin()
        .args([
            "run",
            "--yes",
            "--json",
            "--grace",
            "1",
            "--summary",
            "-n",
            "5",
            "--repo",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let md = file(dir.path(), "autoresearch-summary.md");
    assert!(md.contains("## By proposer"), "{md}");
    let line = |who: &str| {
        md.lines()
            .find(|l| l.starts_with(&format!("| {who} |")))
            .unwrap_or_else(|| panic!("no row for {who}: {md}"))
            .to_string()
    };
    let llm = line(LLM);
    let cells: Vec<&str> = llm.split('|').map(str::trim).collect();
    // | name | experiments | kept | rejected | gain | cost |
    assert_eq!(cells[1], LLM);
    assert!(cells[2].parse::<u64>().unwrap() >= 1, "{llm}");
    assert!(
        cells[3].parse::<u64>().unwrap() >= 1,
        "LR 0.1 → 0.2 was kept: {llm}"
    );
    assert!(cells[5].parse::<f64>().unwrap() > 0.0, "{llm}");
    assert!(cells[6].starts_with('$') && cells[6] != "$0.00", "{llm}");
    let tuner = line("search");
    assert!(
        tuner.ends_with("| $0.00 |"),
        "the tuner costs nothing: {tuner}"
    );
    // `status` counts the session's LLM calls.
    let status = common::bin()
        .args(["status", "--repo"])
        .arg(dir.path())
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(status.contains("## LLM calls"), "{status}");
    let conn = rusqlite::Connection::open(dir.path().join(".autoresearch/journal.sqlite")).unwrap();
    let (calls, used): (i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), SUM(outcome = 'used') FROM llm_calls",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(calls >= 1);
    let plural = if calls == 1 { "" } else { "s" };
    assert!(
        status.contains(&format!("{calls} call{plural}: {used} used,")),
        "{status}"
    );
    // One worker: its row says how busy the trainer was while the LLM thought.
    assert!(status.contains("## Workers"), "{status}");
    assert!(status.contains("\n| 1 | cpu | 6 |"), "{status}");
}

#[test]
fn on_the_engine_the_tuner_stands_in_and_each_experiment_names_its_proposer() {
    let server = Server::start(vec![
        good("raise LR 0.1 -> 0.2", "LR = 0.1", "LR = 0.2"),
        garbage(),
        garbage(),
        garbage(),
    ]);
    let dir = repo_with(&hybrid_ahead(&server.url, ""));
    let out = run_engine(dir.path(), 7, 2);
    assert!(out.status.success(), "exit 0, not 5: {}", text(&out));
    let rows = rows(dir.path());
    let ran = ran(&rows);
    assert!(ran.len() >= 7, "-n 7 ran to the end: {rows:#?}");
    assert!(
        ran.contains(&(LLM, "keep")),
        "the LLM's idea was kept: {ran:?}"
    );
    assert!(
        ran.iter().filter(|(p, _)| *p == "search").count() >= 5,
        "the tuner's turns carry its name: {ran:?}"
    );
    // The LLM's unusable answers are its rejections. With two workers, two copies of the
    // hybrid are asked at once (`[agent] concurrency`); when both give the tuner its turn
    // they may offer the same move, and the second is set aside as a duplicate.
    assert!(
        rows.iter()
            .filter(|r| r.status == "rejected")
            .all(|r| r.proposer == LLM || r.reason.contains("equals one made at the same time")),
        "{rows:#?}"
    );
    assert!(!warnings_with(&out, "the LLM cannot be used").is_empty());
    assert_eq!(dirty(dir.path()), "");
}

#[test]
fn on_the_engine_a_worker_never_waits_for_a_slow_llm() {
    // The first call hangs (a slow model, thinking): the tuner fills in on the idle worker,
    // so both experiments are decided before the call is given up.
    let server = Server::start(vec![Reply::Hang, Reply::Hang, Reply::Hang]);
    // The default queue, one proposal ahead per worker (the helper's `ahead = 0` off).
    let agent = hybrid_ahead(&server.url, "").replace("timeout = \"20s\"", "timeout = \"8s\"");
    let dir = repo_with(&agent);
    let out = run_engine(dir.path(), 2, 1);
    assert!(out.status.success(), "{}", text(&out));
    let rows = rows(dir.path());
    let ran = ran(&rows);
    assert_eq!(ran.len(), 2, "{rows:#?}");
    assert!(ran.iter().all(|(p, _)| *p == "search"), "{ran:?}");
    let events = events(&out);
    let decided = events
        .iter()
        .rposition(|e| e["event"] == "decision")
        .expect("decisions");
    let llm_news = events.iter().position(|e| {
        e["event"] == "warning"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("did not answer") || m.contains("cannot be used"))
    });
    assert!(
        llm_news.is_none_or(|w| w > decided),
        "the experiments did not wait for the LLM: {events:#?}"
    );
    assert_eq!(dirty(dir.path()), "");
}
