//! Whole sessions under `[sandbox]`: a training script that opens a socket to a server
//! outside its namespace is recorded as a crash with the socket error, and succeeds with
//! `network = "allow"`; bubblewrap keeps prepare.py read-only; a machine with nothing to
//! isolate with refuses to start with the fix, and runs when the network is allowed.
#![cfg(target_os = "linux")]

mod common;
use common::*;

use autoresearch::runner::sandbox::Probe;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

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

/// A server outside any namespace, counting the connections it accepted until `stop`.
struct Server {
    port: u16,
    handle: std::thread::JoinHandle<usize>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
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
        Server { port, handle }
    }

    fn stop(self) -> usize {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.write_all(b"stop").unwrap();
        self.handle.join().unwrap()
    }
}

/// The baseline checks its own loopback; every proposal (LR above 0.15) also phones the
/// outside server, whose port it reads from the environment.
const PHONES_HOME: &str = r#"import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
c = socket.create_connection(s.getsockname()); a, _ = s.accept()
c.sendall(b"loop"); assert a.recv(4) == b"loop"
if LR > 0.15:
    out = socket.create_connection(("127.0.0.1", int(os.environ["SANDBOX_TEST_PORT"])), timeout=5)
    out.sendall(b"ping"); print("reply:", out.recv(5))
print(f"val_bpb: {1.0 + LR:.6f}")"#;

fn run_with_port(dir: &Path, port: u16) -> std::process::Output {
    bin()
        .env("SANDBOX_TEST_PORT", port.to_string())
        .args(["run", "--yes", "--grace", "1", "-n", "1", "--repo"])
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn a_socket_to_the_outside_is_a_recorded_crash_unless_the_network_is_allowed() {
    let p = Probe::cached();
    if !available(
        p.unshare_net || p.unshare_userns || p.bwrap,
        "a network namespace",
    ) {
        return;
    }
    let dir = repo(&[
        ("train.py", &train_py(PHONES_HOME)),
        ("autoresearch.toml", &config("")),
    ]);
    let server = Server::start();
    let out = run_with_port(dir.path(), server.port);
    let accepted = server.stop();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("sandbox: the box (user, mount, pid, network namespaces")
            || text(&out).contains("sandbox: network namespace via `unshare")
            || text(&out).contains("sandbox: bubblewrap: no network"),
        "{}",
        text(&out)
    );
    let j = journal(dir.path());
    assert_eq!(j[0].1, "keep", "the baseline's loopback works: {j:?}");
    assert_eq!(j[1].1, "crash", "{j:?}");
    assert!(
        j[1].3.contains("Connection refused") || j[1].3.contains("unreachable"),
        "the socket error is the reason: {:?}",
        j[1]
    );
    assert_eq!(accepted, 0, "the server outside was reached");
    assert!(survivors(dir.path()).is_empty());

    let allow = config("[sandbox]\nnetwork = \"allow\"\n");
    let dir = repo(&[
        ("train.py", &train_py(PHONES_HOME)),
        ("autoresearch.toml", &allow),
    ]);
    let server = Server::start();
    let out = run_with_port(dir.path(), server.port);
    let accepted = server.stop();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("sandbox: no isolation (network = \"allow\")")
            || (p.boxed
                && text(&out).contains("sandbox: the box")
                && text(&out).contains("network allowed")),
        "{}",
        text(&out)
    );
    let j = journal(dir.path());
    assert_ne!(j[1].1, "crash", "{j:?}");
    assert_eq!(accepted, 1);
}

#[test]
fn bubblewrap_keeps_prepare_py_read_only_and_caches_writable() {
    if !available(Probe::cached().bwrap, "bubblewrap") {
        return;
    }
    let body = "os.makedirs('.cache', exist_ok=True)\nopen('.cache/ckpt', 'w').write('weights')\nif LR > 0.15:\n    open('prepare.py', 'a').write('TIME_BUDGET = 1\\n')\nprint(f'val_bpb: {1.0 + LR:.6f}')";
    let cfg = config("[sandbox]\nmode = \"bwrap\"\nwritable = [\".cache\"]\nopen_files = 512\n");
    let dir = repo(&[
        ("train.py", &train_py(body)),
        ("autoresearch.toml", &cfg),
        (".gitignore", ".cache/\n"),
    ]);
    let out = run(dir.path(), &["-n", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("sandbox: bubblewrap: no network (loopback only)")
            && text(&out).contains("512 open files"),
        "{}",
        text(&out)
    );
    let j = journal(dir.path());
    assert_eq!(j[0].1, "keep", "{j:?}");
    assert_eq!(j[1].1, "crash", "{j:?}");
    assert!(j[1].3.contains("Read-only file system"), "{:?}", j[1]);
    assert!(
        !j[1].3.contains("restored"),
        "nothing to restore: {:?}",
        j[1]
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("prepare.py")).unwrap(),
        PREPARE
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".cache/ckpt")).unwrap(),
        "weights"
    );
    assert_eq!(dirty(dir.path()), "");
}

/// A PATH with only what a session needs: no unshare, no bwrap.
fn bare_path() -> tempfile::TempDir {
    path_with(&[])
}

/// What a session needs, and `extra` programs besides.
fn path_with(extra: &[&str]) -> tempfile::TempDir {
    let bin = tempfile::tempdir().unwrap();
    let python = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    let python = String::from_utf8(python.stdout).unwrap();
    // The program file on PATH (not a shell builtin of the same name, such as `true`).
    let find = |name: &str| {
        let path = std::env::var_os("PATH").unwrap();
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{name} is not on PATH"))
            .display()
            .to_string()
    };
    let mut links = vec![
        ("python3", python.trim().to_string()),
        ("git", find("git")),
        ("sh", find("sh")),
    ];
    links.extend(extra.iter().map(|name| (*name, find(name))));
    for (name, target) in links {
        std::os::unix::fs::symlink(target, bin.path().join(name)).unwrap();
    }
    bin
}

/// Without `setpriv` the box cannot drop its capabilities, so it is not used: the session
/// falls back to a network namespace alone and says once what that leaves open.
#[test]
fn without_setpriv_the_session_falls_back_to_the_network_namespace_and_says_so() {
    let p = Probe::cached();
    if !available(p.unshare_net || p.unshare_userns, "unshare --net") {
        return;
    }
    let path = path_with(&["unshare", "ip", "mount", "cat", "grep", "true"]);
    let body = "print(f'val_bpb: {1.0 + LR:.6f}')";
    let dir = repo(&[
        ("train.py", &train_py(body)),
        ("autoresearch.toml", &config("")),
    ]);
    let out = bin()
        .env("PATH", path.path())
        .args(["run", "--yes", "-n", "1", "--repo"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("sandbox: network namespace via `unshare --net"),
        "{all}"
    );
    assert_eq!(
        all.matches("the box is not available here").count(),
        1,
        "said once: {all}"
    );
    assert!(all.contains("can write the repository's .git"), "{all}");
    assert_eq!(results(dir.path()).len(), 2);
}

#[test]
fn nothing_to_isolate_with_refuses_to_start_unless_the_network_is_allowed() {
    let path = bare_path();
    let body = "print(f'val_bpb: {1.0 + LR:.6f}')";
    let dir = repo(&[
        ("train.py", &train_py(body)),
        ("autoresearch.toml", &config("")),
    ]);
    let out = bin()
        .env("PATH", path.path())
        .args(["run", "--yes", "-n", "1", "--repo"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot cut training runs off the network")
            && err.contains("`unshare` is not installed")
            && err.contains("set [sandbox] network = \"allow\" to run without network isolation"),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.contains("network")).count(),
        1,
        "said once: {err}"
    );
    // Nothing was started: no branch, no results.
    let branches = git(dir.path(), &["branch", "--list", "autoresearch/*"]);
    assert_eq!(branches, "");
    assert!(!dir.path().join("results.tsv").exists());

    let allow = config("[sandbox]\nnetwork = \"allow\"\n");
    std::fs::write(dir.path().join("autoresearch.toml"), allow).unwrap();
    git(dir.path(), &["commit", "-qam", "allow the network"]);
    let out = bin()
        .env("PATH", path.path())
        .args(["run", "--yes", "-n", "1", "--repo"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("sandbox: no isolation"),
        "{}",
        text(&out)
    );
    assert_eq!(results(dir.path()).len(), 2);
}

const ATTACKS: &str = include_str!("fixtures/sandbox/attacks.py");

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files_under(&path, out);
        } else if kind.is_file() {
            out.push(path);
        }
    }
}

/// Live processes whose command line holds `marker` as one argument.
fn with_arg(marker: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if cmdline.split(|&b| b == 0).any(|a| a == marker.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn the_box_stops_each_attack_of_a_hostile_training_script() {
    if !available(Probe::cached().boxed, "the box") {
        return;
    }
    attack(&["-n", "1"]);
}

/// The same in the engine, where the run's tree is a worktree under `.autoresearch/`.
#[test]
fn the_box_stops_each_attack_from_an_engine_worktree() {
    if !available(Probe::cached().boxed, "the box") {
        return;
    }
    attack(&["--workers", "1", "-n", "1"]);
}

fn attack(args: &[&str]) {
    let dir = repo(&[
        ("train.py", ATTACKS),
        ("autoresearch.toml", &config("")),
        (".gitignore", "data/\nout/\n"),
    ]);
    let d = dir.path();
    // Untracked data the read-only files prepared: readable in the box.
    std::fs::create_dir_all(d.join("data")).unwrap();
    std::fs::write(d.join("data/tokens.txt"), "tokens\n").unwrap();
    let git_config = std::fs::read_to_string(d.join(".git/config")).unwrap();
    // Unique to this test: the other attack test may run beside it, escapee and all.
    let marker = format!("attack-marker-{}-{}", std::process::id(), args.join(""));
    let secret = format!("sk-test-secret-{}", std::process::id());
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let server = Server::start();
    let out = bin()
        .env("ATTACK_VICTIM", &victim)
        .env("OPENAI_API_KEY", &secret)
        .env("ANTHROPIC_API_KEY", &secret)
        .env("ATTACK_MARKER", &marker)
        .env("ATTACK_PORT", server.port.to_string())
        .env("ATTACK_REPO", d)
        .args(["run", "--yes", "--grace", "1", "--repo"])
        .arg(d)
        .args(args)
        .output()
        .unwrap();
    let accepted = server.stop();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("sandbox: the box"), "{}", text(&out));

    let mut files = Vec::new();
    files_under(d, &mut files);
    let logs: Vec<String> = files
        .iter()
        .filter(|p| p.ends_with("run.log"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(logs.len(), 2, "baseline and one experiment: {files:?}");
    for log in &logs {
        let tried = log.lines().filter(|l| l.starts_with("ATTACK ")).count();
        assert!(tried >= 30, "every attack was tried: {log}");
        for line in log.lines() {
            assert!(!line.contains("ACHIEVED"), "{line}\n{log}");
            assert!(!line.contains("FAILED"), "{line}\n{log}");
        }
        for want in [
            "ATTACK git-config: blocked",
            "ATTACK umount .git: blocked",
            "ATTACK nested namespace: blocked",
            "ATTACK ptrace the orchestrator: blocked",
            "ATTACK connect to the host's 127.0.0.1: blocked",
            "LEGIT own loopback: ok",
            "LEGIT write ./out: ok",
            "LEGIT read data/: ok",
            "ESCAPEE started",
        ] {
            assert!(log.contains(want), "{want} missing: {log}");
        }
    }
    // Nothing outside the run folders changed: git's files, the protected files, the state.
    assert_eq!(
        std::fs::read_to_string(d.join(".git/config")).unwrap(),
        git_config
    );
    assert!(!d.join(".git/refs/heads/evil").exists());
    assert!(
        !std::fs::read_to_string(d.join(".git/HEAD"))
            .unwrap()
            .contains("evil")
    );
    assert!(!d.join(".autoresearch/evil").exists());
    assert_eq!(
        std::fs::read_to_string(d.join("prepare.py")).unwrap(),
        PREPARE
    );
    assert_eq!(dirty(d), "");
    for path in &files {
        if path.components().any(|c| c.as_os_str() == "runs") {
            continue;
        }
        let bytes = std::fs::read(path).unwrap();
        let has = |s: &str| bytes.windows(s.len()).any(|w| w == s.as_bytes());
        assert!(!has(&marker), "{} was written by the run", path.display());
        assert!(!has(&secret), "{} holds the key", path.display());
    }
    for log in &logs {
        assert!(!log.contains(&secret), "a run saw the key");
    }
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "precious\n",
        "the orchestrator wrote through the planted symlink"
    );
    assert!(logs.iter().all(|l| l.contains("PLANTED")), "{logs:?}");
    assert_eq!(accepted, 0, "the host's listener was reached");
    assert_eq!(with_arg(&marker), Vec::<i32>::new(), "the escapee survived");
    assert!(survivors(d).is_empty());
}

/// The box for a user who is not root: `autoresearch run` makes itself non-dumpable, which
/// makes its (and its children's) /proc files root's, and the box's child must still
/// write its own uid and gid maps there. Run as root, this runs the session as `nobody`;
/// run as anyone else, every other test here is already that case.
#[test]
fn the_box_works_for_a_user_who_is_not_root() {
    if !available(Probe::cached().boxed, "the box") {
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: not root: the other tests here run the box as this user");
        return;
    }
    // Where the build lives under a folder only root may enter (/root), nobody cannot
    // start the binary at all: nothing about the box to learn there.
    let exe = Path::new(env!("CARGO_BIN_EXE_autoresearch"));
    let others_may = |p: &Path, bits: u32| {
        std::fs::metadata(p)
            .is_ok_and(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & bits == bits)
    };
    let reachable = exe.ancestors().skip(1).all(|d| others_may(d, 0o001))
        && others_may(exe, 0o005)
        && others_may(Path::new("/usr/bin/python3"), 0o005);
    if !reachable {
        eprintln!(
            "SKIPPED: nobody cannot run {} or /usr/bin/python3 here",
            exe.display()
        );
        return;
    }
    let body = "print(f'val_bpb: {1.0 + LR:.6f}')";
    let dir = repo(&[
        ("train.py", &train_py(body)),
        (
            "autoresearch.toml",
            &config("").replace("python3 train.py", "/usr/bin/python3 train.py"),
        ),
    ]);
    // The repository is nobody's (git refuses a repository of another user) and so is the
    // temp dir's folder it lives in, as a normal user's would be.
    let nobody = nix::unistd::Uid::from_raw(65534);
    let chown = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(chown.success());
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(dir.path()).unwrap()),
        nobody.as_raw()
    );
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_autoresearch"))
        .args(["run", "--yes", "-n", "1", "--repo"])
        .arg(dir.path())
        .env("HOME", dir.path())
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("AUTORESEARCH_PLATFORM", "cpu")
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .output()
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("sandbox: the box"), "{all}");
    assert!(!all.contains("the box is not available"), "{all}");
    assert!(all.contains("[0] keep"), "{all}");
}
