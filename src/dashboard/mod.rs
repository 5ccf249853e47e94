//! The live dashboard: a small read-only HTTP server over a repository's journal, with
//! the page (HTML, JS, CSS) embedded in the binary. It opens the journal read-only, runs
//! git only to read diffs, and never changes anything; no endpoint writes.

mod api;
mod data;
mod files;
mod server;

pub use server::{Dashboard, Handle, Options};

use std::path::PathBuf;

/// Where the journal lives inside a repository.
pub const JOURNAL: &str = ".autoresearch/journal.sqlite";

/// The oldest journal schema the dashboard reads (`PRAGMA user_version`). Newer versions are
/// read too: they only add tables and columns.
pub const MIN_SCHEMA: i64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error(
        "cannot listen on {addr}: {detail}; pick another --port (0 lets the system choose) or stop what holds it"
    )]
    Bind { addr: String, detail: String },
    #[error("no session journal at {0}; start a session with `autoresearch run`")]
    NoJournal(PathBuf),
    #[error("journal {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "journal {path} has schema version {found}, older than this dashboard reads ({MIN_SCHEMA}); open it with the release that wrote it"
    )]
    OldSchema { path: PathBuf, found: i64 },
}

/// Is `host` a loopback address (or `localhost`)? Anything else exposes the journal, the
/// diffs and the training logs to the network.
pub fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_told_apart() {
        for h in ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["0.0.0.0", "192.168.1.4", "::", "example.com"] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
