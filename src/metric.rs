//! Reading numbers from a run's log: every `key: value` line, the primary metric (the last
//! value of the configured key, or of the configured regex), peak memory and parameter
//! count. Streams the file; never holds a whole log, or a whole 10 MB line, in memory.

use crate::config::MetricSpec;
use regex::Regex;
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::LazyLock;

/// Lines longer than this are cut before matching: a metric line is short.
const MAX_LINE: usize = 4096;

static KEY_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^\s*([A-Za-z_][A-Za-z0-9_./-]*)\s*[:=]\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?i:nan|inf|infinity))\s*$",
    )
    .expect("static regex")
});

static INLINE_PAIR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"([A-Za-z_][A-Za-z0-9_/]*)\s*[:=]\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")
        .expect("static regex")
});

/// What a log said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// Last value of each `key: value` line.
    pub values: BTreeMap<String, f64>,
    /// The primary metric, when found (may be NaN or infinite: the caller decides).
    pub primary: Option<f64>,
    /// The last non-empty line that is not part of the summary block, for crash reasons.
    pub last_line: Option<String>,
    /// The log mentions running out of memory.
    pub oom: bool,
}

impl Metrics {
    /// Peak memory in GB: the printed key (in MB) when present.
    pub fn memory_gb(&self, spec: &MetricSpec) -> Option<f64> {
        self.values.get(&spec.memory_key).map(|mb| mb / 1024.0)
    }

    /// Parameter count in millions when the script printed one.
    pub fn params_m(&self) -> Option<f64> {
        ["num_params_M", "num_params_m", "params_M", "n_params_M"]
            .iter()
            .find_map(|k| self.values.get(*k).copied())
            .or_else(|| self.values.get("num_params").map(|n| n / 1e6))
    }
}

/// Parses a value string; accepts nan/inf spellings.
fn number(s: &str) -> Option<f64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_prefix('+').unwrap_or(&t);
    match t {
        "nan" | "-nan" => Some(f64::NAN),
        "inf" | "infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        _ => t.parse().ok(),
    }
}

const OOM_MARKERS: &[&str] = &[
    "out of memory",
    "outofmemoryerror",
    "memoryerror",
    "cuda error: out of memory",
    "cannot allocate memory",
    "hip out of memory",
];

/// Parses one line into the accumulator.
fn feed(m: &mut Metrics, line: &str, spec: &MetricSpec) {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return;
    }
    let lower = trimmed.to_ascii_lowercase();
    if OOM_MARKERS.iter().any(|k| lower.contains(k)) {
        m.oom = true;
    }
    if let Some(re) = &spec.regex {
        if let Some(c) = re.captures(line) {
            let v = c
                .name("value")
                .or_else(|| c.get(1))
                .and_then(|g| number(g.as_str()));
            if v.is_some() {
                m.primary = v;
            }
        }
    }
    if let Some(c) = KEY_VALUE.captures(line) {
        if let Some(v) = number(&c[2]) {
            let key = c[1].to_string();
            if spec.regex.is_none() && key == spec.name {
                m.primary = Some(v);
            }
            m.values.insert(key, v);
            return;
        }
    }
    if trimmed != "---" {
        // Training output becomes a crash reason: shown and stored as plain text.
        m.last_line = Some(crate::text::flat(trimmed, 300));
    }
}

/// Parses a log from any reader, line by line, cutting long lines.
pub fn parse_reader(reader: impl Read, spec: &MetricSpec) -> io::Result<Metrics> {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut m = Metrics::default();
    let mut line: Vec<u8> = Vec::with_capacity(256);
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let (chunk, consumed, ended) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        reader.consume(consumed);
        if ended {
            feed(&mut m, &String::from_utf8_lossy(&line), spec);
            line.clear();
        }
    }
    if !line.is_empty() {
        feed(&mut m, &String::from_utf8_lossy(&line), spec);
    }
    Ok(m)
}

/// Parses a log file.
pub fn parse_file(path: &Path, spec: &MetricSpec) -> io::Result<Metrics> {
    parse_reader(std::fs::File::open(path)?, spec)
}

/// `key: number` pairs anywhere in a progress line (`step 120 | loss: 2.1 | lr: 1e-3`),
/// for the live display. Returns at most `max` pairs.
pub fn inline_numbers(line: &str, max: usize) -> Vec<(String, f64)> {
    INLINE_PAIR
        .captures_iter(line)
        .filter_map(|c| Some((c[1].to_string(), c[2].parse().ok()?)))
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::Direction;

    fn spec(regex: Option<&str>) -> MetricSpec {
        MetricSpec {
            name: "val_bpb".into(),
            direction: Direction::Minimize,
            regex: regex.map(|r| Regex::new(r).unwrap()),
            memory_key: "peak_vram_mb".into(),
        }
    }

    const KARPATHY: &str = "step 00010 | loss: 3.2 | lr: 0.001\n---\nval_bpb:          0.997900\ntraining_seconds: 300.1\ntotal_seconds:    325.9\npeak_vram_mb:     45060.2\nmfu_percent:      39.80\ntotal_tokens_M:   499.6\nnum_steps:        953\nnum_params_M:     50.3\ndepth:            8\n";

    #[test]
    fn reads_karpathy_summary_block() {
        let m = parse_reader(KARPATHY.as_bytes(), &spec(None)).unwrap();
        assert_eq!(m.primary, Some(0.9979));
        assert_eq!(m.values["num_steps"], 953.0);
        assert_eq!(m.params_m(), Some(50.3));
        let gb = m.memory_gb(&spec(None)).unwrap();
        assert!((gb - 44.004).abs() < 0.01, "{gb}");
        assert!(
            !m.values.contains_key("loss"),
            "progress lines are not summary lines"
        );
    }

    #[test]
    fn last_value_wins_and_nan_is_reported() {
        let m = parse_reader("val_bpb: 1.5\nval_bpb: 1.2\n".as_bytes(), &spec(None)).unwrap();
        assert_eq!(m.primary, Some(1.2));
        let m = parse_reader("val_bpb: nan\n".as_bytes(), &spec(None)).unwrap();
        assert!(m.primary.unwrap().is_nan());
        let m = parse_reader("val_bpb: -inf".as_bytes(), &spec(None)).unwrap();
        assert_eq!(m.primary, Some(f64::NEG_INFINITY));
    }

    #[test]
    fn missing_metric_keeps_last_line_for_the_reason() {
        let log = "Traceback (most recent call last):\nNameError: name 'x' is not defined\n\n";
        let m = parse_reader(log.as_bytes(), &spec(None)).unwrap();
        assert_eq!(m.primary, None);
        assert_eq!(
            m.last_line.as_deref(),
            Some("NameError: name 'x' is not defined")
        );
    }

    #[test]
    fn regex_with_group_or_named_value() {
        let m = parse_reader(
            "eval | bpb=0.81 |\n".as_bytes(),
            &spec(Some(r"bpb=([0-9.]+)")),
        )
        .unwrap();
        assert_eq!(m.primary, Some(0.81));
        let m = parse_reader(
            "acc 91.5%\n".as_bytes(),
            &spec(Some(r"acc (?P<value>[0-9.]+)%")),
        )
        .unwrap();
        assert_eq!(m.primary, Some(91.5));
    }

    #[test]
    fn survives_binary_junk_and_huge_lines_without_newline() {
        let mut log = vec![0xff, 0xfe, b'\n'];
        log.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
        log.extend(b"\nval_bpb: 2.5");
        let m = parse_reader(&log[..], &spec(None)).unwrap();
        assert_eq!(m.primary, Some(2.5));
    }

    #[test]
    fn detects_out_of_memory() {
        let log = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n";
        assert!(parse_reader(log.as_bytes(), &spec(None)).unwrap().oom);
    }

    #[test]
    fn inline_pairs_for_progress() {
        let pairs = inline_numbers("step 00120 | loss: 2.1234 | lr: 1e-3 | 3.2s", 4);
        assert_eq!(pairs, vec![("loss".into(), 2.1234), ("lr".into(), 0.001)]);
    }
}
