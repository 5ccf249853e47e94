//! A CLI agent that reaches for git, black-box: making a branch and moving its HEAD, moving `main`, or
//! planting a git config must not make the tool move the user's branches. Every ref, HEAD
//! and the git config are put back right after the call, the attempt is rejected with what
//! it did, and the next, honest proposal is kept. Rows of docs/bad-inputs.md.

mod common;
mod llm_session_support;

use common::{dirty, git, text};
use llm_session_support::*;
use std::path::Path;

/// An agent whose first call does `first` (shell) and edits train.py, and whose second
/// call only edits train.py (LR 0.1 -> 0.2).
fn agent(state: &Path, first: &str) -> String {
    let script = state.join("agent.sh");
    std::fs::write(
        &script,
        format!(
            "cat > /dev/null\nn=$(cat '{calls}' 2>/dev/null || echo 0)\necho $((n + 1)) > '{calls}'\nif [ \"$n\" = 0 ]; then\n  {first}\n  sed -i 's/^LR = 0.1$/LR = 0.3/' train.py\n  echo 'DESCRIPTION: sneaky'\nelse\n  sed -i 's/^LR = 0.1$/LR = 0.2/' train.py\n  echo 'DESCRIPTION: raise LR 0.1 -> 0.2'\nfi\n",
            calls = state.join("calls").display()
        ),
    )
    .unwrap();
    format!(
        "[agent]\nbackend = \"command\"\ncommand = \"sh '{}'\"\ntimeout = \"60s\"\ntuner = \"off\"\nahead = 0\n",
        script.display()
    )
}

#[track_caller]
fn rejected_then_kept(first: &str, says: &str) -> tempfile::TempDir {
    let state = tempfile::tempdir().unwrap();
    let dir = repo_with(&agent(state.path(), first));
    let main = git(dir.path(), &["rev-parse", "main"]);
    let config = std::fs::read(dir.path().join(".git/config")).unwrap();
    let out = run_n(dir.path(), 1, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = rows(dir.path());
    assert_eq!(
        shape(&rows),
        [(0, 1, "keep"), (1, 1, "rejected"), (2, 1, "keep")],
        "{rows:#?}"
    );
    assert!(rows[1].reason.contains(says), "{:?}", rows[1]);
    assert!(rows[1].reason.contains("undone"), "{:?}", rows[1]);
    assert_eq!(git(dir.path(), &["rev-parse", "main"]), main, "main moved");
    assert_checkout_untouched(dir.path());
    assert_eq!(best_commit(dir.path(), false), rows[2].commit);
    assert_eq!(dirty(dir.path()), "");
    assert_eq!(
        std::fs::read(dir.path().join(".git/config")).unwrap(),
        config
    );
    dir
}

#[test]
fn an_agent_that_makes_a_branch_and_moves_its_head_is_undone() {
    // `main` is the user's checkout, so git refuses it to the agent's scratch worktree; the
    // agent can still make a branch of its own and move its HEAD anywhere.
    let dir = rejected_then_kept(
        "git checkout -q -b evil && git checkout -q --detach main",
        "created refs/heads/evil",
    );
    assert_eq!(git(dir.path(), &["branch", "--list", "evil"]), "");
}

#[test]
fn an_agent_that_moves_main_is_undone() {
    let dir = rejected_then_kept(
        "git -c user.name=x -c user.email=x@x commit -q --allow-empty -m evil && git update-ref refs/heads/main HEAD",
        "changed refs/heads/main",
    );
    let kept = git(
        dir.path(),
        &[
            "for-each-ref",
            "--format=%(refname)",
            "refs/autoresearch/quarantine/",
        ],
    );
    assert!(kept.contains("agent/heads/main"), "{kept}");
}

#[test]
fn an_agent_that_plants_git_config_is_undone() {
    rejected_then_kept(
        "git config core.fsmonitor 'touch /tmp/autoresearch-agent-pwned'",
        "changed .git/config",
    );
    assert!(!Path::new("/tmp/autoresearch-agent-pwned").exists());
}
