//! A fixed overnight session for the report tests: fixed commits, times and reasons, so
//! snapshots need no redaction.
#![allow(dead_code)]

use autoresearch::experiment::{Category, Direction, ExperimentRecord, Status};
use autoresearch::report::SessionInfo;
use std::collections::BTreeMap;
use std::time::Duration;

pub fn rec(
    iteration: u64,
    status: Status,
    metric: Option<f64>,
    category: Category,
    description: &str,
    reason: &str,
) -> ExperimentRecord {
    let commit = if status == Status::Rejected {
        String::new()
    } else {
        format!(
            "{:07x}{}",
            0xabc0000 + iteration,
            "0123456789abcdef0123456789abcdef0"
        )
    };
    ExperimentRecord {
        id: iteration as i64 + 1,
        iteration,
        attempt: 1,
        parent: String::new(),
        commit,
        status,
        metric,
        metrics: BTreeMap::new(),
        memory_gb: Some(44.0),
        description: description.to_string(),
        category,
        proposer: "search".to_string(),
        reason: reason.to_string(),
        log_path: None,
        started_at: format!("2026-03-05T01:{:02}:00Z", iteration),
        finished_at: None,
        duration_s: Some(300.0),
        state_hash: String::new(),
    }
}

pub fn info(direction: Direction, metric: &str) -> SessionInfo {
    SessionInfo {
        branch: "autoresearch/mar5".to_string(),
        platform: "CUDA (NVIDIA H100 80GB HBM3)".to_string(),
        metric_name: metric.to_string(),
        direction,
        budget: Duration::from_secs(300),
        max_iterations: Some(100),
        started_at: "2026-03-05T01:00:00Z".to_string(),
        ended_at: Some("2026-03-05T09:12:00Z".to_string()),
        elapsed: Duration::from_secs(8 * 3600 + 12 * 60),
        noise: Some((0.0008, 3)),
        unread_lines: Vec::new(),
        hypothesis: None,
        fixed_seed: None,
    }
}

/// A night minimising val_bpb: keeps, a near miss, regressions, crashes, a rejection.
pub fn minimize_night() -> Vec<ExperimentRecord> {
    use Category::*;
    use Status::*;
    vec![
        rec(0, Keep, Some(0.9979), Baseline, "baseline", ""),
        rec(
            1,
            Keep,
            Some(0.9932),
            Hyperparameters,
            "MATRIX_LR 0.04 → 0.06",
            "0.9932 < 0.9979",
        ),
        rec(
            2,
            Discard,
            Some(0.9951),
            Hyperparameters,
            "MATRIX_LR 0.06 → 0.08",
            "worse",
        ),
        rec(
            3,
            Crash,
            None,
            Architecture,
            "DEPTH 8 → 16",
            "CUDA out of memory (tried to allocate 2.1 GiB)\nTraceback…",
        ),
        rec(
            4,
            Keep,
            Some(0.9880),
            TrainingDynamics,
            "WARMDOWN_RATIO 0.2 → 0.4",
            "better",
        ),
        rec(
            5,
            Discard,
            Some(0.9884),
            Optimizer,
            "ADAM_BETA2 0.95 → 0.99",
            "within noise",
        ),
        rec(
            6,
            Rejected,
            None,
            Other,
            "edit prepare.py",
            "touched a read-only file: prepare.py",
        ),
        rec(
            7,
            Discard,
            Some(1.0213),
            Architecture,
            "replace ReLU² with GELU | wider MLP",
            "worse",
        ),
        rec(
            8,
            Keep,
            Some(0.9861),
            TrainingDynamics,
            "WARMDOWN_RATIO 0.4 → 0.5",
            "better",
        ),
        rec(
            9,
            Crash,
            None,
            Optimizer,
            "MUON_MOMENTUM 0.95 → 0.99",
            "loss became NaN at step 1200",
        ),
        rec(
            10,
            Discard,
            Some(0.9870),
            Hyperparameters,
            "EMBEDDING_LR 0.6 → 0.8",
            "worse",
        ),
    ]
}

/// The same shape of night for a metric that grows (accuracy).
pub fn maximize_night() -> Vec<ExperimentRecord> {
    use Category::*;
    use Status::*;
    vec![
        rec(0, Keep, Some(0.612), Baseline, "baseline", ""),
        rec(
            1,
            Discard,
            Some(0.598),
            Hyperparameters,
            "LR 0.01 → 0.02",
            "worse",
        ),
        rec(
            2,
            Keep,
            Some(0.634),
            Architecture,
            "add a second attention head",
            "better",
        ),
        rec(
            3,
            Crash,
            None,
            Data,
            "SEQ_LEN 512 → 2048",
            "CUDA out of memory",
        ),
        rec(
            4,
            Keep,
            Some(0.655),
            Hyperparameters,
            "LR 0.01 → 0.005",
            "better",
        ),
        rec(
            5,
            Discard,
            Some(0.654),
            Optimizer,
            "WEIGHT_DECAY 0.1 → 0.2",
            "not better",
        ),
    ]
}
