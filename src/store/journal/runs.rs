//! Where the runs ran, for the per-worker report: each measured run's worker, device,
//! end time, seconds of training and seconds in the scheduler's queue.

use super::Journal;
use crate::store::StoreError;
use rusqlite::params;

/// One run of the engine as the journal keeps it (runs of earlier releases have no worker).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRun {
    pub worker: usize,
    pub device: String,
    /// When it was recorded (RFC 3339, seconds).
    pub at: String,
    pub duration_s: f64,
    pub queue_s: Option<f64>,
}

impl Journal {
    /// The session's runs that a worker ran, oldest first.
    pub fn worker_runs(&self, session_id: i64) -> Result<Vec<WorkerRun>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT m.worker, COALESCE(m.device, ''), m.at, COALESCE(m.duration_s, 0), m.queue_s
                 FROM measurements m JOIN experiments e ON e.id = m.experiment_id
                 WHERE e.session_id = ?1 AND m.worker IS NOT NULL ORDER BY m.id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![session_id], |r| {
                Ok(WorkerRun {
                    worker: r.get::<_, i64>(0)?.max(0) as usize,
                    device: r.get(1)?,
                    at: r.get(2)?,
                    duration_s: r.get(3)?,
                    queue_s: r.get(4)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}
