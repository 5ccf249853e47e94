//! Unit tests of the pruning rule, on generated curves with a seeded generator.

use super::*;
use std::sync::Arc;

/// xorshift64* and Box–Muller: enough randomness for the tests, the same every run.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// A curve that ends at `value` after dropping `drop` over the budget (fastest early),
/// with point noise `noise`.
fn curve(value: f64, drop: f64, noise: f64, rng: &mut Rng) -> Curve {
    let mut c = Curve::default();
    for i in 1..=100 {
        let f = f64::from(i) / 100.0;
        c.push(f, value + drop * (1.0 - f).powi(2) + noise * rng.normal());
    }
    c
}

fn run(code: &str, value: f64, drop: f64, rng: &mut Rng) -> Finished {
    Finished {
        code: code.into(),
        curve: curve(value, drop, 0.002, rng),
        value,
    }
}

/// The baseline (3 seeds at 1.00) and two other codes, all dropping by `drops`.
fn history(drops: [f64; 5], rng: &mut Rng) -> Vec<Finished> {
    vec![
        run("base", 1.000, drops[0], rng),
        run("base", 1.004, drops[1], rng),
        run("base", 0.997, drops[2], rng),
        run("a", 1.05, drops[3], rng),
        run("b", 1.02, drops[4], rng),
    ]
}

fn reference(h: Vec<Finished>, direction: Direction) -> Reference {
    let best = h
        .iter()
        .filter(|f| f.code == "base")
        .map(|f| f.value)
        .sum::<f64>()
        / 3.0;
    Reference::new(
        &PruneConfig::default(),
        direction,
        "val_bpb",
        h,
        "base",
        best,
        1.0,
    )
}

#[test]
fn a_clearly_worse_curve_is_pruned_but_never_before_start() {
    let mut rng = Rng(7);
    let r = reference(history([2.0; 5], &mut rng), Direction::Minimize);
    assert!(r.armed());
    assert_eq!(r.looks().len(), 7, "{:?}", r.looks());
    // Heading for 1.30 where the best is at 1.00.
    let at = |f: f64| 1.30 + 2.0 * (1.0 - f).powi(2);
    assert_eq!(r.judge(0.2, at(0.2)), Call::GoOn);
    let Call::Prune(note) = r.judge(0.3, at(0.3)) else {
        panic!("not pruned")
    };
    assert!(
        note.starts_with("pruned at 30% (loss 2.280 vs best 1.98"),
        "{note}"
    );
    assert!(
        note.contains("heading for val_bpb 1.300 vs best 1.000"),
        "{note}"
    );
}

#[test]
fn a_close_curve_goes_on() {
    let mut rng = Rng(8);
    let r = reference(history([2.0; 5], &mut rng), Direction::Minimize);
    for f in [0.3f64, 0.5, 0.7, 0.9] {
        // Within the drops' spread of the best: it may still win.
        let y = 1.003 + 2.0 * (1.0 - f).powi(2);
        assert_eq!(r.judge(f, y), Call::GoOn, "at {f}");
    }
}

#[test]
fn crossings_on_record_make_the_rule_wait() {
    let mut rng = Rng(9);
    // Worse by 0.1 at 30%: pruned when every code's curve fell alike ...
    let y = 1.10 + 2.0 * 0.49;
    let parallel = reference(history([2.0; 5], &mut rng), Direction::Minimize);
    assert!(matches!(parallel.judge(0.3, y), Call::Prune(_)));
    // ... not when codes on record fell by 1.6 to 2.4 (their curves crossed).
    let crossing = reference(
        history([2.0, 2.0, 2.0, 2.4, 1.6], &mut rng),
        Direction::Minimize,
    );
    assert_eq!(crossing.judge(0.3, y), Call::GoOn);
}

#[test]
fn nothing_is_pruned_without_enough_runs_codes_or_a_curve_of_the_best() {
    let mut rng = Rng(10);
    let mut h = history([2.0; 5], &mut rng);
    h.truncate(4); // four runs, two codes
    let r = reference(h, Direction::Minimize);
    assert!(!r.armed());
    assert_eq!(r.judge(0.5, 9.0), Call::GoOn);
    let mut h = history([2.0; 5], &mut rng);
    h.push(run("c", 1.1, 2.0, &mut rng));
    for f in &mut h {
        if f.code == "base" {
            f.curve = Curve::default();
        }
    }
    let r = reference(h, Direction::Minimize);
    assert_eq!(r.judge(0.5, 9.0), Call::GoOn);
    let off = PruneConfig {
        start: 0.99,
        ..PruneConfig::default()
    };
    let r = Reference::new(
        &off,
        Direction::Minimize,
        "m",
        history([2.0; 5], &mut rng),
        "base",
        1.0,
        1.0,
    );
    assert!(r.looks().is_empty());
    assert_eq!(r.judge(0.995, 9.0), Call::GoOn);
}

#[test]
fn a_metric_to_maximise_is_pruned_when_its_curve_is_too_low() {
    let mut rng = Rng(11);
    // Accuracy-like: curves rise to their final value.
    let h: Vec<Finished> = history([2.0; 5], &mut rng)
        .into_iter()
        .map(|f| Finished {
            curve: Curve {
                points: f.curve.points.iter().map(|&(x, y)| (x, 2.0 - y)).collect(),
            },
            value: 2.0 - f.value,
            code: f.code,
        })
        .collect();
    let r = reference(h, Direction::Maximize);
    let low = 0.7 - 2.0 * 0.49;
    assert!(matches!(r.judge(0.3, low), Call::Prune(_)));
    let high = 1.2 - 2.0 * 0.49;
    assert_eq!(r.judge(0.3, high), Call::GoOn);
}

#[test]
fn a_watch_looks_once_per_checkpoint() {
    let mut rng = Rng(12);
    let r = Arc::new(reference(history([2.0; 5], &mut rng), Direction::Minimize));
    let mut w = Watch::new(r);
    let at = |f: f64| 1.30 + 2.0 * (1.0 - f).powi(2);
    assert_eq!(w.point(0.1, at(0.1)), None);
    assert_eq!(w.point(0.29, at(0.29)), None);
    assert!(w.point(0.31, at(0.31)).is_some());
    // Decided: later points change nothing.
    assert_eq!(w.point(0.5, at(0.5)), None);
    assert!(w.verdict.as_deref().unwrap().starts_with("pruned at 31%"));
}

/// The guarantee, checked by simulation: codes whose drops vary (their curves cross) and
/// whose finals vary; of the candidates that end better than the best's mean, at most
/// `alpha` are pruned. Losers well behind are mostly pruned.
#[test]
fn winners_are_pruned_at_most_alpha_of_the_time() {
    let mut rng = Rng(2026);
    let cfg = PruneConfig::default();
    let (mut winners, mut winners_pruned, mut losers, mut losers_pruned) = (0, 0, 0, 0);
    let code = |rng: &mut Rng| (1.0 + 0.05 * rng.normal(), 2.0 + 0.3 * rng.normal());
    for trial in 0..1500 {
        let mut h = Vec::new();
        let (bv, bd) = code(&mut rng);
        let mut best = 0.0;
        for _ in 0..3 {
            let v = bv + 0.005 * rng.normal();
            best += v / 3.0;
            h.push(Finished {
                code: "best".into(),
                curve: curve(v, bd + 0.02 * rng.normal(), 0.003, &mut rng),
                value: v,
            });
        }
        for i in 0..(3 + trial % 10) {
            let (v, d) = code(&mut rng);
            h.push(Finished {
                code: format!("c{i}"),
                curve: curve(v, d, 0.003, &mut rng),
                value: v,
            });
        }
        let r = Arc::new(Reference::new(
            &cfg,
            Direction::Minimize,
            "m",
            h,
            "best",
            best,
            0.5,
        ));
        let (v, d) = code(&mut rng);
        let c = curve(v, d, 0.003, &mut rng);
        let mut w = Watch::new(r);
        let pruned = c.points.iter().any(|&(f, y)| w.point(f, y).is_some());
        if v < best {
            winners += 1;
            winners_pruned += usize::from(pruned);
        } else if v > best + 0.1 {
            losers += 1;
            losers_pruned += usize::from(pruned);
        }
    }
    let rate = winners_pruned as f64 / winners as f64;
    assert!(winners > 300, "{winners}");
    assert!(
        rate <= cfg.alpha,
        "{winners_pruned} of {winners} winners pruned"
    );
    assert!(
        losers_pruned * 2 > losers,
        "only {losers_pruned} of {losers} clear losers pruned"
    );
}

#[test]
fn least_squares_recovers_an_exact_plane_and_inverts() {
    let rows = [[1.0, 0.0], [2.0, 1.0], [3.0, 0.5], [4.0, 2.0], [0.5, 3.0]];
    let ts: Vec<f64> = rows.iter().map(|r| 0.5 + 2.0 * r[0] - 1.0 * r[1]).collect();
    let (p, se, df) = ols2(&rows, &ts, [10.0, 1.0]).unwrap();
    assert!((p - 19.5).abs() < 1e-9, "{p}");
    assert!(se < 1e-6, "{se}");
    assert_eq!(df, 2);
    let m = [[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]];
    let inv = inverse3(m).unwrap();
    for (i, row) in m.iter().enumerate() {
        for j in 0..3 {
            let e: f64 = row.iter().zip(&inv).map(|(a, r)| a * r[j]).sum();
            assert!((e - f64::from(u8::from(i == j))).abs() < 1e-12);
        }
    }
    assert!(inverse3([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 1.0, 1.0]]).is_none());
}
