//! The export as one JSON document: settings, noise, experiments (serde does the escaping).

use super::{ExportData, Row};
use serde::Serialize;

#[derive(Serialize)]
struct Noise {
    sigma: f64,
    df: u64,
    runs: u64,
}

#[derive(Serialize)]
struct Doc<'a> {
    metric: &'a str,
    settings: serde_json::Map<String, serde_json::Value>,
    noise: Option<Noise>,
    experiments: &'a [Row],
}

pub fn render(d: &ExportData) -> String {
    let doc = Doc {
        metric: &d.metric_name,
        settings: d
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
        noise: d.noise.map(|(sigma, df, runs)| Noise { sigma, df, runs }),
        experiments: &d.rows,
    };
    // Serialising plain data cannot fail; NaN is never in it (None instead).
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")) + "\n"
}
