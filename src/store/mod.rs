//! The records: the SQLite journal (everything, safe for concurrent readers) and
//! results.tsv (karpathy's five columns, regenerated from the journal so that each finished
//! experiment appears exactly once). Owns no decisions: it writes what it is told.

pub mod import;
mod import_records;
pub mod journal;
pub mod results;
pub mod settings;

pub use journal::{
    CallCounts, CallRow, CurveRow, Journal, Measurement, RunPlace, SCHEMA_VERSION, SessionRow,
    WorkerRun,
};
pub use settings::SessionSettings;

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
    /// The journal could not be written: the disk is full, a file size limit was hit, or
    /// the folder is read-only. Not damage: nothing finalised was lost.
    #[error(
        "cannot write the journal {path}: {detail}; check free disk space and that the folder is writable, then run again (the session resumes where it stopped)"
    )]
    JournalWrite { path: PathBuf, detail: String },
    #[error(
        "cannot write {path}: {source}; check free disk space and that the file and its folder are writable"
    )]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Something deleted or replaced the journal file while the session held it open.
    #[error(
        "the journal {path} was {what} while the session ran (by a training run?); every record is saved in {saved}: put it back (`mv {saved} {path}`) and run `autoresearch run` again to resume"
    )]
    Replaced {
        path: PathBuf,
        what: &'static str,
        saved: PathBuf,
    },
    #[error("journal {path} holds an unreadable row: {detail}")]
    Corrupt { path: PathBuf, detail: String },
}

impl StoreError {
    /// A journal error, told apart: a failed write (disk full, read-only) is not damage
    /// and must not send the user to move the journal aside.
    pub fn sqlite(path: &std::path::Path, source: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode;
        let detail = match source.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => Some("the disk is full"),
            Some(ErrorCode::SystemIoFailure) => {
                Some("a write failed (disk full or a file size limit?)")
            }
            Some(ErrorCode::ReadOnly) => Some("the file or its folder is read-only"),
            _ => None,
        };
        match detail {
            Some(detail) => StoreError::JournalWrite {
                path: path.to_path_buf(),
                detail: detail.to_string(),
            },
            None => StoreError::Sqlite {
                path: path.to_path_buf(),
                source,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StoreError;
    use rusqlite::ffi;

    #[test]
    fn a_full_disk_is_not_called_damage() {
        let full = rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_FULL), None);
        let e = StoreError::sqlite(std::path::Path::new("j.sqlite"), full).to_string();
        assert!(
            e.contains("disk is full") && e.contains("free disk space"),
            "{e}"
        );
        assert!(!e.contains("move it aside"), "{e}");
        let io = rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_IOERR_WRITE), None);
        let e = StoreError::sqlite(std::path::Path::new("j.sqlite"), io).to_string();
        assert!(e.contains("free disk space"), "{e}");
        let corrupt = rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_CORRUPT), None);
        let e = StoreError::sqlite(std::path::Path::new("j.sqlite"), corrupt).to_string();
        assert!(e.contains("move it aside"), "{e}");
    }
}
