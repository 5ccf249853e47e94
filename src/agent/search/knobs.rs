//! Finding the knobs: the top-level numeric constants (`NAME = <number>  # comment`) of a
//! Python file, and the category a constant's name suggests. Reads text only; never edits.

use super::number::Number;
use crate::experiment::Category;
use regex::Regex;
use std::ops::Range;
use std::sync::LazyLock;

/// One top-level numeric constant of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Constant {
    pub name: String,
    /// 0-based line number.
    pub line: usize,
    /// Byte range of the value in the whole file text; only this is rewritten.
    pub span: Range<usize>,
    pub number: Number,
    /// The trailing `# comment`, verbatim, when there is one.
    pub comment: Option<String>,
    pub category: Category,
}

/// `NAME = value  # comment` at column 0; the value holds no `#` and no outer spaces.
static ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([A-Z_][A-Z0-9_]*)[ \t]*=[ \t]*([^#\s](?:[^#]*[^#\s])?)[ \t]*(#.*)?$")
        .expect("static regex")
});

/// The numeric constants of `text` in file order. Tuples, strings, booleans, expressions,
/// indented lines, lines inside brackets, docstrings or after a `\` are skipped, and so is
/// a name assigned more than once (which one wins would depend on the code between them).
pub fn find_constants(text: &str) -> Vec<Constant> {
    let mut found: Vec<Constant> = Vec::new();
    let mut assigned: Vec<String> = Vec::new();
    for (line_no, start, line) in statement_lines(text) {
        let Some(caps) = ASSIGNMENT.captures(line) else {
            continue;
        };
        let name = caps[1].to_string();
        let value = caps.get(2).expect("group 2 always matches");
        assigned.push(name.clone());
        if let Some(number) = Number::parse(value.as_str()) {
            found.push(Constant {
                category: category_of(&name),
                name,
                line: line_no,
                span: start + value.start()..start + value.end(),
                number,
                comment: caps.get(3).map(|c| c.as_str().to_string()),
            });
        }
    }
    // Any top-level reassignment, numeric or not, makes the name ambiguous.
    found.retain(|c| assigned.iter().filter(|n| **n == c.name).count() == 1);
    found
}

/// Lines that begin a new top-level statement: `(line number, byte offset, text without
/// the line break)`. A small scanner tracks strings, brackets and `\` continuations so a
/// `NAME = 3` inside a docstring or a multi-line call is not taken for a constant.
fn statement_lines(text: &str) -> Vec<(usize, usize, &str)> {
    let mut out = Vec::new();
    let mut depth: u32 = 0;
    // The open string's quote and whether it is triple-quoted.
    let mut open: Option<(u8, bool)> = None;
    let mut continued = false;
    let mut offset = 0;
    for (line_no, raw) in text.split_inclusive('\n').enumerate() {
        let line = raw.trim_end_matches('\n').trim_end_matches('\r');
        if depth == 0 && open.is_none() && !continued {
            out.push((line_no, offset, line));
        }
        offset += raw.len();
        let b = line.as_bytes();
        let mut i = 0;
        let mut in_comment = false;
        while i < b.len() {
            let c = b[i];
            match open {
                Some((q, triple)) => {
                    if c == b'\\' {
                        i += 1;
                    } else if triple && b[i..].starts_with(&[q, q, q]) {
                        open = None;
                        i += 2;
                    } else if !triple && c == q {
                        open = None;
                    }
                }
                None => match c {
                    b'#' => {
                        in_comment = true;
                        break;
                    }
                    b'"' | b'\'' => {
                        let triple = b[i..].starts_with(&[c, c, c]);
                        open = Some((c, triple));
                        if triple {
                            i += 2;
                        }
                    }
                    b'(' | b'[' | b'{' => depth += 1,
                    b')' | b']' | b'}' => depth = depth.saturating_sub(1),
                    _ => {}
                },
            }
            i += 1;
        }
        continued = !in_comment && line.ends_with('\\');
        // A one-line string cannot span lines unless the line ends with `\`.
        if matches!(open, Some((_, false))) && !continued {
            open = None;
        }
    }
    out
}

impl Constant {
    /// A batch size (or token count) written as a power of two from 16 up stays a power of
    /// two: other values break the divisibility such scripts assert
    /// (`TOTAL_BATCH_SIZE % (DEVICE_BATCH_SIZE * MAX_SEQ_LEN) == 0`). `2**19` always does.
    pub fn keeps_power_of_two(&self) -> bool {
        let sized = self
            .name
            .split('_')
            .any(|w| w.starts_with("BATCH") || w.starts_with("TOKENS"));
        sized
            && self
                .number
                .int
                .is_some_and(|m| m >= 16 && m.is_power_of_two())
    }
}

/// The category a constant's name suggests. Keywords match whole `_`-separated words (or a
/// word's start, so `BETA` matches `BETAS`), which keeps `EPS` from matching `STEPS`.
/// Schedule words are checked first so `LR_DECAY_STEPS` is training dynamics.
pub fn category_of(name: &str) -> Category {
    const DYNAMICS: &[&str] = &["WARMUP", "WARMDOWN", "DECAY_STEPS", "SCHEDULE", "CLIP"];
    const OPTIMIZER: &[&str] = &["LR", "BETA", "WEIGHT_DECAY", "MOMENTUM", "EPS"];
    const ARCHITECTURE: &[&str] = &[
        "DEPTH", "LAYER", "DIM", "HEAD", "WIDTH", "ASPECT", "EMBED", "HIDDEN", "CONTEXT",
    ];
    let words: Vec<&str> = name.split('_').filter(|w| !w.is_empty()).collect();
    let has = |keywords: &[&str]| keywords.iter().any(|k| contains_words(&words, k));
    if has(DYNAMICS) {
        Category::TrainingDynamics
    } else if has(OPTIMIZER) {
        Category::Optimizer
    } else if has(ARCHITECTURE) {
        Category::Architecture
    } else {
        Category::Hyperparameters
    }
}

/// True when `keyword`'s words appear in a row in `words`, the last one as a prefix.
fn contains_words(words: &[&str], keyword: &str) -> bool {
    let kw: Vec<&str> = keyword.split('_').collect();
    words.windows(kw.len()).any(|w| {
        w.iter().zip(&kw).enumerate().all(|(i, (word, k))| {
            if i + 1 == kw.len() {
                word.starts_with(k)
            } else {
                word == k
            }
        })
    })
}
