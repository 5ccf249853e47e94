//! What a training run or an agent call must leave as it found it: every ref (the user's
//! branches included), HEAD and the repository's git config. Takes a snapshot, names what
//! changed, and puts it back exactly. Nothing is lost in the undoing: a ref value the run
//! wrote is kept under `refs/autoresearch/quarantine/<label>/` for the user to inspect.

use super::{GitError, Repo};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where the values a run wrote into refs are kept after the refs are put back.
pub const QUARANTINE: &str = "refs/autoresearch/quarantine/";

/// What HEAD was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// On a branch: `refs/heads/<name>`.
    Branch(String),
    /// Detached at a commit.
    Detached(String),
}

/// The refs, HEAD and git config of one work tree at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitState {
    pub head: Head,
    /// Every ref but symbolic ones and the quarantine, by full name.
    pub refs: BTreeMap<String, String>,
    pub(super) config_path: PathBuf,
    pub(super) config: Option<Vec<u8>>,
}

impl Repo {
    /// A snapshot of HEAD, the refs and the git config.
    pub fn git_state(&self) -> Result<GitState, GitError> {
        let head = match self.git(&["symbolic-ref", "-q", "HEAD"]) {
            Ok(name) if !name.is_empty() => Head::Branch(name),
            _ => Head::Detached(self.head()?),
        };
        let listing = self.git(&[
            "for-each-ref",
            "--format=%(objectname) %(refname) %(symref)",
        ])?;
        let refs = listing
            .lines()
            .filter_map(|l| {
                let mut parts = l.splitn(3, ' ');
                let (sha, name, symref) = (parts.next()?, parts.next()?, parts.next());
                let symbolic = symref.is_some_and(|s| !s.trim().is_empty());
                (!symbolic && !name.starts_with(QUARANTINE))
                    .then(|| (name.to_string(), sha.to_string()))
            })
            .collect();
        let common = PathBuf::from(self.git(&["rev-parse", "--git-common-dir"])?);
        let common = if common.is_absolute() {
            common
        } else {
            self.root.join(common)
        };
        let config_path = common.join("config");
        let config = std::fs::read(&config_path).ok();
        Ok(GitState {
            head,
            refs,
            config_path,
            config,
        })
    }

    /// Puts HEAD, the refs and the git config back as `before` had them and says what had
    /// changed ("moved HEAD to refs/heads/main", "changed refs/heads/main"). Refs named in
    /// `owned` (the research branch, which the tool itself moves) are left alone. Values
    /// the run wrote are kept under the quarantine with `label`.
    pub fn undo_git_changes(
        &self,
        before: &GitState,
        owned: &[String],
        label: &str,
    ) -> Result<Vec<String>, GitError> {
        let now = self.git_state()?;
        let mut said = Vec::new();
        if now.config != before.config {
            match &before.config {
                Some(bytes) => std::fs::write(&before.config_path, bytes),
                None => std::fs::remove_file(&before.config_path),
            }
            .map_err(|source| GitError::Io {
                path: before.config_path.clone(),
                source,
            })?;
            said.push("changed .git/config".to_string());
        }
        let keep = |name: &str, sha: &str| {
            let short = name.strip_prefix("refs/").unwrap_or(name);
            let kept = format!("{QUARANTINE}{label}/{short}");
            self.git(&["update-ref", "-m", "autoresearch: quarantine", &kept, sha])
                .map(drop)
        };
        let names: std::collections::BTreeSet<&String> =
            before.refs.keys().chain(now.refs.keys()).collect();
        for name in names {
            if owned.iter().any(|o| o == name) {
                continue;
            }
            match (before.refs.get(name), now.refs.get(name)) {
                (Some(old), Some(new)) if old != new => {
                    keep(name, new)?;
                    self.git(&["update-ref", "-m", "autoresearch: undo", name, old])?;
                    said.push(format!("changed {name}"));
                }
                (Some(old), None) => {
                    self.git(&["update-ref", "-m", "autoresearch: undo", name, old])?;
                    said.push(format!("deleted {name}"));
                }
                (None, Some(new)) => {
                    keep(name, new)?;
                    self.git(&["update-ref", "-d", name])?;
                    said.push(format!("created {name}"));
                }
                _ => {}
            }
        }
        if now.head != before.head {
            match &before.head {
                Head::Branch(b) => self.git(&["symbolic-ref", "HEAD", b])?,
                Head::Detached(sha) => self.git(&["update-ref", "--no-deref", "HEAD", sha])?,
            };
            said.push(match &now.head {
                Head::Branch(b) => format!("moved HEAD to {b}"),
                Head::Detached(sha) => format!("moved HEAD to {}", self.short(sha)),
            });
        }
        Ok(said)
    }

    /// Tracked files that differ from HEAD (staged or not), then puts them back as HEAD has
    /// them. Untracked files (the run's outputs) stay.
    pub fn undo_tracked_changes(&self) -> Result<Vec<String>, GitError> {
        let changed = self.dirty_files()?;
        if !changed.is_empty() {
            self.git(&["reset", "-q", "--hard", "HEAD"])?;
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{commit_all, init_repo};
    use super::*;

    #[test]
    fn a_moved_branch_and_head_are_put_back_and_the_new_value_kept() {
        let (_dir, repo) = init_repo();
        let main = repo.current_branch().unwrap();
        let first = repo.head().unwrap();
        let before = repo.git_state().unwrap();
        std::fs::write(repo.root().join("train.py"), "changed\n").unwrap();
        commit_all(&repo, "x");
        let moved_to = repo.head().unwrap();
        repo.git(&["switch", "-q", "-c", "other"]).unwrap();
        let said = repo
            .undo_git_changes(&before, &[], "0003")
            .expect("undo works");
        assert_eq!(
            said,
            vec![
                format!("changed refs/heads/{main}"),
                "created refs/heads/other".to_string(),
                "moved HEAD to refs/heads/other".to_string(),
            ]
        );
        assert_eq!(repo.current_branch().unwrap(), main);
        assert_eq!(repo.head().unwrap(), first);
        let kept = repo
            .git(&["rev-parse", &format!("{QUARANTINE}0003/heads/{main}")])
            .unwrap();
        assert_eq!(kept, moved_to);
        assert_eq!(repo.git_state().unwrap().refs, before.refs);
    }

    #[test]
    fn owned_refs_are_left_alone_and_the_config_is_restored() {
        let (_dir, repo) = init_repo();
        let main = format!("refs/heads/{}", repo.current_branch().unwrap());
        let before = repo.git_state().unwrap();
        std::fs::write(repo.root().join("train.py"), "changed\n").unwrap();
        commit_all(&repo, "x");
        let config = repo.root().join(".git/config");
        let original = std::fs::read(&config).unwrap();
        std::fs::write(&config, "[core]\n\tfsmonitor = touch pwned\n").unwrap();
        let said = repo
            .undo_git_changes(&before, std::slice::from_ref(&main), "x")
            .unwrap();
        assert_eq!(said, vec!["changed .git/config".to_string()]);
        assert_eq!(std::fs::read(&config).unwrap(), original);
    }

    #[test]
    fn tracked_edits_are_named_and_undone() {
        let (_dir, repo) = init_repo();
        std::fs::write(repo.root().join("train.py"), "tampered\n").unwrap();
        std::fs::write(repo.root().join("new.txt"), "output\n").unwrap();
        assert_eq!(repo.undo_tracked_changes().unwrap(), vec!["train.py"]);
        assert!(repo.dirty_files().unwrap().is_empty());
        assert!(repo.root().join("new.txt").exists());
    }
}
