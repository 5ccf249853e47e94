//! The export as a Markdown document: settings, noise, one table row per experiment.
//! Descriptions are untrusted: one line, pipes escaped, HTML defused.

use super::{ExportData, effect_text, noise_text, num};
use std::fmt::Write;

/// Markdown cell text that cannot break the table or inject HTML.
fn md(text: &str) -> String {
    crate::report::cell(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn render(d: &ExportData) -> String {
    let mut out = String::from("# Experiments\n\n");
    for (k, v) in &d.settings {
        let _ = writeln!(out, "- **{}:** {}", md(k), md(v));
    }
    let _ = writeln!(out, "- **Noise estimate:** {}", noise_text(d));
    let _ = writeln!(
        out,
        "\n| # | Commit | Status | Category | Change | {} | n | Δ vs parent [95% CI] |",
        md(&d.metric_name)
    );
    let _ = writeln!(out, "|---:|---|---|---|---|---:|---:|---|");
    for r in &d.rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.iteration,
            md(&r.commit),
            r.status,
            r.category,
            md(&r.description),
            r.value.map_or_else(|| "—".to_string(), num),
            r.runs,
            effect_text(r.effect.as_ref())
        );
    }
    out
}
