//! The facts the reports need about a live session (`report::SessionInfo`), built from the
//! session's config, its journal row and its history.

use crate::config::Config;
use crate::decision::policy::NoiseModel;
use crate::platform::Platform;
use crate::report::SessionInfo;
use crate::store::{SessionRow, SessionSettings};
use std::time::Duration;

/// `SessionInfo` for a session's reports. `settings` are what the journal says the session
/// ran with (they win over `config`, which may be the file as edited since). `elapsed` is
/// the wall time of this invocation when running, or since the session's start for a
/// finished one.
pub fn session_info(
    config: &Config,
    row: &SessionRow,
    settings: Option<&SessionSettings>,
    elapsed: Duration,
    noise: &NoiseModel,
    ended_at: Option<String>,
) -> SessionInfo {
    let platform = serde_json::from_str::<Platform>(&row.platform)
        .map_or_else(|_| "unknown".to_string(), |p| p.describe());
    SessionInfo {
        branch: row.branch.clone(),
        platform,
        metric_name: config.metric.name.clone(),
        direction: config.metric.direction,
        budget: settings.map_or(config.budget, |s| {
            Duration::from_secs_f64(s.budget_s.max(0.0))
        }),
        max_iterations: settings.map_or(config.max_iterations, |s| s.iteration_limit),
        started_at: row.started_at.clone(),
        ended_at,
        elapsed,
        noise: noise.sigma().map(|s| {
            (
                s,
                usize::try_from(noise.measurements()).unwrap_or(usize::MAX),
            )
        }),
        unread_lines: Vec::new(),
        hypothesis: settings.and_then(|s| s.hypothesis.clone()),
        fixed_seed: settings.and_then(|s| s.fixed_seed.clone()),
    }
}

/// The run-to-run noise of a session: every group of repeated measurements of one code
/// version in the journal.
pub fn noise_from(
    journal: &crate::store::Journal,
    session_id: i64,
) -> Result<NoiseModel, crate::store::StoreError> {
    Ok(noise_of(&journal.measurements(session_id)?))
}

/// The noise model of measurements already read: one group per experiment.
pub fn noise_of(measurements: &[crate::store::Measurement]) -> NoiseModel {
    // Grouped by sorting one list (a map of a vector per experiment allocated 10,000
    // times per decision in a long session).
    let mut runs: Vec<(i64, f64)> = measurements
        .iter()
        .filter_map(|m| Some((m.experiment_id, m.value?)))
        .collect();
    runs.sort_by_key(|r| r.0);
    let values: Vec<f64> = runs.iter().map(|r| r.1).collect();
    let mut groups = Vec::new();
    let mut start = 0;
    for i in 1..=runs.len() {
        if i == runs.len() || runs[i].0 != runs[start].0 {
            groups.push(&values[start..i]);
            start = i;
        }
    }
    NoiseModel::from_groups(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_pools_each_experiments_runs_in_whatever_order_they_finished() {
        let m = |experiment_id: i64, value: Option<f64>| crate::store::Measurement {
            experiment_id,
            seed: 0,
            value,
            log_path: None,
            job_id: None,
            queue_s: None,
        };
        // Two experiments measured twice, interleaved; a single run and a crash add nothing.
        let runs = [
            m(1, Some(1.0)),
            m(2, Some(2.0)),
            m(3, Some(5.0)),
            m(1, Some(1.2)),
            m(4, None),
            m(2, Some(2.4)),
        ];
        let noise = noise_of(&runs);
        // Variances 0.02 and 0.08 with one degree of freedom each: sqrt(0.10 / 2).
        assert!((noise.sigma().unwrap() - 0.05f64.sqrt()).abs() < 1e-12);
        assert_eq!(noise.measurements(), 4);
        assert!(noise_of(&[]).sigma().is_none());
    }
}
