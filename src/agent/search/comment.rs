//! Keeping a constant's same-line comment true: when a comment states the old value
//! (`# ~524K tokens per step` beside `2**19`, `# default 0.04`), the number is rewritten
//! for the new value in the comment's own style. Text in, text out.

use regex::Regex;
use std::sync::LazyLock;

/// A number in a comment: digits with optional `_`/`,` grouping, a fraction, an exponent,
/// or a power (`2**19`), then an optional K/M/B/G suffix. Not part of a word (`beta1`).
static NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^A-Za-z0-9_.])(\d+\*\*\d+|\d[\d_,]*(?:\.\d+)?(?:[eE][-+]?\d+)?)([KMBG]?)\b")
        .expect("static regex")
});

/// `comment` with every number that states `old` (within 1 %) restated for `new`;
/// `None` when no number in it is the old value.
pub fn restate(comment: &str, old: f64, new: f64, new_text: &str) -> Option<String> {
    if old == 0.0 || !old.is_finite() || !new.is_finite() {
        return None;
    }
    let mut out = String::with_capacity(comment.len() + 4);
    let mut last = 0;
    let mut changed = false;
    for caps in NUMBER.captures_iter(comment) {
        let (num, suffix) = (caps.get(1).expect("group 1"), &caps[2]);
        let scale = match suffix {
            "K" => 1e3,
            "M" => 1e6,
            "B" | "G" => 1e9,
            _ => 1.0,
        };
        let Some(v) = value_of(num.as_str()) else {
            continue;
        };
        let stated = v * scale;
        if (stated - old.abs()).abs() > 0.01 * old.abs() {
            continue;
        }
        let replacement = if suffix.is_empty() {
            if num.as_str().contains("**") || num.as_str() == new_text.trim_start_matches('-') {
                new_text.trim_start_matches('-').to_string()
            } else {
                like(num.as_str(), new.abs())
            }
        } else {
            like(num.as_str(), new.abs() / scale)
        };
        out.push_str(&comment[last..num.start()]);
        out.push_str(&replacement);
        last = num.end();
        changed = true;
    }
    if !changed {
        return None;
    }
    out.push_str(&comment[last..]);
    Some(out)
}

fn value_of(text: &str) -> Option<f64> {
    if let Some((b, e)) = text.split_once("**") {
        let (b, e): (f64, i32) = (b.parse().ok()?, e.parse().ok()?);
        return Some(b.powi(e));
    }
    text.replace(['_', ','], "").parse().ok()
}

/// `value` written with as many decimals as `template` has (and its `,` grouping).
fn like(template: &str, value: f64) -> String {
    let decimals = template.split_once('.').map_or(0, |(_, f)| {
        f.chars().take_while(char::is_ascii_digit).count()
    });
    let s = format!("{value:.decimals$}");
    if !template.contains(',') {
        return s;
    }
    let (int, frac) = s
        .split_once('.')
        .map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{grouped}.{f}"),
        None => grouped,
    }
}

#[cfg(test)]
mod tests {
    use super::restate;

    #[test]
    fn restates_the_old_value_in_the_comments_style() {
        let c = "# ~524K tokens per optimizer step";
        assert_eq!(
            restate(c, 524288.0, 1048576.0, "2**20").as_deref(),
            Some("# ~1049K tokens per optimizer step")
        );
        assert_eq!(
            restate("# was 0.04 before", 0.04, 0.08, "0.08").as_deref(),
            Some("# was 0.08 before")
        );
        assert_eq!(
            restate("# 2**19 = 524,288", 524288.0, 262144.0, "2**18").as_deref(),
            Some("# 2**18 = 262,144")
        );
    }

    #[test]
    fn leaves_other_numbers_alone() {
        assert_eq!(restate("# beta1 and beta2", 0.9, 0.95, "0.95"), None);
        assert_eq!(restate("# model_dim = depth * 64", 8.0, 16.0, "16"), None);
        assert_eq!(restate("# 0 = off", 0.0, 0.1, "0.1"), None);
    }
}
