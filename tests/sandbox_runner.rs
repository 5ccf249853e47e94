//! The sandbox wrappers under the real LocalExecutor: network namespaces (unshare and
//! bubblewrap), the read-only repository, the container template with a fake runtime, and
//! resource limits, each checked from inside the run. Where this machine cannot make a
//! namespace the test says so and stops, unless AUTORESEARCH_REQUIRE_SANDBOX=1 demands it.
#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use autoresearch::config::{Network, SandboxConfig, SandboxMode};
use autoresearch::runner::local::{LocalExecutor, processes_with_env};
use autoresearch::runner::sandbox::{self, Isolation, Limits, Probe, Sandbox};
use autoresearch::runner::{Cancel, Executor, Exit, Job, RunOutcome};

const TAG: &str = "AUTORESEARCH_TEST_TAG";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sandbox")
}

fn tag(name: &str) -> String {
    format!("sandbox-{name}-{}", std::process::id())
}

/// True when the probe found `what`; otherwise says why the test stops here.
fn available(ok: bool, what: &str) -> bool {
    if !ok {
        let why = Probe::cached().problems.join("; ");
        assert!(
            std::env::var_os("AUTORESEARCH_REQUIRE_SANDBOX").is_none(),
            "{what} is required but does not work here: {why}"
        );
        eprintln!("SKIPPED: {what} does not work on this machine ({why})");
    }
    ok
}

fn unshare_works() -> bool {
    let p = Probe::cached();
    available(p.unshare_net || p.unshare_userns, "unshare --net")
}

/// The unprivileged spelling (`--map-root-user`), when user namespaces work here: the
/// probe only tries it where plain `unshare --net` fails, so it is tried here directly.
fn userns_sandbox() -> Option<Sandbox> {
    let ok = std::process::Command::new("unshare")
        .args(["--net", "--map-root-user", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: unshare --net --map-root-user does not work on this machine");
    }
    ok.then(|| Sandbox {
        isolation: Isolation::Unshare { map_root: true },
        ..Sandbox::default()
    })
}

fn bwrap_works() -> bool {
    available(Probe::cached().bwrap, "bubblewrap")
}

/// A repository-like folder with a read-only file, and the run's folder inside it.
fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("prepare.py"), "TIME_BUDGET = 300\n").unwrap();
    std::fs::create_dir_all(dir.path().join(".autoresearch/runs/0001")).unwrap();
    dir
}

fn job(repo: &Path, command: &str, tag: &str, sandbox: Sandbox) -> Job {
    Job {
        command: command.to_string(),
        cwd: repo.to_path_buf(),
        env: vec![(TAG.to_string(), tag.to_string())],
        budget: Duration::from_secs(60),
        timeout: Duration::from_secs(120),
        grace: Duration::from_secs(1),
        log_path: repo.join(".autoresearch/runs/0001/run.log"),
        max_log_bytes: 1 << 20,
        sandbox,
        attach: None,
    }
}

fn run(job: &Job) -> (RunOutcome, String) {
    let out = LocalExecutor::new()
        .run(job, &Cancel::new(), &mut |_| {})
        .expect("the run itself should not fail");
    let log = std::fs::read_to_string(&job.log_path).unwrap();
    (out, log)
}

/// What a session protects: git's data, the state folder and the fixture's files.
fn protect() -> Vec<PathBuf> {
    [".git", ".autoresearch", "prepare.py", "train.py"]
        .iter()
        .map(PathBuf::from)
        .collect()
}

fn denied(mode: SandboxMode, repo: &Path) -> Sandbox {
    let cfg = SandboxConfig {
        mode,
        writable: vec![".cache".into()],
        ..SandboxConfig::default()
    };
    sandbox::resolve(&cfg, repo, &protect(), Probe::cached())
        .unwrap()
        .sandbox
}

/// A server outside any namespace; counts the connections it accepted.
fn outside_server() -> (u16, std::thread::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(false).unwrap();
    let handle = std::thread::spawn(move || {
        let mut accepted = 0;
        for stream in listener.incoming() {
            let mut s = stream.unwrap();
            let mut buf = [0u8; 4];
            let _ = s.read(&mut buf);
            if &buf == b"stop" {
                break;
            }
            accepted += 1;
            let _ = s.write_all(b"hello");
        }
        accepted
    });
    (port, handle)
}

fn stop(port: u16, handle: std::thread::JoinHandle<usize>) -> usize {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"stop").unwrap();
    handle.join().unwrap()
}

/// Connects to the outside server, then round-trips bytes through its own loopback socket.
const NET_PROBE: &str = r#"python3 -c '
import socket, sys
port = int(sys.argv[1])
try:
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(b"ping")
    print("outside:", c.recv(5).decode())
except OSError as e:
    print("outside failed:", e)
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
c = socket.create_connection(s.getsockname()); a, _ = s.accept()
c.sendall(b"loop"); print("loopback:", a.recv(4).decode())
' "#;

fn net_check(sandbox: Sandbox, name: &str) -> (String, usize) {
    let dir = repo();
    let (port, server) = outside_server();
    let t = tag(name);
    let (out, log) = run(&job(dir.path(), &format!("{NET_PROBE}{port}"), &t, sandbox));
    assert_eq!(out.exit, Exit::Code(0), "{log}");
    (log, stop(port, server))
}

#[test]
fn unshare_cuts_the_network_but_keeps_loopback() {
    let dir = repo();
    if !unshare_works() {
        return;
    }
    let sandbox = denied(SandboxMode::Unshare, dir.path());
    assert!(
        matches!(
            sandbox.isolation,
            Isolation::Box { .. } | Isolation::Unshare { .. }
        ),
        "{sandbox:?}"
    );
    let (log, accepted) = net_check(sandbox, "unshare-net");
    assert!(log.contains("outside failed:"), "{log}");
    assert_eq!(accepted, 0, "the outside server saw a connection: {log}");
    if Probe::cached().loopback {
        assert!(log.contains("loopback: loop"), "{log}");
    }
    if let Some(userns) = userns_sandbox() {
        let (log, accepted) = net_check(userns, "userns-net");
        assert!(log.contains("outside failed:"), "{log}");
        assert!(log.contains("loopback: loop"), "{log}");
        assert_eq!(accepted, 0);
    }
    // Without the sandbox the same script reaches the server.
    let (log, accepted) = net_check(Sandbox::default(), "no-sandbox-net");
    assert!(log.contains("outside: hello"), "{log}");
    assert_eq!(accepted, 1);
}

#[test]
fn bwrap_cuts_the_network_and_mounts_the_repository_read_only() {
    let dir = repo();
    if !bwrap_works() {
        return;
    }
    let sandbox = denied(SandboxMode::Bwrap, dir.path());
    let (log, accepted) = net_check(sandbox.clone(), "bwrap-net");
    assert!(log.contains("outside failed:"), "{log}");
    assert!(log.contains("loopback: loop"), "{log}");
    assert_eq!(accepted, 0);

    let t = tag("bwrap-fs");
    let script = "echo changed >> prepare.py && echo WROTE-PREPARE; \
                  echo new > new.txt && echo WROTE-REPO; \
                  echo ok > .autoresearch/runs/0001/ckpt && echo WROTE-RUN; \
                  echo ok > .cache/c && echo WROTE-CACHE; \
                  f=$(mktemp) && echo ok > \"$f\" && rm \"$f\" && echo WROTE-TMP";
    let (out, log) = run(&job(dir.path(), script, &t, sandbox));
    assert_eq!(out.exit, Exit::Code(0), "{log}");
    assert!(log.contains("Read-only file system"), "{log}");
    assert!(
        !log.contains("WROTE-PREPARE") && !log.contains("WROTE-REPO"),
        "{log}"
    );
    for ok in ["WROTE-RUN", "WROTE-CACHE", "WROTE-TMP"] {
        assert!(log.contains(ok), "{ok} missing: {log}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("prepare.py")).unwrap(),
        "TIME_BUDGET = 300\n"
    );
    assert!(dir.path().join(".autoresearch/runs/0001/ckpt").is_file());
}

/// The group kill, the timeout and the token scan work through each wrapper: a hanging
/// script with a background child and a `setsid` escapee leaves nothing behind.
#[test]
fn timeouts_kill_everything_through_the_wrappers() {
    let dir = repo();
    let mut sandboxes = vec![("plain", Sandbox::default())];
    if unshare_works() {
        sandboxes.push(("unshare", denied(SandboxMode::Unshare, dir.path())));
    }
    if let Some(userns) = userns_sandbox() {
        sandboxes.push(("userns", userns));
    }
    if bwrap_works() {
        sandboxes.push(("bwrap", denied(SandboxMode::Bwrap, dir.path())));
    }
    for (name, sandbox) in sandboxes {
        let t = tag(&format!("timeout-{name}"));
        let mut j = job(
            dir.path(),
            "sleep 1000 & setsid sleep 1000 & echo started; sleep 1000",
            &t,
            sandbox,
        );
        j.timeout = Duration::from_secs(1);
        let started = std::time::Instant::now();
        let (out, log) = run(&j);
        assert_eq!(out.exit, Exit::TimedOut, "{name}: {log}");
        assert!(log.contains("started"), "{name}: {log}");
        assert!(started.elapsed() < Duration::from_secs(60), "{name}");
        let alive = processes_with_env(TAG, &t);
        assert!(alive.is_empty(), "{name}: survivors {alive:?}");
    }
}

#[test]
fn the_run_token_and_job_env_reach_the_script_inside_the_namespace() {
    let dir = repo();
    if !unshare_works() {
        return;
    }
    let t = tag("env");
    let sandbox = denied(SandboxMode::Unshare, dir.path());
    let script = "echo \"tag=$AUTORESEARCH_TEST_TAG token=${AUTORESEARCH_RUN_TOKEN:-missing}\"; \
                  echo \"net=$(readlink /proc/self/ns/net)\"";
    let (out, log) = run(&job(dir.path(), script, &t, sandbox));
    assert_eq!(out.exit, Exit::Code(0), "{log}");
    assert!(log.contains(&format!("tag={t} ")), "{log}");
    assert!(!log.contains("token=missing"), "{log}");
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert!(
        !log.contains(&format!("net={}", ours.display())),
        "same network namespace as the tool: {log}"
    );
}

#[test]
fn container_template_is_filled_and_the_timeout_still_kills() {
    let dir = tempfile::tempdir().unwrap();
    // A space and a quote in the path: substitution must keep them one word.
    let repo = dir.path().join("my 'repo'");
    std::fs::create_dir_all(repo.join(".autoresearch/runs/0001")).unwrap();
    let args_log = dir.path().join("runtime-args");
    let template = format!(
        "FAKE_RUNTIME_LOG={} {}/fake-runtime --rm --network none {{env}} -v {{repo}}:{{repo}} -w {{repo}} --gpus {{gpu}} IMAGE {{command}}",
        args_log.display(),
        fixtures().display()
    );
    let sandbox = Sandbox {
        isolation: Isolation::Container {
            template,
            gpu: "0,1".into(),
        },
        ..Sandbox::default()
    };
    let t = tag("container");
    let script = "echo \"in $(pwd) token=${AUTORESEARCH_RUN_TOKEN:-missing}\" && echo a | grep a";
    let (out, log) = run(&job(&repo, script, &t, sandbox.clone()));
    assert_eq!(out.exit, Exit::Code(0), "{log}");
    assert!(
        log.contains(&format!("in {} token=", repo.display())),
        "{log}"
    );
    assert!(!log.contains("token=missing"), "{log}");
    let args = std::fs::read_to_string(&args_log).unwrap();
    let args: Vec<&str> = args.lines().collect();
    let repo_s = repo.display().to_string();
    let mount = format!("{repo_s}:{repo_s}");
    for want in [
        "--gpus",
        "0,1",
        "AUTORESEARCH_RUN_TOKEN",
        TAG,
        mount.as_str(),
        "sh",
        "-c",
        script,
    ] {
        assert!(args.contains(&want), "{want:?} not an argument: {args:?}");
    }

    // The fake runtime ignores SIGTERM and does not exec: only the group SIGKILL ends it.
    let t = tag("container-timeout");
    let mut j = job(&repo, "echo started; sleep 1000", &t, sandbox);
    j.timeout = Duration::from_secs(1);
    let (out, log) = run(&j);
    assert_eq!(out.exit, Exit::TimedOut, "{log}");
    assert!(log.contains("started"), "{log}");
    let alive = processes_with_env(TAG, &t);
    assert!(alive.is_empty(), "survivors {alive:?}");
}

#[test]
fn open_file_and_memory_limits_reach_the_script() {
    let dir = repo();
    let limits = Limits {
        address_space: Some(3 << 30),
        open_files: Some(321),
    };
    let mut sandboxes = vec![(
        "plain",
        Sandbox {
            isolation: Isolation::None,
            limits,
            cgroup: None,
        },
    )];
    if unshare_works() {
        let mut s = denied(SandboxMode::Unshare, dir.path());
        s.limits = limits;
        sandboxes.push(("unshare", s));
    }
    for (name, sandbox) in sandboxes {
        let t = tag(&format!("limits-{name}"));
        let script = "python3 -c 'import resource as r; print(\"nofile\", r.getrlimit(r.RLIMIT_NOFILE)); print(\"as\", r.getrlimit(r.RLIMIT_AS))'";
        let (out, log) = run(&job(dir.path(), script, &t, sandbox));
        assert_eq!(out.exit, Exit::Code(0), "{name}: {log}");
        assert!(log.contains("nofile (321, 321)"), "{name}: {log}");
        let bytes = 3u64 << 30;
        assert!(
            log.contains(&format!("as ({bytes}, {bytes})")),
            "{name}: {log}"
        );
    }
}

#[test]
fn allowing_the_network_leaves_only_the_network_open_and_says_so() {
    let cfg = SandboxConfig {
        network: Network::Allow,
        open_files: Some(4096),
        ..SandboxConfig::default()
    };
    let r = sandbox::resolve(&cfg, Path::new("/r"), &[], Probe::cached()).unwrap();
    // The box still walls the files off; only the network namespace is left out.
    if Probe::cached().boxed {
        assert!(
            matches!(
                r.sandbox.isolation,
                Isolation::Box {
                    share_net: true,
                    ..
                }
            ),
            "{:?}",
            r.sandbox
        );
        assert!(r.summary.contains("network allowed"), "{}", r.summary);
    } else {
        assert_eq!(r.sandbox.isolation, Isolation::None);
        assert!(r.summary.contains("network = \"allow\""), "{}", r.summary);
    }
    assert_eq!(r.sandbox.limits.open_files, Some(4096));
    assert!(r.summary.contains("4096 open files"), "{}", r.summary);
    // A container template that leaves the network on is pointed out when it is denied.
    let cfg = SandboxConfig {
        mode: SandboxMode::Container,
        container: Some("docker run --rm IMAGE {command}".into()),
        ..SandboxConfig::default()
    };
    let r = sandbox::resolve(&cfg, Path::new("/r"), &[], Probe::cached()).unwrap();
    assert!(r.warning.unwrap().contains("--network none"));
}

/// Live, non-zombie processes with `arg` as one of their arguments.
fn with_arg(arg: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let (Ok(cmdline), Ok(stat)) = (
            std::fs::read(format!("/proc/{pid}/cmdline")),
            std::fs::read_to_string(format!("/proc/{pid}/stat")),
        ) else {
            continue;
        };
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if !zombie && cmdline.split(|&b| b == 0).any(|a| a == arg.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

/// Where the box cannot be made, the run's cgroup is what catches a grandchild that left
/// the process group and scrubbed its environment (neither the group kill nor the token
/// scan can find it): the run ends normally, and the grandchild is gone with it.
#[test]
fn without_the_box_the_cgroup_kills_a_scrubbed_setsid_grandchild() {
    let dir = repo();
    let Some(cgroup) = Probe::cached().cgroup.clone() else {
        available(false, "a cgroup per run");
        return;
    };
    let mut sandboxes = vec![(
        "plain",
        Sandbox {
            cgroup: Some(cgroup.clone()),
            ..Sandbox::default()
        },
    )];
    let p = Probe::cached();
    if p.unshare_net || p.unshare_userns {
        sandboxes.push((
            "network only",
            Sandbox {
                isolation: Isolation::Unshare {
                    map_root: !p.unshare_net,
                },
                cgroup: Some(cgroup.clone()),
                ..Sandbox::default()
            },
        ));
    }
    for (i, (name, sandbox)) in sandboxes.into_iter().enumerate() {
        // A sleep of a length no other process has: its argument is the marker.
        let marker = format!("{}.{i}{}", 900_000 + std::process::id() % 1000, i + 1);
        let ready = dir.path().join(format!("ready-{i}"));
        let script = format!(
            "setsid env -i /bin/sh -c 'echo up > \"$1\"; exec sleep \"$2\"' sh '{}' {marker} & \
             while [ ! -s '{}' ]; do :; done; echo escapee up",
            ready.display(),
            ready.display()
        );
        let t = tag(&format!("cgroup-{i}"));
        let (out, log) = run(&job(dir.path(), &script, &t, sandbox));
        assert_eq!(out.exit, Exit::Code(0), "{name}: {log}");
        assert!(log.contains("escapee up"), "{name}: {log}");
        assert_eq!(with_arg(&marker), Vec::<i32>::new(), "{name}: it survived");
    }
}

/// The project may be a subfolder of the repository: git's data above it is walled off
/// too, while the project's own files stay as writable as ever.
#[test]
fn the_box_walls_off_the_git_directory_above_a_project_in_a_subfolder() {
    if !available(Probe::cached().boxed, "the box") {
        return;
    }
    let top = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(top.path().join(".git")).unwrap();
    std::fs::write(top.path().join(".git/config"), "[core]\n").unwrap();
    let project = top.path().join("sub");
    std::fs::create_dir_all(project.join(".autoresearch/runs/0001")).unwrap();
    let sandbox = denied(SandboxMode::Auto, &project);
    let t = tag("subfolder");
    let script = "echo x >> ../.git/config && echo WROTE-GIT; echo ok > out.txt && echo WROTE-OUT";
    let (out, log) = run(&job(&project, script, &t, sandbox));
    assert_eq!(out.exit, Exit::Code(0), "{log}");
    assert!(!log.contains("WROTE-GIT"), "{log}");
    assert!(log.contains("WROTE-OUT"), "{log}");
    assert_eq!(
        std::fs::read_to_string(top.path().join(".git/config")).unwrap(),
        "[core]\n"
    );
}

/// A run killed by a signal inside the box (whose pid 1 is a shell, reporting 128+N) is
/// still reported as killed by that signal.
#[test]
fn a_signal_death_inside_the_box_is_reported_as_the_signal() {
    if !available(Probe::cached().boxed, "the box") {
        return;
    }
    let dir = repo();
    let sandbox = denied(SandboxMode::Auto, dir.path());
    for (sig, n) in [("SEGV", 11), ("KILL", 9)] {
        let t = tag(&format!("signal-{n}"));
        let (out, log) = run(&job(
            dir.path(),
            &format!("kill -{sig} $$"),
            &t,
            sandbox.clone(),
        ));
        assert_eq!(out.exit, Exit::Signal(n), "{log}");
    }
}
