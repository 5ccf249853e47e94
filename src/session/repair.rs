//! Repairing a trivial crash: judging from the traceback whether a crash is a slip (a
//! typo, a missing import) rather than a bad idea, and asking the proposer once for a fix,
//! committed as the next attempt of the same experiment.

use super::{Session, SessionError};
use crate::experiment::ExperimentRecord;
use std::collections::BTreeMap;

/// Exceptions that mean a slip in the code, not a bad idea: worth one repair.
const TRIVIAL_ERRORS: &[&str] = &[
    "SyntaxError",
    "IndentationError",
    "TabError",
    "NameError",
    "UnboundLocalError",
    "ImportError",
    "ModuleNotFoundError",
    "AttributeError",
    "TypeError",
];

/// Whether a crash's log ends in a Python traceback of a trivial kind.
pub(crate) fn trivial_crash(tail: &str) -> bool {
    if !tail.contains("Traceback") && !tail.contains("SyntaxError") {
        return false;
    }
    // The traceback's final exception line, not the log's last line: stdout and stderr
    // are drained by separate threads, so late stdout may land after the traceback.
    tail.lines()
        .rev()
        .map(str::trim)
        .find(|l| is_exception_line(l))
        .is_some_and(|last| {
            TRIVIAL_ERRORS
                .iter()
                .any(|e| last.starts_with(e) || last.contains(&format!(".{e}")))
        })
}

/// `NameError: …`, `torch.OutOfMemoryError: …`, `SystemExit`: a dotted name ending in
/// Error/Exception/Exit/Interrupt, alone or followed by a colon.
fn is_exception_line(line: &str) -> bool {
    let name = line.split(':').next().unwrap_or("");
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && ["Error", "Exception", "Exit", "Interrupt"]
            .iter()
            .any(|s| name.ends_with(s))
}

/// The last `n` lines of a log (reading at most its last 64 KiB).
pub(crate) fn log_tail(path: &std::path::Path, n: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let start = bytes.len().saturating_sub(64 * 1024);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Session<'_> {
    /// The traceback of `crashed`'s log when it is worth one repair: a trivial slip, and
    /// repair attempts left.
    pub(crate) fn repair_traceback(
        &self,
        crashed: &ExperimentRecord,
        log: &std::path::Path,
    ) -> Option<String> {
        if crashed.attempt > self.config.agent.repair_attempts {
            return None;
        }
        let tail = log_tail(log, 60);
        trivial_crash(&tail).then_some(tail)
    }

    /// Commits `files` (the crashed files with the repair `p` applied, made to fit on the
    /// best, whose files are `before`) as the next attempt of `crashed`.
    pub(crate) fn commit_repair(
        &mut self,
        crashed: &ExperimentRecord,
        p: &crate::agent::Proposal,
        files: &BTreeMap<std::path::PathBuf, String>,
        before: &BTreeMap<std::path::PathBuf, String>,
    ) -> Result<Result<ExperimentRecord, String>, SessionError> {
        let description = format!(
            "{} (repaired: {})",
            crashed.description,
            super::one_line(&p.description)
        );
        let mut usage = BTreeMap::new();
        super::record_usage(&mut usage, &p.usage);
        self.warn(format!(
            "experiment {} crashed on a trivial error; trying the proposer's repair (attempt {})",
            crashed.iteration,
            crashed.attempt + 1
        ));
        let draft = super::Draft {
            iteration: crashed.iteration,
            attempt: crashed.attempt + 1,
            description: &description,
            category: crashed.category,
            repeat: false,
        };
        self.commit_state(draft, files, before, usage)
    }
}
