//! The progress report a running session writes every N experiments.

use crate::config::Config;
use crate::experiment::{ExperimentRecord, Status};
use crate::store::SessionRow;
use std::time::Duration;

/// Markdown progress report (placeholder until the report renderer lands).
pub(crate) fn render(
    config: &Config,
    row: &SessionRow,
    history: &[ExperimentRecord],
    elapsed: Duration,
) -> String {
    let best = history.iter().rev().find(|r| r.status == Status::Keep);
    format!(
        "# Progress: {}\n\nbest: {:?}\nexperiments: {}\nelapsed: {}s\n",
        row.branch,
        best.and_then(|b| b.metric),
        history.len(),
        elapsed.as_secs()
    ) + &config.metric.name
}
