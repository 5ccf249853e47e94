//! What a session was actually run with (the budget in force, the experiment limit, the
//! hypothesis), as the journal keeps it: the config file may say otherwise (`demo` sets its
//! own budget, `--iterations` its own limit), and the reports must say what happened.

use super::{Journal, StoreError};
use rusqlite::{OptionalExtension, params};

/// The settings in force for a session's latest invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSettings {
    /// The training budget per run, in seconds.
    pub budget_s: f64,
    pub timeout_s: f64,
    /// Experiments on record at which the session stops (`max_iterations`, or the
    /// experiments before this invocation plus `--iterations`); None: until stopped.
    pub iteration_limit: Option<u64>,
    /// The user's hypothesis for the proposer (`run --hypothesis`), if any.
    pub hypothesis: Option<String>,
    /// Where the editable script pins its own seed (`train.py:12 torch.manual_seed(42)`):
    /// then repeated runs are one seed and their spread is not a noise estimate.
    pub fixed_seed: Option<String>,
    /// The training command as run (the demo's own Python, not the example's file).
    pub command: Option<String>,
}

/// Columns added to `session_settings` after it first shipped, with their SQL type.
const LATER_COLUMNS: &[(&str, &str)] = &[("fixed_seed", "TEXT"), ("command", "TEXT")];

/// Adds what a journal written by an earlier build of this table lacks (writable opens).
pub(super) fn upgrade(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let have = super::journal::table_columns(conn, "session_settings")?;
    for (name, ty) in LATER_COLUMNS {
        if !have.iter().any(|c| c == name) {
            conn.execute_batch(&format!(
                "ALTER TABLE session_settings ADD COLUMN {name} {ty}"
            ))?;
        }
    }
    Ok(())
}

impl Journal {
    /// Records the settings of the invocation starting now (replacing the last one's).
    pub fn set_settings(
        &self,
        session_id: i64,
        s: &SessionSettings,
        at: &str,
    ) -> Result<(), StoreError> {
        let limit = s
            .iteration_limit
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        self.conn
            .execute(
                "INSERT INTO session_settings
                   (session_id, budget_s, timeout_s, iteration_limit, hypothesis, fixed_seed,
                    command, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(session_id) DO UPDATE SET budget_s = ?2, timeout_s = ?3,
                   iteration_limit = ?4, hypothesis = COALESCE(?5, hypothesis),
                   fixed_seed = ?6, command = ?7, updated_at = ?8",
                params![
                    session_id,
                    s.budget_s,
                    s.timeout_s,
                    limit,
                    s.hypothesis,
                    s.fixed_seed,
                    s.command,
                    at
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The settings recorded for a session; None for a session started by a release that
    /// did not record them (the table may not exist in a journal opened read-only).
    pub fn settings(&self, session_id: i64) -> Result<Option<SessionSettings>, StoreError> {
        let has_table: bool = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'session_settings'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))?;
        if !has_table {
            return Ok(None);
        }
        // A journal opened read-only may predate a column: read it as absent.
        let have = super::journal::table_columns(&self.conn, "session_settings")
            .map_err(|e| self.err(e))?;
        let col = |name: &str| {
            if have.iter().any(|c| c == name) {
                name.to_string()
            } else {
                "NULL".to_string()
            }
        };
        self.conn
            .query_row(
                &format!(
                    "SELECT budget_s, timeout_s, iteration_limit, hypothesis, {}, {}
                     FROM session_settings WHERE session_id = ?1",
                    col("fixed_seed"),
                    col("command")
                ),
                [session_id],
                |r| {
                    let limit: Option<i64> = r.get(2)?;
                    Ok(SessionSettings {
                        budget_s: r.get(0)?,
                        timeout_s: r.get(1)?,
                        iteration_limit: limit.map(|n| u64::try_from(n).unwrap_or(0)),
                        hypothesis: r.get(3)?,
                        fixed_seed: r.get(4)?,
                        command: r.get(5)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_a_resume_keeps_the_hypothesis() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let row = crate::store::SessionRow {
            id: 0,
            tag: "t".into(),
            branch: "autoresearch/t".into(),
            base_branch: "main".into(),
            base_commit: "abc".into(),
            started_at: "t".into(),
            metric: "val_bpb".into(),
            direction: "minimize".into(),
            platform: "{}".into(),
            config: String::new(),
            read_only_hashes: "{}".into(),
        };
        let id = j.create_session(&row).unwrap();
        assert_eq!(j.settings(id).unwrap(), None);
        let first = SessionSettings {
            budget_s: 5.0,
            timeout_s: 70.0,
            iteration_limit: Some(4),
            hypothesis: Some("wider MLP helps".into()),
            fixed_seed: Some("train.py:3 torch.manual_seed(42)".into()),
            command: Some("uv run train.py".into()),
        };
        j.set_settings(id, &first, "t1").unwrap();
        assert_eq!(j.settings(id).unwrap().as_ref(), Some(&first));
        let resumed = SessionSettings {
            iteration_limit: None,
            hypothesis: None,
            ..first.clone()
        };
        j.set_settings(id, &resumed, "t2").unwrap();
        let got = j.settings(id).unwrap().unwrap();
        assert_eq!(got.iteration_limit, None);
        assert_eq!(got.hypothesis.as_deref(), Some("wider MLP helps"));
    }

    #[test]
    fn a_table_from_an_earlier_build_is_read_and_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        {
            let j = Journal::open(&path).unwrap();
            j.conn
                .execute_batch(
                    "DROP TABLE session_settings;
                     CREATE TABLE session_settings (session_id INTEGER PRIMARY KEY,
                       budget_s REAL NOT NULL, timeout_s REAL NOT NULL, iteration_limit INTEGER,
                       hypothesis TEXT, updated_at TEXT NOT NULL);
                     INSERT INTO session_settings VALUES (1, 5.0, 70.0, 4, NULL, 't');",
                )
                .unwrap();
        }
        let ro = Journal::open_readonly(&path).unwrap();
        let got = ro.settings(1).unwrap().unwrap();
        assert_eq!(
            (got.iteration_limit, got.command.as_deref()),
            (Some(4), None)
        );
        drop(ro);
        let j = Journal::open(&path).unwrap();
        let mut s = got.clone();
        s.command = Some("python train.py".into());
        j.set_settings(1, &s, "t2").unwrap();
        assert_eq!(
            j.settings(1).unwrap().unwrap().command.as_deref(),
            Some("python train.py")
        );
    }
}
