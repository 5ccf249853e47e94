//! Where the paths a config names may point. Every one (editable, read-only, results,
//! program, `[sandbox] writable`) must stay inside the project (the config's folder),
//! outside `.git` and `.autoresearch`, off the tool's own files, out of submodules and
//! nested repositories, and never through a symlink that leads out; editable files must
//! be regular UTF-8 text files. Checked before a session touches anything.

use super::CONFIG_FILE;
use super::error::{ConfigError, Location};
use std::path::{Component, Path, PathBuf};

/// What a path is for, which decides what it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Editable,
    ReadOnly,
    Program,
    Results,
}

impl Role {
    fn key(self) -> &'static str {
        match self {
            Role::Editable => "editable",
            Role::ReadOnly => "read_only",
            Role::Program => "program",
            Role::Results => "results",
        }
    }
}

/// Folders of the repository no configured path may enter.
const FORBIDDEN_DIRS: &[(&str, &str)] = &[
    (".git", "git's own folder"),
    (".autoresearch", "the tool's state folder"),
];

fn refuse(
    at: &Location,
    key: &'static str,
    path: &Path,
    problem: String,
    fix: &'static str,
) -> ConfigError {
    ConfigError::UnsafePath {
        at: at.clone(),
        key,
        problem: format!("\"{}\" {problem}", path.display()),
        fix,
    }
}

/// Checks one relative path (already free of `..` and absolute parts) against `root`.
pub(super) fn check(
    root: &Path,
    role: Role,
    path: &Path,
    at: &Location,
) -> Result<(), ConfigError> {
    let config_name = at
        .file
        .file_name()
        .map_or_else(|| PathBuf::from(CONFIG_FILE), PathBuf::from);
    let key = role.key();
    let fix = match role {
        Role::Results => "name a file in the project, e.g. results = \"results.tsv\"",
        Role::Editable => "name the training script, e.g. editable = [\"train.py\"]",
        _ => "name a file in the project folder, next to autoresearch.toml",
    };
    if path.as_os_str().is_empty() {
        return Err(refuse(
            at,
            key,
            path,
            "names the project folder itself".into(),
            fix,
        ));
    }
    for c in path.components() {
        if let Component::Normal(name) = c
            && let Some((_, what)) = FORBIDDEN_DIRS.iter().find(|(d, _)| name == *d)
        {
            return Err(refuse(at, key, path, format!("is inside {what}"), fix));
        }
    }
    if path == Path::new(CONFIG_FILE) || path == config_name {
        return Err(refuse(
            at,
            key,
            path,
            "is the config file itself".into(),
            fix,
        ));
    }
    check_ancestors(root, key, path, at, fix)?;
    let full = root.join(path);
    let meta = std::fs::symlink_metadata(&full).ok();
    if let Some(m) = &meta {
        if m.file_type().is_symlink() {
            if role == Role::Editable {
                return Err(refuse(
                    at,
                    key,
                    path,
                    "is a symlink (git would commit the link, not the edits)".into(),
                    "make it a regular file, or name the file it points to",
                ));
            }
            leads_inside(root, &full).map_err(|p| refuse(at, key, path, p, fix))?;
        }
        if m.is_dir() || (m.file_type().is_symlink() && full.is_dir()) {
            return Err(refuse(at, key, path, "is a folder".into(), fix));
        }
    }
    if role == Role::Editable && meta.is_some() {
        let bytes = std::fs::read(&full).unwrap_or_default();
        if std::str::from_utf8(&bytes).is_err() || bytes.contains(&0) {
            return Err(refuse(
                at,
                key,
                path,
                "is not UTF-8 text (edits are text)".into(),
                "list only text source files as editable",
            ));
        }
    }
    Ok(())
}

/// Every folder on the way to `path` must be a plain folder of this repository: not a
/// symlink leading out of the project, not a submodule or nested repository.
fn check_ancestors(
    root: &Path,
    key: &'static str,
    path: &Path,
    at: &Location,
    fix: &'static str,
) -> Result<(), ConfigError> {
    let mut dir = root.to_path_buf();
    let parents: Vec<Component> = path.components().collect();
    for c in &parents[..parents.len().saturating_sub(1)] {
        dir.push(c);
        let Ok(m) = std::fs::symlink_metadata(&dir) else {
            return Ok(());
        };
        if m.file_type().is_symlink() {
            leads_inside(root, &dir).map_err(|p| refuse(at, key, path, p, fix))?;
        }
        if dir.join(".git").exists() {
            let shown = dir.strip_prefix(root).unwrap_or(&dir).display().to_string();
            return Err(refuse(
                at,
                key,
                path,
                format!("is inside `{shown}`, a submodule or nested git repository"),
                "keep the files the session uses in the project's own repository",
            ));
        }
    }
    Ok(())
}

/// Ok when the symlink `link` resolves to somewhere inside `root`.
fn leads_inside(root: &Path, link: &Path) -> Result<(), String> {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    match link.canonicalize() {
        Ok(target) if target.starts_with(&root) => Ok(()),
        Ok(target) => Err(format!(
            "is a symlink leading out of the project (to {})",
            target.display()
        )),
        Err(_) => Err("is a symlink that leads nowhere".into()),
    }
}

/// `[sandbox] writable` folders: outside the project anything but an ancestor of it (that
/// would make `.git` writable); inside it, never `.git`, `.autoresearch` or the project
/// folder itself.
/// `~` and `~/…` in a configured path, read as the home folder (as a shell would); other
/// paths as they are. None when the path needs a home and `HOME` is not set. The config
/// check and the box read `[sandbox] writable` through this one function.
pub(crate) fn home_path(w: &str) -> Option<PathBuf> {
    let home = || std::env::var_os("HOME").map(PathBuf::from);
    match w.strip_prefix('~') {
        Some("") => home(),
        Some(rest) if rest.starts_with('/') => Some(home()?.join(rest.trim_start_matches('/'))),
        _ => Some(PathBuf::from(w)),
    }
}

pub(super) fn check_writable(
    root: &Path,
    writable: &[String],
    at: &Location,
) -> Result<(), ConfigError> {
    let key = "sandbox.writable";
    let fix = "list folders training writes, e.g. writable = [\"out\", \"~/.cache/torch\"]";
    let root_abs = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    for w in writable {
        let p = home_path(w).unwrap_or_default();
        let shown = PathBuf::from(w);
        if p.is_absolute() {
            let normal: PathBuf = p.components().collect();
            let canon = normal.canonicalize().unwrap_or(normal);
            if root_abs.starts_with(&canon) {
                return Err(refuse(
                    at,
                    key,
                    &shown,
                    "contains the project, so training could write .git and the read-only files"
                        .into(),
                    fix,
                ));
            }
            if let Ok(rel) = canon.strip_prefix(&root_abs) {
                check_inside_writable(root, rel, at, &shown, fix)?;
            }
        } else {
            let rel: PathBuf = p
                .components()
                .filter(|c| !matches!(c, Component::CurDir))
                .collect();
            if p.components().any(|c| matches!(c, Component::ParentDir)) {
                return Err(refuse(
                    at,
                    key,
                    &shown,
                    "leaves the project with `..`".into(),
                    "use an absolute path for folders outside the project",
                ));
            }
            check_inside_writable(root, &rel, at, &shown, fix)?;
        }
    }
    Ok(())
}

fn check_inside_writable(
    root: &Path,
    rel: &Path,
    at: &Location,
    shown: &Path,
    fix: &'static str,
) -> Result<(), ConfigError> {
    let key = "sandbox.writable";
    if rel.as_os_str().is_empty() {
        return Err(refuse(
            at,
            key,
            shown,
            "is the project folder itself".into(),
            fix,
        ));
    }
    if let Some(Component::Normal(first)) = rel.components().next()
        && let Some((_, what)) = FORBIDDEN_DIRS.iter().find(|(d, _)| first == *d)
    {
        return Err(refuse(at, key, shown, format!("is inside {what}"), fix));
    }
    let full = root.join(rel);
    if full.is_symlink() {
        leads_inside(root, &full).map_err(|p| refuse(at, key, shown, p, fix))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Location {
        Location::file_only(Path::new("autoresearch.toml"))
    }

    #[test]
    fn home_is_read_the_same_for_a_bare_tilde_and_a_tilde_path() {
        let home = PathBuf::from(std::env::var_os("HOME").unwrap());
        assert_eq!(home_path("~"), Some(home.clone()));
        assert_eq!(home_path("~/.cache/torch"), Some(home.join(".cache/torch")));
        assert_eq!(home_path("~other/x"), Some(PathBuf::from("~other/x")));
        assert_eq!(home_path("out"), Some(PathBuf::from("out")));
        // The box binds what the check read: a bare `~` is the home, not `<repo>/~`.
        let msg = check_writable(&home, &["~".into()], &at())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("contains the project"), "{msg}");
    }

    fn problem(root: &Path, role: Role, p: &str) -> Option<String> {
        check(root, role, Path::new(p), &at())
            .err()
            .map(|e| e.to_string())
    }

    #[test]
    fn the_repository_and_the_tools_folders_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        for (p, says) in [
            ("", "project folder itself"),
            (".git", "git's own folder"),
            (".git/HEAD", "git's own folder"),
            (".autoresearch/journal.sqlite", "state folder"),
            ("autoresearch.toml", "config file itself"),
        ] {
            let e = problem(dir.path(), Role::Results, p).expect(p);
            assert!(e.contains(says), "{p}: {e}");
            assert!(e.contains("`results`"), "{e}");
        }
        assert!(problem(dir.path(), Role::Results, "out/results.tsv").is_none());
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_out_submodules_and_binary_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("x.py"), "x = 1\n").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        std::os::unix::fs::symlink("train.py", dir.path().join("link.py")).unwrap();
        std::fs::write(dir.path().join("train.py"), "LR = 1\n").unwrap();
        std::fs::write(dir.path().join("model.bin"), [0u8, 159, 146, 150]).unwrap();
        std::fs::create_dir_all(dir.path().join("vendor/lib")).unwrap();
        std::fs::write(dir.path().join("vendor/.git"), "gitdir: x\n").unwrap();
        std::fs::write(dir.path().join("vendor/lib/a.py"), "a = 1\n").unwrap();
        let e = problem(dir.path(), Role::ReadOnly, "out/x.py").unwrap();
        assert!(e.contains("symlink leading out"), "{e}");
        let e = problem(dir.path(), Role::Editable, "link.py").unwrap();
        assert!(e.contains("is a symlink"), "{e}");
        assert!(problem(dir.path(), Role::ReadOnly, "link.py").is_none());
        let e = problem(dir.path(), Role::Editable, "model.bin").unwrap();
        assert!(e.contains("not UTF-8 text"), "{e}");
        let e = problem(dir.path(), Role::Editable, "vendor/lib/a.py").unwrap();
        assert!(e.contains("submodule"), "{e}");
        assert!(problem(dir.path(), Role::Editable, "train.py").is_none());
    }

    #[test]
    fn writable_folders_may_not_contain_the_project() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("proj");
        std::fs::create_dir(&root).unwrap();
        let bad = |w: &str| check_writable(&root, &[w.to_string()], &at()).err();
        assert!(bad(&dir.path().display().to_string()).is_some());
        assert!(bad("/").is_some());
        assert!(bad(".").is_some());
        assert!(bad(".git").is_some());
        assert!(bad("../elsewhere").is_some());
        assert!(bad("out").is_none());
        assert!(bad("/var/cache/autoresearch-test").is_none());
    }
}
