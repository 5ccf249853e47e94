//! `autoresearch merge` refuses, changing nothing, when the tree has changes, when a session
//! holds the repository, and when the session kept nothing.

#[path = "fixtures/report_cli/session.rs"]
mod session;

use autoresearch::experiment::Status;
use session::*;
use std::path::Path;

fn merge(dir: &Path) -> (Option<i32>, String) {
    let out = bin()
        .args(["merge", "--yes", "--repo"])
        .arg(dir)
        .output()
        .unwrap();
    let (o, e) = out_text(&out);
    if !out.status.success() {
        assert_eq!(e.lines().count(), 1, "one line: {o}{e}");
    }
    (out.status.code(), e)
}

fn unchanged(s: &Built, main_before: &str) {
    assert_eq!(git(s.path(), &["rev-parse", "main"]), main_before);
    assert_eq!(git(s.path(), &["branch", "--show-current"]), BRANCH);
}

#[test]
fn refuses_on_a_dirty_tree() {
    let s = build(&night());
    let main_before = git(s.path(), &["rev-parse", "main"]);
    std::fs::write(s.path().join("train.py"), "LR = 0.9  # by hand\n").unwrap();
    let (code, e) = merge(s.path());
    assert_eq!(code, Some(3), "{e}");
    assert!(
        e.contains("uncommitted changes in train.py") && e.contains("git stash"),
        "{e}"
    );
    unchanged(&s, &main_before);
    assert!(
        std::fs::read_to_string(s.path().join("train.py"))
            .unwrap()
            .contains("by hand"),
        "the user's edit survives"
    );
}

#[test]
fn untracked_files_do_not_count_as_dirty() {
    let s = build(&night());
    std::fs::write(s.path().join("scratch.txt"), "notes\n").unwrap();
    let out = bin()
        .args(["merge", "--yes", "--repo"])
        .arg(s.path())
        .output()
        .unwrap();
    let (o, e) = out_text(&out);
    assert!(out.status.success(), "{o}{e}");
    assert!(s.path().join("scratch.txt").exists());
}

#[test]
fn refuses_while_a_session_holds_the_repository() {
    let s = build(&night());
    let main_before = git(s.path(), &["rev-parse", "main"]);
    let lock =
        autoresearch::session::SessionLock::acquire(&s.path().join(".autoresearch")).unwrap();
    let (code, e) = merge(s.path());
    assert_eq!(code, Some(6), "{e}");
    assert!(e.contains("another autoresearch session"), "{e}");
    unchanged(&s, &main_before);
    drop(lock);
    let (code, e) = merge(s.path());
    assert_eq!(code, Some(0), "merges once the session is gone: {e}");
}

#[test]
fn refuses_when_nothing_was_kept() {
    let s = build(&[
        step(Status::Discard, Some(1.2), "LR 0.1 → 0.05", "LR = 0.05\n"),
        step(Status::Crash, None, "LR 0.1 → 1.6", "LR = 1.6\n"),
    ]);
    let main_before = git(s.path(), &["rev-parse", "main"]);
    let (code, e) = merge(s.path());
    assert_eq!(code, Some(1), "{e}");
    assert!(e.contains("kept nothing beyond its baseline"), "{e}");
    unchanged(&s, &main_before);
}
