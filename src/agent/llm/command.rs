//! The `command` backend: runs a CLI coding agent (`claude -p`, `codex exec`, aider) in
//! the repo with a timeout, reads what it changed with git, and puts the work tree back
//! exactly as it was. Only changes to editable files count; the session applies them
//! itself. It never commits and never leaves the tree dirty.

use crate::agent::AgentError;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Default wall-clock limit for one agent run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// Output kept from the agent (the tail), enough for its DESCRIPTION line.
const OUTPUT_MAX: usize = 256 * 1024;
/// Time between SIGTERM and SIGKILL for a timed-out agent.
const GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct CommandAgent {
    /// Run through `sh -c`; `{prompt_file}` is replaced by a file holding the prompt,
    /// otherwise the prompt goes to stdin.
    pub command: String,
    pub timeout: Duration,
}

/// What the agent did that counts.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// stdout then stderr (the tail).
    pub output: String,
    /// New contents of each editable file it changed.
    pub changes: BTreeMap<PathBuf, String>,
}

fn git(repo: &Path, args: &[&str]) -> Result<String, AgentError> {
    let out = Command::new("git")
        .args(crate::workspace::GUARDED)
        .args(args)
        .current_dir(repo)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| AgentError::Fatal(format!("cannot run git in {}: {e}", repo.display())))?;
    if !out.status.success() {
        return Err(AgentError::Fatal(format!(
            "git {} failed in {}: {}",
            args.join(" "),
            repo.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn normalize(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// `git status --porcelain -z` entries: (tracked, path), paths relative to `repo` (the
/// project folder); a path outside it is given as a `:(top)` pathspec, which git commands
/// take and which never names an editable file.
fn dirty(repo: &Path) -> Result<Vec<(bool, PathBuf)>, AgentError> {
    let prefix = git(repo, &["rev-parse", "--show-prefix"])?
        .trim()
        .to_string();
    let s = git(
        repo,
        &["status", "--porcelain=v1", "-z", "--untracked-files=all"],
    )?;
    let local = |p: &str| {
        PathBuf::from(
            p.strip_prefix(prefix.as_str())
                .map_or_else(|| format!(":(top){p}"), str::to_string),
        )
    };
    let mut out = Vec::new();
    let mut fields = s.split('\0').filter(|f| f.len() > 3);
    while let Some(f) = fields.next() {
        let (xy, path) = f.split_at(3);
        out.push((!xy.starts_with("??"), local(path)));
        if xy.starts_with('R') || xy.starts_with('C') {
            // The original path of a rename follows; it is restored with the new one.
            if let Some(orig) = fields.next() {
                out.push((true, local(orig)));
            }
        }
    }
    Ok(out)
}

enum Ended {
    Exited(std::process::ExitStatus),
    TimedOut,
}

impl CommandAgent {
    /// Runs the agent on `prompt`, then inspects and restores the tree.
    pub fn run(
        &self,
        repo: &Path,
        prompt: &str,
        editable: &[PathBuf],
    ) -> Result<Outcome, AgentError> {
        let head = git(repo, &["rev-parse", "HEAD"])?.trim().to_string();
        let tree = crate::workspace::Repo::open(repo)
            .map_err(|e| AgentError::Fatal(format!("cannot open {}: {e}", repo.display())))?;
        let refs = tree
            .git_state()
            .map_err(|e| AgentError::Fatal(format!("cannot read the refs: {e}")))?;
        let before = dirty(repo)?;
        if let Some((_, path)) = before.iter().find(|(tracked, _)| *tracked) {
            return Err(AgentError::Fatal(format!(
                "the work tree of {} has uncommitted changes ({}) before the agent ran: commit or stash them",
                repo.display(),
                path.display()
            )));
        }
        // Untracked files that training leaves (__pycache__/, outputs) are not the agent's.
        let untracked = fingerprints(repo, before.into_iter().map(|(_, p)| p));
        let prompt_file = self
            .command
            .contains("{prompt_file}")
            .then(temp_prompt_path);
        if let Some(p) = &prompt_file {
            std::fs::write(p, prompt).map_err(|e| {
                AgentError::Fatal(format!("cannot write the prompt file {}: {e}", p.display()))
            })?;
        }
        let result = self.spawn(repo, prompt, prompt_file.as_deref());
        if let Some(p) = &prompt_file {
            let _ = std::fs::remove_file(p);
        }
        // Whatever happened, undo what the agent did to refs, HEAD and the git config
        // (a `git checkout main` must not let the tool move main), then read and undo its
        // file changes before judging it.
        // A commit on the checked-out branch (or on a detached HEAD) is tolerated: its
        // changes stay in the tree and are read as the proposal.
        let own: Vec<String> = match &refs.head {
            crate::workspace::Head::Branch(b) => vec![b.clone()],
            crate::workspace::Head::Detached(_) => Vec::new(),
        };
        let mut moved = tree
            .undo_git_changes(&refs, &own, "agent")
            .map_err(|e| AgentError::Fatal(format!("cannot restore the refs: {e}")))?;
        if matches!(refs.head, crate::workspace::Head::Detached(_)) {
            moved.retain(|m| !m.starts_with("moved HEAD to ") || m.contains("refs/"));
        }
        let inspected = inspect_and_restore(repo, &head, editable, &untracked);
        let (ended, output) = result?;
        let (changes, touched) = inspected?;
        match ended {
            Ended::TimedOut => {
                return Err(AgentError::Transient(format!(
                    "the agent command ran past its {:.0}s timeout and was stopped (raise [agent] timeout)",
                    self.timeout.as_secs_f64()
                )));
            }
            Ended::Exited(st) if st.code() == Some(127) => {
                return Err(AgentError::Fatal(format!(
                    "the agent command was not found (exit 127): check [agent] command ({})",
                    last_line(&output)
                )));
            }
            Ended::Exited(st) if !st.success() => {
                return Err(AgentError::Invalid(format!(
                    "the agent command failed ({st}): {}",
                    last_line(&output)
                )));
            }
            Ended::Exited(_) => {}
        }
        if !moved.is_empty() {
            return Err(AgentError::Invalid(format!(
                "the agent {} (undone; proposals may only edit files)",
                moved.join(", ")
            )));
        }
        if !touched.is_empty() {
            let v: Vec<String> = touched.iter().map(|p| p.display().to_string()).collect();
            return Err(AgentError::Invalid(format!(
                "the agent changed files outside the editable set: {} (restored)",
                v.join(", ")
            )));
        }
        Ok(Outcome { output, changes })
    }

    fn spawn(
        &self,
        repo: &Path,
        prompt: &str,
        prompt_file: Option<&Path>,
    ) -> Result<(Ended, String), AgentError> {
        use std::os::unix::process::CommandExt;
        let cmd = match prompt_file {
            Some(p) => self
                .command
                .replace("{prompt_file}", &shell_quote(&p.to_string_lossy())),
            None => self.command.clone(),
        };
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .current_dir(repo)
            .stdin(if prompt_file.is_some() {
                Stdio::null()
            } else {
                Stdio::piped()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout stops the agent and everything it started.
            .process_group(0)
            .spawn()
            .map_err(|e| AgentError::Fatal(format!("cannot start `sh -c {cmd}`: {e}")))?;
        let pid = child.id() as i32;
        if let Some(mut stdin) = child.stdin.take() {
            let p = prompt.to_string();
            // A writer thread: an agent that reads lazily must not deadlock us.
            std::thread::spawn(move || {
                let _ = stdin.write_all(p.as_bytes());
            });
        }
        let drain = |r: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_end(&mut buf);
                }
                buf
            })
        };
        let out_t = drain(
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let err_t = drain(
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let group = nix::unistd::Pid::from_raw(pid);
        let ended = match rx.recv_timeout(self.timeout) {
            Ok(st) => Ended::Exited(
                st.map_err(|e| AgentError::Transient(format!("agent wait failed: {e}")))?,
            ),
            Err(_) => {
                use nix::sys::signal::{Signal, killpg};
                let _ = killpg(group, Signal::SIGTERM);
                if rx.recv_timeout(GRACE).is_err() {
                    let _ = killpg(group, Signal::SIGKILL);
                    let _ = rx.recv();
                }
                Ended::TimedOut
            }
        };
        // Children left behind would hold the pipes open; the group goes with the agent.
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let mut output = String::from_utf8_lossy(&out_t.join().unwrap_or_default()).into_owned();
        output.push_str(&String::from_utf8_lossy(&err_t.join().unwrap_or_default()));
        if output.len() > OUTPUT_MAX {
            let mut cut = output.len() - OUTPUT_MAX;
            while !output.is_char_boundary(cut) {
                cut += 1;
            }
            output.drain(..cut);
        }
        Ok((ended, output))
    }
}

fn last_line(s: &str) -> String {
    let l = s
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output");
    l.chars().take(200).collect()
}

fn temp_prompt_path() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("autoresearch-prompt-{}-{n}.md", std::process::id()))
}

type Inspected = (BTreeMap<PathBuf, String>, Vec<PathBuf>);

/// Size and modification time of each path: enough to tell whether an untracked file
/// changed, without reading what may be a large checkpoint.
type Fingerprints = BTreeMap<PathBuf, Option<(u64, std::time::SystemTime)>>;

fn fingerprints(repo: &Path, paths: impl Iterator<Item = PathBuf>) -> Fingerprints {
    paths
        .map(|p| {
            let meta = std::fs::symlink_metadata(repo.join(&p)).ok();
            let print = meta.and_then(|m| Some((m.len(), m.modified().ok()?)));
            (p, print)
        })
        .collect()
}

/// Reads the agent's changes, then restores the tree to `head` (gitignored files stay).
/// Untracked files in `pre_existing` (there before the agent ran) are never deleted; one the
/// agent changed counts as touched.
fn inspect_and_restore(
    repo: &Path,
    head: &str,
    editable: &[PathBuf],
    pre_existing: &Fingerprints,
) -> Result<Inspected, AgentError> {
    let now = git(repo, &["rev-parse", "HEAD"])?.trim().to_string();
    if now != head {
        // It committed: move back, keeping its changes in the tree to be inspected.
        git(repo, &["reset", "-q", "--soft", head])?;
    }
    git(repo, &["reset", "-q"])?;
    let allowed: Vec<PathBuf> = editable.iter().map(|p| normalize(p)).collect();
    let mut changes = BTreeMap::new();
    let mut touched = Vec::new();
    let mut entries = dirty(repo)?;
    let mut kept = Vec::new();
    entries.retain(|(tracked, path)| {
        if *tracked || !pre_existing.contains_key(path) {
            return true;
        }
        kept.push(path.clone());
        false
    });
    for (path, print) in fingerprints(repo, kept.into_iter()) {
        if pre_existing.get(&path) != Some(&print) {
            touched.push(path);
        }
    }
    for (_, path) in &entries {
        let readable = std::fs::read(repo.join(path))
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        match (allowed.contains(&normalize(path)), readable) {
            (true, Some(text)) => {
                changes.insert(normalize(path), text);
            }
            // Deleting an editable file, or making it binary, is not a proposal we take.
            _ => touched.push(path.clone()),
        }
    }
    let tracked: Vec<String> = entries
        .iter()
        .filter(|e| e.0)
        .map(|e| e.1.to_string_lossy().into_owned())
        .collect();
    let untracked: Vec<String> = entries
        .iter()
        .filter(|e| !e.0)
        .map(|e| e.1.to_string_lossy().into_owned())
        .collect();
    if !tracked.is_empty() {
        let mut args = vec!["checkout", "-q", "--"];
        args.extend(tracked.iter().map(String::as_str));
        git(repo, &args)?;
    }
    if !untracked.is_empty() {
        let mut args = vec!["clean", "-fq", "--"];
        args.extend(untracked.iter().map(String::as_str));
        git(repo, &args)?;
    }
    let left: Vec<(bool, PathBuf)> = dirty(repo)?
        .into_iter()
        .filter(|(tracked, p)| *tracked || !pre_existing.contains_key(p))
        .collect();
    if !left.is_empty() {
        return Err(AgentError::Fatal(format!(
            "could not restore the work tree after the agent ran ({} still changed): restore it by hand with git",
            left[0].1.display()
        )));
    }
    touched.sort();
    touched.dedup();
    Ok((changes, touched))
}
