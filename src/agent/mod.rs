//! Proposers: whatever suggests the next experiment. The `Proposer` trait, what it is
//! given (`Context`) and what it returns (`Proposal`). A proposer never runs commands and
//! never touches git; the session applies its proposal.

pub mod edits;
pub mod hybrid;
pub mod llm;
pub mod search;

use crate::config::Config;
use crate::experiment::{Category, ExperimentRecord};
use crate::platform::Platform;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// The new contents of one editable file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// Relative to the repo root.
    pub path: PathBuf,
    pub contents: String,
}

/// Token usage of one LLM call, for cost accounting.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost_usd: f64,
}

/// What became of one LLM call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// Its answer became the proposal.
    Used,
    /// It answered, but not usably (the reason says why).
    Rejected,
    /// No answer: the server failed or could not be reached.
    Failed,
}

impl CallOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Used => "used",
            CallOutcome::Rejected => "rejected",
            CallOutcome::Failed => "failed",
        }
    }
}

/// One LLM call as it happened, for the record: what was sent, what came back, how long
/// it took and what it cost. Never holds a key.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    /// `propose`, `ask-again` (blocks that did not apply), `shorter` (after the prompt
    /// overflowed the context), `repair`.
    pub purpose: String,
    /// RFC 3339.
    pub started_at: String,
    pub duration_s: f64,
    /// The system part and the conversation, as sent.
    pub prompt: String,
    /// The raw answer, when there was one.
    pub answer: Option<String>,
    /// The provider's word (`stop`, `length`, `end_turn`, `max_tokens`, …).
    pub finish_reason: Option<String>,
    pub usage: Usage,
    pub outcome: CallOutcome,
    /// Why it was rejected or failed; empty when used.
    pub reason: String,
}

/// How far an LLM call has come, for the terminal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallProgress {
    /// Pieces of text received so far (about one token each; 0 until the answer streams).
    pub tokens: u64,
    pub seconds: f64,
    /// The call ended: clear the progress line.
    pub done: bool,
}

/// Where call progress goes (the command line's; called from the proposer's thread).
pub type ProgressSink = std::sync::Arc<dyn Fn(&CallProgress) + Send + Sync>;

/// One proposed experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// One line, e.g. `MATRIX_LR 0.04 → 0.08`.
    pub description: String,
    pub category: Category,
    /// Full new contents of each changed file.
    pub changes: Vec<FileChange>,
    /// Updated working memory, when the proposer returned one.
    pub scratchpad: Option<String>,
    pub usage: Usage,
}

/// What a proposer sees.
pub struct Context<'a> {
    pub repo: &'a Path,
    pub config: &'a Config,
    pub platform: &'a Platform,
    /// 1-based number of the experiment being proposed.
    pub iteration: u64,
    /// Current contents of the editable files (at the best commit).
    pub files: &'a BTreeMap<PathBuf, String>,
    /// Every experiment so far, oldest first (the baseline included).
    pub history: &'a [ExperimentRecord],
    /// The current best (the baseline until something is kept).
    pub best: Option<&'a ExperimentRecord>,
    pub baseline: Option<&'a ExperimentRecord>,
    /// State hashes (see `state_hash`) of every file state already run.
    pub seen: &'a HashSet<String>,
    /// Tail of the last crashed run's log.
    pub last_crash_tail: Option<&'a str>,
    pub scratchpad: Option<&'a str>,
    /// The user's hypothesis (`run --hypothesis`), for the first proposals.
    pub hypothesis: Option<&'a str>,
    /// Experiments running or prepared while this one is proposed (with workers, or a
    /// proposal made while a run trains): their results are not known yet.
    pub in_flight: &'a [ExperimentRecord],
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Nothing left to propose (the search space is exhausted): the session ends cleanly.
    #[error("the proposer has nothing left to try: {0}")]
    Exhausted(String),
    /// The answer could not be used; the attempt is recorded as rejected and the loop goes on.
    #[error("unusable proposal: {0}")]
    Invalid(String),
    /// A failure that more iterations cannot fix (bad key, unknown model): stop the session.
    #[error("{0}")]
    Fatal(String),
    /// No answer from the LLM server (connection refused, DNS, timeout, 5xx or 429 after
    /// retries): not an unusable proposal. A few in a row stop the session.
    #[error("the LLM server did not answer: {0}")]
    Transient(String),
}

/// Anything that suggests the next experiment.
pub trait Proposer: Send {
    /// Short name recorded in the journal (e.g. `search`, `anthropic:claude-…`): the
    /// name of whoever made the last proposal (a hybrid has two).
    fn name(&self) -> String;
    fn propose(&mut self, ctx: &Context<'_>) -> Result<Proposal, AgentError>;

    /// Asks for a repair of a trivial crash (a typo, a missing import), given the crashed
    /// files in `ctx.files` and the traceback. `None`: this proposer cannot repair.
    fn repair(
        &mut self,
        _ctx: &Context<'_>,
        _traceback: &str,
    ) -> Option<Result<Proposal, AgentError>> {
        None
    }

    /// The last prompt sent, for saving beside the run (never contains a key).
    fn last_prompt(&self) -> Option<String> {
        None
    }

    /// Usage of the last `propose` or `repair` call, including calls whose answer was
    /// unusable (so that their cost still counts towards `max_cost_usd`).
    fn last_usage(&self) -> Usage {
        Usage::default()
    }

    /// A one-line note for the user at start (e.g. that costs cannot be estimated).
    fn note(&self) -> Option<String> {
        None
    }

    /// The start-up check, before the baseline runs: is the endpoint there, does it serve
    /// the model, is the key accepted? Returns notes for the user; an error names the fix.
    fn check(&mut self) -> Result<Vec<String>, AgentError> {
        Ok(Vec::new())
    }

    /// The calls made since the last time this was asked (oldest first), for the record.
    fn take_calls(&mut self) -> Vec<CallRecord> {
        Vec::new()
    }

    /// Lines for the user since the last time this was asked (that the LLM cannot be
    /// used and the tuner stands in, that it is back), each said once.
    fn take_notes(&mut self) -> Vec<String> {
        Vec::new()
    }

    /// From now on, abandon a call in progress when `cancel` is requested (a Ctrl-C does
    /// not wait for the answer), and show its progress to `progress`.
    fn watch(&mut self, _cancel: crate::runner::Cancel, _progress: Option<ProgressSink>) {}

    /// Another proposer like this one, for a call made at the same time as this one's
    /// (`[agent] concurrency`): the same backend, what was learned at the start-up check,
    /// the same watch, and a record of calls of its own. `None`: this proposer answers
    /// one request at a time.
    fn fork(&self) -> Option<Box<dyn Proposer>> {
        None
    }
}

/// The proposer `config` asks for: the built-in search, an LLM backend, or (the default
/// with an LLM backend, `[agent] tuner`) the LLM with the search beside it.
pub fn from_config(config: &crate::config::AgentConfig) -> Result<Box<dyn Proposer>, AgentError> {
    use crate::config::AgentBackend;
    let search = || search::SearchProposer::new(config.seed, config.patience);
    Ok(match config.backend {
        AgentBackend::Search => Box::new(search()),
        AgentBackend::Anthropic | AgentBackend::OpenAi | AgentBackend::Command => {
            let llm = Box::new(llm::LlmProposer::from_config(config)?);
            if config.has_tuner() {
                Box::new(hybrid::HybridProposer::new(llm, search()))
            } else {
                llm
            }
        }
    })
}

/// Hash of a set of file contents: identifies an experiment's code state.
pub fn state_hash(files: &BTreeMap<PathBuf, String>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (path, contents) in files {
        h.update(path.to_string_lossy().as_bytes());
        h.update([0]);
        h.update((contents.len() as u64).to_le_bytes());
        h.update(contents.as_bytes());
    }
    format!("{:x}", h.finalize())
}
