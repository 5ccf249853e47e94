//! The check after every training run: whatever the sandbox could not prevent is caught
//! here. Refs (the user's branches included), HEAD, the git config and the tracked tree are
//! compared with what they were when the run started, any change is undone exactly, and the
//! run is told what it did so it is recorded as a crash with that reason. The journal is
//! checked to be the file the session opened.

use super::Session;
use crate::workspace::{GitState, Repo};

/// What a run did that it must not, already undone ("changed prepare.py", "moved HEAD to
/// refs/heads/main"). Empty: nothing.
pub(crate) type Tampered = Vec<String>;

/// Undoes what a run in `tree` changed since `before` and names it. `owned` refs are the
/// tool's own (the research branch the coordinator moves while other runs go on). With
/// `refs` false (the box walls git's data off, so a ref that moved while the run trained
/// is the user's own work in their checkout) only the tracked tree is checked.
pub(crate) fn undo_run_changes(
    tree: &Repo,
    before: &GitState,
    owned: &[String],
    label: &str,
    refs: bool,
) -> Result<Tampered, crate::workspace::GitError> {
    let mut said = if refs {
        tree.undo_git_changes(before, owned, label)?
    } else {
        Vec::new()
    };
    said.extend(
        tree.undo_tracked_changes()?
            .into_iter()
            .map(|f| format!("changed {f}")),
    );
    Ok(said)
}

/// The crash reason for a run that tampered.
pub(crate) fn tamper_reason(tampered: &Tampered) -> String {
    format!("the run {} (undone)", tampered.join(", "))
}

impl Session<'_> {}
