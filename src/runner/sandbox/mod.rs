//! The sandbox a training command runs in: the box (user, mount, pid and network
//! namespaces with read-only binds over what the run must not write, no capabilities), a
//! network namespace alone where the box cannot be made, bubblewrap's read-only root, the
//! user's container template, a cgroup per run, and per-process resource limits. Turns
//! `[sandbox]` and what the probe found into the argv the runner spawns. Never spawns a run
//! itself, and never leaves the runner's process group: every wrapper here execs (or waits
//! for) the training command in the same group, with the same environment.
//!
//! What each mode means for a training script:
//! - the box (`auto`, `unshare`): it cannot write the repository's `.git`, the editable
//!   and read-only files, or `.autoresearch` outside its own run folder; it sees only its
//!   own processes (not the orchestrator's environment or memory) and only loopback; it
//!   has no capabilities, so it cannot unmount the binds; when it ends, everything it
//!   started ends with its pid namespace. The rest of the filesystem is as usual: the home
//!   (`~/.cache`), the temp dir, `/dev` (GPUs) and the repository's other files.
//! - `unshare` without the box (no user namespaces here): only the network changes.
//! - `bwrap`: everything is read-only but the run's own `.autoresearch/runs/<id>/`, the
//!   system temp dir and `[sandbox] writable`. Scripts that write checkpoints, datasets or
//!   caches (`~/.cache/huggingface`, `~/.cache/torch`, `./out`) need those folders listed.
//!   Devices are bound as they are, so GPUs keep working.
//! - `container`: the template is the user's; the tool only kills the runtime client's
//!   process group at the timeout. A runtime whose containers outlive their client (plain
//!   `docker run`) should get `--init` (so the command gets signals) and `--rm`; the
//!   template should also pass `--network none` and `{env}` (the run token and settings).
//! - `memory` is RLIMIT_AS per process: CUDA reserves far more address space than it
//!   uses, so it suits CPU runs; use the container's `--memory` for GPU runs.

mod container;
mod enter;
mod limits;
mod mounts;
mod pid1;
mod probe;

pub use container::expand;
pub(crate) use container::quote;
pub(crate) use limits::apply_limits;
pub use probe::Probe;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::{Network, SandboxConfig, SandboxMode, format_size};

use super::Job;
use super::cgroup::RunCgroup;
use container::{disables_network, gpu_list};
use mounts::{Mount, ROOT_BINDS, box_command, box_mounts, bwrap_mounts};

/// How one job's command is wrapped, and the limits it runs under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandbox {
    pub isolation: Isolation,
    pub limits: Limits,
    /// The cgroup (v2) under which the run gets its own, killed as a whole at its end.
    pub cgroup: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Isolation {
    /// `sh -c <command>` as it is.
    #[default]
    None,
    /// The box: user, mount, pid [and network] namespaces, read-only binds over `protect`
    /// (paths relative to the repository and to the job's tree), then `setpriv` with no
    /// capabilities. Made by the spawned child itself for local runs (`enter`, `pid1`),
    /// by `unshare` and a shell's `mount`s in a batch script (`mounts::box_command`).
    Box {
        share_net: bool,
        repo: PathBuf,
        protect: Vec<PathBuf>,
    },
    /// `unshare --net` (as root) or `unshare --net --map-root-user`, then loopback up.
    Unshare { map_root: bool },
    /// bubblewrap: `/` read-only, the repository read-only, writable only the run's folder
    /// (the log's folder), the temp dir and `writable`; no network unless `share_net`.
    Bwrap {
        share_net: bool,
        repo: PathBuf,
        writable: Vec<PathBuf>,
    },
    /// The user's template, run with `sh -c` after substituting `{command}`, `{repo}`,
    /// `{gpu}` and `{env}`.
    Container { template: String, gpu: String },
}

/// Per-process limits, inherited by everything the command starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// RLIMIT_AS in bytes.
    pub address_space: Option<u64>,
    /// RLIMIT_NOFILE.
    pub open_files: Option<u64>,
}

/// A sandbox chosen for a session, with the line that says what is in effect.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub sandbox: Sandbox,
    /// What is in force and what is not, in one line (said once, at the start).
    pub summary: String,
    /// Something the user should know about the isolation (said once, at the start).
    pub warning: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "cannot cut training runs off the network on this machine ({why}); install util-linux (unshare) or bubblewrap, or set [sandbox] network = \"allow\" to run without network isolation"
    )]
    NoIsolation { why: String },
    #[error(
        "[sandbox] mode = \"{mode}\" does not work on this machine ({why}); {fix}, or set mode = \"auto\""
    )]
    ModeUnavailable {
        mode: &'static str,
        why: String,
        fix: &'static str,
    },
}

/// The shell snippet that brings loopback up inside a fresh namespace (`unshare` leaves it
/// down) and then runs the user's command, passed as `$1` so its quoting is never touched.
const LOOPBACK_UP: &str = "ip link set lo up 2>/dev/null; exec sh -c \"$1\"";

/// Chooses the sandbox for `[sandbox]` on a machine that can do what `probe` found.
/// `protect`: the paths the box keeps read-only, relative to the repository (and to an
/// engine worktree). Refuses (rather than silently running with the network) when the
/// network must be denied and nothing here can deny it.
pub fn resolve(
    cfg: &SandboxConfig,
    repo: &Path,
    protect: &[PathBuf],
    probe: &Probe,
) -> Result<Resolved, SandboxError> {
    let deny = cfg.network == Network::Deny;
    let limits = Limits {
        address_space: cfg.memory,
        open_files: cfg.open_files,
    };
    let boxed = || {
        probe.boxed.then(|| Isolation::Box {
            share_net: !deny,
            repo: repo.to_path_buf(),
            protect: protect.to_vec(),
        })
    };
    let unshare = || {
        (probe.unshare_net || probe.unshare_userns).then_some(Isolation::Unshare {
            map_root: !probe.unshare_net,
        })
    };
    let bwrap = || {
        probe.bwrap.then(|| Isolation::Bwrap {
            share_net: !deny,
            repo: repo.to_path_buf(),
            writable: writable_paths(&cfg.writable, repo),
        })
    };
    let isolation = match cfg.mode {
        SandboxMode::None => Isolation::None,
        SandboxMode::Container => Isolation::Container {
            template: cfg.container.clone().unwrap_or_default(),
            gpu: gpu_list(),
        },
        SandboxMode::Auto | SandboxMode::Unshare if !deny => boxed().unwrap_or_default(),
        SandboxMode::Auto => match boxed().or_else(unshare).or_else(bwrap) {
            Some(i) => i,
            None => return Err(SandboxError::NoIsolation { why: probe.why() }),
        },
        SandboxMode::Unshare => boxed().or_else(unshare).ok_or_else(|| {
            SandboxError::ModeUnavailable {
                mode: "unshare",
                why: probe.why(),
                fix: "run as root or enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)",
            }
        })?,
        SandboxMode::Bwrap => bwrap().ok_or_else(|| SandboxError::ModeUnavailable {
            mode: "bwrap",
            why: probe.why(),
            fix: "install bubblewrap (apt-get install bubblewrap) and allow user namespaces",
        })?,
    };
    let boxable = matches!(cfg.mode, SandboxMode::Auto | SandboxMode::Unshare);
    let warning = match &isolation {
        Isolation::Box { share_net: false, .. } if !probe.box_loopback => Some(
            "loopback stays down inside the training runs' network namespace (`ip link set lo up` failed); install iproute2 if the script talks to 127.0.0.1"
                .to_string(),
        ),
        Isolation::Unshare { .. } | Isolation::Bwrap { .. } | Isolation::None
            if boxable && !probe.boxed =>
        {
            let instead = if matches!(isolation, Isolation::Bwrap { .. }) {
                "bubblewrap instead: all but the run's folder and the temp dir is read-only, but training runs see this process and what they leave behind is found only by their group, token and cgroup"
            } else {
                "training runs can write the repository's .git, its protected files and .autoresearch, and see this process"
            };
            Some(format!(
                "the box is not available here ({}): {instead}; install util-linux with setpriv and allow user namespaces to get it",
                probe.box_why()
            ))
        }
        Isolation::Unshare { .. } if !probe.loopback => Some(
            "loopback stays down inside the training runs' network namespace (`ip link set lo up` failed); install iproute2 if the script talks to 127.0.0.1"
                .to_string(),
        ),
        Isolation::Container { template, .. } if deny && !disables_network(template) => Some(
            "[sandbox] container template has no `--network none`: the container's network is up to the template; add it to keep training runs offline"
                .to_string(),
        ),
        _ => None,
    };
    let cgroup = (cfg.mode != SandboxMode::None)
        .then(|| probe.cgroup.clone())
        .flatten();
    let sandbox = Sandbox {
        isolation,
        limits,
        cgroup,
    };
    let summary = describe(&sandbox, cfg.mode, probe);
    Ok(Resolved {
        sandbox,
        summary,
        warning,
    })
}

fn describe(s: &Sandbox, mode: SandboxMode, probe: &Probe) -> String {
    let mut text = match &s.isolation {
        Isolation::None if mode == SandboxMode::None => {
            "none (mode = \"none\"): training runs see the network and the whole filesystem"
                .to_string()
        }
        Isolation::None => {
            "no isolation (network = \"allow\"): training runs see the network and the whole filesystem"
                .to_string()
        }
        Isolation::Box { share_net, .. } => format!(
            "the box (user, mount, pid{} namespaces, no capabilities): {}; read-only: .git, the editable and read-only files, .autoresearch but the run's folder; hidden: the orchestrator's processes, environment and memory; not stopped: reading what your user can read, writing elsewhere (home, ~/.cache, {}, the repository's other files)",
            if *share_net { "" } else { ", network" },
            if *share_net {
                "network allowed"
            } else {
                "no network (loopback only)"
            },
            std::env::temp_dir().display(),
        ),
        Isolation::Unshare { map_root } => format!(
            "network namespace via `unshare --net{}` (loopback only)",
            if *map_root { " --map-root-user" } else { "" }
        ),
        Isolation::Bwrap {
            share_net,
            writable,
            ..
        } => format!(
            "bubblewrap: {}; the repository read-only, writable only the run's folder, {}{}",
            if *share_net {
                "network allowed"
            } else {
                "no network (loopback only)"
            },
            std::env::temp_dir().display(),
            writable
                .iter()
                .map(|w| format!(", {}", w.display()))
                .collect::<String>()
        ),
        Isolation::Container { template, .. } => format!(
            "container via `{}` (the time limit is still enforced here)",
            template.split_whitespace().next().unwrap_or("")
        ),
    };
    if mode != SandboxMode::None {
        if non_dumpable() {
            text.push_str("; the orchestrator non-dumpable");
        }
        match &s.cgroup {
            Some(_) => text.push_str("; a cgroup per run, killed whole at its end"),
            None => text.push_str(&format!(
                "; {} (leftovers are found by the run token and reaped as a subreaper)",
                probe.cgroup_why()
            )),
        }
    }
    let mut limits = Vec::new();
    if let Some(m) = s.limits.address_space {
        limits.push(format!("memory {} per process", format_size(m)));
    }
    if let Some(n) = s.limits.open_files {
        limits.push(format!("{n} open files"));
    }
    if !limits.is_empty() {
        text.push_str(&format!("; limits: {}", limits.join(", ")));
    }
    text
}

/// Whether this process refuses ptrace and /proc reads of its memory and environment by
/// processes of the same user (`prctl(PR_SET_DUMPABLE, 0)`, set by `autoresearch run`).
fn non_dumpable() -> bool {
    #[cfg(target_os = "linux")]
    {
        nix::sys::prctl::get_dumpable().is_ok_and(|d| !d)
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// `~/x` is under $HOME, a relative path under the repository. Missing folders are created,
/// so a script can fill a cache that does not exist yet.
fn writable_paths(list: &[String], repo: &Path) -> Vec<PathBuf> {
    list.iter()
        .filter_map(|w| {
            let p = crate::config::home_path(w)?;
            let p = if p.is_absolute() { p } else { repo.join(p) };
            // Best effort: bwrap skips what still does not exist (`--bind-try`).
            let _ = std::fs::create_dir_all(&p);
            Some(p)
        })
        .collect()
}

impl Sandbox {
    /// Whether training runs cannot write git's data (refs, HEAD, config) at all: then a
    /// ref that moves while a run trains is the user's own doing, not the run's.
    pub fn walls_off_git(&self) -> bool {
        matches!(self.isolation, Isolation::Box { .. })
    }

    /// The process to spawn for `job`: program and arguments only, so that it can also be
    /// written into a batch script (Slurm); the runner adds the directory, environment,
    /// pipes, process group and limits. The local runner spawns `local_command`'s.
    pub(crate) fn command(&self, job: &Job) -> Command {
        match &self.isolation {
            Isolation::None => sh(&job.command),
            Isolation::Box {
                share_net,
                repo,
                protect,
            } => box_command(&job.command, *share_net, &box_mounts(repo, job, protect)),
            Isolation::Unshare { map_root } => {
                let mut c = Command::new("unshare");
                c.arg("--net");
                if *map_root {
                    c.arg("--map-root-user");
                }
                c.args(["--", "sh", "-c", LOOPBACK_UP, "autoresearch-sandbox"])
                    .arg(&job.command);
                c
            }
            Isolation::Bwrap {
                share_net,
                repo,
                writable,
            } => {
                let mut c = Command::new("bwrap");
                // Without a PID namespace bwrap's child stays in our process group, so the
                // group kill and the token scan reach it; --die-with-parent covers the rest.
                c.arg("--die-with-parent");
                if !share_net {
                    c.arg("--unshare-net");
                }
                c.args(ROOT_BINDS);
                for (path, rw) in bwrap_mounts(repo, job, writable) {
                    let flag = match rw {
                        Mount::ReadOnly | Mount::ReadOnlyIfPossible => "--ro-bind",
                        Mount::Writable => "--bind",
                        Mount::WritableIfThere => "--bind-try",
                    };
                    c.arg(flag).arg(&path).arg(&path);
                }
                c.arg("--chdir").arg(&job.cwd);
                c.args(["--", "sh", "-c"]).arg(&job.command);
                c
            }
            Isolation::Container { template, gpu } => sh(&expand(template, job, gpu)),
        }
    }

    /// The process the local runner spawns for `job`: `command`'s, but the box is made by
    /// the child itself before exec (namespaces, binds and pid 1 as system calls, see
    /// `enter`) rather than by a program per step. `outside` adds the hooks that must run
    /// before the child enters the box's user namespace (the parent-death signal, the
    /// limits); the box's own hook is added after them. The run's processes go into
    /// `cgroup`: pid 1 of the box is made in it, anything else joins it before exec.
    pub(crate) fn local_command(
        &self,
        job: &Job,
        cgroup: Option<&RunCgroup>,
        outside: impl FnOnce(&mut Command),
    ) -> std::io::Result<Command> {
        let Isolation::Box {
            share_net,
            repo,
            protect,
        } = &self.isolation
        else {
            let mut c = self.command(job);
            outside(&mut c);
            if let Some(cg) = cgroup {
                cg.join_in_child(&mut c);
            }
            return Ok(c);
        };
        let mounts = box_mounts(repo, job, protect);
        let fds = cgroup.map(|cg| {
            let (dir, procs) = cg.fds();
            pid1::CgroupFds { dir, procs }
        });
        let entry = enter::BoxEntry::new(*share_net, &mounts, &job.cwd, fds)?;
        let mut c = enter::BoxEntry::command(&job.command);
        outside(&mut c);
        entry.enter_in_child(&mut c);
        Ok(c)
    }

    /// The box's pid 1 is a shell, which reports a command killed by signal N as exit
    /// 128+N (as any shell does); the runner turns that back into the signal.
    pub(crate) fn reports_signals_as_codes(&self) -> bool {
        matches!(self.isolation, Isolation::Box { .. })
    }
}

fn sh(command: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(command);
    c
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    /// Whether the box works here; where it must (`AUTORESEARCH_REQUIRE_SANDBOX`), a
    /// machine without it fails the test instead of skipping it.
    pub(crate) fn boxed() -> bool {
        let p = Probe::cached();
        if !p.boxed {
            assert!(
                std::env::var_os("AUTORESEARCH_REQUIRE_SANDBOX").is_none(),
                "the box is required but does not work here: {}",
                p.box_why()
            );
            eprintln!("SKIPPED: the box does not work here ({})", p.box_why());
        }
        p.boxed
    }

    fn job(command: &str) -> Job {
        Job {
            command: command.into(),
            cwd: "/work/my repo".into(),
            env: vec![("AUTORESEARCH_SEED".into(), "1".into())],
            budget: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            grace: Duration::from_secs(1),
            log_path: "/work/my repo/.autoresearch/runs/0001/run.log".into(),
            max_log_bytes: 1 << 20,
            sandbox: Sandbox::default(),
            attach: None,
        }
    }

    #[test]
    fn the_template_gets_quoted_words() {
        let t =
            "docker run --rm {env} -v {repo}:{repo} -w {repo} --gpus device={gpu} img {command}";
        let out = expand(t, &job("python train.py && echo 'done'"), "0,1");
        assert_eq!(
            out,
            "docker run --rm -e AUTORESEARCH_SEED -e AUTORESEARCH_RUN_TOKEN -v '/work/my repo':'/work/my repo' -w '/work/my repo' --gpus device=0,1 img sh -c 'python train.py && echo '\\''done'\\'''"
        );
    }

    #[test]
    fn mounts_put_parents_first() {
        let j = job("true");
        let m = bwrap_mounts(
            Path::new("/work/my repo"),
            &j,
            &["/work/my repo/.cache".into()],
        );
        let order: Vec<_> = m.iter().map(|(p, _)| p.display().to_string()).collect();
        let repo = order.iter().position(|p| p == "/work/my repo").unwrap();
        let cache = order.iter().position(|p| p.ends_with(".cache")).unwrap();
        let run = order.iter().position(|p| p.ends_with("0001")).unwrap();
        assert!(repo < cache && repo < run, "{order:?}");
    }

    #[test]
    fn nothing_to_isolate_with_is_refused_unless_allowed() {
        let none = Probe {
            problems: vec!["`unshare` is not installed".into()],
            ..Probe::default()
        };
        let cfg = SandboxConfig::default();
        let err = resolve(&cfg, Path::new("/r"), &[], &none)
            .unwrap_err()
            .to_string();
        assert!(err.contains("network = \"allow\""), "{err}");
        assert!(err.contains("not installed"), "{err}");
        let allow = SandboxConfig {
            network: Network::Allow,
            ..SandboxConfig::default()
        };
        let r = resolve(&allow, Path::new("/r"), &[], &none).unwrap();
        assert_eq!(r.sandbox.isolation, Isolation::None);
        let userns = Probe {
            unshare_userns: true,
            ..Probe::default()
        };
        let r = resolve(&cfg, Path::new("/r"), &[], &userns).unwrap();
        assert_eq!(r.sandbox.isolation, Isolation::Unshare { map_root: true });
        assert!(r.warning.unwrap().contains("the box is not available"));
        let boxed = Probe {
            boxed: true,
            box_loopback: true,
            ..Probe::default()
        };
        let r = resolve(&cfg, Path::new("/r"), &[], &boxed).unwrap();
        assert!(matches!(
            r.sandbox.isolation,
            Isolation::Box {
                share_net: false,
                ..
            }
        ));
        assert!(r.warning.is_none(), "{:?}", r.warning);
        assert!(r.summary.contains("no cgroup") || r.summary.contains("not tried"));
        let r = resolve(&allow, Path::new("/r"), &[], &boxed).unwrap();
        assert!(matches!(
            r.sandbox.isolation,
            Isolation::Box {
                share_net: true,
                ..
            }
        ));
    }

    #[test]
    fn the_box_binds_an_engine_worktree_writable_under_the_read_only_state_folder() {
        let mut j = job("true");
        j.cwd = "/work/my repo/.autoresearch/worktrees/w1".into();
        let protect: Vec<PathBuf> = vec![".git".into(), ".autoresearch".into(), "train.py".into()];
        let m = mounts::box_mounts(Path::new("/work/my repo"), &j, &protect);
        let at = |p: &str| {
            m.iter()
                .position(|(q, _)| q == Path::new(p))
                .unwrap_or_else(|| panic!("{p} not bound: {m:?}"))
        };
        let mode = |p: &str| m[at(p)].1;
        assert_eq!(mode("/work/my repo"), Mount::Writable);
        assert_eq!(mode("/work/my repo/.git"), Mount::ReadOnly);
        assert_eq!(mode("/work/my repo/.autoresearch"), Mount::ReadOnly);
        assert_eq!(mode("/work/my repo/train.py"), Mount::ReadOnly);
        let wt = "/work/my repo/.autoresearch/worktrees/w1";
        assert_eq!(mode(wt), Mount::Writable);
        assert_eq!(mode(&format!("{wt}/.git")), Mount::ReadOnly);
        assert_eq!(mode(&format!("{wt}/train.py")), Mount::ReadOnly);
        assert_eq!(
            mode("/work/my repo/.autoresearch/runs/0001"),
            Mount::Writable
        );
        assert!(at("/work/my repo/.autoresearch") < at(wt));
        assert!(at(wt) < at(&format!("{wt}/train.py")));
        assert!(at("/work/my repo/.autoresearch") < at("/work/my repo/.autoresearch/runs/0001"));
    }
}
