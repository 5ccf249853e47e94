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
    if version < 7 {
        move_to_typed_columns(conn)?;
    }
    Ok(())
}

/// Version 7: the tool's own numbers (cost, tokens, runs, sd, batch scale) move out of
/// each experiment's `metrics` JSON into typed columns.
fn move_to_typed_columns(conn: &Connection) -> rusqlite::Result<()> {
    let have = super::table_columns(conn, "experiments")?;
    let mut sql = String::from("BEGIN;");
    for (_, column) in crate::experiment::TYPED_KEYS {
        if !have.iter().any(|c| c == column) {
            sql.push_str(&format!(
                "ALTER TABLE experiments ADD COLUMN {column} REAL;"
            ));
        }
    }
    let sets: Vec<String> = crate::experiment::TYPED_KEYS
        .iter()
        .map(|(key, column)| {
            format!("{column} = COALESCE({column}, json_extract(metrics, '$.{key}'))")
        })
        .collect();
    let paths: Vec<String> = crate::experiment::TYPED_KEYS
        .iter()
        .map(|(key, _)| format!("'$.{key}'"))
        .collect();
    sql.push_str(&format!(
        "UPDATE experiments SET {}, metrics = json_remove(metrics, {}) WHERE json_valid(metrics);",
        sets.join(", "),
        paths.join(", ")
    ));
    sql.push_str("PRAGMA user_version = 7; COMMIT;");
    conn.execute_batch(&sql)
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

#[cfg(test)]
mod tests {
    use super::super::tests::{record, session};
    use super::super::*;
    use crate::experiment::{COST_KEY, RUNS_KEY, Status, TOKENS_IN_KEY};

    fn raw(j: &Journal, id: i64) -> (String, Option<f64>, Option<f64>) {
        j.conn
            .query_row(
                "SELECT metrics, cost_usd, runs FROM experiments WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
    }

    #[test]
    fn the_tools_numbers_go_to_typed_columns_and_come_back_in_the_map() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let sid = j.create_session(&session("t")).unwrap();
        let mut r = record(1, Status::Keep, Some(0.99));
        r.metrics.insert(COST_KEY.into(), 0.98);
        r.metrics.insert(RUNS_KEY.into(), 3.0);
        r.id = j.insert(sid, &r).unwrap();
        let (json, cost, runs) = raw(&j, r.id);
        assert_eq!(json, r#"{"num_steps":10.0}"#);
        assert_eq!((cost, runs), (Some(0.98), Some(3.0)));
        assert_eq!(j.experiments(sid).unwrap(), vec![r]);
    }

    #[test]
    fn a_v6_journal_moves_the_tools_numbers_out_of_its_metrics_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        let j = Journal::open(&path).unwrap();
        let sid = j.create_session(&session("t")).unwrap();
        let id = j.insert(sid, &record(1, Status::Keep, Some(0.99))).unwrap();
        // As release v6 wrote it: no typed columns, the numbers in the JSON.
        j.conn
            .execute_batch(&format!(
                "UPDATE experiments SET metrics = '{{\"num_steps\": 10.0, \"{COST_KEY}\": 0.5, \"{TOKENS_IN_KEY}\": 900}}' WHERE id = {id};
                 ALTER TABLE experiments DROP COLUMN cost_usd;
                 ALTER TABLE experiments DROP COLUMN tokens_in;
                 PRAGMA user_version = 6;"
            ))
            .unwrap();
        drop(j);
        let j = Journal::open(&path).unwrap();
        let version: i64 = j
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let (json, cost, _) = raw(&j, id);
        assert_eq!(json, r#"{"num_steps":10.0}"#);
        assert_eq!(cost, Some(0.5));
        let back = &j.experiments(sid).unwrap()[0];
        assert_eq!(back.metrics[COST_KEY], 0.5);
        assert_eq!(back.metrics[TOKENS_IN_KEY], 900.0);
        assert_eq!(back.metrics["num_steps"], 10.0);
    }
}
