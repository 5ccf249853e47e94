//! The pruning benchmark's simulation: research sessions over generated training curves
//! with realistic noise and crossings, judged point by point by the same rule the sessions
//! use (`autoresearch::decision::prune`). Prints the GPU time saved on losing runs and the
//! real improvements lost, per scenario, as a Markdown table.
//!
//! `cargo run --release --example prune_bench -- [sessions] [experiments]` (defaults 200, 100);
//! `PRUNE_START=0.2` looks from 20% of the budget instead of the default 30%.
//!
//! A code (one experiment's train.py) has a true final value `v`, a train-vs-val offset, a
//! speed `k` (how early its loss falls: curves of different `k` cross) and a warmdown drop
//! at the end. Its run prints 100 progress points: `v + offset + A·g(f; k) + w·h(f)` plus
//! AR(1) noise (a smoothed loss), and ends with `v` plus seed noise. The session measures
//! the baseline on 3 seeds, then proposes codes around the best (30% real improvements,
//! the rest worse, some far worse) and keeps one when its observed value beats the best's
//! (greedy on one run, so that a pruned winner is a lost improvement, not a confirmation).

use autoresearch::config::PruneConfig;
use autoresearch::decision::curve::Curve;
use autoresearch::decision::prune::{Finished, Reference, Watch};
use autoresearch::experiment::Direction;
use std::sync::Arc;

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

/// How noisy and how crossing the curves of a scenario are.
#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    /// Seed noise of the final value.
    seed_sd: f64,
    /// Noise of a progress point (AR(1), correlation 0.9).
    point_sd: f64,
    /// Spread of the speed `k` across codes (0: parallel curves).
    k_sd: f64,
    /// Spread of the train-vs-val offset across codes.
    offset_sd: f64,
}

/// One code's shape.
#[derive(Clone, Copy)]
struct Code {
    v: f64,
    offset: f64,
    k: f64,
    warmdown: f64,
}

const LOSS_SPAN: f64 = 2.0;

fn shape(f: f64, k: f64) -> f64 {
    ((-k * f).exp() - (-k).exp()) / (1.0 - (-k).exp())
}

/// One run of `code`: its curve and its final value.
fn run(code: &Code, s: &Scenario, rng: &mut Rng) -> (Vec<(f64, f64)>, f64) {
    let seed_shift = s.seed_sd * rng.normal();
    let mut ar = 0.0;
    let mut points = Vec::with_capacity(100);
    for i in 1..=100 {
        let f = f64::from(i) / 100.0;
        ar = 0.9 * ar + (1.0f64 - 0.81).sqrt() * s.point_sd * rng.normal();
        // The warmdown: the last 30% of the budget lowers the loss by `warmdown`.
        let wd = code.warmdown * (1.0 - ((f - 0.7).max(0.0) / 0.3));
        let y = code.v + code.offset + seed_shift + LOSS_SPAN * shape(f, code.k) + wd + ar;
        points.push((f, y));
    }
    (points, code.v + seed_shift)
}

fn new_code(around: f64, s: &Scenario, rng: &mut Rng) -> Code {
    let u = rng.uniform();
    // 30% real improvements (small), 50% a bit worse, 20% far worse.
    let delta = if u < 0.3 {
        -0.015 * rng.normal().abs()
    } else if u < 0.8 {
        0.03 * rng.normal().abs()
    } else {
        0.1 + 0.2 * rng.normal().abs()
    };
    Code {
        v: around + delta,
        offset: s.offset_sd * rng.normal(),
        k: (4.0 + s.k_sd * rng.normal()).clamp(0.5, 10.0),
        warmdown: 0.05 + 0.02 * rng.normal(),
    }
}

#[derive(Default)]
struct Tally {
    losers: usize,
    loser_time: f64,
    loser_saved: f64,
    winners: usize,
    winners_pruned: usize,
    all_time: f64,
    pruned: usize,
    experiments: usize,
    pruned_at: f64,
    /// Runs whose observed final would have beaten the best's mean (kept by the session).
    keepers: usize,
    keepers_pruned: usize,
}

fn session(cfg: &PruneConfig, s: &Scenario, experiments: usize, rng: &mut Rng, t: &mut Tally) {
    let base = Code {
        v: 1.0,
        offset: 0.0,
        k: 4.0,
        warmdown: 0.05,
    };
    let mut history: Vec<Finished> = Vec::new();
    let mut best_code = "c0".to_string();
    let mut best = base;
    let mut best_obs = Vec::new();
    for _ in 0..3 {
        let (points, v) = run(&base, s, rng);
        best_obs.push(v);
        history.push(Finished {
            code: best_code.clone(),
            curve: Curve { points },
            value: v,
        });
    }
    let (mut keeps, mut decided) = (0usize, 0usize);
    for e in 1..=experiments {
        let code = new_code(best.v, s, rng);
        let best_mean = best_obs.iter().sum::<f64>() / best_obs.len() as f64;
        let r = Reference::new(
            cfg,
            Direction::Minimize,
            "val_bpb",
            history.clone(),
            &best_code,
            best_mean,
            (keeps + 1) as f64 / (decided + 2) as f64,
        );
        let (points, v) = run(&code, s, rng);
        let mut stopped = None;
        if r.armed() {
            let mut w = Watch::new(Arc::new(r));
            stopped = points
                .iter()
                .find(|&&(f, y)| w.point(f, y).is_some())
                .map(|p| p.0);
        }
        let time = stopped.unwrap_or(1.0);
        t.experiments += 1;
        t.all_time += time;
        // A real improvement: truly better than the best's true value.
        if v < best_mean {
            t.keepers += 1;
            t.keepers_pruned += usize::from(stopped.is_some());
        }
        if code.v < best.v {
            t.winners += 1;
            t.winners_pruned += usize::from(stopped.is_some());
        } else {
            t.losers += 1;
            t.loser_time += 1.0;
            t.loser_saved += 1.0 - time;
        }
        decided += 1;
        if let Some(f) = stopped {
            t.pruned += 1;
            t.pruned_at += f;
            continue;
        }
        let name = format!("c{e}");
        history.push(Finished {
            code: name.clone(),
            curve: Curve {
                points: points.clone(),
            },
            value: v,
        });
        if v < best_mean {
            keeps += 1;
            best = code;
            best_code = name;
            best_obs = vec![v];
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let sessions: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let experiments: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let scenarios = [
        Scenario {
            name: "low noise, few crossings",
            seed_sd: 0.002,
            point_sd: 0.005,
            k_sd: 0.3,
            offset_sd: 0.002,
        },
        Scenario {
            name: "realistic (karpathy-like)",
            seed_sd: 0.005,
            point_sd: 0.01,
            k_sd: 1.0,
            offset_sd: 0.005,
        },
        Scenario {
            name: "noisy, many crossings",
            seed_sd: 0.01,
            point_sd: 0.02,
            k_sd: 2.0,
            offset_sd: 0.01,
        },
    ];
    let mut cfg = PruneConfig::default();
    if let Some(v) = std::env::var("PRUNE_START")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.start = v;
    }
    println!(
        "{sessions} sessions × {experiments} experiments per scenario; [prune] defaults (start {}, alpha {}, min_runs {}, min_codes {})\n",
        cfg.start, cfg.alpha, cfg.min_runs, cfg.min_codes
    );
    println!(
        "| scenario | losing runs | GPU time of losing runs saved | real improvements | lost to pruning | would-be keeps pruned | all GPU time saved | pruned (mean point) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (i, s) in scenarios.iter().enumerate() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
        let mut t = Tally::default();
        for _ in 0..sessions {
            session(&cfg, s, experiments, &mut rng, &mut t);
        }
        println!(
            "| {} | {} | {:.1}% | {} | {} ({:.2}%) | {} of {} ({:.2}%) | {:.1}% | {} ({:.0}%) |",
            s.name,
            t.losers,
            100.0 * t.loser_saved / t.loser_time,
            t.winners,
            t.winners_pruned,
            100.0 * t.winners_pruned as f64 / t.winners.max(1) as f64,
            t.keepers_pruned,
            t.keepers,
            100.0 * t.keepers_pruned as f64 / t.keepers.max(1) as f64,
            100.0 * (t.experiments as f64 - t.all_time) / t.experiments as f64,
            t.pruned,
            100.0 * t.pruned_at / t.pruned.max(1) as f64,
        );
    }
}
