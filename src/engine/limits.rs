//! What the engine may start or ask for now: the stop conditions (`-n`, `max_iterations`,
//! `--for`, `--target`, Ctrl-C, the cost cap), the bound on proposals prepared ahead
//! (`[agent] ahead`) and the LLM calls out (`[agent] concurrency`).

use super::coordinator::Engine;
use crate::session::EndReason;

impl Engine<'_, '_> {
    /// Sets the reason to stop starting experiments, once one holds; a Ctrl-C overrides
    /// any other. Proposals prepared are dropped then (their cost kept on record).
    pub(super) fn check_stop(&mut self) {
        if matches!(self.stop, Some(EndReason::Interrupted)) {
            return;
        }
        // Proposals already paid for still run; then the session ends.
        let reason = self.s.stop_reason(self.started_now).or_else(|| {
            (self.cost_capped() && self.ready.is_empty()).then_some(EndReason::CostLimit)
        });
        if let Some(reason) = reason {
            if self.stop.is_none() || reason == EndReason::Interrupted {
                self.stop = Some(reason);
            }
        }
        if self.stop.is_some() {
            for r in self.ready.drain(..) {
                self.s.unrecorded_cost_usd += r.proposal.usage.cost_usd;
            }
        }
    }

    /// Whether another proposal may be asked for now: no stop, the baseline measured, a
    /// proposer thread free and the proposer not exhausted, fewer prepared or asked for
    /// than workers plus one (a spare, for when the next one turns out stale and
    /// conflicting), and within the limits.
    pub(super) fn may_ask(&self) -> bool {
        self.stop.is_none()
            && self.asked < self.concurrency
            && self.exhausted.is_none()
            && self.s.baseline().is_some()
            && self.ready.len() + self.asked < self.queue_bound()
            && self.within_limits(self.asked)
            && !self.cost_capped()
    }

    /// `[agent] max_cost_usd` reached, counting what experiments in flight and proposals
    /// prepared cost (with calls made side by side, the cap would otherwise be passed by a
    /// queue's worth). Never with the tuner beside the LLM: there the LLM stops at the cap
    /// and the tuner goes on.
    fn cost_capped(&self) -> bool {
        let agent = &self.s.config.agent;
        !agent.has_tuner()
            && agent
                .max_cost_usd
                .is_some_and(|max| self.s.cost_usd() + self.cost_ahead() >= max)
    }

    /// How many proposals may be prepared or asked for at once: one per worker by default;
    /// with `[agent] ahead = N`, one per free worker (no trial on it) plus N.
    pub(super) fn queue_bound(&self) -> usize {
        match self.s.config.agent.ahead {
            None => self.specs.len(),
            Some(n) => self.specs.len().saturating_sub(self.trials.len()) + n as usize,
        }
    }

    /// Whether one more experiment stays within `-n` and `max_iterations`, beside those
    /// started, in flight and prepared, and `held` more to come (LLM calls out).
    pub(super) fn within_limits(&self, held: usize) -> bool {
        let s = &self.s;
        let ahead = self.started_now + (self.ready.len() + held) as u64;
        // Experiments as stop_reason and the reports count them (rejected proposals are
        // not), plus those in flight and prepared: max_iterations is reached exactly.
        let planned = || {
            let done = crate::report::Tally::of(&s.history).experiments;
            done + (self.trials.len() + self.ready.len() + held) as u64
        };
        s.opts.iterations.is_none_or(|n| ahead < n)
            && s.config.max_iterations.is_none_or(|n| planned() < n)
    }
}
