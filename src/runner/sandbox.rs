//! The sandbox a training command runs in: a fresh network namespace (`unshare`), a
//! read-only filesystem with a few writable folders (bubblewrap), the user's container
//! template, and per-process resource limits. Probes once per process what this machine can
//! do and turns `[sandbox]` into the argv the runner spawns. Never spawns a run itself, and
//! never leaves the runner's process group: every wrapper here execs (or waits for) the
//! training command in the same group, with the same environment.
//!
//! What each mode means for a training script:
//! - `unshare`: only the network changes (loopback is brought up with `ip`; without
//!   iproute2 it stays down and the session says so). Files are as writable as ever.
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

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::config::{Network, SandboxConfig, SandboxMode, format_size};

use super::Job;
use super::local::RUN_TOKEN_ENV;

/// How one job's command is wrapped, and the limits it runs under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandbox {
    pub isolation: Isolation,
    pub limits: Limits,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Isolation {
    /// `sh -c <command>` as it is.
    #[default]
    None,
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
    /// e.g. "network namespace via `unshare --net` (loopback only)".
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

/// What this machine can isolate with, found by trying each method once.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// `unshare --net true` works (root or CAP_SYS_ADMIN).
    pub unshare_net: bool,
    /// `unshare --net --map-root-user true` works (unprivileged user namespaces).
    pub unshare_userns: bool,
    /// `ip link set lo up` works inside such a namespace.
    pub loopback: bool,
    /// bubblewrap runs with a fresh network namespace and a read-only root.
    pub bwrap: bool,
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
        bwrap.extend(ROOT_BINDS);
        bwrap.extend(["--", "true"]);
        match try_run("bwrap", &bwrap) {
            Ok(()) => p.bwrap = true,
            Err(e) => p.problems.push(e),
        }
        p
    }

    fn why(&self) -> String {
        let mut seen: Vec<&str> = Vec::new();
        for p in &self.problems {
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
}

/// The bubblewrap mounts every sandbox starts from: everything read-only, the devices
/// as they are (GPUs live there), a fresh /proc.
const ROOT_BINDS: [&str; 8] = [
    "--ro-bind",
    "/",
    "/",
    "--dev-bind",
    "/dev",
    "/dev",
    "--proc",
    "/proc",
];

/// Runs `program args` with no input and reports why it failed, in a few words.
fn try_run(program: &str, args: &[&str]) -> Result<(), String> {
    let shown = format!("`{program} {}`", args.join(" "));
    let shown = shown.replace(&ROOT_BINDS.join(" "), "…");
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

/// Chooses the sandbox for `[sandbox]` on a machine that can do what `probe` found.
/// Refuses (rather than silently running with the network) when the network must be denied
/// and nothing here can deny it.
pub fn resolve(cfg: &SandboxConfig, repo: &Path, probe: &Probe) -> Result<Resolved, SandboxError> {
    let deny = cfg.network == Network::Deny;
    let limits = Limits {
        address_space: cfg.memory,
        open_files: cfg.open_files,
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
        SandboxMode::Auto | SandboxMode::Unshare if !deny => Isolation::None,
        SandboxMode::Auto => match unshare().or_else(bwrap) {
            Some(i) => i,
            None => return Err(SandboxError::NoIsolation { why: probe.why() }),
        },
        SandboxMode::Unshare => unshare().ok_or_else(|| SandboxError::ModeUnavailable {
            mode: "unshare",
            why: probe.why(),
            fix: "run as root or enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)",
        })?,
        SandboxMode::Bwrap => bwrap().ok_or_else(|| SandboxError::ModeUnavailable {
            mode: "bwrap",
            why: probe.why(),
            fix: "install bubblewrap (apt-get install bubblewrap) and allow user namespaces",
        })?,
    };
    let warning = match &isolation {
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
    let sandbox = Sandbox { isolation, limits };
    let summary = describe(&sandbox, cfg.mode);
    Ok(Resolved {
        sandbox,
        summary,
        warning,
    })
}

fn describe(s: &Sandbox, mode: SandboxMode) -> String {
    let mut text = match &s.isolation {
        Isolation::None if mode == SandboxMode::None => {
            "none (mode = \"none\"): training runs see the network and the whole filesystem"
                .to_string()
        }
        Isolation::None => {
            "no isolation (network = \"allow\"): training runs see the network".to_string()
        }
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

/// A template that turns the container's network off in one of the usual spellings.
fn disables_network(template: &str) -> bool {
    let t = template.split_whitespace().collect::<Vec<_>>().join(" ");
    [
        "--network none",
        "--network=none",
        "--net none",
        "--net=none",
    ]
    .iter()
    .any(|s| t.contains(s))
}

/// `~/x` is under $HOME, a relative path under the repository. Missing folders are created,
/// so a script can fill a cache that does not exist yet.
fn writable_paths(list: &[String], repo: &Path) -> Vec<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    list.iter()
        .filter_map(|w| {
            let p = match (w.strip_prefix("~/"), &home) {
                (Some(rest), Some(h)) => h.join(rest),
                (Some(_), None) => return None,
                _ if Path::new(w).is_absolute() => PathBuf::from(w),
                _ => repo.join(w),
            };
            // Best effort: bwrap skips what still does not exist (`--bind-try`).
            let _ = std::fs::create_dir_all(&p);
            Some(p)
        })
        .collect()
}

/// `{gpu}`: the GPUs this process was given, else all of them.
fn gpu_list() -> String {
    match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
        _ => "all".into(),
    }
}

impl Sandbox {
    /// The process to spawn for `job`: program and arguments only; the runner adds the
    /// directory, environment, pipes, process group and limits.
    pub(crate) fn command(&self, job: &Job) -> Command {
        match &self.isolation {
            Isolation::None => sh(&job.command),
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
                        Mount::ReadOnly => "--ro-bind",
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mount {
    ReadOnly,
    Writable,
    WritableIfThere,
}

/// The mounts over the read-only root, parents before children so that a writable folder
/// inside the repository (or a repository inside the temp dir) ends up as intended.
fn bwrap_mounts(repo: &Path, job: &Job, writable: &[PathBuf]) -> Vec<(PathBuf, Mount)> {
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

fn sh(command: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(command);
    c
}

/// Fills the container template. `{command}` becomes `sh -c '<command>'`, so pipes and
/// `&&` in the command run inside the container, not around it.
pub fn expand(template: &str, job: &Job, gpu: &str) -> String {
    let env: Vec<String> = job
        .env
        .iter()
        .map(|(k, _)| k.as_str())
        .chain([RUN_TOKEN_ENV])
        .map(|k| format!("-e {}", quote(k)))
        .collect();
    template
        .replace("{repo}", &quote(&job.cwd.to_string_lossy()))
        .replace("{gpu}", &quote(gpu))
        .replace("{env}", &env.join(" "))
        .replace("{command}", &format!("sh -c {}", quote(&job.command)))
}

/// A shell word: bare when it is plainly safe, else single-quoted.
fn quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:,=@%+".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Sets the limits in the child before exec; a limit above the current hard limit is
/// lowered to it (raising it needs privileges, and a lower cap is what was asked for).
#[cfg(target_os = "linux")]
#[expect(
    unsafe_code,
    reason = "pre_exec is unsafe; the hook only calls setrlimit, which is async-signal-safe"
)]
pub(crate) fn apply_limits(cmd: &mut Command, limits: Limits) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    use std::os::unix::process::CommandExt;
    let mut wanted = Vec::new();
    for (res, value) in [
        (Resource::RLIMIT_AS, limits.address_space),
        (Resource::RLIMIT_NOFILE, limits.open_files),
    ] {
        let Some(v) = value else { continue };
        // Computed here, in the parent, so the hook does no more than one system call each.
        let v = match getrlimit(res) {
            Ok((_, hard)) => v.min(hard),
            Err(_) => v,
        };
        wanted.push((res, v));
    }
    if wanted.is_empty() {
        return;
    }
    // SAFETY: the hook runs in the forked child before exec; setrlimit is a plain system
    // call and the captured Vec is only read, never allocated or freed, there.
    unsafe {
        cmd.pre_exec(move || {
            for &(res, v) in &wanted {
                setrlimit(res, v, v)?;
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn apply_limits(_cmd: &mut Command, _limits: Limits) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        let err = resolve(&cfg, Path::new("/r"), &none)
            .unwrap_err()
            .to_string();
        assert!(err.contains("network = \"allow\""), "{err}");
        assert!(err.contains("not installed"), "{err}");
        let allow = SandboxConfig {
            network: Network::Allow,
            ..SandboxConfig::default()
        };
        let r = resolve(&allow, Path::new("/r"), &none).unwrap();
        assert_eq!(r.sandbox.isolation, Isolation::None);
        let userns = Probe {
            unshare_userns: true,
            ..Probe::default()
        };
        let r = resolve(&cfg, Path::new("/r"), &userns).unwrap();
        assert_eq!(r.sandbox.isolation, Isolation::Unshare { map_root: true });
        assert!(r.warning.unwrap().contains("loopback"));
    }
}
