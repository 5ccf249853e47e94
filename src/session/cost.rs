//! LLM usage on the record: the metrics-map keys an experiment's tokens and estimated cost
//! are stored under. Never holds prices or keys; the proposer computes the cost.

use std::collections::BTreeMap;

/// Metrics-map keys for an LLM call's usage, recorded on the experiment it proposed.
pub const COST_KEY: &str = "autoresearch_cost_usd";
pub const TOKENS_IN_KEY: &str = "autoresearch_tokens_in";
pub const TOKENS_OUT_KEY: &str = "autoresearch_tokens_out";

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
