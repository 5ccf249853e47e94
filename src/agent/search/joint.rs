//! The joint move: every numeric knob at once, where a quadratic fitted to every
//! measurement on record (all seeds and repeats, as each experiment's mean and run count)
//! says the metric is lowest inside a trust region around the best. Reads the record back
//! from the history (each experiment's knob values from its parent's and its description),
//! so it is as stateless as the coordinate search. Never runs anything.

use super::memory::{Memory, moves};
use super::number::{Notation, Number};
use super::surrogate::{self, Point, Rng};
use super::{Knob, describe, rewrite};
use crate::agent::{Context, FileChange, Proposal, Usage, state_hash};
use crate::experiment::{Direction, ExperimentRecord, RUNS_KEY, SD_KEY, Status};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

/// How far (in doublings of each knob) from where the search started a value may go.
const BOX: f64 = 6.0;
/// Candidates drawn in the trust region per proposal.
const CANDIDATES: usize = 3000;
/// The trust region with noise, in doublings: fixed, because a discard there says more
/// about the noise than about the step, and the fit averages the noise out.
const NOISY_RADIUS: f64 = 2.0;
/// Points further than this (in doublings) from the best count less in the fit.
const BANDWIDTH: f64 = 3.0;

/// Every knob's value in one experiment, by knob index.
type Values = Vec<f64>;

/// One experiment as the joint move sees it.
struct Observed {
    values: Values,
    /// Oriented so that lower is better; `None` for a crash.
    y: Option<f64>,
    runs: f64,
}

/// The record read back: each experiment's knob values (where they can be known), and the
/// values the session started from.
fn observe(
    history: &[ExperimentRecord],
    best: &ExperimentRecord,
    knobs: &[Knob<'_>],
    direction: Direction,
) -> (Vec<Observed>, Values) {
    let index: HashMap<&str, usize> = knobs
        .iter()
        .enumerate()
        .map(|(i, k)| (k.constant.name.as_str(), i))
        .collect();
    let current: Values = knobs.iter().map(|k| k.constant.number.value).collect();
    let mut at: HashMap<&str, Values> = HashMap::new();
    at.insert(best.commit.as_str(), current.clone());
    // Walk the chain of keeps back from the best, undoing each one's moves.
    let (mut commit, mut values) = (best.commit.as_str(), current);
    while let Some(r) = history
        .iter()
        .rev()
        .find(|r| r.commit == commit && r.status == Status::Keep)
    {
        if r.iteration == 0 || r.parent.is_empty() {
            break;
        }
        // An LLM's keep (no move description): the code before it is another problem.
        let Some(ms) = moves(&r.description) else {
            break;
        };
        for m in ms {
            if let (Some(&k), Some(old)) = (index.get(m.name.as_str()), Number::parse(&m.old)) {
                values[k] = old.value;
            }
        }
        commit = r.parent.as_str();
        at.insert(commit, values.clone());
    }
    let start = values;
    let mut out = Vec::new();
    for r in history {
        if !matches!(r.status, Status::Keep | Status::Discard | Status::Crash) {
            continue;
        }
        let values = if let Some(v) = at
            .get(r.commit.as_str())
            .filter(|_| r.status == Status::Keep)
        {
            v.clone()
        } else {
            let (Some(parent), Some(ms)) = (at.get(r.parent.as_str()), moves(&r.description))
            else {
                continue;
            };
            let mut v = parent.clone();
            for m in ms {
                if let (Some(&k), Some(new)) = (index.get(m.name.as_str()), Number::parse(&m.new)) {
                    v[k] = new.value;
                }
            }
            v
        };
        let y = match (r.status, r.metric) {
            (Status::Crash, _) => None,
            (_, Some(m)) if m.is_finite() => Some(match direction {
                Direction::Minimize => m,
                Direction::Maximize => -m,
            }),
            _ => continue,
        };
        let runs = r.metrics.get(RUNS_KEY).copied().unwrap_or(1.0).max(1.0);
        out.push(Observed { values, y, runs });
    }
    (out, start)
}

/// The trust region's radius in doublings. Without noise it is replayed from the joint
/// moves on record: it doubles after a keep and shrinks after a discard or a crash. With
/// noise it is `NOISY_RADIUS`: the model's minimum may be a doubling away, and only a move
/// with a gain the keep rule can confirm is worth a run.
fn radius(history: &[ExperimentRecord], noisy: bool) -> f64 {
    if noisy {
        return NOISY_RADIUS;
    }
    let mut r: f64 = 1.0;
    for rec in history {
        if moves(&rec.description).is_none_or(|m| m.len() <= 1) {
            continue;
        }
        r = match rec.status {
            Status::Keep => (r * 2.0).min(4.0),
            Status::Discard => r * 0.7,
            Status::Crash => r * 0.5,
            _ => r,
        };
    }
    r.max(1.0 / 64.0)
}

/// The run-to-run noise on record: the standard deviation pooled over every experiment
/// measured more than once (0 for a deterministic script or before any repeat).
fn noise(history: &[ExperimentRecord]) -> f64 {
    let (mut ss, mut df) = (0.0, 0.0);
    for r in history {
        let (Some(&n), Some(&sd)) = (r.metrics.get(RUNS_KEY), r.metrics.get(SD_KEY)) else {
            continue;
        };
        if n >= 2.0 && sd.is_finite() {
            ss += (n - 1.0) * sd * sd;
            df += n - 1.0;
        }
    }
    if df > 0.0 { (ss / df).sqrt() } else { 0.0 }
}

/// The literal for `value` in the notation `n` was written in, kept an integer, a power
/// of two or a power; `None` when it would not be a valid value of its kind.
fn literal(n: &Number, value: f64, pow2: bool) -> Option<String> {
    match &n.notation {
        Notation::Pow { base, op, .. } => {
            let e = (value.ln() / (*base as f64).ln()).round();
            (1.0..=300.0)
                .contains(&e)
                .then(|| format!("{base}{op}{}", e as u32))
        }
        Notation::Int { .. } => {
            let v = if pow2 {
                2f64.powf(value.log2().round())
            } else {
                value.round()
            };
            if !(1.0..=1e15).contains(&v) {
                return None;
            }
            let new = Number::parse(&(v as u64).to_string())?;
            // Regrouped with underscores when the original had them.
            Some(match n.notation {
                Notation::Int { underscores: true } => group(v as u64),
                _ => new.text,
            })
        }
        // Three significant digits: finer than any gain a run can show, and the literal
        // does not grow a digit with every move.
        Notation::Plain { .. } | Notation::Sci { .. } => n.render_float_sig(value, 3),
    }
}

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push('_');
        }
        out.push(c);
    }
    out
}

/// A joint proposal, or `None` when the record cannot fit a model yet, the model sees no
/// gain inside the trust region (with `strict`, none of half the noise), or every promising point was run, barred or looks like a
/// crash (its nearest measured neighbour crashed).
pub(super) fn propose(
    ctx: &Context<'_>,
    knobs: &[Knob<'_>],
    memory: &Memory,
    tried: &HashSet<&str>,
    seed: u64,
    strict: bool,
) -> Option<Proposal> {
    let best = ctx.best?;
    let (observed, start) = observe(ctx.history, best, knobs, ctx.config.metric.direction);
    let current: Values = knobs.iter().map(|k| k.constant.number.value).collect();
    // The dimensions: positive knobs whose moves change the metric. Zero ("off") and
    // negative values are left to the coordinate search.
    let dims: Vec<usize> = (0..knobs.len())
        .filter(|&k| current[k] > 0.0 && start[k] > 0.0)
        .filter(|&k| !memory.inert.contains(&knobs[k].constant.name))
        .collect();
    let d = dims.len();
    if d < 2 {
        return None;
    }
    let to_z = |v: &Values| -> Option<Vec<f64>> {
        // A point that differs from the best in a knob outside the model is another problem.
        let outside = (0..knobs.len())
            .filter(|k| !dims.contains(k))
            .any(|k| (v[k] - current[k]).abs() > 1e-12 * current[k].abs().max(1e-300));
        if outside || dims.iter().any(|&k| v[k] <= 0.0) {
            return None;
        }
        Some(dims.iter().map(|&k| (v[k] / current[k]).log2()).collect())
    };
    let mut points = Vec::new();
    let mut crashes = Vec::new();
    for o in &observed {
        let Some(z) = to_z(&o.values) else { continue };
        match o.y {
            Some(y) => points.push(Point { z, y, runs: o.runs }),
            None => crashes.push(z),
        }
    }
    if points.len() < surrogate::params(d, false) + 1 {
        return None;
    }
    let full = d <= 8 && points.len() >= surrogate::params(d, true) + d;
    let model = full
        .then(|| surrogate::fit(&points, d, true, BANDWIDTH))
        .flatten()
        .or_else(|| surrogate::fit(&points, d, false, BANDWIDTH))?;
    let here = model.predict(&vec![0.0; d]);
    let sigma = noise(ctx.history);
    let rho = radius(ctx.history, sigma > 0.0);
    // `strict`: a move the model expects to gain less than half the noise waits until
    // nothing else is left (the keep rule could hardly confirm it, and a candidate as good
    // as the best is the one a noisy comparison keeps by mistake).
    let needed = if strict { 0.5 * sigma } else { 0.0 };
    // Bounds: BOX doublings either side of the start; a ratio or fraction stays ≤ 1.
    let bounds: Vec<(f64, f64)> = dims
        .iter()
        .map(|&k| {
            let s = (start[k] / current[k]).log2();
            let name = &knobs[k].constant.name;
            let mut hi = s + BOX;
            if (name.contains("RATIO") || name.contains("FRAC")) && start[k] <= 1.0 {
                hi = hi.min((1.0 / current[k]).log2());
            }
            (s - BOX, hi)
        })
        .collect();
    let mut rng = Rng::new(
        seed.wrapping_mul(1_000_003)
            .wrapping_add(ctx.history.len() as u64),
    );
    let mut candidates: Vec<Vec<f64>> = Vec::with_capacity(CANDIDATES + 1);
    if let Some(n) = model.newton() {
        // Towards the model's minimum, at most the radius in each knob.
        candidates.push(n.iter().map(|x| x.clamp(-rho, rho)).collect());
    }
    for _ in 0..CANDIDATES {
        candidates.push((0..d).map(|_| (2.0 * rng.unit() - 1.0) * rho).collect());
    }
    let mut scored: Vec<(f64, Vec<f64>)> = candidates
        .into_iter()
        .map(|z| {
            let z: Vec<f64> = z
                .iter()
                .zip(&bounds)
                .map(|(x, (lo, hi))| x.clamp(*lo, *hi))
                .collect();
            (model.predict(&z), z)
        })
        .filter(|(p, _)| p.is_finite() && *p < here - needed)
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (_, z) in scored.into_iter().take(200) {
        if let Some(p) = build(
            ctx, knobs, &dims, &current, &z, memory, tried, &points, &crashes,
        ) {
            return Some(p);
        }
    }
    None
}

/// The proposal for the point `z` (doublings from the best in each of `dims`), written in
/// each knob's own notation; `None` when it is a state already run, moves a knob to a
/// barred value, changes nothing, or lies nearer a crash than any good run.
#[expect(clippy::too_many_arguments)]
fn build(
    ctx: &Context<'_>,
    knobs: &[Knob<'_>],
    dims: &[usize],
    current: &Values,
    z: &[f64],
    memory: &Memory,
    tried: &HashSet<&str>,
    points: &[Point],
    crashes: &[Vec<f64>],
) -> Option<Proposal> {
    let mut changed: Vec<(usize, String, f64)> = Vec::new();
    let mut realized = Vec::with_capacity(dims.len());
    for (i, &k) in dims.iter().enumerate() {
        let n = &knobs[k].constant.number;
        let pow2 = knobs[k].constant.keeps_power_of_two();
        let text = literal(n, current[k] * z[i].exp2(), pow2)?;
        let value = Number::parse(&text)?.value;
        realized.push((value / current[k]).log2());
        if text != n.text {
            if memory.barred(&knobs[k].constant.name, n.value, value) {
                return None;
            }
            changed.push((k, text, value));
        }
    }
    if changed.is_empty() {
        return None;
    }
    let dist = |a: &[f64]| -> f64 { a.iter().zip(&realized).map(|(x, y)| (x - y).powi(2)).sum() };
    // Off the cliff: not nearer a crash than any good run, and not inside the ball around a
    // crash that reaches to the good run nearest it.
    let nearest_good = points
        .iter()
        .map(|p| dist(&p.z))
        .fold(f64::INFINITY, f64::min);
    let near_crash = crashes.iter().any(|c| {
        let ball = points
            .iter()
            .map(|p| p.z.iter().zip(c).map(|(x, y)| (x - y).powi(2)).sum::<f64>())
            .fold(f64::INFINITY, f64::min);
        dist(c) < nearest_good || dist(c) < ball
    });
    if near_crash {
        return None;
    }
    // Edit each file from its last constant up, so earlier spans stay valid.
    let mut files: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut order = changed.clone();
    order.sort_by_key(|(k, _, _)| std::cmp::Reverse(knobs[*k].constant.span.start));
    for (k, text, value) in &order {
        let knob = &knobs[*k];
        let entry = files
            .entry(knob.path.to_path_buf())
            .or_insert_with(|| ctx.files.get(knob.path).cloned().unwrap_or_default());
        *entry = rewrite(entry, &knob.constant, text, *value);
    }
    let mut state = ctx.files.clone();
    for (p, t) in &files {
        state.insert(p.clone(), t.clone());
    }
    if tried.contains(state_hash(&state).as_str()) {
        return None;
    }
    // Described in file order; the category is that of the largest move.
    changed.sort_by_key(|(k, _, _)| *k);
    let description = changed
        .iter()
        .map(|(k, t, _)| describe(&knobs[*k].constant.name, &knobs[*k].constant.number.text, t))
        .collect::<Vec<_>>()
        .join(", ");
    let category = dims
        .iter()
        .zip(&realized)
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .map(|(&k, _)| knobs[k].constant.category)
        .unwrap_or_default();
    Some(Proposal {
        description,
        category,
        changes: files
            .into_iter()
            .map(|(path, contents)| FileChange { path, contents })
            .collect(),
        scratchpad: None,
        usage: Usage::default(),
    })
}
