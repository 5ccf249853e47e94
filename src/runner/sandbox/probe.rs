//! What this machine can isolate training runs with, found once per process by trying each
//! method for real (a namespace that cannot be made is only known by making it). Never
//! decides which method a session uses: `resolve` does, from what this finds.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::enter::BoxEntry;
use super::mounts::{self, Mount};

/// What this machine can isolate with, found by trying each method once.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// The whole box works: user, mount, pid and network namespaces with `unshare`, a
    /// read-only bind that holds, and the capabilities dropped with `setpriv`.
    pub boxed: bool,
    /// Loopback comes up inside the box's network namespace (`ip link set lo up`).
    pub box_loopback: bool,
    /// `unshare --net true` works (root or CAP_SYS_ADMIN).
    pub unshare_net: bool,
    /// `unshare --net --map-root-user true` works (unprivileged user namespaces).
    pub unshare_userns: bool,
    /// `ip link set lo up` works inside such a namespace.
    pub loopback: bool,
    /// bubblewrap runs with a fresh network namespace and a read-only root.
    pub bwrap: bool,
    /// The cgroup (v2) under which each run gets its own, when this process may make them.
    pub cgroup: Option<PathBuf>,
    /// Why each failed method failed, one short phrase each.
    pub problems: Vec<String>,
}

impl Probe {
    /// The probe of this process, run on first use: the machine does not change under a
    /// session, and each try starts processes.
    pub fn cached() -> &'static Probe {
        static PROBE: OnceLock<Probe> = OnceLock::new();
        PROBE.get_or_init(Probe::run)
    }

    /// Tries every method now.
    pub fn run() -> Probe {
        let mut p = Probe::default();
        match try_box() {
            Ok(loopback) => {
                p.boxed = true;
                p.box_loopback = loopback;
            }
            Err(e) => p.problems.push(e),
        }
        match try_run("unshare", &["--net", "true"]) {
            Ok(()) => p.unshare_net = true,
            Err(e) => p.problems.push(e),
        }
        if !p.unshare_net {
            match try_run("unshare", &["--net", "--map-root-user", "true"]) {
                Ok(()) => p.unshare_userns = true,
                Err(e) => p.problems.push(e),
            }
        }
        if p.unshare_net || p.unshare_userns {
            let mut args = vec!["--net"];
            if !p.unshare_net {
                args.push("--map-root-user");
            }
            args.extend(["ip", "link", "set", "lo", "up"]);
            match try_run("unshare", &args) {
                Ok(()) => p.loopback = true,
                Err(e) => p.problems.push(e),
            }
        }
        let mut bwrap = vec!["--die-with-parent", "--unshare-net"];
        bwrap.extend(mounts::ROOT_BINDS);
        bwrap.extend(["--", "true"]);
        match try_run("bwrap", &bwrap) {
            Ok(()) => p.bwrap = true,
            Err(e) => p.problems.push(e),
        }
        match crate::runner::cgroup::probe() {
            Ok(dir) => p.cgroup = Some(dir),
            Err(e) => p.problems.push(e),
        }
        p
    }

    /// Every problem of the isolation methods once, in the order found (the cgroup's is
    /// said on its own: it isolates nothing).
    pub(crate) fn why(&self) -> String {
        let mut seen: Vec<&str> = Vec::new();
        for p in self.problems.iter().filter(|p| !p.starts_with("no cgroup")) {
            if !seen.contains(&p.as_str()) {
                seen.push(p);
            }
        }
        if seen.is_empty() {
            "no method was tried".into()
        } else {
            seen.join("; ")
        }
    }

    /// The problems of the box alone (what made `boxed` false).
    pub(crate) fn box_why(&self) -> String {
        self.problems
            .iter()
            .find(|p| p.starts_with("the box"))
            .cloned()
            .unwrap_or_else(|| "not tried".into())
    }

    /// Why there is no cgroup per run.
    pub(crate) fn cgroup_why(&self) -> String {
        self.problems
            .iter()
            .find(|p| p.starts_with("no cgroup"))
            .cloned()
            .unwrap_or_else(|| "not tried".into())
    }
}

/// Builds a box around a scratch folder made read-only and checks from inside that the
/// wall holds, that the capabilities are gone, and whether loopback came up.
fn try_box() -> Result<bool, String> {
    let scratch = std::env::temp_dir().join(format!("autoresearch-probe-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("the box: no scratch folder: {e}"))?;
    let result = box_check(&scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn box_check(scratch: &Path) -> Result<bool, String> {
    let target = scratch.join("wall");
    // Loopback is up when `ip` says so or, without `ip`, when its address is in the
    // namespace's routing table (the kernel adds 127.0.0.1 only once lo is up).
    let script = format!(
        "{{ ip link show lo 2>/dev/null | grep -q ',UP' || grep -q '127\\.0\\.0\\.1' /proc/net/fib_trie 2>/dev/null; }} && echo LOOPBACK-UP; \
         (echo x > '{}') 2>/dev/null && echo WALL-BROKEN; \
         grep -q '^CapEff:[[:space:]]*0*$' /proc/self/status || echo CAPS-KEPT; \
         echo BOX-OK",
        target.display()
    );
    // The box as local runs get it (made by the child itself, see `enter`).
    let mounts = [(scratch.to_path_buf(), Mount::ReadOnly)];
    let entry =
        BoxEntry::new(false, &mounts, scratch, None).map_err(|e| format!("the box: {e}"))?;
    let mut cmd = BoxEntry::command(&script);
    entry.enter_in_child(&mut cmd);
    let out = cmd
        .current_dir(scratch)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "the box: `unshare` is not installed".to_string(),
            _ => format!("the box: cannot start `unshare`: {e}"),
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !stdout.contains("BOX-OK") {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty());
        return Err(format!(
            "the box (`unshare --user --mount --pid --net` + `setpriv`) failed: {}",
            last.map_or_else(|| out.status.to_string(), |l| l.trim().to_string())
        ));
    }
    if stdout.contains("WALL-BROKEN") {
        return Err("the box: a read-only bind mount did not hold".into());
    }
    if stdout.contains("CAPS-KEPT") {
        return Err("the box: `setpriv` did not drop the capabilities".into());
    }
    Ok(stdout.contains("LOOPBACK-UP"))
}

/// Runs `program args` with no input and reports why it failed, in a few words.
fn try_run(program: &str, args: &[&str]) -> Result<(), String> {
    let shown = format!("`{program} {}`", args.join(" "));
    let shown = shown.replace(&mounts::ROOT_BINDS.join(" "), "…");
    match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err.lines().rev().find(|l| !l.trim().is_empty());
            Err(format!(
                "{shown} failed: {}",
                last.map_or_else(|| out.status.to_string(), |l| l.trim().to_string())
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("`{program}` is not installed"))
        }
        Err(e) => Err(format!("{shown} failed: {e}")),
    }
}
