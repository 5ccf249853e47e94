//! Human durations for the config and the CLI: `300`, `"20s"`, `"5m"`, `"1h30m"`, `"1.5h"`,
//! and their compact form back. Pure text in, `Duration` out; it never reads a clock.

use std::time::Duration;

/// Why a duration was refused. Display is a short phrase; callers add where and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("is empty")]
    Empty,
    #[error("is negative ({0})")]
    Negative(String),
    #[error("is zero")]
    Zero,
    #[error("`{0}` is not a duration")]
    Garbage(String),
    #[error("`{0}` is too large")]
    TooLarge(String),
}

/// Seconds per unit, for every spelling we accept.
fn unit_seconds(unit: &str) -> Option<f64> {
    Some(match unit {
        "ms" | "msec" | "millis" => 0.001,
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        _ => return None,
    })
}

/// Parses `"300"` (seconds), `"20s"`, `"5m"`, `"1h30m"`, `"1h 30m"`, `"1.5h"`, `"90m"`,
/// `"500ms"`. Zero, negative and unreadable values are errors: a budget of nothing is
/// always a mistake.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.starts_with('-') {
        return Err(DurationError::Negative(s.to_string()));
    }
    let garbage = || DurationError::Garbage(s.to_string());
    let s = s.strip_prefix('+').unwrap_or(s);
    // A bare number is seconds, as in karpathy's `TIME_BUDGET = 300`.
    if let Ok(secs) = s.parse::<f64>() {
        return from_secs(secs, s);
    }
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(garbage());
        }
        let number: f64 = rest[..num_len]
            .replace('_', "")
            .parse()
            .map_err(|_| garbage())?;
        rest = rest[num_len..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].to_ascii_lowercase();
        let per = unit_seconds(&unit).ok_or_else(garbage)?;
        total += number * per;
        rest = &rest[unit_len..];
    }
    from_secs(total, s)
}

fn from_secs(secs: f64, text: &str) -> Result<Duration, DurationError> {
    if !secs.is_finite() {
        return Err(DurationError::Garbage(text.to_string()));
    }
    if secs < 0.0 {
        return Err(DurationError::Negative(text.to_string()));
    }
    // Millisecond resolution: enough for budgets and keeps `1.5h` exactly 5400 s.
    let millis = (secs * 1000.0).round();
    if millis >= u64::MAX as f64 {
        return Err(DurationError::TooLarge(text.to_string()));
    }
    if millis == 0.0 {
        return Err(DurationError::Zero);
    }
    Ok(Duration::from_millis(millis as u64))
}

/// Integer seconds from a TOML integer; the same rules as [`parse`].
pub fn from_int(secs: i64) -> Result<Duration, DurationError> {
    match secs {
        0 => Err(DurationError::Zero),
        n if n < 0 => Err(DurationError::Negative(n.to_string())),
        n => Ok(Duration::from_secs(n as u64)),
    }
}

/// Compact form that [`parse`] reads back: `5m`, `1h30m`, `20s`, `1h0m5s` is written `1h5s`.
pub fn format(d: Duration) -> String {
    let total_ms = d.as_millis();
    if total_ms == 0 {
        return "0s".to_string();
    }
    let (h, rem) = (total_ms / 3_600_000, total_ms % 3_600_000);
    let (m, rem) = (rem / 60_000, rem % 60_000);
    let (s, ms) = (rem / 1000, rem % 1000);
    let mut out = String::new();
    for (value, unit) in [(h, "h"), (m, "m"), (s, "s"), (ms, "ms")] {
        if value > 0 {
            out.push_str(&format!("{value}{unit}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn parses_every_documented_form() {
        assert_eq!(parse("300"), Ok(secs(300)));
        assert_eq!(parse("20s"), Ok(secs(20)));
        assert_eq!(parse("5m"), Ok(secs(300)));
        assert_eq!(parse("1h30m"), Ok(secs(5400)));
        assert_eq!(parse("1h 30m"), Ok(secs(5400)));
        assert_eq!(parse("1.5h"), Ok(secs(5400)));
        assert_eq!(parse("90m"), Ok(secs(5400)));
        assert_eq!(parse(" 2 min "), Ok(secs(120)));
        assert_eq!(parse("1H"), Ok(secs(3600)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse("1_000s"), Ok(secs(1000)));
    }

    #[test]
    fn refuses_zero_negative_and_garbage() {
        assert_eq!(parse("0"), Err(DurationError::Zero));
        assert_eq!(parse("0s"), Err(DurationError::Zero));
        assert_eq!(parse("0h0m"), Err(DurationError::Zero));
        assert_eq!(parse("-5m"), Err(DurationError::Negative("-5m".into())));
        assert_eq!(parse(""), Err(DurationError::Empty));
        for bad in [
            "5 parsecs",
            "m",
            "five minutes",
            "5m3",
            "1..5h",
            "nan",
            "inf",
            "5m-",
        ] {
            assert!(
                matches!(parse(bad), Err(DurationError::Garbage(_))),
                "{bad}: {:?}",
                parse(bad)
            );
        }
        assert_eq!(from_int(0), Err(DurationError::Zero));
        assert!(matches!(from_int(-3), Err(DurationError::Negative(_))));
        assert_eq!(from_int(300), Ok(secs(300)));
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format(secs(300)), "5m");
        assert_eq!(format(secs(5400)), "1h30m");
        assert_eq!(format(secs(20)), "20s");
        assert_eq!(format(secs(3605)), "1h5s");
        assert_eq!(format(secs(660)), "11m");
        assert_eq!(format(Duration::from_millis(1500)), "1s500ms");
    }

    proptest::proptest! {
        #[test]
        fn any_millis_format_and_read_back(ms in 1u64..10_000_000_000) {
            let d = Duration::from_millis(ms);
            proptest::prop_assert_eq!(parse(&format(d)), Ok(d));
        }

        #[test]
        fn any_text_parses_or_errs_without_panicking(text in "\\PC{0,20}") {
            if let Ok(d) = parse(&text) {
                proptest::prop_assert!(d > Duration::ZERO);
            }
        }
    }

    #[test]
    fn format_reads_back() {
        for ms in [
            1, 999, 1000, 59_999, 60_000, 3_600_000, 5_400_000, 86_400_123,
        ] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse(&format(d)), Ok(d), "{ms} ms");
        }
    }
}
