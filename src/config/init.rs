//! `autoresearch init`: detect what a karpathy-shaped repo implies, ask for what is still
//! missing, show the Research Config and write `autoresearch.toml`. Detection only
//! suggests: the budget and the metric are confirmed by the user or given as flags, never
//! assumed. It writes nothing but `autoresearch.toml`, and only after confirmation.

use super::duration;
use super::{
    AgentConfig, CONFIG_FILE, Config, ConfigError, DecisionConfig, MetricSpec, Scope, check_tag,
    default_command, parse_direction, parse_scope,
};
use crate::experiment::Direction;
use std::io::{BufRead, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

pub use super::config_table;
pub use super::detect::{Detected, Found, detect, direction_for};

/// Flags of `autoresearch init`. Anything not given is detected (as a suggestion) or asked.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct InitArgs {
    /// Wall-clock time each training run gets, e.g. 5m, 300, 1h30m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
    pub budget: Option<Duration>,
    /// The metric the training script prints as `name: value`, e.g. val_bpb.
    #[arg(long, value_name = "NAME")]
    pub metric: Option<String>,
    /// Lower is better (loss, bpb).
    #[arg(long, conflicts_with = "maximize")]
    pub minimize: bool,
    /// Higher is better (accuracy).
    #[arg(long)]
    pub maximize: bool,
    /// The training command (default: detected, e.g. `uv run train.py`).
    #[arg(long, value_name = "CMD")]
    pub command: Option<String>,
    /// A file the agent may edit (repeatable; default train.py).
    #[arg(long, value_name = "FILE")]
    pub editable: Vec<PathBuf>,
    /// A file that must not change (repeatable; dependency files are always added).
    #[arg(long = "read-only", value_name = "FILE")]
    pub read_only: Vec<PathBuf>,
    /// Stop after this many experiments (default: no limit).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_iterations: Option<u64>,
    /// What the agent may change: architecture, hyperparameters, optimizer or all.
    #[arg(long, value_parser = parse_scope_arg)]
    pub scope: Option<Scope>,
    /// Branch tag: the research runs on autoresearch/<tag> (default: today, e.g. nov23).
    #[arg(long)]
    pub tag: Option<String>,
    /// Results file (default results.tsv).
    #[arg(long, value_name = "FILE")]
    pub results: Option<PathBuf>,
    /// Accept what was detected and write without asking.
    /// Where runs go: local (default) or slurm (each run a Slurm job).
    #[arg(long, value_name = "KIND", value_parser = ["local", "slurm"])]
    pub executor: Option<String>,
    /// The Slurm partition for `--executor slurm` (asked for when missing).
    #[arg(long, value_name = "NAME", requires = "executor")]
    pub partition: Option<String>,
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Overwrite an existing autoresearch.toml.
    #[arg(long)]
    pub force: bool,
}

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    duration::parse(s).map_err(|e| format!("{e}; write it like 300, 20s, 5m or 1h30m"))
}

fn parse_scope_arg(s: &str) -> Result<Scope, String> {
    parse_scope(s).ok_or_else(|| "use architecture, hyperparameters, optimizer or all".into())
}

/// Why init stopped. Display is one line with the fix.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{} already exists; pass --force to overwrite it", path.display())]
    Exists { path: PathBuf },
    #[error("{missing} not confirmed and there is no terminal to ask; pass {flags}{hint}")]
    NeedFlags {
        missing: String,
        flags: String,
        hint: String,
    },
    #[error("{flag}: {problem}; {fix}")]
    BadFlag {
        flag: &'static str,
        problem: String,
        fix: String,
    },
    #[error("init cancelled; nothing was written (run `autoresearch init` again to start over)")]
    Declined,
    #[error("input ended before init finished; pass the missing values as flags, e.g. {flags}")]
    InputEnded { flags: String },
    #[error("cannot write {}: {source}; check that the directory is writable", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the answer or print the question: {0}")]
    Terminal(#[from] std::io::Error),
}

const EXAMPLE_FLAGS: &str = "--budget 5m --metric val_bpb --minimize";

/// Questions and answers over any reader/writer, so init runs in tests without a terminal.
struct Prompt<'a> {
    input: &'a mut dyn BufRead,
    output: &'a mut dyn Write,
}

impl Prompt<'_> {
    /// Asks until `parse` accepts the answer; Enter takes `default` when there is one.
    fn ask<T>(
        &mut self,
        question: &str,
        default: Option<&str>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, InitError> {
        loop {
            match default {
                Some(d) => write!(self.output, "{question} [{d}]: ")?,
                None => write!(self.output, "{question}: ")?,
            }
            self.output.flush()?;
            let mut line = String::new();
            if self.input.read_line(&mut line)? == 0 {
                writeln!(self.output)?;
                return Err(InitError::InputEnded {
                    flags: EXAMPLE_FLAGS.into(),
                });
            }
            let answer = match (line.trim(), default) {
                ("", Some(d)) => d.to_string(),
                ("", None) => continue,
                (a, _) => a.to_string(),
            };
            match parse(&answer) {
                Ok(v) => return Ok(v),
                Err(why) => writeln!(self.output, "  {why}")?,
            }
        }
    }
}

impl Prompt<'_> {
    /// A yes/no question where Enter means yes and ended input means no.
    fn confirm(&mut self, question: &str) -> Result<bool, InitError> {
        loop {
            write!(self.output, "{question}")?;
            self.output.flush()?;
            let mut line = String::new();
            if self.input.read_line(&mut line)? == 0 {
                writeln!(self.output)?;
                return Ok(false);
            }
            match line.trim().to_ascii_lowercase().as_str() {
                "" | "y" | "yes" => return Ok(true),
                "n" | "no" => return Ok(false),
                _ => writeln!(self.output, "  answer y or n")?,
            }
        }
    }
}

/// Runs `autoresearch init` in `repo`: flags first, then detection, then questions for
/// what is still missing (only when `interactive`). Prints the Research Config, asks to
/// proceed unless `--yes`, and writes `autoresearch.toml`. Returns the written config.
pub fn run_init(
    repo: &Path,
    args: &InitArgs,
    input: &mut dyn BufRead,
    output: &mut dyn Write,
    interactive: bool,
) -> Result<Config, InitError> {
    let path = repo.join(CONFIG_FILE);
    if path.exists() && !args.force {
        return Err(InitError::Exists { path });
    }
    check_flags(repo, args)?;
    let found = detect(repo);
    let mut p = Prompt { input, output };

    let flag_direction = match (args.minimize, args.maximize) {
        (true, _) => Some(Direction::Minimize),
        (_, true) => Some(Direction::Maximize),
        _ => None,
    };
    // With --yes a suggestion counts as confirmed; otherwise it is only a default answer.
    let yes = args.yes;
    let mut budget = args
        .budget
        .or(found.budget.as_ref().filter(|_| yes).map(|f| f.value));
    let mut metric = args.metric.clone().or(found
        .metric
        .as_ref()
        .filter(|_| yes)
        .map(|f| f.value.clone()));
    let suggested_direction = |metric: Option<&str>| match metric {
        Some(m) if found.metric.as_ref().is_some_and(|f| f.value == m) => found.direction,
        Some(m) => direction_for(m),
        None => found.direction,
    };
    let mut direction = flag_direction.or(suggested_direction(metric.as_deref()).filter(|_| yes));
    let mut editable = if args.editable.is_empty() {
        found.editable.clone()
    } else {
        args.editable.clone()
    };

    if !interactive {
        let mut missing = Vec::new();
        if budget.is_none() {
            missing.push("the time budget");
        }
        if metric.is_none() || direction.is_none() {
            missing.push("the metric and its direction");
        }
        if editable.is_empty() {
            missing.push("the file to edit");
        }
        if !missing.is_empty() {
            return Err(need_flags(
                &missing,
                &found,
                budget,
                metric.as_deref(),
                direction,
                &editable,
            ));
        }
    }

    writeln!(p.output, "autoresearch init in {}", repo.display())?;
    if let Some(f) = &found.budget {
        writeln!(p.output, "  detected {}", f.source)?;
    }
    if let Some(f) = &found.metric {
        writeln!(p.output, "  detected {}", f.source)?;
    }
    for note in &found.notes {
        writeln!(p.output, "  note: {note}")?;
    }
    if let Some(seed) = &found.pinned_seed {
        writeln!(
            p.output,
            "  warning: {} pins its own seed and never reads AUTORESEARCH_SEED, so repeated runs measure one seed, not the noise; fix: {}",
            seed.source,
            super::detect::seed_fix(&seed.value)
        )?;
    }
    if budget.is_none() {
        let default = found.budget.as_ref().map(|f| duration::format(f.value));
        budget = Some(p.ask(
            "Time budget per training run (e.g. 5m)",
            default.as_deref(),
            parse_duration_arg,
        )?);
    }
    if metric.is_none() {
        let default = found.metric.as_ref().map(|f| f.value.clone());
        metric = Some(p.ask(
            "Metric to optimize (the key the script prints, e.g. val_bpb)",
            default.as_deref(),
            |a| {
                if a.contains(char::is_whitespace) {
                    Err("a metric name has no spaces, e.g. val_bpb".to_string())
                } else {
                    Ok(a.to_string())
                }
            },
        )?);
    }
    let metric = metric.unwrap_or_default();
    if direction.is_none() {
        let default = suggested_direction(Some(&metric)).map(Direction::as_str);
        direction = Some(p.ask(
            &format!("Is lower or higher {metric} better? (minimize/maximize)"),
            default,
            |a| parse_direction(a).ok_or_else(|| "answer minimize or maximize".to_string()),
        )?);
    }
    if editable.is_empty() {
        let file = p.ask(
            "Which file may the agent edit? (e.g. train.py)",
            None,
            |a| {
                if repo.join(a).is_file() {
                    Ok(PathBuf::from(a))
                } else {
                    Err(format!("`{a}` is not a file in {}", repo.display()))
                }
            },
        )?;
        editable.push(file);
    }

    let executor = match args.executor.as_deref() {
        Some("slurm") => {
            let partition = match &args.partition {
                Some(p) => Some(p.clone()),
                None if yes => None,
                None => Some(p.ask(
                    "Slurm partition for the training jobs (`sinfo -s` lists them)",
                    None,
                    |a| {
                        if a.contains(char::is_whitespace) {
                            Err("a partition name is one word, e.g. gpu".to_string())
                        } else {
                            Ok(a.to_string())
                        }
                    },
                )?),
            };
            super::ExecutorConfig::Slurm(super::SlurmConfig {
                partition,
                ..Default::default()
            })
        }
        _ => super::ExecutorConfig::Local,
    };

    let budget = budget.unwrap_or(Duration::from_secs(300));
    let read_only = if args.read_only.is_empty() {
        found.read_only.clone()
    } else {
        args.read_only.clone()
    };
    // A read-only file that fixes TIME_BUDGET decides how long training runs, whatever
    // the budget says: say so when they disagree, and never time a run out before it.
    let fixed = super::detect::fixed_time_budget(repo, &read_only, &editable);
    let mut timeout = super::default_timeout(budget);
    if let Some(f) = fixed.as_ref().filter(|f| f.value != budget) {
        writeln!(
            p.output,
            "  warning: the budget is {} but {} is read-only: the training loop runs for {}; the hard timeout allows for that",
            duration::format(budget),
            f.source,
            duration::format(f.value)
        )?;
        timeout = timeout.max(super::default_timeout(f.value));
    }
    let cfg = Config {
        source: Some(path.clone()),
        command: args
            .command
            .clone()
            .unwrap_or_else(|| default_command(repo, &editable)),
        editable,
        read_only,
        budget,
        timeout,
        metric: MetricSpec {
            name: metric,
            direction: direction.unwrap_or_default(),
            regex: None,
            memory_key: "peak_vram_mb".into(),
        },
        max_iterations: args.max_iterations,
        scope: args.scope.unwrap_or_default(),
        tag: args
            .tag
            .clone()
            .unwrap_or_else(|| super::default_tag(chrono::Local::now().date_naive())),
        results: args.results.clone().unwrap_or_else(|| "results.tsv".into()),
        program: "program.md".into(),
        report_every: 10,
        agent: AgentConfig::default(),
        decision: DecisionConfig::default(),
        sandbox: Default::default(),
        executor,
        prune: Default::default(),
    };
    // Validate through the same path a later `run` takes, so init never writes a config
    // that `load` refuses; this also adds the dependency files.
    let text = super::to_toml(&cfg);
    let cfg = super::load_str(&text, &path)?;

    writeln!(p.output, "\nResearch Config\n\n{}", config_table(&cfg))?;
    if !args.yes && interactive {
        let go = p.confirm("Proceed? [Y/n] ")?;
        if !go {
            writeln!(p.output, "Nothing written.")?;
            return Err(InitError::Declined);
        }
    }
    write_config(&path, &super::to_toml(&cfg), args.force)?;
    writeln!(p.output, "Wrote {}", path.display())?;
    Ok(cfg)
}

/// Refuses flag values that would only fail later with a less helpful message.
fn check_flags(repo: &Path, args: &InitArgs) -> Result<(), InitError> {
    for (flag, files) in [
        ("--editable", &args.editable),
        ("--read-only", &args.read_only),
    ] {
        for f in files {
            let inside = f
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
            if !inside || !repo.join(f).is_file() {
                return Err(InitError::BadFlag {
                    flag,
                    problem: format!("`{}` is not a file inside {}", f.display(), repo.display()),
                    fix: "pass a path relative to the repository root, e.g. train.py".into(),
                });
            }
        }
    }
    if let Some(tag) = &args.tag {
        check_tag(tag).map_err(|problem| InitError::BadFlag {
            flag: "--tag",
            problem,
            fix: "use letters, digits, `-`, `_` or `.`, e.g. --tag nov23".into(),
        })?;
    }
    if args.command.as_deref().is_some_and(|c| c.trim().is_empty()) {
        return Err(InitError::BadFlag {
            flag: "--command",
            problem: "is empty".into(),
            fix: "pass the training command, e.g. --command \"python train.py\"".into(),
        });
    }
    Ok(())
}

/// The error for a non-interactive init that lacks confirmed values: names the flags,
/// filled with what was detected where possible.
fn need_flags(
    missing: &[&str],
    found: &Detected,
    budget: Option<Duration>,
    metric: Option<&str>,
    direction: Option<Direction>,
    editable: &[PathBuf],
) -> InitError {
    let mut flags = Vec::new();
    if budget.is_none() {
        let b = found
            .budget
            .as_ref()
            .map_or("5m".into(), |f| duration::format(f.value));
        flags.push(format!("--budget {b}"));
    }
    if metric.is_none() || direction.is_none() {
        let m = metric
            .map(str::to_string)
            .or(found.metric.as_ref().map(|f| f.value.clone()));
        if metric.is_none() {
            flags.push(format!("--metric {}", m.as_deref().unwrap_or("val_bpb")));
        }
        let d = m
            .as_deref()
            .and_then(direction_for)
            .unwrap_or(Direction::Minimize);
        flags.push(format!("--{}", d.as_str()));
    }
    if editable.is_empty() {
        flags.push("--editable train.py".into());
    }
    let detected = found.budget.is_some() || found.metric.is_some();
    InitError::NeedFlags {
        missing: join_and(missing),
        flags: flags.join(" "),
        hint: if detected {
            " (or --yes to accept what was detected)".into()
        } else {
            String::new()
        },
    }
}

fn join_and(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn write_config(path: &Path, text: &str, force: bool) -> Result<(), InitError> {
    use std::fs::OpenOptions;
    // create_new closes the window between the existence check and the write.
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .create_new(!force)
        .open(path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => InitError::Exists {
                path: path.to_path_buf(),
            },
            _ => InitError::Write {
                path: path.to_path_buf(),
                source,
            },
        })?;
    file.write_all(text.as_bytes())
        .map_err(|source| InitError::Write {
            path: path.to_path_buf(),
            source,
        })
}
