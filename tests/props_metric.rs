//! Properties of the log reader: it never panics on any bytes, and it finds a planted
//! `val_bpb: X` line, exactly, among random junk (binary, long lines, CRLF, no final
//! newline).

use autoresearch::config::MetricSpec;
use autoresearch::experiment::Direction;
use autoresearch::metric::parse_reader;
use proptest::prelude::*;

fn spec(regex: Option<&str>) -> MetricSpec {
    MetricSpec {
        name: "val_bpb".into(),
        direction: Direction::Minimize,
        regex: regex.map(|r| regex::Regex::new(r).unwrap()),
        memory_key: "peak_vram_mb".into(),
    }
}

/// A junk line: random bytes (never a newline), progress-like text, or a long run.
fn junk_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(
            any::<u8>().prop_filter("no newline", |b| *b != b'\n'),
            0..200
        ),
        "[ -~]{0,80}".prop_map(String::into_bytes),
        Just(b"step 00010 | loss: 3.2 | lr: 0.001".to_vec()),
        Just(b"Traceback (most recent call last):".to_vec()),
        Just(b"val_loss: 2.5".to_vec()),
        (4000usize..9000).prop_map(|n| vec![b'#'; n]),
    ]
}

/// A finite value and a way of printing it that Python's print or f-strings produce.
fn planted() -> impl Strategy<Value = (f64, String)> {
    (
        any::<f64>().prop_filter("finite", |x| x.is_finite()),
        0..4u8,
        0..3u8,
    )
        .prop_map(|(x, style, sep)| {
            let num = match style {
                0 => format!("{x}"),
                1 => format!("{x:e}"),
                2 => format!("{x:E}"),
                _ => format!("{x:?}"),
            };
            let line = match sep {
                0 => format!("val_bpb: {num}"),
                1 => format!("val_bpb:          {num}"),
                _ => format!("  val_bpb = {num}"),
            };
            (num.parse::<f64>().unwrap(), line)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_any_bytes(data in prop::collection::vec(any::<u8>(), 0..4096)) {
        let m = parse_reader(&data[..], &spec(None)).unwrap();
        if let Some(l) = &m.last_line {
            prop_assert!(l.chars().count() <= 300);
        }
        let _ = parse_reader(&data[..], &spec(Some(r"bpb=([0-9.]+)"))).unwrap();
    }

    #[test]
    fn finds_a_planted_metric_among_junk(
        before in prop::collection::vec(junk_line(), 0..20),
        after in prop::collection::vec(junk_line(), 0..20),
        (value, line) in planted(),
        crlf in any::<bool>(),
        final_newline in any::<bool>(),
    ) {
        let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
        let mut log = Vec::new();
        for l in &before {
            log.extend_from_slice(l);
            log.extend_from_slice(eol);
        }
        log.extend_from_slice(line.as_bytes());
        for l in &after {
            log.extend_from_slice(eol);
            log.extend_from_slice(l);
        }
        if final_newline {
            log.extend_from_slice(eol);
        }
        let m = parse_reader(&log[..], &spec(None)).unwrap();
        prop_assert_eq!(m.primary, Some(value), "line {:?}", line);
        prop_assert_eq!(m.values.get("val_bpb").copied(), Some(value));
    }

    #[test]
    fn the_last_of_several_metric_lines_wins(values in prop::collection::vec(-1e3f64..1e3, 1..10)) {
        let log: String = values.iter().map(|v| format!("val_bpb: {v}\nstep\n")).collect();
        let m = parse_reader(log.as_bytes(), &spec(None)).unwrap();
        prop_assert_eq!(m.primary, values.last().copied());
    }
}
