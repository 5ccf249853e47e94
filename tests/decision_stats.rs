//! The decision statistics against reference values (computed with mpmath at 40 digits, which
//! agree with scipy.stats to the last printed digit, e.g. t.cdf(2.0, 5) = 0.9490302605850709)
//! and Wilcoxon p-values from brute-force enumeration of every sign pattern in exact fractions.

use autoresearch::decision::stats::{
    Alternative, ln_gamma, mean, normal_cdf, normal_sf, one_sample_t, paired_t, pooled_variance,
    reg_inc_beta, reg_upper_gamma, std_dev, student_t_cdf, student_t_inv_cdf, student_t_sf,
    t_p_value, variance, welch_t, wilcoxon_signed_rank,
};

/// Relative closeness (absolute near zero).
fn close(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= rel * want.abs().max(1e-300)
}

#[track_caller]
fn assert_close(got: f64, want: f64, rel: f64) {
    assert!(
        close(got, want, rel),
        "got {got:e}, want {want:e} (rel {rel:e})"
    );
}

#[test]
fn moments() {
    assert_eq!(mean(&[]), None);
    assert_eq!(mean(&[1.0, 2.0, 6.0]), Some(3.0));
    assert_eq!(variance(&[5.0]), None);
    assert_close(variance(&[1.0, 2.0, 6.0]).unwrap(), 7.0, 1e-15);
    assert_close(
        std_dev(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap(),
        2.138089935299395,
        1e-14,
    );
    // Identical values: exactly zero, not a rounding residue (a deterministic script).
    assert_eq!(variance(&[0.1, 0.1, 0.1]), Some(0.0));
    assert_eq!(variance(&[0.9979, 0.9979]), Some(0.0));
    // Large offset, small spread: shifting keeps the digits.
    assert_close(
        variance(&[1e9 + 1.0, 1e9 + 2.0, 1e9 + 3.0]).unwrap(),
        1.0,
        1e-12,
    );
}

#[test]
fn pooled_variance_weights_by_degrees_of_freedom() {
    // Group A: var 1 (df 2); group B: var 4 (df 1); singleton ignored.
    let a = [1.0, 2.0, 3.0];
    let b = [0.0, 2.0 * 2f64.sqrt()];
    let c = [100.0];
    let p = pooled_variance([&a[..], &b[..], &c[..]]).unwrap();
    assert_eq!(p.df, 3);
    assert_eq!(p.n, 5);
    assert_close(p.variance, (2.0 * 1.0 + 1.0 * 4.0) / 3.0, 1e-14);
    assert_eq!(pooled_variance([&c[..]]), None);
}

#[test]
fn special_functions() {
    for (x, want) in [
        (0.5, 0.5723649429247001),
        (3.7, 1.428072326665388),
        (10.0, 12.801827480081469),
        (100.5, 361.4355404677776),
        (0.001, 6.907178885383853),
    ] {
        assert_close(ln_gamma(x), want, 1e-13);
    }
    assert!(ln_gamma(1.0).abs() < 1e-14);
    for (a, b, x, want) in [
        (0.5, 0.5, 0.3, 0.36901011956554536),
        (2.0, 3.0, 0.4, 0.5248),
        (10.0, 0.5, 0.95, 0.31715157546554507),
        (100.0, 200.0, 0.33, 0.4566181633339974),
        (1.5, 4.5, 0.001, 0.00024489991357998654),
    ] {
        assert_close(reg_inc_beta(a, b, x), want, 1e-11);
    }
    assert_eq!(reg_inc_beta(2.0, 3.0, 0.0), 0.0);
    assert_eq!(reg_inc_beta(2.0, 3.0, 1.0), 1.0);
    for (a, x, want) in [
        (0.5, 0.1, 0.654720846018577),
        (3.0, 2.0, 0.6766764161830635),
        (3.0, 10.0, 0.002769395715511576),
        (0.5, 50.0, 1.523970604832105e-23),
    ] {
        assert_close(reg_upper_gamma(a, x), want, 1e-11);
    }
    assert_close(normal_sf(1.0), 0.15865525393145705, 1e-12);
    assert_close(normal_sf(1.959963984540054), 0.025, 1e-12);
    assert_close(normal_cdf(2.5), 0.9937903346742238, 1e-14);
    assert_close(normal_sf(8.0), 6.220960574271784e-16, 1e-10);
    assert_close(normal_sf(20.0), 2.7536241186062337e-89, 1e-9);
    assert_eq!(normal_sf(0.0), 0.5);
}

#[test]
fn student_t_distribution() {
    // The brief's anchor: scipy.stats.t.cdf(2.0, 5).
    assert_close(student_t_cdf(2.0, 5.0), 0.9490302605850709, 1e-14);
    for (t, df, sf) in [
        (2.0, 5.0, 0.05096973941492918),
        (-1.5, 3.0, 0.8847080673775884),
        (0.0, 7.0, 0.5),
        (10.0, 2.0, 0.004926228511662845),
        (0.3, 1.0, 0.40722642092225764),
        (3.5, 30.5, 0.000727234893622871),
        (40.0, 4.0, 1.1670081613006343e-06),
        (1e-8, 10.0, 0.49999999610891616),
        (2.5, 1000.0, 0.006289283900545398),
    ] {
        assert_close(student_t_sf(t, df), sf, 1e-11);
        assert_close(student_t_cdf(t, df), 1.0 - sf, 1e-11);
    }
    assert_eq!(student_t_sf(f64::INFINITY, 3.0), 0.0);
    assert_eq!(student_t_sf(f64::NEG_INFINITY, 3.0), 1.0);
    assert!(student_t_sf(1.0, 0.0).is_nan());
    assert_close(
        t_p_value(-2.0, 5.0, Alternative::TwoSided),
        2.0 * 0.05096973941492918,
        1e-12,
    );
    assert_close(
        t_p_value(-2.0, 5.0, Alternative::Less),
        0.05096973941492918,
        1e-12,
    );
    assert_close(
        t_p_value(-2.0, 5.0, Alternative::Greater),
        0.9490302605850709,
        1e-12,
    );
    assert_eq!(t_p_value(0.0, 5.0, Alternative::TwoSided), 1.0);
}

#[test]
fn paired_t_test_matches_reference() {
    let a = [0.998, 1.004, 0.991, 1.010, 0.996];
    let b = [1.002, 1.011, 0.999, 1.012, 1.003];
    let two = paired_t(&a, &b, Alternative::TwoSided).unwrap();
    assert_close(two.t, -4.98887651569861, 1e-9);
    assert_eq!(two.df, 4.0);
    assert_close(two.p, 0.007549663938096216, 1e-8);
    let less = paired_t(&a, &b, Alternative::Less).unwrap();
    assert_close(less.p, 0.003774831969048108, 1e-8);
    assert!(paired_t(&a, &b, Alternative::Greater).unwrap().p > 0.99);
    // Unequal lengths, too few pairs, NaN: no test.
    assert!(paired_t(&a, &b[..4], Alternative::TwoSided).is_none());
    assert!(paired_t(&a[..1], &b[..1], Alternative::TwoSided).is_none());
    assert!(paired_t(&[1.0, f64::NAN], &[0.0, 0.0], Alternative::TwoSided).is_none());
}

#[test]
fn degenerate_t_tests() {
    // Every difference the same and non-zero: certainty (two deterministic scripts).
    let t = one_sample_t(&[0.01, 0.01, 0.01], Alternative::Greater).unwrap();
    assert_eq!(t.t, f64::INFINITY);
    assert_eq!(t.p, 0.0);
    // Every difference zero: no evidence at all.
    let t = one_sample_t(&[0.0, 0.0], Alternative::TwoSided).unwrap();
    assert_eq!(t.t, 0.0);
    assert_eq!(t.p, 1.0);
}

#[test]
fn welch_t_test_matches_reference() {
    let x = [10.1, 9.8, 10.4, 10.0, 9.9, 10.3];
    let y = [9.5, 9.9, 9.2, 9.7];
    let w = welch_t(&x, &y, Alternative::TwoSided).unwrap();
    assert_close(w.t, 2.8762068049262934, 1e-10);
    assert_close(w.df, 5.371582148339319, 1e-10);
    assert_close(w.p, 0.031978870490556345, 1e-9);
    let g = welch_t(&x, &y, Alternative::Greater).unwrap();
    assert_close(g.p, 0.015989435245278173, 1e-9);
    assert!(welch_t(&x, &y[..1], Alternative::TwoSided).is_none());
}

#[test]
fn wilcoxon_exact_small_sample() {
    let d = [1.5, -0.3, 2.1, 0.8, 1.2, -0.5, 0.9];
    let g = wilcoxon_signed_rank(&d, Alternative::Greater).unwrap();
    assert_eq!(g.w_plus, 25.0);
    assert_eq!(g.n, 7);
    assert!(g.exact);
    assert_close(g.p, 0.0390625, 1e-14);
    assert_close(
        wilcoxon_signed_rank(&d, Alternative::Less).unwrap().p,
        0.9765625,
        1e-14,
    );
    assert_close(
        wilcoxon_signed_rank(&d, Alternative::TwoSided).unwrap().p,
        0.078125,
        1e-14,
    );
}

#[test]
fn wilcoxon_drops_zeros_and_uses_midranks() {
    // Two zeros dropped (n = 7), ties among |1.0| and |2.0| get midranks; the p-values are
    // from enumerating all 2^7 sign patterns of those midranks.
    let d = [1.0, -1.0, 2.0, 0.0, 2.0, 3.0, -0.5, 0.0, 1.0];
    let g = wilcoxon_signed_rank(&d, Alternative::Greater).unwrap();
    assert_eq!(g.n, 7);
    assert_eq!(g.w_plus, 24.0);
    assert_close(g.p, 0.0625, 1e-14);
    assert_close(
        wilcoxon_signed_rank(&d, Alternative::Less).unwrap().p,
        0.9609375,
        1e-14,
    );
    assert_close(
        wilcoxon_signed_rank(&d, Alternative::TwoSided).unwrap().p,
        0.125,
        1e-14,
    );
    // Nothing but zeros: no evidence.
    let z = wilcoxon_signed_rank(&[0.0, 0.0], Alternative::Greater).unwrap();
    assert_eq!((z.n, z.p), (0, 1.0));
    assert!(wilcoxon_signed_rank(&[1.0, f64::NAN], Alternative::Greater).is_none());
}

#[test]
fn wilcoxon_floor_at_three_pairs() {
    // The reason the policy confirms with a t-test: three pairs, all in the same direction,
    // still give p = 1/8 one-sided.
    let g = wilcoxon_signed_rank(&[0.1, 0.2, 0.3], Alternative::Greater).unwrap();
    assert_eq!(g.p, 0.125);
    assert_eq!(
        wilcoxon_signed_rank(&[0.1, 0.2, 0.3], Alternative::TwoSided)
            .unwrap()
            .p,
        0.25
    );
}

#[test]
fn wilcoxon_normal_approximation_beyond_the_exact_cutoff() {
    // n = 120 > the exact cutoff. Exact p (all 2^120 sign patterns, counted in Python with
    // integers) is 0.03303074820988428; the continuity-corrected normal approximation is
    // 0.033094860714048234.
    let d: Vec<f64> = (1..=120)
        .map(|i| {
            if i % 5 == 0 || i % 5 == 2 {
                -(i as f64)
            } else {
                i as f64
            }
        })
        .collect();
    let w = wilcoxon_signed_rank(&d, Alternative::Greater).unwrap();
    assert!(!w.exact);
    assert_eq!(w.w_plus, 4332.0);
    assert_close(w.p, 0.033094860714048234, 1e-9);
    assert_close(w.p, 0.03303074820988428, 0.01);
    // Mirrored data: the other tail.
    let m: Vec<f64> = d.iter().map(|x| -x).collect();
    assert_close(
        wilcoxon_signed_rank(&m, Alternative::Less).unwrap().p,
        w.p,
        1e-12,
    );
}

#[test]
fn student_t_quantiles() {
    for (p, df, want) in [
        (0.975, 5.0, 2.5705818356363146),
        (0.95, 2.0, 2.9199855803537242),
        (0.9772498680518208, 2.0, 4.526536687430165),
        (0.001, 3.0, -10.214531852407386),
    ] {
        assert_close(student_t_inv_cdf(p, df), want, 1e-10);
    }
    assert!(student_t_inv_cdf(0.5, 7.0).abs() < 1e-12);
    assert_eq!(student_t_inv_cdf(1.0, 7.0), f64::INFINITY);
    assert!(student_t_inv_cdf(1.5, 7.0).is_nan());
}

#[test]
fn threshold_multiplier_widens_with_few_degrees_of_freedom() {
    use autoresearch::decision::z_multiplier;
    assert_close(z_multiplier(2.0, 2), 4.526536687430165, 1e-9);
    assert_close(z_multiplier(2.0, 4), 2.869309414628827, 1e-9);
    assert_close(z_multiplier(2.0, 20), 2.1330254804541875, 1e-9);
    assert_eq!(z_multiplier(2.0, 0), 2.0);
    assert!((z_multiplier(2.0, 100_000) - 2.0).abs() < 1e-3);
}
