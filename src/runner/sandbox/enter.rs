//! The box as the spawned child makes it for itself, between fork and exec: the user,
//! mount and (unless the network is allowed) network namespaces, the uid and gid maps, the
//! binds of `box_mounts` and loopback, each one or two system calls; then the pid
//! namespace, its pid 1 cloned straight into the run's cgroup, and its /proc (`pid1`);
//! pid 1 runs the command through `setpriv`, which drops every capability. The
//! batch-script box (`mounts::box_command`, for Slurm nodes) does the same with programs:
//! a `mount` process per bind and per remount (31 for a plain repository here, 95–160 ms
//! of every run on a loaded machine), `ip` and `unshare`.
//!
//! Everything is prepared in the parent: the hook runs in the child of a threaded process,
//! where allocating or taking a lock could deadlock, so it makes system calls and nothing
//! else. Never touches the host's mounts: the binds are made after the mount namespace is
//! unshared and made private.

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::errno::Errno;
use nix::libc;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::resource::{Resource, getrlimit};
use nix::sys::statvfs::FsFlags;

use super::mounts::Mount;
use super::pid1::{self, CgroupFds};

/// pid 1 of the box's pid namespace, run by `sh -c` as the namespace's root: runs the
/// command with no capabilities at all (empty bounding and inheritable sets, no new
/// privileges), so it can neither unmount a bind to reveal the writable original nor regain
/// what it lost through a setuid program, nor trace pid 1, which keeps them. The command is
/// a child, not exec'd (`exit $?` keeps the shell from exec'ing its last command): the
/// group's SIGTERM reaches it (a pid 1 without a handler would ignore it), and when it ends
/// pid 1 ends and the kernel kills everything left in the namespace, whatever it did to
/// leave the process group.
const BOX_INIT: &str = r#"setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all --no-new-privs -- sh -c "$1"
exit $?"#;

/// The exit status of a box that could not be made (the batch-script box's too).
pub(super) const CANNOT_BOX: i32 = 125;

/// The flags a bind's remount must repeat: in a user namespace the kernel refuses a remount
/// that would clear them on a mount inherited from the host. Access times are left out, so
/// the kernel keeps the mount's own.
const KEPT: [(FsFlags, MsFlags); 3] = [
    (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
    (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
    (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
];

/// One bind of the box, with the lines stderr gets if it fails.
#[derive(Debug)]
struct Bind {
    path: CString,
    mount: Mount,
    cannot_bind: Vec<u8>,
    cannot_protect: Vec<u8>,
}

/// The box for one run, prepared in the parent for the child to enter.
#[derive(Debug)]
pub(crate) struct BoxEntry {
    share_net: bool,
    /// `0 <euid> 1` and `0 <egid> 1`: root inside is this user outside, as with
    /// `unshare --map-root-user`.
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
    /// Whether this process runs as root, whose /proc files stay its own when non-dumpable.
    root: bool,
    binds: Vec<Bind>,
    /// The working directory, entered again once the binds are made: the one entered
    /// before them is on the mounts beneath, where relative paths would bypass the binds.
    cwd: CString,
    cannot_enter: Vec<u8>,
    /// The run's cgroup, for pid 1 to be made in.
    cgroup: Option<CgroupFds>,
    /// This process's limit on open files: what the process outside pid 1 closes where
    /// `close_range` is missing.
    open_files: u32,
}

impl BoxEntry {
    /// The box with `mounts` (parents first, as `box_mounts` orders them) for a run in
    /// `cwd`, its processes in `cgroup`. Fails only on a path that holds a NUL byte, which
    /// no system call can take.
    pub(crate) fn new(
        share_net: bool,
        mounts: &[(PathBuf, Mount)],
        cwd: &Path,
        cgroup: Option<CgroupFds>,
    ) -> io::Result<Self> {
        let binds = mounts
            .iter()
            .map(|(path, mount)| {
                let shown = path.display();
                Ok(Bind {
                    path: c_path(path)?,
                    mount: *mount,
                    cannot_bind: format!("autoresearch box: cannot bind {shown}").into_bytes(),
                    cannot_protect: format!("autoresearch box: cannot make {shown} read-only")
                        .into_bytes(),
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        let cwd = std::path::absolute(cwd)?;
        Ok(BoxEntry {
            share_net,
            uid_map: format!("0 {} 1", nix::unistd::geteuid()).into_bytes(),
            root: nix::unistd::geteuid().is_root(),
            gid_map: format!("0 {} 1", nix::unistd::getegid()).into_bytes(),
            binds,
            cannot_enter: format!("autoresearch box: cannot enter {}", cwd.display()).into_bytes(),
            cwd: c_path(&cwd)?,
            cgroup,
            open_files: getrlimit(Resource::RLIMIT_NOFILE)
                .map_or(1024, |(soft, _)| soft.min(1 << 20) as u32),
        })
    }

    /// What the child execs once inside, as pid 1 of the box's pid namespace.
    pub(crate) fn command(command: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", BOX_INIT, "autoresearch-box"]).arg(command);
        c
    }

    /// Makes the child enter this box before exec. Hooks added to `cmd` before this run
    /// before it, outside the box (joining the run's cgroup, the limits).
    #[expect(
        unsafe_code,
        reason = "pre_exec is unsafe; the hook only makes system calls on data prepared in the parent"
    )]
    pub(crate) fn enter_in_child(self, cmd: &mut Command) {
        // SAFETY: the hook runs in the forked child before exec. It only reads `self`
        // (allocated in the parent) and makes system calls: unshare, open, write, close,
        // mount, statfs, chdir, socket, ioctl, clone, prctl, waitpid and _exit.
        // No allocation, no lock.
        unsafe {
            cmd.pre_exec(move || {
                self.enter();
                Ok(())
            });
        }
    }

    /// In the child: into the namespaces, the binds, loopback, then pid 1 of the pid
    /// namespace (the process outside never returns from here). Never returns on a failure
    /// that would leave the run less walled than promised: it says why on stderr (the
    /// run's log) and exits with `CANNOT_BOX`.
    fn enter(&self) {
        let mut ns = CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS;
        if !self.share_net {
            ns |= CloneFlags::CLONE_NEWNET;
        }
        if let Err(e) = unshare(ns) {
            fail(b"autoresearch box: cannot make its namespaces (unshare)", e);
        }
        // A non-dumpable process's /proc files are root's (`autoresearch run` makes itself
        // non-dumpable, and this fork inherits it), so a user who is not root cannot write
        // its own maps: dumpable for these three writes only, as the exec'd `unshare` was.
        // Nothing in a box can see this process to trace it meanwhile (it is outside every
        // run's pid namespace); a process of this user outside any box could, and could read
        // the user's shell's environment as well.
        let lift = !self.root && dumpable() == Some(false);
        if lift {
            set_dumpable(true);
        }
        // As `unshare --map-root-user`: setgroups first (an unprivileged gid_map needs it;
        // the file is missing before Linux 3.19, where the map works without).
        let _ = write_file(c"/proc/self/setgroups", b"deny");
        let uid = write_file(c"/proc/self/uid_map", &self.uid_map);
        let gid = uid.and_then(|()| write_file(c"/proc/self/gid_map", &self.gid_map));
        if lift {
            set_dumpable(false);
        }
        if let Err(e) = uid {
            fail(b"autoresearch box: cannot write its uid_map", e);
        }
        if let Err(e) = gid {
            fail(b"autoresearch box: cannot write its gid_map", e);
        }
        // Nothing made in here propagates out (as `unshare --mount` does by default).
        let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
        if let Err(e) = mount(None::<&CStr>, c"/", None::<&CStr>, private, None::<&CStr>) {
            fail(b"autoresearch box: cannot make its mounts private", e);
        }
        for b in &self.binds {
            b.apply();
        }
        if let Err(e) = nix::unistd::chdir(self.cwd.as_c_str()) {
            fail(&self.cannot_enter, e);
        }
        if !self.share_net {
            // Best effort, as `ip link set lo up` was: the probe says when it fails.
            loopback_up();
        }
        pid1::become_pid1(self.cgroup, self.open_files);
    }
}

impl Bind {
    /// Binds the path over itself, then remounts the bind read-only or writable. A path
    /// that does not exist is skipped (there is nothing to write there to protect);
    /// `ReadOnlyIfPossible` is skipped wherever it fails.
    fn apply(&self) {
        let path = self.path.as_c_str();
        match mount(
            Some(path),
            path,
            None::<&CStr>,
            MsFlags::MS_BIND,
            None::<&CStr>,
        ) {
            Ok(()) => {}
            Err(Errno::ENOENT | Errno::ENOTDIR) => return,
            Err(_) if self.mount == Mount::ReadOnlyIfPossible => return,
            Err(e) => fail(&self.cannot_bind, e),
        }
        let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | kept_flags(path);
        let read_only = matches!(self.mount, Mount::ReadOnly | Mount::ReadOnlyIfPossible);
        if read_only {
            flags |= MsFlags::MS_RDONLY;
        }
        // Writable ones are remounted too: a bind under a read-only one starts read-only.
        let remounted = mount(None::<&CStr>, path, None::<&CStr>, flags, None::<&CStr>);
        if let (Err(e), Mount::ReadOnly) = (remounted, self.mount) {
            fail(&self.cannot_protect, e);
        }
    }
}

/// Of the flags the mount at `path` has, those a remount must repeat.
fn kept_flags(path: &CStr) -> MsFlags {
    let Ok(fs) = nix::sys::statfs::statfs(path) else {
        return MsFlags::empty();
    };
    let have = fs.flags();
    KEPT.iter()
        .filter(|(st, _)| have.contains(*st))
        .fold(MsFlags::empty(), |acc, (_, ms)| acc | *ms)
}

/// `ip link set lo up`, as one ioctl on a socket of the new network namespace.
#[expect(
    unsafe_code,
    reason = "socket and ioctl through libc; ifreq is plain old data"
)]
fn loopback_up() {
    // SAFETY: plain system calls on a zeroed C struct and a descriptor closed here.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return;
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo") {
            *dst = *src as libc::c_char;
        }
        if libc::ioctl(s, libc::SIOCGIFFLAGS as _, &mut req) == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(s, libc::SIOCSIFFLAGS as _, &req);
        }
        libc::close(s);
    }
}

/// Whether this process is dumpable (`PR_GET_DUMPABLE`), None where it cannot say.
#[expect(unsafe_code, reason = "prctl through libc")]
fn dumpable() -> Option<bool> {
    // SAFETY: a plain system call.
    match unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) } {
        0 => Some(false),
        n if n > 0 => Some(true),
        _ => None,
    }
}

#[expect(unsafe_code, reason = "prctl through libc")]
fn set_dumpable(on: bool) {
    // SAFETY: a plain system call.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, libc::c_ulong::from(on), 0, 0, 0);
    }
}

/// Writes `data` to an existing file in one write(2).
#[expect(unsafe_code, reason = "open, write and close through libc")]
fn write_file(path: &CStr, data: &[u8]) -> Result<(), Errno> {
    // SAFETY: plain system calls; `data` outlives them and the descriptor is closed here.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(Errno::last());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let err = Errno::last();
        libc::close(fd);
        if n == data.len() as isize {
            Ok(())
        } else {
            Err(err)
        }
    }
}

/// Says `what: <errno>` on stderr and ends the child with `CANNOT_BOX`.
#[expect(
    unsafe_code,
    reason = "write and _exit through libc, in the forked child"
)]
pub(super) fn fail(what: &[u8], e: Errno) -> ! {
    let why = e.desc().as_bytes();
    // SAFETY: write(2) on stderr and _exit(2): async-signal-safe, no allocation.
    unsafe {
        for part in [what, b": ", why, b"\n"] {
            libc::write(2, part.as_ptr().cast(), part.len());
        }
        libc::_exit(CANNOT_BOX)
    }
}

fn c_path(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the box cannot bind {}: the path holds a NUL byte",
                p.display()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;
    use std::process::Stdio;

    use super::super::tests::boxed;

    fn run_in_box(
        dir: &Path,
        mounts: &[(PathBuf, Mount)],
        share_net: bool,
        script: &str,
    ) -> (i32, String, String) {
        let entry = BoxEntry::new(share_net, mounts, dir, None).unwrap();
        let mut cmd = BoxEntry::command(script);
        entry.enter_in_child(&mut cmd);
        let out = cmd.current_dir(dir).stdin(Stdio::null()).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[test]
    fn the_binds_hold_in_the_box_and_nowhere_else() {
        if !boxed() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("state/run")).unwrap();
        std::fs::write(root.join("train.py"), "x").unwrap();
        let mounts = [
            (root.to_path_buf(), Mount::Writable),
            (root.join("state"), Mount::ReadOnly),
            (root.join("train.py"), Mount::ReadOnly),
            (root.join("missing"), Mount::ReadOnly),
            (root.join("state/run"), Mount::Writable),
        ];
        // Relative paths: the working directory was entered again on top of the binds.
        let script = "(echo y > train.py) 2>/dev/null && echo TRAIN-WRITTEN; \
             (echo y > state/x) 2>/dev/null && echo STATE-WRITTEN; \
             echo y > state/run/log && echo RUN-WRITTEN; \
             echo y > other && echo OTHER-WRITTEN; \
             grep -q '^CapEff:[[:space:]]*0*$' /proc/self/status && echo NO-CAPS; \
             grep -q '127\\.0\\.0\\.1' /proc/net/fib_trie && echo LOOPBACK-UP; \
             ls /proc | grep -c '^[0-9]' ; exit 7";
        let (code, out, err) = run_in_box(root, &mounts, false, script);
        assert_eq!(code, 7, "{out}\n{err}");
        for yes in ["RUN-WRITTEN", "OTHER-WRITTEN", "NO-CAPS", "LOOPBACK-UP"] {
            assert!(out.contains(yes), "{yes} missing: {out}\n{err}");
        }
        for no in ["TRAIN-WRITTEN", "STATE-WRITTEN"] {
            assert!(!out.contains(no), "{no}: {out}\n{err}");
        }
        // Its own pid namespace: a handful of processes, not the machine's.
        let procs: usize = out.lines().last().unwrap().trim().parse().unwrap();
        assert!(procs < 10, "{procs} processes seen: {out}");
        // Outside, nothing changed: the host's mounts were never touched.
        assert_eq!(std::fs::read_to_string(root.join("train.py")).unwrap(), "x");
        std::fs::write(root.join("state/x"), "host").unwrap();
        assert!(!root.join("missing").exists());
    }

    #[test]
    fn with_the_network_allowed_the_box_keeps_the_hosts_network() {
        if !boxed() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let host = std::fs::read_to_string("/proc/net/dev")
            .unwrap()
            .lines()
            .count();
        let (code, out, err) = run_in_box(d.path(), &[], true, "wc -l < /proc/net/dev");
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.trim().parse::<usize>().unwrap(), host, "{out}");
    }

    #[test]
    fn a_path_with_a_nul_byte_is_refused_before_the_spawn() {
        let bad = PathBuf::from(std::ffi::OsString::from_vec(b"/tmp/a\0b".to_vec()));
        let err =
            BoxEntry::new(false, &[(bad, Mount::ReadOnly)], Path::new("/tmp"), None).unwrap_err();
        assert!(err.to_string().contains("NUL byte"), "{err}");
    }
}
