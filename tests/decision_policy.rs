//! The keep/discard policy driven the way the session loop drives it, with scripted
//! measurements: the metric is a planned function of (code, seed), as the fixture training
//! scripts will make it via `AUTORESEARCH_SEED`.

use autoresearch::config::{DecisionConfig, DecisionMode};
use autoresearch::decision::{
    Earlier, Measurement, NoiseModel, Verdict, baseline_needs_more, baseline_plan, decide,
    decide_again, default_config, near_miss_score, needs_recheck, recheck_seeds, repeats_suffix,
};
use autoresearch::experiment::Direction;

/// Baseline values for seeds 1, 2, 3: σ ≈ 0.01054, so 2σ ≈ 0.02107.
const BASE: [f64; 3] = [1.000, 1.012, 0.991];

fn noise_aware() -> DecisionConfig {
    default_config()
}

fn greedy() -> DecisionConfig {
    DecisionConfig {
        mode: DecisionMode::Greedy,
        ..default_config()
    }
}

/// Runs the baseline as the loop would: the planned seeds, stopping early when it may.
fn run_baseline(cfg: &DecisionConfig, mut metric: impl FnMut(u64) -> f64) -> Vec<Measurement> {
    let mut runs = Vec::new();
    for s in baseline_plan(cfg) {
        let values: Vec<f64> = runs.iter().map(|m: &Measurement| m.1).collect();
        if !baseline_needs_more(cfg, &values) {
            break;
        }
        runs.push((s, metric(s)));
    }
    runs
}

/// Drives `decide` to a final verdict, running the candidate whenever it asks; returns the
/// verdict and the candidate's runs.
fn drive(
    cfg: &DecisionConfig,
    direction: Direction,
    noise: &NoiseModel,
    best: &[Measurement],
    metric: impl Fn(u64) -> f64,
) -> (Verdict, Vec<Measurement>) {
    let mut cand: Vec<Measurement> = Vec::new();
    for _ in 0..20 {
        match decide(cfg, direction, noise, best, &cand) {
            Verdict::Measure { seeds, .. } => {
                assert!(!seeds.is_empty());
                for s in seeds {
                    assert!(cand.iter().all(|m| m.0 != s), "seed {s} asked for twice");
                    cand.push((s, metric(s)));
                }
            }
            v => return (v, cand),
        }
    }
    panic!("the policy never reached a verdict");
}

fn baseline() -> (Vec<Measurement>, NoiseModel) {
    let best = run_baseline(&noise_aware(), |s| BASE[s as usize - 1]);
    let noise = NoiseModel::from_groups([&BASE[..]]);
    (best, noise)
}

#[test]
fn baseline_plan_and_noise_estimate() {
    assert_eq!(baseline_plan(&noise_aware()), vec![1, 2, 3]);
    let (best, noise) = baseline();
    assert_eq!(best, vec![(1, 1.000), (2, 1.012), (3, 0.991)]);
    let sigma = noise.sigma().unwrap();
    assert!((sigma - 0.010535653752852).abs() < 1e-12, "{sigma}");
    assert_eq!(noise.df(), 2);
    assert_eq!(noise.measurements(), 3);
    assert_eq!(noise.summary(), "σ=0.0105 (3 runs, df=2)");
    assert_eq!(NoiseModel::new().sigma(), None);
    assert_eq!(
        NoiseModel::new().summary(),
        "σ unknown (no repeated runs yet)"
    );
}

#[test]
fn noise_only_change_is_measured_again_and_not_kept() {
    let (best, noise) = baseline();
    // Same true mean; this run's noise happens to look like a 0.010 gain on seed 1.
    let cand = [0.990, 1.009, 0.996];
    let (v, runs) = drive(&noise_aware(), Direction::Minimize, &noise, &best, |s| {
        cand[s as usize - 1]
    });
    assert!(matches!(v, Verdict::Discard { .. }), "{v:?}");
    assert_eq!(
        runs.iter().map(|m| m.0).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "paired seeds"
    );
    assert!(v.evidence().starts_with("paired t: p="), "{}", v.evidence());
}

#[test]
fn first_run_near_miss_asks_for_the_best_seeds() {
    let (best, noise) = baseline();
    let v = decide(
        &noise_aware(),
        Direction::Minimize,
        &noise,
        &best,
        &[(1, 0.990)],
    );
    match v {
        Verdict::Measure { seeds, evidence } => {
            assert_eq!(seeds, vec![2]);
            assert_eq!(
                evidence,
                "near miss: Δ=-0.0100 within 4.53σ=0.0477 (n=1); run seed 2"
            );
        }
        v => panic!("{v:?}"),
    }
}

#[test]
fn real_gain_within_the_noise_is_kept_when_the_paired_test_says_so() {
    let (best, noise) = baseline();
    // A real 0.012 gain, smaller than 2σ, under seed-correlated noise.
    let cand = [0.987, 1.001, 0.978];
    let (v, runs) = drive(&noise_aware(), Direction::Minimize, &noise, &best, |s| {
        cand[s as usize - 1]
    });
    assert!(v.is_keep(), "{v:?}");
    assert_eq!(runs.len(), 3);
    assert!(
        v.evidence().starts_with("paired t: p=0.00"),
        "{}",
        v.evidence()
    );
    assert!(
        v.evidence().contains("(n=3)") && v.evidence().contains("Δ=-0.0123"),
        "{}",
        v.evidence()
    );
    assert_eq!(
        repeats_suffix(&[0.987, 1.001, 0.978]).unwrap(),
        "n=3, ±0.0116"
    );
}

#[test]
fn large_real_gain_is_kept_at_once() {
    let (best, noise) = baseline();
    // σ rests on 2 df: the threshold is 4.53σ (see z_multiplier), twice that for one run.
    let (v, runs) = drive(&noise_aware(), Direction::Minimize, &noise, &best, |s| {
        BASE[s as usize - 1] - 0.1
    });
    assert!(v.is_keep(), "{v:?}");
    assert_eq!(runs, vec![(1, 0.9)]);
    assert_eq!(
        v.evidence(),
        "Δ=-0.1000 beyond 2×4.53σ=0.0477 in 1 run (σ=0.0105)"
    );
    // With σ resting on 40 runs, the multiplier is close to z and 0.05 is clear at once.
    let many: Vec<f64> = (0..40)
        .map(|i| 1.0 + 0.0105 * if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let well = NoiseModel::from_groups([&many[..]]);
    let (v, runs) = drive(&noise_aware(), Direction::Minimize, &well, &best, |s| {
        BASE[s as usize - 1] - 0.05
    });
    assert!(v.is_keep(), "{v:?}");
    assert_eq!(runs.len(), 1);
}

#[test]
fn gain_beyond_the_threshold_but_not_clearly_is_confirmed_once() {
    let (best, noise) = baseline();
    let (v, runs) = drive(&noise_aware(), Direction::Minimize, &noise, &best, |s| {
        BASE[s as usize - 1] - 0.06
    });
    assert!(v.is_keep(), "{v:?}");
    assert_eq!(runs.len(), 2, "one confirmation run, then rule 3");
    assert!(
        v.evidence().contains("beyond 4.53σ=0.0477 (n=2"),
        "{}",
        v.evidence()
    );
}

#[test]
fn a_worse_candidate_costs_one_run() {
    let (best, noise) = baseline();
    let (v, runs) = drive(&noise_aware(), Direction::Minimize, &noise, &best, |s| {
        BASE[s as usize - 1] + 0.001
    });
    assert!(matches!(v, Verdict::Discard { .. }));
    assert_eq!(runs.len(), 1);
    assert_eq!(v.evidence(), "Δ=+0.0010, not better (n=1)");
}

#[test]
fn deterministic_script_costs_no_extra_runs() {
    let cfg = noise_aware();
    let mut baseline_runs = 0;
    let best = run_baseline(&cfg, |_| {
        baseline_runs += 1;
        0.9979
    });
    assert_eq!(baseline_runs, 2, "two identical values are enough");
    assert!(baseline_needs_more(&cfg, &[0.9979]));
    assert!(!baseline_needs_more(&cfg, &[0.9979, 0.9979]));
    assert!(baseline_needs_more(&cfg, &[0.9979, 0.9980]));
    let noise = NoiseModel::from_groups([&[0.9979, 0.9979][..]]);
    assert!(noise.is_deterministic());
    assert_eq!(noise.summary(), "σ=0, deterministic (2 runs)");

    let (v, runs) = drive(&cfg, Direction::Minimize, &noise, &best, |_| 0.9978);
    assert!(v.is_keep(), "{v:?}");
    assert_eq!(runs.len(), 1);
    assert_eq!(v.evidence(), "Δ=-0.00010 with σ=0 (deterministic, n=1)");
    // Equal is never a keep; min_delta still applies.
    let (v, runs) = drive(&cfg, Direction::Minimize, &noise, &best, |_| 0.9979);
    assert!(matches!(v, Verdict::Discard { .. }) && runs.len() == 1);
    let strict = DecisionConfig {
        min_delta: 0.001,
        ..cfg
    };
    let (v, _) = drive(&strict, Direction::Minimize, &noise, &best, |_| 0.9978);
    assert!(matches!(v, Verdict::Discard { .. }), "{v:?}");
}

#[test]
fn greedy_is_karpathys_rule() {
    let cfg = greedy();
    assert_eq!(baseline_plan(&cfg), vec![1]);
    assert!(!baseline_needs_more(&cfg, &[1.0]));
    assert!(!needs_recheck(&cfg, 1000));
    let best = [(1, 1.0)];
    let noise = NoiseModel::new();
    for (value, keep) in [(0.99, true), (1.0, false), (1.01, false), (0.999999, true)] {
        let (v, runs) = drive(&cfg, Direction::Minimize, &noise, &best, |_| value);
        assert_eq!(v.is_keep(), keep, "{value}: {v:?}");
        assert_eq!(runs, vec![(1, value)], "a single run");
    }
    let (v, _) = drive(&cfg, Direction::Maximize, &noise, &best, |_| 1.01);
    assert!(v.is_keep());
    assert_eq!(v.evidence(), "greedy: Δ=+0.0100, better");
}

#[test]
fn maximize_mirrors_minimize() {
    let neg: Vec<f64> = BASE.iter().map(|x| -x).collect();
    let best: Vec<Measurement> = (1..=3).zip(neg.iter().copied()).collect();
    let noise = NoiseModel::from_groups([&neg[..]]);
    let cand = [-0.987, -1.001, -0.978];
    let (v, runs) = drive(&noise_aware(), Direction::Maximize, &noise, &best, |s| {
        cand[s as usize - 1]
    });
    assert!(v.is_keep(), "{v:?}");
    assert_eq!(runs.len(), 3);
    assert!(v.evidence().contains("Δ=+0.0123"), "{}", v.evidence());
}

#[test]
fn unknown_noise_never_keeps_a_single_run() {
    // Noise-aware with one baseline run: σ unknown until something repeats.
    let cfg = DecisionConfig {
        baseline_runs: 1,
        ..noise_aware()
    };
    let best = run_baseline(&cfg, |_| 1.0);
    assert_eq!(best, vec![(1, 1.0)]);
    let noise = NoiseModel::new();
    let v = decide(&cfg, Direction::Minimize, &noise, &best, &[(1, 0.5)]);
    match &v {
        Verdict::Measure { seeds, evidence } => {
            // The best has no seed 2: the next seed of the fixed sequence, unpaired.
            assert_eq!(seeds, &vec![2]);
            assert!(evidence.contains("σ unknown"), "{evidence}");
        }
        v => panic!("{v:?}"),
    }
    // After the candidate's own repeats, the pooled-σ test decides.
    let cand = [0.5, 0.52, 0.49];
    let (v, runs) = drive(&cfg, Direction::Minimize, &noise, &best, |s| {
        cand[s as usize - 1]
    });
    assert_eq!(runs.len(), 3);
    // σ comes from the noise model, which the loop did not update here: no test possible.
    assert!(matches!(v, Verdict::Discard { .. }), "{v:?}");
    assert!(v.evidence().contains("σ unknown"), "{}", v.evidence());
    // With the candidate's repeats pooled in (as the loop does), the same runs are kept.
    let mut noise = NoiseModel::new();
    noise.add_runs(&runs);
    let v = decide(&cfg, Direction::Minimize, &noise, &best, &runs);
    assert!(v.is_keep(), "{v:?}");
}

#[test]
fn near_miss_against_a_singly_measured_best_uses_the_pooled_test() {
    let (_, noise) = baseline();
    // The best was kept after one clear run: only seed 1 is known.
    let best = [(1, 0.95)];
    let near = [0.94, 0.935, 0.938];
    let (v, runs) = drive(&noise_aware(), Direction::Minimize, &noise, &best, |s| {
        near[s as usize - 1]
    });
    assert_eq!(runs.iter().map(|m| m.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(v.evidence().starts_with("pooled t: p="), "{}", v.evidence());
    assert!(
        v.evidence()
            .contains("(n=3 vs 1, df=2, Δ of the means -0.0123)"),
        "{}",
        v.evidence()
    );
    // Gain 0.0123 with se = σ·√(1/3 + 1) ≈ 0.0122 on 2 df: not significant.
    assert!(matches!(v, Verdict::Discard { .. }), "{v:?}");
}

#[test]
fn no_confirmation_runs_means_only_clear_gains_are_kept() {
    let cfg = DecisionConfig {
        confirm_runs: 0,
        ..noise_aware()
    };
    let (best, noise) = baseline();
    let (v, runs) = drive(&cfg, Direction::Minimize, &noise, &best, |s| {
        BASE[s as usize - 1] - 0.03
    });
    assert!(matches!(v, Verdict::Discard { .. }), "{v:?}");
    assert_eq!(runs.len(), 1);
    assert_eq!(
        v.evidence(),
        "Δ=-0.0300 in 1 run, no seed left to confirm it"
    );
    let (v, _) = drive(&cfg, Direction::Minimize, &noise, &best, |s| {
        BASE[s as usize - 1] - 0.1
    });
    assert!(v.is_keep());
}

#[test]
fn edge_inputs() {
    let (best, noise) = baseline();
    let cfg = noise_aware();
    let v = decide(&cfg, Direction::Minimize, &noise, &best, &[]);
    assert_eq!(
        v,
        Verdict::Measure {
            seeds: vec![1],
            evidence: "not measured yet".into()
        }
    );
    let v = decide(&cfg, Direction::Minimize, &noise, &best, &[(1, f64::NAN)]);
    assert!(matches!(v, Verdict::Discard { .. }));
    assert_eq!(v.status(), Some(autoresearch::experiment::Status::Discard));
    let v = decide(&cfg, Direction::Minimize, &noise, &[], &[(1, 1.0)]);
    assert!(v.is_keep());
}

#[test]
fn drift_rechecks() {
    let cfg = noise_aware();
    assert!(!needs_recheck(&cfg, 9));
    assert!(needs_recheck(&cfg, 10));
    assert!(!needs_recheck(
        &DecisionConfig {
            recheck_every: 0,
            ..cfg.clone()
        },
        1000
    ));
    assert_eq!(repeats_suffix(&[1.0]), None);
}

#[test]
fn rechecks_run_the_best_on_a_seed_it_has_not_run() {
    assert_eq!(recheck_seeds(&[]), vec![1]);
    assert_eq!(recheck_seeds(&[(7, 1.0), (8, 1.0)]), vec![1]);
    assert_eq!(recheck_seeds(&[(1, 1.0), (2, 1.0), (3, 1.0)]), vec![4]);
    assert_eq!(recheck_seeds(&[(1, 1.0), (3, 1.0)]), vec![2]);
}

#[test]
fn near_miss_score_is_the_gain_in_standard_errors() {
    let noise = NoiseModel::from_groups([&[1.0, 1.02][..]]);
    let s = noise.sigma().unwrap();
    assert!((s - 0.0141421356).abs() < 1e-9, "{s}");
    let best = [(1, 1.0), (2, 1.02)];
    // Gain 0.01 on two runs against two: se = σ·√(1/2 + 1/2) = σ.
    let score =
        near_miss_score(Direction::Minimize, &noise, &best, &[(1, 0.99), (2, 1.01)]).unwrap();
    assert!((score - 0.01 / s).abs() < 1e-9, "{score}");
    assert_eq!(
        near_miss_score(Direction::Minimize, &noise, &best, &[(1, 1.02)]),
        None,
        "no gain"
    );
    assert_eq!(
        near_miss_score(Direction::Maximize, &noise, &best, &[(1, 0.99)]),
        None,
        "lower is worse when maximizing"
    );
    assert_eq!(
        near_miss_score(Direction::Minimize, &NoiseModel::new(), &best, &[(1, 0.9)]),
        None,
        "σ unknown"
    );
}

/// Drives `decide_again` for one revisit, running the candidate on the seeds it asks for.
fn drive_again(
    cfg: &DecisionConfig,
    noise: &NoiseModel,
    best: &[Measurement],
    earlier: &Earlier,
    metric: impl Fn(u64) -> f64,
) -> (Verdict, Vec<Measurement>) {
    let mut cand: Vec<Measurement> = Vec::new();
    for _ in 0..20 {
        match decide_again(cfg, Direction::Minimize, noise, best, earlier, &cand) {
            Verdict::Measure { seeds, .. } => {
                for s in seeds {
                    assert!(
                        cand.iter().chain(&earlier.runs).all(|m| m.0 != s),
                        "seed {s} asked for twice"
                    );
                    cand.push((s, metric(s)));
                }
            }
            v => return (v, cand),
        }
    }
    panic!("the policy never reached a verdict");
}

#[test]
fn a_revisit_runs_new_seeds_decides_on_all_runs_and_tests_at_alpha_over_k() {
    let (best, noise) = baseline();
    // The first visit: seeds 1-3, a near miss (mean gain ≈ 0.009).
    let earlier = Earlier {
        runs: vec![(1, 0.995), (2, 1.0), (3, 0.981)],
        visits: 1,
    };
    assert_eq!(earlier.alpha(), 0.025);
    let v = decide_again(
        &noise_aware(),
        Direction::Minimize,
        &noise,
        &best,
        &earlier,
        &[],
    );
    assert_eq!(
        v,
        Verdict::Measure {
            seeds: vec![4],
            evidence: "measured before (n=3), measuring again".into()
        }
    );
    // This visit gets 1 + confirm_runs = 3 new runs, then the pooled t-test on all six
    // (seeds 4-6 are not the best's, so nothing pairs them) at α/2.
    let (v, cand) = drive_again(&noise_aware(), &noise, &best, &earlier, |s| {
        [0.0, 0.0, 0.0, 0.955, 0.958, 0.955][s as usize - 1]
    });
    assert_eq!(cand.iter().map(|m| m.0).collect::<Vec<_>>(), [4, 5, 6]);
    let e = v.evidence().to_string();
    assert!(e.starts_with("pooled t: p=0.0"), "{e}");
    // p is between α/2 and α: kept at a first look, not at a second.
    let p: f64 = e["pooled t: p=".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(p > 0.025 && p < 0.05, "{e}");
    assert!(!v.is_keep(), "{e}");
    assert!(e.contains("≥ α=0.025"), "{e}");
    let first_look = Earlier {
        visits: 0,
        ..earlier.clone()
    };
    let (v, _) = drive_again(&noise_aware(), &noise, &best, &first_look, |s| {
        [0.0, 0.0, 0.0, 0.955, 0.958, 0.955][s as usize - 1]
    });
    assert!(v.is_keep(), "{}", v.evidence());
    // Greedy ignores earlier runs: one run, compared as it is.
    let (v, cand) = drive_again(&greedy(), &noise, &best, &earlier, |_| 1.01);
    assert_eq!(cand.len(), 1);
    assert!(!v.is_keep());
}

#[test]
fn once_the_noise_model_has_more_df_than_the_pairs_the_pooled_test_decides() {
    // σ̂ from the baseline and two earlier 3-run candidates: 6 df, more than 3 pairs' 2, so
    // the pooled t decides: a gain of 0.0173 ≈ 1.7σ̂, se = σ̂·√(1/3 + 1/3), t ≈ 2.06 on 6 df.
    let noise =
        NoiseModel::from_groups([&BASE[..], &[0.99, 1.0, 1.01][..], &[1.0, 0.99, 1.01][..]]);
    assert_eq!(noise.df(), 6);
    let best: Vec<Measurement> = vec![(1, 1.000), (2, 1.012), (3, 0.991)];
    let cand = [0.985, 0.988, 0.978];
    let (v, _) = drive(&noise_aware(), Direction::Minimize, &noise, &best, |s| {
        cand[s as usize - 1]
    });
    let e = v.evidence();
    assert!(e.starts_with("pooled t: p=0.0"), "{e}");
    assert!(
        e.contains("(n=3 vs 3, df=6, Δ of the means -0.0173)"),
        "{e}"
    );
    assert!(v.is_keep(), "{e}");
    // With only the baseline behind σ̂ (2 df), the same runs go to the paired test.
    let (_, base_noise) = baseline();
    let (v, _) = drive(
        &noise_aware(),
        Direction::Minimize,
        &base_noise,
        &best,
        |s| cand[s as usize - 1],
    );
    assert!(v.evidence().starts_with("paired t: "), "{}", v.evidence());
}
