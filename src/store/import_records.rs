//! Imported rows as records the reports render: the first row is the baseline, each later
//! row one experiment; categories guessed from the descriptions. Pure; never writes.

use super::import::Imported;
use crate::experiment::{Category, ExperimentRecord, Status};
use std::collections::BTreeMap;

/// Guesses a category from free text, for the summary's grouping of imported rows.
fn guess_category(description: &str) -> Category {
    let d = description.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| d.contains(w));
    if has(&[
        "adam", "muon", "optim", "momentum", "beta", "nesterov", "sgd",
    ]) {
        Category::Optimizer
    } else if has(&[
        "warmup", "warmdown", "cooldown", "schedule", "anneal", "clip", "dropout", "ema",
    ]) {
        Category::TrainingDynamics
    } else if has(&["lr", "learning rate", "weight decay", "batch", "wd "]) {
        Category::Hyperparameters
    } else if has(&[
        "layer",
        "head",
        "depth",
        "width",
        "dim",
        "embed",
        "attention",
        "mlp",
        "norm",
        "gelu",
        "relu",
        "rope",
        "window",
        "activation",
    ]) {
        Category::Architecture
    } else if has(&["data", "token", "seq", "context", "shuffle"]) {
        Category::Data
    } else {
        Category::Other
    }
}

impl Imported {
    /// Turns the rows into records so the reports can render them: the first row is the
    /// baseline (iteration 0), each later row one iteration; categories are guessed from
    /// the descriptions.
    pub fn to_records(&self) -> Vec<ExperimentRecord> {
        let mut parent = String::new();
        self.rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let mut metrics: BTreeMap<String, f64> = row
                    .extra
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.parse::<f64>().ok()?)))
                    .collect();
                if let Some(m) = row.metric {
                    metrics.insert(self.metric_name.clone(), m);
                }
                let category = if i == 0 {
                    Category::Baseline
                } else {
                    guess_category(&row.description)
                };
                let rec = ExperimentRecord {
                    id: i as i64 + 1,
                    iteration: i as u64,
                    attempt: 1,
                    parent: parent.clone(),
                    commit: row.commit.clone(),
                    status: row.status,
                    metric: row.metric,
                    metrics,
                    memory_gb: row.memory_gb,
                    description: row.description.clone(),
                    category,
                    proposer: "imported".to_string(),
                    reason: row.note.clone().unwrap_or_default(),
                    log_path: None,
                    started_at: row.date.clone().unwrap_or_default(),
                    finished_at: None,
                    duration_s: None,
                    state_hash: String::new(),
                };
                if row.status == Status::Keep {
                    parent = row.commit.clone();
                }
                rec
            })
            .collect()
    }
}
