//! Shared by the llm_session* tests: a fixture repo configured for an LLM backend, answers
//! in the proposal format, and a reader for every journal row with its attempt and usage.
#![allow(dead_code)]

use crate::common;
#[allow(unused_imports)]
pub use crate::common::{BRANCH, assert_checkout_untouched, best_commit, best_file};
use std::path::{Path, PathBuf};
use std::process::Output;

/// The fixture training script: `LR` drives val_bpb = (LR - 0.4)^2 + 1 (baseline 1.09).
pub fn train_py() -> String {
    std::fs::read_to_string(fixture("train.py")).unwrap()
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/llm_session")
        .join(name)
}

/// `[agent]` for an OpenAI-compatible server at `url` (http://127.0.0.1:PORT), with fast
/// retries so that no test waits; `extra` adds keys. The LLM alone (`tuner = "off"`)
/// unless `extra` sets `tuner`: these tests script every proposal. Each scripted answer is
/// written for the result before it, so proposals wait for every result (`ahead = 0`)
/// unless `extra` sets `ahead`; the queue prepared ahead has its tests in engine_llm.rs.
pub fn openai_agent(url: &str, extra: &str) -> String {
    let tuner = if extra.contains("tuner") {
        ""
    } else {
        "tuner = \"off\"\n"
    };
    let ahead = if extra.contains("ahead") {
        ""
    } else {
        "ahead = 0\n"
    };
    format!(
        "[agent]\nbackend = \"openai\"\nbase_url = \"{url}/v1\"\nmodel = \"test-model\"\ntimeout = \"20s\"\nmax_attempts = 2\nretry_base = \"1ms\"\nretry_max_wait = \"20ms\"\n{tuner}{ahead}{extra}\n"
    )
}

/// [`openai_agent`] with the default queue: a proposal prepared per worker while runs
/// train (no `ahead = 0`), for the tests of the engine's pipelining.
pub fn openai_agent_ahead(url: &str, extra: &str) -> String {
    openai_agent(url, extra).replace("ahead = 0\n", "")
}

/// A committed repo with the fixture train.py and an autoresearch.toml holding `agent`.
pub fn repo_with(agent: &str) -> tempfile::TempDir {
    common::repo(&[
        ("train.py", &train_py()),
        ("program.md", "# Program\nMake val_bpb go down.\n"),
        ("autoresearch.toml", &common::config(agent)),
    ])
}

/// An answer with one SEARCH/REPLACE block on train.py.
pub fn answer(description: &str, search: &str, replace: &str) -> String {
    block_answer(description, "train.py", search, replace)
}

pub fn block_answer(description: &str, path: &str, search: &str, replace: &str) -> String {
    format!(
        "Here is my plan.\n\nDESCRIPTION: {description}\nCATEGORY: hyperparameters\n\n{path}\n```python\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n```\n"
    )
}

/// `autoresearch run --yes --json -n N` with extra environment. Python writes bytecode
/// as it does for most users (this machine's environment may say otherwise).
pub fn run_n(dir: &Path, n: u32, env: &[(&str, &str)]) -> Output {
    common::bin()
        .env_remove("PYTHONDONTWRITEBYTECODE")
        .args(["run", "--yes", "--json", "--grace", "1", "-n"])
        .arg(n.to_string())
        .arg("--repo")
        .arg(dir)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// `autoresearch run --json -n n` on the engine with `workers` workers.
pub fn run_engine(dir: &Path, n: u32, workers: u32) -> Output {
    common::bin()
        .args(["run", "--yes", "--json", "--grace", "1", "-n"])
        .arg(n.to_string())
        .arg("--workers")
        .arg(workers.to_string())
        .arg("--repo")
        .arg(dir)
        .output()
        .unwrap()
}

/// One journal row, with what the 5-tuple of `common::journal` leaves out.
#[derive(Debug, Clone)]
pub struct Row {
    pub iteration: i64,
    pub attempt: i64,
    pub status: String,
    pub metric: Option<f64>,
    pub reason: String,
    pub description: String,
    pub commit: String,
    pub proposer: String,
    /// The script's numbers (the journal's `metrics` JSON).
    pub metrics: serde_json::Value,
    pub log_path: Option<String>,
    /// The LLM usage of the proposal, from the journal's typed columns.
    pub cost_usd: Option<f64>,
    pub tokens_in: Option<f64>,
    pub tokens_out: Option<f64>,
}

pub fn rows(dir: &Path) -> Vec<Row> {
    let conn = rusqlite::Connection::open(dir.join(".autoresearch/journal.sqlite")).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT iteration, attempt, status, metric, reason, description, commit_sha, proposer, metrics, log_path, cost_usd, tokens_in, tokens_out FROM experiments ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        let metrics: String = r.get(8)?;
        Ok(Row {
            iteration: r.get(0)?,
            attempt: r.get(1)?,
            status: r.get(2)?,
            metric: r.get(3)?,
            reason: r.get(4)?,
            description: r.get(5)?,
            commit: r.get(6)?,
            proposer: r.get(7)?,
            metrics: serde_json::from_str(&metrics).unwrap_or(serde_json::Value::Null),
            log_path: r.get(9)?,
            cost_usd: r.get(10)?,
            tokens_in: r.get(11)?,
            tokens_out: r.get(12)?,
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// (iteration, attempt, status) of every row, for whole-session assertions.
pub fn shape(rows: &[Row]) -> Vec<(i64, i64, &str)> {
    rows.iter()
        .map(|r| (r.iteration, r.attempt, r.status.as_str()))
        .collect()
}

/// The `--json` events on stdout.
pub fn events(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub fn file(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

/// The user message (the last in the conversation) of a Chat Completions request.
pub fn last_user(body: &serde_json::Value) -> String {
    let msgs = body["messages"].as_array().unwrap();
    msgs.last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string()
}
