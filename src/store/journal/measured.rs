//! A session's measurements as read back, kept in memory: rows are only ever appended
//! (in id order, one writer at a time), so each read asks the file only for the rows
//! since the last one. Reading all 10,000 of a long session's runs after every
//! experiment made the harness's work per experiment grow with the journal, and so did
//! copying them all out: a read shares them (a copy is made only when a row arrives while
//! an earlier read is still held).

use super::{Journal, Measurement, StoreError};

/// What one session's reads have brought back so far.
pub(crate) struct Cache {
    session_id: i64,
    /// The highest measurement id read.
    last_id: i64,
    rows: std::sync::Arc<Vec<Measurement>>,
}

impl Journal {
    /// Measurements of a session's experiments, oldest first.
    pub fn measurements(
        &self,
        session_id: i64,
    ) -> Result<std::sync::Arc<Vec<Measurement>>, StoreError> {
        let mut cache = self.measured.borrow_mut();
        let c = match &mut *cache {
            Some(c) if c.session_id == session_id => c,
            slot => slot.insert(Cache {
                session_id,
                last_id: 0,
                rows: Default::default(),
            }),
        };
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT m.id, m.experiment_id, m.seed, m.value, m.log_path, m.job_id, m.queue_s FROM measurements m
                 JOIN experiments e ON e.id = m.experiment_id
                 WHERE e.session_id = ?1 AND m.id > ?2 ORDER BY m.id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([session_id, c.last_id], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    Measurement {
                        experiment_id: row.get(1)?,
                        seed: row.get::<_, i64>(2)? as u64,
                        value: row.get(3)?,
                        log_path: row.get(4)?,
                        job_id: row.get(5)?,
                        queue_s: row.get(6)?,
                    },
                ))
            })
            .map_err(|e| self.err(e))?;
        for row in rows {
            let (id, m) = row.map_err(|e| self.err(e))?;
            c.last_id = c.last_id.max(id);
            std::sync::Arc::make_mut(&mut c.rows).push(m);
        }
        Ok(c.rows.clone())
    }
}
