//! Recording what a proposal came to: a rejection (with its reason), or a commit of the
//! editable files' new contents as an experiment, journaled as `running` before anything
//! changes. On the engine the commit is made on the best without a work tree.

use super::{Draft, Event, Session, SessionError, now};
use crate::agent::state_hash;
use crate::experiment::{Category, ExperimentRecord, Status};
use std::collections::BTreeMap;
use std::path::PathBuf;

impl Session<'_> {
    pub(crate) fn record_rejection(
        &mut self,
        iteration: u64,
        description: &str,
        category: Category,
        reason: &str,
        extra: BTreeMap<String, f64>,
    ) -> Result<(), SessionError> {
        let mut rec = self.new_record(iteration, description, category);
        rec.metrics = extra;
        rec.status = Status::Rejected;
        // Reasons quote the proposer's answer: stored as plain one-line text.
        rec.reason = crate::text::flat(reason, 2000);
        rec.finished_at = Some(now());
        rec.id = self.journal.insert(self.row.id, &rec)?;
        self.remember(rec);
        self.send(Event::Rejected {
            iteration,
            description: description.to_string(),
            reason: reason.to_string(),
        });
        Ok(())
    }

    pub(crate) fn new_record(
        &self,
        iteration: u64,
        description: &str,
        category: Category,
    ) -> ExperimentRecord {
        ExperimentRecord {
            id: 0,
            iteration,
            attempt: 1,
            parent: self.best_commit(),
            commit: String::new(),
            status: Status::Running,
            metric: None,
            metrics: BTreeMap::new(),
            memory_gb: None,
            description: description.to_string(),
            category,
            proposer: self
                .proposed_by
                .clone()
                .unwrap_or_else(|| self.proposer.name()),
            reason: String::new(),
            log_path: None,
            started_at: now(),
            finished_at: None,
            duration_s: None,
            state_hash: String::new(),
        }
    }

    /// Commits `files` (the editable files' new contents) as an experiment, or records a
    /// rejection when they change nothing or repeat a state already run.
    pub(crate) fn commit_state(
        &mut self,
        draft: Draft<'_>,
        files: &BTreeMap<PathBuf, String>,
        before: &BTreeMap<PathBuf, String>,
        extra: BTreeMap<String, f64>,
    ) -> Result<Result<ExperimentRecord, String>, SessionError> {
        let Draft {
            iteration,
            attempt,
            description,
            category,
            repeat,
        } = draft;
        if files == before {
            let why = "the proposal changes nothing".to_string();
            self.record_rejection(iteration, description, category, &why, extra)?;
            return Ok(Err(why));
        }
        let hash = state_hash(files);
        if let Some(dup) = self
            .history
            .iter()
            .find(|r| r.state_hash == hash && r.status != Status::Rejected)
            .filter(|_| !repeat)
        {
            let why = format!(
                "the resulting files equal experiment {} ({}), already run",
                dup.iteration, dup.description
            );
            self.record_rejection(iteration, description, category, &why, extra)?;
            return Ok(Err(why));
        }
        let mut rec = self.new_record(iteration, description, category);
        rec.attempt = attempt;
        rec.state_hash = hash;
        rec.metrics = extra;
        // Written as running before anything changes, so a kill loses nothing.
        rec.id = self.journal.insert(self.row.id, &rec)?;
        self.save_prompt(rec.id);
        let changed: BTreeMap<PathBuf, String> = files
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let message = format!("exp: {description}");
        // On the best, without a work tree: the user's checkout is not ours to change.
        crate::chaos::point("files_written");
        let scratch = self.state_dir().join("tmp");
        rec.commit = self
            .repo
            .commit_tree(&rec.parent, &changed, &message, &scratch)?;
        crate::chaos::point("commit");
        self.journal.update(&rec)?;
        Ok(Ok(rec))
    }

    /// Saves the proposer's last prompt beside the experiment's runs, for debugging.
    fn save_prompt(&mut self, id: i64) {
        let prompt = self
            .pending_prompt
            .take()
            .or_else(|| self.proposer.last_prompt());
        if let Some(prompt) = prompt {
            let dir = self.state_dir().join("runs").join(format!("{id:04}"));
            if std::fs::create_dir_all(&dir).is_ok() {
                let _ = std::fs::write(dir.join("prompt.md"), prompt);
            }
        }
    }
}
