//! Reports: progress.md, the summary, the chart (placeholder).
