//! `autoresearch export`: a session's experiments as a table for a paper (Markdown, LaTeX
//! with booktabs, CSV, JSON), with the settings, the noise estimate σ̂ and each change's
//! effect against its parent with a 95% confidence interval. Pure: data in, text out; every
//! piece of text from a proposer or a log is escaped for the format it lands in.

mod csv;
mod json;
mod latex;
mod markdown;

use super::{SessionInfo, Tally, fmt_duration};
use crate::decision::stats;
use crate::experiment::{ExperimentRecord, Status};
use std::collections::BTreeMap;

/// The formats `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Md,
    Latex,
    Csv,
    Json,
}

/// A difference of means with its 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Effect {
    /// Candidate mean minus parent mean, in the metric's units (sign as measured).
    pub diff: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// How the interval was made: `pooled` (the session's σ̂) or `welch`.
    pub method: &'static str,
    /// Degrees of freedom of the t quantile.
    pub df: f64,
}

/// One experiment as exported.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    pub iteration: u64,
    pub attempt: u32,
    pub commit: String,
    pub parent: String,
    pub status: String,
    pub category: String,
    pub description: String,
    /// The mean of its runs (the recorded metric), None for a crash.
    pub value: Option<f64>,
    pub runs: usize,
    /// Standard deviation of its runs (two or more).
    pub sd: Option<f64>,
    /// Its effect against the parent it was built on; None without runs on both sides or
    /// without any estimate of the noise.
    pub effect: Option<Effect>,
}

/// Everything an export shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportData {
    /// (name, value) of the settings, in order: branch, platform, metric, budget, …
    pub settings: Vec<(String, String)>,
    /// The noise estimate: (σ̂, degrees of freedom, runs behind it).
    pub noise: Option<(f64, u64, u64)>,
    /// Where the script pins its seed: the spread of its repeats is then no estimate of
    /// the noise, and no effect gets an interval.
    pub fixed_seed: Option<String>,
    pub metric_name: String,
    pub rows: Vec<Row>,
}

/// The 95% interval for `candidate − parent`: with the session's pooled σ̂ when there is
/// one (its degrees of freedom), else Welch's when both sides ran at least twice.
pub fn effect(candidate: &[f64], parent: &[f64], noise: Option<(f64, u64)>) -> Option<Effect> {
    let (n1, n2) = (candidate.len() as f64, parent.len() as f64);
    let diff = stats::mean(candidate)? - stats::mean(parent)?;
    let (se, df, method) = match noise {
        Some((sigma, df)) if df > 0 => (sigma * (1.0 / n1 + 1.0 / n2).sqrt(), df as f64, "pooled"),
        _ if candidate.len() >= 2 && parent.len() >= 2 => {
            let (v1, v2) = (stats::variance(candidate)?, stats::variance(parent)?);
            let (a, b) = (v1 / n1, v2 / n2);
            let se = (a + b).sqrt();
            let df = if a + b > 0.0 {
                (a + b).powi(2) / (a * a / (n1 - 1.0) + b * b / (n2 - 1.0))
            } else {
                n1 + n2 - 2.0
            };
            (se, df, "welch")
        }
        _ => return None,
    };
    let half = stats::student_t_inv_cdf(0.975, df) * se;
    Some(Effect {
        diff,
        ci_low: diff - half,
        ci_high: diff + half,
        method,
        df,
    })
}

/// The rows of `records` (the baseline first; rejected proposals left out: they never
/// ran), with each one's runs from `runs` (experiment id → values; a record without any
/// counts its metric as one run).
pub fn rows(
    records: &[ExperimentRecord],
    runs: &BTreeMap<i64, Vec<f64>>,
    noise: Option<(f64, u64)>,
) -> Vec<Row> {
    let own = |r: &ExperimentRecord| -> Vec<f64> {
        match runs.get(&r.id) {
            Some(v) if !v.is_empty() => v.clone(),
            _ => r.metric.filter(|m| m.is_finite()).into_iter().collect(),
        }
    };
    // A code's runs: every visit of it (a near miss measured again is one code).
    let of_code = |r: &ExperimentRecord| -> Vec<f64> {
        if r.state_hash.is_empty() {
            return own(r);
        }
        records
            .iter()
            .filter(|o| o.state_hash == r.state_hash && o.status.in_results_tsv())
            .filter(|o| o.status != Status::Crash)
            .flat_map(own)
            .collect()
    };
    records
        .iter()
        .filter(|r| r.status != Status::Rejected)
        .map(|r| {
            let values = if r.status == Status::Crash {
                Vec::new()
            } else {
                own(r)
            };
            let parent = records.iter().rfind(|p| {
                !r.parent.is_empty() && p.commit == r.parent && p.status == Status::Keep
            });
            let effect = match parent {
                Some(p) if !values.is_empty() && p.id != r.id => {
                    effect(&values, &of_code(p), noise)
                }
                _ => None,
            };
            Row {
                iteration: r.iteration,
                attempt: r.attempt,
                commit: r.commit.chars().take(7).collect(),
                parent: r.parent.chars().take(7).collect(),
                status: r.status.as_str().to_string(),
                category: r.category.as_str().to_string(),
                description: r.description.clone(),
                value: if r.status == Status::Crash {
                    None
                } else {
                    r.metric.filter(|m| m.is_finite())
                },
                runs: values.len(),
                sd: stats::std_dev(&values),
                effect,
            }
        })
        .collect()
}

/// The settings block for a session: what a reader needs to reproduce the table.
pub fn settings(
    info: &SessionInfo,
    records: &[ExperimentRecord],
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    let mut s = vec![
        ("Branch".to_string(), info.branch.clone()),
        ("Platform".to_string(), info.platform.clone()),
        (
            "Metric".to_string(),
            format!(
                "{} ({})",
                info.metric_name,
                super::direction_words(info.direction)
            ),
        ),
        (
            "Budget per run".to_string(),
            if info.budget.is_zero() {
                "unknown".to_string()
            } else {
                fmt_duration(info.budget)
            },
        ),
        ("Experiments".to_string(), Tally::of(records).headline()),
        ("Started".to_string(), info.started_at.clone()),
    ];
    s.extend(extra.iter().cloned());
    s
}

/// Renders `data` as `format`.
pub fn render(format: Format, data: &ExportData) -> String {
    match format {
        Format::Md => markdown::render(data),
        Format::Latex => latex::render(data),
        Format::Csv => csv::render(data),
        Format::Json => json::render(data),
    }
}

/// A number for a table: six significant decimals as the reports print metrics.
fn num(v: f64) -> String {
    super::fmt_metric(v)
}

/// `-0.012300 [-0.0150, -0.0096]`, or `n/a`.
fn effect_text(e: Option<&Effect>) -> String {
    match e {
        Some(e) => format!(
            "{} [{}, {}]",
            signed(e.diff),
            signed(e.ci_low),
            signed(e.ci_high)
        ),
        None => "n/a".to_string(),
    }
}

fn signed(v: f64) -> String {
    let s = num(v);
    if v > 0.0 && s.chars().any(|c| c.is_ascii_digit() && c != '0') {
        format!("+{s}")
    } else {
        s
    }
}

/// The noise line: `σ̂ = 0.0021 (df = 4, 7 runs)` or why there is none.
fn noise_text(data: &ExportData) -> String {
    if let Some(at) = &data.fixed_seed {
        return format!("none: the runs repeat one fixed seed ({at}), so no intervals");
    }
    match data.noise {
        Some((s, df, n)) => format!("σ̂ = {} (df = {df}, {n} runs)", num(s)),
        None => "no estimate (no code was run twice)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_interval_matches_a_hand_computation() {
        // Δ = 0.9 − 1.0 = −0.1; se = 0.05·√(1/2 + 1/2) = 0.05; t(0.975, 10) = 2.228139.
        let e = effect(&[0.9, 0.9], &[1.0, 1.0], Some((0.05, 10))).unwrap();
        assert!((e.diff + 0.1).abs() < 1e-12);
        assert!((e.ci_high - (-0.1 + 2.228139 * 0.05)).abs() < 1e-5, "{e:?}");
        assert_eq!(e.method, "pooled");
    }

    #[test]
    fn welch_without_a_pooled_estimate_and_none_for_single_runs() {
        let e = effect(&[1.0, 1.2], &[1.4, 1.6], None).unwrap();
        assert_eq!(e.method, "welch");
        assert!((e.df - 2.0).abs() < 1e-9 && e.ci_low < e.diff && e.diff < e.ci_high);
        assert_eq!(effect(&[1.0], &[1.1], None), None);
    }
}
