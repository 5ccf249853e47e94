//! LLM usage on the record: the metrics-map keys an experiment's tokens and estimated cost
//! are stored under, and every LLM call written to the journal. Never holds prices or
//! keys; the proposer computes the cost.

use super::{Session, SessionError};
use crate::agent::CallRecord;
use crate::store::{CallRow, Journal};
use std::collections::BTreeMap;

pub use crate::experiment::{COST_KEY, TOKENS_IN_KEY, TOKENS_OUT_KEY};

pub(crate) fn record_usage(into: &mut BTreeMap<String, f64>, u: &crate::agent::Usage) {
    if u.input_tokens + u.output_tokens > 0 || u.cost_usd > 0.0 {
        into.insert(COST_KEY.into(), u.cost_usd);
        into.insert(
            TOKENS_IN_KEY.into(),
            (u.input_tokens + u.cache_read_tokens + u.cache_write_tokens) as f64,
        );
        into.insert(TOKENS_OUT_KEY.into(), u.output_tokens as f64);
    }
}

/// The journal's row for one call made for experiment `iteration`.
pub(crate) fn call_row(iteration: u64, c: CallRecord) -> CallRow {
    let u = c.usage;
    CallRow {
        iteration,
        purpose: c.purpose,
        started_at: c.started_at,
        duration_s: c.duration_s,
        prompt: c.prompt,
        answer: c.answer,
        finish_reason: c.finish_reason,
        input_tokens: u.input_tokens + u.cache_read_tokens + u.cache_write_tokens,
        output_tokens: u.output_tokens,
        cost_usd: u.cost_usd,
        outcome: c.outcome.as_str().to_string(),
        reason: c.reason,
    }
}

/// Writes `calls` (made for experiment `iteration`) to the journal.
pub(crate) fn write_calls(
    journal: &Journal,
    session_id: i64,
    iteration: u64,
    calls: Vec<CallRecord>,
) -> Result<(), SessionError> {
    for c in calls {
        journal.add_call(session_id, &call_row(iteration, c))?;
    }
    Ok(())
}

impl Session<'_> {}
