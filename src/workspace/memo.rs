//! What git is asked again and again within one session, remembered: a file's text and
//! the top-level listing at a commit (a commit's contents never change, so only full
//! 40-hex shas are remembered), and
//! whether the repository has a user identity. Each answer saves a `git` process, several
//! of which every experiment spent on the same best commit's files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Texts remembered, at most; past it the memo starts afresh.
const MAX_TEXTS: usize = 256;

type Key = (PathBuf, String, PathBuf);

fn texts() -> &'static Mutex<HashMap<Key, String>> {
    static TEXTS: OnceLock<Mutex<HashMap<Key, String>>> = OnceLock::new();
    TEXTS.get_or_init(Default::default)
}

fn identities() -> &'static Mutex<HashMap<PathBuf, bool>> {
    static IDS: OnceLock<Mutex<HashMap<PathBuf, bool>>> = OnceLock::new();
    IDS.get_or_init(Default::default)
}

/// A full commit sha, which names one content for good (a branch or `HEAD` does not).
fn is_sha(commit: &str) -> bool {
    commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `path`'s text at `commit` in the repository at `root`, from `read` the first time.
pub(super) fn text_at(
    root: &Path,
    commit: &str,
    path: &Path,
    read: impl FnOnce() -> Option<String>,
) -> Option<String> {
    if !is_sha(commit) {
        return read();
    }
    let key = (root.to_path_buf(), commit.to_string(), path.to_path_buf());
    if let Some(t) = texts().lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Some(t);
    }
    let text = read()?;
    if let Ok(mut m) = texts().lock() {
        if m.len() >= MAX_TEXTS {
            m.clear();
        }
        m.insert(key, text.clone());
    }
    Some(text)
}

/// The top-level listing (`git ls-tree -z`) of `commit` in the repository at `root`,
/// from `read` the first time (only full shas are remembered).
pub(super) fn listing_at(
    root: &Path,
    commit: &str,
    read: impl FnOnce() -> Option<String>,
) -> Option<String> {
    // A path no file can have: listings share the texts' memo.
    text_at(root, commit, Path::new("\0ls-tree"), read)
}

/// Whether the repository at `root` has a user identity, from `ask` the first time.
pub(super) fn identity(root: &Path, ask: impl FnOnce() -> bool) -> bool {
    if let Some(known) = identities().lock().ok().and_then(|m| m.get(root).copied()) {
        return known;
    }
    let has = ask();
    if let Ok(mut m) = identities().lock() {
        m.insert(root.to_path_buf(), has);
    }
    has
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_at_a_sha_are_read_once_and_names_that_move_every_time() {
        let root = Path::new("/nowhere/memo-test");
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let mut reads = 0;
        for _ in 0..3 {
            let t = text_at(root, sha, Path::new("train.py"), || {
                reads += 1;
                Some("LR = 1\n".into())
            });
            assert_eq!(t.as_deref(), Some("LR = 1\n"));
        }
        assert_eq!(reads, 1);
        for _ in 0..2 {
            text_at(root, "HEAD", Path::new("train.py"), || {
                reads += 1;
                None
            });
        }
        assert_eq!(reads, 3);
        // A file that is not there is asked again (it is not remembered as missing).
        let other = "1123456789abcdef0123456789abcdef01234567";
        for _ in 0..2 {
            text_at(root, other, Path::new("train.py"), || {
                reads += 1;
                None
            });
        }
        assert_eq!(reads, 5);
    }
}
