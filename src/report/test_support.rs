//! Record builders for the report modules' unit tests.

use crate::experiment::{Category, ExperimentRecord, Status};
use std::collections::BTreeMap;

pub fn rec(iteration: u64, status: Status, metric: Option<f64>, desc: &str) -> ExperimentRecord {
    ExperimentRecord {
        id: iteration as i64 + 1,
        iteration,
        attempt: 1,
        parent: String::new(),
        commit: format!("{iteration:07x}aaaaaaa"),
        status,
        metric,
        metrics: BTreeMap::new(),
        memory_gb: None,
        description: desc.to_string(),
        category: if iteration == 0 {
            Category::Baseline
        } else {
            Category::Hyperparameters
        },
        proposer: "search".to_string(),
        reason: String::new(),
        log_path: None,
        started_at: String::new(),
        finished_at: None,
        duration_s: None,
        state_hash: String::new(),
    }
}
