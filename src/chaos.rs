//! Crash points for the chaos tests: with `AUTORESEARCH_CHAOS_KILL_AT=<label>:<n>` set,
//! the process SIGKILLs itself the `n`-th time it passes the point named `<label>`, so a
//! test can kill the orchestrator at an exact step (mid-commit, between a journal write
//! and results.tsv, ...) instead of by timing luck. Inert unless the variable is set;
//! never changes what the program does otherwise.
//!
//! Labels: `session_created` (a new session journaled, its branch not yet created),
//! `propose` (before asking the proposer), `proposal` (a proposal in hand,
//! nothing written yet), `journal_insert`, `journal_update`, `measurement` (each just
//! after that journal write), `files_written` (edits in the tree, not committed),
//! `commit` (committed, sha not yet journaled), `run_line` (a training script is running
//! and printed a progress line), `results_tmp` (results.tsv's temporary file written, not
//! renamed; or a finished row about to be appended: the journal has it, the file not),
//! `results` (results.tsv replaced, or the row appended), `reset` (about to reset to the best),
//! `decision` (a decision emitted), `report` (progress.md written).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The variable that arms one crash point.
pub const CHAOS_ENV: &str = "AUTORESEARCH_CHAOS_KILL_AT";

/// Passes the crash point `label`; dies here by SIGKILL if it is the armed one's n-th pass.
pub fn point(label: &str) {
    static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let armed = ARMED.get_or_init(|| parse(&std::env::var(CHAOS_ENV).ok()?));
    let Some((name, n)) = armed else {
        return;
    };
    if name == label && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n {
        // SIGKILL, not exit or abort: no destructor, no flush, no handler runs, as when
        // the OOM killer or a power cut takes the orchestrator.
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
    }
}

/// `label:n` with n ≥ 1.
fn parse(spec: &str) -> Option<(String, u64)> {
    let (label, n) = spec.rsplit_once(':')?;
    let n: u64 = n.trim().parse().ok().filter(|&n| n > 0)?;
    Some((label.trim().to_string(), n))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_label_and_count() {
        assert_eq!(parse("commit:3"), Some(("commit".into(), 3)));
        assert_eq!(parse("commit:0"), None);
        assert_eq!(parse("commit"), None);
        assert_eq!(parse("commit:x"), None);
    }
}
