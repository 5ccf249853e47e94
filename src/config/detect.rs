//! Layout detection for `init`: what a karpathy-shaped repo suggests (the time budget in
//! prepare.py, the printed metric in train.py, which way it improves, the file roles).
//! Reads files only; everything it finds is a suggestion for the user to confirm.

use super::duration;
use super::{default_command, dependency_files};
use crate::experiment::Direction;
use regex::Regex;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A value detection found, and where, to show the user as a suggestion.
#[derive(Debug, Clone, PartialEq)]
pub struct Found<T> {
    pub value: T,
    /// e.g. `prepare.py:12 TIME_BUDGET = 300`.
    pub source: String,
}

/// What the repository suggests. Everything here is a suggestion until confirmed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Detected {
    pub budget: Option<Found<Duration>>,
    pub metric: Option<Found<String>>,
    /// From the metric's name; None when the name says nothing about it.
    pub direction: Option<Direction>,
    pub command: String,
    pub editable: Vec<PathBuf>,
    pub read_only: Vec<PathBuf>,
}

/// Names whose metrics improve downwards, and upwards. Matched per `_`-separated word.
const LOWER_IS_BETTER: &[&str] = &[
    "bpb",
    "bpc",
    "loss",
    "perplexity",
    "ppl",
    "error",
    "err",
    "wer",
    "cer",
    "mse",
    "mae",
    "rmse",
    "nll",
];
const HIGHER_IS_BETTER: &[&str] = &[
    "acc",
    "accuracy",
    "f1",
    "auc",
    "bleu",
    "rouge",
    "score",
    "reward",
    "map",
    "precision",
    "recall",
];

/// Which way a metric improves, judged from its name (`val_bpb` → minimize, `top1_acc` →
/// maximize); None when the name does not say.
pub fn direction_for(name: &str) -> Option<Direction> {
    let lower = name.to_ascii_lowercase();
    for word in lower.split(|c: char| !c.is_ascii_alphanumeric()) {
        // `rouge1`, `acc5`: the number is a variant, not part of the word.
        let stem = word.trim_end_matches(|c: char| c.is_ascii_digit());
        for w in [word, stem] {
            if LOWER_IS_BETTER.contains(&w) {
                return Some(Direction::Minimize);
            }
            if HIGHER_IS_BETTER.contains(&w) {
                return Some(Direction::Maximize);
            }
        }
    }
    None
}

/// Reads the repository for suggestions: `TIME_BUDGET = …` in prepare.py or train.py, the
/// `print(f"name: {…}")` metric lines of train.py, the run command and the file roles.
pub fn detect(repo: &Path) -> Detected {
    let editable: Vec<PathBuf> = if repo.join("train.py").is_file() {
        vec![PathBuf::from("train.py")]
    } else {
        Vec::new()
    };
    let mut read_only = Vec::new();
    if repo.join("prepare.py").is_file() {
        read_only.push(PathBuf::from("prepare.py"));
    }
    read_only.extend(dependency_files(repo));

    let budget = ["prepare.py", "train.py"]
        .iter()
        .find_map(|f| find_time_budget(repo, f));
    let metric = find_metric(repo, "train.py");
    let direction = metric.as_ref().and_then(|m| direction_for(&m.value));
    Detected {
        budget,
        metric,
        direction,
        command: default_command(repo, &editable),
        editable,
        read_only,
    }
}

fn read(repo: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(repo.join(file)).ok()
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// `TIME_BUDGET = 300` (seconds), also `TIME_BUDGET: int = 5 * 60`.
fn find_time_budget(repo: &Path, file: &str) -> Option<Found<Duration>> {
    let text = read(repo, file)?;
    let re = Regex::new(
        r"(?m)^[ \t]*TIME_BUDGET[ \t]*(?::[^=\n]*)?=[ \t]*([0-9][0-9_]*(?:\.[0-9]+)?(?:[ \t]*\*[ \t]*[0-9][0-9_]*(?:\.[0-9]+)?)*)[ \t]*(?:#.*)?$",
    )
    .ok()?;
    let caps = re.captures(&text)?;
    let whole = caps.get(0)?;
    let secs: f64 = caps[1]
        .split('*')
        .map(|n| n.trim().replace('_', "").parse::<f64>())
        .try_fold(1.0, |acc, n| n.map(|n| acc * n))
        .ok()?;
    let value = duration::parse(&secs.to_string()).ok()?;
    Some(Found {
        value,
        source: format!(
            "{file}:{} TIME_BUDGET = {}",
            line_of(&text, whole.start()),
            caps[1].trim()
        ),
    })
}

/// The metric a training script prints as `print(f"val_bpb: {…}")` or
/// `print("val_bpb:", …)`: the first printed key whose name tells its direction, preferring
/// validation/eval/test keys (karpathy's train.py also prints `peak_vram_mb: …` and such).
fn find_metric(repo: &Path, file: &str) -> Option<Found<String>> {
    let text = read(repo, file)?;
    let re = Regex::new(r#"print\(\s*[fF]?["']\s*([A-Za-z_][A-Za-z0-9_.\-/]*)\s*:"#).ok()?;
    let keys: Vec<(String, usize)> = re
        .captures_iter(&text)
        .filter_map(|c| c.get(1).map(|m| (m.as_str().to_string(), m.start())))
        .collect();
    let held_out = |k: &str| {
        let k = k.to_ascii_lowercase();
        ["val", "valid", "validation", "eval", "test", "dev"]
            .iter()
            .any(|p| {
                k.split(|c: char| !c.is_ascii_alphanumeric())
                    .any(|w| w == *p)
            })
    };
    let pick = keys
        .iter()
        .find(|(k, _)| held_out(k) && direction_for(k).is_some())
        .or_else(|| keys.iter().find(|(k, _)| direction_for(k).is_some()))
        .or_else(|| keys.iter().find(|(k, _)| held_out(k)))?;
    Some(Found {
        value: pick.0.clone(),
        source: format!("{file}:{} prints `{}: …`", line_of(&text, pick.1), pick.0),
    })
}
