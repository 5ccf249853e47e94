//! Text views of a [`Config`]: the commented `autoresearch.toml` that `load_str` reads back
//! to an equal config, and the markdown table shown before a run. Pure: data in, text out.

use super::duration;
use super::{AgentConfig, Config, DecisionConfig, SandboxConfig};
use crate::experiment::Direction;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A TOML string literal (escaped by the toml crate, so any text is safe).
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn qp(p: &Path) -> String {
    q(&p.to_string_lossy())
}

fn list(paths: &[PathBuf]) -> String {
    let items: Vec<String> = paths.iter().map(|p| qp(p)).collect();
    format!("[{}]", items.join(", "))
}

/// A float as TOML reads it back exactly (`2.0`, not `2`).
fn float(f: f64) -> String {
    format!("{f:?}")
}

/// Writes `cfg` as a readable, commented `autoresearch.toml`.
pub fn to_toml(cfg: &Config) -> String {
    let mut out = String::new();
    let w = &mut out;
    // Writing to a String cannot fail; the `let _` keeps clippy quiet about it.
    let _ = writeln!(
        w,
        "# autoresearch.toml: what each experiment may change, how it runs, how it is judged.\n\
         # Paths are relative to this file's directory.\n"
    );
    let _ = writeln!(w, "# Files the agent may change.");
    let _ = writeln!(w, "editable = {}", list(&cfg.editable));
    let _ = writeln!(
        w,
        "# Files that must stay byte-identical. Dependency files (pyproject.toml, uv.lock,\n\
         # requirements*.txt, ...) are always read-only and need not be listed."
    );
    let own: Vec<PathBuf> = cfg
        .read_only
        .iter()
        .filter(|p| !super::is_dependency_file(p))
        .cloned()
        .collect();
    let _ = writeln!(w, "read_only = {}", list(&own));
    let _ = writeln!(
        w,
        "# The training command, run with `sh -c` in this directory."
    );
    let _ = writeln!(w, "command = {}", q(&cfg.command));
    let _ = writeln!(w, "# Wall-clock time each training run gets.");
    let _ = writeln!(w, "budget = {}", q(&duration::format(cfg.budget)));
    let _ = writeln!(
        w,
        "# Hard limit after which a run is killed (default 2 x budget + 60s)."
    );
    // The default follows the budget, so it stays implicit: editing the budget later must
    // not leave a stale timeout behind.
    if cfg.timeout == super::default_timeout(cfg.budget) {
        let _ = writeln!(w, "# timeout = {}", q(&duration::format(cfg.timeout)));
    } else {
        let _ = writeln!(w, "timeout = {}", q(&duration::format(cfg.timeout)));
    }
    let _ = writeln!(
        w,
        "# Stop after this many experiments (leave out for no limit)."
    );
    match cfg.max_iterations {
        Some(n) => {
            let _ = writeln!(w, "max_iterations = {n}");
        }
        None => {
            let _ = writeln!(w, "# max_iterations = 100");
        }
    }
    let _ = writeln!(
        w,
        "# What the agent may change: architecture | hyperparameters | optimizer | all."
    );
    let _ = writeln!(w, "scope = {}", q(cfg.scope.as_str()));
    let _ = writeln!(w, "# The research branch is autoresearch/<tag>.");
    let _ = writeln!(w, "tag = {}", q(&cfg.tag));
    let _ = writeln!(w, "# One row per experiment, karpathy's columns.");
    let _ = writeln!(w, "results = {}", qp(&cfg.results));
    let _ = writeln!(w, "# Research instructions for the agent (optional).");
    // The default program file is optional, so it is only written when it was chosen:
    // an explicit `program` must exist.
    if cfg.program == Path::new("program.md") {
        let _ = writeln!(w, "# program = \"program.md\"");
    } else {
        let _ = writeln!(w, "program = {}", qp(&cfg.program));
    }
    let _ = writeln!(
        w,
        "# Print a progress report every N experiments (0 = never)."
    );
    let _ = writeln!(w, "report_every = {}", cfg.report_every);

    let m = &cfg.metric;
    let _ = writeln!(
        w,
        "\n# The number each run is judged by, read from `name: value` lines of its log."
    );
    let _ = writeln!(w, "[metric]");
    let _ = writeln!(w, "name = {}", q(&m.name));
    let _ = writeln!(
        w,
        "direction = {}  # {}",
        q(m.direction.as_str()),
        direction_words(m.direction)
    );
    match &m.regex {
        Some(re) => {
            let _ = writeln!(w, "regex = {}", q(re.as_str()));
        }
        None => {
            let _ = writeln!(
                w,
                "# regex = 'val_bpb=([0-9.]+)'  # only for logs without `name: value` lines"
            );
        }
    }
    let _ = writeln!(w, "# The printed key reporting peak memory in MB.");
    let _ = writeln!(w, "memory_key = {}", q(&m.memory_key));

    write_agent(w, &cfg.agent);
    write_decision(w, &cfg.decision);
    write_sandbox(w, &cfg.sandbox);
    write_executor(w, &cfg.executor);
    write_prune(w, &cfg.prune);
    out
}

/// `[prune]`, only where it differs from the defaults.
fn write_prune(w: &mut String, p: &super::PruneConfig) {
    let d = super::PruneConfig::default();
    if *p == d {
        return;
    }
    let _ = writeln!(
        w,
        "\n# Stopping runs whose training curve is already hopeless."
    );
    let _ = writeln!(w, "[prune]");
    let enabled = match p.mode {
        super::PruneMode::Auto => "\"auto\"",
        super::PruneMode::On => "true",
        super::PruneMode::Off => "false",
    };
    let _ = writeln!(w, "enabled = {enabled}");
    let _ = writeln!(w, "start = {}", p.start);
    let _ = writeln!(w, "alpha = {}", p.alpha);
    let _ = writeln!(w, "min_runs = {}", p.min_runs);
    let _ = writeln!(w, "min_codes = {}", p.min_codes);
    if let Some(re) = &p.curve.regex {
        let _ = writeln!(w, "curve = {}", q(re.as_str()));
    }
}

fn write_executor(w: &mut String, e: &super::ExecutorConfig) {
    let super::ExecutorConfig::Slurm(s) = e else {
        return;
    };
    let _ = writeln!(w, "\n# Each run is a Slurm job.");
    let _ = writeln!(w, "[executor]");
    let _ = writeln!(w, "kind = \"slurm\"");
    for (key, value) in [
        ("partition", &s.partition),
        ("account", &s.account),
        ("qos", &s.qos),
        ("mem", &s.mem),
    ] {
        if let Some(v) = value {
            let _ = writeln!(w, "{key} = {}", q(v));
        }
    }
    for (key, value) in [
        ("gpus_per_job", s.gpus_per_job),
        ("cpus_per_job", s.cpus_per_job),
    ] {
        if let Some(v) = value {
            let _ = writeln!(w, "{key} = {v}");
        }
    }
    let _ = writeln!(w, "time_margin = {}", q(&duration::format(s.time_margin)));
    let args: Vec<String> = s.sbatch_args.iter().map(|a| q(a)).collect();
    let _ = writeln!(w, "sbatch_args = [{}]", args.join(", "));
}

fn write_agent(w: &mut String, a: &AgentConfig) {
    let _ = writeln!(
        w,
        "\n# Who proposes changes: search (built-in, no LLM) | anthropic | openai | command."
    );
    let _ = writeln!(w, "[agent]");
    let _ = writeln!(w, "backend = {}", q(a.backend.as_str()));
    let opt = |w: &mut String, key: &str, value: Option<String>, example: &str| {
        let _ = match value {
            Some(v) => writeln!(w, "{key} = {v}"),
            None => writeln!(w, "# {key} = {example}"),
        };
    };
    opt(w, "model", a.model.as_deref().map(q), "\"...\"");
    opt(
        w,
        "base_url",
        a.base_url.as_deref().map(q),
        "\"http://localhost:8000/v1\"",
    );
    opt(
        w,
        "command",
        a.command.as_deref().map(q),
        "\"my-agent --prompt {prompt_file}\"",
    );
    opt(
        w,
        "timeout",
        a.timeout.map(|t| q(&duration::format(t))),
        "\"5m\"",
    );
    opt(w, "max_tokens", a.max_tokens.map(|n| n.to_string()), "8000");
    opt(
        w,
        "context_tokens",
        a.context_tokens.map(|n| n.to_string()),
        "8192",
    );
    let structured = (a.structured != crate::config::Structured::Auto)
        .then(|| format!("\"{}\"", a.structured.as_str()));
    opt(w, "structured", structured, "\"auto\"");
    opt(
        w,
        "stream",
        (!a.stream).then(|| "false".to_string()),
        "true",
    );
    opt(w, "max_cost_usd", a.max_cost_usd.map(float), "5.0");
    opt(
        w,
        "concurrency",
        a.concurrency.map(|n| n.to_string()),
        "4  # LLM calls at a time for --workers (default: one per worker, at most 4; 1 for command)",
    );
    opt(
        w,
        "ahead",
        a.ahead.map(|n| n.to_string()),
        "0  # proposals prepared while runs train (default: one per worker; 0: each proposal knows every result)",
    );
    if a.backend != crate::config::AgentBackend::Search {
        let _ = writeln!(
            w,
            "# The built-in search tunes the numbers between the LLM's ideas and stands in while\n# the LLM cannot be used: search | off (the LLM alone)."
        );
        let _ = writeln!(w, "tuner = {}", q(a.tuner.as_str()));
    }
    let _ = writeln!(
        w,
        "# Failures in a row before the proposer changes direction."
    );
    let _ = writeln!(w, "patience = {}", a.patience);
    let _ = writeln!(w, "seed = {}", a.seed);
}

fn write_decision(w: &mut String, d: &DecisionConfig) {
    let _ = writeln!(
        w,
        "\n# How a candidate is judged: greedy (one run, keep if better) | noise-aware."
    );
    let _ = writeln!(w, "[decision]");
    let _ = writeln!(w, "mode = {}", q(d.mode.as_str()));
    let _ = writeln!(w, "baseline_runs = {}", d.baseline_runs);
    let _ = writeln!(w, "min_delta = {}", float(d.min_delta));
    let _ = writeln!(w, "z = {}", float(d.z));
    let _ = writeln!(w, "confirm_runs = {}", d.confirm_runs);
    let _ = writeln!(w, "recheck_every = {}", d.recheck_every);
    let _ = writeln!(
        w,
        "# When the proposer has nothing new, measure a near miss again, up to N more times."
    );
    let _ = writeln!(w, "revisits = {}", d.revisits);
}

fn write_sandbox(w: &mut String, s: &SandboxConfig) {
    let _ = writeln!(
        w,
        "\n# Isolation for training runs. network = \"deny\" runs them in a fresh network\n\
         # namespace (loopback only) and refuses to start where none can be made."
    );
    let _ = writeln!(w, "[sandbox]");
    let _ = writeln!(w, "network = {}", q(s.network.as_str()));
    let _ = writeln!(
        w,
        "# auto (unshare, else bubblewrap) | unshare | bwrap (repo read-only) | container | none."
    );
    let _ = writeln!(w, "mode = {}", q(s.mode.as_str()));
    let _ = writeln!(
        w,
        "# Extra writable folders under bwrap (the run's folder and the temp dir always are)."
    );
    let items: Vec<String> = s.writable.iter().map(|p| q(p)).collect();
    let _ = writeln!(w, "writable = [{}]", items.join(", "));
    match &s.container {
        Some(c) => {
            let _ = writeln!(w, "container = {}", q(c));
        }
        None => {
            let _ = writeln!(
                w,
                "# container = \"docker run --rm --init --network none {{env}} -v {{repo}}:{{repo}} -w {{repo}} IMAGE {{command}}\""
            );
        }
    }
    let _ = writeln!(
        w,
        "# Per-process limits: address space (RLIMIT_AS; too small for CUDA) and open files."
    );
    match s.memory {
        Some(m) => {
            let _ = writeln!(w, "memory = {}", q(&super::format_size(m)));
        }
        None => {
            let _ = writeln!(w, "# memory = \"16G\"");
        }
    }
    match s.open_files {
        Some(n) => {
            let _ = writeln!(w, "open_files = {n}");
        }
        None => {
            let _ = writeln!(w, "# open_files = 4096");
        }
    }
}

fn direction_words(d: Direction) -> &'static str {
    match d {
        Direction::Minimize => "lower is better",
        Direction::Maximize => "higher is better",
    }
}

/// A table cell: pipes would end the cell early.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn code_list(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "(none)".to_string();
    }
    let items: Vec<String> = paths
        .iter()
        .map(|p| format!("`{}`", cell(&p.to_string_lossy())))
        .collect();
    items.join(", ")
}

/// The Research Config as a markdown table, as `init` and `run` print it.
/// The keep/discard rule in one table cell.
fn decision_words(d: &DecisionConfig) -> String {
    match d.mode {
        super::DecisionMode::Greedy => "greedy (one run, keep if better)".to_string(),
        super::DecisionMode::NoiseAware => format!(
            "noise-aware ({} baseline runs, z = {}, up to {} confirmation runs, recheck every {}, {} revisits)",
            d.baseline_runs,
            float(d.z),
            d.confirm_runs,
            d.recheck_every,
            d.revisits
        ),
    }
}

pub fn config_table(cfg: &Config) -> String {
    let rows: Vec<(&str, String)> = vec![
        ("Training script", code_list(&cfg.editable)),
        ("Read-only files", code_list(&cfg.read_only)),
        ("Run command", format!("`{}`", cell(&cfg.command))),
        ("Time budget per run", duration::format(cfg.budget)),
        ("Hard timeout", duration::format(cfg.timeout)),
        (
            "Metric",
            format!(
                "`{}` ({})",
                cell(&cfg.metric.name),
                direction_words(cfg.metric.direction)
            ),
        ),
        (
            "Max iterations",
            cfg.max_iterations
                .map_or_else(|| "unlimited".to_string(), |n| n.to_string()),
        ),
        ("Modification scope", cfg.scope.as_str().to_string()),
        ("Branch", format!("`{}`", cell(&cfg.branch()))),
        (
            "Results file",
            format!("`{}`", cell(&cfg.results.to_string_lossy())),
        ),
        (
            "Program file",
            format!("`{}`", cell(&cfg.program.to_string_lossy())),
        ),
        ("Keep rule", decision_words(&cfg.decision)),
    ];
    let mut rows = rows;
    // Shown only off the default, so the familiar table stays as it was.
    if cfg.agent.backend != super::AgentBackend::Search {
        let llm = cfg.agent.backend.as_str();
        rows.push((
            "Proposer",
            match cfg.agent.tuner {
                super::Tuner::Search => format!(
                    "{llm} for ideas, the built-in search for the numbers (and while the LLM cannot be used)"
                ),
                super::Tuner::Off => format!("{llm} alone (`tuner = \"off\"`)"),
            },
        ));
    }
    if cfg.executor != super::ExecutorConfig::Local {
        rows.push(("Executor", cell(&cfg.executor.describe())));
    }
    if cfg.prune != super::PruneConfig::default() {
        rows.push(("Pruning", cell(&cfg.prune.describe())));
    }
    let mut out = String::from("| Parameter | Value |\n|---|---|\n");
    for (name, value) in rows {
        let _ = writeln!(out, "| {name} | {value} |");
    }
    out
}
