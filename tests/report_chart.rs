//! The chart: a well-formed SVG with the title, and a PNG of the asked size whose pixels
//! show the green running-best line, for both metric directions.

use autoresearch::experiment::{Direction, Status};
use autoresearch::report::{ChartPoint, ChartSeries, render_png, render_svg};

fn series(direction: Direction) -> ChartSeries {
    let sign = if direction == Direction::Minimize {
        -1.0
    } else {
        1.0
    };
    let mut points = Vec::new();
    let mut best = 1.0;
    for x in 0..40u64 {
        let (status, value) = match x {
            0 => (Status::Keep, Some(best)),
            _ if x % 7 == 0 => (Status::Crash, None),
            _ if x % 5 == 0 => {
                best += sign * 0.01;
                (Status::Keep, Some(best))
            }
            // An outlier far beyond the baseline must not squash the picture.
            13 => (Status::Discard, Some(1.0 - sign * 5.0)),
            _ => (Status::Discard, Some(best - sign * 0.004)),
        };
        points.push(ChartPoint {
            x,
            value,
            status,
            label: format!("KNOB_{x} 0.1 → 0.2 <&> a rather long description that will be cut"),
        });
    }
    ChartSeries {
        metric_name: "val_bpb".into(),
        direction,
        points,
    }
}

#[test]
fn svg_is_well_formed_and_titled() {
    let s = series(Direction::Minimize);
    let svg = render_svg(&s).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("valid XML");
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| {
            let t: String = n
                .descendants()
                .filter(|d| d.is_text())
                .filter_map(|d| d.text())
                .collect();
            t.trim().to_string()
        })
        .collect();
    let kept = s.points.iter().filter(|p| p.status == Status::Keep).count();
    let title = format!(
        "Autoresearch Progress: 40 Experiments, {} Kept Improvements",
        kept - 1
    );
    assert!(
        texts.iter().any(|t| t == &title),
        "{title} not in {texts:?}"
    );
    // Labels are shortened with an ellipsis and escaped, and lean at an angle.
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("KNOB_5 0.1 → 0.2 <&>") && t.ends_with('…'))
    );
    assert!(svg.contains("rotate(-30.0"));
    for legend in ["Discarded", "Kept", "Running best", "Crashed"] {
        assert!(texts.iter().any(|t| t == legend), "legend {legend} missing");
    }
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
    let bytes = render_png(&series(direction), 800, 500).unwrap();
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
    let empty = ChartSeries {
        metric_name: "val_bpb".into(),
        direction: Direction::Minimize,
        points: vec![],
    };
    assert!(render_png(&empty, 10, 10).is_err());
    let svg = render_svg(&empty).unwrap();
    assert!(svg.contains("0 Experiments, 0 Kept Improvements"));
    let png = render_png(&empty, 400, 300).unwrap();
    assert_eq!(&png[1..4], b"PNG");
}
