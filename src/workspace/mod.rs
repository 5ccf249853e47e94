//! Git, through the real `git` binary: the research branch, experiment commits, resets to
//! the best commit, and the checks that the tree is where it must be. The only module that
//! runs git for the session; it never decides what to keep.

mod guard;
mod memo;
pub mod merge;
mod stamp;
mod watch;
mod worktree;

pub use guard::{GitState, Head};
pub use watch::{Armed, TreeWatch};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error(
        "{path} is not inside a git repository; run `git init && git add -A && git commit -m init` first"
    )]
    NotARepo { path: PathBuf },
    #[error(
        "the repository has no commits yet; commit train.py, prepare.py and program.md first (`git add -A && git commit -m init`)"
    )]
    NoCommits,
    #[error(
        "HEAD is detached; check out the branch the session should start from (`git switch main`)"
    )]
    Detached,
    #[error(
        "a {0} is in progress; finish or abort it (`git {0} --abort`) before starting a session"
    )]
    InProgress(&'static str),
    #[error(
        "the work tree has uncommitted changes in {files}; commit or stash them first (`git stash`)"
    )]
    Dirty { files: String },
    #[error(
        "branch {0} already exists but no session in this repository's journal has tag `{1}`; pick a new tag with `--tag`, or delete the branch (`git branch -D {0}`)"
    )]
    BranchExists(String, String),
    #[error("cannot run git: {0}; is git installed and on PATH?")]
    Spawn(#[source] std::io::Error),
    #[error("`git {args}` failed: {stderr}")]
    Failed { args: String, stderr: String },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The trimmed stdout of a finished git command, or `Failed` with its stderr; `args`
/// names the command in the error.
fn stdout_of(out: Output, args: impl FnOnce() -> String) -> Result<String, GitError> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    } else {
        Err(GitError::Failed {
            args: args(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Settings every git command of the tool runs with: no hooks, no fsmonitor daemon, no
/// pager, no background maintenance.
pub(crate) const GUARDED: &[&str] = &[
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.pager=cat",
    "-c",
    "maintenance.auto=false",
    "-c",
    "gc.auto=0",
];

/// A git work tree, or a project folder inside one.
#[derive(Debug, Clone)]
pub struct Repo {
    /// Where git runs and paths are relative to: the top of the work tree, or the project
    /// folder (the config's) when that is a subfolder of it.
    root: PathBuf,
    /// The project folder relative to the top, `sub/` style (empty at the top).
    prefix: String,
}

/// Identity used for experiment commits when the user has none configured.
const FALLBACK_NAME: &str = "autoresearch";
const FALLBACK_EMAIL: &str = "autoresearch@localhost";

impl Repo {
    /// Opens the repository containing `path`.
    pub fn open(path: &Path) -> Result<Repo, GitError> {
        let out = Command::new("git")
            .args(["rev-parse", "--show-toplevel"])
            .current_dir(path)
            .output()
            .map_err(GitError::Spawn)?;
        if !out.status.success() {
            return Err(GitError::NotARepo {
                path: path.to_path_buf(),
            });
        }
        let root = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Ok(Repo {
            root,
            prefix: String::new(),
        })
    }

    /// The project in folder `dir` of a repository: git runs there and paths are relative
    /// to it, also when it is a subfolder of the work tree.
    pub fn open_project(dir: &Path) -> Result<Repo, GitError> {
        let top = Repo::open(dir)?;
        let prefix = Repo {
            root: dir.to_path_buf(),
            prefix: String::new(),
        }
        .git(&["rev-parse", "--show-prefix"])?;
        // (`join("")` would add a trailing slash, and the root names the session.)
        let root = if prefix.is_empty() {
            top.root
        } else {
            top.root.join(prefix.trim_end_matches('/'))
        };
        Ok(Repo { root, prefix })
    }

    /// The project folder when `path` holds one (a config or the tool's state), else the
    /// top of the repository `path` is in: where `status`, `summary` and `merge` look.
    pub fn find_project(path: &Path) -> Result<Repo, GitError> {
        if path.join(".autoresearch").is_dir() || path.join("autoresearch.toml").is_file() {
            Repo::open_project(path)
        } else {
            Repo::open(path)
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The project folder relative to the top of the work tree (`sub/`, or empty).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("git");
        // No git command of the tool runs code from the repository's config or hooks: a
        // training run or an agent that wrote `core.fsmonitor` or a hook into `.git` must
        // not get it executed by us (the user's hooks are not ours to run either).
        c.args(GUARDED).args(args).current_dir(&self.root);
        c.env("GIT_TERMINAL_PROMPT", "0");
        c
    }

    fn output(&self, args: &[&str]) -> Result<Output, GitError> {
        self.command(args).output().map_err(GitError::Spawn)
    }

    /// Runs git and returns trimmed stdout, or a `Failed` error with stderr.
    pub fn git(&self, args: &[&str]) -> Result<String, GitError> {
        stdout_of(self.output(args)?, || args.join(" "))
    }

    /// True when git exits 0.
    fn ok(&self, args: &[&str]) -> Result<bool, GitError> {
        Ok(self.output(args)?.status.success())
    }

    pub fn head(&self) -> Result<String, GitError> {
        self.git(&["rev-parse", "--verify", "HEAD"])
            .map_err(|_| GitError::NoCommits)
    }

    /// The checked-out branch, or `Detached`.
    pub fn current_branch(&self) -> Result<String, GitError> {
        self.head()?;
        self.git(&["symbolic-ref", "--short", "-q", "HEAD"])
            .map_err(|_| GitError::Detached)
    }

    pub fn branch_exists(&self, name: &str) -> Result<bool, GitError> {
        self.ok(&["rev-parse", "--verify", "-q", &format!("refs/heads/{name}")])
    }

    pub fn git_path(&self, name: &str) -> Result<PathBuf, GitError> {
        let p = self.git(&["rev-parse", "--git-path", name])?;
        let p = PathBuf::from(p);
        Ok(if p.is_absolute() {
            p
        } else {
            self.root.join(p)
        })
    }

    /// Refuses while a rebase, merge, cherry-pick, revert or bisect is half done.
    pub fn check_no_operation_in_progress(&self) -> Result<(), GitError> {
        for (marker, what) in [
            ("rebase-merge", "rebase"),
            ("rebase-apply", "rebase"),
            ("MERGE_HEAD", "merge"),
            ("CHERRY_PICK_HEAD", "cherry-pick"),
            ("REVERT_HEAD", "revert"),
            ("BISECT_LOG", "bisect"),
        ] {
            if self.git_path(marker)?.exists() {
                return Err(GitError::InProgress(what));
            }
        }
        Ok(())
    }

    /// Tracked files with changes (untracked files are the user's business).
    pub fn dirty_files(&self) -> Result<Vec<String>, GitError> {
        let out = self.git(&["status", "--porcelain=v1", "--untracked-files=no", "-z"])?;
        Ok(out
            .split('\0')
            .filter(|l| l.len() > 3)
            .map(|l| l[3..].to_string())
            .collect())
    }

    pub fn ensure_clean(&self) -> Result<(), GitError> {
        let dirty = self.dirty_files()?;
        if dirty.is_empty() {
            Ok(())
        } else {
            Err(GitError::Dirty {
                files: dirty.join(", "),
            })
        }
    }

    pub fn checkout(&self, branch: &str) -> Result<(), GitError> {
        self.git(&["switch", "-q", branch]).map(drop)
    }

    /// Adds patterns to `.git/info/exclude` (once each) so the tool's own files never
    /// show up as changes or get committed.
    pub fn exclude(&self, patterns: &[&str]) -> Result<(), GitError> {
        let path = self.git_path("info/exclude")?;
        let existing = std::fs::read_to_string(&path).unwrap_or_default();
        let missing: Vec<&str> = patterns
            .iter()
            .copied()
            .filter(|p| !existing.lines().any(|l| l.trim() == *p))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut text = existing;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str("# autoresearch\n");
        for p in missing {
            text.push_str(p);
            text.push('\n');
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| GitError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| GitError::Io { path, source })
    }

    /// Is a user identity configured? If not, experiment commits use a fallback one.
    fn has_identity(&self) -> bool {
        memo::identity(&self.root, || {
            self.git(&["config", "user.email"])
                .is_ok_and(|s| !s.is_empty())
                && self
                    .git(&["config", "user.name"])
                    .is_ok_and(|s| !s.is_empty())
        })
    }

    /// A git command that may create commits: no hooks, no signing, and an identity even
    /// when the user has none configured.
    pub(crate) fn committing(&self, args: &[&str]) -> Command {
        // `git commit` may detach `git maintenance`/`gc --auto`: a grandchild re-parented
        // to our subreaper that nobody reaps (a zombie per experiment), and work that
        // competes with training. An experiment commit needs none of it.
        // (`command` adds the hook, fsmonitor and maintenance settings.)
        let mut full = vec!["-c", "commit.gpgsign=false"];
        full.extend_from_slice(args);
        let mut c = self.command(&full);
        if !self.has_identity() {
            for (k, v) in [
                ("GIT_AUTHOR_NAME", FALLBACK_NAME),
                ("GIT_AUTHOR_EMAIL", FALLBACK_EMAIL),
                ("GIT_COMMITTER_NAME", FALLBACK_NAME),
                ("GIT_COMMITTER_EMAIL", FALLBACK_EMAIL),
            ] {
                c.env(k, v);
            }
        }
        c
    }

    /// A file's exact text at `commit`, or `None` when the commit (a discarded experiment's,
    /// pruned by `git gc`), the file or valid UTF-8 is not there.
    pub fn file_at(&self, commit: &str, path: &Path) -> Option<String> {
        memo::text_at(&self.root, commit, path, || {
            // `./`: relative to the project folder, not the top of the repository.
            let spec = format!("{commit}:./{}", path.to_string_lossy().replace('\\', "/"));
            let out = self.output(&["show", &spec]).ok()?;
            if !out.status.success() {
                return None;
            }
            String::from_utf8(out.stdout).ok()
        })
    }

    /// Short sha.
    pub fn short(&self, commit: &str) -> String {
        commit.chars().take(7).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `git commit -qam msg` with a test identity.
    pub(crate) fn commit_all(repo: &Repo, msg: &str) {
        repo.git(&[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qam",
            msg,
        ])
        .unwrap();
    }

    pub(crate) fn init_repo() -> (tempfile::TempDir, Repo) {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let ok = Command::new("git")
                .args(args)
                .current_dir(dir.path())
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@t")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@t")
                .status()
                .unwrap()
                .success();
            assert!(ok, "git {args:?}");
        };
        run(&["init", "-q", "-b", "main"]);
        std::fs::write(dir.path().join("train.py"), "LR = 0.1\n").unwrap();
        run(&["add", "-A"]);
        run(&["commit", "-q", "-m", "init"]);
        let repo = Repo::open(dir.path()).unwrap();
        (dir, repo)
    }

    #[test]
    fn dirty_detection_and_branches() {
        let (dir, repo) = init_repo();
        assert_eq!(repo.current_branch().unwrap(), "main");
        let base = repo.head().unwrap();
        repo.create_branch("autoresearch/t", &base).unwrap();
        std::fs::write(dir.path().join("train.py"), "LR = 0.2\n").unwrap();
        assert_eq!(repo.dirty_files().unwrap(), vec!["train.py".to_string()]);
        assert!(repo.ensure_clean().is_err());
        assert!(repo.branch_exists("autoresearch/t").unwrap());
        assert!(!repo.branch_exists("autoresearch/u").unwrap());
        assert_eq!(repo.current_branch().unwrap(), "main");
    }

    #[test]
    fn exclude_is_idempotent() {
        let (_dir, repo) = init_repo();
        repo.exclude(&["results.tsv", ".autoresearch/"]).unwrap();
        repo.exclude(&["results.tsv", ".autoresearch/"]).unwrap();
        let text = std::fs::read_to_string(repo.git_path("info/exclude").unwrap()).unwrap();
        assert_eq!(text.matches("results.tsv").count(), 1);
    }

    #[test]
    fn not_a_repo_and_no_commits_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = Repo::open(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("not inside a git repository") && e.contains("git init"),
            "{e}"
        );
        Command::new("git")
            .args(["init", "-q"])
            .current_dir(dir.path())
            .status()
            .unwrap();
        let repo = Repo::open(dir.path()).unwrap();
        assert!(matches!(repo.current_branch(), Err(GitError::NoCommits)));
    }
}
