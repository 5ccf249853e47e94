//! Proposals arriving: the proposer's answers become prepared proposals (or recorded
//! rejections), and a prepared proposal becomes an experiment: re-based onto the current
//! best when that moved, checked, committed, and given a trial.

use super::coordinator::{Engine, Ready};
use super::proposals::{self, Ask, Reply};
use super::trial::Kind;
use crate::agent::{AgentError, state_hash};
use crate::decision::policy::Earlier;
use crate::experiment::Category;
use crate::session::{Draft, Event, SessionError, one_line, record_usage};
use std::collections::BTreeMap;
use std::path::PathBuf;

impl Engine<'_, '_> {
    /// Commits a prepared proposal on the current best (re-based when the best moved since
    /// it was made) and opens its trial; `None` when it was rejected (recorded).
    pub(super) fn start_candidate(&mut self, r: Ready) -> Result<Option<u64>, SessionError> {
        let p = r.proposal;
        let description = one_line(&p.description);
        let best = self.s.best_commit();
        let mut changed: BTreeMap<PathBuf, String> = p
            .changes
            .iter()
            .map(|c| (c.path.clone(), c.contents.clone()))
            .collect();
        if r.parent != best {
            let scratch = self.s.state_dir().join("tmp");
            match proposals::rebase(&self.s.repo, &changed, &r.parent, &best, &scratch) {
                Some(files) => changed = files,
                None => {
                    // Its change and the new best's touch the same lines: dropped
                    // unnumbered; the proposer is asked again, on the new best.
                    self.s.unrecorded_cost_usd += p.usage.cost_usd;
                    self.record_calls(self.next_iteration, r.calls)?;
                    self.s.note(format!(
                        "dropped `{description}`: made on an earlier best, its change conflicts with the new best's"
                    ));
                    return Ok(None);
                }
            }
        }
        let iteration = self.take_iteration();
        self.record_calls(iteration, r.calls)?;
        let name = r.proposer.clone().unwrap_or_else(|| self.s.proposer.name());
        self.s.proposed_by = r.proposer.clone();
        let started = self.start_proposal(iteration, r.prompt, r.earlier, p, changed, name);
        self.s.proposed_by = None;
        started
    }

    /// The numbered part of `start_candidate`: the event, the checks, the commit, the trial.
    fn start_proposal(
        &mut self,
        iteration: u64,
        prompt: Option<String>,
        earlier: Earlier,
        p: crate::agent::Proposal,
        changed: BTreeMap<PathBuf, String>,
        name: String,
    ) -> Result<Option<u64>, SessionError> {
        let description = one_line(&p.description);
        let best = self.s.best_commit();
        self.s.send(Event::Proposal {
            iteration,
            description: description.clone(),
            category: p.category.as_str().to_string(),
            proposer: name,
        });
        crate::chaos::point("proposal");
        let mut usage = BTreeMap::new();
        record_usage(&mut usage, &p.usage);
        let editable = self.s.config.editable.clone();
        if let Some(why) = self.s.forbidden(&p.changes) {
            self.s
                .record_rejection(iteration, &description, p.category, &why, usage)?;
            return self.failed(why).map(|()| None);
        }
        let before = self.s.repo.files_at(&best, &editable);
        let mut files = before.clone();
        files.extend(changed);
        self.s.pending_prompt = prompt;
        let draft = Draft {
            iteration,
            attempt: 1,
            description: &description,
            category: p.category,
            repeat: earlier.visits > 0,
        };
        match self.s.commit_state(draft, &files, &before, usage)? {
            Ok(rec) => {
                self.started_now += 1;
                self.failed_proposals = 0;
                self.add_trial(rec, Kind::Candidate { earlier }).map(Some)
            }
            Err(why) => self.failed(why).map(|()| None),
        }
    }

    /// The cost of what is not in the history yet: experiments in flight and proposals
    /// prepared.
    pub(super) fn cost_ahead(&self) -> f64 {
        let running: f64 = self
            .trials
            .values()
            .filter(|t| matches!(t.kind, Kind::Candidate { .. }))
            .filter_map(|t| t.rec.metrics.get(crate::session::COST_KEY))
            .sum();
        running
            + self
                .ready
                .iter()
                .map(|r| r.proposal.usage.cost_usd)
                .sum::<f64>()
    }

    /// Writes the calls behind experiment `iteration` to the journal.
    fn record_calls(
        &self,
        iteration: u64,
        calls: Vec<crate::agent::CallRecord>,
    ) -> Result<(), SessionError> {
        crate::session::write_calls(&self.s.journal, self.s.row.id, iteration, calls)
    }

    /// Counts an unusable proposal; too many in a row end the session.
    pub(super) fn failed(&mut self, why: String) -> Result<(), SessionError> {
        self.failed_proposals += 1;
        if self.failed_proposals >= self.s.opts.max_failed_proposals {
            return Err(SessionError::TooManyFailedProposals(
                self.failed_proposals,
                why,
            ));
        }
        Ok(())
    }

    pub(super) fn on_reply(&mut self, reply: Reply) -> Result<(), SessionError> {
        // The experiment gets its number when it starts (or is rejected), so that proposals
        // dropped along the way leave no gaps.
        let Reply {
            ask,
            parent,
            result,
            prompt,
            usage,
            calls,
            proposer,
            notes,
        } = reply;
        for note in notes {
            self.s.warn(note);
        }
        self.s.proposed_by = Some(proposer.clone());
        let done = self.on_answer(ask, parent, result, prompt, usage, calls, proposer);
        self.s.proposed_by = None;
        done
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the parts of one reply, taken apart"
    )]
    fn on_answer(
        &mut self,
        ask: Ask,
        parent: String,
        result: Option<Result<crate::agent::Proposal, AgentError>>,
        prompt: Option<String>,
        usage: crate::agent::Usage,
        calls: Vec<crate::agent::CallRecord>,
        proposer: String,
    ) -> Result<(), SessionError> {
        // Calls are on the record under the experiment they were for: a repair's is the
        // crashed one's; a proposal's is given when it starts (or is rejected) below.
        let mut calls = Some(calls);
        if let Ask::Repair { crashed, .. } = &ask {
            let calls = calls.take().unwrap_or_default();
            self.record_calls(crashed.iteration, calls)?;
        }
        if !matches!(result, Some(Err(AgentError::Transient(_)))) {
            self.unanswered = 0;
        }
        if let Ask::Repair { crashed, .. } = ask {
            self.repairs = self.repairs.saturating_sub(1);
            return self.on_repair(*crashed, result, prompt, usage);
        }
        let calls = calls.unwrap_or_default();
        if self.stop.is_some() {
            self.s.unrecorded_cost_usd += usage.cost_usd;
            return self.record_calls(self.next_iteration, calls);
        }
        match result.expect("a proposal request is answered") {
            Ok(p) => {
                if let Some(pad) = &p.scratchpad {
                    self.s.save_scratchpad(pad)?;
                }
                let mut files = self.s.repo.files_at(&parent, &self.s.config.editable);
                files.extend(
                    p.changes
                        .iter()
                        .map(|c| (c.path.clone(), c.contents.clone())),
                );
                let hash = state_hash(&files);
                // What had run when the call was made was in its snapshot (the proposer
                // refuses those itself); what is running or prepared since may not be.
                let twin = self.trials.values().any(|t| t.rec.state_hash == hash)
                    || self.ready.iter().any(|r| r.hash == hash);
                if twin {
                    // Calls made side by side saw the same state and may answer alike: the
                    // second is on the record as rejected, not counted against the proposer.
                    let mut extra = BTreeMap::new();
                    record_usage(&mut extra, &usage);
                    let iteration = self.take_iteration();
                    self.record_calls(iteration, calls)?;
                    let why =
                        "the proposal equals one made at the same time (a duplicate experiment)";
                    return self.s.record_rejection(
                        iteration,
                        &one_line(&p.description),
                        p.category,
                        why,
                        extra,
                    );
                }
                self.ready.push_back(Ready {
                    hash,
                    proposal: p,
                    parent,
                    earlier: Earlier::default(),
                    prompt,
                    calls,
                    proposer: Some(proposer),
                });
                Ok(())
            }
            Err(AgentError::Exhausted(why)) => {
                self.exhausted = Some(why);
                self.record_calls(self.next_iteration, calls)
            }
            Err(AgentError::Fatal(why)) => {
                self.record_calls(self.next_iteration, calls)?;
                Err(SessionError::Proposer(why))
            }
            Err(AgentError::Transient(why)) => {
                // No answer is not an unusable proposal: only the call is on the record.
                self.record_calls(self.next_iteration, calls)?;
                self.s.unrecorded_cost_usd += usage.cost_usd;
                self.unanswered += 1;
                self.s.warn(format!("the LLM server did not answer: {why}"));
                if self.unanswered >= self.s.opts.max_unanswered {
                    return Err(SessionError::LlmUnreachable(self.unanswered, why));
                }
                Ok(())
            }
            Err(e @ AgentError::Invalid(_)) => {
                let why = e.to_string();
                let mut extra = BTreeMap::new();
                record_usage(&mut extra, &usage);
                let iteration = self.take_iteration();
                self.record_calls(iteration, calls)?;
                self.s.record_rejection(
                    iteration,
                    "(no usable proposal)",
                    Category::Other,
                    &why,
                    extra,
                )?;
                self.failed(why)
            }
        }
    }
}
