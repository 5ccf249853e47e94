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
    /// A seed the editable script pins itself, ignoring `AUTORESEARCH_SEED`.
    pub pinned_seed: Option<Found<String>>,
    /// One line each on what was chosen for the user and why (the command without uv).
    pub notes: Vec<String>,
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
    let command = default_command(repo, &editable);
    let mut notes = Vec::new();
    if let Some(note) = uv_note(repo, &command, &super::repo::on_path) {
        notes.push(note);
    }
    let pinned_seed = editable.first().and_then(|f| pinned_seed_in(repo, f));
    Detected {
        budget,
        metric,
        direction,
        command,
        editable,
        read_only,
        pinned_seed,
        notes,
    }
}

/// When pyproject.toml and uv.lock ask for uv and uv is not installed: which command was
/// chosen instead, and how to get karpathy's.
pub fn uv_note(repo: &Path, command: &str, on_path: &dyn Fn(&str) -> bool) -> Option<String> {
    let wants_uv = repo.join("pyproject.toml").is_file() && repo.join("uv.lock").is_file();
    (wants_uv && !on_path("uv")).then(|| {
        format!(
            "pyproject.toml and uv.lock ask for uv, which is not on PATH: the command is `{command}` (the environment must already have the dependencies); install uv for `uv run` instead"
        )
    })
}

/// The editable script's own seed, when it pins one (`torch.manual_seed(42)`) and never
/// reads `AUTORESEARCH_SEED`: then repeated runs are one seed, not a noise estimate.
pub fn pinned_seed_in(repo: &Path, file: &Path) -> Option<Found<String>> {
    let text = std::fs::read_to_string(repo.join(file)).ok()?;
    pinned_seed(&text).map(|(line, call)| Found {
        source: format!("{}:{line} {call}", file.display()),
        value: call,
    })
}

/// (line, call) of a seed fixed to a literal in `text`, unless it reads AUTORESEARCH_SEED.
pub fn pinned_seed(text: &str) -> Option<(usize, String)> {
    if text.contains("AUTORESEARCH_SEED") {
        return None;
    }
    let re = Regex::new(
        r"(?m)^[^#\n]*?\b((?:torch\.(?:cuda\.)?manual_seed(?:_all)?|(?:np|numpy)\.random\.seed|random\.seed|set_seed|seed_everything|tf\.random\.set_seed|mx\.random\.seed)\(\s*[0-9][0-9_]*\s*\))",
    )
    .ok()?;
    let caps = re.captures(text)?;
    let m = caps.get(1)?;
    Some((line_of(text, m.start()), m.as_str().to_string()))
}

/// The fix for a pinned seed, as one line to paste.
pub fn seed_fix(call: &str) -> String {
    let name = call.split('(').next().unwrap_or(call);
    let seed: String = call
        .chars()
        .skip_while(|c| *c != '(')
        .filter(char::is_ascii_digit)
        .collect();
    format!("{name}(int(os.environ.get(\"AUTORESEARCH_SEED\", {seed})))")
}

/// The `TIME_BUDGET` a read-only file fixes for the editable script, if any: the file
/// sets it and never reads `AUTORESEARCH_TIME_BUDGET`, and an editable file uses it (as
/// karpathy's train.py imports it from prepare.py). The training loop then obeys it
/// whatever the configured budget says.
pub fn fixed_time_budget(
    repo: &Path,
    read_only: &[PathBuf],
    editable: &[PathBuf],
) -> Option<Found<Duration>> {
    const OURS: &str = "AUTORESEARCH_TIME_BUDGET";
    let uses_it = editable.iter().any(|f| {
        read(repo, &f.to_string_lossy())
            .is_some_and(|t| t.contains("TIME_BUDGET") && !t.contains(OURS))
    });
    if !uses_it {
        return None;
    }
    read_only
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "py"))
        .filter(|p| read(repo, &p.to_string_lossy()).is_some_and(|t| !t.contains(OURS)))
        .find_map(|p| find_time_budget(repo, &p.to_string_lossy()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_seed_is_found_unless_the_script_reads_ours() {
        let text = "import torch\n# torch.manual_seed(1) in a comment\ntorch.manual_seed(42)\n";
        assert_eq!(pinned_seed(text), Some((3, "torch.manual_seed(42)".into())));
        assert_eq!(
            pinned_seed("np.random.seed(0)\n"),
            Some((1, "np.random.seed(0)".into()))
        );
        let ours = "SEED = int(os.environ.get('AUTORESEARCH_SEED', 42))\ntorch.manual_seed(SEED)\n";
        assert_eq!(pinned_seed(ours), None);
        assert_eq!(pinned_seed("torch.manual_seed(seed)\n"), None);
        assert_eq!(
            seed_fix("torch.manual_seed(42)"),
            "torch.manual_seed(int(os.environ.get(\"AUTORESEARCH_SEED\", 42)))"
        );
    }

    #[test]
    fn uv_note_only_when_uv_is_wanted_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pyproject.toml"), "[project]\n").unwrap();
        assert_eq!(uv_note(dir.path(), "python train.py", &|_| false), None);
        std::fs::write(dir.path().join("uv.lock"), "").unwrap();
        let note = uv_note(dir.path(), "python train.py", &|_| false).unwrap();
        assert!(
            note.contains("`python train.py`") && note.contains("not on PATH"),
            "{note}"
        );
        assert_eq!(uv_note(dir.path(), "uv run train.py", &|p| p == "uv"), None);
    }
}
