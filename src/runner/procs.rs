//! Finding, measuring, killing and reaping the processes of a run through `/proc` (Linux).
//! Owns the "nothing survives" guarantee; never waits on a pid it cannot prove belongs to
//! a run (the program has other children, such as git, that std waits for).
//!
//! Elsewhere (macOS) the scans find nothing: the process group is still killed as a
//! whole, but escaped grandchildren and peak memory are not tracked.

use std::collections::HashSet;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// One process as `/proc/<pid>/stat` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    pub zombie: bool,
    /// Start time in clock ticks since boot: with the pid, it names a process uniquely
    /// (pids are reused).
    pub start: u64,
}

/// Makes this process the reaper of its orphaned descendants, so daemonised grandchildren
/// of a run (even ones that left its process group with `setsid`) stay findable and
/// reapable by us instead of vanishing under init. Idempotent.
pub(crate) fn become_subreaper() {
    #[cfg(target_os = "linux")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // Failure only weakens the guarantee (token scans still find escapees).
            let _ = nix::sys::prctl::set_child_subreaper(true);
        });
    }
}

/// Pids of the live processes whose initial environment holds `key=value`; unreadable
/// processes (other users, gone meanwhile) are skipped. Never includes this process.
pub fn processes_with_env(key: &str, value: &str) -> Vec<i32> {
    let needle = format!("{key}={value}");
    all_pids()
        .into_iter()
        .filter(|&pid| has_env(pid, needle.as_bytes()))
        .collect()
}

/// SIGKILLs every process [`processes_with_env`] finds, except those whose environment
/// holds one of `spare` (`SLURM_JOB_ID=300`: a job a resume follows, on this very node);
/// returns how many were signalled. For a resumed session to clear training processes
/// orphaned by a killed orchestrator.
pub fn kill_processes_with_env(key: &str, value: &str, spare: &[String]) -> usize {
    processes_with_env(key, value)
        .into_iter()
        .filter(|&pid| !spare.iter().any(|s| has_env(pid, s.as_bytes())))
        .filter(|&pid| kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok())
        .count()
}

/// Live (non-zombie) processes of a run: members of its process group, carriers of its
/// `needle` (`AUTORESEARCH_RUN_TOKEN=<token>`) in their environment, and descendants of
/// either. Descendants matter because a process in the middle of an exec shows an empty
/// environment for a moment, and one that just left the group with `setsid` would then
/// be invisible.
pub(crate) fn run_processes(pgid: i32, needle: &[u8]) -> Vec<ProcStat> {
    let live: Vec<ProcStat> = all_pids()
        .into_iter()
        .filter_map(stat)
        .filter(|s| !s.zombie)
        .collect();
    let mut member: HashSet<i32> = live
        .iter()
        .filter(|s| s.pgrp == pgid || has_env(s.pid, needle))
        .map(|s| s.pid)
        .collect();
    // Close over parenthood; each pass adds at least one generation.
    loop {
        let before = member.len();
        for s in &live {
            if member.contains(&s.ppid) {
                member.insert(s.pid);
            }
        }
        if member.len() == before {
            break;
        }
    }
    live.into_iter()
        .filter(|s| member.contains(&s.pid))
        .collect()
}

/// Summed resident memory of these processes, in bytes; None where it cannot be read.
pub(crate) fn total_rss(pids: &[i32]) -> Option<u64> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    Some(pids.iter().filter_map(|&pid| rss_bytes(pid)).sum())
}

fn rss_bytes(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Reaps those of `procs` (pid and start time) that are now our children, waiting only
/// on those pids. Gives up on a pid after `patience` (a process stuck in the kernel must
/// not hang the loop).
pub(crate) fn reap(procs: &[(i32, u64)], patience: std::time::Duration) {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let me = std::process::id() as i32;
    let deadline = std::time::Instant::now() + patience;
    for &(pid, start) in procs {
        loop {
            // Only our own children can be waited for, and the start time proves the pid
            // was not reused by a child someone else (std, for git) is waiting on.
            if stat(pid).is_none_or(|s| s.ppid != me || s.start != start) {
                break;
            }
            match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                _ => break,
            }
        }
    }
}

/// Zombies whose parent is this process and that belong to the process group `pgid`
/// (a group cannot be reused while a zombie still holds it, so these are the run's).
pub(crate) fn zombie_children_in_group(pgid: i32) -> Vec<ProcStat> {
    let me = std::process::id() as i32;
    all_pids()
        .into_iter()
        .filter_map(stat)
        .filter(|s| s.zombie && s.ppid == me && s.pgrp == pgid)
        .collect()
}

fn all_pids() -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .collect()
}

/// Whether `/proc/<pid>/environ` holds exactly this `KEY=VALUE` entry.
fn has_env(pid: i32, needle: &[u8]) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|env| env.split(|&b| b == 0).any(|entry| entry == needle))
}

pub(crate) fn stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    // starttime is field 22 of stat; `fields` now stands at field 6.
    let start = fields.nth(16)?.parse().ok()?;
    Some(ProcStat {
        pid,
        ppid,
        pgrp,
        zombie: state == "Z" || state == "X",
        start,
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn stat_reads_this_process() {
        let me = std::process::id() as i32;
        let text = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(text.starts_with(&format!("{me} (")));
        // all_pids skips ourselves, but stat works on any pid.
        let s = stat(me).unwrap();
        assert_eq!(s.pid, me);
        assert!(!s.zombie);
        assert_eq!(s.pgrp, nix::unistd::getpgrp().as_raw());
        assert!(!all_pids().contains(&me));
    }

    #[test]
    fn rss_of_this_process_is_positive() {
        assert!(rss_bytes(std::process::id() as i32).unwrap() > 0);
    }
}
