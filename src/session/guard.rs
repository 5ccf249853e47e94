//! How a run that tampered is recorded: whatever the sandbox could not prevent is caught
//! right after the run by the worker (`workspace::watch`: refs, HEAD, the git config and
//! the tracked tree compared with what they were when the run started, any change undone
//! exactly); what it did is named here, and the run is recorded as a crash with that
//! reason.

/// What a run did that it must not, already undone ("changed prepare.py", "moved HEAD to
/// refs/heads/main"). Empty: nothing.
pub(crate) type Tampered = Vec<String>;

/// The crash reason for a run that tampered.
pub(crate) fn tamper_reason(tampered: &Tampered) -> String {
    format!("the run {} (undone)", tampered.join(", "))
}
