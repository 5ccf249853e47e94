//! The per-worker section of `status` and the summary: how many runs each worker ran, its
//! seconds of training and in the scheduler's queue, and its duty cycle (training over the
//! wall time from its first run's submission to its last run's end).

use crate::store::WorkerRun;
use std::collections::BTreeMap;
use std::time::Duration;

/// One worker's totals.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerTotals {
    pub worker: usize,
    pub device: String,
    pub runs: usize,
    pub training_s: f64,
    pub queue_s: f64,
    /// Training seconds over the wall seconds it was in use; None when the span is unknown.
    pub duty: Option<f64>,
}

fn epoch_s(at: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|t| t.timestamp() as f64)
}

/// Totals per worker, in worker order.
pub fn totals(runs: &[WorkerRun]) -> Vec<WorkerTotals> {
    let mut by: BTreeMap<usize, Vec<&WorkerRun>> = BTreeMap::new();
    for r in runs {
        by.entry(r.worker).or_default().push(r);
    }
    by.into_iter()
        .map(|(worker, rs)| {
            let training_s: f64 = rs.iter().map(|r| r.duration_s).sum();
            let queue_s: f64 = rs.iter().filter_map(|r| r.queue_s).sum();
            let starts = rs
                .iter()
                .filter_map(|r| Some(epoch_s(&r.at)? - r.duration_s - r.queue_s.unwrap_or(0.0)));
            let first = starts.fold(f64::INFINITY, f64::min);
            let last = rs
                .iter()
                .filter_map(|r| epoch_s(&r.at))
                .fold(f64::NEG_INFINITY, f64::max);
            // End times are kept to the second: a span under a second says nothing.
            let span = last - first;
            let duty = (span.is_finite() && span >= 1.0).then(|| (training_s / span).min(1.0));
            WorkerTotals {
                worker,
                device: rs.last().map(|r| r.device.clone()).unwrap_or_default(),
                runs: rs.len(),
                training_s,
                queue_s,
                duty,
            }
        })
        .collect()
}

/// The markdown section, or None when no run had a worker (sessions of earlier releases).
pub fn render_workers(runs: &[WorkerRun]) -> Option<String> {
    let t = totals(runs);
    if t.is_empty() {
        return None;
    }
    let dur = |s: f64| super::fmt_duration(Duration::from_secs_f64(s.max(0.0)));
    let mut md = String::from(
        "\n## Workers\n\n| worker | device | runs | training | queued | duty cycle |\n|---:|---|---:|---:|---:|---:|\n",
    );
    for w in &t {
        let duty = w
            .duty
            .map_or_else(|| "—".to_string(), |d| format!("{d:.2}"));
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {duty} |\n",
            w.worker,
            w.device.replace('|', "/"),
            w.runs,
            dur(w.training_s),
            dur(w.queue_s),
        ));
    }
    md.push_str(
        "\nDuty cycle: training time over the time from the worker's first run's submission to its last run's end; time in the queue never counts against the budget.\n",
    );
    Some(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(worker: usize, at: &str, duration_s: f64, queue_s: Option<f64>) -> WorkerRun {
        WorkerRun {
            worker,
            device: "cpu".into(),
            at: at.into(),
            duration_s,
            queue_s,
        }
    }

    #[test]
    fn duty_cycle_counts_the_queue_as_idle() {
        let runs = [
            run(1, "2026-12-01T10:01:40Z", 100.0, Some(0.0)),
            run(1, "2026-12-01T10:03:40Z", 100.0, Some(20.0)),
            run(2, "2026-12-01T10:01:40Z", 100.0, None),
        ];
        let t = totals(&runs);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].runs, t[0].training_s, t[0].queue_s), (2, 200.0, 20.0));
        // 200 s of training from 10:00:00 to 10:03:40 (220 s).
        assert!((t[0].duty.unwrap() - 200.0 / 220.0).abs() < 1e-9, "{t:?}");
        assert_eq!(t[1].duty, Some(1.0));
        let md = render_workers(&runs).unwrap();
        assert!(md.contains("| 1 | cpu | 2 |"), "{md}");
        assert!(md.contains("0.91"), "{md}");
        assert!(render_workers(&[]).is_none());
    }
}
