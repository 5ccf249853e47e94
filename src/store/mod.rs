//! The records: the SQLite journal (everything, safe for concurrent readers) and
//! results.tsv (karpathy's five columns, regenerated from the journal so that each finished
//! experiment appears exactly once). Owns no decisions: it writes what it is told.

pub mod import;
pub mod journal;
pub mod results;

pub use journal::{Journal, Measurement, SessionRow};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "journal {path}: {source}; if the file is damaged, move it aside and start a new session with another --tag"
    )]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot write {path}: {source}; check free disk space and that the file is writable")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("journal {path} holds an unreadable row: {detail}")]
    Corrupt { path: PathBuf, detail: String },
}
