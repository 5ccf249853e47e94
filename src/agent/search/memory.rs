//! What the search learns from the record beyond "this state was run": values of a knob
//! that crashed (never proposed again, whatever the other knobs are), values beyond one that
//! broke an assertion, and knobs whose moves never changed the metric. Read back from the
//! history on every proposal, so a resumed session knows it too. Pure; no I/O.

use crate::experiment::{ExperimentRecord, Status};
use regex::Regex;
use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;

use super::number::Number;

/// One `NAME old → new` part of a search description.
static MOVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*([A-Z_][A-Z0-9_]*) (\S+?) \x{2192} (\S+?)\s*$").expect("static regex")
});

/// One change a description names: the constant, its old and its new literal.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    pub name: String,
    pub old: String,
    pub new: String,
}

/// The changes of a search description: `A 1 → 2` or `A 1 → 2, B 3 → 4`; `None` when any
/// part is not such a change (an LLM's description, the baseline).
pub fn moves(description: &str) -> Option<Vec<Move>> {
    let mut out = Vec::new();
    for part in description.split(", ") {
        let caps = MOVE.captures(part)?;
        out.push(Move {
            name: caps[1].to_string(),
            old: caps[2].to_string(),
            new: caps[3].to_string(),
        });
    }
    (!out.is_empty()).then_some(out)
}

/// A value of a knob that must not be proposed again.
#[derive(Debug, Clone, PartialEq)]
struct Bar {
    value: f64,
    /// `Some(up)`: an assertion broke, so every value at or beyond `value` going up (or
    /// down) from the value it left is barred too.
    beyond: Option<bool>,
}

/// What the history taught.
#[derive(Debug, Default)]
pub struct Memory {
    bars: BTreeMap<String, Vec<Bar>>,
    /// Knobs with at least two finished moves, none of which changed the metric at all.
    pub inert: HashSet<String>,
}

impl Memory {
    /// Reads every single-knob search move on record.
    pub fn read(history: &[ExperimentRecord]) -> Memory {
        let mut memory = Memory::default();
        let metric_of: BTreeMap<&str, f64> = history
            .iter()
            .filter(|r| !r.commit.is_empty())
            .filter_map(|r| Some((r.commit.as_str(), r.metric?)))
            .collect();
        // Per knob: finished moves, and how many changed the metric.
        let mut moved: BTreeMap<String, (u32, u32)> = BTreeMap::new();
        for r in history {
            let Some(ms) = moves(&r.description) else {
                continue;
            };
            let [m] = ms.as_slice() else { continue };
            let (Some(old), Some(new)) = (Number::parse(&m.old), Number::parse(&m.new)) else {
                continue;
            };
            match r.status {
                Status::Crash => {
                    let assertion = r.reason.contains("AssertionError");
                    memory.bars.entry(m.name.clone()).or_default().push(Bar {
                        value: new.value,
                        beyond: assertion.then_some(new.value > old.value),
                    });
                }
                Status::Keep | Status::Discard => {
                    let (Some(v), Some(&p)) = (r.metric, metric_of.get(r.parent.as_str())) else {
                        continue;
                    };
                    let e = moved.entry(m.name.clone()).or_default();
                    e.0 += 1;
                    if (v - p).abs() > 1e-12 * p.abs().max(1.0) {
                        e.1 += 1;
                    }
                }
                _ => {}
            }
        }
        memory.inert = moved
            .into_iter()
            .filter(|(_, (n, changed))| *n >= 2 && *changed == 0)
            .map(|(k, _)| k)
            .collect();
        memory
    }

    /// Whether `value` of knob `name`, left from `from`, is known to crash.
    pub fn barred(&self, name: &str, from: f64, value: f64) -> bool {
        let Some(bars) = self.bars.get(name) else {
            return false;
        };
        bars.iter().any(|b| {
            let same = (b.value - value).abs() <= 1e-12 * b.value.abs().max(1e-300);
            same || match b.beyond {
                Some(true) => value >= b.value && from < b.value,
                Some(false) => value <= b.value && from > b.value,
                None => false,
            }
        })
    }

    /// How many values of `name` are barred (for the reports and tests).
    pub fn bars(&self, name: &str) -> usize {
        self.bars.get(name).map_or(0, Vec::len)
    }
}
