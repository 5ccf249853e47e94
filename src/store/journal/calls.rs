//! The `llm_calls` table (schema v3): every call an LLM proposer made, used, rejected or
//! failed, with its prompt, raw answer, duration, tokens, finish reason and cost. Writes
//! what it is given; never a key (the proposer's records hold none).

use super::Journal;
use crate::store::StoreError;
use rusqlite::params;

/// The v3 step of the migration.
pub(super) const CREATE: &str = "
CREATE TABLE IF NOT EXISTS llm_calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    iteration INTEGER NOT NULL,
    purpose TEXT NOT NULL,
    started_at TEXT NOT NULL,
    duration_s REAL NOT NULL,
    prompt TEXT NOT NULL,
    answer TEXT,
    finish_reason TEXT,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS llm_calls_session ON llm_calls(session_id, id);
";

/// One call as the journal keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRow {
    /// The experiment number it proposed (or tried to).
    pub iteration: u64,
    /// `propose`, `ask-again`, `shorter`, `repair`.
    pub purpose: String,
    pub started_at: String,
    pub duration_s: f64,
    pub prompt: String,
    pub answer: Option<String>,
    pub finish_reason: Option<String>,
    /// Prompt tokens, cached ones included.
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// `used`, `rejected` or `failed`.
    pub outcome: String,
    pub reason: String,
}

/// Counts over a session's calls, for `status`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallCounts {
    pub used: u64,
    pub rejected: u64,
    pub failed: u64,
    /// Answers that hit `max_tokens`.
    pub cut_off: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Time spent waiting for answers.
    pub seconds: f64,
}

impl CallCounts {
    pub fn total(&self) -> u64 {
        self.used + self.rejected + self.failed
    }
}

impl Journal {
    /// Records one call.
    pub fn add_call(&self, session_id: i64, c: &CallRow) -> Result<(), StoreError> {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.conn
            .execute(
                "INSERT INTO llm_calls (session_id, iteration, purpose, started_at, duration_s,
                 prompt, answer, finish_reason, input_tokens, output_tokens, cost_usd, outcome,
                 reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    session_id,
                    n(c.iteration),
                    c.purpose,
                    c.started_at,
                    c.duration_s,
                    c.prompt,
                    c.answer,
                    c.finish_reason,
                    n(c.input_tokens),
                    n(c.output_tokens),
                    if c.cost_usd.is_finite() {
                        c.cost_usd
                    } else {
                        0.0
                    },
                    c.outcome,
                    c.reason,
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every call of a session, oldest first.
    pub fn calls(&self, session_id: i64) -> Result<Vec<CallRow>, StoreError> {
        if !self.has_calls_table()? {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT iteration, purpose, started_at, duration_s, prompt, answer, finish_reason,
                 input_tokens, output_tokens, cost_usd, outcome, reason
                 FROM llm_calls WHERE session_id = ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([session_id], |r| {
                Ok(CallRow {
                    iteration: r.get::<_, i64>(0)?.max(0) as u64,
                    purpose: r.get(1)?,
                    started_at: r.get(2)?,
                    duration_s: r.get(3)?,
                    prompt: r.get(4)?,
                    answer: r.get(5)?,
                    finish_reason: r.get(6)?,
                    input_tokens: r.get::<_, i64>(7)?.max(0) as u64,
                    output_tokens: r.get::<_, i64>(8)?.max(0) as u64,
                    cost_usd: r.get(9)?,
                    outcome: r.get(10)?,
                    reason: r.get(11)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Counts of a session's calls (zero for a journal older than schema v3).
    pub fn call_counts(&self, session_id: i64) -> Result<CallCounts, StoreError> {
        if !self.has_calls_table()? {
            return Ok(CallCounts::default());
        }
        self.conn
            .query_row(
                "SELECT
                   COALESCE(SUM(outcome = 'used'), 0), COALESCE(SUM(outcome = 'rejected'), 0),
                   COALESCE(SUM(outcome = 'failed'), 0),
                   COALESCE(SUM(finish_reason IN ('length', 'max_tokens')), 0),
                   COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0),
                   COALESCE(SUM(duration_s), 0.0)
                 FROM llm_calls WHERE session_id = ?1",
                [session_id],
                |r| {
                    let u = |k: usize| r.get::<_, i64>(k).map(|v| v.max(0) as u64);
                    Ok(CallCounts {
                        used: u(0)?,
                        rejected: u(1)?,
                        failed: u(2)?,
                        cut_off: u(3)?,
                        input_tokens: u(4)?,
                        output_tokens: u(5)?,
                        seconds: r.get(6)?,
                    })
                },
            )
            .map_err(|e| self.err(e))
    }

    /// A read-only journal written by an older release may not have the table yet.
    fn has_calls_table(&self) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'llm_calls'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(outcome: &str, finish: Option<&str>) -> CallRow {
        CallRow {
            iteration: 1,
            purpose: "propose".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            duration_s: 1.5,
            prompt: "--- system ---\nrules".into(),
            answer: Some("no blocks".into()),
            finish_reason: finish.map(str::to_string),
            input_tokens: 900,
            output_tokens: 80,
            cost_usd: 0.0,
            outcome: outcome.into(),
            reason: String::new(),
        }
    }

    #[test]
    fn calls_round_trip_and_count() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let sid = j
            .create_session(&super::super::tests::session("t"))
            .unwrap();
        j.add_call(sid, &call("rejected", Some("length"))).unwrap();
        j.add_call(sid, &call("used", Some("stop"))).unwrap();
        j.add_call(sid, &call("failed", None)).unwrap();
        let rows = j.calls(sid).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], call("rejected", Some("length")));
        let c = j.call_counts(sid).unwrap();
        assert_eq!((c.used, c.rejected, c.failed, c.cut_off), (1, 1, 1, 1));
        assert_eq!((c.input_tokens, c.output_tokens), (2700, 240));
        assert!((c.seconds - 4.5).abs() < 1e-9);
        assert_eq!(c.total(), 3);
    }

    #[test]
    fn a_v2_journal_reads_as_no_calls_and_is_migrated_to_v3_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        let sid = {
            let j = Journal::open(&path).unwrap();
            j.create_session(&super::super::tests::session("t"))
                .unwrap()
        };
        {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch("DROP TABLE llm_calls; PRAGMA user_version = 2;")
                .unwrap();
        }
        // A reader of the older journal (status) sees no calls and no error.
        let old = Journal::open_readonly(&path).unwrap();
        assert_eq!(old.call_counts(sid).unwrap(), CallCounts::default());
        assert!(old.calls(sid).unwrap().is_empty());
        drop(old);
        // The writer migrates it in place.
        let j = Journal::open(&path).unwrap();
        let v: i64 = j
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, super::super::SCHEMA_VERSION);
        j.add_call(sid, &call("used", Some("stop"))).unwrap();
        assert_eq!(j.call_counts(sid).unwrap().used, 1);
    }
}
