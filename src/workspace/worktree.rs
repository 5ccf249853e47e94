//! Worktrees and ref plumbing for the parallel engine: one detached worktree per worker
//! (and one scratch tree for a CLI agent) under `.autoresearch/worktrees/`, commits made
//! without touching any work tree (`commit-tree` on a temporary index), and the research
//! branch moved with a compare-and-swap `update-ref`. Never touches the user's checkout.

use super::{GitError, Repo, stdout_of};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Top-level entries of the checkout that are never linked into a worktree.
const NEVER_LINKED: &[&str] = &[".git", ".autoresearch"];

impl Repo {
    /// Creates `branch` at `at` without checking it out.
    pub fn create_branch(&self, branch: &str, at: &str) -> Result<(), GitError> {
        self.git(&["branch", "-q", branch, at]).map(drop)
    }

    /// The commit `branch` points at.
    pub fn branch_commit(&self, branch: &str) -> Result<String, GitError> {
        self.git(&[
            "rev-parse",
            "--verify",
            "-q",
            &format!("refs/heads/{branch}"),
        ])
    }

    /// Moves `branch` from `old` to `new`; fails (and moves nothing) when it is not at `old`.
    pub fn move_branch(&self, branch: &str, new: &str, old: &str) -> Result<(), GitError> {
        let name = format!("refs/heads/{branch}");
        self.git(&[
            "update-ref",
            "-m",
            "autoresearch: new best",
            &name,
            new,
            old,
        ])
        .map(drop)
    }

    /// A commit of `parent`'s tree with `changed` files replaced: no work tree, no hooks,
    /// no signing. Returns its sha. Files at the top of the repository (the usual case)
    /// take three git processes: a blob each, `mktree` on the parent's listing (remembered
    /// per parent) with the blobs in, `commit-tree`; others go through a temporary index.
    pub fn commit_tree(
        &self,
        parent: &str,
        changed: &BTreeMap<PathBuf, String>,
        message: &str,
        scratch: &Path,
    ) -> Result<String, GitError> {
        let tree = match self.tree_by_mktree(parent, changed)? {
            Some(tree) => tree,
            None => self.tree_by_index(parent, changed, scratch)?,
        };
        let out = self
            .committing(&["commit-tree", &tree, "-p", parent, "-m", message])
            .output()
            .map_err(GitError::Spawn)?;
        stdout_of(out, || format!("commit-tree -m {message:?}"))
    }

    /// The tree of `parent` with `changed` in, made by `git mktree` from the parent's
    /// top-level listing; `None` when a file is not at the top of the repository (or is
    /// there as something other than a file), which `mktree` cannot do in one level.
    fn tree_by_mktree(
        &self,
        parent: &str,
        changed: &BTreeMap<PathBuf, String>,
    ) -> Result<Option<String>, GitError> {
        let top = |p: &Path| {
            let name = p.to_string_lossy();
            self.prefix.is_empty()
                && !name.is_empty()
                && !name.contains(['/', '\\', '\t', '\n', '\0'])
                && name != "."
                && name != ".."
        };
        if !changed.keys().all(|p| top(p)) {
            return Ok(None);
        }
        let Some(listing) = super::memo::listing_at(&self.root, parent, || {
            self.git_raw(&["ls-tree", "-z", parent]).ok()
        }) else {
            return Ok(None);
        };
        // `<mode> <type> <sha>\t<name>`, one per NUL.
        let mut entries: BTreeMap<String, String> = BTreeMap::new();
        for e in listing.split('\0').filter(|e| !e.is_empty()) {
            let Some((meta, name)) = e.split_once('\t') else {
                return Ok(None);
            };
            entries.insert(name.to_string(), meta.to_string());
        }
        for (path, contents) in changed {
            let name = path.to_string_lossy().into_owned();
            let mode = match entries.get(&name) {
                Some(meta) => match meta.split(' ').collect::<Vec<_>>()[..] {
                    [mode, "blob", _] => mode.to_string(),
                    _ => return Ok(None),
                },
                None => "100644".to_string(),
            };
            let blob = self.hash_blob(contents)?;
            entries.insert(name, format!("{mode} blob {blob}"));
        }
        let input: String = entries
            .iter()
            .map(|(name, meta)| format!("{meta}\t{name}\0"))
            .collect();
        self.git_stdin(&["mktree", "-z"], input.as_bytes())
            .map(Some)
    }

    /// The tree of `parent` with `changed` in, made on a temporary index.
    fn tree_by_index(
        &self,
        parent: &str,
        changed: &BTreeMap<PathBuf, String>,
        scratch: &Path,
    ) -> Result<String, GitError> {
        std::fs::create_dir_all(scratch).map_err(|source| GitError::Io {
            path: scratch.to_path_buf(),
            source,
        })?;
        let index = scratch.join(format!("index-{}", std::process::id()));
        let _ = std::fs::remove_file(&index);
        let with_index = |args: &[&str]| -> Result<String, GitError> {
            let out = self
                .command(args)
                .env("GIT_INDEX_FILE", &index)
                .output()
                .map_err(GitError::Spawn)?;
            stdout_of(out, || args.join(" "))
        };
        with_index(&["read-tree", parent])?;
        for (path, contents) in changed {
            let blob = self.hash_blob(contents)?;
            let mode = self
                .mode_at(parent, path)
                .unwrap_or_else(|| "100644".into());
            // The index names files from the top of the repository.
            let name = format!(
                "{}{}",
                self.prefix,
                path.to_string_lossy().replace('\\', "/")
            );
            with_index(&[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("{mode},{blob},{name}"),
            ])?;
        }
        let tree = with_index(&["write-tree"]);
        let _ = std::fs::remove_file(&index);
        tree
    }

    /// Git's stdout, untrimmed (a `-z` listing ends in a NUL that matters).
    fn git_raw(&self, args: &[&str]) -> Result<String, GitError> {
        let out = self.output(args)?;
        if !out.status.success() {
            return Err(GitError::Failed {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        String::from_utf8(out.stdout).map_err(|_| GitError::Failed {
            args: args.join(" "),
            stderr: "the output is not UTF-8".into(),
        })
    }

    /// Runs git with `input` on its stdin; its trimmed stdout.
    fn git_stdin(&self, args: &[&str], input: &[u8]) -> Result<String, GitError> {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(GitError::Spawn)?;
        // Written from a thread: a child that answers before reading all of its input
        // must not leave us blocked on a full pipe.
        let mut stdin = child.stdin.take();
        let data = input.to_vec();
        let writer = std::thread::spawn(move || {
            if let Some(s) = stdin.as_mut() {
                let _ = s.write_all(&data);
            }
        });
        let out = child.wait_with_output().map_err(GitError::Spawn)?;
        let _ = writer.join();
        stdout_of(out, || args.join(" "))
    }

    fn hash_blob(&self, contents: &str) -> Result<String, GitError> {
        self.git_stdin(&["hash-object", "-w", "--stdin"], contents.as_bytes())
    }

    /// The file mode of `path` at `commit` (`100644`, `100755`), if it is there.
    fn mode_at(&self, commit: &str, path: &Path) -> Option<String> {
        let name = path.to_string_lossy().replace('\\', "/");
        let line = self.git(&["ls-tree", commit, "--", &name]).ok()?;
        line.split_whitespace().next().map(str::to_string)
    }

    /// The editable files' texts at `commit` (missing ones are left out).
    pub fn files_at(&self, commit: &str, paths: &[PathBuf]) -> BTreeMap<PathBuf, String> {
        paths
            .iter()
            .filter_map(|p| Some((p.clone(), self.file_at(commit, p)?)))
            .collect()
    }

    /// Three-way merge of one file's text: the change from `base` to `theirs` applied on
    /// top of `ours`. `None` on a conflict.
    pub fn merge_text(
        &self,
        ours: &str,
        base: &str,
        theirs: &str,
        scratch: &Path,
    ) -> Option<String> {
        if base == ours {
            return Some(theirs.to_string());
        }
        if base == theirs {
            return Some(ours.to_string());
        }
        if let Some(merged) = merge_lines(ours, base, theirs) {
            return merged;
        }
        std::fs::create_dir_all(scratch).ok()?;
        let tag = format!("{}-{:?}", std::process::id(), std::thread::current().id());
        let tag: String = tag.chars().filter(char::is_ascii_alphanumeric).collect();
        let paths: Vec<PathBuf> = ["ours", "base", "theirs"]
            .iter()
            .map(|n| scratch.join(format!("merge-{tag}-{n}")))
            .collect();
        for (p, text) in paths.iter().zip([ours, base, theirs]) {
            std::fs::write(p, text).ok()?;
        }
        let args: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        let out = self
            .command(&["merge-file", "-p", &args[0], &args[1], &args[2]])
            .output()
            .ok();
        for p in &paths {
            let _ = std::fs::remove_file(p);
        }
        let out = out?;
        // merge-file exits with the number of conflicts (0: clean).
        (out.status.code() == Some(0))
            .then(|| String::from_utf8(out.stdout).ok())
            .flatten()
    }

    /// A detached worktree at `path` checked out at `commit` (created, or reset when it is
    /// there already), with each of `links` (top-level names in the checkout, from
    /// [`Repo::untracked_top_level`]) linked in, so training finds what it finds in the
    /// checkout.
    pub fn worktree_at(&self, path: &Path, commit: &str, links: &[String]) -> Result<(), GitError> {
        if Repo::open_worktree(path).is_none() {
            let _ = std::fs::remove_dir_all(path);
            let _ = self.git(&["worktree", "prune"]);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|source| GitError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            let p = path.display().to_string();
            self.git(&["worktree", "add", "-q", "-f", "--detach", &p, commit])?;
        }
        let tree = Repo {
            root: path.to_path_buf(),
            prefix: String::new(),
        };
        tree.checkout_detached(commit)?;
        self.link_into(&self.in_worktree(path), links)
    }

    /// The project folder inside the worktree at `tree` (where training runs).
    pub fn in_worktree(&self, tree: &Path) -> PathBuf {
        if self.prefix.is_empty() {
            return tree.to_path_buf();
        }
        tree.join(self.prefix.trim_end_matches('/'))
    }

    /// The work tree at `path`, when it is one of its own (not a folder that merely sits
    /// inside the checkout's tree, as a deleted worktree's leftovers would).
    pub fn open_worktree(path: &Path) -> Option<Repo> {
        if !path.join(".git").exists() {
            return None;
        }
        // Through a link (`[executor] shared_dir`) git names the real folder.
        let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        Repo::open(path)
            .ok()
            .filter(|r| r.root() == path || real(r.root()) == real(path))
    }

    /// `git checkout --detach -f <commit>` and drop tracked changes: the tree is exactly
    /// the commit's (untracked files stay).
    pub fn checkout_detached(&self, commit: &str) -> Result<(), GitError> {
        // `-f` throws away changes to tracked files in the index and the tree.
        self.git(&["checkout", "-q", "--detach", "-f", commit])
            .map(drop)
    }

    /// The top-level entries of the checkout that git does not track or ignores (a `data/`
    /// folder, `.venv`, caches), but for `.git`, `.autoresearch` and `skip` (the results
    /// file): what a worktree links to.
    pub fn untracked_top_level(&self, skip: &[&str]) -> Result<Vec<String>, GitError> {
        let out = self.git(&[
            "ls-files",
            "--others",
            "--directory",
            "--no-empty-directory",
            "-z",
        ])?;
        let ignored = self.git(&[
            "ls-files",
            "--others",
            "--ignored",
            "--exclude-standard",
            "--directory",
            "-z",
        ])?;
        let mut names: Vec<String> = out
            .split('\0')
            .chain(ignored.split('\0'))
            .filter_map(|p| p.trim_end_matches('/').split('/').next())
            .filter(|n| !n.is_empty() && !NEVER_LINKED.contains(n) && !skip.contains(n))
            .map(str::to_string)
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Symlinks each of `names` from the checkout into `tree`, where not there yet.
    fn link_into(&self, tree: &Path, names: &[String]) -> Result<(), GitError> {
        for name in names {
            let link = tree.join(name);
            if std::fs::symlink_metadata(&link).is_ok() {
                continue;
            }
            std::os::unix::fs::symlink(self.root.join(name), &link)
                .map_err(|source| GitError::Io { path: link, source })?;
        }
        Ok(())
    }
}

/// Line-by-line merge when no side adds or removes lines (the usual shape of constant
/// tweaks): each line takes whichever side changed it, and a line both changed differently
/// is a conflict (`Some(None)`). `None` when the line counts differ (git decides then).
/// `git merge-file` would call changes on adjacent lines a conflict; here they are not.
fn merge_lines(ours: &str, base: &str, theirs: &str) -> Option<Option<String>> {
    let split = |s: &str| -> Vec<String> { s.split_inclusive('\n').map(str::to_string).collect() };
    let (o, b, t) = (split(ours), split(base), split(theirs));
    if o.len() != b.len() || t.len() != b.len() {
        return None;
    }
    let mut out = String::with_capacity(ours.len().max(theirs.len()));
    for ((o, b), t) in o.iter().zip(&b).zip(&t) {
        let line = if t == b || o == t {
            o
        } else if o == b {
            t
        } else {
            return Some(None);
        };
        out.push_str(line);
    }
    Some(Some(out))
}

#[cfg(test)]
mod tests {
    use super::super::tests::init_repo;
    use super::*;

    #[test]
    fn commits_without_a_work_tree_and_moves_the_branch_by_compare_and_swap() {
        let (dir, repo) = init_repo();
        let base = repo.head().unwrap();
        repo.create_branch("autoresearch/t", &base).unwrap();
        let changed = BTreeMap::from([(PathBuf::from("train.py"), "LR = 0.2\n".to_string())]);
        let c = repo
            .commit_tree(&base, &changed, "exp: LR", &dir.path().join(".scratch"))
            .unwrap();
        assert_eq!(
            repo.file_at(&c, Path::new("train.py")).unwrap(),
            "LR = 0.2\n"
        );
        // The checkout is untouched.
        assert_eq!(
            std::fs::read_to_string(dir.path().join("train.py")).unwrap(),
            "LR = 0.1\n"
        );
        assert_eq!(repo.current_branch().unwrap(), "main");
        repo.move_branch("autoresearch/t", &c, &base).unwrap();
        assert_eq!(repo.branch_commit("autoresearch/t").unwrap(), c);
        // Not at `old` any more: refused.
        assert!(repo.move_branch("autoresearch/t", &base, &base).is_err());
    }

    #[test]
    fn commits_by_mktree_keep_modes_and_other_files_and_nested_paths_use_an_index() {
        let (dir, repo) = init_repo();
        let run = |args: &[&str]| {
            repo.git(&[&["-c", "user.name=t", "-c", "user.email=t@t"], args].concat())
                .unwrap()
        };
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/model.py"), "W = 1\n").unwrap();
        std::fs::write(dir.path().join("run.sh"), "echo\n").unwrap();
        run(&["add", "-A"]);
        run(&["update-index", "--chmod=+x", "run.sh"]);
        run(&["commit", "-qm", "more"]);
        let base = repo.head().unwrap();
        let scratch = dir.path().join(".scratch");
        let changed = BTreeMap::from([
            (PathBuf::from("run.sh"), "echo hi\n".to_string()),
            (PathBuf::from("new.py"), "N = 1\n".to_string()),
        ]);
        let c = repo
            .commit_tree(&base, &changed, "exp: top", &scratch)
            .unwrap();
        let listing = |c: &str| repo.git(&["ls-tree", "-r", c]).unwrap();
        let names = |c: &str| repo.git(&["ls-tree", "-r", "--name-only", c]).unwrap();
        assert_eq!(names(&c), "new.py\nrun.sh\nsrc/model.py\ntrain.py");
        assert!(listing(&c).contains("100755 blob"), "{}", listing(&c));
        assert_eq!(repo.file_at(&c, Path::new("run.sh")).unwrap(), "echo hi\n");
        assert_eq!(repo.git(&["rev-parse", &format!("{c}^")]).unwrap(), base);
        // The same change made through the index: the same tree.
        let by_index = repo.tree_by_index(&base, &changed, &scratch).unwrap();
        assert_eq!(
            repo.git(&["rev-parse", &format!("{c}^{{tree}}")]).unwrap(),
            by_index
        );
        // A file in a folder: through the index, the rest kept.
        let nested = BTreeMap::from([(PathBuf::from("src/model.py"), "W = 2\n".to_string())]);
        assert_eq!(repo.tree_by_mktree(&base, &nested).unwrap(), None);
        let d = repo
            .commit_tree(&c, &nested, "exp: nested", &scratch)
            .unwrap();
        assert_eq!(names(&d), names(&c));
        assert_eq!(
            repo.file_at(&d, Path::new("src/model.py")).unwrap(),
            "W = 2\n"
        );
        assert_eq!(repo.file_at(&d, Path::new("new.py")).unwrap(), "N = 1\n");
    }

    #[test]
    fn worktrees_link_untracked_entries_and_merge_text_rebases_a_change() {
        let (dir, repo) = init_repo();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/x.bin"), "x").unwrap();
        let head = repo.head().unwrap();
        let wt = dir.path().join(".autoresearch/worktrees/w1");
        let links = repo.untracked_top_level(&[]).unwrap();
        assert_eq!(links, ["data"]);
        repo.worktree_at(&wt, &head, &links).unwrap();
        assert_eq!(std::fs::read_to_string(wt.join("data/x.bin")).unwrap(), "x");
        assert!(!wt.join(".autoresearch").exists());
        std::fs::write(wt.join("train.py"), "broken").unwrap();
        repo.worktree_at(&wt, &head, &links).unwrap();
        assert_eq!(
            std::fs::read_to_string(wt.join("train.py")).unwrap(),
            "LR = 0.1\n"
        );
        // Adjacent lines changed on each side: not a conflict.
        assert_eq!(
            repo.merge_text(
                "A = 2\nB = 2\n",
                "A = 1\nB = 2\n",
                "A = 1\nB = 3\n",
                &dir.path().join(".s")
            )
            .unwrap(),
            "A = 2\nB = 3\n"
        );
        // Lines added on one side: git's three-way merge.
        assert_eq!(
            repo.merge_text(
                "A = 2\nB = 2\nC = 3\nD = 4\n",
                "A = 1\nB = 2\nC = 3\nD = 4\n",
                "A = 1\nB = 2\nC = 3\nD = 4\nE = 5\n",
                &dir.path().join(".s")
            )
            .unwrap(),
            "A = 2\nB = 2\nC = 3\nD = 4\nE = 5\n"
        );
        let base = "A = 1\nB = 2\nC = 3\nD = 4\n";
        let ours = "A = 10\nB = 2\nC = 3\nD = 4\n";
        let theirs = "A = 1\nB = 2\nC = 3\nD = 40\n";
        let scratch = dir.path().join(".scratch");
        assert_eq!(
            repo.merge_text(ours, base, theirs, &scratch).unwrap(),
            "A = 10\nB = 2\nC = 3\nD = 40\n"
        );
        assert!(
            repo.merge_text(ours, base, "A = 5\nB = 2\nC = 3\nD = 4\n", &scratch)
                .is_none()
        );
    }
}
