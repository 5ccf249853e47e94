//! Black-box tests of `autoresearch merge`: squash and rebase on a real repository, checking
//! the base branch's history, the research branch left alone, and clean aborts on conflict.
//! Git runs with no identity configured, as on a fresh machine.

#[path = "fixtures/report_cli/session.rs"]
mod session;

use session::*;
use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

fn merge(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = bin()
        .arg("merge")
        .args(args)
        .arg("--repo")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn subjects(dir: &Path, range: &str) -> Vec<String> {
    git(dir, &["log", "--reverse", "--format=%s", range])
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn squash_lands_one_commit_listing_the_kept_experiments() {
    let s = build(&night());
    let research_tip = git(s.path(), &["rev-parse", BRANCH]);
    let out = merge(s.path(), &["--yes"], "");
    let (stdout, stderr) = out_text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    // Shown before merging: the kept commits and baseline → final.
    let short1 = &s.kept[0][..7];
    let short2 = &s.kept[1][..7];
    assert!(
        stdout.contains(&format!("- #1 {short1} 1.040000 LR 0.1 → 0.2")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("- #2 {short2} 1.000000 LR 0.2 → 0.4")),
        "{stdout}"
    );
    assert!(
        stdout.contains("val_bpb 1.090000 → 1.000000 (-0.090000, -8.26%)"),
        "{stdout}"
    );
    assert!(!stdout.contains("LR 0.4 → 0.8"), "discards are not listed");

    let range = format!("{}..main", s.base_commit);
    let new = subjects(s.path(), &range);
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(
        new[0].contains("val_bpb 1.090000 → 1.000000"),
        "subject carries the metric: {new:?}"
    );
    let body = git(s.path(), &["log", "-1", "--format=%B", "main"]);
    assert!(
        body.contains(&format!("- #1 {short1} 1.040000 LR 0.1 → 0.2")),
        "{body}"
    );
    assert!(
        body.contains(&format!("- #2 {short2} 1.000000 LR 0.2 → 0.4")),
        "{body}"
    );
    assert_eq!(
        git(s.path(), &["log", "-1", "--format=%an", "main"]),
        "autoresearch",
        "the fallback identity when none is configured"
    );
    // main holds the best code; the research branch is untouched; the user is on main.
    assert_eq!(git(s.path(), &["show", "main:train.py"]), "LR = 0.4");
    assert_eq!(git(s.path(), &["rev-parse", BRANCH]), research_tip);
    assert_eq!(git(s.path(), &["branch", "--show-current"]), "main");
    assert_eq!(
        git(s.path(), &["status", "--porcelain", "--untracked-files=no"]),
        ""
    );

    // A second merge finds nothing new to bring.
    let again = merge(s.path(), &["--yes"], "");
    let (o, e) = out_text(&again);
    assert!(!again.status.success());
    assert!(e.contains("already holds the result"), "{o}{e}");
}

#[test]
fn rebase_replays_only_the_kept_commits_in_order() {
    let s = build(&night());
    let research_tip = git(s.path(), &["rev-parse", BRANCH]);
    let out = merge(s.path(), &["--yes", "--rebase"], "");
    let (stdout, stderr) = out_text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let range = format!("{}..main", s.base_commit);
    assert_eq!(
        subjects(s.path(), &range),
        vec!["exp: LR 0.1 → 0.2", "exp: LR 0.2 → 0.4"]
    );
    assert_eq!(git(s.path(), &["show", "main:train.py"]), "LR = 0.4");
    assert_eq!(git(s.path(), &["rev-parse", BRANCH]), research_tip);
    assert!(stdout.contains("2 rebase commits"), "{stdout}");
}

#[test]
fn rebase_onto_a_base_branch_that_moved_keeps_both() {
    let s = build(&night());
    git(s.path(), &["switch", "-q", "main"]);
    std::fs::write(s.path().join("NOTES.md"), "meanwhile\n").unwrap();
    git(s.path(), &["add", "NOTES.md"]);
    git(s.path(), &["commit", "-q", "-m", "notes on main"]);
    let out = merge(s.path(), &["--yes", "--rebase"], "");
    let (o, e) = out_text(&out);
    assert!(out.status.success(), "{o}{e}");
    let range = format!("{}..main", s.base_commit);
    assert_eq!(
        subjects(s.path(), &range),
        vec!["notes on main", "exp: LR 0.1 → 0.2", "exp: LR 0.2 → 0.4"]
    );
}

#[test]
fn interactive_answers_choose_the_mode_or_decline() {
    let s = build(&night());
    let main_before = git(s.path(), &["rev-parse", "main"]);
    let out = merge(s.path(), &[], "n\n");
    let (o, e) = out_text(&out);
    assert!(out.status.success(), "{o}{e}");
    assert!(o.contains("Bring the best result (iteration 2"), "{o}");
    assert!(o.contains("Not merged."), "{o}");
    assert_eq!(git(s.path(), &["rev-parse", "main"]), main_before);

    let out = merge(s.path(), &[], "");
    let (o, e) = out_text(&out);
    assert!(!out.status.success(), "no answer is not a yes: {o}");
    assert!(e.contains("pass --yes"), "{e}");
    assert_eq!(git(s.path(), &["rev-parse", "main"]), main_before);

    let out = merge(s.path(), &[], "y\nr\n");
    let (o, e) = out_text(&out);
    assert!(out.status.success(), "{o}{e}");
    assert!(o.contains("Squash into one commit, or rebase"), "{o}");
    let range = format!("{}..main", s.base_commit);
    assert_eq!(subjects(s.path(), &range).len(), 2, "rebase chosen");
}

/// main changed the same line since the session started: both modes abort and leave
/// main, the checked-out branch and the tree as they were.
#[test]
fn conflicts_abort_cleanly_in_both_modes() {
    for mode in ["--squash", "--rebase"] {
        let s = build(&night());
        git(s.path(), &["switch", "-q", "main"]);
        std::fs::write(s.path().join("train.py"), "LR = 0.3\n").unwrap();
        git(s.path(), &["commit", "-q", "-am", "hand-tuned LR on main"]);
        git(s.path(), &["switch", "-q", BRANCH]);
        let main_before = git(s.path(), &["rev-parse", "main"]);
        let research_tip = git(s.path(), &["rev-parse", BRANCH]);

        let out = merge(s.path(), &["--yes", mode], "");
        let (o, e) = out_text(&out);
        assert_eq!(out.status.code(), Some(3), "{mode}: {o}{e}");
        assert_eq!(e.lines().count(), 1, "one line: {e}");
        assert!(
            e.contains("conflicts") && e.contains("main is unchanged"),
            "{mode}: {e}"
        );
        assert_eq!(git(s.path(), &["rev-parse", "main"]), main_before, "{mode}");
        assert_eq!(
            git(s.path(), &["rev-parse", BRANCH]),
            research_tip,
            "{mode}"
        );
        assert_eq!(
            git(s.path(), &["branch", "--show-current"]),
            BRANCH,
            "{mode}"
        );
        assert_eq!(git(s.path(), &["status", "--porcelain"]), "", "{mode}");
        assert!(
            !s.path().join(".git/CHERRY_PICK_HEAD").exists(),
            "{mode}: no half-done cherry-pick"
        );
    }
}
