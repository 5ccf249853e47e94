//! What the repository itself implies: its dependency files (always read-only) and the
//! default training command from what is on PATH. Reads the file system and PATH only.

use super::DEPENDENCY_FILES;
use std::path::{Path, PathBuf};

/// True for files that pin the Python environment (always read-only).
pub fn is_dependency_file(path: &Path) -> bool {
    let Some(name) = path.to_str() else {
        return false;
    };
    DEPENDENCY_FILES.contains(&name)
        || (name.starts_with("requirements") && name.ends_with(".txt") && !name.contains('/'))
}

/// The dependency files present in `repo`'s root, in a fixed order: the known names, then
/// `requirements*.txt` sorted.
pub fn dependency_files(repo: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = DEPENDENCY_FILES
        .iter()
        .filter(|f| repo.join(f).is_file())
        .map(PathBuf::from)
        .collect();
    let mut extra: Vec<PathBuf> = std::fs::read_dir(repo)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .map(PathBuf::from)
        .filter(|p| is_dependency_file(p) && !found.contains(p) && repo.join(p).is_file())
        .collect();
    extra.sort();
    found.extend(extra);
    found
}

/// True when `program` is an executable file on PATH.
pub fn on_path(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        let candidate = dir.join(program);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        }
        #[cfg(not(unix))]
        {
            candidate.is_file()
        }
    })
}

/// The training command when none is configured, using this machine's PATH.
pub fn default_command(repo: &Path, editable: &[PathBuf]) -> String {
    default_command_with(repo, editable, &on_path)
}

/// `uv run <script>` when the repo has a pyproject.toml and uv is installed (karpathy's
/// setup), else `python <script>`, or `python3` where that is the only Python.
pub fn default_command_with(
    repo: &Path,
    editable: &[PathBuf],
    on_path: &dyn Fn(&str) -> bool,
) -> String {
    let train = PathBuf::from("train.py");
    let script = if editable.contains(&train) || editable.is_empty() {
        &train
    } else {
        &editable[0]
    };
    let script = script.display();
    if repo.join("pyproject.toml").is_file() && on_path("uv") {
        format!("uv run {script}")
    } else if !on_path("python") && on_path("python3") {
        format!("python3 {script}")
    } else {
        format!("python {script}")
    }
}
