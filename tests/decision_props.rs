//! Invariants of the keep/discard policy (proptest), and a seeded simulation of many
//! noise-only and real-gain candidates comparing greedy with noise-aware decisions.

use autoresearch::config::{DecisionConfig, DecisionMode};
use autoresearch::decision::{Measurement, NoiseModel, Verdict, decide, default_config};
use autoresearch::experiment::Direction;
use proptest::prelude::*;

fn cfg_for(greedy: bool, confirm_runs: u32, min_delta: f64) -> DecisionConfig {
    DecisionConfig {
        mode: if greedy {
            DecisionMode::Greedy
        } else {
            DecisionMode::NoiseAware
        },
        confirm_runs,
        min_delta,
        ..default_config()
    }
}

/// The best's runs: distinct seeds 1..=k.
fn best_strategy() -> impl Strategy<Value = Vec<Measurement>> {
    prop::collection::vec(0.5f64..1.5, 1..=4).prop_map(|vs| {
        vs.into_iter()
            .enumerate()
            .map(|(i, v)| (i as u64 + 1, v))
            .collect()
    })
}

fn noise_strategy() -> impl Strategy<Value = NoiseModel> {
    prop::collection::vec(prop::collection::vec(0.9f64..1.1, 0..=4), 0..=3)
        .prop_map(|groups| NoiseModel::from_groups(groups.iter().map(|g| g.as_slice())))
}

fn kind(v: &Verdict) -> (u8, Vec<u64>) {
    match v {
        Verdict::Keep { .. } => (0, vec![]),
        Verdict::Discard { .. } => (1, vec![]),
        Verdict::Measure { seeds, .. } => (2, seeds.clone()),
    }
}

proptest! {
    /// A candidate that is worse than (or equal to) the best on every seed it ran is never
    /// kept, in either mode and either direction.
    #[test]
    fn worse_on_every_paired_seed_is_never_kept(
        best in best_strategy(),
        noise in noise_strategy(),
        worse in prop::collection::vec(0.0f64..0.2, 1..=4),
        greedy in any::<bool>(),
        maximize in any::<bool>(),
        confirm in 0u32..4,
    ) {
        let direction = if maximize { Direction::Maximize } else { Direction::Minimize };
        let cand: Vec<Measurement> = best.iter().zip(&worse).map(|(&(s, b), w)| {
            (s, if maximize { b - w } else { b + w })
        }).collect();
        let v = decide(&cfg_for(greedy, confirm, 0.0), direction, &noise, &best, &cand);
        prop_assert!(!v.is_keep(), "{:?} for {:?} vs {:?}", v, cand, best);
    }

    /// Negating every value and flipping the direction gives the same decision.
    #[test]
    fn swapping_direction_mirrors_decisions(
        best in best_strategy(),
        noise in noise_strategy(),
        cand_values in prop::collection::vec(0.5f64..1.5, 1..=4),
        greedy in any::<bool>(),
        confirm in 0u32..4,
        min_delta in prop_oneof![Just(0.0), 0.0f64..0.05],
    ) {
        let cand: Vec<Measurement> =
            cand_values.iter().enumerate().map(|(i, v)| (i as u64 + 1, *v)).collect();
        let neg = |runs: &[Measurement]| -> Vec<Measurement> {
            runs.iter().map(|&(s, v)| (s, -v)).collect()
        };
        let cfg = cfg_for(greedy, confirm, min_delta);
        let a = decide(&cfg, Direction::Minimize, &noise, &best, &cand);
        let b = decide(&cfg, Direction::Maximize, &noise, &neg(&best), &neg(&cand));
        prop_assert_eq!(kind(&a), kind(&b), "{:?} vs {:?}", a, b);
    }

    /// Re-running the best's own values is never a keep: equal goes to the simpler code.
    #[test]
    fn an_identical_candidate_is_never_kept(
        best in best_strategy(),
        noise in noise_strategy(),
        greedy in any::<bool>(),
    ) {
        let v = decide(&cfg_for(greedy, 2, 0.0), Direction::Minimize, &noise, &best, &best);
        prop_assert!(!v.is_keep(), "{:?}", v);
    }

    /// Driving the policy to the end never repeats a seed, never spends more than
    /// 1 + confirm_runs candidate runs, and greedy never asks for a second run.
    #[test]
    fn measuring_is_bounded_and_never_repeats_a_seed(
        best in best_strategy(),
        noise in noise_strategy(),
        values in prop::collection::vec(0.5f64..1.5, 8),
        greedy in any::<bool>(),
        confirm in 0u32..4,
    ) {
        let cfg = cfg_for(greedy, confirm, 0.0);
        let mut cand: Vec<Measurement> = Vec::new();
        let limit = if greedy { 1 } else { 1 + confirm as usize };
        while let Verdict::Measure { seeds, .. } =
            decide(&cfg, Direction::Minimize, &noise, &best, &cand)
        {
            for s in seeds {
                prop_assert!(cand.iter().all(|m| m.0 != s), "seed {} again", s);
                cand.push((s, values[cand.len()]));
            }
            prop_assert!(cand.len() <= limit, "{} runs > {}", cand.len(), limit);
        }
        prop_assert!(!cand.is_empty());
    }
}

/// splitmix64: a tiny seeded generator, so the simulation is the same on every run.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Runs `trials` candidates whose true gain is `true_gain` (in units of σ = 0.01, noise
/// independent per run: the worst case for pairing) against a fresh 3-run baseline, and
/// returns (keeps, candidate runs spent).
fn simulate(cfg: &DecisionConfig, true_gain: f64, trials: usize, rng: &mut Rng) -> (usize, usize) {
    let sigma = 0.01;
    let (mut keeps, mut runs) = (0, 0);
    for _ in 0..trials {
        let k = if cfg.mode == DecisionMode::Greedy {
            1
        } else {
            3
        };
        let best: Vec<Measurement> = (1..=k).map(|s| (s, 1.0 + sigma * rng.normal())).collect();
        let mut noise = NoiseModel::new();
        noise.add_runs(&best);
        let mut cand: Vec<Measurement> = Vec::new();
        loop {
            match decide(cfg, Direction::Minimize, &noise, &best, &cand) {
                Verdict::Measure { seeds, .. } => {
                    for s in seeds {
                        cand.push((s, 1.0 - true_gain * sigma + sigma * rng.normal()));
                    }
                }
                v => {
                    keeps += usize::from(v.is_keep());
                    break;
                }
            }
        }
        runs += cand.len();
    }
    (keeps, runs)
}

#[test]
fn noise_aware_cuts_false_keeps_against_greedy() {
    let mut rng = Rng(20240601);
    let trials = 2000;
    let greedy = cfg_for(true, 2, 0.0);
    let aware = default_config();
    let (g_keeps, g_runs) = simulate(&greedy, 0.0, trials, &mut rng);
    let (a_keeps, a_runs) = simulate(&aware, 0.0, trials, &mut rng);
    eprintln!(
        "noise only: greedy keeps {g_keeps}/{trials} ({g_runs} runs), noise-aware {a_keeps} ({a_runs} runs)"
    );
    // Greedy keeps about half of the noise-only changes.
    assert!((800..1200).contains(&g_keeps), "{g_keeps}");
    // The target: at least 80 % fewer false keeps.
    assert!(a_keeps * 5 <= g_keeps, "{a_keeps} vs {g_keeps}");
    // And noise-aware does not spend more than 1 + confirm_runs runs per candidate.
    assert!(a_runs <= 3 * trials);

    // A real gain of 3σ is still found most of the time.
    let (a_real, _) = simulate(&aware, 3.0, trials, &mut rng);
    eprintln!("3σ real gain: noise-aware keeps {a_real}/{trials}");
    assert!(a_real * 2 > trials, "{a_real}");
}
