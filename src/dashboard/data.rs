//! The dashboard's reads of the journal: one read-only SQLite connection per request or
//! stream, only the tables and columns that schema versions 1 and 2 have. Never writes.

use super::{DashboardError, MIN_SCHEMA};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A read-only view of one journal.
pub struct Reader {
    conn: Connection,
    path: PathBuf,
    /// `PRAGMA user_version` when opened: 2 and later record where each run ran; 7 and
    /// later keep the tool's own numbers in typed columns.
    version: i64,
}

/// One session as the list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionRef {
    pub id: i64,
    pub tag: String,
    pub branch: String,
    pub started_at: String,
    pub metric: String,
    pub direction: String,
    pub experiments: i64,
}

/// A session's full row.
#[derive(Debug, Clone)]
pub struct SessionFull {
    pub summary: SessionRef,
    pub base_branch: String,
    pub base_commit: String,
    pub platform: String,
    pub config: String,
}

/// One experiment as the chart and the table need it (no reason, no metrics map).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub id: i64,
    pub iteration: i64,
    pub attempt: i64,
    pub status: String,
    pub metric: Option<f64>,
    pub description: String,
    pub category: String,
    pub proposer: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_s: Option<f64>,
    /// The worker of its first run (schema 2 and later), if it ran.
    pub worker: Option<i64>,
}

/// One experiment in full.
#[derive(Debug, Clone)]
pub struct Full {
    pub row: Row,
    pub session_id: i64,
    pub parent: String,
    pub commit: String,
    pub metrics: Value,
    pub memory_gb: Option<f64>,
    pub reason: String,
    pub log_path: Option<String>,
}

/// One run of an experiment's code.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub seed: i64,
    pub value: Option<f64>,
    pub log_path: Option<String>,
    pub at: String,
    pub worker: Option<i64>,
    pub device: Option<String>,
    pub host: Option<String>,
    pub duration_s: Option<f64>,
}

const SESSION_COLS: &str = "s.id, s.tag, s.branch, s.started_at, s.metric, s.direction, \
    (SELECT COUNT(*) FROM experiments e WHERE e.session_id = s.id), \
    s.base_branch, s.base_commit, s.platform, s.config";

const ROW_COLS: &str = "id, iteration, attempt, status, metric, description, category, proposer, \
    started_at, finished_at, duration_s";

impl Reader {
    /// Opens the journal at `path` read-only; refuses a schema older than [`MIN_SCHEMA`].
    pub fn open(path: &Path) -> Result<Reader, DashboardError> {
        if !path.exists() {
            return Err(DashboardError::NoJournal(path.to_path_buf()));
        }
        let err = |source| DashboardError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        // A journal written before versions were recorded has 0 and wave 1's tables.
        let has_sessions: bool = conn
            .query_row(
                "SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = 'sessions'",
                [],
                |r| r.get(0),
            )
            .map_err(err)?;
        if version < MIN_SCHEMA && !has_sessions {
            return Err(DashboardError::OldSchema {
                path: path.to_path_buf(),
                found: version,
            });
        }
        Ok(Reader {
            conn,
            path: path.to_path_buf(),
            version,
        })
    }

    fn err(&self, source: rusqlite::Error) -> DashboardError {
        DashboardError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Changes whenever another connection commits (SQLite's `data_version`).
    pub fn data_version(&self) -> Result<i64, DashboardError> {
        self.conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Every session, newest first.
    pub fn sessions(&self) -> Result<Vec<SessionRef>, DashboardError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {SESSION_COLS} FROM sessions s ORDER BY s.id DESC"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok(session_from(r)?.summary))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The tagged session (`nov23` or `autoresearch/nov23`), or the latest with `None`.
    pub fn session(&self, tag: Option<&str>) -> Result<Option<SessionFull>, DashboardError> {
        let q = |sql: &str, p: &[&dyn rusqlite::ToSql]| {
            self.conn
                .query_row(sql, p, session_from)
                .optional()
                .map_err(|e| self.err(e))
        };
        match tag {
            Some(t) => {
                let t = t.strip_prefix("autoresearch/").unwrap_or(t);
                q(
                    &format!("SELECT {SESSION_COLS} FROM sessions s WHERE s.tag = ?1"),
                    &[&t],
                )
            }
            None => q(
                &format!("SELECT {SESSION_COLS} FROM sessions s ORDER BY s.id DESC LIMIT 1"),
                &[],
            ),
        }
    }

    /// The worker of each experiment's first run, where the schema records it.
    fn workers(&self, session_id: i64) -> Result<HashMap<i64, i64>, DashboardError> {
        if self.version < 2 {
            return Ok(HashMap::new());
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT m.experiment_id, MIN(m.worker) FROM measurements m \
                 JOIN experiments e ON e.id = m.experiment_id \
                 WHERE e.session_id = ?1 AND m.worker IS NOT NULL GROUP BY m.experiment_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([session_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// A session's experiments with an id above `since`, oldest first.
    pub fn rows(&self, session_id: i64, since: i64) -> Result<Vec<Row>, DashboardError> {
        let workers = self.workers(session_id)?;
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {ROW_COLS} FROM experiments WHERE session_id = ?1 AND id > ?2 ORDER BY id"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![session_id, since], row_from)
            .map_err(|e| self.err(e))?;
        let mut out: Vec<Row> = rows.collect::<Result<_, _>>().map_err(|e| self.err(e))?;
        for r in &mut out {
            r.worker = workers.get(&r.id).copied();
        }
        Ok(out)
    }

    /// One experiment, whichever session it belongs to.
    pub fn experiment(&self, id: i64) -> Result<Option<Full>, DashboardError> {
        // From version 7 the tool's own numbers (cost, tokens, runs…) have typed columns;
        // the detail shows them with the script's, as before.
        let typed = if self.version >= 7 {
            format!(", {}", crate::experiment::typed_columns())
        } else {
            String::new()
        };
        let found = self
            .conn
            .query_row(
                &format!(
                    "SELECT {ROW_COLS}, session_id, parent, commit_sha, metrics, memory_gb, reason, \
                     log_path{typed} FROM experiments WHERE id = ?1"
                ),
                [id],
                |r| {
                    let mut metrics: Value =
                        serde_json::from_str(&r.get::<_, String>(14)?).unwrap_or_else(|_| json!({}));
                    if !typed.is_empty() {
                        if let Some(m) = metrics.as_object_mut() {
                            for (i, (key, _)) in crate::experiment::TYPED_KEYS.iter().enumerate() {
                                if let Some(v) = r.get::<_, Option<f64>>(18 + i)? {
                                    m.insert((*key).to_string(), json!(v));
                                }
                            }
                        }
                    }
                    Ok(Full {
                        row: row_from(r)?,
                        session_id: r.get(11)?,
                        parent: r.get(12)?,
                        commit: r.get(13)?,
                        metrics,
                        memory_gb: r.get(15)?,
                        reason: r.get(16)?,
                        log_path: r.get(17)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some(mut full) = found else {
            return Ok(None);
        };
        full.row.worker = self.runs(id)?.iter().find_map(|r| r.worker);
        Ok(Some(full))
    }

    /// The first experiment of a session with this commit (an experiment's parent).
    pub fn id_of_commit(
        &self,
        session_id: i64,
        commit: &str,
    ) -> Result<Option<i64>, DashboardError> {
        self.conn
            .query_row(
                "SELECT id FROM experiments WHERE session_id = ?1 AND commit_sha = ?2 ORDER BY id LIMIT 1",
                params![session_id, commit],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// A session by its id.
    pub fn session_by_id(&self, id: i64) -> Result<Option<SessionFull>, DashboardError> {
        self.conn
            .query_row(
                &format!("SELECT {SESSION_COLS} FROM sessions s WHERE s.id = ?1"),
                [id],
                session_from,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The runs (seeded measurements) of one experiment, oldest first.
    pub fn runs(&self, experiment_id: i64) -> Result<Vec<Run>, DashboardError> {
        let placed = self.version >= 2;
        let sql = if placed {
            "SELECT seed, value, log_path, at, worker, device, host, duration_s FROM measurements \
             WHERE experiment_id = ?1 ORDER BY id"
        } else {
            "SELECT seed, value, log_path, at, NULL, NULL, NULL, NULL FROM measurements \
             WHERE experiment_id = ?1 ORDER BY id"
        };
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([experiment_id], |r| {
                Ok(Run {
                    seed: r.get(0)?,
                    value: r.get(1)?,
                    log_path: r.get(2)?,
                    at: r.get(3)?,
                    worker: r.get(4)?,
                    device: r.get(5)?,
                    host: r.get(6)?,
                    duration_s: r.get(7)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Values of every measurement of a session, grouped by experiment (the noise model's
    /// input).
    pub fn measurement_groups(&self, session_id: i64) -> Result<Vec<Vec<f64>>, DashboardError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT m.experiment_id, m.value FROM measurements m \
                 JOIN experiments e ON e.id = m.experiment_id \
                 WHERE e.session_id = ?1 AND m.value IS NOT NULL ORDER BY m.id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([session_id], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?))
            })
            .map_err(|e| self.err(e))?;
        let mut groups: std::collections::BTreeMap<i64, Vec<f64>> = Default::default();
        for row in rows {
            let (id, v) = row.map_err(|e| self.err(e))?;
            groups.entry(id).or_default().push(v);
        }
        Ok(groups.into_values().collect())
    }

    /// Is `rel` (as the journal wrote it) the log of some run of this session?
    pub fn is_session_log(&self, session_id: i64, rel: &str) -> Result<bool, DashboardError> {
        self.conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM experiments WHERE session_id = ?1 AND log_path = ?2) \
                 OR EXISTS(SELECT 1 FROM measurements m JOIN experiments e ON e.id = m.experiment_id \
                 WHERE e.session_id = ?1 AND m.log_path = ?2)",
                params![session_id, rel],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }
}

fn session_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionFull> {
    Ok(SessionFull {
        summary: SessionRef {
            id: r.get(0)?,
            tag: r.get(1)?,
            branch: r.get(2)?,
            started_at: r.get(3)?,
            metric: r.get(4)?,
            direction: r.get(5)?,
            experiments: r.get(6)?,
        },
        base_branch: r.get(7)?,
        base_commit: r.get(8)?,
        platform: r.get(9)?,
        config: r.get(10)?,
    })
}

fn row_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        iteration: r.get(1)?,
        attempt: r.get(2)?,
        status: r.get(3)?,
        metric: r.get::<_, Option<f64>>(4)?.filter(|v| v.is_finite()),
        description: crate::text::clean(&r.get::<_, String>(5)?),
        category: r.get(6)?,
        proposer: r.get(7)?,
        started_at: r.get(8)?,
        finished_at: r.get(9)?,
        duration_s: r.get(10)?,
        worker: None,
    })
}
