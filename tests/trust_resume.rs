//! Resuming never throws the user's work away, black-box: uncommitted edits in the
//! checkout are left as they are while the session goes on beside them; commits of the
//! user's on the research branch make `run` refuse (exit 3) with what it found and how to
//! go on, leaving them exactly as they were; a config whose metric, direction or
//! editable files differ from the session's refuses and suggests a new `--tag`. Rows of
//! docs/bad-inputs.md.

mod common;

use common::*;
use std::path::Path;

const QUADRATIC: &str = "value = (LR - 0.4) ** 2 + 1\nprint(f'val_bpb: {value:.6f}')";

fn session(args: &[&str]) -> tempfile::TempDir {
    let dir = repo(&[
        ("train.py", &train_py(QUADRATIC)),
        ("prepare.py", PREPARE),
        ("notes.py", "N = 1\n"),
        ("autoresearch.toml", &config("")),
    ]);
    let out = run(dir.path(), args);
    assert!(out.status.success(), "{}", text(&out));
    dir
}

/// Runs again and expects a one-line refusal with `code` that contains `parts`.
#[track_caller]
fn refused(dir: &Path, args: &[&str], code: i32, parts: &[&str]) {
    let tree = git(dir, &["status", "--porcelain"]);
    let refs = git(dir, &["for-each-ref"]);
    let train = std::fs::read(dir.join("train.py")).unwrap();
    let rows = journal(dir);
    let out = run(dir, args);
    assert_eq!(out.status.code(), Some(code), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{}", text(&out));
    for p in parts {
        assert!(lines[0].contains(p), "missing {p:?}: {}", lines[0]);
    }
    assert_eq!(git(dir, &["status", "--porcelain"]), tree);
    assert_eq!(git(dir, &["for-each-ref"]), refs);
    assert_eq!(std::fs::read(dir.join("train.py")).unwrap(), train);
    assert_eq!(journal(dir), rows, "the journal changed");
}

#[test]
fn uncommitted_edits_on_the_research_branch_are_not_discarded() {
    let dir = session(&["-n", "1"]);
    let p = dir.path();
    // The user looks at the best and starts an idea of their own, uncommitted.
    git(p, &["switch", "-q", "autoresearch/t"]);
    let mine = "LR = 0.25  # my own idea\n";
    std::fs::write(p.join("train.py"), mine).unwrap();
    let at = git(p, &["rev-parse", "HEAD"]);
    // The session goes on beside it: the checkout is detached at the same commit (so the
    // session may move its branch) and the edit is left exactly as it was.
    let out = run(p, &["-n", "1", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("detached it at the same commit"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_to_string(p.join("train.py")).unwrap(), mine);
    assert_eq!(git(p, &["rev-parse", "HEAD"]), at);
    assert_eq!(git(p, &["status", "--porcelain"]), "M train.py");
    assert_eq!(journal(p).len(), 3, "the baseline and two experiments");
}

#[test]
fn the_users_commits_on_the_research_branch_are_not_reset_away() {
    for args in [&["-n", "1"][..], &["-n", "1", "--workers", "2"][..]] {
        let dir = session(args);
        let p = dir.path();
        let back = git(p, &["rev-parse", "--abbrev-ref", "HEAD"]);
        git(p, &["switch", "-q", "autoresearch/t"]);
        std::fs::write(p.join("notes.py"), "N = 2\n").unwrap();
        git(p, &["commit", "-qam", "my own change"]);
        let mine = git(p, &["rev-parse", "HEAD"]);
        if back != "autoresearch/t" {
            git(p, &["switch", "-q", &back]);
        }
        refused(
            p,
            args,
            3,
            &[
                "1 commit(s) the session did not make",
                "my own change",
                "git branch my-work",
            ],
        );
        assert_eq!(git(p, &["rev-parse", "autoresearch/t"]), mine);
    }
}

#[test]
fn a_changed_metric_or_direction_refuses_and_suggests_a_new_tag() {
    let dir = session(&["-n", "1"]);
    let p = dir.path();
    let original = std::fs::read_to_string(p.join("autoresearch.toml")).unwrap();
    std::fs::write(
        p.join("autoresearch.toml"),
        original.replace("name = \"val_bpb\"", "name = \"val_loss\""),
    )
    .unwrap();
    refused(p, &["-n", "1"], 3, &["metric `val_loss`", "`--tag t-2`"]);
    std::fs::write(
        p.join("autoresearch.toml"),
        original.replace("direction = \"minimize\"", "direction = \"maximize\""),
    )
    .unwrap();
    refused(p, &["-n", "1"], 3, &["direction maximize", "`--tag t-2`"]);
    std::fs::write(
        p.join("autoresearch.toml"),
        original.replace(
            "editable = [\"train.py\"]",
            "editable = [\"train.py\", \"notes.py\"]",
        ),
    )
    .unwrap();
    refused(
        p,
        &["-n", "1"],
        3,
        &["editable files notes.py, train.py", "`--tag t-2`"],
    );
    // Put back, the session continues.
    std::fs::write(p.join("autoresearch.toml"), original).unwrap();
    let out = run(p, &["-n", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(journal(p).len(), 3);
}
