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
    let mut groups: std::collections::BTreeMap<i64, Vec<f64>> = Default::default();
    for m in measurements {
        if let Some(v) = m.value {
            groups.entry(m.experiment_id).or_default().push(v);
        }
    }
    NoiseModel::from_groups(groups.values().map(Vec::as_slice))
}
