//! Reading `autoresearch.toml` into a validated [`Config`], with one-line errors that name
//! file:line:column and the fix. Reads the config and checks that files exist; it never
//! writes, and it never invents a budget or a metric.

use super::agent::{AGENT_KEYS, read_agent};
use super::error::{ConfigError, Location, invalid_at};
use super::paths::{self, Role};
use super::repo::{default_command, dependency_files, is_dependency_file};
use super::section::{Cx, Section};
use super::{Config, DecisionConfig, DecisionMode, MetricSpec, Scope};
use crate::experiment::Direction;
use regex::Regex;
use std::path::{Path, PathBuf};
use toml_edit::ImDocument;

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
    "sandbox",
    "executor",
    "prune",
];
const METRIC_KEYS: &[&str] = &["name", "direction", "regex", "memory_key"];
const DECISION_KEYS: &[&str] = &[
    "mode",
    "baseline_runs",
    "min_delta",
    "z",
    "confirm_runs",
    "recheck_every",
    "revisits",
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
    top.check_keys(TOP_KEYS).map_err(table_key_hint)?;
    let repo = repo_root(path);
    build(&top, &repo)
}

/// A table's key written at the top level (`direction = …` above `[metric]`) gets the
/// dotted spelling as its suggestion, which is valid TOML right where it stands.
fn table_key_hint(e: ConfigError) -> ConfigError {
    match e {
        ConfigError::UnknownKey {
            at,
            key,
            table: "",
            suggestion: None,
            valid,
        } => {
            let owner = [
                ("metric", METRIC_KEYS),
                ("agent", AGENT_KEYS),
                ("decision", DECISION_KEYS),
                ("sandbox", super::sandbox::KEYS),
                ("executor", super::executor::KEYS),
                ("prune", super::prune::KEYS),
            ]
            .into_iter()
            .find(|(_, keys)| keys.contains(&key.as_str()));
            ConfigError::UnknownKey {
                at,
                suggestion: owner.map(|(t, _)| format!("{t}.{key}")),
                key,
                table: "",
                valid,
            }
        }
        e => e,
    }
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
        // Training scripts read the budget as whole seconds (AUTORESEARCH_TIME_BUDGET).
        Some((d, at)) if d < std::time::Duration::from_secs(1) => {
            return Err(invalid_at(
                at,
                "budget",
                format!("is {}", super::duration::format(d)),
                "give each run at least one second, e.g. budget = \"1s\"",
            ));
        }
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
        paths::check(repo, Role::Editable, file, at)?;
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
                paths::check(repo, Role::ReadOnly, file, at)?;
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
        // The default never contradicts an explicit `editable`.
        None if repo.join("prepare.py").is_file()
            && !editable.iter().any(|(f, _)| f == Path::new("prepare.py")) =>
        {
            read_only.push("prepare.py".into())
        }
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
        Some((p, at)) => {
            paths::check(repo, Role::Results, &p, &at)?;
            let clash = editable.iter().chain(&read_only).any(|f| *f == p)
                || top.path("program")?.is_some_and(|(q, _)| q == p);
            if clash {
                return Err(invalid_at(
                    at,
                    "results",
                    format!("is `{}`, a file the session reads", p.display()),
                    "name a file of its own, e.g. results = \"results.tsv\"",
                ));
            }
            p
        }
        None => PathBuf::from("results.tsv"),
    };
    let program = match top.path("program")? {
        Some((p, at)) => {
            paths::check(repo, Role::Program, &p, &at)?;
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
        executor: super::executor::read(top)?,
        prune: super::prune::read(top)?,
        sandbox: {
            let sandbox = super::sandbox::read(top)?;
            paths::check_writable(repo, &sandbox.writable, &Location::file_only(cx.file))?;
            sandbox
        },
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
            let Some(re) = value_regex(&r, &at)? else {
                return Err(ConfigError::RegexNoGroup { at });
            };
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
    if let Some(n) = t.uint("revisits")? {
        d.revisits = n;
    }
    Ok(d)
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

/// `text` compiled as a regex that captures a number: a first group, or one named `value`.
/// None when it has neither; an error (its last line, which names the problem) when it is
/// not a regex.
pub(super) fn value_regex(text: &str, at: &Location) -> Result<Option<Regex>, ConfigError> {
    let re = Regex::new(text).map_err(|e| ConfigError::BadRegex {
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
    Ok((re.captures_len() >= 2 || named).then_some(re))
}
