//! The pruning rule: whether a run whose training curve is already worse than the best's
//! at the same fraction of the budget can still win, with a bounded chance of stopping one
//! that would have. Pure: it is handed the runs on record and one run's curve point by
//! point, and only says "go on" or "prune, because …".
//!
//! The model. Every finished run on record has a curve `y(f)` and a final value `v`. At a
//! look at fraction `f`, the final value is fitted by least squares on the curve's level
//! there (its mean over the last 5% of the budget) and its slope (the level less the level
//! 15% earlier) over every finished run, so that curves that fall late (and cross) are
//! told from curves that are simply worse; with fewer than five such runs, the mean drop
//! from the level to the final value stands in. The candidate is pruned only when the
//! one-sided prediction bound at `1 − α·w/K` (Student's t on the fit's degrees of freedom,
//! with the leverage of a new point) still leaves it worse than the best's mean: `K` looks
//! (`start`, `start + 10%`, … up to 95%), `w` the session's smoothed share of candidates
//! kept. Under that linear model with Gaussian residuals, P(pruned and would have beaten
//! the best's mean) ≤ α·w at each run, so with `w` the chance of winning, P(pruned |
//! would have won) ≤ α (5% by default). The residual spread holds the seed noise, the
//! train-versus-validation gap and how much codes' curves cross, as seen so far;
//! selection on the curve (runs pruned earlier are missing) does not bias a fit on it.
//!
//! A second condition keeps the reading of "clearly worse at the same point": the
//! run's value must also be beyond the best's own curves at that fraction by more than
//! their seed spread (the pooled spread of every code run on several seeds) at the same
//! level, when a spread is known. Nothing is pruned before `start`, before `min_runs`
//! finished runs of `min_codes` different codes have curves, or without a curve of the best.

use super::curve::Curve;
use super::stats::{mean, student_t_inv_cdf};
use crate::config::PruneConfig;
use crate::experiment::Direction;

/// The looks are this far apart (fractions of the budget).
pub const LOOK_EVERY: f64 = 0.1;
/// No look after this fraction: the run is nearly done.
pub const LAST_LOOK: f64 = 0.95;
/// The most finished runs the model keeps (the latest).
pub const MAX_HISTORY: usize = 400;

/// One finished run on record.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// Which code it ran (the state hash, or anything equal for runs of one code).
    pub code: String,
    pub curve: Curve,
    /// Its final metric.
    pub value: f64,
}

/// What a candidate is judged against: the runs on record and which of them are the best's.
#[derive(Debug, Clone)]
pub struct Reference {
    direction: Direction,
    history: Vec<Finished>,
    best_code: String,
    /// The best's mean final value.
    best_value: f64,
    start: f64,
    alpha: f64,
    min_runs: usize,
    min_codes: usize,
    /// The share of candidates on record that won (kept), smoothed: the bound is spent
    /// on winners only, so `alpha` is scaled by it.
    win_rate: f64,
    /// What the curve's value is called in notes (`loss` for karpathy's lines).
    curve_name: String,
    metric_name: String,
}

/// The rule's answer at one look.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    GoOn,
    /// Stop the run: `pruned at 45% (loss 3.410 vs best 3.120 ± 0.03); heading for …`,
    /// the short note up to the `;`, then the evidence.
    Prune(String),
}

impl Reference {
    /// The reference for a candidate of the best `best_code` (its mean `best_value`), given
    /// the finished runs on record (any order; the latest `MAX_HISTORY` are kept).
    pub fn new(
        cfg: &PruneConfig,
        direction: Direction,
        metric_name: &str,
        mut history: Vec<Finished>,
        best_code: &str,
        best_value: f64,
        win_rate: f64,
    ) -> Reference {
        history.retain(|f| !f.curve.is_empty() && f.value.is_finite());
        if history.len() > MAX_HISTORY {
            history.drain(..history.len() - MAX_HISTORY);
        }
        Reference {
            direction,
            history,
            best_code: best_code.to_string(),
            best_value,
            start: cfg.start,
            alpha: cfg.alpha,
            min_runs: cfg.min_runs as usize,
            min_codes: cfg.min_codes as usize,
            win_rate: win_rate.clamp(0.0, 1.0),
            curve_name: if cfg.curve.regex.is_some() {
                "curve".into()
            } else {
                "loss".into()
            },
            metric_name: metric_name.to_string(),
        }
    }

    /// The fractions at which the rule looks: `start`, `start + 10%`, … up to 95%.
    pub fn looks(&self) -> Vec<f64> {
        let mut out = Vec::new();
        let mut f = self.start.max(0.0);
        while f <= LAST_LOOK + 1e-9 {
            out.push(f);
            f += LOOK_EVERY;
        }
        out
    }

    /// Whether the rule could ever prune with this record (enough runs and codes, a curve
    /// of the best).
    pub fn armed(&self) -> bool {
        let mut codes: Vec<&str> = self.history.iter().map(|f| f.code.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        self.history.len() >= self.min_runs
            && codes.len() >= self.min_codes
            && codes.contains(&self.best_code.as_str())
            && !self.looks().is_empty()
    }

    /// The sign that makes lower better.
    fn sign(&self) -> f64 {
        match self.direction {
            Direction::Minimize => 1.0,
            Direction::Maximize => -1.0,
        }
    }

    /// Where the candidate is heading (lower is better) and the one-sided bound at `level`
    /// on how much better it could still end: a least-squares fit of the final value on
    /// the curve's level (its mean over the last 5% of the budget) and its slope (the level
    /// less the level 15% earlier) over every finished run; with fewer than five runs that
    /// reach back that far, the mean drop from the level to the final value instead.
    fn predict(
        &self,
        at: &[(&Finished, f64)],
        cand: &Curve,
        frac: f64,
        level: f64,
    ) -> Option<(f64, f64)> {
        let s = self.sign();
        let feats = |c: &Curve| -> Option<[f64; 2]> {
            let now = window(c, frac)?;
            let back = window(c, frac - 0.15)?;
            Some([s * now, s * (now - back)])
        };
        let mut rows = Vec::new();
        let mut ts = Vec::new();
        for (r, _) in at {
            if let Some(f) = feats(&r.curve) {
                rows.push(f);
                ts.push(s * r.value);
            }
        }
        if let (Some(x0), true) = (feats(cand), rows.len() >= 5) {
            let (p, se, df) = ols2(&rows, &ts, x0)?;
            return Some((p, student_t_inv_cdf(level, df as f64) * se));
        }
        let drops: Vec<f64> = at.iter().map(|(r, y)| s * (y - r.value)).collect();
        let (d_mean, d_sd) = (mean(&drops)?, super::stats::std_dev(&drops)?);
        let m = drops.len() as f64;
        let value = window(cand, frac)?;
        Some((
            s * value - d_mean,
            student_t_inv_cdf(level, m - 1.0) * d_sd * (1.0 + 1.0 / m).sqrt(),
        ))
    }

    /// The call for a candidate whose curve is at `value` at fraction `frac` (one look).
    pub fn judge(&self, frac: f64, value: f64) -> Call {
        let c = Curve {
            points: vec![(frac, value)],
        };
        self.judge_curve(&c, frac, value)
    }

    /// [`Reference::judge`] with the candidate's curve so far (its shape sharpens the
    /// prediction).
    pub fn judge_curve(&self, cand: &Curve, frac: f64, value: f64) -> Call {
        let k = self.looks().len();
        if k == 0 || frac < self.start || !value.is_finite() {
            return Call::GoOn;
        }
        let level = 1.0 - self.alpha * self.win_rate / k as f64;
        let s = self.sign();
        // The drops of every finished run that reaches this fraction.
        let at: Vec<(&Finished, f64)> = self
            .history
            .iter()
            .filter_map(|r| Some((r, r.curve.at(frac)?)))
            .collect();
        let mut codes: Vec<&str> = at.iter().map(|(r, _)| r.code.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        let m = at.len();
        if m < self.min_runs.max(2) || codes.len() < self.min_codes {
            return Call::GoOn;
        }
        let (projected, bound) = match self.predict(&at, cand, frac, level) {
            Some(p) => p,
            None => return Call::GoOn,
        };
        let excess = projected - s * self.best_value;
        if excess.is_nan() || excess <= bound.max(0.0) {
            return Call::GoOn;
        }
        // Clearly worse than the best's own curves here, beyond their seed spread.
        let best: Vec<f64> = at
            .iter()
            .filter(|(r, _)| r.code == self.best_code)
            .map(|(_, y)| *y)
            .collect();
        let Some(best_now) = mean(&best) else {
            return Call::GoOn;
        };
        let gap = s * (value - best_now);
        let spread = seed_spread(&at);
        if let Some((sd, df)) = spread {
            let need =
                student_t_inv_cdf(level, df as f64) * sd * (1.0 + 1.0 / best.len() as f64).sqrt();
            if gap.is_nan() || gap <= need {
                return Call::GoOn;
            }
        } else if gap.is_nan() || gap <= 0.0 {
            return Call::GoOn;
        }
        let plus_minus = spread.map_or(String::new(), |(sd, _)| format!(" ± {}", short(sd)));
        let heading = s * projected;
        Call::Prune(format!(
            "pruned at {:.0}% ({} {} vs best {}{plus_minus}); heading for {} {} vs best {}, bound +{}",
            100.0 * frac,
            self.curve_name,
            short(value),
            short(best_now),
            self.metric_name,
            short(heading),
            short(self.best_value),
            short(bound.max(0.0)),
        ))
    }
}

/// The mean of `c` over the 5% of the budget up to `f`.
fn window(c: &Curve, f: f64) -> Option<f64> {
    if f < 0.0 || c.at(f).is_none() {
        return None;
    }
    let pts: Vec<f64> = c
        .points
        .iter()
        .filter(|p| p.0 <= f && p.0 >= f - 0.05)
        .map(|p| p.1)
        .collect();
    if pts.is_empty() { c.at(f) } else { mean(&pts) }
}

/// Least squares `t = b0 + b1·x1 + b2·x2`: the prediction at `x0`, the standard error of
/// a new observation there, and the residual degrees of freedom.
fn ols2(rows: &[[f64; 2]], ts: &[f64], x0: [f64; 2]) -> Option<(f64, f64, usize)> {
    let n = rows.len();
    if n < 5 {
        return None;
    }
    let x = |r: &[f64; 2]| [1.0, r[0], r[1]];
    let mut xtx = [[0.0; 3]; 3];
    let mut xty = [0.0; 3];
    for (r, t) in rows.iter().zip(ts) {
        let v = x(r);
        for i in 0..3 {
            xty[i] += v[i] * t;
            for j in 0..3 {
                xtx[i][j] += v[i] * v[j];
            }
        }
    }
    let inv = inverse3(xtx)?;
    let beta: Vec<f64> = (0..3)
        .map(|i| (0..3).map(|j| inv[i][j] * xty[j]).sum())
        .collect();
    let sse: f64 = rows
        .iter()
        .zip(ts)
        .map(|(r, t)| {
            let v = x(r);
            (t - (0..3).map(|i| beta[i] * v[i]).sum::<f64>()).powi(2)
        })
        .sum();
    let df = n - 3;
    let sd = (sse / df as f64).sqrt();
    let v0 = x(&x0);
    let pred: f64 = (0..3).map(|i| beta[i] * v0[i]).sum();
    let lev: f64 = (0..3)
        .map(|i| (0..3).map(|j| v0[i] * inv[i][j] * v0[j]).sum::<f64>())
        .sum();
    Some((pred, sd * (1.0 + lev).sqrt(), df))
}

/// The inverse of a 3×3 matrix; None when it is singular.
fn inverse3(m: [[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    if det.abs() < 1e-300 || !det.is_finite() {
        return None;
    }
    // The adjugate's cyclic form: entry (i, j) is the cofactor of (j, i), sign included.
    Some(std::array::from_fn(|i| {
        std::array::from_fn(|j| {
            let (a, b) = ((j + 1) % 3, (j + 2) % 3);
            let (c, d) = ((i + 1) % 3, (i + 2) % 3);
            (m[a][c] * m[b][d] - m[a][d] * m[b][c]) / det
        })
    }))
}

/// The pooled within-code standard deviation of the curve values at one fraction (codes
/// with several runs), and its degrees of freedom.
fn seed_spread(at: &[(&Finished, f64)]) -> Option<(f64, usize)> {
    let mut by_code: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for (r, y) in at {
        by_code.entry(r.code.as_str()).or_default().push(*y);
    }
    let (mut ss, mut df) = (0.0, 0usize);
    for ys in by_code.values().filter(|ys| ys.len() > 1) {
        let m = ys.iter().sum::<f64>() / ys.len() as f64;
        ss += ys.iter().map(|y| (y - m).powi(2)).sum::<f64>();
        df += ys.len() - 1;
    }
    (df > 0).then(|| ((ss / df as f64).sqrt(), df))
}

/// Four significant digits, the way the notes show numbers.
fn short(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = (3 - x.abs().log10().floor() as i32).clamp(0, 8) as usize;
    format!("{x:.digits$}")
}

/// One run's way through the looks: hands each new point to the rule once per look.
#[derive(Debug, Clone)]
pub struct Watch {
    reference: std::sync::Arc<Reference>,
    looks: Vec<f64>,
    next: usize,
    curve: Curve,
    /// Set once the rule said prune.
    pub verdict: Option<String>,
}

impl Watch {
    pub fn new(reference: std::sync::Arc<Reference>) -> Watch {
        let looks = reference.looks();
        Watch {
            reference,
            looks,
            next: 0,
            curve: Curve::default(),
            verdict: None,
        }
    }

    /// A new point of the running curve; the note when the run is to be pruned now.
    pub fn point(&mut self, frac: f64, value: f64) -> Option<&str> {
        if self.verdict.is_some() {
            return None;
        }
        self.curve.push(frac, value);
        let mut due = false;
        while self.looks.get(self.next).is_some_and(|&f| frac >= f) {
            self.next += 1;
            due = true;
        }
        if !due {
            return None;
        }
        if let Call::Prune(note) = self.reference.judge_curve(&self.curve, frac, value) {
            self.verdict = Some(note);
        }
        self.verdict.as_deref()
    }
}

#[cfg(test)]
#[path = "prune_tests.rs"]
mod tests;
