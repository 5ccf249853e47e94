//! Cheap proofs that nothing changed, taken without running git: a stamp is the stat
//! (inode, size, mode, mtime, ctime) of every file under some roots. Two equal stamps mean
//! no file there was written, created, removed, renamed or chmod-ed in between (ctime
//! cannot be set from user space), so the slow checks (`git for-each-ref`, `git status`)
//! can be skipped. A file written within [`RACY`] of the first stamp may share its stat
//! with a rewrite (the kernel's file clock is coarse): its bytes are kept and compared
//! instead. Anything unusual (too many files, a racy file too large to keep, an error)
//! makes the stamp unusable, and the caller does the slow check, which alone decides what
//! changed: a stamp never says that something did change, only that nothing did.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How recent a file's change must be for its stat not to prove its content.
const RACY: Duration = Duration::from_secs(2);
/// Files stamped, at most (past it, the slow check is cheaper to trust).
const MAX_FILES: usize = 20_000;
/// A racy file's bytes are kept up to this size.
const MAX_KEPT: u64 = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    path: PathBuf,
    ino: u64,
    dev: u64,
    size: u64,
    mode: u32,
    mtime: (i64, i64),
    ctime: (i64, i64),
    /// The bytes of a racy regular file.
    bytes: Option<Vec<u8>>,
}

/// The stat of every file under some roots at one moment (`None` inside: unusable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp(Option<Vec<Entry>>);

impl Stamp {
    /// Stamps every entry under each of `roots` (files, or folders walked without following
    /// links; a root that is not there is stamped as missing), leaving out paths in `skip`
    /// and anything under a folder in `skip`.
    pub fn take(roots: &[PathBuf], skip: &[PathBuf]) -> Stamp {
        let now = SystemTime::now();
        let mut entries = Vec::new();
        for root in roots {
            if !walk(root, skip, now, &mut entries) {
                return Stamp(None);
            }
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Stamp(Some(entries))
    }

    /// Whether `later` proves that nothing under the roots changed since `self`.
    pub fn unchanged(&self, later: &Stamp) -> bool {
        let (Some(before), Some(after)) = (&self.0, &later.0) else {
            return false;
        };
        before.len() == after.len()
            && before.iter().zip(after).all(|(b, a)| {
                let same_stat = b.path == a.path
                    && b.ino == a.ino
                    && b.dev == a.dev
                    && b.size == a.size
                    && b.mode == a.mode
                    && b.mtime == a.mtime
                    && b.ctime == a.ctime;
                // A racy file: its stat may not have moved, its bytes must be the same.
                same_stat
                    && match &b.bytes {
                        None => true,
                        Some(kept) => std::fs::read(&b.path).is_ok_and(|now| &now == kept),
                    }
            })
    }

    /// Whether the stamp can prove anything.
    pub fn usable(&self) -> bool {
        self.0.is_some()
    }
}

/// Adds `path` (and what is under it) to `out`; false when the stamp cannot be trusted.
fn walk(path: &Path, skip: &[PathBuf], now: SystemTime, out: &mut Vec<Entry>) -> bool {
    if skip.iter().any(|s| s == path) {
        return true;
    }
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
        Err(_) => return false,
    };
    if out.len() >= MAX_FILES {
        return false;
    }
    let changed = SystemTime::UNIX_EPOCH
        + Duration::new(
            u64::try_from(meta.ctime()).unwrap_or(0),
            u32::try_from(meta.ctime_nsec()).unwrap_or(0),
        );
    let racy = changed + RACY > now;
    let dir = meta.is_dir();
    let bytes = if racy && meta.is_file() {
        if meta.len() > MAX_KEPT {
            return false;
        }
        match std::fs::read(path) {
            Ok(b) => Some(b),
            Err(_) => return false,
        }
    } else {
        None
    };
    // A folder counts by what is in it: its own times move whenever a file in it is
    // replaced by rename (as git moves the research branch, which is skipped).
    let times = |t: (i64, i64)| if dir { (0, 0) } else { t };
    out.push(Entry {
        path: path.to_path_buf(),
        ino: meta.ino(),
        dev: meta.dev(),
        size: if dir { 0 } else { meta.size() },
        mode: meta.mode(),
        mtime: times((meta.mtime(), meta.mtime_nsec())),
        ctime: times((meta.ctime(), meta.ctime_nsec())),
        bytes,
    });
    if dir {
        let Ok(list) = std::fs::read_dir(path) else {
            return false;
        };
        for entry in list {
            let Ok(entry) = entry else {
                return false;
            };
            if !walk(&entry.path(), skip, now, out) {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_a_new_file_a_removal_and_a_chmod_are_each_seen() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("refs");
        std::fs::create_dir_all(root.join("heads")).unwrap();
        let main = root.join("heads/main");
        std::fs::write(&main, "a\n").unwrap();
        let roots = [root.clone(), dir.path().join("packed-refs")];
        let s = Stamp::take(&roots, &[]);
        assert!(s.usable());
        assert!(s.unchanged(&Stamp::take(&roots, &[])));
        // The same size, within the racy window: caught by the kept bytes.
        std::fs::write(&main, "b\n").unwrap();
        assert!(!s.unchanged(&Stamp::take(&roots, &[])));
        std::fs::write(&main, "a\n").unwrap();
        let s = Stamp::take(&roots, &[]);
        std::fs::write(root.join("heads/other"), "c\n").unwrap();
        assert!(!s.unchanged(&Stamp::take(&roots, &[])));
        std::fs::remove_file(root.join("heads/other")).unwrap();
        assert!(s.unchanged(&Stamp::take(&roots, &[])));
        std::fs::write(dir.path().join("packed-refs"), "x").unwrap();
        assert!(!s.unchanged(&Stamp::take(&roots, &[])));
        let s = Stamp::take(&roots, &[]);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&main, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(!s.unchanged(&Stamp::take(&roots, &[])));
    }

    #[test]
    fn skipped_paths_do_not_count_and_an_unusable_stamp_proves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let owned = dir.path().join("heads/autoresearch/t");
        std::fs::create_dir_all(owned.parent().unwrap()).unwrap();
        std::fs::write(&owned, "a\n").unwrap();
        let roots = [dir.path().join("heads")];
        let skip = [owned.clone()];
        let s = Stamp::take(&roots, &skip);
        std::fs::write(&owned, "bb\n").unwrap();
        assert!(s.unchanged(&Stamp::take(&roots, &skip)));
        let none = Stamp(None);
        assert!(!none.unchanged(&none));
        assert!(!s.unchanged(&none));
    }
}
