//! A project in a subfolder of a git repository, black-box: the config's folder is the
//! project root, so its train.py is the one edited and run (not the top-level one that
//! happens to share the name), its results.tsv and `.autoresearch/` live beside the config,
//! and the rest of the repository is never touched. Both loops.

mod common;

use common::*;
use std::path::Path;

const QUADRATIC: &str = "value = (LR - 0.4) ** 2 + 1\nprint(f'val_bpb: {value:.6f}')";
/// The top-level train.py: if this one ran, the session would see no metric at all.
const TOP_TRAIN: &str = "LR = 0.1\nraise SystemExit('the wrong train.py ran')\n";

fn subproject() -> tempfile::TempDir {
    repo(&[
        ("train.py", TOP_TRAIN),
        ("sub/train.py", &train_py(QUADRATIC)),
        ("sub/prepare.py", PREPARE),
        ("sub/autoresearch.toml", &config("")),
    ])
}

fn file_at(dir: &Path, rev: &str) -> String {
    git(dir, &["show", rev])
}

#[test]
fn a_config_in_a_subfolder_makes_that_folder_the_project() {
    for args in [&["-n", "2"][..], &["-n", "2", "--workers", "2"][..]] {
        let dir = subproject();
        let top = dir.path();
        let sub = top.join("sub");
        let out = run(&sub, args);
        assert!(out.status.success(), "{}", text(&out));
        let rows = results(&sub);
        assert_eq!(rows[0][3], "keep", "{rows:?}");
        assert_eq!(rows[1][3], "keep", "{rows:?}");
        assert_eq!(rows[1][4], "LR 0.1 → 0.2");
        // The subfolder's train.py changed on the branch, the top-level one never did.
        assert!(!file_at(top, "autoresearch/t:sub/train.py").starts_with("LR = 0.1 "));
        assert_eq!(
            file_at(top, "autoresearch/t:train.py"),
            TOP_TRAIN.trim_end()
        );
        assert_eq!(
            std::fs::read_to_string(top.join("train.py")).unwrap(),
            TOP_TRAIN
        );
        let changed = git(top, &["diff", "--name-only", "main", "autoresearch/t"]);
        assert_eq!(changed, "sub/train.py");
        // The tool's files sit beside the config and stay out of git.
        assert!(sub.join(".autoresearch/journal.sqlite").is_file());
        assert!(!top.join(".autoresearch").exists());
        assert!(!top.join("results.tsv").exists());
        assert_eq!(git(top, &["status", "--porcelain"]), "");
        let exclude = std::fs::read_to_string(top.join(".git/info/exclude")).unwrap();
        assert!(exclude.contains("/sub/results.tsv"), "{exclude}");
        // `status` from the subfolder finds the session.
        let status = bin().args(["status", "--repo"]).arg(&sub).output().unwrap();
        assert!(status.status.success(), "{}", text(&status));
        assert!(survivors(top).is_empty());
    }
}
