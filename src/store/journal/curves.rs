//! The `curves` table (schema v6): each run's training curve, sampled (at most
//! `decision::curve::MAX_POINTS` points), and where it was pruned. Writes what it is given;
//! the pruning rule reads it back with each run's final value and code.

use super::Journal;
use crate::decision::curve::Curve;
use crate::store::StoreError;
use rusqlite::params;

/// The v6 step of the migration.
pub(super) const CREATE: &str = "
CREATE TABLE IF NOT EXISTS curves (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    seed INTEGER NOT NULL,
    points TEXT NOT NULL,
    pruned_at REAL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS curves_experiment ON curves(experiment_id, seed);
";

/// One run's curve as the journal keeps it, with what the rule needs beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveRow {
    pub experiment_id: i64,
    pub seed: u64,
    pub curve: Curve,
    /// The fraction of the budget where it was pruned.
    pub pruned_at: Option<f64>,
    /// The run's final value (its measurement), where it had one.
    pub value: Option<f64>,
    /// The experiment's state hash (which code ran).
    pub state_hash: String,
}

impl Journal {
    /// Records the curve of one run of experiment `experiment_id` on `seed`.
    pub fn add_curve(
        &self,
        experiment_id: i64,
        seed: u64,
        curve: &Curve,
        pruned_at: Option<f64>,
    ) -> Result<(), StoreError> {
        let points = serde_json::to_string(&curve.points).unwrap_or_else(|_| "[]".into());
        self.conn
            .execute(
                "INSERT INTO curves (experiment_id, seed, points, pruned_at, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    experiment_id,
                    seed as i64,
                    points,
                    pruned_at,
                    crate::session::now()
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every curve of session `session_id`, in the order the runs ended, with the final
    /// value of the same run (its measurement) and the code it ran.
    pub fn curves(&self, session_id: i64) -> Result<Vec<CurveRow>, StoreError> {
        let mut out = Vec::new();
        self.each_curve(session_id, false, |r| {
            out.push(r);
            true
        })?;
        Ok(out)
    }

    /// The newest `max` curves of session `session_id` that `keep` accepts, oldest first:
    /// what the pruning rule's reference holds (it keeps the latest few hundred), read
    /// without going through all of a long session's curves before every run.
    pub fn latest_curves(
        &self,
        session_id: i64,
        max: usize,
        mut keep: impl FnMut(&CurveRow) -> bool,
    ) -> Result<Vec<CurveRow>, StoreError> {
        let mut out = Vec::new();
        if max > 0 {
            self.each_curve(session_id, true, |r| {
                if keep(&r) {
                    out.push(r);
                }
                out.len() < max
            })?;
        }
        out.reverse();
        Ok(out)
    }

    /// Hands each curve of a session to `visit` (in the order the runs ended, or newest
    /// first) until it returns false; rows after that are never read.
    fn each_curve(
        &self,
        session_id: i64,
        newest_first: bool,
        mut visit: impl FnMut(CurveRow) -> bool,
    ) -> Result<(), StoreError> {
        let order = if newest_first { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT c.experiment_id, c.seed, c.points, c.pruned_at, e.state_hash,
               (SELECT m.value FROM measurements m
                 WHERE m.experiment_id = c.experiment_id AND m.seed = c.seed
                 ORDER BY m.id DESC LIMIT 1)
             FROM curves c JOIN experiments e ON e.id = c.experiment_id
             WHERE e.session_id = ?1 ORDER BY c.id {order}"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let mut rows = stmt.query([session_id]).map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let read = || -> rusqlite::Result<CurveRow> {
                let points: String = row.get(2)?;
                Ok(CurveRow {
                    experiment_id: row.get(0)?,
                    seed: row.get::<_, i64>(1)? as u64,
                    curve: Curve {
                        points: serde_json::from_str(&points).unwrap_or_default(),
                    },
                    pruned_at: row.get(3)?,
                    state_hash: row.get(4)?,
                    value: row.get(5)?,
                })
            };
            if !visit(read().map_err(|e| self.err(e))?) {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::Status;
    use crate::store::Measurement;

    #[test]
    fn a_curve_comes_back_with_its_runs_value_and_code() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let sid = j
            .create_session(&super::super::tests::session("t"))
            .unwrap();
        let mut rec = super::super::tests::record(1, Status::Running, None);
        rec.state_hash = "abc".into();
        let id = j.insert(sid, &rec).unwrap();
        let curve = Curve {
            points: vec![(0.1, 3.0), (0.5, 2.0)],
        };
        for (seed, value) in [(1, Some(1.5)), (2, None)] {
            j.add_measurement(&Measurement {
                experiment_id: id,
                seed,
                value,
                log_path: None,
                job_id: None,
                queue_s: None,
            })
            .unwrap();
        }
        j.add_curve(id, 1, &curve, None).unwrap();
        j.add_curve(id, 2, &curve, Some(0.5)).unwrap();
        let rows = j.curves(sid).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].curve, curve);
        assert_eq!((rows[0].value, rows[0].pruned_at), (Some(1.5), None));
        assert_eq!((rows[1].value, rows[1].pruned_at), (None, Some(0.5)));
        assert_eq!(rows[1].state_hash, "abc");
        assert!(j.curves(sid + 1).unwrap().is_empty());
    }

    #[test]
    fn the_latest_accepted_curves_are_those_of_all_curves_filtered_then_cut() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let sid = j
            .create_session(&super::super::tests::session("t"))
            .unwrap();
        for i in 1..=12 {
            let id = j
                .insert(sid, &super::super::tests::record(i, Status::Running, None))
                .unwrap();
            let curve = Curve {
                points: vec![(0.5, i as f64)],
            };
            // Every third run was pruned.
            let pruned = (i % 3 == 0).then_some(0.5);
            j.add_curve(id, 1, &curve, pruned).unwrap();
        }
        let keep = |c: &CurveRow| c.pruned_at.is_none();
        let all: Vec<CurveRow> = j.curves(sid).unwrap().into_iter().filter(keep).collect();
        let latest = j.latest_curves(sid, 5, keep).unwrap();
        assert_eq!(latest, all[all.len() - 5..]);
        let points =
            |rows: &[CurveRow]| -> Vec<f64> { rows.iter().map(|r| r.curve.points[0].1).collect() };
        assert_eq!(points(&latest), [5.0, 7.0, 8.0, 10.0, 11.0]);
        assert_eq!(j.latest_curves(sid, 100, keep).unwrap(), all);
        assert!(j.latest_curves(sid, 0, keep).unwrap().is_empty());
    }

    #[test]
    fn a_version_4_journal_gets_the_curves_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        drop(Journal::open(&path).unwrap());
        {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch("DROP TABLE curves; PRAGMA user_version = 4;")
                .unwrap();
        }
        let j = Journal::open(&path).unwrap();
        let v: i64 = j
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, crate::store::SCHEMA_VERSION);
        assert!(j.curves(1).unwrap().is_empty());
    }
}
