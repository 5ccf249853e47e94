//! Small-sample statistics for the keep/discard decision: moments, pooled variance, Student's
//! t, Welch and paired t-tests, Wilcoxon's signed-rank test. Pure functions over slices; never
//! does I/O, never allocates more than the input's size squared.
//!
//! The special functions (log-gamma, the regularized incomplete beta and gamma functions,
//! erfc, the t quantile) come from `statrs` without its default features (no `nalgebra`, no
//! `rand`); `tests/decision_stats.rs` checks them against reference values computed with
//! mpmath/scipy. The exact Wilcoxon distribution is our own.

/// Which alternative hypothesis a test's p-value is for (scipy's `alternative`).
///
/// For a paired test on `a - b` (or a Welch test of `a` against `b`), `Greater` means "the
/// mean of `a` is larger".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alternative {
    TwoSided,
    Greater,
    Less,
}

/// Arithmetic mean; `None` for an empty slice.
pub fn mean(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    Some(xs.iter().sum::<f64>() / xs.len() as f64)
}

/// Sum of squared deviations from the mean. Shifted by the first value so that identical
/// values give exactly 0 (a deterministic script must read as σ = 0, not 1e-17).
fn sum_sq_dev(xs: &[f64]) -> f64 {
    let Some(&x0) = xs.first() else { return 0.0 };
    let n = xs.len() as f64;
    let shifted_mean = xs.iter().map(|x| x - x0).sum::<f64>() / n;
    xs.iter().map(|x| (x - x0 - shifted_mean).powi(2)).sum()
}

/// Sample variance (divisor n − 1); `None` with fewer than two values.
pub fn variance(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    Some(sum_sq_dev(xs) / (xs.len() - 1) as f64)
}

/// Sample standard deviation (divisor n − 1); `None` with fewer than two values.
pub fn std_dev(xs: &[f64]) -> Option<f64> {
    variance(xs).map(f64::sqrt)
}

/// A variance pooled over groups, with the degrees of freedom behind it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pooled {
    pub variance: f64,
    /// Σ (nᵢ − 1) over the groups that had at least two values.
    pub df: u64,
    /// Number of values in those groups.
    pub n: u64,
}

/// Pools the within-group variance of several groups, each weighted by its degrees of freedom:
/// Σ Σ (x − x̄ᵢ)² / Σ (nᵢ − 1). Groups with fewer than two values say nothing about spread
/// and are skipped. `None` when no group has two values.
pub fn pooled_variance<'a, I>(groups: I) -> Option<Pooled>
where
    I: IntoIterator<Item = &'a [f64]>,
{
    let (mut ss, mut df, mut n) = (0.0, 0u64, 0u64);
    for g in groups {
        if g.len() >= 2 {
            ss += sum_sq_dev(g);
            df += g.len() as u64 - 1;
            n += g.len() as u64;
        }
    }
    (df > 0).then(|| Pooled {
        variance: ss / df as f64,
        df,
        n,
    })
}

/// ln Γ(x) for x > 0.
pub fn ln_gamma(x: f64) -> f64 {
    statrs::function::gamma::ln_gamma(x)
}

/// The regularized incomplete beta function I_x(a, b), for a, b > 0 and 0 ≤ x ≤ 1.
pub fn reg_inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    statrs::function::beta::beta_reg(a, b, x)
}

/// The regularized upper incomplete gamma function Q(a, x) = Γ(a, x) / Γ(a), a > 0, x ≥ 0.
pub fn reg_upper_gamma(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    statrs::function::gamma::gamma_ur(a, x)
}

/// P(Z > z) for a standard normal Z, accurate in the far tail: ½·Q(½, z²/2) (statrs's
/// `erfc` is off by ~1e-10 relative at z = 1; the incomplete gamma is not).
pub fn normal_sf(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    if z >= 0.0 {
        0.5 * reg_upper_gamma(0.5, z * z / 2.0)
    } else {
        1.0 - normal_sf(-z)
    }
}

/// P(Z ≤ z) for a standard normal Z.
pub fn normal_cdf(z: f64) -> f64 {
    normal_sf(-z)
}

/// P(T > t) for Student's t with `df` > 0 degrees of freedom (real-valued df allowed, as
/// Welch's test needs). Computed directly, so tiny upper tails keep their precision.
pub fn student_t_sf(t: f64, df: f64) -> f64 {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if t == f64::INFINITY {
        return 0.0;
    }
    if t == f64::NEG_INFINITY {
        return 1.0;
    }
    let t2 = t * t;
    // x = df/(df+t²), y = 1 − x = t²/(df+t²), both computed without cancellation; the
    // incomplete beta is evaluated at whichever is smaller, so neither side loses digits.
    let x = df / (df + t2);
    let y = t2 / (df + t2);
    let tail = if x <= y {
        0.5 * reg_inc_beta(df / 2.0, 0.5, x)
    } else {
        0.5 - 0.5 * reg_inc_beta(0.5, df / 2.0, y)
    };
    if t > 0.0 { tail } else { 1.0 - tail }
}

/// P(T ≤ t) for Student's t with `df` degrees of freedom.
pub fn student_t_cdf(t: f64, df: f64) -> f64 {
    student_t_sf(-t, df)
}

/// The quantile function of Student's t: the `t` with P(T ≤ t) = `p`, for 0 < p < 1 (±∞ at
/// 0 and 1, NaN outside). statrs inverts the incomplete beta function.
pub fn student_t_inv_cdf(p: f64, df: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    if p.is_nan() || !(0.0..=1.0).contains(&p) || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => t.inverse_cdf(p),
        Err(_) => f64::NAN,
    }
}

/// The p-value of a t statistic under an alternative.
pub fn t_p_value(t: f64, df: f64, alternative: Alternative) -> f64 {
    match alternative {
        Alternative::Greater => student_t_sf(t, df),
        Alternative::Less => student_t_cdf(t, df),
        Alternative::TwoSided => (2.0 * student_t_sf(t.abs(), df)).min(1.0),
    }
}

/// The result of a t-test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TTest {
    pub t: f64,
    pub df: f64,
    pub p: f64,
    /// Mean of the differences (paired) or difference of the means (Welch).
    pub mean_diff: f64,
}

/// The statistic for a mean `m` with standard error `se`. A zero standard error (every
/// difference identical, e.g. two deterministic scripts) gives ±∞, or 0 when `m` is 0 too:
/// identical data carry no evidence of a difference.
fn t_stat(m: f64, se: f64) -> f64 {
    if se > 0.0 {
        m / se
    } else if m == 0.0 {
        0.0
    } else {
        m.signum() * f64::INFINITY
    }
}

/// Paired t-test on `a[i] − b[i]`. `None` when the lengths differ, fewer than two pairs are
/// given, or a value is not finite.
pub fn paired_t(a: &[f64], b: &[f64], alternative: Alternative) -> Option<TTest> {
    if a.len() != b.len() {
        return None;
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    one_sample_t(&d, alternative)
}

/// One-sample t-test of H0: mean(d) = 0. `None` with fewer than two values or a non-finite one.
pub fn one_sample_t(d: &[f64], alternative: Alternative) -> Option<TTest> {
    if d.len() < 2 || d.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let n = d.len() as f64;
    let m = mean(d)?;
    let se = (variance(d)? / n).sqrt();
    let t = t_stat(m, se);
    let df = n - 1.0;
    Some(TTest {
        t,
        df,
        p: t_p_value(t, df, alternative),
        mean_diff: m,
    })
}

/// Welch's unequal-variance t-test of mean(a) against mean(b), with the Welch–Satterthwaite
/// degrees of freedom. `None` when either side has fewer than two values or a non-finite one.
pub fn welch_t(a: &[f64], b: &[f64], alternative: Alternative) -> Option<TTest> {
    if a.len() < 2 || b.len() < 2 || a.iter().chain(b).any(|x| !x.is_finite()) {
        return None;
    }
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (va, vb) = (variance(a)? / na, variance(b)? / nb);
    let m = mean(a)? - mean(b)?;
    let se2 = va + vb;
    let t = t_stat(m, se2.sqrt());
    // With both variances zero the df is undefined; any positive df gives the same p for ±∞/0.
    let df = if se2 > 0.0 {
        se2 * se2 / (va * va / (na - 1.0) + vb * vb / (nb - 1.0))
    } else {
        na + nb - 2.0
    };
    Some(TTest {
        t,
        df,
        p: t_p_value(t, df, alternative),
        mean_diff: m,
    })
}

/// The result of Wilcoxon's signed-rank test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wilcoxon {
    /// Sum of the ranks of the positive differences (midranks for ties).
    pub w_plus: f64,
    /// Number of non-zero differences the test used.
    pub n: usize,
    pub p: f64,
    /// True when `p` comes from the exact permutation distribution, false for the normal
    /// approximation (n > [`WILCOXON_EXACT_MAX_N`]).
    pub exact: bool,
}

/// Up to this many non-zero differences the exact distribution is enumerated.
pub const WILCOXON_EXACT_MAX_N: usize = 100;

/// Wilcoxon signed-rank test on the differences `d` (H0: symmetric about 0).
///
/// Zeros are dropped (Wilcoxon's original method, scipy's `zero_method="wilcox"`): a zero
/// difference says nothing about the sign. Tied |d| get their average rank, and the exact p
/// is taken from the permutation distribution of those very ranks (all 2ⁿ sign patterns,
/// counted by dynamic programming over doubled ranks, which are integers), so ties need no
/// approximation. With no non-zero difference p = 1. Note the floor: the smallest exact
/// one-sided p is 2⁻ⁿ (0.125 at n = 3). `None` when a value is not finite.
pub fn wilcoxon_signed_rank(d: &[f64], alternative: Alternative) -> Option<Wilcoxon> {
    if d.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let mut nz: Vec<f64> = d.iter().copied().filter(|x| *x != 0.0).collect();
    let n = nz.len();
    if n == 0 {
        return Some(Wilcoxon {
            w_plus: 0.0,
            n: 0,
            p: 1.0,
            exact: true,
        });
    }
    nz.sort_by(|x, y| x.abs().total_cmp(&y.abs()));
    // Doubled midranks: a tie block at 1-based positions i..=j gets rank (i+j)/2, doubled i+j.
    let mut ranks2 = vec![0u64; n];
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && nz[j + 1].abs() == nz[i].abs() {
            j += 1;
        }
        let r2 = (i + 1 + j + 1) as u64;
        ranks2[i..=j].iter_mut().for_each(|r| *r = r2);
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        i = j + 1;
    }
    let w2: u64 = nz
        .iter()
        .zip(&ranks2)
        .filter(|(x, _)| **x > 0.0)
        .map(|(_, r)| *r)
        .sum();
    let w_plus = w2 as f64 / 2.0;

    if n <= WILCOXON_EXACT_MAX_N {
        let total: u64 = ranks2.iter().sum();
        // dist[s] = P(doubled W+ = s) when each rank's sign is a fair coin.
        let mut dist = vec![0.0f64; total as usize + 1];
        dist[0] = 1.0;
        let mut reach = 0usize;
        for &r in &ranks2 {
            let r = r as usize;
            reach += r;
            for s in (0..=reach).rev() {
                let with = if s >= r { dist[s - r] } else { 0.0 };
                dist[s] = 0.5 * (dist[s] + with);
            }
        }
        let w2 = w2 as usize;
        let upper: f64 = dist[w2..].iter().sum::<f64>().min(1.0);
        let lower: f64 = dist[..=w2].iter().sum::<f64>().min(1.0);
        let p = match alternative {
            Alternative::Greater => upper,
            Alternative::Less => lower,
            Alternative::TwoSided => (2.0 * upper.min(lower)).min(1.0),
        };
        return Some(Wilcoxon {
            w_plus,
            n,
            p,
            exact: true,
        });
    }

    // Large n: normal approximation with the tie correction and a continuity correction.
    let nf = n as f64;
    let mu = nf * (nf + 1.0) / 4.0;
    let sd = (nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0 - tie_term / 48.0).sqrt();
    let z_up = (w_plus - mu - 0.5) / sd;
    let z_low = (w_plus - mu + 0.5) / sd;
    let p = match alternative {
        Alternative::Greater => normal_sf(z_up),
        Alternative::Less => normal_cdf(z_low),
        Alternative::TwoSided => (2.0 * normal_sf(z_up).min(normal_cdf(z_low))).min(1.0),
    };
    Some(Wilcoxon {
        w_plus,
        n,
        p,
        exact: false,
    })
}
