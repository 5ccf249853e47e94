//! Config errors: where (file:line:column from byte spans) and what, each a single line
//! that ends with the fix. Only describes problems; it never decides what is valid.

use super::duration;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where in a config file something is: the file, and line:column when known (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line_col: Option<(u32, u32)>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", one_line(&self.file.display().to_string()))?;
        if let Some((line, col)) = self.line_col {
            write!(f, ":{line}:{col}")?;
        }
        Ok(())
    }
}

impl Location {
    /// Line and column (in characters) of byte `offset` in `text`.
    pub(super) fn at(file: &Path, text: &str, offset: usize) -> Location {
        let offset = offset.min(text.len());
        let before = &text[..text.floor_char_boundary_compat(offset)];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Location {
            file: file.to_path_buf(),
            line_col: Some((clamp(line), clamp(col))),
        }
    }

    pub(super) fn file_only(file: &Path) -> Location {
        Location {
            file: file.to_path_buf(),
            line_col: None,
        }
    }
}

/// `str::floor_char_boundary` is unstable; a byte offset from toml is always on a boundary,
/// but an error span may point one past a multi-byte character.
trait FloorBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

/// Everything that can be wrong with a config. Display is one line: where, what, the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot read {}: {source}; run `autoresearch init` to create it, or pass the right path",
        path.display()
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: invalid TOML: {message}; fix the syntax there")]
    Syntax { at: Location, message: String },
    #[error("{at}: unknown key `{key}`{}; {}", in_table(table), suggest(suggestion.as_deref(), valid))]
    UnknownKey {
        at: Location,
        key: String,
        /// The table it sits in, empty for the top level.
        table: &'static str,
        suggestion: Option<String>,
        valid: &'static [&'static str],
    },
    #[error("{at}: `{key}` must be {expected}, not {found}")]
    WrongType {
        at: Location,
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("{at}: `{key}` {problem}; {fix}")]
    Invalid {
        at: Location,
        key: String,
        problem: String,
        fix: String,
    },
    #[error("{at}: `{key}` is required: {help}")]
    Missing {
        at: Location,
        key: &'static str,
        help: &'static str,
    },
    #[error(
        "{at}: `timeout` ({}) must be greater than `budget` ({}); raise it, or remove it for the default 2 x budget + 60s ({})",
        duration::format(*timeout), duration::format(*budget), duration::format(super::default_timeout(*budget))
    )]
    TimeoutNotGreater {
        at: Location,
        timeout: Duration,
        budget: Duration,
    },
    #[error(
        "{at}: `metric.regex` does not compile ({message}); fix the pattern, e.g. regex = 'val_bpb=([0-9.]+)'"
    )]
    BadRegex { at: Location, message: String },
    #[error(
        "{at}: `metric.regex` has no capture group for the number; wrap it in parentheses, e.g. 'val_bpb=([0-9.]+)', or name it (?P<value>...)"
    )]
    RegexNoGroup { at: Location },
    #[error(
        "{at}: {what} `{}` does not exist in {}; create it or fix the path (paths are relative to the config's directory)",
        one_line(&file.display().to_string()), one_line(&repo.display().to_string())
    )]
    FileMissing {
        at: Location,
        what: &'static str,
        file: PathBuf,
        repo: PathBuf,
    },
    /// `problem` starts with the path as written, e.g. `"." names the project folder`.
    #[error("{at}: `{key}` = {}; {fix}", one_line(problem))]
    UnsafePath {
        at: Location,
        key: &'static str,
        problem: String,
        fix: &'static str,
    },
    #[error(
        "{at}: `{}` is editable but {}; an editable file cannot be read-only, remove it from one list",
        one_line(&file.display().to_string()),
        if *dependency { "it is a dependency file, always read-only" } else { "also listed in `read_only`" }
    )]
    Overlap {
        at: Location,
        file: PathBuf,
        dependency: bool,
    },
}

/// Text from the config (a value, a key, a path) with its control characters escaped, so
/// that `tag = "a\nb"` still gives a one-line error.
pub(super) fn one_line(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn in_table(table: &str) -> String {
    if table.is_empty() {
        String::new()
    } else {
        format!(" in [{table}]")
    }
}

fn suggest(suggestion: Option<&str>, valid: &[&str]) -> String {
    match suggestion {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("valid keys: {}", valid.join(", ")),
    }
}

/// The closest valid key, when it is close enough to be a likely typo.
pub(super) fn nearest(key: &str, valid: &[&str]) -> Option<String> {
    let norm = key.to_ascii_lowercase().replace('-', "_");
    valid
        .iter()
        .map(|v| {
            (
                strsim::jaro_winkler(&norm, v),
                strsim::damerau_levenshtein(&norm, v),
                v,
            )
        })
        .filter(|(jw, dl, v)| *jw >= 0.85 || *dl <= (v.len() / 3).max(1))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, _, v)| v.to_string())
}

pub(super) fn invalid_at(
    at: Location,
    key: &str,
    problem: impl Into<String>,
    fix: &str,
) -> ConfigError {
    ConfigError::Invalid {
        at,
        key: key.to_string(),
        problem: one_line(&Into::<String>::into(problem)),
        fix: fix.to_string(),
    }
}
