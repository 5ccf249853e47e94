//! Helpers for the dashboard's tests: a repository with a journal written row by row in
//! SQLite (any size, any content), the server on a free loopback port, plain HTTP, and a
//! small WebDriver client for Chromium (headless, through chromedriver).
#![allow(dead_code)]

pub mod webdriver;

use std::io::Read as _;
use std::path::{Path, PathBuf};

pub use crate::common::git;

/// The XSS probe used as a description and in a log.
pub const XSS: &str = "<img src=x onerror=\"window.__xss=1\"> LR up";

/// A repository with two commits (LR 0.1 → 0.2 in train.py) and a journal.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub base: String,
    pub changed: String,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = crate::common::repo(&[
            ("train.py", "LR = 0.1\nprint('val_bpb: 1.0')\n"),
            ("autoresearch.toml", &crate::common::config("")),
        ]);
        let base = git(dir.path(), &["rev-parse", "HEAD"]);
        std::fs::write(
            dir.path().join("train.py"),
            "LR = 0.2\nprint('val_bpb: 1.0')\n",
        )
        .unwrap();
        git(dir.path(), &["commit", "-qam", "exp: LR 0.1 → 0.2"]);
        let changed = git(dir.path(), &["rev-parse", "HEAD"]);
        // The journal's schema, made the way a session makes it.
        autoresearch::store::Journal::open(&dir.path().join(".autoresearch/journal.sqlite"))
            .unwrap();
        Fixture { dir, base, changed }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn journal_path(&self) -> PathBuf {
        self.root().join(".autoresearch/journal.sqlite")
    }

    /// A writable connection (the tests play the session).
    pub fn conn(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(self.journal_path()).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        c
    }

    /// Adds a session and returns its id.
    pub fn session(&self, tag: &str) -> i64 {
        let c = self.conn();
        c.execute(
            "INSERT INTO sessions (tag, branch, base_branch, base_commit, started_at, metric, direction, platform, config)
             VALUES (?1, ?2, 'main', ?3, '2026-12-01T08:00:00Z', 'val_bpb', 'minimize', '{}', ?4)",
            rusqlite::params![tag, format!("autoresearch/{tag}"), self.base, crate::common::config("")],
        )
        .unwrap();
        c.last_insert_rowid()
    }

    /// Adds `n` finished experiments to `session` in one transaction: a baseline measured
    /// three times, then keep / discard / crash in a fixed pattern, the metric falling
    /// slowly. Returns their ids.
    pub fn experiments(
        &self,
        session: i64,
        n: usize,
        description: impl Fn(usize) -> String,
    ) -> Vec<i64> {
        let mut c = self.conn();
        let tx = c.transaction().unwrap();
        let mut ids = Vec::new();
        let start: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(iteration), -1) + 1 FROM experiments WHERE session_id = ?1",
                [session],
                |r| r.get(0),
            )
            .unwrap();
        for i in 0..n {
            let it = start + i as i64;
            let (status, metric) = if it == 0 || i % 10 == 3 {
                ("keep", Some(1.1 - 0.0001 * it as f64))
            } else if i % 7 == 5 {
                ("crash", None)
            } else {
                ("discard", Some(1.1 + 0.001 * (i % 13) as f64))
            };
            let (parent, commit) = if it == 0 {
                (self.base.as_str(), self.base.as_str())
            } else {
                (self.base.as_str(), self.changed.as_str())
            };
            let id = insert(
                &tx,
                session,
                it,
                status,
                metric,
                parent,
                commit,
                &description(i),
            );
            ids.push(id);
        }
        tx.commit().unwrap();
        ids
    }

    /// Three seeded runs of experiment `id` (the noise estimate's input).
    pub fn runs(&self, id: i64, values: &[f64]) {
        let c = self.conn();
        for (k, v) in values.iter().enumerate() {
            c.execute(
                "INSERT INTO measurements (experiment_id, seed, value, log_path, at, worker, device, host, duration_s)
                 VALUES (?1, ?2, ?3, ?4, '2026-12-01T08:00:00Z', 1, 'cpu', 'box', 1.5)",
                rusqlite::params![id, k as i64 + 1, v, format!(".autoresearch/runs/{id:04}/run.log")],
            )
            .unwrap();
        }
    }

    /// Writes experiment `id`'s log where the journal says it is.
    pub fn log(&self, id: i64, text: &str) {
        let rel = format!(".autoresearch/runs/{id:04}/run.log");
        let p = self.root().join(&rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        self.conn()
            .execute(
                "UPDATE experiments SET log_path = ?1 WHERE id = ?2",
                rusqlite::params![rel, id],
            )
            .unwrap();
    }

    /// Serves this repository on a free loopback port.
    pub fn serve(&self) -> Served {
        let d = autoresearch::dashboard::Dashboard::bind(&autoresearch::dashboard::Options {
            root: self.root().to_path_buf(),
            tag: None,
            host: "127.0.0.1".into(),
            port: 0,
        })
        .unwrap();
        let url = d.url().trim_end_matches('/').to_string();
        Served {
            url,
            _handle: d.spawn(),
        }
    }
}

/// Inserts one finished experiment; returns its id.
#[allow(clippy::too_many_arguments)]
pub fn insert(
    c: &rusqlite::Connection,
    session: i64,
    iteration: i64,
    status: &str,
    metric: Option<f64>,
    parent: &str,
    commit: &str,
    description: &str,
) -> i64 {
    // As the tool writes them (schema 7): the script's numbers in the JSON, the LLM's
    // usage in typed columns.
    let metrics = match metric {
        Some(m) => format!("{{\"val_bpb\": {m}}}"),
        None => "{}".into(),
    };
    let (cost, tokens_in, tokens_out) = match metric {
        Some(_) => (Some(0.0123), Some(1500.0), Some(80.0)),
        None => (None, None, None),
    };
    c.execute(
        "INSERT INTO experiments (session_id, iteration, attempt, parent, commit_sha, status, metric, metrics, memory_gb,
         description, category, proposer, reason, log_path, started_at, finished_at, duration_s, state_hash,
         cost_usd, tokens_in, tokens_out)
         VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7, 1.5, ?8, ?9, 'search', ?10, NULL, '2026-12-01T08:00:00Z',
         '2026-12-01T08:05:00Z', 300.0, ?11, ?12, ?13, ?14)",
        rusqlite::params![
            session,
            iteration,
            parent,
            commit,
            status,
            metric,
            metrics,
            description,
            if iteration == 0 { "baseline" } else { "optimizer" },
            if status == "crash" { "exit 1: boom" } else { "greedy: Δ=-0.0001, better" },
            format!("h{session}-{iteration}"),
            cost,
            tokens_in,
            tokens_out,
        ],
    )
    .unwrap();
    c.last_insert_rowid()
}

/// A running server; stopped when dropped.
pub struct Served {
    pub url: String,
    _handle: autoresearch::dashboard::Handle,
}

/// GET `url`: (status, body). Statuses are data here.
pub fn get(url: &str) -> (u16, String) {
    request("GET", url)
}

pub fn request(method: &str, url: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into();
    let resp = match method {
        "GET" => agent.get(url).call(),
        "POST" => agent.post(url).send(""),
        "DELETE" => agent.delete(url).call(),
        _ => panic!("{method}"),
    };
    let mut resp = resp.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let code = resp.status().as_u16();
    let mut body = String::new();
    resp.body_mut()
        .as_reader()
        .read_to_string(&mut body)
        .unwrap();
    (code, body)
}

/// GET `url` and parse JSON, asserting the status.
pub fn json(url: &str, status: u16) -> serde_json::Value {
    let (code, body) = get(url);
    assert_eq!(code, status, "{url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}
