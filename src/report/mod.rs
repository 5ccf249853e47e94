//! Reports: progress.md, the end-of-session summary and the progress chart. Renderers are
//! pure (records in, strings or bytes out); they never touch git, files or the terminal.

pub mod analysis;
pub mod by_proposer;
pub mod chart;
mod chart_layout;
pub mod export;
mod glyphs;
pub mod next_steps;
pub mod progress;
pub mod summary;
pub mod tally;
#[cfg(test)]
pub(crate) mod test_support;
pub mod workers;

use crate::experiment::Direction;
use std::time::Duration;

pub use chart::{ChartError, ChartPoint, ChartSeries, render_png, render_svg};
pub use next_steps::derive_next_steps;
pub use progress::render_progress;
pub use summary::render_summary;
pub use tally::Tally;
pub use workers::render_workers;

/// What the reports say about the session as a whole (the records say the rest).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    /// The research branch, e.g. `autoresearch/mar5`.
    pub branch: String,
    /// One line, e.g. `CUDA (NVIDIA H100 80GB)`.
    pub platform: String,
    /// The primary metric's name, e.g. `val_bpb`.
    pub metric_name: String,
    pub direction: Direction,
    /// The training budget per run in force (zero: unknown, an imported file).
    pub budget: Duration,
    /// The number of experiments at which the session stops (`max_iterations` or
    /// `--iterations`, whichever comes first); None when it runs until stopped.
    pub max_iterations: Option<u64>,
    /// When the session started, as the caller wants it shown (RFC 3339 is fine).
    pub started_at: String,
    /// None while the session is still running.
    pub ended_at: Option<String>,
    /// Wall time since the session started.
    pub elapsed: Duration,
    /// Run-to-run noise of the baseline: (standard deviation, number of runs).
    pub noise: Option<(f64, usize)>,
    /// Lines of an imported file that were not read: (1-based line, why).
    pub unread_lines: Vec<(usize, String)>,
    /// The hypothesis the session was asked to test (`run --hypothesis`).
    pub hypothesis: Option<String>,
    /// Where the script pins its own seed: the noise estimate is then no such thing.
    pub fixed_seed: Option<String>,
}

impl SessionInfo {
    /// For records with no session around them (an imported results.tsv): what is unknown
    /// says so.
    pub fn for_records(metric_name: &str, direction: Direction) -> Self {
        SessionInfo {
            branch: "unknown".to_string(),
            platform: "unknown".to_string(),
            metric_name: metric_name.to_string(),
            direction,
            budget: Duration::ZERO,
            max_iterations: None,
            started_at: "unknown".to_string(),
            ended_at: Some("unknown".to_string()),
            elapsed: Duration::ZERO,
            noise: None,
            unread_lines: Vec::new(),
            hypothesis: None,
            fixed_seed: None,
        }
    }
}

/// The noise estimate's line in the progress report and the summary, when there is one.
pub(crate) fn noise_line(info: &SessionInfo) -> Option<String> {
    let (sigma, n) = info.noise?;
    if let Some(at) = &info.fixed_seed {
        return Some(format!(
            "- **Noise estimate:** none: σ̂ = {} from {n} runs of one fixed seed ({}) is not a noise estimate",
            fmt_metric(sigma),
            cell(at)
        ));
    }
    Some(format!(
        "- **Noise estimate:** σ = {} pooled over {n} repeated runs",
        fmt_metric(sigma)
    ))
}

/// Metrics are shown with six decimals, as karpathy's results.tsv writes them; a value
/// that rounds to zero is `0.000000`, never `-0.000000`.
pub(crate) fn fmt_metric(v: f64) -> String {
    let s = format!("{v:.6}");
    match s.strip_prefix('-') {
        Some(rest) if rest.bytes().all(|b| b == b'0' || b == b'.') => rest.to_string(),
        _ => s,
    }
}

/// A signed change with its percentage of `reference`, e.g. `-0.012800 (-1.28%)`; no change
/// (at six decimals) is `0`, never `-0.000000 (-0.00%)`.
pub fn fmt_change(value: f64, reference: f64) -> String {
    let delta = value - reference;
    if format!("{:.6}", delta.abs()) == "0.000000" {
        return "0".to_string();
    }
    if reference == 0.0 {
        return format!("{delta:+.6}");
    }
    format!("{delta:+.6} ({:+.2}%)", delta / reference.abs() * 100.0)
}

/// `1h 04m 12s`, `3m 05s`, `42s`: compact and stable for snapshots.
pub(crate) fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// The first seven characters of a commit, or `—` when there is none (rejected runs).
pub(crate) fn short_commit(commit: &str) -> String {
    if commit.is_empty() {
        "—".to_string()
    } else {
        commit.chars().take(7).collect()
    }
}

/// Makes text safe for one markdown table cell: one line, no unescaped pipes.
pub(crate) fn cell(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.replace('|', "\\|")
}

/// Shortens `text` to at most `max` characters, ending with `…` when cut.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut out: String = one_line.chars().take(max.saturating_sub(1)).collect();
    out = out.trim_end().to_string();
    out.push('…');
    out
}

pub(crate) fn direction_words(d: Direction) -> &'static str {
    match d {
        Direction::Minimize => "lower is better",
        Direction::Maximize => "higher is better",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_compact() {
        assert_eq!(fmt_duration(Duration::from_secs(42)), "42s");
        assert_eq!(fmt_duration(Duration::from_secs(185)), "3m 05s");
        assert_eq!(fmt_duration(Duration::from_secs(3852)), "1h 04m 12s");
    }

    #[test]
    fn shorten_cuts_with_ellipsis() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("abcdefgh", 5), "abcd…");
        assert_eq!(shorten("a\nb", 5), "a b");
    }

    #[test]
    fn change_has_sign_and_percent() {
        assert_eq!(fmt_change(0.99, 1.0), "-0.010000 (-1.00%)");
        assert_eq!(fmt_change(1.0, 0.0), "+1.000000");
        assert_eq!(fmt_change(1.15, 1.15 + 1e-12), "0");
        assert_eq!(fmt_metric(-1e-9), "0.000000");
        assert_eq!(fmt_metric(-0.5), "-0.500000");
    }

    #[test]
    fn cells_escape_pipes() {
        assert_eq!(cell("a | b\nc"), "a \\| b c");
    }
}
