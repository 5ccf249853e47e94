//! The `command` backend with fake CLI agents (sh scripts) in real temp git repos: the
//! editable changes are the proposal, everything else is restored, the tree ends clean.

mod llm_support;

use autoresearch::agent::llm::LlmProposer;
use autoresearch::agent::{AgentError, Proposal, Proposer};
use autoresearch::config::AgentBackend;
use autoresearch::experiment::Category;
use llm_support::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/llm")
        .join(name);
    p.to_string_lossy().into_owned()
}

fn proposer(command: String, timeout: Duration) -> (tempfile::TempDir, World, LlmProposer) {
    let repo = repo();
    let mut a = agent(AgentBackend::Command, "unused");
    a.command = Some(command);
    a.timeout = Some(timeout);
    let cfg = config(a);
    let p = LlmProposer::with_key(&cfg.agent, None).unwrap();
    let w = World::new(repo.path(), cfg);
    (repo, w, p)
}

fn assert_pristine(repo: &Path) {
    assert_eq!(
        git(repo, &["status", "--porcelain", "--untracked-files=all"]),
        ""
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("train.py")).unwrap(),
        TRAIN
    );
    assert_eq!(git(repo, &["rev-list", "--count", "HEAD"]).trim(), "1");
}

fn invalid(r: Result<Proposal, AgentError>) -> String {
    match r {
        Err(AgentError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn agent_edit_becomes_the_proposal_and_the_tree_is_restored() {
    let copy = tempfile::NamedTempFile::new().unwrap();
    let cmd = format!(
        "PROMPT_COPY={} sh {}",
        copy.path().display(),
        fixture("agent_edit.sh")
    );
    let (repo, w, mut p) = proposer(cmd, Duration::from_secs(30));
    assert_eq!(p.name(), "command:sh");
    let prop = p.propose(&w.ctx()).unwrap();
    assert_eq!(prop.description, "raise LR 0.04 -> 0.08");
    assert_eq!(prop.category, Category::Optimizer);
    assert_eq!(prop.changes.len(), 1);
    assert_eq!(prop.changes[0].path, PathBuf::from("train.py"));
    assert_eq!(prop.changes[0].contents, TRAIN.replace("0.04", "0.08"));
    assert_pristine(repo.path());
    // The gitignored file the agent wrote is left alone.
    assert!(repo.path().join("agent.log").exists());
    // The prompt arrived on stdin, asking for in-place edits.
    let prompt = std::fs::read_to_string(copy.path()).unwrap();
    assert!(prompt.contains("editing the editable files"), "{prompt}");
    assert!(prompt.contains("LR = 0.04"));
}

#[test]
fn prompt_file_placeholder_receives_the_prompt() {
    let copy = tempfile::NamedTempFile::new().unwrap();
    let cmd = format!(
        "PROMPT_COPY={} sh {} {{prompt_file}}",
        copy.path().display(),
        fixture("agent_edit.sh")
    );
    let (repo, w, mut p) = proposer(cmd, Duration::from_secs(30));
    p.propose(&w.ctx()).unwrap();
    let prompt = std::fs::read_to_string(copy.path()).unwrap();
    assert!(
        prompt.contains("Make val_bpb go down"),
        "program.md reached the agent"
    );
    assert_pristine(repo.path());
}

#[test]
fn touching_prepare_py_is_invalid_and_everything_is_restored() {
    let (repo, w, mut p) = proposer(
        format!("sh {}", fixture("agent_forbidden.sh")),
        Duration::from_secs(30),
    );
    let m = invalid(p.propose(&w.ctx()));
    assert!(m.contains("prepare.py"), "{m}");
    assert!(m.contains("notes/ideas.txt"), "{m}");
    assert!(
        !m.contains("train.py"),
        "the editable file is not a violation: {m}"
    );
    assert_pristine(repo.path());
    assert_eq!(
        std::fs::read_to_string(repo.path().join("prepare.py")).unwrap(),
        "DATA = 'tiny'\nSEQ_LEN = 256\n"
    );
    assert!(!repo.path().join("notes/ideas.txt").exists());
}

#[test]
fn an_agent_commit_is_undone_but_its_change_counts() {
    let (repo, w, mut p) = proposer(
        format!("sh {}", fixture("agent_commit.sh")),
        Duration::from_secs(30),
    );
    let prop = p.propose(&w.ctx()).unwrap();
    assert_eq!(prop.changes[0].contents, TRAIN.replace("64", "32"));
    // No DESCRIPTION line: the diff describes it.
    assert_eq!(prop.description, "edit train.py: +1 -1 lines");
    assert_eq!(prop.category, Category::Other);
    assert_pristine(repo.path());
}

#[test]
fn a_hanging_agent_is_stopped_at_its_timeout() {
    let (repo, w, mut p) = proposer(
        format!("sh {}", fixture("agent_hang.sh")),
        Duration::from_millis(500),
    );
    let t = Instant::now();
    match p.propose(&w.ctx()) {
        Err(AgentError::Transient(m)) => assert!(m.contains("timeout"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(20));
    assert_pristine(repo.path());
}

#[test]
fn an_idle_or_failing_agent_is_invalid_and_a_missing_one_fatal() {
    let (repo, w, mut p) = proposer(
        format!("sh {}", fixture("agent_idle.sh")),
        Duration::from_secs(30),
    );
    assert!(invalid(p.propose(&w.ctx())).contains("changes nothing"));
    let (_r, w2, mut p2) = proposer(
        format!("sh {} 3", fixture("agent_idle.sh")),
        Duration::from_secs(30),
    );
    let m = invalid(p2.propose(&w2.ctx()));
    assert!(m.contains("failed") && m.contains("could not think"), "{m}");
    let (_r, w3, mut p3) = proposer("no-such-agent-xyz -p".into(), Duration::from_secs(30));
    assert!(matches!(p3.propose(&w3.ctx()), Err(AgentError::Fatal(_))));
    assert_pristine(repo.path());
}

#[test]
fn a_dirty_tree_is_refused_before_the_agent_runs() {
    let (repo, w, mut p) = proposer(
        format!("sh {}", fixture("agent_edit.sh")),
        Duration::from_secs(30),
    );
    std::fs::write(repo.path().join("train.py"), "changed by hand\n").unwrap();
    assert!(matches!(p.propose(&w.ctx()), Err(AgentError::Fatal(m)) if m.contains("uncommitted")));
    assert_eq!(
        std::fs::read_to_string(repo.path().join("train.py")).unwrap(),
        "changed by hand\n"
    );
}
