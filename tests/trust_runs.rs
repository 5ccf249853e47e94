//! Training scripts that attack the repository, black-box through the binary: on their
//! first experiment (LR no longer 0.1) they commit, switch branch, move the user's `main`,
//! edit prepare.py or train.py, plant a `core.fsmonitor` or delete the journal. Whatever
//! the sandbox lets through is caught right after the run: undone exactly (refs, HEAD,
//! config and tree as before), the run recorded as a crash that names what it did, and the
//! session goes on; a deleted journal stops it with every record saved. With one worker
//! and with two (`--workers 2`). The sandbox is off here (`mode = "none"`)
//! so that the check is what is tested. Rows of docs/bad-inputs.md.

mod common;

use common::*;
use std::path::Path;

/// A script that does `attack` (Python statements) on the first experiment only, and
/// otherwise prints a metric that makes LR 0.2 an improvement.
fn hostile(attack: &str) -> String {
    let indented: String = attack.lines().map(|l| format!("    {l}\n")).collect();
    train_py(&format!(
        "import subprocess\ndef sh(c):\n    subprocess.run(c, shell=True, check=False)\nif LR != 0.1:\n{indented}print(f'val_bpb: {{(LR - 0.4) ** 2 + 1:.6f}}')"
    ))
}

fn setup(attack: &str) -> tempfile::TempDir {
    repo(&[
        ("train.py", &hostile(attack)),
        ("prepare.py", PREPARE),
        (
            "autoresearch.toml",
            &config("\n[sandbox]\nmode = \"none\"\nnetwork = \"allow\""),
        ),
    ])
}

/// What must hold after any attack: main where it was, the research branch at the best
/// (the baseline: the attacked run is a crash), a clean tree, the attack named.
#[track_caller]
fn caught(dir: &Path, main_before: &str, args: &[&str], names: &str) -> Vec<Vec<String>> {
    let out = run(dir, args);
    assert!(out.status.success(), "{}", text(&out));
    let rows = results(dir);
    assert_eq!(rows[1][3], "crash", "{rows:?}");
    assert!(
        rows[1][4].contains("LR 0.1"),
        "the attacking experiment is the one blamed: {rows:?}"
    );
    let j = journal(dir);
    assert!(
        j[1].3.contains("the run ") && j[1].3.contains(names) && j[1].3.contains("(undone)"),
        "reason names {names:?}: {:?}",
        j[1]
    );
    assert_eq!(git(dir, &["rev-parse", "main"]), main_before, "main moved");
    assert_eq!(
        git(dir, &["rev-parse", "autoresearch/t"]),
        git(dir, &["rev-parse", "main"]),
        "the research branch is at the best (the baseline)"
    );
    assert_eq!(dirty(dir), "");
    assert_eq!(
        std::fs::read_to_string(dir.join("prepare.py")).unwrap(),
        PREPARE
    );
    assert!(survivors(dir).is_empty());
    rows
}

/// Runs the attack with one worker and with two; the user's checkout stays on main.
fn one_and_two_workers(attack: &str, names: &str) {
    for args in [&["-n", "1"][..], &["-n", "1", "--workers", "2"][..]] {
        let dir = setup(attack);
        let main = git(dir.path(), &["rev-parse", "main"]);
        caught(dir.path(), &main, args, names);
        assert_eq!(
            git(dir.path(), &["rev-parse", "--abbrev-ref", "HEAD"]),
            "main"
        );
    }
}

#[test]
fn a_run_that_commits_is_undone_and_recorded_as_a_crash() {
    // The run's worktree is detached: its commit moves HEAD there, not a branch.
    one_and_two_workers(
        "sh('git -c user.name=x -c user.email=x@x commit -q --allow-empty -m evil')",
        "moved HEAD to ",
    );
}

#[test]
fn a_run_that_moves_the_users_main_is_undone_and_the_value_kept_aside() {
    for args in [&["-n", "1"][..], &["-n", "1", "--workers", "2"][..]] {
        let dir = setup("sh('git update-ref refs/heads/main HEAD')");
        let main = git(dir.path(), &["rev-parse", "main"]);
        caught(dir.path(), &main, args, "changed refs/heads/main");
        // Nothing is lost: what the run wrote is kept where the user can look.
        let kept = git(
            dir.path(),
            &["for-each-ref", "refs/autoresearch/quarantine/"],
        );
        assert!(kept.contains("heads/main"), "{kept}");
    }
}

#[test]
fn a_run_that_switches_branch_is_put_back() {
    // `main` is checked out in the user's checkout, so git refuses to switch a worktree
    // to it; a run can still check out another commit or make a branch of its own.
    one_and_two_workers(
        "sh('git checkout -q -b evil && git checkout -q --detach main')",
        "moved HEAD to ",
    );
}

#[test]
fn a_run_that_edits_prepare_py_is_blamed_not_the_next_experiment() {
    one_and_two_workers(
        "open('prepare.py', 'a').write('TIME_BUDGET = 1\\n')",
        "changed prepare.py",
    );
}

#[test]
fn a_run_that_edits_its_own_train_py_is_caught() {
    one_and_two_workers(
        "open('train.py', 'a').write('# evil\\n')",
        "changed train.py",
    );
}

#[test]
fn a_planted_fsmonitor_is_removed_and_never_run_by_the_tool() {
    for args in [&["-n", "1"][..], &["-n", "1", "--workers", "2"][..]] {
        let marker = tempfile::tempdir().unwrap();
        let pwned = marker.path().join("pwned");
        let dir = setup(&format!(
            "sh(\"git config core.fsmonitor 'touch {}'\")\nsh(\"git config core.hooksPath .githooks\")",
            pwned.display()
        ));
        let config_before = std::fs::read(dir.path().join(".git/config")).unwrap();
        let main = git(dir.path(), &["rev-parse", "main"]);
        caught(dir.path(), &main, args, "changed .git/config");
        assert_eq!(
            std::fs::read(dir.path().join(".git/config")).unwrap(),
            config_before
        );
        assert!(!pwned.exists(), "the tool ran the planted fsmonitor");
    }
}

#[test]
fn a_run_that_deletes_the_journal_stops_the_session_with_every_record_saved() {
    for args in [&["-n", "3"][..], &["-n", "3", "--workers", "2"][..]] {
        // The journal of the repository, found from any worktree.
        let dir = setup(
            "import os\ngit = subprocess.run(['git', 'rev-parse', '--git-common-dir'], capture_output=True, text=True).stdout.strip()\ntop = os.path.dirname(os.path.abspath(git))\nos.remove(os.path.join(top, '.autoresearch', 'journal.sqlite'))",
        );
        let out = run(dir.path(), args);
        assert!(!out.status.success(), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("was deleted while the session ran")
                && stderr.contains("journal.rescued-"),
            "{}",
            text(&out)
        );
        let rescued: Vec<_> = std::fs::read_dir(dir.path().join(".autoresearch"))
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("journal.rescued-")
            })
            .collect();
        assert_eq!(rescued.len(), 1, "{}", text(&out));
        let conn = rusqlite::Connection::open(rescued[0].path()).unwrap();
        let baseline: String = conn
            .query_row(
                "SELECT status FROM experiments WHERE iteration = 0",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(baseline, "keep", "the baseline's record survived");
        assert_eq!(dirty(dir.path()), "");
        assert!(survivors(dir.path()).is_empty());
    }
}
