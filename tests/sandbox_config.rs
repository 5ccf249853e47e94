//! The `[sandbox]` table: defaults, every value, one-line errors with their line and fix,
//! and the to_toml round trip.

use autoresearch::config::{
    Config, ConfigError, Network, SandboxConfig, SandboxMode, load_str, to_toml,
};
use tempfile::TempDir;

const HEAD: &str =
    "budget = \"5m\"\n[metric]\nname = \"val_bpb\"\ndirection = \"minimize\"\n[sandbox]\n";

fn dir() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.py"), "# train\n").unwrap();
    dir
}

fn load(dir: &TempDir, sandbox: &str) -> Result<Config, ConfigError> {
    load_str(
        &format!("{HEAD}{sandbox}"),
        &dir.path().join("autoresearch.toml"),
    )
}

fn err(dir: &TempDir, sandbox: &str) -> String {
    match load(dir, sandbox) {
        Ok(cfg) => panic!("expected an error, loaded {:?}", cfg.sandbox),
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "one line: {msg}");
            msg
        }
    }
}

#[test]
fn defaults_deny_the_network_and_pick_a_method_automatically() {
    let d = dir();
    let cfg = load(&d, "").unwrap();
    assert_eq!(cfg.sandbox, SandboxConfig::default());
    assert_eq!(cfg.sandbox.network, Network::Deny);
    assert_eq!(cfg.sandbox.mode, SandboxMode::Auto);
    assert_eq!(cfg.sandbox.memory, None);
    assert_eq!(cfg.sandbox.open_files, None);
}

#[test]
fn every_key_is_read() {
    let d = dir();
    let cfg = load(
        &d,
        "network = \"allow\"\nmode = \"container\"\nwritable = [\".cache\", \"~/.cache/torch\", \".cache\"]\ncontainer = \"docker run --rm --init --network none -v {repo}:{repo} -w {repo} img {command}\"\nmemory = \"16G\"\nopen_files = 4096\n",
    )
    .unwrap();
    let s = cfg.sandbox;
    assert_eq!(s.network, Network::Allow);
    assert_eq!(s.mode, SandboxMode::Container);
    assert_eq!(
        s.writable,
        [".cache", "~/.cache/torch"],
        "duplicates dropped"
    );
    assert!(s.container.unwrap().ends_with("img {command}"));
    assert_eq!(s.memory, Some(16 << 30));
    assert_eq!(s.open_files, Some(4096));
    // `mode = "none"` alone means the network is allowed.
    let cfg = load(&d, "mode = \"none\"\n").unwrap();
    assert_eq!(cfg.sandbox.network, Network::Allow);
    assert_eq!(
        load(&d, "memory = 1048576\n").unwrap().sandbox.memory,
        Some(1 << 20)
    );
}

#[test]
fn bad_values_name_the_line_and_the_fix() {
    let d = dir();
    let cases: &[(&str, &str)] = &[
        (
            "network = \"maybe\"\n",
            ":6:11: `sandbox.network` is `maybe`; use \"deny\"",
        ),
        (
            "mode = \"jail\"\n",
            ":6:8: `sandbox.mode` is `jail`; use one of auto, unshare, bwrap, container, none",
        ),
        (
            "mode = \"none\"\nnetwork = \"deny\"\n",
            ":7:11: `sandbox.network` is \"deny\" but mode = \"none\" isolates nothing; set network = \"allow\"",
        ),
        ("mode = \"container\"\n", "sandbox.container"),
        (
            "container = \"docker run img\"\n",
            ":6:13: `sandbox.container` has no `{command}`; put {command}",
        ),
        (
            "memory = \"lots\"\n",
            ":6:10: `sandbox.memory` is `lots`; use a size like \"16G\"",
        ),
        ("memory = 0\n", "`sandbox.memory` is 0"),
        (
            "open_files = 0\n",
            ":6:14: `sandbox.open_files` is 0; use a positive number",
        ),
        ("open_files = \"many\"\n", "sandbox.open_files"),
        ("writable = \".cache\"\n", "sandbox.writable"),
        (
            "writable = [\"\"]\n",
            "`sandbox.writable` has an empty path",
        ),
        (
            "netwrok = \"deny\"\n",
            "unknown key `netwrok` in [sandbox]; did you mean `network`?",
        ),
    ];
    for (text, want) in cases {
        let msg = err(&d, text);
        assert!(msg.contains(want), "{text:?}: {msg}");
    }
}

#[test]
fn to_toml_round_trips_the_sandbox() {
    let d = dir();
    for text in [
        "",
        "network = \"allow\"\nmode = \"bwrap\"\nwritable = [\".cache\", \"/scratch/ckpt\"]\nmemory = \"1536M\"\nopen_files = 1024\n",
        "mode = \"container\"\ncontainer = \"podman run --rm --network=none {env} -v {repo}:{repo} img {command}\"\n",
        "mode = \"none\"\n",
    ] {
        let cfg = load(&d, text).unwrap();
        let written = to_toml(&cfg);
        let back = load_str(&written, &d.path().join("autoresearch.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{written}"));
        assert_eq!(back.sandbox, cfg.sandbox, "{written}");
        assert_eq!(to_toml(&back), written);
    }
}
