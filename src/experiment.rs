//! The vocabulary shared by every subsystem: what an experiment is, how it ended, and which
//! way the metric points. Plain data only; nothing here does I/O.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Which way the primary metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Minimize,
    Maximize,
}

impl Direction {
    /// True when `candidate` is strictly better than `reference`.
    pub fn better(self, candidate: f64, reference: f64) -> bool {
        match self {
            Direction::Minimize => candidate < reference,
            Direction::Maximize => candidate > reference,
        }
    }

    /// Improvement of `candidate` over `reference`, positive when better.
    pub fn gain(self, candidate: f64, reference: f64) -> f64 {
        match self {
            Direction::Minimize => reference - candidate,
            Direction::Maximize => candidate - reference,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Minimize => "minimize",
            Direction::Maximize => "maximize",
        }
    }
}

/// How an experiment ended. `Running` exists only between the journal's first write and
/// its finalisation; a session that finds one on start-up reconciles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Keep,
    Discard,
    Crash,
    /// The proposal never ran: it touched a forbidden path, changed nothing, or repeated
    /// a state already measured.
    Rejected,
    /// Stopped by the user (Ctrl-C) or by a killed orchestrator before it finished.
    Interrupted,
    /// Stopped early because its training curve could no longer beat the best's
    /// (`decision::prune`); results.tsv shows it as a discard with the note.
    Pruned,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Keep => "keep",
            Status::Discard => "discard",
            Status::Crash => "crash",
            Status::Rejected => "rejected",
            Status::Interrupted => "interrupted",
            Status::Pruned => "pruned",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "running" => Status::Running,
            "keep" | "kept" | "baseline" | "best" => Status::Keep,
            "discard" | "discarded" | "revert" | "reverted" => Status::Discard,
            "crash" | "crashed" | "fail" | "failed" | "error" => Status::Crash,
            "rejected" => Status::Rejected,
            "interrupted" => Status::Interrupted,
            "pruned" => Status::Pruned,
            _ => return None,
        })
    }

    /// Rows with these statuses appear in results.tsv (karpathy's three statuses).
    pub fn in_results_tsv(self) -> bool {
        matches!(
            self,
            Status::Keep | Status::Discard | Status::Crash | Status::Pruned
        )
    }

    /// The status results.tsv shows (karpathy's three: a pruned run is a discard).
    pub fn tsv_str(self) -> &'static str {
        match self {
            Status::Pruned => "discard",
            s => s.as_str(),
        }
    }

    /// A decided discard: discarded after its runs, or pruned during one.
    pub fn is_discard(self) -> bool {
        matches!(self, Status::Discard | Status::Pruned)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of change a proposal makes (the categories).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    Architecture,
    Optimizer,
    #[default]
    Hyperparameters,
    TrainingDynamics,
    Data,
    Other,
    /// The unmodified code, measured first.
    Baseline,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Architecture => "architecture",
            Category::Optimizer => "optimizer",
            Category::Hyperparameters => "hyperparameters",
            Category::TrainingDynamics => "training-dynamics",
            Category::Data => "data",
            Category::Other => "other",
            Category::Baseline => "baseline",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        let s = s.trim().to_ascii_lowercase().replace(['_', ' '], "-");
        Some(match s.as_str() {
            "architecture" | "arch" | "model" => Category::Architecture,
            "optimizer" | "optimiser" | "optimization" => Category::Optimizer,
            "hyperparameters" | "hyperparameter" | "hparams" => Category::Hyperparameters,
            "training-dynamics" | "dynamics" | "schedule" => Category::TrainingDynamics,
            "data" => Category::Data,
            "other" => Category::Other,
            "baseline" => Category::Baseline,
            _ => return None,
        })
    }
}

/// Metrics-map keys for repeated measurements: how many runs the metric is the mean of,
/// and their standard deviation (results.tsv notes `n=3, ±0.0021`).
pub const RUNS_KEY: &str = "autoresearch_runs";
pub const SD_KEY: &str = "autoresearch_sd";
/// Metrics-map keys for an LLM call's usage, recorded on the experiment it proposed.
pub const COST_KEY: &str = "autoresearch_cost_usd";
pub const TOKENS_IN_KEY: &str = "autoresearch_tokens_in";
pub const TOKENS_OUT_KEY: &str = "autoresearch_tokens_out";
/// Metrics-map key recording a batch scale that differs from the platform's default.
pub const BATCH_SCALE_KEY: &str = "autoresearch_batch_scale";

/// The tool's own numbers about an experiment: in memory they sit in
/// [`ExperimentRecord::metrics`] beside the script's (under the key), in the journal in a
/// typed column of their own (the column), never in its `metrics` JSON.
pub const TYPED_KEYS: [(&str, &str); 6] = [
    (COST_KEY, "cost_usd"),
    (TOKENS_IN_KEY, "tokens_in"),
    (TOKENS_OUT_KEY, "tokens_out"),
    (RUNS_KEY, "runs"),
    (SD_KEY, "sd"),
    (BATCH_SCALE_KEY, "batch_scale"),
];

/// The typed columns of [`TYPED_KEYS`] as a `SELECT` list, in its order.
pub fn typed_columns() -> String {
    TYPED_KEYS.map(|(_, column)| column).join(", ")
}

/// One experiment as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentRecord {
    /// Journal row id (monotonic, 1-based).
    pub id: i64,
    /// 0 for the baseline, then 1, 2, … per proposal.
    pub iteration: u64,
    /// 1 for the first run of a proposal; repairs and OOM retries count up.
    pub attempt: u32,
    /// The commit this experiment was built on (the best at the time).
    pub parent: String,
    /// The experiment's own commit; empty when it never got one (rejected).
    pub commit: String,
    pub status: Status,
    /// The primary metric, when one was read.
    pub metric: Option<f64>,
    /// Every `key: number` the run printed (last value of each).
    pub metrics: BTreeMap<String, f64>,
    pub memory_gb: Option<f64>,
    pub description: String,
    pub category: Category,
    pub proposer: String,
    /// Why it crashed, was rejected or interrupted; the evidence of a keep or discard.
    pub reason: String,
    pub log_path: Option<String>,
    /// RFC 3339.
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_s: Option<f64>,
    /// sha256 over the editable files' contents, to refuse duplicates.
    pub state_hash: String,
}

impl ExperimentRecord {
    /// `n=3, ±0.0021` when the metric is the mean of several runs.
    pub fn repeats_note(&self) -> Option<String> {
        let n = *self.metrics.get(RUNS_KEY)?;
        if n < 2.0 {
            return None;
        }
        let sd = self.metrics.get(SD_KEY).copied().unwrap_or(0.0);
        Some(format!(
            "n={n:.0}, ±{}",
            crate::decision::policy::format_sd(sd)
        ))
    }
}
