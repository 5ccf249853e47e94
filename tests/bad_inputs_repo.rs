//! Repositories a session cannot start from, black-box through the binary: each refusal
//! is one line naming the fix, exit code 3 (6 for a held lock), and leaves the repository,
//! its branches and any half-done git operation exactly as they were. Rows of
//! docs/bad-inputs.md.

mod bad_inputs_support;

use bad_inputs_support::*;
use std::path::Path;
use std::process::Command;

/// Runs git where failure is the point (a conflicting rebase or merge).
fn git_may_fail(dir: &Path, args: &[&str]) -> bool {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .envs([
            ("GIT_AUTHOR_NAME", "t"),
            ("GIT_AUTHOR_EMAIL", "t@t"),
            ("GIT_COMMITTER_NAME", "t"),
            ("GIT_COMMITTER_EMAIL", "t@t"),
            ("GIT_EDITOR", "true"),
        ])
        .output()
        .unwrap()
        .status
        .success()
}

/// A fixture whose `other` branch and `main` change the same line of train.py.
fn diverged() -> tempfile::TempDir {
    let dir = fixture(Some(&config_with("", "")));
    let p = dir.path();
    git(p, &["switch", "-q", "-c", "other"]);
    std::fs::write(p.join("train.py"), "LR = 0.2\n").unwrap();
    git(p, &["commit", "-qam", "other"]);
    git(p, &["switch", "-q", "main"]);
    std::fs::write(p.join("train.py"), "LR = 0.3\n").unwrap();
    git(p, &["commit", "-qam", "main"]);
    dir
}

fn refused(dir: &Path, code: i32, parts: &[&str]) -> Refusal {
    let before = snapshot(dir);
    let r = refuse(dir, &[]);
    assert_eq!(r.code, code, "{r:?}");
    says(&r, parts);
    untouched(dir, &before);
    r
}

#[test]
fn not_a_git_repository() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.py"), TRAIN).unwrap();
    std::fs::write(dir.path().join("prepare.py"), PREPARE).unwrap();
    std::fs::write(dir.path().join("autoresearch.toml"), config_with("", "")).unwrap();
    refused(
        dir.path(),
        REPOSITORY,
        &["is not inside a git repository", "git init && git add -A"],
    );
    assert!(
        !dir.path().join(".git").exists(),
        "it must not init for the user"
    );
    assert!(!dir.path().join(".autoresearch").exists());
}

#[test]
fn repository_without_commits() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.py"), TRAIN).unwrap();
    std::fs::write(dir.path().join("prepare.py"), PREPARE).unwrap();
    std::fs::write(dir.path().join("autoresearch.toml"), config_with("", "")).unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    refused(
        dir.path(),
        REPOSITORY,
        &["no commits yet", "git add -A && git commit -m init"],
    );
}

#[test]
fn detached_head() {
    let dir = fixture(Some(&config_with("", "")));
    git(dir.path(), &["switch", "-q", "--detach"]);
    refused(
        dir.path(),
        REPOSITORY,
        &["HEAD is detached", "git switch main"],
    );
}

#[test]
fn uncommitted_changes() {
    let dir = fixture(Some(&config_with("", "")));
    std::fs::write(dir.path().join("train.py"), "LR = 0.5  # my unsaved idea\n").unwrap();
    refused(
        dir.path(),
        REPOSITORY,
        &["uncommitted changes in train.py", "git stash"],
    );
    // The user's edit is still there (snapshot compared train.py's bytes too).
    let text = std::fs::read_to_string(dir.path().join("train.py")).unwrap();
    assert!(text.contains("my unsaved idea"));
}

#[test]
fn staged_but_uncommitted_changes() {
    let dir = fixture(Some(&config_with("", "")));
    std::fs::write(dir.path().join("prepare.py"), "TIME_BUDGET = 1\n").unwrap();
    git(dir.path(), &["add", "prepare.py"]);
    refused(
        dir.path(),
        REPOSITORY,
        &[
            "uncommitted changes in prepare.py",
            "commit or stash them first",
        ],
    );
}

#[test]
fn session_branch_already_exists() {
    let dir = fixture(Some(&config_with("", "")));
    git(dir.path(), &["branch", "autoresearch/t"]);
    let r = refused(
        dir.path(),
        REPOSITORY,
        &[
            "branch autoresearch/t already exists",
            "pick a new tag with `--tag`",
            "git branch -D autoresearch/t",
        ],
    );
    // Why the message must not say "resume it with --tag t": with no journal session of
    // that tag, the same tag is refused the same way.
    let again = refuse(dir.path(), &["--tag", "t"]);
    assert_eq!(again.message, r.message);
}

#[test]
fn rebase_in_progress() {
    let dir = diverged();
    git(dir.path(), &["switch", "-q", "other"]);
    assert!(
        !git_may_fail(dir.path(), &["rebase", "main"]),
        "the rebase must stop on the conflict"
    );
    let marker = dir.path().join(".git/rebase-merge");
    assert!(marker.exists());
    refused(
        dir.path(),
        REPOSITORY,
        &["a rebase is in progress", "git rebase --abort"],
    );
    assert!(
        marker.exists(),
        "the user's rebase must survive the refusal"
    );
}

#[test]
fn merge_in_progress() {
    let dir = diverged();
    assert!(
        !git_may_fail(dir.path(), &["merge", "other"]),
        "the merge must stop on the conflict"
    );
    refused(
        dir.path(),
        REPOSITORY,
        &["a merge is in progress", "git merge --abort"],
    );
    assert!(dir.path().join(".git/MERGE_HEAD").exists());
}

#[test]
fn cherry_pick_in_progress() {
    let dir = diverged();
    assert!(!git_may_fail(dir.path(), &["cherry-pick", "other"]));
    refused(
        dir.path(),
        REPOSITORY,
        &["a cherry-pick is in progress", "git cherry-pick --abort"],
    );
}

#[test]
fn results_file_tracked_by_git() {
    let dir = fixture(Some(&config_with("", "")));
    let hand_run = "commit\tval_bpb\tmemory_gb\tstatus\tdescription\na1b2c3d\t0.997900\t44.0\tkeep\tbaseline\n";
    std::fs::write(dir.path().join("results.tsv"), hand_run).unwrap();
    git(dir.path(), &["add", "results.tsv"]);
    git(dir.path(), &["commit", "-qm", "results"]);
    let before = snapshot(dir.path());
    let r = refuse(dir.path(), &[]);
    assert_eq!(r.code, REPOSITORY, "{r:?}");
    says(
        &r,
        &[
            "results file results.tsv is tracked by git",
            "git rm --cached results.tsv",
        ],
    );
    assert_eq!(snapshot(dir.path()), before);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("results.tsv")).unwrap(),
        hand_run,
        "the hand-run results are kept"
    );
}

#[test]
fn another_session_holds_the_lock() {
    let dir = fixture(Some(&config_with("", "")));
    // The other session: the same flock a running `autoresearch run` holds.
    let lock =
        autoresearch::session::SessionLock::acquire(&dir.path().join(".autoresearch")).unwrap();
    let r = refuse(dir.path(), &[]);
    assert_eq!(r.code, LOCKED, "{r:?}");
    says(
        &r,
        &[
            "another autoresearch session",
            &format!("(pid {})", std::process::id()),
            "wait for it to finish or stop it",
        ],
    );
    let branches = git(dir.path(), &["branch", "--list"]);
    assert!(!branches.contains("autoresearch/"), "{branches}");
    assert_eq!(
        git(dir.path(), &["symbolic-ref", "--short", "HEAD"]),
        "main"
    );
    assert!(!dir.path().join("results.tsv").exists());
    drop(lock);
}
