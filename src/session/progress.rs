//! The facts the reports need about a live session (`report::SessionInfo`), built from the
//! session's config, its journal row and its history.

use crate::config::Config;
use crate::decision::policy::NoiseModel;
use crate::experiment::ExperimentRecord;
use crate::platform::Platform;
use crate::report::SessionInfo;
use crate::store::SessionRow;
use std::time::Duration;

/// `SessionInfo` for a session's reports. `elapsed` is the wall time of this invocation
/// when running, or since the session's start for a finished one.
pub fn session_info(
    config: &Config,
    row: &SessionRow,
    history: &[ExperimentRecord],
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
        budget: config.budget,
        max_iterations: config.max_iterations,
        started_at: row.started_at.clone(),
        ended_at,
        iterations_done: crate::report::analysis::iterations_ran(history),
        elapsed,
        noise: noise.sigma().map(|s| {
            (
                s,
                usize::try_from(noise.measurements()).unwrap_or(usize::MAX),
            )
        }),
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
    let mut groups: std::collections::BTreeMap<i64, Vec<f64>> = Default::default();
    for m in measurements {
        if let Some(v) = m.value {
            groups.entry(m.experiment_id).or_default().push(v);
        }
    }
    NoiseModel::from_groups(groups.values().map(Vec::as_slice))
}
