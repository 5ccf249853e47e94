//! The chart: a well-formed SVG whose title counts as the reports do, integer x ticks
//! without repeats, y ticks that tell values apart, every point inside the plot area,
//! discards in view and outliers marked, labels inside and apart; snapshots at 5, 100 and
//! 10,000 experiments; a PNG of the asked size with the green running-best line.

use autoresearch::experiment::{Category, Direction, ExperimentRecord, Status};
use autoresearch::report::{ChartSeries, render_png, render_svg};
use std::collections::{BTreeMap, BTreeSet};

fn rec(iteration: u64, status: Status, value: Option<f64>, label: &str) -> ExperimentRecord {
    ExperimentRecord {
        id: iteration as i64 + 1,
        iteration,
        attempt: 1,
        parent: String::new(),
        commit: format!("{iteration:07x}"),
        status,
        metric: value,
        metrics: BTreeMap::new(),
        memory_gb: None,
        description: label.to_string(),
        category: if iteration == 0 {
            Category::Baseline
        } else {
            Category::Hyperparameters
        },
        proposer: "search".into(),
        reason: String::new(),
        log_path: None,
        started_at: String::new(),
        finished_at: None,
        duration_s: None,
        state_hash: String::new(),
    }
}

/// A deterministic night of `n` experiments: steady small gains now and then, discards
/// scattered around the best, a crash every 7th, and one wild outlier.
fn night(n: u64, direction: Direction) -> Vec<ExperimentRecord> {
    let sign = if direction == Direction::Minimize {
        -1.0
    } else {
        1.0
    };
    let mut best = 1.0;
    let mut out = vec![rec(0, Status::Keep, Some(best), "baseline")];
    // A small linear congruential generator: the same "noise" on every machine.
    let mut state = 12345u64;
    let mut noise = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f64 / f64::from(u32::MAX >> 1)) - 0.5
    };
    for x in 1..=n {
        let label = format!("KNOB_{x} 0.1 → 0.2 <&> a rather long description that will be cut");
        let r = match x {
            _ if x % 7 == 0 => rec(x, Status::Crash, None, &label),
            _ if x % 5 == 0 => {
                best += sign * 0.01 * (1.0 + noise());
                rec(x, Status::Keep, Some(best), &label)
            }
            13 => rec(x, Status::Discard, Some(1.0 - sign * 50.0), &label),
            _ => rec(
                x,
                Status::Discard,
                Some(best - sign * 0.01 * (0.5 + noise())),
                &label,
            ),
        };
        out.push(r);
    }
    out
}

fn series(n: u64, direction: Direction) -> ChartSeries {
    ChartSeries::from_records("val_bpb", direction, &night(n, direction))
}

/// What a test reads back from the SVG.
struct Svg {
    area: (f64, f64, f64, f64),
    title: String,
    x_ticks: Vec<String>,
    y_ticks: Vec<String>,
    /// (x, y, SVG rotation in degrees, text) of the leaning labels.
    labels: Vec<(f64, f64, f64, String)>,
    circles: Vec<(f64, f64, String)>,
    texts: Vec<String>,
}

fn text_of(n: roxmltree::Node) -> String {
    n.descendants()
        .filter(|d| d.is_text())
        .filter_map(|d| d.text())
        .collect::<String>()
        .trim()
        .to_string()
}

fn num(n: roxmltree::Node, attr: &str) -> f64 {
    n.attribute(attr).unwrap().parse().unwrap()
}

fn read(svg: &str) -> Svg {
    let doc = roxmltree::Document::parse(svg).expect("valid XML");
    let rect = doc
        .descendants()
        .find(|n| n.attribute("class") == Some("plot-area"))
        .expect("the plot area is marked");
    let (x0, y0) = (num(rect, "x"), num(rect, "y"));
    let area = (x0, y0, x0 + num(rect, "width"), y0 + num(rect, "height"));
    let texts: Vec<roxmltree::Node> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .collect();
    let title = text_of(texts[0]);
    let x_ticks = texts
        .iter()
        .filter(|n| {
            n.attribute("text-anchor") == Some("middle") && n.attribute("dy") == Some("0.76em")
        })
        .filter(|n| num(**n, "y") > area.3)
        .map(|n| text_of(*n))
        .collect();
    let y_ticks = texts
        .iter()
        .filter(|n| n.attribute("text-anchor") == Some("end") && num(**n, "x") < area.0)
        .map(|n| text_of(*n))
        .collect();
    let labels = texts
        .iter()
        .filter(|n| {
            n.attribute("transform")
                .is_some_and(|t| t.starts_with("rotate(-30") || t.starts_with("rotate(30"))
        })
        .map(|n| {
            let t = n.attribute("transform").unwrap();
            let angle: f64 = t["rotate(".len()..]
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            (num(*n, "x"), num(*n, "y"), angle, text_of(*n))
        })
        .collect();
    let circles = doc
        .descendants()
        .filter(|n| n.has_tag_name("circle"))
        .map(|n| {
            (
                num(n, "cx"),
                num(n, "cy"),
                n.attribute("fill").unwrap_or("").to_string(),
            )
        })
        .collect();
    Svg {
        area,
        title,
        x_ticks,
        y_ticks,
        labels,
        circles,
        texts: texts.iter().map(|n| text_of(*n)).collect(),
    }
}

/// The properties every chart must have, whatever its size.
fn check(s: &ChartSeries) -> Svg {
    let svg = render_svg(s).unwrap();
    let v = read(&svg);
    assert_eq!(v.title, s.title());
    // x ticks: unique integers, ascending, from 0.
    let xs: Vec<u64> = v
        .x_ticks
        .iter()
        .map(|t| {
            t.parse()
                .unwrap_or_else(|_| panic!("x tick {t:?} is not an integer"))
        })
        .collect();
    assert_eq!(xs.first(), Some(&0), "{xs:?}");
    assert!(
        xs.windows(2).all(|w| w[0] < w[1]),
        "x ticks repeat or go back: {xs:?}"
    );
    // y ticks: distinct numbers, never `-0`.
    let ys: BTreeSet<&String> = v.y_ticks.iter().collect();
    assert_eq!(ys.len(), v.y_ticks.len(), "y ticks repeat: {:?}", v.y_ticks);
    assert!(v.y_ticks.len() >= 3, "{:?}", v.y_ticks);
    for t in &v.y_ticks {
        let value: f64 = t
            .parse()
            .unwrap_or_else(|_| panic!("y tick {t:?} is not a number"));
        assert!(
            !t.starts_with('-') || value < 0.0,
            "negative zero tick {t:?}"
        );
    }
    // Every point (and every legend mark) inside the plot area.
    let (x0, y0, x1, y1) = v.area;
    for (cx, cy, _) in &v.circles {
        assert!(
            *cx >= x0 && *cx <= x1 && *cy >= y0 && *cy <= y1,
            "circle at ({cx}, {cy}) outside {:?}",
            v.area
        );
    }
    // Labels: inside the plot area, and apart. Widths are underestimated (0.45 em a
    // character), so an overlap found here is a real one.
    let size = 12.0;
    let mut boxes = Vec::new();
    for (x, y, angle, text) in &v.labels {
        // SVG turns clockwise: the text runs along (cos a, sin a) on screen.
        let (sin, cos) = angle.to_radians().sin_cos();
        let frame = |x: f64, y: f64| (x * cos + y * sin, -x * sin + y * cos);
        let len = text.chars().count() as f64 * size * 0.45;
        let end = (x + len * cos, y + len * sin);
        for (px, py) in [(*x, *y), end] {
            assert!(
                px >= x0 && px <= x1 && py >= y0 && py <= y1,
                "label {text:?} at ({px}, {py}) crosses the axes {:?}",
                v.area
            );
        }
        let (u, w) = frame(*x, *y);
        boxes.push((u, w - size * 0.7, u + len, w, text.clone()));
        assert!(
            v.labels.iter().all(|l| l.2 == *angle),
            "all labels lean alike"
        );
    }
    for (i, a) in boxes.iter().enumerate() {
        for b in &boxes[i + 1..] {
            let apart = a.2 <= b.0 || b.2 <= a.0 || a.3 <= b.1 || b.3 <= a.1;
            assert!(apart, "labels {:?} and {:?} overlap", a.4, b.4);
        }
    }
    v
}

/// A stable digest of a chart for snapshots: what a reader sees, not every coordinate.
fn digest(s: &ChartSeries) -> String {
    let v = check(s);
    let mut fills: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, f) in &v.circles {
        *fills.entry(f.clone()).or_default() += 1;
    }
    let legend: Vec<&String> = v
        .texts
        .iter()
        .filter(|t| {
            ["Discarded", "Kept", "Running best", "Crashed"].contains(&t.as_str())
                || t.starts_with("Off the scale")
        })
        .collect();
    let mut labels: Vec<&String> = v.labels.iter().map(|l| &l.3).collect();
    labels.sort();
    format!(
        "title: {}\nx ticks: {}\ny ticks: {}\nlegend: {legend:?}\ncircles by fill: {fills:?}\nlabels ({}): {labels:#?}\n",
        v.title,
        v.x_ticks.join(" "),
        v.y_ticks.join(" "),
        labels.len()
    )
}

#[test]
fn svg_is_well_formed_and_titled_with_the_reports_counts() {
    let s = series(40, Direction::Minimize);
    let v = check(&s);
    // 40 experiments after the baseline; 8 kept (every 5th that is not a 7th... 5,10,15,20,25,30,40 and 35 crashes).
    assert_eq!(
        v.title,
        "Autoresearch Progress: 40 Experiments, 7 Kept Improvements"
    );
    assert!(
        v.labels
            .iter()
            .any(|l| l.3.starts_with("KNOB_5 0.1 → 0.2 <&>") && l.3.ends_with('…')),
        "{:?}",
        v.labels
    );
    for legend in [
        "Discarded",
        "Kept",
        "Running best",
        "Crashed",
        "Off the scale (1)",
    ] {
        assert!(
            v.texts.iter().any(|t| t == legend),
            "legend {legend} missing: {:?}",
            v.texts
        );
    }
}

#[test]
fn discards_are_in_view_and_only_the_outlier_is_clipped() {
    let s = series(40, Direction::Minimize);
    let discards = s
        .points
        .iter()
        .filter(|p| p.status == Status::Discard)
        .count();
    let v = check(&s);
    let grey = v.circles.iter().filter(|c| c.2 == "#BBBBBB").count();
    // Every discard but the one 50 units away is drawn (plus the legend's mark).
    assert_eq!(grey, discards - 1 + 1, "{:?}", v.circles.len());
}

#[test]
fn a_short_session_has_one_tick_per_experiment_and_no_minus_zero() {
    // Equal values everywhere: nothing may print as -0.
    let records: Vec<ExperimentRecord> = (0..=4)
        .map(|x| {
            let status = if x == 0 {
                Status::Keep
            } else {
                Status::Discard
            };
            rec(x, status, Some(0.0), "same")
        })
        .collect();
    let s = ChartSeries::from_records("loss", Direction::Minimize, &records);
    let v = check(&s);
    assert_eq!(v.x_ticks, ["0", "1", "2", "3", "4"]);
    // The value itself is a tick, printed as zero (check() refuses `-0`).
    assert!(v.y_ticks.iter().any(|t| t == "0.0"), "{:?}", v.y_ticks);
}

#[test]
fn snapshot_5_experiments() {
    let s = series(5, Direction::Minimize);
    check(&s);
    insta::assert_snapshot!(render_svg(&s).unwrap());
}

#[test]
fn snapshot_100_experiments() {
    insta::assert_snapshot!(digest(&series(100, Direction::Minimize)));
}

#[test]
fn snapshot_10000_experiments_maximize() {
    insta::assert_snapshot!(digest(&series(10_000, Direction::Maximize)));
}

/// Decodes RGB(A) PNG bytes into (width, height, rgb pixels).
fn decode(bytes: &[u8]) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    let px = buf[..info.buffer_size()]
        .chunks(step)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    (info.width, info.height, px)
}

/// The running-best line colour (#27ae60), give or take anti-aliasing.
fn is_line_green(p: [u8; 3]) -> bool {
    p[1] > 150 && p[0] < 110 && p[2] < 140 && p[1] as i32 - p[0] as i32 > 60
}

fn green_rows(direction: Direction) -> (usize, usize, usize) {
    let bytes = render_png(&series(40, direction), 800, 500).unwrap();
    let (w, h, px) = decode(&bytes);
    assert_eq!((w, h), (800, 500));
    // The plot area, away from the title, axes and legend.
    let (x0, x1) = (150usize, 600usize);
    let mut rows = Vec::new();
    for y in 60..(h as usize - 60) {
        let n = (x0..x1)
            .filter(|&x| is_line_green(px[y * w as usize + x]))
            .count();
        if n > 0 {
            rows.push((y, n));
        }
    }
    assert!(!rows.is_empty(), "no green pixels in the plot area");
    let total: usize = rows.iter().map(|r| r.1).sum();
    // Where the line is at the left and at the right of the plot area.
    let row_at = |x: usize| (60..h as usize - 60).find(|&y| is_line_green(px[y * w as usize + x]));
    let left = row_at(x0 + 5).expect("line at the left");
    let right = row_at(x1).expect("line at the right");
    (total, left, right)
}

#[test]
fn png_has_size_and_a_descending_green_step_line_when_minimising() {
    let (total, left, right) = green_rows(Direction::Minimize);
    assert!(total > 300, "too few green pixels: {total}");
    // Lower is better and plotted lower: the line ends further down the image.
    assert!(right > left + 50, "left row {left}, right row {right}");
}

#[test]
fn png_line_climbs_when_maximising() {
    let (total, left, right) = green_rows(Direction::Maximize);
    assert!(total > 300, "too few green pixels: {total}");
    assert!(right + 50 < left, "left row {left}, right row {right}");
}

#[test]
fn tiny_sizes_are_refused_and_empty_series_render() {
    let empty = ChartSeries::from_records("val_bpb", Direction::Minimize, &[]);
    assert!(render_png(&empty, 10, 10).is_err());
    let svg = render_svg(&empty).unwrap();
    assert!(svg.contains("0 Experiments, 0 Kept Improvements"));
    let png = render_png(&empty, 400, 300).unwrap();
    assert_eq!(&png[1..4], b"PNG");
}
