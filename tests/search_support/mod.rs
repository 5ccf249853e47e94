//! Shared helpers for the search proposer's tests: a hand-built Config and a tiny session
//! that applies proposals the way the real loop does (keep → files change; every run state
//! is remembered as seen).
#![allow(dead_code)]

use autoresearch::agent::search::SearchProposer;
use autoresearch::agent::{AgentError, Context, Proposal, Proposer, state_hash};
use autoresearch::config::{AgentConfig, Config, DecisionConfig, MetricSpec, Scope};
use autoresearch::experiment::{Category, Direction, ExperimentRecord, Status};
use autoresearch::platform::{Accelerator, Platform};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn config(scope: Scope, editable: &[&str]) -> Config {
    Config {
        source: None,
        editable: editable.iter().map(PathBuf::from).collect(),
        read_only: vec![],
        command: "python train.py".into(),
        budget: Duration::from_secs(300),
        timeout: Duration::from_secs(660),
        metric: MetricSpec {
            name: "val_bpb".into(),
            direction: Direction::Minimize,
            regex: None,
            memory_key: "peak_vram_mb".into(),
        },
        max_iterations: None,
        scope,
        tag: "test".into(),
        results: "results.tsv".into(),
        program: "program.md".into(),
        report_every: 10,
        agent: AgentConfig::default(),
        decision: DecisionConfig::default(),
        sandbox: Default::default(),
        executor: Default::default(),
        prune: Default::default(),
    }
}

pub fn record(iteration: u64, description: &str, status: Status, hash: &str) -> ExperimentRecord {
    ExperimentRecord {
        id: iteration as i64 + 1,
        iteration,
        attempt: 1,
        parent: String::new(),
        commit: format!("c{iteration}"),
        status,
        metric: Some(1.0),
        metrics: BTreeMap::new(),
        memory_gb: None,
        description: description.into(),
        category: Category::Hyperparameters,
        proposer: "search".into(),
        reason: String::new(),
        log_path: None,
        started_at: "2025-01-01T00:00:00Z".into(),
        finished_at: None,
        duration_s: None,
        state_hash: hash.into(),
    }
}

/// A session in memory: the best files, the history and the seen states.
pub struct Session {
    pub config: Config,
    pub platform: Platform,
    pub files: BTreeMap<PathBuf, String>,
    pub history: Vec<ExperimentRecord>,
    pub seen: HashSet<String>,
}

impl Session {
    /// One editable `train.py` holding `text`, with its baseline already run.
    pub fn new(text: &str, scope: Scope) -> Session {
        Session::with_files(&[("train.py", text)], scope)
    }

    pub fn with_files(files: &[(&str, &str)], scope: Scope) -> Session {
        let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
        let files: BTreeMap<PathBuf, String> = files
            .iter()
            .map(|(n, t)| (PathBuf::from(n), t.to_string()))
            .collect();
        let hash = state_hash(&files);
        Session {
            config: config(scope, &names),
            platform: Platform::with(Accelerator::Cpu, vec![], 2),
            history: vec![record(0, "baseline", Status::Keep, &hash)],
            seen: HashSet::from([hash]),
            files,
        }
    }

    pub fn propose(&self, p: &mut SearchProposer) -> Result<Proposal, AgentError> {
        let ctx = Context {
            repo: Path::new("."),
            config: &self.config,
            platform: &self.platform,
            iteration: self.history.len() as u64,
            files: &self.files,
            history: &self.history,
            best: self.history.iter().rev().find(|r| r.status == Status::Keep),
            baseline: self.history.first(),
            seen: &self.seen,
            last_crash_tail: None,
            scratchpad: None,
            hypothesis: None,
            in_flight: &[],
        };
        p.propose(&ctx)
    }

    /// Records `proposal` as run with `status`, the way the loop would.
    pub fn apply(&mut self, proposal: &Proposal, status: Status) {
        let mut state = self.files.clone();
        for c in &proposal.changes {
            state.insert(c.path.clone(), c.contents.clone());
        }
        let hash = state_hash(&state);
        self.seen.insert(hash.clone());
        let n = self.history.len() as u64;
        self.history
            .push(record(n, &proposal.description, status, &hash));
        if status == Status::Keep {
            self.files = state;
        }
    }

    /// Proposes and applies; returns the description.
    pub fn step(&mut self, p: &mut SearchProposer, status: Status) -> String {
        let proposal = self.propose(p).expect("a proposal");
        self.apply(&proposal, status);
        proposal.description
    }

    pub fn text(&self) -> &str {
        &self.files[Path::new("train.py")]
    }
}

pub fn fixture() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/search/train.py"),
    )
    .expect("fixture")
}
