//! Bringing a journal written by an older release up to the current schema, in place and
//! one version at a time, so that a session started by an older autoresearch resumes.

use rusqlite::Connection;

/// Brings a journal written by an older release up to [`super::SCHEMA_VERSION`], in place, one
/// step per version, so a session started by it resumes.
pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < 2 {
        conn.execute_batch(
            "BEGIN;
             ALTER TABLE measurements ADD COLUMN worker INTEGER;
             ALTER TABLE measurements ADD COLUMN device TEXT;
             ALTER TABLE measurements ADD COLUMN host TEXT;
             ALTER TABLE measurements ADD COLUMN duration_s REAL;
             PRAGMA user_version = 2;
             COMMIT;",
        )?;
    }
    if version < 3 {
        conn.execute_batch(&format!(
            "BEGIN; {} PRAGMA user_version = 3; COMMIT;",
            super::calls::CREATE
        ))?;
    }
    if version < 4 {
        add_column(conn, "measurements", "job_id TEXT", 4)?;
    }
    if version < 5 {
        add_column(conn, "measurements", "queue_s REAL", 5)?;
    }
    if version < 6 {
        conn.execute_batch(&format!(
            "BEGIN; {} PRAGMA user_version = 6; COMMIT;",
            super::curves::CREATE
        ))?;
    }
    Ok(())
}

/// One step that adds a column (`name TYPE`) to `table` and sets the version to `version`.
/// Where a test (or a hand) set the version back, the column may already be there.
fn add_column(conn: &Connection, table: &str, column: &str, version: i64) -> rusqlite::Result<()> {
    let name = column.split_whitespace().next().unwrap_or(column);
    let add = if super::table_columns(conn, table)?.iter().any(|c| c == name) {
        String::new()
    } else {
        format!("ALTER TABLE {table} ADD COLUMN {column};")
    };
    conn.execute_batch(&format!(
        "BEGIN; {add} PRAGMA user_version = {version}; COMMIT;"
    ))
}
