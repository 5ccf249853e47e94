//! The keep/discard rule as a pure state machine: given the noise estimate and the (seed,
//! value) runs of the best and of a candidate, say keep, discard, or "run these seeds first".
//! Never runs anything itself; the session loop measures and calls [`decide`] again.
//!
//! # The rule (noise-aware mode)
//! Let Δ be the candidate's gain over the best (positive = better). When every candidate run
//! has a best run with the same seed, Δ is the mean of the paired gains, i.e. the candidate's
//! mean against the best's mean *on the same seeds*, so seed effects cancel; otherwise it is
//! the plain difference of the means. With σ̂ the pooled run-to-run noise ([`NoiseModel`]),
//! the threshold is `max(min_delta, z'·σ̂)`, where z' = [`z_multiplier`]`(z, df)` is z
//! widened to Student's t for the df behind σ̂ (4.53 for z = 2 after a 3-run baseline, 2.13
//! at 20 df, → z). In simulation (`tests/decision_props.rs`, independent Gaussian noise, a
//! fresh 3-run baseline each time) a plain z·σ̂ kept one noise-only change in eight, since σ̂
//! from 2 df is often far too small; with z' the whole rule keeps about 7 % (greedy: 50 %).
//! 1. Δ ≤ 0 → discard. Equal is never a keep: the simpler code (the best) wins a tie.
//! 2. σ̂ = 0 (every repeat so far agreed: a deterministic script) → keep iff Δ > min_delta,
//!    after one run. Repeating a deterministic script would only cost time. The candidate's
//!    own determinism is not re-verified; a drift recheck of the best would reveal a kept
//!    change that broke it (its repeats would disagree and σ̂ would leave 0).
//! 3. Δ > threshold with ≥ 2 candidate runs → keep.
//! 4. Δ > [`CLEAR_MARGIN`] × threshold after ONE run → keep at once, but only when σ̂ rests
//!    on at least 2 degrees of freedom (e.g. three baseline runs). With well-estimated σ
//!    and z = 2 this is a 4σ gain, which a noise-only change reaches in one paired run
//!    with probability < 0.3 %. This is the only single-run keep outside rule 2.
//! 5. Otherwise (a near miss, an unconfirmed single run, or σ unknown) → measure the
//!    candidate with one more seed, taken from the seeds the best was measured with (paired),
//!    up to `1 + confirm_runs` candidate runs per visit. One seed at a time, so a candidate that
//!    turns out no better stops early (rule 1) and one that clears rule 3 stops early too.
//! 6. No seeds left: keep only with ≥ 2 candidate runs, Δ > min_delta and a one-sided test
//!    at [`ALPHA`] = 0.05: a paired t-test on the gains when every run is paired and the
//!    pairs carry more df than σ̂ (early in a session), else a two-sample t-test of the
//!    candidate's mean against the mean of all the best's seeds, with the pooled σ̂ and its
//!    df (see `confirm` for why).
//!
//! # Revisits ([`decide_again`])
//! When the proposer has nothing new, the session may measure a near miss again (see
//! `session::revisit`). The rules above then apply to all its runs, earlier visits' and
//! this one's: seeds new to the candidate (the best's first, then fresh ones), at most
//! `1 + confirm_runs` new runs per visit, and rule 6 at α/k on the k-th visit
//! ([`Earlier::alpha`]), so that looking again and again does not let noise through.
//!
//! Why paired t and not Wilcoxon's signed-rank test for rule 6: with `confirm_runs = 2` there
//! are at most 3 pairs, and Wilcoxon's exact one-sided p can never go below 2⁻³ = 0.125, so
//! it could never confirm anything at α = 0.05. The t-test's normality assumption is mild
//! here: a training metric's run-to-run noise is a sum of many small effects (init, data
//! order, kernels), and the paired gains are close to Gaussian. Wilcoxon stays available in
//! [`crate::decision::stats`] for larger samples (rechecks, benchmarks).
//!
//! # Greedy mode
//! Karpathy's rule: one run each, keep iff strictly better. No repeats, no rechecks.

use crate::config::{DecisionConfig, DecisionMode};
use crate::decision::stats::{self, Alternative};
use crate::experiment::{Direction, Status};

/// One run: the seed it was given (`AUTORESEARCH_SEED`) and the metric it printed.
pub type Measurement = (u64, f64);

/// One-sided significance level of the confirmation test (rule 6). Fixed rather than
/// configurable: the knobs users reason about are `z` and `confirm_runs`.
pub const ALPHA: f64 = 0.05;

/// A single run is kept only if its gain exceeds this many thresholds (rule 4).
pub const CLEAR_MARGIN: f64 = 2.0;

/// The decision settings the issue specifies as defaults (noise-aware, k = 3, z = 2, two
/// confirmation runs, recheck the best every 10 experiments). `DecisionConfig::default()`
/// is all zeros; the config loader should start from this.
pub fn default_config() -> DecisionConfig {
    DecisionConfig {
        mode: DecisionMode::NoiseAware,
        baseline_runs: 3,
        min_delta: 0.0,
        z: 2.0,
        confirm_runs: 2,
        recheck_every: 10,
        revisits: 6,
    }
}

/// The i-th seed of the fixed seed sequence (0-based index → seeds 1, 2, 3, …). Every code
/// version is measured on a prefix of the same sequence, which is what makes runs pair up.
pub fn seed(i: usize) -> u64 {
    i as u64 + 1
}

/// What to do with a candidate.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Keep {
        evidence: String,
    },
    Discard {
        evidence: String,
    },
    /// Run the candidate again with these seeds, then call [`decide`] again.
    Measure {
        seeds: Vec<u64>,
        evidence: String,
    },
}

impl Verdict {
    pub fn evidence(&self) -> &str {
        match self {
            Verdict::Keep { evidence }
            | Verdict::Discard { evidence }
            | Verdict::Measure { evidence, .. } => evidence,
        }
    }

    pub fn is_keep(&self) -> bool {
        matches!(self, Verdict::Keep { .. })
    }

    /// The final status, or `None` while more runs are wanted.
    pub fn status(&self) -> Option<Status> {
        match self {
            Verdict::Keep { .. } => Some(Status::Keep),
            Verdict::Discard { .. } => Some(Status::Discard),
            Verdict::Measure { .. } => None,
        }
    }
}

/// The run-to-run noise: the within-group variance pooled over every group of repeated runs
/// of the same code (baseline, confirmations, rechecks of the best), weighted by degrees of
/// freedom. Single runs carry no information about spread and are ignored.
///
/// One group per code version (commit), whatever its verdict: a discarded candidate's three
/// runs measure the noise as well as the baseline's. When a version gains runs (a recheck of
/// the best), rebuild with [`NoiseModel::from_groups`] rather than adding the group twice.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NoiseModel {
    sum_sq: f64,
    df: u64,
    measurements: u64,
}

impl NoiseModel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the model from groups of values, one group per code version.
    pub fn from_groups<'a, I: IntoIterator<Item = &'a [f64]>>(groups: I) -> Self {
        let mut m = Self::new();
        for g in groups {
            m.add_group(g);
        }
        m
    }

    /// Adds one code version's repeated values (ignored with fewer than two, or if one is
    /// not finite: a NaN must not poison the estimate).
    pub fn add_group(&mut self, values: &[f64]) {
        if values.len() < 2 || values.iter().any(|v| !v.is_finite()) {
            return;
        }
        if let Some(var) = stats::variance(values) {
            let df = values.len() as u64 - 1;
            self.sum_sq += var * df as f64;
            self.df += df;
            self.measurements += values.len() as u64;
        }
    }

    /// Adds one code version's runs.
    pub fn add_runs(&mut self, runs: &[Measurement]) {
        let values: Vec<f64> = runs.iter().map(|m| m.1).collect();
        self.add_group(&values);
    }

    /// The pooled standard deviation of one run; `None` until some code ran twice.
    pub fn sigma(&self) -> Option<f64> {
        (self.df > 0).then(|| (self.sum_sq / self.df as f64).sqrt())
    }

    /// Degrees of freedom behind σ: Σ (runs − 1) over the groups.
    pub fn df(&self) -> u64 {
        self.df
    }

    /// Number of runs behind σ.
    pub fn measurements(&self) -> u64 {
        self.measurements
    }

    /// True when σ is known and exactly 0: every repeat so far agreed to the last bit.
    pub fn is_deterministic(&self) -> bool {
        self.sigma() == Some(0.0)
    }

    /// For the progress report, e.g. `σ=0.0021 (7 runs, df=4)`.
    pub fn summary(&self) -> String {
        match self.sigma() {
            None => "σ unknown (no repeated runs yet)".to_string(),
            Some(0.0) => format!("σ=0, deterministic ({} runs)", self.measurements),
            Some(s) => format!("σ={} ({} runs, df={})", num(s), self.measurements, self.df),
        }
    }
}

/// Seeds for the baseline runs: one in greedy mode, `baseline_runs` (at least 1) otherwise.
pub fn baseline_plan(cfg: &DecisionConfig) -> Vec<u64> {
    let k = match cfg.mode {
        DecisionMode::Greedy => 1,
        DecisionMode::NoiseAware => cfg.baseline_runs.max(1) as usize,
    };
    (0..k).map(seed).collect()
}

/// Whether the baseline needs another run after `values_so_far`. Stops early once two or
/// more runs agree exactly: σ = 0, and a third identical number would cost a run for nothing.
pub fn baseline_needs_more(cfg: &DecisionConfig, values_so_far: &[f64]) -> bool {
    let target = baseline_plan(cfg).len();
    if values_so_far.len() >= target {
        return false;
    }
    let agree = values_so_far.len() >= 2 && values_so_far.iter().all(|v| *v == values_so_far[0]);
    !agree
}

/// Whether to re-measure the best now, after `experiments_since_last_check` experiments.
/// Noise-aware mode only; `recheck_every = 0` disables it. The loop may skip it when
/// [`NoiseModel::is_deterministic`]: a deterministic script cannot drift.
pub fn needs_recheck(cfg: &DecisionConfig, experiments_since_last_check: u64) -> bool {
    cfg.mode == DecisionMode::NoiseAware
        && cfg.recheck_every > 0
        && experiments_since_last_check >= u64::from(cfg.recheck_every)
}

/// The seed to re-measure the best with: the first of the fixed sequence it has not run.
/// A new seed makes each recheck an independent run: the best's mean sharpens, σ̂ gains a
/// degree of freedom, later candidates can pair with one more seed, and drift shows as the
/// new run's distance from the mean. (Rerunning an old seed would mostly repeat the old
/// number and make the noise look smaller than it is.)
pub fn recheck_seeds(best: &[Measurement]) -> Vec<u64> {
    let s = (0..)
        .map(seed)
        .find(|s| best.iter().all(|m| m.0 != *s))
        .unwrap_or(seed(0));
    vec![s]
}

/// The results.tsv description suffix for a code version run more than once, e.g.
/// `n=3, ±0.0021` (± is the runs' sample standard deviation); `None` for a single run.
pub fn repeats_suffix(values: &[f64]) -> Option<String> {
    let sd = stats::std_dev(values)?;
    Some(format!("n={}, ±{}", values.len(), num(sd)))
}

/// The σ multiplier of the threshold: `z` read as a one-sided confidence level Φ(z), widened
/// to Student's t quantile at that level for the `df` behind σ̂. An estimate from three runs
/// (df = 2) is often far too small, and z·σ̂ would then let noise through; the t quantile
/// pays for that uncertainty and shrinks back to z as runs accumulate (z = 2: 4.53 at df 2,
/// 2.87 at df 4, 2.13 at df 20).
pub fn z_multiplier(z: f64, df: u64) -> f64 {
    if df == 0 || !z.is_finite() {
        return z;
    }
    stats::student_t_inv_cdf(stats::normal_cdf(z), df as f64)
}

/// A level such as 0.05/3 at three significant digits: 0.0167.
fn short_alpha(a: f64) -> String {
    let s = format!("{a:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Up to two decimals, trailing zeros trimmed: 2, 2.5, 4.53.
fn short(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Formats a number with at least 4 decimals and at least 2 significant digits.
/// A number at the precision its size warrants (used for σ and gains in evidence).
pub fn format_sd(x: f64) -> String {
    num(x)
}

fn num(x: f64) -> String {
    let a = x.abs();
    if a == 0.0 {
        // Never `-0`.
        return "0".to_string();
    }
    if !a.is_finite() {
        return format!("{x}");
    }
    // The nudge keeps 0.00099999999999989 (1.001 − 1.000) at the digits of 0.001.
    let decimals = (1 - (a * (1.0 + 1e-9)).log10().floor() as i64).clamp(4, 12) as usize;
    format!("{x:.decimals$}")
}

/// Like [`num`] with an explicit sign, for Δ.
fn signed(x: f64) -> String {
    if x > 0.0 {
        format!("+{}", num(x))
    } else {
        num(x)
    }
}

fn p_text(p: f64) -> String {
    if p < 0.001 {
        "p<0.001".to_string()
    } else {
        format!("p={p:.3}")
    }
}

/// How the candidate compares with the best.
struct Comparison {
    /// Improvement, positive when the candidate is better (direction-aware).
    gain: f64,
    /// The change in the metric itself (candidate − best), for display.
    delta: f64,
    /// The gain and change of the candidate's mean against the mean of all the best's
    /// seeds (each seed averaged once), paired or not: what the pooled t-test compares.
    unpaired_gain: f64,
    unpaired_delta: f64,
    /// Per-seed gains for the candidate runs whose seed the best also has.
    paired_gains: Vec<f64>,
    n_c: usize,
    n_b: usize,
}

impl Comparison {
    fn new(direction: Direction, best: &[Measurement], candidate: &[Measurement]) -> Self {
        let paired_gains: Vec<f64> = candidate
            .iter()
            .filter_map(|&(s, v)| {
                let at: Vec<f64> = best.iter().filter(|m| m.0 == s).map(|m| m.1).collect();
                stats::mean(&at).map(|b| direction.gain(v, b))
            })
            .collect();
        let best_per_seed = per_seed(best);
        let unpaired_gain = {
            let c: Vec<f64> = candidate.iter().map(|m| m.1).collect();
            let b = &best_per_seed;
            let (mc, mb) = (
                stats::mean(&c).unwrap_or(0.0),
                stats::mean(b).unwrap_or(0.0),
            );
            direction.gain(mc, mb)
        };
        let gain = if paired_gains.len() == candidate.len() {
            stats::mean(&paired_gains).unwrap_or(0.0)
        } else {
            unpaired_gain
        };
        // Equal means that differ in the last bits of a float sum are equal (rule 1).
        let scale = best.iter().map(|m| m.1.abs()).fold(1.0, f64::max);
        let snap = |g: f64| if g.abs() <= 1e-12 * scale { 0.0 } else { g };
        let (gain, unpaired_gain) = (snap(gain), snap(unpaired_gain));
        let to_delta = |g: f64| match direction {
            Direction::Minimize => -g,
            Direction::Maximize => g,
        };
        Comparison {
            gain,
            delta: to_delta(gain),
            unpaired_gain,
            unpaired_delta: to_delta(unpaired_gain),
            paired_gains,
            n_c: candidate.len(),
            n_b: best_per_seed.len(),
        }
    }

    /// Every candidate run has a best run with the same seed.
    fn all_paired(&self) -> bool {
        self.paired_gains.len() == self.n_c
    }

    fn d(&self) -> String {
        format!("Δ={}", signed(self.delta))
    }
}

/// The mean of the best's runs on each seed, in seed order: a seed run twice is one
/// observation, not two (the same code on the same seed mostly repeats itself).
fn per_seed(runs: &[Measurement]) -> Vec<f64> {
    let mut by_seed: std::collections::BTreeMap<u64, Vec<f64>> = Default::default();
    for &(s, v) in runs {
        by_seed.entry(s).or_default().push(v);
    }
    by_seed.values().filter_map(|v| stats::mean(v)).collect()
}

/// The next seed for the candidate: the best's seeds first (paired), then the fixed sequence,
/// never one the candidate has already run (in this visit or an earlier one); `None` once
/// this visit has `1 + confirm_runs` runs.
fn next_seed(
    cfg: &DecisionConfig,
    best: &[Measurement],
    candidate: &[Measurement],
    this_visit: usize,
) -> Option<u64> {
    if this_visit > cfg.confirm_runs as usize {
        return None;
    }
    let used = |s: u64| candidate.iter().any(|m| m.0 == s);
    best.iter()
        .map(|m| m.0)
        .chain((0..).map(seed))
        .find(|s| !used(*s))
}

/// The decision for a candidate, given the best's runs and the candidate's runs so far.
///
/// An empty `candidate` asks for its first run (with the best's first seed). An empty `best`
/// keeps (there is nothing to beat: this is how the baseline itself is accepted). A
/// non-finite candidate value discards.
pub fn decide(
    cfg: &DecisionConfig,
    direction: Direction,
    noise: &NoiseModel,
    best: &[Measurement],
    candidate: &[Measurement],
) -> Verdict {
    decide_again(cfg, direction, noise, best, &Earlier::default(), candidate)
}

/// What earlier visits measured of the same code against the same best: their runs and how
/// many visits (experiments) they were. A near miss revisited later (see
/// [`crate::session`]) is decided on all its runs, old and new.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Earlier {
    pub runs: Vec<Measurement>,
    pub visits: u32,
}

impl Earlier {
    /// The one-sided level of this visit's final test: α/k at the k-th visit, so that
    /// looking again and again at the same code lets noise through only a little more
    /// often than one look. The Bonferroni bound over k looks is α·H(k) (0.13 for the 7
    /// looks `revisits = 6` allows); the looks share most of their runs, and in simulation
    /// (`tests/decision_props.rs`) a noise-only change is kept 8.7 % of the time with
    /// revisits against 6.1 % with one visit.
    pub fn alpha(&self) -> f64 {
        ALPHA / f64::from(self.visits + 1)
    }
}

/// [`decide`] for a candidate that earlier experiments already measured (a revisited near
/// miss): Δ and the tests use the earlier runs and this visit's together; the seeds asked
/// for are new to the candidate; this visit gets at most `1 + confirm_runs` runs; the final
/// test is at [`Earlier::alpha`]. Greedy mode ignores the earlier runs.
pub fn decide_again(
    cfg: &DecisionConfig,
    direction: Direction,
    noise: &NoiseModel,
    best: &[Measurement],
    earlier: &Earlier,
    candidate: &[Measurement],
) -> Verdict {
    if candidate.is_empty() {
        // The best's first seed not yet run by the candidate, so that the first run pairs.
        let first = next_seed(cfg, best, &earlier.runs, 0).unwrap_or(seed(0));
        return Verdict::Measure {
            seeds: vec![first],
            evidence: if earlier.runs.is_empty() {
                "not measured yet".to_string()
            } else {
                format!(
                    "measured before (n={}), measuring again",
                    earlier.runs.len()
                )
            },
        };
    }
    if candidate.iter().any(|m| !m.1.is_finite()) {
        return Verdict::Discard {
            evidence: "the metric is not a finite number".to_string(),
        };
    }
    let best: Vec<Measurement> = best.iter().copied().filter(|m| m.1.is_finite()).collect();
    if best.is_empty() {
        return Verdict::Keep {
            evidence: "nothing to compare against".to_string(),
        };
    }
    match cfg.mode {
        DecisionMode::Greedy => greedy(&Comparison::new(direction, &best, candidate)),
        DecisionMode::NoiseAware => {
            let all: Vec<Measurement> = earlier
                .runs
                .iter()
                .copied()
                .filter(|m| m.1.is_finite())
                .chain(candidate.iter().copied())
                .collect();
            let cmp = Comparison::new(direction, &best, &all);
            noise_aware(cfg, noise, &best, &all, candidate.len(), earlier, &cmp)
        }
    }
}

/// How strongly a discarded candidate's runs still point to a gain over the best: the gain
/// of its mean over the mean of all the best's seeds, in standard errors σ̂·√(1/n + 1/n_b)
/// (unpaired: the best may have gained seeds since, e.g. by rechecks). `None` when it shows
/// no gain at all, σ̂ is unknown or 0 (nothing is uncertain then), or a value is not
/// finite. Ranks near misses for a revisit; it is not a test.
pub fn near_miss_score(
    direction: Direction,
    noise: &NoiseModel,
    best: &[Measurement],
    candidate: &[Measurement],
) -> Option<f64> {
    let sigma = noise.sigma().filter(|s| *s > 0.0)?;
    if candidate.is_empty()
        || best.is_empty()
        || candidate.iter().chain(best).any(|m| !m.1.is_finite())
    {
        return None;
    }
    let cmp = Comparison::new(direction, best, candidate);
    let se = sigma * (1.0 / cmp.n_c as f64 + 1.0 / cmp.n_b as f64).sqrt();
    (cmp.unpaired_gain > 0.0).then(|| cmp.unpaired_gain / se)
}

fn greedy(cmp: &Comparison) -> Verdict {
    if cmp.gain > 0.0 {
        Verdict::Keep {
            evidence: format!("greedy: {}, better", cmp.d()),
        }
    } else {
        Verdict::Discard {
            evidence: format!("greedy: {}, not better", cmp.d()),
        }
    }
}

fn noise_aware(
    cfg: &DecisionConfig,
    noise: &NoiseModel,
    best: &[Measurement],
    candidate: &[Measurement],
    this_visit: usize,
    earlier: &Earlier,
    cmp: &Comparison,
) -> Verdict {
    let n = cmp.n_c;
    // Rule 1.
    if cmp.gain <= 0.0 {
        return Verdict::Discard {
            evidence: format!("{}, not better (n={n})", cmp.d()),
        };
    }
    // Rule 2.
    if noise.is_deterministic() {
        return if cmp.gain > cfg.min_delta {
            Verdict::Keep {
                evidence: format!("{} with σ=0 (deterministic, n={n})", cmp.d()),
            }
        } else {
            Verdict::Discard {
                evidence: format!("{} ≤ min_delta={} (σ=0)", cmp.d(), num(cfg.min_delta)),
            }
        };
    }
    let mult = z_multiplier(cfg.z, noise.df());
    let threshold = noise.sigma().map(|s| (cfg.min_delta.max(mult * s), s));
    let label = |thr: f64, s: f64| {
        if mult * s >= cfg.min_delta {
            format!("{}σ={}", short(mult), num(thr))
        } else {
            format!("min_delta={}", num(thr))
        }
    };
    // Rules 3 and 4.
    if let Some((thr, s)) = threshold
        && cmp.gain > thr
    {
        if n >= 2 {
            return Verdict::Keep {
                evidence: format!("{} beyond {} (n={n}, σ={})", cmp.d(), label(thr, s), num(s)),
            };
        }
        if cmp.gain > CLEAR_MARGIN * thr && noise.df() >= 2 {
            return Verdict::Keep {
                evidence: format!(
                    "{} beyond {CLEAR_MARGIN}×{} in 1 run (σ={})",
                    cmp.d(),
                    label(thr, s),
                    num(s)
                ),
            };
        }
    }
    // Rule 5.
    if let Some(next) = next_seed(cfg, best, candidate, this_visit) {
        let why = match threshold {
            Some((thr, s)) if cmp.gain > thr => {
                format!("{} beyond {} in 1 run, confirming", cmp.d(), label(thr, s))
            }
            Some((thr, s)) => format!("near miss: {} within {} (n={n})", cmp.d(), label(thr, s)),
            None => format!("{} with σ unknown (n={n})", cmp.d()),
        };
        return Verdict::Measure {
            seeds: vec![next],
            evidence: format!("{why}; run seed {next}"),
        };
    }
    // Rule 6.
    confirm(cfg, noise, cmp, earlier.alpha())
}

/// The final test on a candidate that has had all its runs (rule 6), at level `alpha`.
fn confirm(cfg: &DecisionConfig, noise: &NoiseModel, cmp: &Comparison, alpha: f64) -> Verdict {
    let n = cmp.n_c;
    if n < 2 {
        return Verdict::Discard {
            evidence: format!("{} in 1 run, no seed left to confirm it", cmp.d()),
        };
    }
    if cmp.gain <= cfg.min_delta {
        return Verdict::Discard {
            evidence: format!("{} ≤ min_delta={} (n={n})", cmp.d(), num(cfg.min_delta)),
        };
    }
    let pooled_sigma = noise.sigma().filter(|s| *s > 0.0);
    // Which test, chosen before looking at the candidate's p: the paired t's variance rests
    // on its own n − 1 pairs (2 df with the defaults, t₀.₉₅ = 2.92), the pooled t's on the
    // noise model's df, which grows with every repeated run of the session (t₀.₉₅ → 1.65).
    // The paired test is used while it has at least as many df; after that the pooled one
    // has more power unless seed effects are strongly shared between code versions, and it
    // stays honest when they are (shared seed effects only make it conservative).
    let pairs = cmp.paired_gains.len();
    let paired =
        pairs >= 2 && (pooled_sigma.is_none() || (cmp.all_paired() && pairs as u64 > noise.df()));
    let (p, what) = if paired {
        let Some(t) = stats::one_sample_t(&cmp.paired_gains, Alternative::Greater) else {
            return Verdict::Discard {
                evidence: format!("{}: paired test impossible (n={n})", cmp.d()),
            };
        };
        (
            t.p,
            format!("paired t: {} (n={})", p_text(t.p), cmp.paired_gains.len()),
        )
    } else if let Some(s) = pooled_sigma {
        let se = s * (1.0 / n as f64 + 1.0 / cmp.n_b as f64).sqrt();
        let p = stats::student_t_sf(cmp.unpaired_gain / se, noise.df() as f64);
        (
            p,
            format!(
                "pooled t: {} (n={n} vs {}, df={}, Δ of the means {})",
                p_text(p),
                cmp.n_b,
                noise.df(),
                signed(cmp.unpaired_delta)
            ),
        )
    } else {
        return Verdict::Discard {
            evidence: format!(
                "{}: σ unknown and too few paired runs to test (n={n})",
                cmp.d()
            ),
        };
    };
    let level = if alpha < ALPHA {
        format!("α={}", short_alpha(alpha))
    } else {
        ALPHA.to_string()
    };
    if p < alpha {
        let at = if alpha < ALPHA {
            format!(" < {level}")
        } else {
            String::new()
        };
        Verdict::Keep {
            evidence: format!("{what}{at}, {}", cmp.d()),
        }
    } else {
        Verdict::Discard {
            evidence: format!("{what} ≥ {level}, {}", cmp.d()),
        }
    }
}
