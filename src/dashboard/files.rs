//! What the dashboard reads besides the journal: an experiment's diff from git (read-only
//! git commands, hooks and fsmonitor off) and the tail of a run's log, only from the
//! repository's `.autoresearch/runs/` folder. Never writes, never follows a path out.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The most of a diff the page is sent.
pub const MAX_DIFF: usize = 512 * 1024;
/// The most of a log's end the page is sent.
pub const MAX_TAIL: u64 = 64 * 1024;

/// Why a log could not be shown.
#[derive(Debug, PartialEq, Eq)]
pub enum LogRefusal {
    /// Not a run log of this session, or outside `.autoresearch/runs/`.
    Forbidden,
    /// A run log of this session that is gone (or unreadable).
    Missing,
}

/// A commit name safe to hand git: hex only, so it can never be read as an option.
fn is_sha(s: &str) -> bool {
    (4..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `git diff parent commit -- editable…` in `root`, or `None` when either commit is not a
/// plain sha or git cannot say (a commit since garbage-collected). Cut at [`MAX_DIFF`].
pub fn diff(root: &Path, parent: &str, commit: &str, editable: &[PathBuf]) -> Option<String> {
    if !is_sha(parent) || !is_sha(commit) {
        return None;
    }
    let out = Command::new("git")
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.fsmonitor=false",
            "--no-pager",
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            parent,
            commit,
            "--",
        ])
        .args(editable)
        .current_dir(root)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    if text.len() > MAX_DIFF {
        let mut cut = MAX_DIFF;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n… (diff cut)\n");
    }
    Some(crate::text::clean(&text))
}

/// The last [`MAX_TAIL`] bytes of the log at `rel` (relative to `root`, as the journal
/// records it), cleaned of escape sequences. Refuses any path that does not resolve inside
/// `root/.autoresearch/runs/` (`..`, absolute paths, symlinks out).
pub fn log_tail(root: &Path, rel: &str) -> Result<String, LogRefusal> {
    let rel_path = Path::new(rel);
    if rel_path.is_absolute()
        || rel_path
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(LogRefusal::Forbidden);
    }
    let runs = root.join(".autoresearch").join("runs");
    let Ok(runs) = runs.canonicalize() else {
        return Err(LogRefusal::Missing);
    };
    let Ok(file) = root.join(rel_path).canonicalize() else {
        return Err(LogRefusal::Missing);
    };
    if !file.starts_with(&runs) {
        return Err(LogRefusal::Forbidden);
    }
    let mut f = std::fs::File::open(&file).map_err(|_| LogRefusal::Missing)?;
    let len = f.metadata().map_err(|_| LogRefusal::Missing)?.len();
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return Err(LogRefusal::Forbidden);
    }
    let start = len.saturating_sub(MAX_TAIL);
    f.seek(SeekFrom::Start(start))
        .map_err(|_| LogRefusal::Missing)?;
    let mut bytes = Vec::new();
    f.take(MAX_TAIL)
        .read_to_end(&mut bytes)
        .map_err(|_| LogRefusal::Missing)?;
    let text = String::from_utf8_lossy(&bytes);
    // Start at a whole line when the file was cut.
    let text = if start > 0 {
        text.split_once('\n').map_or(&*text, |(_, rest)| rest)
    } else {
        &text
    };
    Ok(crate::text::clean(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hex_commits_reach_git() {
        assert!(is_sha("abc1234"));
        assert!(!is_sha("--output=/tmp/x"));
        assert!(!is_sha("HEAD"));
        assert!(!is_sha(""));
    }

    #[test]
    fn logs_outside_the_runs_folder_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join(".autoresearch/runs/0001");
        std::fs::create_dir_all(&runs).unwrap();
        std::fs::write(runs.join("run.log"), "step 1\n\u{1b}[31mval_bpb: 1.0\n").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "no").unwrap();
        assert_eq!(
            log_tail(dir.path(), ".autoresearch/runs/0001/run.log").unwrap(),
            "step 1\nval_bpb: 1.0\n"
        );
        for bad in [
            "secret.txt",
            ".autoresearch/runs/../../secret.txt",
            "/etc/passwd",
            ".autoresearch/journal.sqlite",
        ] {
            assert!(log_tail(dir.path(), bad).is_err(), "{bad}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("secret.txt"), runs.join("link.log"))
                .unwrap();
            assert_eq!(
                log_tail(dir.path(), ".autoresearch/runs/0001/link.log"),
                Err(LogRefusal::Forbidden)
            );
        }
    }
}
