//! The mounts and the wrapper argv of the filesystem walls: the box (`unshare` with user,
//! mount, pid and network namespaces, read-only binds over what the run must not write,
//! then every capability dropped with `setpriv`) and bubblewrap's read-only root. Builds
//! argv only; never spawns a run and never touches the host's mounts (the box's binds live
//! in its own mount namespace and die with it).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::super::Job;

/// The bubblewrap mounts every sandbox starts from: everything read-only, the devices
/// as they are (GPUs live there), a fresh /proc.
pub(crate) const ROOT_BINDS: [&str; 8] = [
    "--ro-bind",
    "/",
    "/",
    "--dev-bind",
    "/dev",
    "/dev",
    "--proc",
    "/proc",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mount {
    ReadOnly,
    /// Read-only where the bind works, else left as it is (an extra wall, not a promise).
    ReadOnlyIfPossible,
    Writable,
    WritableIfThere,
}

/// The batch-script box's pid 1 (a Slurm job's script can carry argv only; local runs enter
/// the same box through system calls, see `enter`), run by `sh -c` inside the new
/// namespaces as their root: binds each
/// `ro:PATH` / `rw:PATH` / `rt:PATH` (read-only where possible) argument over itself
/// (parents first), brings loopback up, then
/// enters the working directory again (the one inherited is on the mount beneath the binds,
/// where relative paths would bypass them), runs the command with no capabilities at all (empty bounding and inheritable sets, no
/// new privileges), so it can neither unmount a bind to reveal the writable original nor
/// regain what it lost through a setuid program.
///
/// The command is a child, not exec'd: the group's SIGTERM reaches it (a pid 1 without a
/// handler would ignore it), and when it ends pid 1 ends and the kernel kills everything
/// left in the namespace, whatever it did to leave the process group.
const BOX_INIT: &str = r#"cmd=$1; shift
for m in "$@"; do
  p=${m#*:}
  [ -e "$p" ] || continue
  case $m in
    rt:*) mount --bind "$p" "$p" 2>/dev/null && mount -o remount,bind,ro "$p" 2>/dev/null; continue ;;
  esac
  mount --bind "$p" "$p" || { echo "autoresearch box: cannot bind $p" >&2; exit 125; }
  case $m in
    ro:*) mount -o remount,bind,ro "$p" || { echo "autoresearch box: cannot make $p read-only" >&2; exit 125; } ;;
    *) mount -o remount,bind,rw "$p" 2>/dev/null ;;
  esac
done
cd -- "$(pwd)" || { echo "autoresearch box: cannot enter $(pwd)" >&2; exit 125; }
ip link set lo up 2>/dev/null
setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all --no-new-privs -- sh -c "$cmd"
exit $?"#;

/// `unshare … -- sh -c BOX_INIT` around `command`, with `mounts` applied inside: the box as
/// a command line, for a batch script.
pub(crate) fn box_command(command: &str, share_net: bool, mounts: &[(PathBuf, Mount)]) -> Command {
    let mut c = Command::new("unshare");
    // A user namespace even for root: it is what makes the binds lockable and the
    // capabilities of the run worthless outside it.
    c.args(["--user", "--map-root-user", "--mount"]);
    if !share_net {
        c.arg("--net");
    }
    // Killing `unshare` (the group's SIGKILL, or our death through the parent-death
    // signal) kills pid 1, which takes the whole namespace with it.
    c.args([
        "--pid",
        "--fork",
        "--kill-child=SIGKILL",
        "--mount-proc",
        "--",
        "sh",
        "-c",
        BOX_INIT,
        "autoresearch-box",
    ]);
    c.arg(command);
    for (path, m) in mounts {
        let mut spec = std::ffi::OsString::from(match m {
            Mount::ReadOnly => "ro:",
            Mount::ReadOnlyIfPossible => "rt:",
            Mount::Writable | Mount::WritableIfThere => "rw:",
        });
        spec.push(path);
        c.arg(spec);
    }
    c
}

/// What the box binds for `job`: the repository and the job's tree stay writable (bound
/// over themselves, so neither can be renamed away and replaced under the orchestrator);
/// read-only are the `protect`ed paths (`.git`, the state folder, the editable and
/// read-only files), in the repository and in the job's tree alike (absolute ones once),
/// git's data wherever it lives, and the cgroup file systems; writable again is the
/// run's folder (the log's). Parents come before children, so an engine worktree under the
/// read-only state folder is writable again before its own protected files are bound.
pub(crate) fn box_mounts(repo: &Path, job: &Job, protect: &[PathBuf]) -> Vec<(PathBuf, Mount)> {
    let cwd = job.cwd.as_path();
    let mut mounts = vec![(repo.to_path_buf(), Mount::Writable)];
    let mut trees = vec![repo];
    if cwd != repo {
        mounts.push((cwd.to_path_buf(), Mount::Writable));
        trees.push(cwd);
    }
    for tree in trees {
        for p in protect.iter().filter(|p| p.is_relative()) {
            mounts.push((tree.join(p), Mount::ReadOnly));
        }
    }
    // Absolute ones once, as they are.
    for p in protect.iter().filter(|p| p.is_absolute()) {
        mounts.push((p.clone(), Mount::ReadOnly));
    }
    // Git's own data wherever it is: the nearest `.git` above each tree (the project may
    // be a subfolder of the repository) and, where that is a file (a worktree, a
    // submodule), the git directory it names and the common one that shares.
    for tree in [repo, cwd] {
        mounts.extend(git_data(tree).into_iter().map(|g| (g, Mount::ReadOnly)));
    }
    // The cgroup file systems: writable, a run could move itself out of its cgroup, or
    // write `cgroup.kill` of the orchestrator's (which its user may own).
    mounts.extend(
        cgroup_mounts()
            .into_iter()
            .map(|m| (m, Mount::ReadOnlyIfPossible)),
    );
    if let Some(run_dir) = job.log_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        mounts.push((run_dir.to_path_buf(), Mount::Writable));
    }
    let mut seen = std::collections::HashSet::new();
    mounts.retain(|(p, _)| seen.insert(p.clone()));
    mounts.sort_by_key(|(p, _)| p.components().count());
    mounts
}

/// The `.git` nearest above `tree`, and the directories a `.git` file points to.
fn git_data(tree: &Path) -> Vec<PathBuf> {
    let Some(dot_git) = tree
        .ancestors()
        .map(|a| a.join(".git"))
        .find(|g| g.exists())
    else {
        return Vec::new();
    };
    let mut found = vec![dot_git.clone()];
    let named = std::fs::read_to_string(&dot_git).ok().and_then(|text| {
        let dir = text.lines().find_map(|l| l.strip_prefix("gitdir:"))?.trim();
        Some(dot_git.parent()?.join(dir))
    });
    if let Some(dir) = named {
        if let Ok(common) = std::fs::read_to_string(dir.join("commondir")) {
            found.extend(std::fs::canonicalize(dir.join(common.trim())));
        }
        found.extend(std::fs::canonicalize(dir));
    }
    found
}

/// Where cgroup (v1 and v2) file systems are mounted, from /proc/self/mountinfo.
fn cgroup_mounts() -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            let point = left.split(' ').nth(4)?;
            // Spaces and such are octal escapes there; such a mount point is left out.
            (matches!(fstype, "cgroup" | "cgroup2") && !point.contains('\\'))
                .then(|| PathBuf::from(point))
        })
        .collect()
}

/// The mounts over bubblewrap's read-only root, parents before children so that a writable
/// folder inside the repository (or a repository inside the temp dir) ends up as intended.
pub(crate) fn bwrap_mounts(repo: &Path, job: &Job, writable: &[PathBuf]) -> Vec<(PathBuf, Mount)> {
    let mut mounts = vec![
        (std::env::temp_dir(), Mount::Writable),
        (repo.to_path_buf(), Mount::ReadOnly),
    ];
    mounts.extend(writable.iter().map(|w| (w.clone(), Mount::WritableIfThere)));
    if let Some(run_dir) = job.log_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        mounts.push((run_dir.to_path_buf(), Mount::Writable));
    }
    mounts.sort_by_key(|(p, _)| p.components().count());
    mounts
}
