//! The filler: with the hybrid (`[agent] tuner`), a worker never waits for the LLM. When a
//! worker is idle, nothing is prepared and LLM calls are still out, the built-in search —
//! which answers in milliseconds — proposes on the coordinator's thread, and its proposal
//! goes the way every answer goes (duplicate check, then the queue). The LLM's answer runs
//! when it comes. Without a tuner (`tuner = "off"`) the user asked for the LLM alone, and
//! the workers wait for it.

use super::coordinator::Engine;
use super::proposals::{Ask, Reply};
use crate::agent::Proposer;
use crate::session::{Event, SessionError};

impl Engine<'_, '_> {
    /// Whether the tuner may fill in now: LLM calls out and nothing else to start, within
    /// the limits. Unlike asking, the calls out do not hold places: a worker busy now is
    /// worth more than an answer that may come; one that comes past the limit is not run
    /// (its call is on record all the same).
    pub(super) fn may_fill(&self) -> bool {
        // `ahead = 0` asks for results before proposals: no experiment jumps the queue.
        self.filler.is_some()
            && self.s.config.agent.ahead != Some(0)
            && self.asked > self.repairs
            && self.stop.is_none()
            && self.exhausted.is_none()
            && self.s.baseline().is_some()
            && self.within_limits(0)
    }

    /// One proposal of the tuner's onto the queue; nothing when it has nothing new.
    pub(super) fn fill(&mut self) -> Result<(), SessionError> {
        let Some(mut tuner) = self.filler.take() else {
            return Ok(());
        };
        let iteration = self.next_iteration + self.ready.len() as u64 + self.asked as u64;
        let parent = self.s.best_commit();
        let snap = self.snapshot(iteration, parent.clone(), None);
        let result = tuner.propose(&snap.context(self.s.repo.root()));
        let name = tuner.name();
        self.filler = Some(tuner);
        // Nothing new from the tuner is no failure: the LLM's answer is still coming.
        let Ok(p) = result else {
            return Ok(());
        };
        self.s.send(Event::ProposalStarted { iteration });
        self.on_reply(Reply {
            ask: Ask::Propose,
            parent,
            result: Some(Ok(p)),
            prompt: None,
            usage: Default::default(),
            calls: Vec::new(),
            proposer: name,
            notes: Vec::new(),
        })
    }
}
