//! A run's training curve: read from its own progress lines (karpathy's `step 00123
//! (45.6%) | loss: 3.2100 | …`, or a configured regex), sampled to a bounded size. Pure:
//! it parses strings it is handed and never reads a file or runs anything.

use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// The most points a curve keeps: one per 1/`MAX_POINTS` of the budget, the last line of
/// each such slice. 200 points of two numbers each are about 4 KiB of JSON per run.
pub const MAX_POINTS: usize = 200;

/// karpathy's train.py: `step 00123 (45.6%) | loss: 3.210000 | …` (its lines end in `\r`).
const KARPATHY: &str = r"step\s+\d+\s+\((?P<progress>[0-9]+(?:\.[0-9]*)?)%\)\s*\|\s*loss:\s*(?P<value>[-+]?[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)";

fn karpathy() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(KARPATHY).expect("the built-in curve pattern is valid"))
}

/// How a progress line is read: the curve's value and, where the line says it, how far
/// through the budget the run is (a percentage).
#[derive(Debug, Clone, Default)]
pub struct CurveSpec {
    /// `[prune] curve`: the value in group `value` (else group 1), the progress in percent
    /// in group `progress` (else group 2), when present. None: karpathy's lines.
    pub regex: Option<Regex>,
}

impl PartialEq for CurveSpec {
    fn eq(&self, other: &Self) -> bool {
        self.regex.as_ref().map(Regex::as_str) == other.regex.as_ref().map(Regex::as_str)
    }
}

impl CurveSpec {
    /// The value and the progress (a fraction of the budget, 0–1) on `line`, if it is a
    /// progress line. A line may hold several `\r`-separated updates: the last one counts.
    pub fn parse(&self, line: &str) -> Option<(f64, Option<f64>)> {
        // Most lines of a flood are not progress lines: a substring search rules them out
        // before the regex runs.
        if self.regex.is_none() && !line.contains("loss:") {
            return None;
        }
        let re = self.regex.as_ref().unwrap_or_else(|| karpathy());
        let caps = re.captures_iter(line).last()?;
        let group = |name: &str, index: usize| {
            caps.name(name)
                .or_else(|| {
                    // Positional groups only when the pattern names none.
                    (re.capture_names().flatten().next().is_none())
                        .then(|| caps.get(index))
                        .flatten()
                })
                .and_then(|m| m.as_str().trim().parse::<f64>().ok())
        };
        let value = group("value", 1).filter(|v| v.is_finite())?;
        let progress = group("progress", 2)
            .filter(|p| p.is_finite())
            .map(|p| (p / 100.0).clamp(0.0, 1.0));
        Some((value, progress))
    }
}

/// Sampled (fraction of the budget, value) points of one run, in order of progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    pub points: Vec<(f64, f64)>,
}

impl Curve {
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Adds a point; a point in the same 1/`MAX_POINTS` slice as the last one replaces it,
    /// and one that goes backwards is ignored, so the curve never exceeds `MAX_POINTS + 1`.
    pub fn push(&mut self, frac: f64, value: f64) {
        if !frac.is_finite() || !value.is_finite() {
            return;
        }
        let slice = |f: f64| (f * MAX_POINTS as f64).floor() as i64;
        match self.points.last_mut() {
            Some(last) if frac < last.0 => {}
            Some(last) if slice(frac) == slice(last.0) => *last = (frac, value),
            _ => self.points.push((frac, value)),
        }
    }

    /// The furthest fraction the curve reaches.
    pub fn reach(&self) -> f64 {
        self.points.last().map_or(0.0, |p| p.0)
    }

    /// The value at `frac`, linearly interpolated; None outside the points.
    pub fn at(&self, frac: f64) -> Option<f64> {
        let first = self.points.first()?;
        if frac < first.0 || frac > self.reach() {
            return None;
        }
        let i = self.points.partition_point(|p| p.0 < frac);
        let hi = self.points.get(i)?;
        if i == 0 || hi.0 == frac {
            return Some(hi.1);
        }
        let lo = self.points[i - 1];
        let w = (frac - lo.0) / (hi.0 - lo.0);
        Some(lo.1 + w * (hi.1 - lo.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_karpathys_progress_lines() {
        let spec = CurveSpec::default();
        let line = "step 00123 (45.6%) | loss: 3.210000 | lrm: 1.00 | dt: 300ms | tok/sec: 1,000";
        assert_eq!(spec.parse(line), Some((3.21, Some(0.456))));
        // Several updates on one line (`\r` without a newline): the last.
        let two = "\rstep 00001 (1.0%) | loss: 9.000000\rstep 00002 (2.0%) | loss: 8.500000";
        assert_eq!(spec.parse(two), Some((8.5, Some(0.02))));
        assert_eq!(spec.parse("val_bpb: 0.99"), None);
    }

    #[test]
    fn a_configured_regex_with_or_without_progress() {
        let named = CurveSpec {
            regex: Some(Regex::new(r"it (?P<progress>\d+)% train=(?P<value>[0-9.]+)").unwrap()),
        };
        assert_eq!(named.parse("it 50% train=1.5"), Some((1.5, Some(0.5))));
        let plain = CurveSpec {
            regex: Some(Regex::new(r"loss=([0-9.]+)").unwrap()),
        };
        assert_eq!(plain.parse("epoch 3 loss=0.25"), Some((0.25, None)));
        assert_eq!(plain.parse("loss=nan"), None);
    }

    #[test]
    fn a_curve_stays_bounded_and_interpolates() {
        let mut c = Curve::default();
        for i in 0..=100_000 {
            let f = f64::from(i) / 100_000.0;
            c.push(f, 10.0 - 5.0 * f);
        }
        assert!(c.points.len() <= MAX_POINTS + 1, "{}", c.points.len());
        assert!((c.reach() - 1.0).abs() < 1e-12);
        let v = c.at(0.5).unwrap();
        assert!((v - 7.5).abs() < 1e-3, "{v}");
        c.push(0.2, 0.0); // backwards: ignored
        assert!((c.at(1.0).unwrap() - 5.0).abs() < 1e-9);
        assert_eq!(Curve::default().at(0.5), None);
        let short = Curve {
            points: vec![(0.1, 3.0), (0.3, 2.0)],
        };
        assert_eq!(short.at(0.5), None);
        assert_eq!(short.at(0.05), None);
        assert!((short.at(0.2).unwrap() - 2.5).abs() < 1e-12);
    }
}
