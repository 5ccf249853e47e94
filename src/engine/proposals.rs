//! Proposals prepared ahead: proposers run on threads of their own (`[agent]
//! concurrency` of them, taking requests from one queue), on owned snapshots of the
//! session, so that they think while the workers train. Each works in a scratch worktree
//! of its own, put at the proposal's parent before each call: a CLI agent edits it, never
//! a tree that trains and never the user's checkout. Also: re-basing a proposal made on an
//! older best onto the current one.

use super::worker::Msg;
use crate::agent::{AgentError, CallRecord, Context, Proposal, Proposer, Usage};
use crate::config::Config;
use crate::experiment::ExperimentRecord;
use crate::platform::Platform;
use crate::workspace::{Repo, TreeWatch};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender};

/// Everything a proposer sees, owned, so that it can cross to the proposer's thread.
pub(crate) struct Snapshot {
    pub config: Config,
    pub platform: Platform,
    pub iteration: u64,
    /// The commit the proposal is made on (the best, or a crashed experiment to repair).
    pub commit: String,
    pub files: BTreeMap<PathBuf, String>,
    pub history: std::sync::Arc<Vec<ExperimentRecord>>,
    /// The states run (shared with the session, not copied).
    pub seen_done: std::sync::Arc<HashSet<String>>,
    /// The states running or prepared.
    pub seen_more: Vec<String>,
    /// Both, made once by the thread that reads the snapshot (not the coordinator's).
    pub seen: std::sync::OnceLock<HashSet<String>>,
    pub last_crash_tail: Option<String>,
    pub scratchpad: Option<String>,
    pub hypothesis: Option<String>,
    /// Experiments in flight and prepared when the snapshot was taken.
    pub in_flight: Vec<ExperimentRecord>,
}

impl Snapshot {
    /// What a proposer is given, with `repo` as the tree it sees.
    pub(crate) fn context<'a>(&'a self, repo: &'a Path) -> Context<'a> {
        Context {
            repo,
            config: &self.config,
            platform: &self.platform,
            iteration: self.iteration,
            files: &self.files,
            history: &self.history,
            best: crate::session::best_of(&self.history),
            baseline: crate::session::baseline_of(&self.history),
            seen: self.seen.get_or_init(|| {
                let mut all = (*self.seen_done).clone();
                all.extend(self.seen_more.iter().cloned());
                all
            }),
            last_crash_tail: self.last_crash_tail.as_deref(),
            scratchpad: self.scratchpad.as_deref(),
            hypothesis: self.hypothesis.as_deref(),
            in_flight: &self.in_flight,
        }
    }
}

/// What is asked of the proposer.
pub(crate) enum Ask {
    Propose,
    /// Repair the trivial crash of this experiment, whose traceback is given.
    Repair {
        crashed: Box<ExperimentRecord>,
        traceback: String,
    },
}

pub(crate) struct Request {
    pub ask: Ask,
    pub snapshot: Box<Snapshot>,
}

/// The proposer's answer to one request.
pub(crate) struct Reply {
    pub ask: Ask,
    /// The commit it was made on.
    pub parent: String,
    /// `None`: this proposer cannot repair.
    pub result: Option<Result<Proposal, AgentError>>,
    pub prompt: Option<String>,
    /// What the call cost, also when its answer was unusable.
    pub usage: Usage,
    /// The LLM calls it took, for the record.
    pub calls: Vec<CallRecord>,
    /// Who made it (a hybrid has two proposers).
    pub proposer: String,
    /// Lines for the user (see `Proposer::take_notes`).
    pub notes: Vec<String>,
}

/// Serves requests from the shared queue until the coordinator hangs up. `tree`: this
/// thread's scratch worktree; `project`: the project folder inside it (the same, unless
/// the project is a subfolder).
pub(crate) fn serve(
    mut proposer: Box<dyn Proposer>,
    repo_root: PathBuf,
    tree: PathBuf,
    project: PathBuf,
    requests: &Mutex<Receiver<Request>>,
    out: &Sender<Msg>,
) {
    let scratch = Repo::open_worktree(&tree);
    // Only a CLI agent edits its tree: for the others it stays at the best, and is not
    // checked out again while provably unchanged.
    let mut watch = scratch.as_ref().and_then(|r| TreeWatch::new(r, &[]).ok());
    // The lock is held only while this thread waits for a request, never during a call.
    let next = || requests.lock().ok()?.recv().ok();
    while let Some(Request { ask, snapshot }) = next() {
        let s = *snapshot;
        // The tree the agent sees: the proposal's parent, exactly.
        let at = scratch.as_ref().map(|r| match watch.as_mut() {
            Some(w) => w.checkout(r, &s.commit),
            None => r.checkout_detached(&s.commit),
        });
        let root: &Path = if matches!(at, Some(Ok(()))) {
            &project
        } else {
            // Only a CLI agent edits its tree; the others read files, which the checkout
            // has too (read-only files and program.md are never changed by a session).
            &repo_root
        };
        let ctx = s.context(root);
        crate::chaos::point("propose");
        // A panic in a proposer must not leave the coordinator waiting for an answer.
        let call = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &ask {
            Ask::Propose => Some(proposer.propose(&ctx)),
            Ask::Repair { traceback, .. } => proposer.repair(&ctx, traceback),
        }));
        let result = call.unwrap_or_else(|_| {
            Some(Err(AgentError::Fatal(
                "the proposer panicked (a bug in autoresearch: please report it)".into(),
            )))
        });
        let usage = match &result {
            Some(Ok(p)) => p.usage,
            _ => proposer.last_usage(),
        };
        let reply = Reply {
            ask,
            parent: s.commit.clone(),
            result,
            prompt: proposer.last_prompt(),
            usage,
            calls: proposer.take_calls(),
            proposer: proposer.name(),
            notes: proposer.take_notes(),
        };
        if out.send(Msg::Proposal(Box::new(reply))).is_err() {
            return;
        }
    }
}

/// `files` (made on `from`) re-based onto `onto`: each file's change from `from` merged
/// into `onto`'s text. `None` when a change conflicts with what `onto` changed.
pub(crate) fn rebase(
    repo: &Repo,
    files: &BTreeMap<PathBuf, String>,
    from: &str,
    onto: &str,
    scratch: &Path,
) -> Option<BTreeMap<PathBuf, String>> {
    let mut out = BTreeMap::new();
    for (path, theirs) in files {
        let base = repo.file_at(from, path).unwrap_or_default();
        let ours = repo.file_at(onto, path).unwrap_or_default();
        out.insert(
            path.clone(),
            repo.merge_text(&ours, &base, theirs, scratch)?,
        );
    }
    Some(out)
}
