//! Configs that aim a session at the repository itself, black-box through the binary: a
//! `results` of `.`, `.git` or `.git/HEAD`, an editable `.git/config`, symlinks leading
//! out, binary "editable" files, submodules, writable folders that contain the project.
//! Each is refused with exit 2 and one line naming the key and the
//! fix, before anything is touched: not even `.git/info/exclude` or `.autoresearch/`
//! changes. Rows of docs/bad-inputs.md.

mod bad_inputs_support;

use bad_inputs_support::*;
use std::path::Path;

/// Everything a refused start must leave as it was, beyond [`snapshot`].
fn exclude_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(".git/info/exclude")).unwrap_or_default()
}

/// Runs with `config` and checks a config refusal that touched nothing.
#[track_caller]
fn refused_config(dir: &Path, parts: &[&str]) -> Refusal {
    let before = snapshot(dir);
    let exclude = exclude_of(dir);
    let head_file = std::fs::read(dir.join(".git/HEAD")).unwrap();
    let r = refuse(dir, &[]);
    assert_eq!(r.code, CONFIG, "{r:?}");
    says(&r, parts);
    untouched(dir, &before);
    assert_eq!(exclude_of(dir), exclude, ".git/info/exclude changed");
    assert_eq!(std::fs::read(dir.join(".git/HEAD")).unwrap(), head_file);
    assert!(!dir.join(".autoresearch").exists(), ".autoresearch made");
    r
}

fn with_config(extra: &str) -> tempfile::TempDir {
    fixture(Some(&config_with(extra, "")))
}

#[test]
fn results_that_name_the_repository_or_the_tools_files_are_refused() {
    for (results, problem) in [
        (".", "names the project folder itself"),
        ("./", "names the project folder itself"),
        (".git", "is inside git's own folder"),
        (".git/HEAD", "is inside git's own folder"),
        (".git/info/exclude", "is inside git's own folder"),
        (
            ".autoresearch/journal.sqlite",
            "is inside the tool's state folder",
        ),
        ("autoresearch.toml", "is the config file itself"),
    ] {
        let dir = with_config(&format!("results = \"{results}\""));
        refused_config(
            dir.path(),
            &["`results`", problem, "results = \"results.tsv\""],
        );
        assert!(dir.path().join(".git/HEAD").is_file(), "{results}");
    }
}

#[test]
fn results_that_name_a_file_the_session_reads_are_refused() {
    for file in ["train.py", "prepare.py"] {
        let dir = with_config(&format!("results = \"{file}\""));
        refused_config(dir.path(), &["results", "a file the session reads"]);
    }
}

#[test]
fn a_results_folder_is_refused() {
    let dir = with_config("results = \"out\"");
    std::fs::create_dir(dir.path().join("out")).unwrap();
    refused_config(dir.path(), &["`results`", "is a folder"]);
}

#[test]
fn editable_git_config_is_refused() {
    let dir = fixture(Some(&config_with("", "").replace(
        "editable = [\"train.py\"]",
        "editable = [\"train.py\", \".git/config\"]",
    )));
    refused_config(
        dir.path(),
        &["`editable`", ".git/config", "git's own folder"],
    );
}

#[cfg(unix)]
#[test]
fn an_editable_symlink_is_refused_wherever_it_leads() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("victim.py"), "SECRET = 1\n").unwrap();
    let dir = fixture(Some(
        &config_with("", "").replace("editable = [\"train.py\"]", "editable = [\"link.py\"]"),
    ));
    std::os::unix::fs::symlink(outside.path().join("victim.py"), dir.path().join("link.py"))
        .unwrap();
    git(dir.path(), &["add", "link.py"]);
    git(dir.path(), &["commit", "-qm", "link"]);
    refused_config(dir.path(), &["`editable`", "link.py", "is a symlink"]);
    assert_eq!(
        std::fs::read_to_string(outside.path().join("victim.py")).unwrap(),
        "SECRET = 1\n"
    );
}

#[cfg(unix)]
#[test]
fn a_read_only_file_through_a_folder_that_leads_out_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("data.py"), "N = 1\n").unwrap();
    let dir = with_config("");
    std::os::unix::fs::symlink(outside.path(), dir.path().join("ext")).unwrap();
    std::fs::write(
        dir.path().join("autoresearch.toml"),
        config_with("", "").replace(
            "read_only = [\"prepare.py\"]",
            "read_only = [\"prepare.py\", \"ext/data.py\"]",
        ),
    )
    .unwrap();
    refused_config(
        dir.path(),
        &["`read_only`", "symlink leading out of the project"],
    );
}

#[test]
fn a_binary_editable_file_is_refused() {
    let dir = fixture(Some(&config_with("", "").replace(
        "editable = [\"train.py\"]",
        "editable = [\"train.py\", \"weights.bin\"]",
    )));
    std::fs::write(dir.path().join("weights.bin"), [0u8, 1, 2, 0xff, 0xfe]).unwrap();
    git(dir.path(), &["add", "weights.bin"]);
    git(dir.path(), &["commit", "-qm", "weights"]);
    refused_config(dir.path(), &["`editable`", "weights.bin", "not UTF-8 text"]);
}

#[test]
fn a_file_inside_a_nested_repository_is_refused() {
    let dir = fixture(Some(&config_with("", "").replace(
        "editable = [\"train.py\"]",
        "editable = [\"train.py\", \"vendor/model.py\"]",
    )));
    let vendor = dir.path().join("vendor");
    std::fs::create_dir(&vendor).unwrap();
    std::fs::write(vendor.join("model.py"), "W = 1\n").unwrap();
    git(&vendor, &["init", "-q"]);
    refused_config(
        dir.path(),
        &["`editable`", "`vendor`", "nested git repository"],
    );
}

#[test]
fn writable_folders_that_contain_the_project_are_refused() {
    for w in ["/", ".", "..", ".git", ".autoresearch/runs"] {
        let dir = with_config(&format!("\n[sandbox]\nwritable = [\"{w}\"]"));
        let r = refused_config(dir.path(), &["`sandbox.writable`"]);
        assert!(
            [
                "contains the project",
                "project folder itself",
                "leaves the project",
                "inside"
            ]
            .iter()
            .any(|p| r.message.contains(p)),
            "{w}: {}",
            r.message
        );
    }
}
