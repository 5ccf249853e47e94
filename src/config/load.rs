//! Reading `autoresearch.toml` into a validated [`Config`], with one-line errors that name
//! file:line:column and the fix. Reads the config and checks that files exist; it never
//! writes, and it never invents a budget or a metric.

use super::duration::{self, DurationError};
use super::{
    AgentBackend, AgentConfig, Config, DEPENDENCY_FILES, DecisionConfig, DecisionMode, MetricSpec,
    Scope,
};
use crate::experiment::Direction;
use regex::Regex;
use std::fmt;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;
use toml_edit::{ImDocument, Item, TableLike, Value};

/// Where in a config file something is: the file, and line:column when known (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line_col: Option<(usize, usize)>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.line_col {
            write!(f, ":{line}:{col}")?;
        }
        Ok(())
    }
}

impl Location {
    /// Line and column (in characters) of byte `offset` in `text`.
    fn at(file: &Path, text: &str, offset: usize) -> Location {
        let offset = offset.min(text.len());
        let before = &text[..text.floor_char_boundary_compat(offset)];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        Location {
            file: file.to_path_buf(),
            line_col: Some((line, col)),
        }
    }

    fn file_only(file: &Path) -> Location {
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
        table: String,
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
        file.display(), repo.display()
    )]
    FileMissing {
        at: Location,
        what: &'static str,
        file: PathBuf,
        repo: PathBuf,
    },
    #[error(
        "{at}: `{}` is editable but {}; an editable file cannot be read-only, remove it from one list",
        file.display(),
        if *dependency { "it is a dependency file, always read-only" } else { "also listed in `read_only`" }
    )]
    Overlap {
        at: Location,
        file: PathBuf,
        dependency: bool,
    },
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
fn nearest(key: &str, valid: &[&str]) -> Option<String> {
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

const TOP_KEYS: &[&str] = &[
    "editable",
    "read_only",
    "command",
    "budget",
    "timeout",
    "max_iterations",
    "scope",
    "tag",
    "results",
    "program",
    "report_every",
    "metric",
    "agent",
    "decision",
];
const METRIC_KEYS: &[&str] = &["name", "direction", "regex", "memory_key"];
const AGENT_KEYS: &[&str] = &[
    "backend",
    "model",
    "base_url",
    "command",
    "timeout",
    "max_tokens",
    "max_cost_usd",
    "patience",
    "seed",
];
const DECISION_KEYS: &[&str] = &[
    "mode",
    "baseline_runs",
    "min_delta",
    "z",
    "confirm_runs",
    "recheck_every",
];

/// Reads and validates the config at `path`; the repository root is its directory.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(&text, path)
}

/// Validates config `text` as if read from `path` (files are checked relative to its
/// directory).
pub fn load_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let doc = ImDocument::parse(text).map_err(|e| ConfigError::Syntax {
        at: match e.span() {
            Some(span) => Location::at(path, text, span.start),
            None => Location::file_only(path),
        },
        message: e.message().trim().lines().next().unwrap_or("").to_string(),
    })?;
    let cx = Cx { file: path, text };
    let top = Section {
        cx: &cx,
        table: doc.as_table(),
        name: "",
        header: None,
    };
    top.check_keys(TOP_KEYS)?;
    let repo = repo_root(path);
    build(&top, &repo)
}

/// The directory holding the config; `autoresearch.toml` alone means the current one.
pub fn repo_root(config_path: &Path) -> PathBuf {
    match config_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn build(top: &Section, repo: &Path) -> Result<Config, ConfigError> {
    let cx = top.cx;
    let budget = match top.duration("budget", "a duration like \"5m\" or a number of seconds")? {
        Some((d, _)) => d,
        None => {
            return Err(ConfigError::Missing {
                at: Location::file_only(cx.file),
                key: "budget",
                help: "the wall-clock time each training run gets, e.g. budget = \"5m\" (autoresearch never assumes it)",
            });
        }
    };
    let timeout = match top.duration("timeout", "a duration like \"11m\" or a number of seconds")? {
        Some((t, at)) if t <= budget => {
            return Err(ConfigError::TimeoutNotGreater {
                at,
                timeout: t,
                budget,
            });
        }
        Some((t, _)) => t,
        None => super::default_timeout(budget),
    };

    let metric = read_metric(top)?;

    let editable = match top.path_list("editable")? {
        Some(list) => list,
        None => vec![(PathBuf::from("train.py"), Location::file_only(cx.file))],
    };
    if editable.is_empty() {
        return Err(top.invalid(
            "editable",
            "is empty",
            "list the file(s) the agent may change, e.g. editable = [\"train.py\"]",
        ));
    }
    for (file, at) in &editable {
        if !repo.join(file).is_file() {
            return Err(ConfigError::FileMissing {
                at: at.clone(),
                what: "editable file",
                file: file.clone(),
                repo: repo.to_path_buf(),
            });
        }
    }
    let explicit_read_only = top.path_list("read_only")?;
    let mut read_only: Vec<PathBuf> = Vec::new();
    match &explicit_read_only {
        Some(list) => {
            for (file, at) in list {
                if !repo.join(file).is_file() {
                    return Err(ConfigError::FileMissing {
                        at: at.clone(),
                        what: "read-only file",
                        file: file.clone(),
                        repo: repo.to_path_buf(),
                    });
                }
                // Dependency files are added below in a fixed order, so a config written
                // back by `to_toml` reads to the same list.
                if !is_dependency_file(file) && !read_only.contains(file) {
                    read_only.push(file.clone());
                }
            }
        }
        None if repo.join("prepare.py").is_file() => read_only.push("prepare.py".into()),
        None => {}
    }
    for dep in dependency_files(repo) {
        if !read_only.contains(&dep) {
            read_only.push(dep);
        }
    }
    for (file, at) in &editable {
        let listed = explicit_read_only
            .as_ref()
            .is_some_and(|l| l.iter().any(|(f, _)| f == file));
        if listed || read_only.contains(file) || is_dependency_file(file) {
            return Err(ConfigError::Overlap {
                at: at.clone(),
                file: file.clone(),
                dependency: is_dependency_file(file) && !listed,
            });
        }
    }
    let editable: Vec<PathBuf> = editable.into_iter().map(|(f, _)| f).collect();

    let command = match top.string("command")? {
        Some((c, _)) if c.trim().is_empty() => {
            return Err(top.invalid(
                "command",
                "is empty",
                "set the training command, e.g. command = \"python train.py\"",
            ));
        }
        Some((c, _)) => c,
        None => default_command(repo, &editable),
    };

    let max_iterations = match top.int("max_iterations")? {
        Some((n, at)) if n < 1 => {
            return Err(invalid_at(
                at,
                "max_iterations",
                format!("is {n}"),
                "use 1 or more, or remove it for no limit",
            ));
        }
        Some((n, _)) => Some(n as u64),
        None => None,
    };
    let scope = match top.string("scope")? {
        Some((s, at)) => parse_scope(&s).ok_or_else(|| {
            invalid_at(
                at,
                "scope",
                format!("is `{s}`"),
                "use one of architecture, hyperparameters, optimizer, all",
            )
        })?,
        None => Scope::default(),
    };
    let tag = match top.string("tag")? {
        Some((t, at)) => {
            if let Err(problem) = check_tag(&t) {
                return Err(invalid_at(
                    at,
                    "tag",
                    problem,
                    "use letters, digits, `-`, `_` or `.`, e.g. tag = \"nov23\"",
                ));
            }
            t
        }
        None => super::default_tag(chrono::Local::now().date_naive()),
    };
    let results = match top.path("results")? {
        Some((p, _)) => p,
        None => PathBuf::from("results.tsv"),
    };
    let program = match top.path("program")? {
        Some((p, at)) => {
            if !repo.join(&p).is_file() {
                return Err(ConfigError::FileMissing {
                    at,
                    what: "program file",
                    file: p,
                    repo: repo.to_path_buf(),
                });
            }
            p
        }
        // The default program file is optional: without it the built-in instructions apply.
        None => PathBuf::from("program.md"),
    };
    let report_every = top.uint("report_every")?.unwrap_or(10);

    Ok(Config {
        source: Some(cx.file.to_path_buf()),
        editable,
        read_only,
        command,
        budget,
        timeout,
        metric,
        max_iterations,
        scope,
        tag,
        results,
        program,
        report_every,
        agent: read_agent(top)?,
        decision: read_decision(top)?,
    })
}

fn read_metric(top: &Section) -> Result<MetricSpec, ConfigError> {
    const HELP_TABLE: &str = "add a [metric] table with name = \"val_bpb\" and direction = \"minimize\" (autoresearch never assumes the metric)";
    let Some(m) = top.table("metric", METRIC_KEYS)? else {
        return Err(ConfigError::Missing {
            at: Location::file_only(top.cx.file),
            key: "metric",
            help: HELP_TABLE,
        });
    };
    let name = match m.string("name")? {
        Some((n, at)) => {
            if n.trim().is_empty() || n.contains(['\t', '\n', '\r']) {
                return Err(invalid_at(
                    at,
                    "metric.name",
                    format!("is {n:?}"),
                    "use the key the training script prints, e.g. name = \"val_bpb\"",
                ));
            }
            n
        }
        None => {
            return Err(ConfigError::Missing {
                at: m.here(),
                key: "metric.name",
                help: "the key the training script prints, e.g. name = \"val_bpb\" for `val_bpb: 0.99` lines",
            });
        }
    };
    let direction = match m.string("direction")? {
        Some((d, at)) => parse_direction(&d).ok_or_else(|| {
            invalid_at(
                at,
                "metric.direction",
                format!("is `{d}`"),
                "use \"minimize\" (lower is better) or \"maximize\" (higher is better)",
            )
        })?,
        None => {
            return Err(ConfigError::Missing {
                at: m.here(),
                key: "metric.direction",
                help: "direction = \"minimize\" if lower is better (loss, bpb), \"maximize\" if higher is better (accuracy)",
            });
        }
    };
    let regex = match m.string("regex")? {
        Some((r, at)) => {
            let re = Regex::new(&r).map_err(|e| ConfigError::BadRegex {
                at: at.clone(),
                message: e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or("")
                    .trim()
                    .to_string(),
            })?;
            let named = re.capture_names().any(|n| n == Some("value"));
            if re.captures_len() < 2 && !named {
                return Err(ConfigError::RegexNoGroup { at });
            }
            Some(re)
        }
        None => None,
    };
    let memory_key = match m.string("memory_key")? {
        Some((k, _)) => k,
        None => "peak_vram_mb".to_string(),
    };
    Ok(MetricSpec {
        name,
        direction,
        regex,
        memory_key,
    })
}

fn read_agent(top: &Section) -> Result<AgentConfig, ConfigError> {
    let mut agent = AgentConfig::default();
    let Some(a) = top.table("agent", AGENT_KEYS)? else {
        return Ok(agent);
    };
    if let Some((b, at)) = a.string("backend")? {
        agent.backend = match b.to_ascii_lowercase().as_str() {
            "search" => AgentBackend::Search,
            "anthropic" | "claude" => AgentBackend::Anthropic,
            "openai" | "openai-compatible" => AgentBackend::OpenAi,
            "command" => AgentBackend::Command,
            _ => {
                return Err(invalid_at(
                    at,
                    "agent.backend",
                    format!("is `{b}`"),
                    "use one of search, anthropic, openai, command",
                ));
            }
        };
    }
    agent.model = a.string("model")?.map(|(s, _)| s);
    agent.base_url = a.string("base_url")?.map(|(s, _)| s);
    agent.command = a.string("command")?.map(|(s, _)| s);
    agent.timeout = a
        .duration("timeout", "a duration like \"5m\"")?
        .map(|(d, _)| d);
    if let Some((n, at)) = a.int("max_tokens")? {
        agent.max_tokens = Some(u32::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
            invalid_at(
                at,
                "agent.max_tokens",
                format!("is {n}"),
                "use a positive number, e.g. max_tokens = 8000",
            )
        })?);
    }
    if let Some((c, at)) = a.float("max_cost_usd")? {
        if c <= 0.0 || !c.is_finite() {
            return Err(invalid_at(
                at,
                "agent.max_cost_usd",
                format!("is {c}"),
                "use a positive amount in dollars, e.g. max_cost_usd = 5.0",
            ));
        }
        agent.max_cost_usd = Some(c);
    }
    if let Some(p) = a.uint("patience")? {
        agent.patience = p;
    }
    if let Some((s, at)) = a.int("seed")? {
        agent.seed = u64::try_from(s)
            .map_err(|_| invalid_at(at, "agent.seed", format!("is {s}"), "use 0 or more"))?;
    }
    if agent.backend == AgentBackend::Command && agent.command.is_none() {
        return Err(ConfigError::Missing {
            at: a.here(),
            key: "agent.command",
            help: "backend = \"command\" runs a CLI agent, e.g. command = \"claude -p @{prompt_file}\"",
        });
    }
    Ok(agent)
}

fn read_decision(top: &Section) -> Result<DecisionConfig, ConfigError> {
    let mut d = DecisionConfig::default();
    let Some(t) = top.table("decision", DECISION_KEYS)? else {
        return Ok(d);
    };
    if let Some((m, at)) = t.string("mode")? {
        d.mode = match m.to_ascii_lowercase().replace('_', "-").as_str() {
            "greedy" => DecisionMode::Greedy,
            "noise-aware" | "noiseaware" => DecisionMode::NoiseAware,
            _ => {
                return Err(invalid_at(
                    at,
                    "decision.mode",
                    format!("is `{m}`"),
                    "use \"greedy\" or \"noise-aware\"",
                ));
            }
        };
    }
    if let Some(n) = t.uint("baseline_runs")? {
        d.baseline_runs = n;
    }
    if let Some((v, at)) = t.float("min_delta")? {
        if v < 0.0 || !v.is_finite() {
            return Err(invalid_at(
                at,
                "decision.min_delta",
                format!("is {v}"),
                "use 0 or more",
            ));
        }
        d.min_delta = v;
    }
    if let Some((v, at)) = t.float("z")? {
        if v < 0.0 || !v.is_finite() {
            return Err(invalid_at(
                at,
                "decision.z",
                format!("is {v}"),
                "use 0 or more, e.g. z = 2.0",
            ));
        }
        d.z = v;
    }
    if let Some(n) = t.uint("confirm_runs")? {
        d.confirm_runs = n;
    }
    if let Some(n) = t.uint("recheck_every")? {
        d.recheck_every = n;
    }
    Ok(d)
}

fn invalid_at(at: Location, key: &str, problem: impl Into<String>, fix: &str) -> ConfigError {
    ConfigError::Invalid {
        at,
        key: key.to_string(),
        problem: problem.into(),
        fix: fix.to_string(),
    }
}

/// `minimize`/`maximize` and the spellings people use for them.
pub fn parse_direction(s: &str) -> Option<Direction> {
    match s.trim().to_ascii_lowercase().as_str() {
        "minimize" | "minimise" | "min" | "lower" | "lower-is-better" | "down" => {
            Some(Direction::Minimize)
        }
        "maximize" | "maximise" | "max" | "higher" | "higher-is-better" | "up" => {
            Some(Direction::Maximize)
        }
        _ => None,
    }
}

/// `architecture | hyperparameters | optimizer | all`.
pub fn parse_scope(s: &str) -> Option<Scope> {
    match s.trim().to_ascii_lowercase().as_str() {
        "architecture" | "arch" => Some(Scope::Architecture),
        "hyperparameters" | "hyperparameter" | "hparams" => Some(Scope::Hyperparameters),
        "optimizer" | "optimiser" => Some(Scope::Optimizer),
        "all" => Some(Scope::All),
        _ => None,
    }
}

/// A tag must make a valid branch name `autoresearch/<tag>`.
pub fn check_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() {
        return Err("is empty".into());
    }
    if let Some(c) = tag
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!("`{tag}` contains {c:?}"));
    }
    if tag.starts_with(['-', '.']) || tag.ends_with('.') || tag.contains("..") {
        return Err(format!("`{tag}` is not a valid branch name"));
    }
    Ok(())
}

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

/// The config text and file, for turning byte spans into locations.
struct Cx<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Cx<'_> {
    fn loc(&self, span: Option<Range<usize>>) -> Location {
        match span {
            Some(s) => Location::at(self.file, self.text, s.start),
            None => Location::file_only(self.file),
        }
    }
}

/// One table of the document with typed, located accessors.
struct Section<'a> {
    cx: &'a Cx<'a>,
    table: &'a dyn TableLike,
    /// `""` for the top level, else the table name (used as a key prefix in messages).
    name: &'static str,
    /// Where the table starts, for errors about keys it lacks.
    header: Option<Range<usize>>,
}

impl<'a> Section<'a> {
    fn here(&self) -> Location {
        self.cx.loc(self.header.clone())
    }

    fn full_key(&self, key: &str) -> String {
        if self.name.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.name)
        }
    }

    fn check_keys(&self, valid: &'static [&'static str]) -> Result<(), ConfigError> {
        let mut unknown: Vec<(usize, &str, Location)> = self
            .table
            .iter()
            .filter(|(k, _)| !valid.contains(k))
            .map(|(k, item)| {
                let span = self
                    .table
                    .key(k)
                    .and_then(|key| key.span())
                    .or_else(|| item.span());
                let order = span.as_ref().map_or(usize::MAX, |s| s.start);
                (order, k, self.cx.loc(span))
            })
            .collect();
        unknown.sort_by_key(|u| u.0);
        match unknown.into_iter().next() {
            Some((_, key, at)) => Err(ConfigError::UnknownKey {
                at,
                key: key.to_string(),
                table: self.name.to_string(),
                suggestion: nearest(key, valid),
                valid,
            }),
            None => Ok(()),
        }
    }

    /// The item for `key` and where its value is (falling back to the key, then the table).
    fn get(&self, key: &str) -> Option<(&'a Item, Location)> {
        let (k, item) = self.table.get_key_value(key)?;
        let span = item.span().or_else(|| k.span()).or(self.header.clone());
        Some((item, self.cx.loc(span)))
    }

    fn wrong(&self, key: &str, at: Location, expected: &'static str, item: &Item) -> ConfigError {
        ConfigError::WrongType {
            at,
            key: self.full_key(key),
            expected,
            found: article(item.type_name()),
        }
    }

    fn invalid(&self, key: &str, problem: &str, fix: &str) -> ConfigError {
        let at = self.get(key).map_or_else(|| self.here(), |(_, at)| at);
        invalid_at(at, &self.full_key(key), problem, fix)
    }

    fn table(
        &self,
        key: &'static str,
        valid: &'static [&'static str],
    ) -> Result<Option<Section<'a>>, ConfigError> {
        let Some((item, at)) = self.get(key) else {
            return Ok(None);
        };
        let Some(table) = item.as_table_like() else {
            return Err(self.wrong(key, at, "a table", item));
        };
        let header = item
            .span()
            .or_else(|| self.table.key(key).and_then(|k| k.span()));
        let section = Section {
            cx: self.cx,
            table,
            name: key,
            header,
        };
        section.check_keys(valid)?;
        Ok(Some(section))
    }

    fn string(&self, key: &str) -> Result<Option<(String, Location)>, ConfigError> {
        let Some((item, at)) = self.get(key) else {
            return Ok(None);
        };
        match item.as_str() {
            Some(s) => Ok(Some((s.to_string(), at))),
            None => Err(self.wrong(key, at, "a string", item)),
        }
    }

    fn int(&self, key: &str) -> Result<Option<(i64, Location)>, ConfigError> {
        let Some((item, at)) = self.get(key) else {
            return Ok(None);
        };
        match item.as_integer() {
            Some(n) => Ok(Some((n, at))),
            None => Err(self.wrong(key, at, "an integer", item)),
        }
    }

    fn uint(&self, key: &str) -> Result<Option<u32>, ConfigError> {
        match self.int(key)? {
            Some((n, at)) => u32::try_from(n).map(Some).map_err(|_| {
                invalid_at(
                    at,
                    &self.full_key(key),
                    format!("is {n}"),
                    "use 0 or a positive integer",
                )
            }),
            None => Ok(None),
        }
    }

    /// A float; integers are accepted too (`z = 2`).
    fn float(&self, key: &str) -> Result<Option<(f64, Location)>, ConfigError> {
        let Some((item, at)) = self.get(key) else {
            return Ok(None);
        };
        match (item.as_float(), item.as_integer()) {
            (Some(f), _) => Ok(Some((f, at))),
            (None, Some(n)) => Ok(Some((n as f64, at))),
            _ => Err(self.wrong(key, at, "a number", item)),
        }
    }

    /// A duration: a string like `"5m"` or integer seconds.
    fn duration(
        &self,
        key: &str,
        expected: &'static str,
    ) -> Result<Option<(Duration, Location)>, ConfigError> {
        let Some((item, at)) = self.get(key) else {
            return Ok(None);
        };
        let parsed = match item.as_value() {
            Some(Value::String(s)) => duration::parse(s.value()),
            Some(Value::Integer(n)) => duration::from_int(*n.value()),
            _ => return Err(self.wrong(key, at, expected, item)),
        };
        parsed.map(|d| Some((d, at.clone()))).map_err(|e| {
            let fix = match e {
                DurationError::Zero | DurationError::Negative(_) => {
                    "a run needs a positive time, e.g. \"5m\""
                }
                _ => "write it like \"300\", \"20s\", \"5m\" or \"1h30m\"",
            };
            invalid_at(at, &self.full_key(key), e.to_string(), fix)
        })
    }

    /// A relative path inside the repository.
    fn path(&self, key: &str) -> Result<Option<(PathBuf, Location)>, ConfigError> {
        match self.string(key)? {
            Some((s, at)) => Ok(Some((self.check_relative(key, &s, at.clone())?, at))),
            None => Ok(None),
        }
    }

    fn check_relative(&self, key: &str, s: &str, at: Location) -> Result<PathBuf, ConfigError> {
        let p = PathBuf::from(s);
        let inside = !s.is_empty()
            && p.components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside {
            return Err(invalid_at(
                at,
                &self.full_key(key),
                format!("has `{s}`, which is not a path inside the repository"),
                "use a path relative to the config's directory, e.g. \"train.py\"",
            ));
        }
        // `./train.py` and `train.py` are the same file; keep one spelling.
        Ok(p.components().filter(|c| *c != Component::CurDir).collect())
    }

    /// A list of relative paths, each with its own location.
    fn path_list(&self, key: &str) -> Result<Option<Vec<(PathBuf, Location)>>, ConfigError> {
        let Some((item, at)) = self.get(key) else {
            return Ok(None);
        };
        let expected = "a list of paths like [\"train.py\"]";
        let Some(array) = item.as_array() else {
            return Err(self.wrong(key, at, expected, item));
        };
        let mut out = Vec::new();
        for v in array.iter() {
            let vat = self.cx.loc(v.span().or(item.span()));
            let Some(s) = v.as_str() else {
                return Err(ConfigError::WrongType {
                    at: vat,
                    key: self.full_key(key),
                    expected,
                    found: article(v.type_name()),
                });
            };
            let p = self.check_relative(key, s, vat.clone())?;
            if !out.iter().any(|(q, _)| *q == p) {
                out.push((p, vat));
            }
        }
        Ok(Some(out))
    }
}

fn article(type_name: &'static str) -> &'static str {
    match type_name {
        "string" => "a string",
        "integer" => "an integer",
        "float" => "a float",
        "boolean" => "a boolean",
        "array" => "a list",
        "table" | "inline table" => "a table",
        "array of tables" => "an array of tables",
        "offset datetime" | "local datetime" | "local date" | "local time" | "datetime" => {
            "a date/time"
        }
        other => other,
    }
}
