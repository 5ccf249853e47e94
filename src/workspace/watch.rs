//! What the tool knows of one worktree between runs, so that the checks around a run cost
//! no git process when nothing changed: the commit the tree was put at, the refs as last
//! read, and stamps ([`super::stamp`]) of the tree and of where git keeps refs, HEAD and
//! config. A stamp only ever proves that nothing changed; when it cannot, the full checks
//! (`git for-each-ref`, `git status`) run exactly as before and decide what is undone and
//! named. Never decides anything about a run itself.

use super::guard::{GitState, Head, QUARANTINE};
use super::stamp::Stamp;
use super::{GitError, Repo};
use std::path::PathBuf;

/// One worktree's state as last seen.
#[derive(Debug)]
pub struct TreeWatch {
    /// The top of the work tree.
    root: PathBuf,
    /// The worktree's own git folder (HEAD, index, per-worktree refs).
    own: PathBuf,
    /// The repository's common git folder (refs, packed-refs, config).
    common: PathBuf,
    /// Ref files the tool itself moves while runs go on, and the quarantine.
    skip: Vec<PathBuf>,
    /// The refs as last read, with a stamp taken just before the reading.
    refs: Option<(Stamp, GitState)>,
    /// The commit the tree is at, with a stamp of the tree taken when it was there.
    at: Option<(String, Stamp)>,
}

/// What a run must leave as it found it.
#[derive(Debug)]
pub struct Armed {
    commit: String,
    refs: Option<(Stamp, GitState)>,
    tree: Stamp,
}

impl TreeWatch {
    /// Watches the work tree `repo` (its top); `owned`: full names of the refs the tool
    /// moves while runs go on.
    pub fn new(repo: &Repo, owned: &[String]) -> Result<TreeWatch, GitError> {
        let out = repo.git(&["rev-parse", "--absolute-git-dir", "--git-common-dir"])?;
        let mut lines = out.lines();
        let own = PathBuf::from(lines.next().unwrap_or_default());
        let common = PathBuf::from(lines.next().unwrap_or_default());
        let common = if common.is_absolute() {
            common
        } else {
            repo.root().join(common)
        };
        let mut skip: Vec<PathBuf> = owned.iter().map(|r| common.join(r)).collect();
        skip.push(common.join(QUARANTINE.trim_end_matches('/')));
        Ok(TreeWatch {
            root: repo.root().to_path_buf(),
            own,
            common,
            skip,
            refs: None,
            at: None,
        })
    }

    fn ref_roots(&self) -> Vec<PathBuf> {
        let mut roots = vec![
            self.common.join("refs"),
            self.common.join("packed-refs"),
            self.common.join("reftable"),
        ];
        if self.own != self.common {
            roots.push(self.own.join("refs"));
        }
        roots
    }

    fn tree_stamp(&self) -> Stamp {
        // The tracked files and the index (a run that stages a change is seen too); the
        // worktree's `.git` file and the links into the checkout are not followed.
        Stamp::take(
            &[self.root.clone(), self.own.join("index")],
            &[self.root.join(".git")],
        )
    }

    /// HEAD as its file says, without git (`None`: not a form read here).
    fn read_head(&self) -> Option<Head> {
        let text = std::fs::read_to_string(self.own.join("HEAD")).ok()?;
        let text = text.trim_end();
        if let Some(name) = text.strip_prefix("ref: ") {
            return Some(Head::Branch(name.to_string()));
        }
        let sha = text.len() >= 40 && text.bytes().all(|b| b.is_ascii_hexdigit());
        sha.then(|| Head::Detached(text.to_string()))
    }

    /// Puts the tree exactly at `commit` (tracked files and index as committed); no git
    /// process when the tree is provably there already.
    pub fn checkout(&mut self, repo: &Repo, commit: &str) -> Result<(), GitError> {
        if let Some((c, stamp)) = &self.at {
            if c == commit && stamp.unchanged(&self.tree_stamp()) {
                return Ok(());
            }
        }
        self.at = None;
        repo.checkout_detached(commit)?;
        let stamp = self.tree_stamp();
        if stamp.usable() {
            self.at = Some((commit.to_string(), stamp));
        }
        Ok(())
    }

    /// Before a run at the commit of the last [`TreeWatch::checkout`]: what it must leave
    /// alone. `refs`: whether the refs, HEAD and config are guarded (a box that walls off
    /// git needs no guard of them).
    pub fn arm(&mut self, repo: &Repo, refs: bool) -> Result<Armed, GitError> {
        let commit = self.at.as_ref().map(|a| a.0.clone()).unwrap_or_default();
        let refs = if refs {
            let stamp = Stamp::take(&self.ref_roots(), &self.skip);
            let config_path = self.common.join("config");
            let fresh = match (&self.refs, self.read_head()) {
                (Some((s, known)), Some(head)) if s.unchanged(&stamp) => Some(GitState {
                    head,
                    refs: known.refs.clone(),
                    config: std::fs::read(&config_path).ok(),
                    config_path,
                }),
                _ => None,
            };
            let state = match fresh {
                Some(s) => s,
                None => repo.git_state()?,
            };
            self.refs = stamp.usable().then(|| (stamp.clone(), state.clone()));
            Some((stamp, state))
        } else {
            None
        };
        Ok(Armed {
            commit,
            refs,
            tree: self.tree_stamp(),
        })
    }

    /// After the run: puts back whatever it changed in the refs, HEAD, config and tracked
    /// files, and names it ("changed refs/heads/main", "changed train.py"); values written
    /// to refs are quarantined under `label`. Refs in `owned` are left alone.
    pub fn undo(
        &mut self,
        repo: &Repo,
        armed: Armed,
        owned: &[String],
        label: &str,
    ) -> Result<Vec<String>, GitError> {
        let mut said = Vec::new();
        if let Some((stamp, before)) = armed.refs {
            let same = stamp.unchanged(&Stamp::take(&self.ref_roots(), &self.skip))
                && self.read_head().as_ref() == Some(&before.head)
                && std::fs::read(self.common.join("config")).ok() == before.config;
            if !same {
                self.refs = None;
                said = repo.undo_git_changes(&before, owned, label)?;
            }
        }
        if armed.tree.unchanged(&self.tree_stamp()) {
            self.at = Some((armed.commit, armed.tree));
        } else {
            self.at = None;
            said.extend(
                repo.undo_tracked_changes()?
                    .into_iter()
                    .map(|f| format!("changed {f}")),
            );
        }
        Ok(said)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{commit_all, init_repo};
    use super::*;

    /// A worktree of a fresh repository, detached at its first commit.
    fn worktree() -> (tempfile::TempDir, Repo, Repo, String) {
        let (dir, repo) = init_repo();
        let head = repo.head().unwrap();
        let wt = dir.path().join(".autoresearch/worktrees/w1");
        repo.worktree_at(&wt, &head, &[]).unwrap();
        let tree = Repo::open_worktree(&wt).unwrap();
        (dir, repo, tree, head)
    }

    #[test]
    fn a_quiet_run_needs_no_check_and_each_kind_of_tampering_is_undone_and_named() {
        let (_dir, repo, tree, head) = worktree();
        let owned = vec!["refs/heads/autoresearch/t".to_string()];
        repo.create_branch("autoresearch/t", &head).unwrap();
        let mut w = TreeWatch::new(&tree, &owned).unwrap();
        w.checkout(&tree, &head).unwrap();
        let armed = w.arm(&tree, true).unwrap();
        assert!(w.undo(&tree, armed, &owned, "1").unwrap().is_empty());

        // The owned branch moves (another worker's keep): not the run's doing.
        std::fs::write(tree.root().join("train.py"), "LR = 0.3\n").unwrap();
        commit_all(&tree, "moved");
        let moved = tree.head().unwrap();
        tree.checkout_detached(&head).unwrap();
        w.checkout(&tree, &head).unwrap();
        let armed = w.arm(&tree, true).unwrap();
        repo.move_branch("autoresearch/t", &moved, &head).unwrap();
        assert!(w.undo(&tree, armed, &owned, "2").unwrap().is_empty());

        // A user branch moved, a tracked file changed, the config written.
        w.checkout(&tree, &head).unwrap();
        let armed = w.arm(&tree, true).unwrap();
        tree.git(&["update-ref", "refs/heads/main", &moved])
            .unwrap();
        std::fs::write(tree.root().join("train.py"), "LR = 9\n").unwrap();
        let config = repo.root().join(".git/config");
        let original = std::fs::read(&config).unwrap();
        std::fs::write(&config, "[core]\n\tfsmonitor = touch pwned\n").unwrap();
        let said = w.undo(&tree, armed, &owned, "3").unwrap();
        assert_eq!(
            said,
            vec![
                "changed .git/config".to_string(),
                "changed refs/heads/main".to_string(),
                "changed train.py".to_string(),
            ]
        );
        assert_eq!(repo.branch_commit("main").unwrap(), head);
        assert_eq!(std::fs::read(&config).unwrap(), original);
        assert!(tree.dirty_files().unwrap().is_empty());

        // HEAD moved by the run, then a run that only stages a change.
        w.checkout(&tree, &head).unwrap();
        let armed = w.arm(&tree, true).unwrap();
        tree.git(&["checkout", "-q", "--detach", &moved]).unwrap();
        let said = w.undo(&tree, armed, &owned, "4").unwrap();
        assert_eq!(said[0], format!("moved HEAD to {}", tree.short(&moved)));
        assert_eq!(tree.head().unwrap(), head);
        w.checkout(&tree, &head).unwrap();
        let armed = w.arm(&tree, false).unwrap();
        std::fs::write(tree.root().join("train.py"), "LR = 7\n").unwrap();
        tree.git(&["add", "train.py"]).unwrap();
        std::fs::write(tree.root().join("train.py"), "LR = 0.1\n").unwrap();
        assert_eq!(
            w.undo(&tree, armed, &owned, "5").unwrap(),
            vec!["changed train.py".to_string()]
        );
        assert!(tree.dirty_files().unwrap().is_empty());
    }

    #[test]
    fn a_tree_known_to_be_at_the_commit_is_not_checked_out_again() {
        let (_dir, _repo, tree, head) = worktree();
        let mut w = TreeWatch::new(&tree, &[]).unwrap();
        w.checkout(&tree, &head).unwrap();
        let armed = w.arm(&tree, false).unwrap();
        assert!(w.undo(&tree, armed, &[], "1").unwrap().is_empty());
        // Changed behind the watch's back (not by a run it armed for): seen at checkout.
        std::fs::write(tree.root().join("train.py"), "LR = 5\n").unwrap();
        w.checkout(&tree, &head).unwrap();
        assert_eq!(
            std::fs::read_to_string(tree.root().join("train.py")).unwrap(),
            "LR = 0.1\n"
        );
        // Unchanged: the checkout is skipped (an index lock in the way would make git fail).
        let lock = tree.git_path("index.lock").unwrap();
        std::fs::write(&lock, "").unwrap();
        w.checkout(&tree, &head).unwrap();
        std::fs::remove_file(&lock).unwrap();
        assert!(tree.checkout_detached(&head).is_ok());
    }
}
