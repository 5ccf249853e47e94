//! The progress chart (progress.svg / progress.png) in the style of karpathy's autoresearch
//! analysis. Pure: series in, SVG text or PNG bytes out. Text uses the bundled DejaVu Sans,
//! so the PNG is the same on a machine with no fonts installed.

use super::chart_layout::{
    Area, Wanted, YRange, place_labels, tick_text, x_ticks, y_range, y_ticks,
};
use super::glyphs::{Label, draw_label, svg_label, text_width};
use super::shorten;
use super::tally::Tally;
use crate::experiment::{Direction, ExperimentRecord, Status};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;
use std::sync::OnceLock;

/// DejaVu Sans (see assets/fonts/DejaVuSans-LICENSE.txt).
pub(crate) const FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
/// Registered under the generic name so the SVG asks the viewer for any sans-serif font.
const FONT: &str = "sans-serif";

pub const DEFAULT_WIDTH: u32 = 1600;
pub const DEFAULT_HEIGHT: u32 = 800;
/// Labels tried, the largest gains first; those that would overlap are left out anyway.
const MAX_LABELS: usize = 40;
const LABEL_CHARS: usize = 40;

const DISCARD_GREY: RGBColor = RGBColor(0xbb, 0xbb, 0xbb);
const KEEP_GREEN: RGBColor = RGBColor(0x2e, 0xcc, 0x71);
const BEST_GREEN: RGBColor = RGBColor(0x27, 0xae, 0x60);
const EDGE: RGBColor = RGBColor(0x1b, 0x3a, 0x2a);
const CRASH_RED: RGBColor = RGBColor(0xe7, 0x4c, 0x3c);
const OUTLIER_GREY: RGBColor = RGBColor(0x88, 0x88, 0x88);
const LABEL_COLOR: [u8; 3] = [0x1e, 0x6b, 0x3a];

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("the bundled chart font could not be loaded; the build is broken, reinstall")]
    Font,
    #[error("drawing the chart failed: {0}")]
    Draw(String),
    #[error("encoding the chart as PNG failed: {0}")]
    Png(#[from] png::EncodingError),
    #[error("chart size {0}x{1} is too small; use at least 200x150")]
    TooSmall(u32, u32),
}

fn draw_err<E: std::fmt::Debug>(e: E) -> ChartError {
    ChartError::Draw(format!("{e:?}"))
}

/// One experiment on the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartPoint {
    /// The experiment number (the iteration; 0 is the baseline).
    pub x: u64,
    pub value: Option<f64>,
    pub status: Status,
    pub label: String,
}

/// What the chart shows: experiments that ran, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSeries {
    pub metric_name: String,
    pub direction: Direction,
    pub points: Vec<ChartPoint>,
    /// The counts in the title: the reports' own.
    pub tally: Tally,
}

impl ChartSeries {
    /// Keeps the experiments that ran (kept, discarded, crashed); rejected proposals and
    /// interrupted runs measured nothing.
    pub fn from_records(
        metric_name: &str,
        direction: Direction,
        records: &[ExperimentRecord],
    ) -> Self {
        let points = records
            .iter()
            .filter(|r| r.status.in_results_tsv())
            .map(|r| ChartPoint {
                x: r.iteration,
                value: r.metric.filter(|v| v.is_finite()),
                status: r.status,
                label: r.description.clone(),
            })
            .collect();
        ChartSeries {
            metric_name: metric_name.to_string(),
            direction,
            points,
            tally: Tally::of(records),
        }
    }

    /// The chart's title, karpathy's wording, with the counts every report prints.
    pub fn title(&self) -> String {
        format!(
            "Autoresearch Progress: {} Experiments, {} Kept Improvements",
            self.tally.experiments, self.tally.kept
        )
    }
}

fn font() -> Result<ab_glyph::FontRef<'static>, ChartError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    if !ok {
        return Err(ChartError::Font);
    }
    ab_glyph::FontRef::try_from_slice(FONT_BYTES).map_err(|_| ChartError::Font)
}

/// A linear axis whose ticks are ours (plotters' own repeat labels on short integer ranges:
/// `0 0 1 2 2`), with no light grid lines between them.
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = self.hi - self.lo;
        if span <= 0.0 {
            return (limit.0 + limit.1) / 2;
        }
        let t = (v - self.lo) / span;
        limit.0 + (t * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// The series reduced to what is drawn, with the y-range chosen.
struct Layout {
    kept: Vec<(f64, f64, String, f64)>, // x, y, label, own gain
    discarded: Vec<(f64, f64)>,
    crashed: Vec<f64>,
    /// Values beyond the y-range: x, and whether above it.
    outliers: Vec<(f64, bool)>,
    steps: Vec<(f64, f64)>,
    max_x: u64,
    x_range: (f64, f64),
    y: YRange,
}

fn layout(s: &ChartSeries) -> Layout {
    let d = s.direction;
    let mut kept = Vec::new();
    let mut discarded = Vec::new();
    let mut crashed = Vec::new();
    let mut steps: Vec<(f64, f64)> = Vec::new();
    let mut best: Option<f64> = None;
    let mut max_x = 0u64;
    for p in &s.points {
        let x = p.x as f64;
        max_x = max_x.max(p.x);
        match (p.status, p.value) {
            (Status::Keep, Some(v)) => {
                let gain = best.map_or(f64::INFINITY, |b| d.gain(v, b));
                kept.push((x, v, p.label.clone(), gain));
                if best.is_none_or(|b| d.better(v, b)) {
                    // Step-post: hold the old best until this experiment, then drop to it.
                    if let Some(b) = best {
                        steps.push((x, b));
                    }
                    steps.push((x, v));
                    best = Some(v);
                }
            }
            (Status::Crash, _) => crashed.push(x),
            (_, Some(v)) => discarded.push((x, v)),
            _ => {}
        }
    }
    if let Some(b) = best {
        steps.push((max_x as f64, b));
    }
    let kept_values: Vec<f64> = kept.iter().map(|k| k.1).collect();
    let all: Vec<f64> = kept_values
        .iter()
        .copied()
        .chain(discarded.iter().map(|p| p.1))
        .collect();
    let y = y_range(&all, &kept_values);
    let mut outliers = Vec::new();
    discarded.retain(|&(x, v)| {
        let inside = y.contains(v);
        if !inside {
            outliers.push((x, v > y.hi));
        }
        inside
    });
    let pad = (max_x as f64 * 0.02).max(0.5);
    Layout {
        kept,
        discarded,
        crashed,
        outliers,
        steps,
        max_x,
        x_range: (-pad, max_x as f64 + pad),
        y,
    }
}

/// Draws everything plotters can draw; returns the angled labels for the caller's backend
/// and the plot area in pixels.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: &ChartSeries,
    w: u32,
) -> Result<(Vec<Label>, Area), ChartError> {
    let l = layout(s);
    let k = (f64::from(w) / f64::from(DEFAULT_WIDTH)).clamp(0.4, 3.0);
    let px = |v: f64| (v * k).round().max(1.0) as u32;
    root.fill(&WHITE).map_err(draw_err)?;
    let (ylo, yhi) = (l.y.lo, l.y.hi);
    let (xlo, xhi) = l.x_range;
    let xs: Vec<f64> = x_ticks(l.max_x).into_iter().map(|x| x as f64).collect();
    let (ys, decimals) = y_ticks(ylo, yhi);
    let mut chart = ChartBuilder::on(root)
        .caption(s.title(), (FONT, px(22.0)))
        .margin(px(20.0))
        .x_label_area_size(px(50.0))
        .y_label_area_size(px(90.0))
        .build_cartesian_2d(
            Axis {
                lo: xlo,
                hi: xhi,
                ticks: xs,
            },
            Axis {
                lo: ylo,
                hi: yhi,
                ticks: ys,
            },
        )
        .map_err(draw_err)?;
    let words = match s.direction {
        Direction::Minimize => "lower is better",
        Direction::Maximize => "higher is better",
    };
    chart
        .configure_mesh()
        .light_line_style(RGBColor(0xf2, 0xf2, 0xf2))
        .bold_line_style(RGBColor(0xe0, 0xe0, 0xe0))
        .x_desc("Experiment #")
        .y_desc(format!("{} ({words})", s.metric_name))
        .label_style((FONT, px(14.0)))
        .axis_desc_style((FONT, px(16.0)))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| tick_text(*y, decimals))
        .draw()
        .map_err(draw_err)?;

    let r_small = px(3.0);
    let r_kept = px(6.0);
    chart
        .draw_series(
            l.discarded
                .iter()
                .map(|&p| Circle::new(p, r_small, DISCARD_GREY.filled())),
        )
        .map_err(draw_err)?
        .label("Discarded")
        .legend(move |(x, y)| Circle::new((x, y), r_small, DISCARD_GREY.filled()));
    let line_w = px(2.0);
    chart
        .draw_series(LineSeries::new(
            l.steps.iter().copied(),
            BEST_GREEN.mix(0.8).stroke_width(line_w),
        ))
        .map_err(draw_err)?
        .label("Running best")
        .legend(move |(x, y)| {
            PathElement::new(
                vec![(x - 10, y), (x + 10, y)],
                BEST_GREEN.stroke_width(line_w),
            )
        });
    chart
        .draw_series(l.kept.iter().map(|p| {
            EmptyElement::at((p.0, p.1))
                + Circle::new((0, 0), r_kept, KEEP_GREEN.filled())
                + Circle::new((0, 0), r_kept, EDGE.stroke_width(1))
        }))
        .map_err(draw_err)?
        .label("Kept")
        .legend(move |(x, y)| {
            EmptyElement::at((x, y))
                + Circle::new((0, 0), r_kept, KEEP_GREEN.filled())
                + Circle::new((0, 0), r_kept, EDGE.stroke_width(1))
        });
    // Crashes measured nothing: small red marks along the bottom edge.
    let edge = (yhi - ylo) * 0.02;
    let crash_size = px(4.0) as i32;
    chart
        .draw_series(
            l.crashed
                .iter()
                .map(|&x| Cross::new((x, ylo + edge), crash_size, CRASH_RED.stroke_width(2))),
        )
        .map_err(draw_err)?
        .label("Crashed")
        .legend(move |(x, y)| Cross::new((x, y), crash_size, CRASH_RED.stroke_width(2)));
    // Values off the scale: a grey arrowhead on the edge they are beyond, pointing there.
    if !l.outliers.is_empty() {
        let t = px(5.0) as i32;
        let arrow = move |up: bool| {
            let s = if up { -1 } else { 1 };
            vec![(0, s * t), (-t, -s * t), (t, -s * t), (0, s * t)]
        };
        chart
            .draw_series(l.outliers.iter().map(|&(x, above)| {
                let y = if above { yhi - edge } else { ylo + edge };
                EmptyElement::at((x, y))
                    + PathElement::new(arrow(above), OUTLIER_GREY.stroke_width(2))
            }))
            .map_err(draw_err)?
            .label(format!("Off the scale ({})", l.outliers.len()))
            .legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(arrow(true), OUTLIER_GREY.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(match s.direction {
            Direction::Minimize => SeriesLabelPosition::UpperRight,
            Direction::Maximize => SeriesLabelPosition::LowerRight,
        })
        .label_font((FONT, px(14.0)))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(0xcc, 0xcc, 0xcc))
        .draw()
        .map_err(draw_err)?;

    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let area = Area {
        x0: xr.start as f32,
        y0: yr.start as f32,
        x1: xr.end as f32,
        y1: yr.end as f32,
    };
    // Labels lean away from the best: up when the best is at the bottom, down otherwise.
    let angle: f32 = match s.direction {
        Direction::Minimize => 30.0,
        Direction::Maximize => -30.0,
    };
    let size = 12.0 * k as f32;
    let font = font()?;
    // The largest gains first (the baseline before all); the rest only where room is left.
    let mut by_gain: Vec<&(f64, f64, String, f64)> = l.kept.iter().collect();
    by_gain.sort_by(|a, b| b.3.total_cmp(&a.3));
    by_gain.truncate(MAX_LABELS);
    let wanted: Vec<Wanted> = by_gain
        .iter()
        .map(|p| {
            let (x, y) = chart.backend_coord(&(p.0, p.1));
            let texts = [LABEL_CHARS, LABEL_CHARS / 2]
                .iter()
                .map(|&n| {
                    let t = shorten(&p.2, n);
                    let len = text_width(&font, &t, size);
                    (t, len)
                })
                .collect();
            Wanted {
                at: (x as f32, y as f32),
                texts,
                priority: p.3,
            }
        })
        .collect();
    // The legend sits in a corner of the plot area (plotters puts it there); keep it clear.
    let entries = if l.outliers.is_empty() { 4.0 } else { 5.0 };
    let (lw, lh) = (190.0 * k as f32, (entries * 18.0 + 20.0) * k as f32);
    let legend = match s.direction {
        Direction::Minimize => Area {
            x0: area.x1 - lw,
            y0: area.y0,
            x1: area.x1,
            y1: area.y0 + lh,
        },
        Direction::Maximize => Area {
            x0: area.x1 - lw,
            y0: area.y1 - lh,
            x1: area.x1,
            y1: area.y1,
        },
    };
    let labels = place_labels(&wanted, area, legend, angle, size, 8.0 * k as f32)
        .into_iter()
        .map(|p| Label {
            x: p.x,
            y: p.y,
            angle_deg: angle,
            size_px: size,
            text: p.text,
            color: LABEL_COLOR,
        })
        .collect();
    Ok((labels, area))
}

fn check_size(w: u32, h: u32) -> Result<(), ChartError> {
    if w < 200 || h < 150 {
        return Err(ChartError::TooSmall(w, h));
    }
    Ok(())
}

/// The chart as an SVG document (1600 x 800).
pub fn render_svg(series: &ChartSeries) -> Result<String, ChartError> {
    font()?;
    let (w, h) = (DEFAULT_WIDTH, DEFAULT_HEIGHT);
    let mut svg = String::new();
    let labels = {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        let drawn = draw(&root, series, w)?;
        root.present().map_err(draw_err)?;
        drawn
    };
    let (labels, area) = labels;
    // plotters cannot turn text by 30°, so the labels are added as plain SVG text; the
    // plot area is marked (invisibly) for tools and tests that check what lies inside it.
    let mut extra = format!(
        "<rect class=\"plot-area\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"none\"/>\n",
        area.x0,
        area.y0,
        area.x1 - area.x0,
        area.y1 - area.y0
    );
    extra.extend(labels.iter().map(|l| svg_label(l) + "\n"));
    match svg.rfind("</svg>") {
        Some(i) => svg.insert_str(i, &extra),
        None => return Err(ChartError::Draw("plotters wrote no </svg>".into())),
    }
    Ok(svg)
}

/// The chart as PNG bytes of `width` x `height` pixels.
pub fn render_png(series: &ChartSeries, width: u32, height: u32) -> Result<Vec<u8>, ChartError> {
    check_size(width, height)?;
    let font = font()?;
    let mut rgb = vec![255u8; width as usize * height as usize * 3];
    let labels = {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        let (labels, _) = draw(&root, series, width)?;
        root.present().map_err(draw_err)?;
        labels
    };
    for l in &labels {
        draw_label(&mut rgb, width, height, &font, l);
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        // Fast compression: the chart is redrawn after every experiment.
        enc.set_compression(png::Compression::Fast);
        let mut writer = enc.write_header()?;
        writer.write_image_data(&rgb)?;
        writer.finish()?;
    }
    Ok(out)
}
