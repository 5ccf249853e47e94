//! Times the chart renderers on a synthetic session: `cargo run --release --example
//! bench_chart [-- N [OUT_DIR]]` prints ms per render for N experiments (default 10,000)
//! and, given OUT_DIR, writes progress.png and progress.svg there to look at.

use autoresearch::experiment::{Direction, Status};
use autoresearch::report::{ChartPoint, ChartSeries, Tally, render_png, render_svg};
use std::time::Instant;

/// A deterministic night: mostly discards around the best, a keep every so often, some
/// crashes. A tiny LCG keeps it reproducible without a dependency.
fn synthetic(n: u64, direction: Direction) -> ChartSeries {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) as f64 / f64::from(1u32 << 31)
    };
    let sign = if direction == Direction::Minimize {
        1.0
    } else {
        -1.0
    };
    let mut best = 1.0;
    let mut points = vec![ChartPoint {
        x: 0,
        value: Some(best),
        status: Status::Keep,
        label: "baseline".into(),
    }];
    for x in 1..n {
        let r = rand();
        let (status, value) = if r < 0.03 {
            (Status::Crash, None)
        } else if r < 0.10 {
            best -= sign * 0.002 * rand();
            (Status::Keep, Some(best))
        } else {
            (Status::Discard, Some(best + sign * 0.02 * rand()))
        };
        let label = format!(
            "MATRIX_LR 0.0{} → 0.0{} with a long explanation attached",
            x % 9,
            (x + 1) % 9
        );
        points.push(ChartPoint {
            x,
            value,
            status,
            label,
        });
    }
    let kept = points.iter().filter(|p| p.status == Status::Keep).count() as u64;
    ChartSeries {
        metric_name: "val_bpb".into(),
        direction,
        points,
        tally: Tally {
            experiments: n.saturating_sub(1),
            kept: kept.saturating_sub(1),
            ..Tally::default()
        },
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(1).map_or(Ok(10_000), |s| s.parse())?;
    let series = synthetic(n, Direction::Minimize);
    let rounds = 5;
    let t = Instant::now();
    let mut png = Vec::new();
    for _ in 0..rounds {
        png = render_png(&series, 1600, 800)?;
    }
    let png_ms = t.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds);
    let t = Instant::now();
    let mut svg = String::new();
    for _ in 0..rounds {
        svg = render_svg(&series)?;
    }
    let svg_ms = t.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds);
    println!(
        "{n} experiments: png {png_ms:.1} ms/render ({} bytes), svg {svg_ms:.1} ms/render ({} bytes)",
        png.len(),
        svg.len()
    );
    if let Some(dir) = args.get(2) {
        std::fs::write(format!("{dir}/progress.png"), &png)?;
        std::fs::write(format!("{dir}/progress.svg"), &svg)?;
        let max = synthetic(n, Direction::Maximize);
        std::fs::write(
            format!("{dir}/progress-max.png"),
            render_png(&max, 1600, 800)?,
        )?;
    }
    Ok(())
}
