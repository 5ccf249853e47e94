//! The log reader on arbitrary bytes, with the default `name: value` rule and with a
//! regex: no panics, and a metric, when found, came from the log.
#![no_main]

use autoresearch::config::MetricSpec;
use autoresearch::experiment::Direction;
use autoresearch::metric::{inline_numbers, parse_reader};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static PLAIN: LazyLock<MetricSpec> = LazyLock::new(|| spec(None));
static REGEX: LazyLock<MetricSpec> =
    LazyLock::new(|| spec(Some(r"bpb=(?P<value>[-+0-9.eE]+|nan|inf)")));

fn spec(regex: Option<&str>) -> MetricSpec {
    MetricSpec {
        name: "val_bpb".into(),
        direction: Direction::Minimize,
        regex: regex.map(|r| regex::Regex::new(r).unwrap()),
        memory_key: "peak_vram_mb".into(),
    }
}

fuzz_target!(|data: &[u8]| {
    let m = parse_reader(data, &PLAIN).expect("reading a slice cannot fail");
    if m.primary.is_some() {
        assert!(
            data.windows(7).any(|w| w == b"val_bpb"),
            "metric out of nowhere"
        );
    }
    if let Some(last) = &m.last_line {
        assert!(last.chars().count() <= 300);
    }
    let _ = parse_reader(data, &REGEX).expect("reading a slice cannot fail");
    let _ = inline_numbers(&String::from_utf8_lossy(data), 8);
});
