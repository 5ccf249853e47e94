//! The SQLite journal at `.autoresearch/journal.sqlite`: sessions, experiments and every
//! measurement. Write-ahead logging so a dashboard or `autoresearch status` can read while
//! a session writes; each write is its own transaction so a killed session loses nothing
//! that was finalised.

mod calls;
mod curves;
mod measured;
mod migrate;
mod runs;

pub use runs::WorkerRun;

pub use calls::{CallCounts, CallRow};
pub use curves::CurveRow;

use super::StoreError;
use crate::experiment::{Category, ExperimentRecord, Status};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SCHEMA: &str = r"
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tag TEXT NOT NULL UNIQUE,
    branch TEXT NOT NULL,
    base_branch TEXT NOT NULL,
    base_commit TEXT NOT NULL,
    started_at TEXT NOT NULL,
    metric TEXT NOT NULL,
    direction TEXT NOT NULL,
    platform TEXT NOT NULL,
    config TEXT NOT NULL,
    read_only_hashes TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS experiments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    iteration INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    parent TEXT NOT NULL,
    commit_sha TEXT NOT NULL,
    status TEXT NOT NULL,
    metric REAL,
    metrics TEXT NOT NULL,
    memory_gb REAL,
    description TEXT NOT NULL,
    category TEXT NOT NULL,
    proposer TEXT NOT NULL,
    reason TEXT NOT NULL,
    log_path TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    duration_s REAL,
    state_hash TEXT NOT NULL,
    cost_usd REAL,
    tokens_in REAL,
    tokens_out REAL,
    runs REAL,
    sd REAL,
    batch_scale REAL
);
CREATE INDEX IF NOT EXISTS experiments_session ON experiments(session_id, id);
CREATE TABLE IF NOT EXISTS session_settings (
    session_id INTEGER PRIMARY KEY REFERENCES sessions(id),
    budget_s REAL NOT NULL,
    timeout_s REAL NOT NULL,
    iteration_limit INTEGER,
    hypothesis TEXT,
    fixed_seed TEXT,
    command TEXT,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    seed INTEGER NOT NULL,
    value REAL,
    log_path TEXT,
    at TEXT NOT NULL
);
";

/// The schema version this build writes (`PRAGMA user_version`). 1: wave 1's tables;
/// 2: where each run ran (worker, device, host) and how long it took; 3: every LLM call
/// (`llm_calls`); 4: each run's scheduler job id; 5: each run's time in the scheduler's
/// queue; 6: each run's training curve (`curves`).
pub const SCHEMA_VERSION: i64 = 7;

/// The column names of `table`.
pub(super) fn table_columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = stmt.query_map([], |r| r.get::<_, String>(1))?;
    names.collect()
}

/// Where and how long one run ran.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlace {
    /// 1-based worker number.
    pub worker: usize,
    /// The device's name (`NVIDIA H100 80GB HBM3 #0`, `cpu`).
    pub device: String,
    pub host: String,
    pub duration_s: f64,
}

/// One session as the journal keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub id: i64,
    pub tag: String,
    pub branch: String,
    /// The branch the session started from (merge target).
    pub base_branch: String,
    pub base_commit: String,
    pub started_at: String,
    pub metric: String,
    pub direction: String,
    /// `Platform` as JSON.
    pub platform: String,
    /// The config file's text at the start.
    pub config: String,
    /// JSON map path → sha256 of the read-only files at the start.
    pub read_only_hashes: String,
}

/// One run of one experiment's code with one seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub experiment_id: i64,
    pub seed: u64,
    pub value: Option<f64>,
    pub log_path: Option<String>,
    /// The scheduler's id for the run (a Slurm job id), where it had one.
    pub job_id: Option<String>,
    /// Seconds it waited in the scheduler's queue, where it had one.
    pub queue_s: Option<f64>,
}

pub struct Journal {
    pub(super) conn: Connection,
    path: PathBuf,
    /// The file's (device, inode) when it was opened for writing: a journal deleted or
    /// replaced behind the session's back is noticed by [`Journal::check_in_place`].
    identity: Option<(u64, u64)>,
    /// The measurements of one session read so far (see [`measured`]).
    measured: std::cell::RefCell<Option<measured::Cache>>,
}

/// (device, inode) of a file, where the platform has them.
fn identity_of(path: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).ok().map(|_| (0, 0))
    }
}

impl Journal {
    /// Opens (creating if needed) the journal for writing.
    pub fn open(path: &Path) -> Result<Journal, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Write {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let err = |source| StoreError::sqlite(path, source);
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        migrate::migrate(&conn).map_err(err)?;
        super::settings::upgrade(&conn).map_err(err)?;
        Ok(Journal {
            conn,
            path: path.to_path_buf(),
            identity: identity_of(path),
            measured: Default::default(),
        })
    }

    /// Opens an existing journal read-only (status, reports, a dashboard).
    pub fn open_readonly(path: &Path) -> Result<Journal, StoreError> {
        let err = |source| StoreError::sqlite(path, source);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        Ok(Journal {
            conn,
            path: path.to_path_buf(),
            identity: None,
            measured: Default::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fails when the journal file is no longer the one this session opened (deleted,
    /// renamed or replaced), after saving everything the open connection still holds to a
    /// file beside it, so nothing recorded is lost.
    pub fn check_in_place(&self) -> Result<(), StoreError> {
        let Some(opened) = self.identity else {
            return Ok(());
        };
        let what = match identity_of(&self.path) {
            Some(now) if now == opened => return Ok(()),
            Some(_) => "replaced",
            None => "deleted",
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let _ = std::fs::create_dir_all(dir);
        let saved = dir.join(format!(
            "journal.rescued-{}.sqlite",
            chrono::Local::now().format("%Y%m%d-%H%M%S")
        ));
        self.conn
            .execute("VACUUM INTO ?1", [saved.to_string_lossy().as_ref()])
            .map_err(|e| StoreError::sqlite(&saved, e))?;
        Err(StoreError::Replaced {
            path: self.path.clone(),
            what,
            saved,
        })
    }

    pub(super) fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::sqlite(&self.path, source)
    }

    /// Creates a session row and returns its id.
    pub fn create_session(&self, s: &SessionRow) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO sessions (tag, branch, base_branch, base_commit, started_at, metric,
                 direction, platform, config, read_only_hashes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    s.tag,
                    s.branch,
                    s.base_branch,
                    s.base_commit,
                    s.started_at,
                    s.metric,
                    s.direction,
                    s.platform,
                    s.config,
                    s.read_only_hashes
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    fn session_from_row(row: &Row<'_>) -> rusqlite::Result<SessionRow> {
        Ok(SessionRow {
            id: row.get(0)?,
            tag: row.get(1)?,
            branch: row.get(2)?,
            base_branch: row.get(3)?,
            base_commit: row.get(4)?,
            started_at: row.get(5)?,
            metric: row.get(6)?,
            direction: row.get(7)?,
            platform: row.get(8)?,
            config: row.get(9)?,
            read_only_hashes: row.get(10)?,
        })
    }

    const SESSION_COLS: &'static str = "id, tag, branch, base_branch, base_commit, started_at, metric, direction, platform, config, read_only_hashes";

    pub fn session_by_tag(&self, tag: &str) -> Result<Option<SessionRow>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {} FROM sessions WHERE tag = ?1", Self::SESSION_COLS),
                [tag],
                Self::session_from_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The most recently started session.
    pub fn latest_session(&self) -> Result<Option<SessionRow>, StoreError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {} FROM sessions ORDER BY id DESC LIMIT 1",
                    Self::SESSION_COLS
                ),
                [],
                Self::session_from_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Inserts an experiment (normally with status `running`) and returns its id.
    pub fn insert(&self, session_id: i64, r: &ExperimentRecord) -> Result<i64, StoreError> {
        self.conn
            .execute(
                &format!(
                    "INSERT INTO experiments (session_id, {}) VALUES (?1, {})",
                    record_cols(),
                    (2..=record_cols().split(", ").count() + 1)
                        .map(|i| format!("?{i}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                rusqlite::params_from_iter(
                    std::iter::once(rusqlite::types::Value::Integer(session_id))
                        .chain(record_values(r)),
                ),
            )
            .map_err(|e| self.err(e))?;
        let id = self.conn.last_insert_rowid();
        crate::chaos::point("journal_insert");
        Ok(id)
    }

    /// Rewrites every field of experiment `r.id`.
    pub fn update(&self, r: &ExperimentRecord) -> Result<(), StoreError> {
        let sets: Vec<String> = record_cols()
            .split(", ")
            .enumerate()
            .map(|(i, col)| format!("{col}=?{}", i + 2))
            .collect();
        self.conn
            .execute(
                &format!("UPDATE experiments SET {} WHERE id=?1", sets.join(", ")),
                rusqlite::params_from_iter(
                    std::iter::once(rusqlite::types::Value::Integer(r.id)).chain(record_values(r)),
                ),
            )
            .map_err(|e| self.err(e))?;
        crate::chaos::point("journal_update");
        Ok(())
    }

    /// Every experiment of a session, oldest first.
    pub fn experiments(&self, session_id: i64) -> Result<Vec<ExperimentRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT id, iteration, attempt, parent, commit_sha, status, metric, metrics, memory_gb,
                 description, category, proposer, reason, log_path, started_at, finished_at,
                 duration_s, state_hash, {}
                 FROM experiments WHERE session_id = ?1 ORDER BY id",
                crate::experiment::typed_columns()
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([session_id], |row| {
                let status: String = row.get(5)?;
                let category: String = row.get(10)?;
                let mut metrics: BTreeMap<String, f64> =
                    serde_json::from_str(&row.get::<_, String>(7)?).unwrap_or_default();
                for (i, (key, _)) in crate::experiment::TYPED_KEYS.iter().enumerate() {
                    if let Some(v) = row.get::<_, Option<f64>>(18 + i)? {
                        metrics.insert((*key).to_string(), v);
                    }
                }
                Ok((
                    ExperimentRecord {
                        id: row.get(0)?,
                        iteration: row.get::<_, i64>(1)? as u64,
                        attempt: row.get(2)?,
                        parent: row.get(3)?,
                        commit: row.get(4)?,
                        status: Status::Running,
                        metric: row.get(6)?,
                        metrics: BTreeMap::new(),
                        memory_gb: row.get(8)?,
                        description: row.get(9)?,
                        category: Category::Other,
                        proposer: row.get(11)?,
                        reason: row.get(12)?,
                        log_path: row.get(13)?,
                        started_at: row.get(14)?,
                        finished_at: row.get(15)?,
                        duration_s: row.get(16)?,
                        state_hash: row.get(17)?,
                    },
                    status,
                    category,
                    metrics,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (mut r, status, category, metrics) = row.map_err(|e| self.err(e))?;
            r.status = Status::parse(&status).ok_or_else(|| StoreError::Corrupt {
                path: self.path.clone(),
                detail: format!("experiment {} has status {status:?}", r.id),
            })?;
            r.category = Category::parse(&category).unwrap_or(Category::Other);
            r.metrics = metrics;
            out.push(r);
        }
        Ok(out)
    }

    /// Records one seeded measurement of an experiment's code (where it ran unknown).
    pub fn add_measurement(&self, m: &Measurement) -> Result<(), StoreError> {
        self.insert_measurement(m, None)
    }

    /// Records one seeded measurement with where it ran.
    pub fn add_run(&self, m: &Measurement, place: &RunPlace) -> Result<(), StoreError> {
        self.insert_measurement(m, Some(place))
    }

    fn insert_measurement(
        &self,
        m: &Measurement,
        place: Option<&RunPlace>,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO measurements (experiment_id, seed, value, log_path, at, worker, device, host, duration_s, job_id, queue_s)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    m.experiment_id,
                    m.seed as i64,
                    finite(m.value),
                    m.log_path,
                    crate::session::now(),
                    place.map(|p| p.worker as i64),
                    place.map(|p| p.device.as_str()),
                    place.map(|p| p.host.as_str()),
                    place.map(|p| p.duration_s),
                    m.job_id,
                    finite(m.queue_s)
                ],
            )
            .map_err(|e| self.err(e))?;
        crate::chaos::point("measurement");
        Ok(())
    }
}

/// The experiment columns every write sets, in the order of [`record_values`].
fn record_cols() -> String {
    format!(
        "iteration, attempt, parent, commit_sha, status, metric, metrics, memory_gb, description, category, proposer, reason, log_path, started_at, finished_at, duration_s, state_hash, {}",
        crate::experiment::typed_columns()
    )
}

/// A record's values for [`record_cols`].
fn record_values(r: &ExperimentRecord) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value;
    let text = |s: &str| Value::Text(s.to_string());
    let opt_text = |s: &Option<String>| s.as_deref().map_or(Value::Null, text);
    let opt_real = |v: Option<f64>| v.map_or(Value::Null, Value::Real);
    let mut values = vec![
        Value::Integer(r.iteration as i64),
        Value::Integer(i64::from(r.attempt)),
        text(&r.parent),
        text(&r.commit),
        text(r.status.as_str()),
        opt_real(finite(r.metric)),
        text(&serde_json::to_string(&script_metrics(&r.metrics)).unwrap_or_else(|_| "{}".into())),
        opt_real(r.memory_gb),
        text(&r.description),
        text(r.category.as_str()),
        text(&r.proposer),
        text(&r.reason),
        opt_text(&r.log_path),
        text(&r.started_at),
        opt_text(&r.finished_at),
        opt_real(r.duration_s),
        text(&r.state_hash),
    ];
    values.extend(
        crate::experiment::TYPED_KEYS
            .iter()
            .map(|(key, _)| opt_real(finite(r.metrics.get(*key).copied()))),
    );
    values
}

/// The script's own numbers: `metrics` without the tool's, which have typed columns.
fn script_metrics(metrics: &BTreeMap<String, f64>) -> BTreeMap<&str, f64> {
    metrics
        .iter()
        .filter(|(k, _)| {
            !crate::experiment::TYPED_KEYS
                .iter()
                .any(|(key, _)| key == k)
        })
        .map(|(k, v)| (k.as_str(), *v))
        .collect()
}

/// SQLite stores NaN as NULL; keep that explicit.
fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn record(iteration: u64, status: Status, metric: Option<f64>) -> ExperimentRecord {
        ExperimentRecord {
            id: 0,
            iteration,
            attempt: 1,
            parent: "p".into(),
            commit: format!("c{iteration}"),
            status,
            metric,
            metrics: BTreeMap::from([("num_steps".into(), 10.0)]),
            memory_gb: Some(1.5),
            description: format!("exp {iteration}"),
            category: Category::Optimizer,
            proposer: "search".into(),
            reason: String::new(),
            log_path: None,
            started_at: "2026-11-23T00:00:00Z".into(),
            finished_at: None,
            duration_s: None,
            state_hash: format!("h{iteration}"),
        }
    }

    pub(crate) fn session(tag: &str) -> SessionRow {
        SessionRow {
            id: 0,
            tag: tag.into(),
            branch: format!("autoresearch/{tag}"),
            base_branch: "main".into(),
            base_commit: "abc".into(),
            started_at: "t".into(),
            metric: "val_bpb".into(),
            direction: "minimize".into(),
            platform: "{}".into(),
            config: String::new(),
            read_only_hashes: "{}".into(),
        }
    }

    #[test]
    fn round_trips_experiments_and_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let sid = j.create_session(&session("nov23")).unwrap();
        let mut r = record(1, Status::Running, None);
        r.id = j.insert(sid, &r).unwrap();
        r.status = Status::Keep;
        r.metric = Some(0.99);
        r.reason = "better".into();
        j.update(&r).unwrap();
        j.add_measurement(&Measurement {
            experiment_id: r.id,
            seed: 7,
            value: Some(0.99),
            log_path: None,
            job_id: None,
            queue_s: None,
        })
        .unwrap();
        let back = j.experiments(sid).unwrap();
        assert_eq!(back, vec![r.clone()]);
        assert_eq!(j.measurements(sid).unwrap()[0].seed, 7);
        assert_eq!(j.session_by_tag("nov23").unwrap().unwrap().id, sid);
        assert!(j.session_by_tag("other").unwrap().is_none());
        // A reader sees the writer's rows while the writer holds the file open (WAL).
        let reader = Journal::open_readonly(j.path()).unwrap();
        assert_eq!(reader.experiments(sid).unwrap().len(), 1);
    }

    #[test]
    fn nan_metric_is_stored_as_null() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let sid = j.create_session(&session("t")).unwrap();
        let r = record(1, Status::Crash, Some(f64::NAN));
        j.insert(sid, &r).unwrap();
        assert_eq!(j.experiments(sid).unwrap()[0].metric, None);
    }
}
