//! End-to-end: `autoresearch run` with `[agent] backend = "command"` driving a fake CLI
//! coding agent (a shell script that edits files in the work tree). What it changes in
//! editable files is the proposal; anything else is restored and the attempt rejected.

mod common;
mod llm_session_support;

use common::{dirty, git, results, text};
use llm_session_support::*;

/// train.py importing prepare.py, as karpathy's does (Python then writes __pycache__/).
fn train_importing_prepare() -> String {
    train_py().replacen(
        "import sys\n",
        "import sys\nfrom prepare import TIME_BUDGET\n",
        1,
    )
}

#[test]
fn an_agent_editing_prepare_py_is_rejected_and_its_next_edit_kept() {
    let state = tempfile::tempdir().unwrap();
    let agent = format!(
        "[agent]\nbackend = \"command\"\ncommand = \"sh '{}' '{}'\"\ntimeout = \"60s\"\ntuner = \"off\"\nahead = 0\n",
        fixture("agent_seq.sh").display(),
        state.path().join("calls").display()
    );
    let dir = common::repo(&[
        ("train.py", &train_importing_prepare()),
        ("program.md", "# Program\nMake val_bpb go down.\n"),
        ("autoresearch.toml", &common::config(&agent)),
    ]);
    let prepare_before = file(dir.path(), "prepare.py");
    let out = run_n(dir.path(), 1, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = rows(dir.path());
    assert_eq!(
        shape(&rows),
        [(0, 1, "keep"), (1, 1, "rejected"), (2, 1, "keep")],
        "{rows:#?}"
    );
    assert!(
        rows[1]
            .reason
            .contains("outside the editable set: prepare.py"),
        "names prepare.py: {:?}",
        rows[1]
    );
    assert_eq!(rows[2].description, "raise LR 0.1 -> 0.2");
    assert_eq!(rows[2].metric, Some(1.04));
    assert!(rows[2].proposer.starts_with("command:"), "{:?}", rows[2]);
    assert_eq!(best_file(dir.path(), "prepare.py"), prepare_before);
    assert!(best_file(dir.path(), "train.py").starts_with("LR = 0.2\n"));
    assert_eq!(best_commit(dir.path(), false), rows[2].commit);
    assert_eq!(
        git(dir.path(), &["log", "-1", "--format=%s", BRANCH]),
        "exp: raise LR 0.1 -> 0.2"
    );
    assert_eq!(results(dir.path()).len(), 2);
    assert_eq!(dirty(dir.path()), "");
    // Training's own untracked output, in the worker's tree, survived the agent's runs (it
    // is not the agent's).
    assert!(
        dir.path()
            .join(".autoresearch/worktrees/w1/__pycache__")
            .is_dir(),
        "the scenario needs Python's bytecode cache in the tree"
    );
    // The agent was asked twice, and nothing it wrote is left behind.
    assert_eq!(file(state.path(), "calls").trim(), "2");
    // Both runs of the agent are on record like API calls, the refused one with why.
    let conn = rusqlite::Connection::open(dir.path().join(".autoresearch/journal.sqlite")).unwrap();
    let calls: Vec<(i64, String, String, String)> = conn
        .prepare("SELECT iteration, outcome, reason, prompt FROM llm_calls ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!((calls[0].0, calls[0].1.as_str()), (1, "rejected"));
    assert!(calls[0].2.contains("prepare.py"), "{calls:?}");
    assert_eq!((calls[1].0, calls[1].1.as_str()), (2, "used"));
    assert!(calls[1].3.contains("Make val_bpb go down."));
}
