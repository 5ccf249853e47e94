//! The box's pid namespace, made by the spawned child inside its hook (see `enter`): a
//! child cloned straight into a new pid namespace, and into the run's cgroup where there is
//! one (`CLONE_INTO_CGROUP`: no migration, which costs an RCU grace period, 5–15 ms here);
//! that child becomes pid 1 and mounts its own /proc before it execs; the process outside
//! waits for it and exits as it did: what `unshare --pid --fork --kill-child --mount-proc`
//! did as a program of its own. Pid 1 keeps the namespace's capabilities (the command is
//! run without them by `setpriv`), so the command can neither trace it nor look through
//! its /proc entries. System calls only: this runs between fork and exec in the child of a
//! threaded process. Never returns in the process outside the namespace, so it can never
//! exec the command there.

use std::ffi::CStr;

use nix::errno::Errno;
use nix::libc;
use nix::mount::{MsFlags, mount};

use super::enter::fail;

/// The run's cgroup as the child needs it: the folder (for `CLONE_INTO_CGROUP`) and its
/// `cgroup.procs`, open for writing (to join it the slow way where the kernel cannot
/// clone into it, before Linux 5.7).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CgroupFds {
    pub dir: i32,
    pub procs: i32,
}

/// From linux/sched.h (libc's constant overflows its type).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` of clone3(2), the same on every architecture.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Makes pid 1 of a new pid namespace. Returns in pid 1 only, with its /proc mounted and in
/// the run's cgroup (best effort, as before); the caller then returns from the hook and
/// std execs the command line. `open_files`: the descriptors the process outside closes
/// (all above 2, where `close_range` is missing).
pub(crate) fn become_pid1(cgroup: Option<CgroupFds>, open_files: u32) {
    // Before the clone, so that neither process ever runs an orchestrator's handler (the
    // process outside never execs) and the group's SIGTERM never finds the process
    // outside unprepared; pid 1 takes its signals back before it execs.
    default_signal_handlers();
    mask_group_signals(libc::SIG_BLOCK);
    let (pid, in_cgroup) = clone_pid1(cgroup);
    if pid < 0 {
        fail(
            b"autoresearch box: cannot make its pid namespace (clone)",
            Errno::last(),
        );
    }
    if pid > 0 {
        wait_and_exit_as(pid, open_files);
    }
    mask_group_signals(libc::SIG_UNBLOCK);
    // pid 1. Killed with the process outside (the group's SIGKILL, or our death), as with
    // `unshare --kill-child`: pid 1's death takes the whole namespace with it. (Should the
    // process outside die before this line, as it could before unshare's, pid 1 is still
    // in the run's cgroup and carries its token, which the runner's cleanup kills.)
    die_with_parent();
    if let (false, Some(cg)) = (in_cgroup, cgroup) {
        // A failed join leaves it where it was: the pid namespace, the group and the token
        // still hold the run.
        let _ = write_fd(cg.procs, b"0");
    }
    // The namespace's own /proc (as `unshare --mount-proc`): the run sees its processes only.
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if let Err(e) = mount(Some(c"proc"), c"/proc", Some(c"proc"), flags, None::<&CStr>) {
        fail(b"autoresearch box: cannot mount its /proc", e);
    }
}

/// clone3 with a new pid namespace (and into the cgroup where it can), else the same
/// without the cgroup, else plain clone: 0 in the child, its pid in the parent, -1 on
/// failure; and whether the child was made in the cgroup.
#[expect(
    unsafe_code,
    reason = "clone3 and clone as raw system calls, in the forked child"
)]
fn clone_pid1(cgroup: Option<CgroupFds>) -> (libc::c_long, bool) {
    let mut args = CloneArgs {
        flags: libc::CLONE_NEWPID as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    let clone3 = |args: &CloneArgs| {
        // SAFETY: fork-like clone3 (no CLONE_VM, no new stack): the child continues on a
        // copy of this stack and address space, as after fork.
        unsafe {
            libc::syscall(
                libc::SYS_clone3,
                args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        }
    };
    if let Some(cg) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = cg.dir as u64;
        let pid = clone3(&args);
        if pid >= 0 {
            return (pid, true);
        }
        args.flags &= !CLONE_INTO_CGROUP;
        args.cgroup = 0;
    }
    let pid = clone3(&args);
    if pid >= 0 || Errno::last() != Errno::ENOSYS {
        return (pid, false);
    }
    // Before Linux 5.3, or clone3 filtered out (seccomp): the old call, fork-like.
    // SAFETY: as above; every pointer argument is null.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_NEWPID | libc::SIGCHLD) as libc::c_ulong,
            0,
            0,
            0,
            0,
        )
    };
    (pid, false)
}

/// The process outside the namespace (SIGTERM and SIGINT blocked, default handlers: see
/// `become_pid1`): holds nothing open but the run's stdio (std's exec-error pipe among the
/// rest, so that `spawn` returns once pid 1 has exec'd), waits for pid 1 and exits as it
/// did; the group's SIGTERM is pid 1's command's to answer. It is a fork of the orchestrator that never execs: it is
/// made non-dumpable, so no process of this user can read its copy of the orchestrator's
/// memory or environment (the run cannot see it at all: it is outside the pid namespace).
#[expect(
    unsafe_code,
    reason = "close_range, sigprocmask, waitpid, kill and _exit through libc"
)]
fn wait_and_exit_as(pid: libc::c_long, open_files: u32) -> ! {
    let pid = pid as libc::pid_t;
    // SAFETY: plain system calls on this process's own descriptors, mask and child.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
            for fd in 3..open_files.max(1024) {
                libc::close(fd as i32);
            }
        }
        let mut status = 0;
        loop {
            if libc::waitpid(pid, &mut status, 0) == pid {
                break;
            }
            if Errno::last() != Errno::EINTR {
                libc::_exit(super::enter::CANNOT_BOX);
            }
        }
        if libc::WIFSIGNALED(status) {
            let sig = libc::WTERMSIG(status);
            libc::signal(sig, libc::SIG_DFL);
            mask_group_signals(libc::SIG_UNBLOCK);
            libc::kill(libc::getpid(), sig);
            libc::_exit(128 + sig);
        }
        libc::_exit(libc::WEXITSTATUS(status))
    }
}

/// What exec does to signal handlers: every caught signal back to its default action
/// (ignored ones stay ignored).
#[expect(unsafe_code, reason = "sigaction through libc")]
fn default_signal_handlers() {
    // SAFETY: sigaction on this process's own dispositions, with zeroed plain C data.
    unsafe {
        // Linux has signals 1 to 64 (_NSIG); sigaction refuses the others.
        for sig in 1..=64 {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction != libc::SIG_IGN
                && old.sa_sigaction != libc::SIG_DFL
            {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
}

/// Blocks or unblocks SIGTERM and SIGINT, what the runner sends the group (as `unshare
/// --fork` blocks them while it waits).
#[expect(unsafe_code, reason = "sigprocmask through libc")]
fn mask_group_signals(how: libc::c_int) {
    // SAFETY: sigprocmask on this thread's own mask, with plain C data.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigprocmask(how, &set, std::ptr::null_mut());
    }
}

#[expect(unsafe_code, reason = "prctl through libc")]
fn die_with_parent() {
    // SAFETY: a plain system call.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
    }
}

/// One write(2) of `data` to an open descriptor.
#[expect(unsafe_code, reason = "write through libc")]
fn write_fd(fd: i32, data: &[u8]) -> Result<(), Errno> {
    // SAFETY: a plain system call; `data` outlives it.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    if n == data.len() as isize {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::path::Path;
    use std::process::{Child, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    use super::super::Probe;
    use super::super::enter::BoxEntry;
    use super::CgroupFds;
    use crate::runner::cgroup::RunCgroup;
    use nix::libc;

    use super::super::tests::boxed;

    /// Spawns `script` in a box (its own process group, stdin and stdout piped) on another
    /// thread, so that a `spawn` that never returns fails the test instead of hanging it.
    fn spawn_boxed(dir: &Path, script: &str, cgroup: Option<CgroupFds>) -> Child {
        let entry = BoxEntry::new(false, &[], dir, cgroup).unwrap();
        let mut cmd = BoxEntry::command(script);
        entry.enter_in_child(&mut cmd);
        cmd.current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .process_group(0);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || tx.send(cmd.spawn().unwrap()));
        rx.recv_timeout(Duration::from_secs(60))
            .expect("spawn did not return while the box runs: the exec-error pipe is held open")
    }

    fn first_line(child: &mut Child) -> String {
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        line.trim().to_string()
    }

    #[test]
    fn spawn_returns_while_the_box_runs_and_the_box_exits_as_its_command() {
        if !boxed() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        // Blocks on its input: spawn must have returned for the test to send it.
        let mut child = spawn_boxed(d.path(), "read x; echo \"got $x\"; exit 5", None);
        // The process outside, as spawn left it: none of this process's handlers (the
        // test harness catches SIGSEGV), the group's SIGTERM and SIGINT blocked.
        let mask = |pid: String, key: &str| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
            let line = status.lines().find(|l| l.starts_with(key)).unwrap();
            u64::from_str_radix(line[key.len()..].trim(), 16).unwrap()
        };
        let outside = child.id().to_string();
        // Standard signals only: glibc keeps its own two above them (setxid, cancel).
        let caught = |pid: &str| mask(pid.into(), "SigCgt:") & 0x7fff_ffff;
        assert_ne!(
            caught("self"),
            0,
            "the harness catches nothing: nothing tested"
        );
        assert_eq!(caught(&outside), 0);
        let term_int = (1 << (libc::SIGTERM - 1)) | (1 << (libc::SIGINT - 1));
        assert_eq!(mask(outside, "SigBlk:") & term_int, term_int);
        child.stdin.take().unwrap().write_all(b"hi\n").unwrap();
        assert_eq!(first_line(&mut child), "got hi");
        assert_eq!(child.wait().unwrap().code(), Some(5));
    }

    #[test]
    fn the_groups_sigterm_reaches_the_command_not_the_process_outside() {
        if !boxed() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let script = "trap 'exit 3' TERM; echo ready; while :; do sleep 1; done";
        let mut child = spawn_boxed(d.path(), script, None);
        assert_eq!(first_line(&mut child), "ready");
        let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = child.wait().unwrap();
        // The command's own answer to SIGTERM, not the wrapper's death by it.
        assert_eq!((status.code(), status.signal()), (Some(3), None));
    }

    /// A run's cgroup named `pid1-<what>-<pid>`, and a script in a box (given the cgroup's
    /// descriptors by `fds`) that prints its cgroup and waits; None where this machine has
    /// no box or no cgroup per run.
    fn in_a_run_cgroup(
        what: &str,
        fds: impl FnOnce(&RunCgroup) -> CgroupFds,
    ) -> Option<(tempfile::TempDir, RunCgroup, String, std::process::Child)> {
        if !boxed() {
            return None;
        }
        let Some(parent) = Probe::cached().cgroup.clone() else {
            eprintln!("SKIPPED: no cgroup per run here");
            return None;
        };
        let d = tempfile::tempdir().unwrap();
        let name = format!("pid1-{what}-{}", std::process::id());
        let cg = RunCgroup::create(&parent, &name).unwrap();
        let script = "grep '^0::' /proc/self/cgroup; read x";
        let child = spawn_boxed(d.path(), script, Some(fds(&cg)));
        Some((d, cg, name, child))
    }

    /// Where the kernel cannot clone into the cgroup (before Linux 5.7; here: a descriptor
    /// that is not a cgroup's), pid 1 joins it through `cgroup.procs` instead.
    #[test]
    fn where_the_clone_cannot_enter_the_cgroup_pid_1_joins_it() {
        let not_a_cgroup = std::fs::File::open("/dev/null").unwrap();
        let dir = std::os::fd::AsRawFd::as_raw_fd(&not_a_cgroup);
        let Some((_d, cg, name, mut child)) = in_a_run_cgroup("join", |cg| CgroupFds {
            dir,
            procs: cg.fds().1,
        }) else {
            return;
        };
        let line = first_line(&mut child);
        assert!(line.contains(&format!("autoresearch-run-{name}")), "{line}");
        assert!(!cg.kill_all().is_empty());
        assert!(!child.wait().unwrap().success());
    }

    #[test]
    fn pid_1_is_made_in_the_runs_cgroup() {
        let Some((_d, cg, name, mut child)) = in_a_run_cgroup("test", |cg| {
            let (dir, procs) = cg.fds();
            CgroupFds { dir, procs }
        }) else {
            return;
        };
        let line = first_line(&mut child);
        assert!(line.contains(&format!("autoresearch-run-{name}")), "{line}");
        // Everything in the box is in it: killing the cgroup ends the run.
        assert!(!cg.kill_all().is_empty());
        let status = child.wait().unwrap();
        assert!(!status.success(), "{status:?}");
    }
}
