//! Reattaching on resume: an experiment a killed session left with jobs still running
//! (Slurm) becomes a trial again, its measured runs kept and its running jobs followed
//! by the first free workers, so that each result is recorded once and nothing runs twice.

use super::coordinator::Engine;
use super::trial::Kind;
use crate::session::SessionError;

impl Engine<'_, '_> {
    /// One trial for each experiment the session adopted at its start.
    pub(super) fn adopt(&mut self) -> Result<(), SessionError> {
        for a in std::mem::take(&mut self.s.adopt) {
            self.next_iteration = self.next_iteration.max(a.rec.iteration + 1);
            let id = self.add_trial(
                a.rec,
                Kind::Candidate {
                    earlier: Default::default(),
                },
            )?;
            let t = self.trials.get_mut(&id).expect("the trial just added");
            t.runs = a.runs;
            t.started = a.started;
            t.pending = a.jobs.iter().map(|j| j.seed).collect();
            t.attached = a.jobs;
        }
        Ok(())
    }
}
