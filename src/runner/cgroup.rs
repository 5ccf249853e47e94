//! A cgroup (v2) per run: the run's first process joins it before exec, so everything the
//! run starts is in it whatever it does to its process group, session or environment; at
//! the end the whole cgroup is killed (`cgroup.kill`, else each pid) and removed. Owns only
//! the folders it makes (`autoresearch-run-*` under this process's own cgroup); never
//! moves or kills a process that is not in one of them.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Prefix of the folders this module makes, so stale ones (of a killed orchestrator) can
/// be recognised and removed.
const PREFIX: &str = "autoresearch-run-";

/// Where this process's cgroup (v2) lives, if it may make children there and move a
/// process into one: tried for real with a short-lived `true`.
pub(crate) fn probe() -> Result<PathBuf, String> {
    let parent = own_cgroup().ok_or_else(|| "no cgroup per run (no cgroup2 mount)".to_string())?;
    // Once per process, before any run of ours exists: what a killed orchestrator left.
    remove_stale(&parent);
    let cg = RunCgroup::create(&parent, &format!("probe-{}", std::process::id())).map_err(|e| {
        format!(
            "no cgroup per run (cannot make one in {}: {e})",
            parent.display()
        )
    })?;
    let mut cmd = std::process::Command::new("cat");
    cmd.arg("/proc/self/cgroup")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cg.join_in_child(&mut cmd);
    let out = cmd.output();
    let name = cg.dir.file_name().map(|n| n.to_string_lossy().into_owned());
    cg.remove();
    match (out, name) {
        (Ok(out), Some(name)) if String::from_utf8_lossy(&out.stdout).contains(&name) => Ok(parent),
        _ => Err(format!(
            "no cgroup per run (cannot move a process into one in {})",
            parent.display()
        )),
    }
}

/// `<cgroup2 mount>/<this process's cgroup>`, from /proc/self/mountinfo and /proc/self/cgroup.
fn own_cgroup() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2").then(|| left.split(' ').nth(4))?
    })?;
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
    let own = own.trim_start_matches('/');
    Some(if own.is_empty() {
        PathBuf::from(mount)
    } else {
        Path::new(mount).join(own)
    })
}

/// One run's cgroup; killed and removed when dropped.
#[derive(Debug)]
pub(crate) struct RunCgroup {
    dir: PathBuf,
    /// `cgroup.procs`, open for the child to write `0` (itself) into before exec.
    procs: File,
    /// The folder itself, for a child cloned straight into it (`CLONE_INTO_CGROUP`).
    dir_fd: File,
}

impl RunCgroup {
    /// Makes `<parent>/autoresearch-run-<name>`, first removing empty stale ones.
    pub(crate) fn create(parent: &Path, name: &str) -> std::io::Result<RunCgroup> {
        let dir = parent.join(format!("{PREFIX}{name}"));
        std::fs::create_dir(&dir)?;
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))
            .and_then(|procs| Ok((procs, File::open(&dir)?)));
        match opened {
            Ok((procs, dir_fd)) => Ok(RunCgroup { dir, procs, dir_fd }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    /// Makes the spawned process join this cgroup before exec. A failed join leaves it
    /// where it was (the token scan and the subreaper still find what it starts).
    #[expect(
        unsafe_code,
        reason = "pre_exec is unsafe; the hook makes one write(2) on an already open file"
    )]
    pub(crate) fn join_in_child(&self, cmd: &mut std::process::Command) {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let fd = self.procs.as_raw_fd();
        // SAFETY: the hook runs in the forked child before exec; it makes one write(2) on
        // a descriptor the parent keeps open for the whole spawn, and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
                let _ = nix::unistd::write(fd, b"0");
                Ok(())
            });
        }
    }

    /// The folder's and `cgroup.procs`'s descriptors, open as long as this lives: for a
    /// hook that puts the child (or the child it clones) in here.
    pub(crate) fn fds(&self) -> (i32, i32) {
        use std::os::fd::AsRawFd;
        (self.dir_fd.as_raw_fd(), self.procs.as_raw_fd())
    }

    /// Kills every process in the cgroup; returns those that were in it (pid and start
    /// time, for reaping).
    pub(crate) fn kill_all(&self) -> Vec<(i32, u64)> {
        let pids: Vec<(i32, u64)> = self
            .pids()
            .into_iter()
            .filter_map(|pid| super::procs::stat(pid).map(|s| (pid, s.start)))
            .collect();
        if pids.is_empty() {
            return pids;
        }
        let killed = std::fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.kill"))
            .and_then(|mut f| f.write_all(b"1"))
            .is_ok();
        if !killed {
            // Before cgroup.kill (Linux 5.14): one by one, until none is left to fork.
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let left = self.pids();
                if left.is_empty() || Instant::now() >= deadline {
                    break;
                }
                for pid in left {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
        pids
    }

    fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Kills what is left and removes the folder (retried while the dying empty it).
    pub(crate) fn remove(self) {
        drop(self);
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        self.kill_all();
        let deadline = Instant::now() + Duration::from_secs(2);
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            if !self.dir.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Removes `autoresearch-run-*` folders that are empty: rmdir fails on a cgroup that still
/// holds processes, so a live run of another session is never touched.
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(PREFIX) {
            let _ = std::fs::remove_dir(e.path());
        }
    }
}
