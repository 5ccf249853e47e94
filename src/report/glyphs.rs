//! Text at any angle on an RGB buffer, from the bundled font's outlines. plotters only
//! turns text by right angles, and the chart's labels lean at 30°. Pixels only; no I/O.

use ab_glyph::{Font, FontRef, OutlineCurve, Point, PxScale, ScaleFont};
use ab_glyph_rasterizer::Rasterizer;

/// Where a label goes: its baseline starts at (x, y) pixels and rises `angle_deg`
/// counter-clockwise (negative: falls).
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub x: f32,
    pub y: f32,
    pub angle_deg: f32,
    pub size_px: f32,
    pub text: String,
    pub color: [u8; 3],
}

/// The advance width of `text` in pixels at `size_px`.
pub fn text_width(font: &FontRef, text: &str, size_px: f32) -> f32 {
    let scaled = font.as_scaled(PxScale::from(size_px));
    let mut prev = None;
    let mut w = 0.0;
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = prev {
            w += scaled.kern(p, id);
        }
        w += scaled.h_advance(id);
        prev = Some(id);
    }
    w
}

/// Draws `label` onto `buf` (RGB, row-major, `width` x `height`), blending by coverage.
pub fn draw_label(buf: &mut [u8], width: u32, height: u32, font: &FontRef, label: &Label) {
    let scaled = font.as_scaled(PxScale::from(label.size_px));
    let (sx, sy) = (scaled.h_scale_factor(), scaled.v_scale_factor());
    let (sin, cos) = label.angle_deg.to_radians().sin_cos();
    // Along the text and "down" in glyph space, both in screen coordinates (y grows down).
    let place = |lx: f32, ly: f32| Point {
        x: label.x + lx * cos + ly * sin,
        y: label.y - lx * sin + ly * cos,
    };

    let mut curves: Vec<OutlineCurve> = Vec::new();
    let mut pen = 0f32;
    let mut prev = None;
    for c in label.text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = prev {
            pen += scaled.kern(p, id);
        }
        prev = Some(id);
        if let Some(outline) = font.outline(id) {
            // Font units have y up; flip into glyph space with y down.
            let tf = |p: Point| place(pen + p.x * sx, -p.y * sy);
            curves.extend(outline.curves.iter().map(|curve| match *curve {
                OutlineCurve::Line(a, b) => OutlineCurve::Line(tf(a), tf(b)),
                OutlineCurve::Quad(a, b, c) => OutlineCurve::Quad(tf(a), tf(b), tf(c)),
                OutlineCurve::Cubic(a, b, c, d) => OutlineCurve::Cubic(tf(a), tf(b), tf(c), tf(d)),
            }));
        }
        pen += scaled.h_advance(id);
    }
    if curves.is_empty() {
        return;
    }

    // Rasterise only the label's bounding box (control points bound the curves).
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for curve in &curves {
        let pts: &[Point] = match curve {
            OutlineCurve::Line(a, b) => &[*a, *b],
            OutlineCurve::Quad(a, b, c) => &[*a, *b, *c],
            OutlineCurve::Cubic(a, b, c, d) => &[*a, *b, *c, *d],
        };
        for p in pts {
            x0 = x0.min(p.x);
            y0 = y0.min(p.y);
            x1 = x1.max(p.x);
            y1 = y1.max(p.y);
        }
    }
    let (ox, oy) = (x0.floor(), y0.floor());
    let (w, h) = ((x1 - ox).ceil() as usize + 1, (y1 - oy).ceil() as usize + 1);
    let shift = |p: Point| Point {
        x: p.x - ox,
        y: p.y - oy,
    };
    let mut r = Rasterizer::new(w, h);
    for curve in &curves {
        match *curve {
            OutlineCurve::Line(a, b) => r.draw_line(shift(a), shift(b)),
            OutlineCurve::Quad(a, b, c) => r.draw_quad(shift(a), shift(b), shift(c)),
            OutlineCurve::Cubic(a, b, c, d) => r.draw_cubic(shift(a), shift(b), shift(c), shift(d)),
        }
    }
    r.for_each_pixel_2d(|px, py, alpha| {
        let (x, y) = (px as i64 + ox as i64, py as i64 + oy as i64);
        if alpha <= 0.0 || x < 0 || y < 0 || x >= i64::from(width) || y >= i64::from(height) {
            return;
        }
        let a = alpha.min(1.0);
        let i = (y as usize * width as usize + x as usize) * 3;
        for (k, &c) in label.color.iter().enumerate() {
            let old = f32::from(buf[i + k]);
            buf[i + k] = (old + (f32::from(c) - old) * a).round() as u8;
        }
    });
}

/// The label as an SVG `<text>` element, turned the same way.
pub fn svg_label(label: &Label) -> String {
    let [r, g, b] = label.color;
    format!(
        r##"<text x="{x:.1}" y="{y:.1}" font-family="sans-serif" font-size="{s:.1}" fill="#{r:02x}{g:02x}{b:02x}" transform="rotate({a:.1} {x:.1} {y:.1})">{t}</text>"##,
        x = label.x,
        y = label.y,
        s = label.size_px,
        a = -label.angle_deg,
        t = xml_escape(&label.text)
    )
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            xml_escape("a<b & \"c\"\u{1}"),
            "a&lt;b &amp; &quot;c&quot; "
        );
    }

    #[test]
    fn draws_ink_inside_the_buffer_only() {
        let font = FontRef::try_from_slice(super::super::chart::FONT_BYTES).unwrap();
        let (w, h) = (60u32, 40u32);
        let mut buf = vec![255u8; (w * h * 3) as usize];
        let label = Label {
            x: 5.0,
            y: 35.0,
            angle_deg: 30.0,
            size_px: 14.0,
            // Runs off the right edge on purpose: must clip, not panic.
            text: "MATRIX_LR 0.04 → 0.08 and more".into(),
            color: [0, 0, 0],
        };
        draw_label(&mut buf, w, h, &font, &label);
        assert!(buf.iter().any(|&v| v < 128), "no ink drawn");
    }
}
