//! The chart's geometry, apart from drawing: the y-range (every discard in view, true
//! outliers clipped), tick positions and their text, and where labels go without crossing
//! the axes or each other. Pure arithmetic; no drawing, no fonts.

/// At most this many ticks on an axis.
const MAX_TICKS: usize = 10;
/// Values beyond the quartiles by more than this many interquartile ranges are outliers.
const FENCE_IQRS: f64 = 3.0;

/// Integer experiment numbers for the x axis: 0, then every `step` (1, 2, 5, 10, 20, …)
/// up to `max_x`; unique and ascending.
pub fn x_ticks(max_x: u64) -> Vec<u64> {
    let step = nice_int_step(max_x.max(1), MAX_TICKS as u64);
    (0..=max_x / step).map(|i| i * step).collect()
}

fn nice_int_step(span: u64, max_ticks: u64) -> u64 {
    let mut magnitude = 1u64;
    loop {
        for m in [1, 2, 5] {
            let step = m * magnitude;
            if span / step < max_ticks {
                return step;
            }
        }
        magnitude = magnitude.saturating_mul(10);
    }
}

/// Ticks on [lo, hi] at a 1-2-5 step, and the decimals that tell them apart.
pub fn y_ticks(lo: f64, hi: f64) -> (Vec<f64>, usize) {
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return (vec![lo], 6);
    }
    let rough = span / (MAX_TICKS - 2) as f64;
    let magnitude = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| span / s <= MAX_TICKS as f64 - 1.0)
        .unwrap_or(10.0 * magnitude);
    let decimals = (-(step.log10().floor()) as i64).clamp(0, 12) as usize;
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    let ticks = (first..=last).map(|i| i as f64 * step).collect();
    (ticks, decimals)
}

/// A tick's text with `decimals` digits; zero is `0…`, never `-0…`.
pub fn tick_text(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    match s.strip_prefix('-') {
        Some(rest) if rest.bytes().all(|b| b == b'0' || b == b'.') => rest.to_string(),
        _ => s,
    }
}

/// The y-range shown, and the values beyond it (drawn as marks on the edge).
#[derive(Debug, Clone, PartialEq)]
pub struct YRange {
    pub lo: f64,
    pub hi: f64,
}

impl YRange {
    pub fn contains(&self, v: f64) -> bool {
        v >= self.lo && v <= self.hi
    }
}

/// The range that shows every kept value and every other value but true outliers: those
/// beyond the quartiles by more than three interquartile ranges (the IQR taken at least as
/// the kept values' spread, so a flat night does not call every change an outlier).
pub fn y_range(values: &[f64], kept: &[f64]) -> YRange {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return YRange { lo: 0.0, hi: 1.0 };
    }
    let mut sorted = finite.clone();
    sorted.sort_by(f64::total_cmp);
    let q = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
    let (q1, q3) = (q(0.25), q(0.75));
    let (kmin, kmax) = min_max(kept.iter().copied().filter(|v| v.is_finite()));
    let kept_spread = if kmin.is_finite() { kmax - kmin } else { 0.0 };
    let median = q(0.5);
    let iqr = (q3 - q1)
        .max(kept_spread)
        .max(median.abs() * 0.01)
        .max(1e-9);
    let (fence_lo, fence_hi) = (q1 - FENCE_IQRS * iqr, q3 + FENCE_IQRS * iqr);
    let shown = finite
        .iter()
        .copied()
        .filter(|v| *v >= fence_lo && *v <= fence_hi)
        .chain(kept.iter().copied().filter(|v| v.is_finite()));
    let (lo, hi) = min_max(shown);
    if hi - lo <= hi.abs().max(lo.abs()) * 1e-9 {
        // One value (or all equal): a window around it, not a magnified rounding error.
        let h = if lo == 0.0 { 0.5 } else { lo.abs() * 0.05 };
        return YRange {
            lo: lo - h,
            hi: hi + h,
        };
    }
    let span = hi - lo;
    YRange {
        lo: lo - span * 0.06,
        hi: hi + span * 0.06,
    }
}

fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    })
}

/// A rectangle in pixels, y down.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

/// A label to place: its point in pixels, its width at the chart's font size per text
/// variant (full, then shorter), and its priority (larger first).
#[derive(Debug, Clone)]
pub struct Wanted {
    pub at: (f32, f32),
    /// (text, width in pixels), the preferred first.
    pub texts: Vec<(String, f32)>,
    pub priority: f64,
}

/// Where a placed label's baseline starts, and its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub x: f32,
    pub y: f32,
    pub text: String,
}

/// Places labels leaning `angle_deg` (counter-clockwise), highest priority first: each at
/// the first position (after its point, or ending at it; full text, then shorter) whose
/// box lies inside `area` and overlaps no label placed before; the rest are left out.
pub fn place_labels(
    wanted: &[Wanted],
    area: Area,
    keep_clear: Area,
    angle_deg: f32,
    size_px: f32,
    gap: f32,
) -> Vec<Placed> {
    let (sin, cos) = angle_deg.to_radians().sin_cos();
    // Boxes in the labels' own frame (u along the text, v across it, both in pixels):
    // all labels share one angle, so two overlap exactly when these rectangles do.
    let to_frame = |x: f32, y: f32| (x * cos - y * sin, x * sin + y * cos);
    let mut order: Vec<&Wanted> = wanted.iter().collect();
    order.sort_by(|a, b| b.priority.total_cmp(&a.priority));
    let mut taken: Vec<(f32, f32, f32, f32)> = Vec::new();
    let mut placed = Vec::new();
    for w in order {
        let (px, py) = w.at;
        'texts: for (text, len) in &w.texts {
            // Above-after the point when leaning up, below-after when leaning down; or
            // ending at the point on the other side.
            let lean = if angle_deg >= 0.0 {
                -gap
            } else {
                gap + size_px
            };
            let after = (px + gap, py + lean);
            let before = (px - gap - len * cos, py + lean + len * sin);
            for (x, y) in [after, before] {
                let corners = corners(x, y, *len, size_px, sin, cos);
                if !corners.iter().all(|&(cx, cy)| {
                    cx >= area.x0 && cx <= area.x1 && cy >= area.y0 && cy <= area.y1
                }) {
                    continue;
                }
                let (u, v) = to_frame(x, y);
                // Baseline runs +u; the glyphs rise towards -v; descenders below.
                let rect = (u, v - size_px, u + len, v + size_px * 0.25);
                if crosses(&corners, rect, keep_clear, to_frame) {
                    continue;
                }
                let free = taken.iter().all(|t| {
                    rect.2 + 2.0 <= t.0
                        || t.2 + 2.0 <= rect.0
                        || rect.3 + 1.0 <= t.1
                        || t.3 + 1.0 <= rect.1
                });
                if free {
                    taken.push(rect);
                    placed.push(Placed {
                        x,
                        y,
                        text: text.clone(),
                    });
                    break 'texts;
                }
            }
        }
    }
    placed
}

/// Whether a label (its screen `corners`, its box `rect` in the labels' frame) and an
/// upright box (the legend) overlap: an edge point of either inside the other.
fn crosses(
    corners: &[(f32, f32); 4],
    rect: (f32, f32, f32, f32),
    clear: Area,
    to_frame: impl Fn(f32, f32) -> (f32, f32),
) -> bool {
    let inside_clear =
        |(x, y): (f32, f32)| x >= clear.x0 && x <= clear.x1 && y >= clear.y0 && y <= clear.y1;
    let inside_label = |(x, y): (f32, f32)| {
        let (u, v) = to_frame(x, y);
        u >= rect.0 && u <= rect.2 && v >= rect.1 && v <= rect.3
    };
    let steps = 8;
    let on_edges = |pts: [(f32, f32); 4]| {
        (0..4).flat_map(move |i| {
            let (a, b) = (pts[i], pts[(i + 1) % 4]);
            (0..steps).map(move |k| {
                let t = k as f32 / steps as f32;
                (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t)
            })
        })
    };
    let box_corners = [
        (clear.x0, clear.y0),
        (clear.x1, clear.y0),
        (clear.x1, clear.y1),
        (clear.x0, clear.y1),
    ];
    on_edges(*corners).any(inside_clear) || on_edges(box_corners).any(inside_label)
}

/// The four corners of a label whose baseline starts at (x, y), in screen pixels.
pub fn corners(x: f32, y: f32, len: f32, size: f32, sin: f32, cos: f32) -> [(f32, f32); 4] {
    let along = (len * cos, -len * sin);
    let up = (-size * sin, -size * cos);
    let down = (0.25 * size * sin, 0.25 * size * cos);
    [
        (x + down.0, y + down.1),
        (x + along.0 + down.0, y + along.1 + down.1),
        (x + along.0 + up.0, y + along.1 + up.1),
        (x + up.0, y + up.1),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_ticks_are_unique_integers_from_zero() {
        assert_eq!(x_ticks(4), vec![0, 1, 2, 3, 4]);
        assert_eq!(x_ticks(0), vec![0]);
        assert_eq!(x_ticks(17), vec![0, 2, 4, 6, 8, 10, 12, 14, 16]);
        let t = x_ticks(10_000);
        assert_eq!(t[1], 2000);
        assert!(t.len() <= MAX_TICKS);
    }

    #[test]
    fn y_ticks_have_the_digits_that_tell_them_apart() {
        let (t, d) = y_ticks(0.9712, 0.9981);
        assert_eq!(d, 3);
        let texts: Vec<String> = t.iter().map(|v| tick_text(*v, d)).collect();
        assert_eq!(texts.first().map(String::as_str), Some("0.975"));
        let unique: std::collections::BTreeSet<_> = texts.iter().collect();
        assert_eq!(unique.len(), texts.len(), "{texts:?}");
        assert_eq!(tick_text(-0.0001, 3), "0.000");
        let (t, d) = y_ticks(-0.5, 0.5);
        assert!(t.iter().any(|v| tick_text(*v, d) == "0.0"), "{t:?}");
    }

    #[test]
    fn discards_are_in_range_and_outliers_are_not() {
        let kept = [1.0, 0.99, 0.98];
        let mut values = vec![1.0, 0.99, 0.98, 1.02, 1.05, 1.01];
        let r = y_range(&values, &kept);
        assert!(r.contains(1.05) && r.contains(0.98), "{r:?}");
        values.push(9.0);
        let r = y_range(&values, &kept);
        assert!(r.contains(1.05) && !r.contains(9.0), "{r:?}");
    }

    #[test]
    fn labels_stay_inside_and_apart() {
        let area = Area {
            x0: 0.0,
            y0: 0.0,
            x1: 400.0,
            y1: 300.0,
        };
        let wanted: Vec<Wanted> = (0..20)
            .map(|i| Wanted {
                at: (100.0 + i as f32, 200.0),
                texts: vec![("x".repeat(20), 120.0)],
                priority: f64::from(i),
            })
            .collect();
        let none = Area {
            x0: -10.0,
            y0: -10.0,
            x1: -5.0,
            y1: -5.0,
        };
        let placed = place_labels(&wanted, area, none, 30.0, 12.0, 8.0);
        // Twenty labels a pixel apart: only a few fit (after and before the points).
        assert!(!placed.is_empty() && placed.len() <= 4, "{placed:?}");
        let (sin, cos) = 30f32.to_radians().sin_cos();
        for p in &placed {
            for (x, y) in corners(p.x, p.y, 120.0, 12.0, sin, cos) {
                assert!((0.0..=400.0).contains(&x) && (0.0..=300.0).contains(&y));
            }
        }
        // A point in the corner gets no label that would cross the axes.
        let corner = [Wanted {
            at: (399.0, 2.0),
            texts: vec![("y".repeat(30), 200.0)],
            priority: 1.0,
        }];
        assert!(place_labels(&corner, area, none, 30.0, 12.0, 8.0).is_empty());
        // Nor one over the legend.
        let legend = Area {
            x0: 150.0,
            y0: 100.0,
            x1: 400.0,
            y1: 300.0,
        };
        let near = [Wanted {
            at: (100.0, 250.0),
            texts: vec![("z".repeat(10), 60.0)],
            priority: 1.0,
        }];
        let placed = place_labels(&near, area, legend, 30.0, 12.0, 8.0);
        assert!(placed.iter().all(|p| p.x < 100.0), "{placed:?}");
    }
}
