//! The hybrid proposer: an LLM for ideas (structural changes), the built-in search for the
//! numbers between them, and the search as the stand-in that keeps the accelerators busy
//! while the LLM cannot be used. Owns only whose turn it is and the LLM's back-off; it
//! never runs anything and never touches git (its two proposers do not either).
//!
//! Turns. The LLM proposes first. The tuner takes [`TUNER_TURNS`] turns after a keep of
//! the LLM's (the new structure's numbers are worth tuning) and after `[agent] patience`
//! of the LLM's experiments in a row were discarded or crashed (its ideas ran dry); each
//! keep of the tuner's earns it one more turn, up to [`MAX_TUNER_STREAK`] in a row, and so
//! does each unusable answer of the LLM's (the next experiment is the tuner's, not another
//! wait for the LLM). When the tuner has nothing new, the LLM goes on.
//!
//! The safety net. The LLM is benched when it is unusable: [`UNUSABLE_IN_ROW`] answers in
//! a row with no valid edit, a call with no answer (the server down, a rate limit after
//! its retries, a timeout), a failure a retry cannot fix now (a quota, a revoked key), or
//! `[agent] max_cost_usd` spent. The user is told once, in one line naming the cause and
//! the fix; the tuner proposes meanwhile. The LLM is asked again after 2 tuner
//! experiments, then 4, 8, … up to 32 (counted in experiments, not seconds: each one is a
//! training run, so the back-off is measured in accelerator time and needs no clock). An
//! answer that can be used ends the outage, said in one more line. A spent budget benches
//! it for the rest of the session.

use super::search::SearchProposer;
use super::{AgentError, CallRecord, Context, ProgressSink, Proposal, Proposer, Usage};
use crate::experiment::Status;

/// Tuner turns after a keep of the LLM's, or after its ideas failed `patience` times.
pub const TUNER_TURNS: u32 = 3;
/// The tuner's longest run of turns while the LLM is usable.
pub const MAX_TUNER_STREAK: u32 = 6;
/// Answers in a row with no valid edit before the LLM is benched.
pub const UNUSABLE_IN_ROW: u32 = 3;
/// Tuner experiments before the first retry of a benched LLM; doubled per failed retry.
pub const FIRST_BACKOFF: u32 = 2;
/// The longest wait between retries, in tuner experiments.
pub const MAX_BACKOFF: u32 = 32;

/// The name the tuner's experiments carry in the journal.
pub const TUNER_NAME: &str = "search";

/// Why the LLM is benched.
#[derive(Debug, Clone, PartialEq)]
enum Bench {
    /// Usable: no outage.
    No,
    /// Retried after `wait` more tuner experiments; the next failure waits `backoff`.
    Until { wait: u32, backoff: u32 },
    /// `[agent] max_cost_usd` spent: never asked again in this session.
    ForGood,
}

/// Who made the last proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    Llm,
    Tuner,
}

pub struct HybridProposer {
    llm: Box<dyn Proposer>,
    tuner: SearchProposer,
    llm_name: String,
    bench: Bench,
    /// Tuner turns left before the LLM's next one.
    tuner_turns: u32,
    /// The tuner's turns in a row so far.
    streak: u32,
    /// The LLM's answers in a row with no valid edit.
    unusable: u32,
    /// The LLM's decided experiments in a row that were not kept.
    llm_misses: u32,
    /// The highest experiment id already read from the history (`None`: not read yet).
    read_up_to: Option<i64>,
    /// What the LLM cost in this process (its calls, used or not).
    spent_usd: f64,
    last: Last,
    notes: Vec<String>,
    /// The session's stop request: a call abandoned for it is no outage.
    cancel: Option<crate::runner::Cancel>,
}

impl HybridProposer {
    pub fn new(llm: Box<dyn Proposer>, tuner: SearchProposer) -> HybridProposer {
        let llm_name = llm.name();
        HybridProposer {
            llm,
            tuner,
            llm_name,
            bench: Bench::No,
            tuner_turns: 0,
            streak: 0,
            unusable: 0,
            llm_misses: 0,
            read_up_to: None,
            spent_usd: 0.0,
            last: Last::Llm,
            notes: Vec::new(),
            cancel: None,
        }
    }

    /// Reads the experiments decided since the last call: keeps and misses of each side
    /// give the tuner its turns. A resumed session starts afresh (the LLM first).
    fn read_history(&mut self, ctx: &Context<'_>, patience: u32) {
        let newest = ctx.history.iter().map(|r| r.id).max().unwrap_or(0);
        let Some(from) = self.read_up_to else {
            self.read_up_to = Some(newest);
            return;
        };
        for r in ctx.history.iter().filter(|r| r.id > from) {
            if !matches!(r.status, Status::Keep | Status::Discard | Status::Crash) {
                continue;
            }
            if r.proposer == self.llm_name {
                if r.status == Status::Keep {
                    self.llm_misses = 0;
                    self.grant(TUNER_TURNS);
                } else {
                    self.llm_misses += 1;
                    if self.llm_misses >= patience.max(1) {
                        self.llm_misses = 0;
                        self.grant(TUNER_TURNS);
                    }
                }
            } else if r.proposer == TUNER_NAME && r.status == Status::Keep {
                self.grant(1);
            }
        }
        self.read_up_to = Some(newest.max(from));
    }

    fn grant(&mut self, turns: u32) {
        let room = MAX_TUNER_STREAK.saturating_sub(self.streak + self.tuner_turns);
        self.tuner_turns += turns.min(room);
    }

    /// The LLM's spend so far: this process's calls, or the journal's when more (a resume).
    fn over_budget(&self, ctx: &Context<'_>) -> Option<f64> {
        let max = ctx.config.agent.max_cost_usd?;
        let recorded: f64 = ctx
            .history
            .iter()
            .filter_map(|r| r.metrics.get(crate::session::COST_KEY))
            .sum();
        let spent = recorded.max(self.spent_usd);
        (spent >= max).then_some(spent)
    }

    /// Benches the LLM after a failure; says so once per outage.
    fn bench(&mut self, cause: &str, fix: &str) {
        let backoff = match self.bench {
            Bench::ForGood => return,
            Bench::No => {
                self.notes.push(format!(
                    "the LLM cannot be used ({cause}); the built-in search goes on meanwhile and the LLM is asked again after {FIRST_BACKOFF}, then {}, {}… experiments; {fix}",
                    FIRST_BACKOFF * 2,
                    FIRST_BACKOFF * 4
                ));
                FIRST_BACKOFF
            }
            Bench::Until { backoff, .. } => backoff,
        };
        self.bench = Bench::Until {
            wait: backoff,
            backoff: (backoff * 2).min(MAX_BACKOFF),
        };
    }

    fn recovered(&mut self) {
        if matches!(self.bench, Bench::Until { .. }) {
            self.notes
                .push("the LLM answers usably again: it proposes again".to_string());
        }
        self.bench = Bench::No;
        self.unusable = 0;
    }

    /// Whether it is the tuner's turn (the LLM benched and not due, or the tuner's turns).
    fn tuner_due(&self) -> bool {
        match self.bench {
            Bench::ForGood => true,
            Bench::Until { wait, .. } => wait > 0,
            Bench::No => self.tuner_turns > 0,
        }
    }

    /// Counts one tuner experiment against the turns and the back-off.
    fn tuner_took_turn(&mut self) {
        self.last = Last::Tuner;
        self.streak += 1;
        self.tuner_turns = self.tuner_turns.saturating_sub(1);
        if let Bench::Until { wait, .. } = &mut self.bench {
            *wait = wait.saturating_sub(1);
        }
    }

    fn ask_tuner(&mut self, ctx: &Context<'_>) -> Result<Proposal, AgentError> {
        let p = self.tuner.propose(ctx)?;
        self.tuner_took_turn();
        Ok(p)
    }

    /// Asks the LLM; a failure that leaves no answer to record benches it and returns
    /// `None`, so that the tuner proposes in its place.
    fn ask_llm(&mut self, ctx: &Context<'_>) -> Option<Result<Proposal, AgentError>> {
        let result = self.llm.propose(ctx);
        self.spent_usd += match &result {
            Ok(p) => p.usage.cost_usd,
            Err(_) => self.llm.last_usage().cost_usd,
        };
        self.last = Last::Llm;
        match result {
            Ok(p) => {
                self.recovered();
                self.streak = 0;
                Some(Ok(p))
            }
            Err(AgentError::Invalid(why)) => {
                self.unusable += 1;
                // The accelerator is not left idle between unusable answers.
                self.grant(1);
                if self.unusable >= UNUSABLE_IN_ROW || matches!(self.bench, Bench::Until { .. }) {
                    self.bench(
                        &format!(
                            "{} answers in a row had no valid edit, last: {}",
                            self.unusable,
                            crate::text::flat(&why, 160)
                        ),
                        "each prompt and answer is in the journal (llm_calls); a model that follows the edit format better may help",
                    );
                }
                // Recorded as a rejection by the session, like any unusable answer.
                Some(Err(AgentError::Invalid(why)))
            }
            Err(e @ AgentError::Transient(_))
                if self
                    .cancel
                    .as_ref()
                    .is_some_and(crate::runner::Cancel::requested) =>
            {
                Some(Err(e))
            }
            Err(AgentError::Transient(why)) => {
                self.bench(
                    &format!(
                        "the LLM server did not answer: {}",
                        crate::text::flat(&why, 200)
                    ),
                    "check that it is running at [agent] base_url (or the rate limit of the key)",
                );
                None
            }
            Err(AgentError::Fatal(why)) => {
                self.bench(
                    &crate::text::flat(&why, 240),
                    "fix it and the LLM is used again at its next retry",
                );
                None
            }
            Err(e @ AgentError::Exhausted(_)) => Some(Err(e)),
        }
    }
}

impl Proposer for HybridProposer {
    /// The proposer of the last proposal (the LLM's name, or `search`).
    fn name(&self) -> String {
        match self.last {
            Last::Llm => self.llm_name.clone(),
            Last::Tuner => TUNER_NAME.to_string(),
        }
    }

    fn propose(&mut self, ctx: &Context<'_>) -> Result<Proposal, AgentError> {
        self.read_history(ctx, ctx.config.agent.patience);
        if let Some(spent) = self
            .over_budget(ctx)
            .filter(|_| self.bench != Bench::ForGood)
        {
            self.bench = Bench::ForGood;
            self.notes.push(format!(
                "[agent] max_cost_usd is reached (${spent:.2} spent): the LLM is not asked again in this session and the built-in search goes on; raise max_cost_usd and resume to use the LLM again"
            ));
        }
        if self.tuner_due() {
            match self.ask_tuner(ctx) {
                Ok(p) => return Ok(p),
                Err(AgentError::Exhausted(why)) => {
                    self.tuner_turns = 0;
                    if self.bench == Bench::ForGood {
                        return Err(AgentError::Exhausted(format!(
                            "{why} (the LLM's budget is spent)"
                        )));
                    }
                    // Nothing to tune: the LLM is asked now, benched or not.
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(answer) = self.ask_llm(ctx) {
            return answer;
        }
        match self.ask_tuner(ctx) {
            Ok(p) => Ok(p),
            // Neither can propose: the LLM's failure is the one to report.
            Err(AgentError::Exhausted(why)) => Err(AgentError::Transient(format!(
                "the LLM cannot be used and the built-in search has nothing left ({why})"
            ))),
            Err(e) => Err(e),
        }
    }

    fn repair(
        &mut self,
        ctx: &Context<'_>,
        traceback: &str,
    ) -> Option<Result<Proposal, AgentError>> {
        if self.bench != Bench::No {
            return None;
        }
        let r = self.llm.repair(ctx, traceback);
        self.spent_usd += self.llm.last_usage().cost_usd;
        self.last = Last::Llm;
        r
    }

    fn last_prompt(&self) -> Option<String> {
        match self.last {
            Last::Llm => self.llm.last_prompt(),
            Last::Tuner => None,
        }
    }

    fn last_usage(&self) -> Usage {
        match self.last {
            Last::Llm => self.llm.last_usage(),
            Last::Tuner => Usage::default(),
        }
    }

    fn note(&self) -> Option<String> {
        self.llm.note()
    }

    fn check(&mut self) -> Result<Vec<String>, AgentError> {
        self.llm.check()
    }

    fn take_calls(&mut self) -> Vec<CallRecord> {
        self.llm.take_calls()
    }

    fn take_notes(&mut self) -> Vec<String> {
        let mut notes = std::mem::take(&mut self.notes);
        notes.extend(self.llm.take_notes());
        notes
    }

    fn watch(&mut self, cancel: crate::runner::Cancel, progress: Option<ProgressSink>) {
        self.cancel = Some(cancel.clone());
        self.llm.watch(cancel, progress);
    }

    /// A hybrid of its own for a concurrent call (`[agent] concurrency`): a fork of the
    /// LLM and the same search (which keeps no state beyond its settings; what it knows
    /// comes from the history it is given). Turns and outages are counted per copy, so a
    /// benched LLM is benched in each copy that meets the outage.
    fn fork(&self) -> Option<Box<dyn Proposer>> {
        let llm = self.llm.fork()?;
        let tuner = SearchProposer::new(self.tuner.seed(), self.tuner.patience());
        let mut copy = HybridProposer::new(llm, tuner);
        copy.cancel = self.cancel.clone();
        Some(Box::new(copy))
    }
}
