//! `autoresearch run`: load the config, detect the platform, start or resume the session,
//! wire Ctrl-C to a clean stop, and hand events to the chosen reporter.

use super::exit;
use super::terminal::Reporter;
use crate::agent::Proposer;
use crate::config::{self, Config};
use crate::platform::Platform;
use crate::runner::Cancel;
use crate::runner::local::LocalExecutor;
use crate::runner::slurm::SlurmExecutor;
use crate::session::{EndReason, Options, Session, Setup};
use anyhow::Context as _;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The repository (default: the current directory).
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// The config file (default: <repo>/autoresearch.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Session tag (branch autoresearch/<tag>); an existing session with it is resumed.
    #[arg(long)]
    pub tag: Option<String>,
    /// Run this many experiments, then stop.
    #[arg(long, short = 'n')]
    pub iterations: Option<u64>,
    /// Stop starting experiments after this long (e.g. 8h).
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration_arg)]
    pub run_for: Option<std::time::Duration>,
    /// Stop once the best value reaches this.
    #[arg(long)]
    pub target: Option<f64>,
    /// Seconds between SIGTERM and SIGKILL when a run is stopped.
    #[arg(long, default_value_t = 10.0)]
    pub grace: f64,
    /// Start without asking for confirmation of the Research Config.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// One JSON object per event on stdout, for other programs.
    #[arg(long)]
    pub json: bool,
    /// Only decisions and the end.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Parallel workers, each training in its own worktree (default: one per visible GPU,
    /// one on a machine without).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// One worker per listed GPU id (CUDA_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES), e.g. 0,1,2,3.
    #[arg(long, value_name = "IDS", value_delimiter = ',')]
    pub gpus: Option<Vec<String>>,
    /// Write autoresearch-summary.md (with the chart next to it) when the session ends.
    #[arg(long)]
    pub summary: bool,
    /// A hypothesis for an LLM proposer to test first (its first proposals are asked to);
    /// recorded in the journal. The built-in search cannot use one.
    #[arg(long, value_name = "TEXT")]
    pub hypothesis: Option<String>,
    /// Serve the live dashboard beside the session (address on stderr; read-only).
    #[arg(long)]
    pub dashboard: bool,
    /// The dashboard's port (0 lets the system choose).
    #[arg(long, value_name = "PORT", default_value_t = super::dashboard::DEFAULT_PORT, requires = "dashboard")]
    pub dashboard_port: u16,
    /// The dashboard's address; anything but loopback is reachable from the network.
    #[arg(
        long,
        value_name = "HOST",
        default_value = "127.0.0.1",
        requires = "dashboard"
    )]
    pub dashboard_host: String,
}

pub(crate) fn parse_duration_arg(s: &str) -> Result<std::time::Duration, String> {
    config::duration::parse(s).map_err(|e| e.to_string())
}

/// Loads the config for `repo`. A missing file is a config error (exit 2) whose message
/// says to run `autoresearch init`.
pub(crate) fn load_config(repo: &Path, path: Option<&Path>) -> anyhow::Result<Config> {
    let path = path.map_or_else(|| repo.join(config::CONFIG_FILE), Path::to_path_buf);
    Ok(config::load(&path)?)
}

/// The proposer the config asks for.
pub(crate) fn proposer_for(config: &Config) -> anyhow::Result<Box<dyn Proposer>> {
    crate::agent::from_config(&config.agent)
        .map_err(|e| anyhow::Error::new(crate::session::SessionError::Proposer(e.to_string())))
}

/// Installs the stop signals: SIGINT (Ctrl-C), SIGTERM (`kill`, a service manager) and
/// SIGHUP (the terminal went away) each ask for a clean stop the first time and an
/// immediate one the second. The training process has its own process group, so the
/// terminal's signals reach only us and we decide how it dies. SIGHUP is left alone when it
/// was ignored at start (`nohup`): then the session goes on without its terminal.
pub(crate) fn install_signals(cancel: &Cancel) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut wanted = vec![SIGINT, SIGTERM];
    if !ignored_at_start(SIGHUP) {
        wanted.push(SIGHUP);
    }
    let mut signals = signal_hook::iterator::Signals::new(&wanted)
        .context("cannot install the handlers for Ctrl-C, SIGTERM and SIGHUP")?;
    let cancel = cancel.clone();
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if sig == SIGHUP {
                detach_from_terminal();
            }
            cancel.escalate();
            if cancel.level() == 1 {
                let name = match sig {
                    SIGTERM => "SIGTERM",
                    SIGHUP => "SIGHUP",
                    _ => "Ctrl-C",
                };
                // Say what this stops: there may be no run at all.
                let what = match cancel.busy() {
                    crate::runner::Busy::Training => {
                        "stopping after cleaning up the current run (again to kill it now)"
                    }
                    crate::runner::Busy::Asking => {
                        "stopping: the LLM call in progress is abandoned"
                    }
                    crate::runner::Busy::Idle => "stopping",
                };
                // The terminal may be gone (SIGHUP): a failed write must not end the thread.
                use std::io::Write as _;
                let _ = writeln!(std::io::stderr(), "\nautoresearch: {name}: {what}");
            }
        }
    });
    Ok(())
}

/// After a hangup the terminal is gone, and a print to it fails (which `println!` turns
/// into a panic mid-clean-up): the standard streams that were the terminal now go to
/// /dev/null, so the stop finishes and is recorded. Pipes and files are left alone.
fn detach_from_terminal() {
    use std::io::IsTerminal as _;
    use std::os::fd::AsRawFd as _;
    let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    else {
        return;
    };
    let streams = [
        (std::io::stdin().is_terminal(), 0),
        (std::io::stdout().is_terminal(), 1),
        (std::io::stderr().is_terminal(), 2),
    ];
    for (tty, fd) in streams {
        if tty {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
    }
}

/// Whether `sig` was ignored when this process started (`nohup` ignores SIGHUP before
/// exec), read from the kernel's SigIgn mask; false where it cannot be read.
fn ignored_at_start(sig: i32) -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| sig >= 1 && mask & (1 << (sig - 1)) != 0)
}

/// Keeps training runs (any process of this user) from reading this process's memory and
/// environment through /proc or ptrace: the API keys live here. Linux only; elsewhere, and
/// where it fails, the box's pid namespace is the wall.
fn make_non_dumpable() {
    #[cfg(target_os = "linux")]
    {
        let _ = nix::sys::prctl::set_dumpable(false);
    }
}

/// Refuses a hypothesis the configured proposer cannot read, in one line that says why.
fn check_hypothesis(cfg: &Config, hypothesis: Option<&str>) -> anyhow::Result<Option<String>> {
    let Some(h) = hypothesis else {
        return Ok(None);
    };
    if h.trim().is_empty() {
        return Err(
            crate::cli::UsageError("--hypothesis is empty; say what to test".into()).into(),
        );
    }
    if cfg.agent.backend == config::AgentBackend::Search {
        return Err(crate::cli::UsageError(
            "--hypothesis needs an LLM proposer: the built-in search only turns numeric constants; set [agent] backend = \"anthropic\", \"openai\" or \"command\" in autoresearch.toml".into(),
        )
        .into());
    }
    Ok(Some(h.trim().to_string()))
}

/// The Research Config; with the built-in search, a row naming the numeric constants it
/// leaves out (they only feed printing) and why.
pub(crate) fn research_config(repo: &Path, cfg: &Config) -> String {
    let mut table = config::init::config_table(cfg);
    if cfg.agent.backend != config::AgentBackend::Search {
        return table;
    }
    let root = super::report::repo_root(repo);
    let base = cfg.source.as_deref().and_then(Path::parent);
    let files: Vec<(PathBuf, String)> = cfg
        .editable
        .iter()
        .filter_map(|p| {
            let text = base
                .and_then(|b| std::fs::read_to_string(b.join(p)).ok())
                .or_else(|| std::fs::read_to_string(root.join(p)).ok())?;
            Some((p.clone(), text))
        })
        .collect();
    let left: Vec<String> = crate::agent::search::left_out(&files, &cfg.metric)
        .into_iter()
        .map(|l| format!("`{}` ({})", l.name, l.reason))
        .collect();
    if !left.is_empty() {
        table.push_str(&format!(
            "| Left out of the search | {} |\n",
            left.join(", ").replace('|', "\\|")
        ));
    }
    table
}

/// A read-only file that fixes `TIME_BUDGET` decides how long each run trains: say so
/// when the budget disagrees, and raise a default hard timeout that would cut runs short.
pub(crate) fn check_time_budget(repo: &Path, cfg: &mut Config) -> Option<String> {
    let root = super::report::repo_root(repo);
    let fixed = config::detect::fixed_time_budget(&root, &cfg.read_only, &cfg.editable)?;
    if fixed.value == cfg.budget {
        return None;
    }
    let mut msg = format!(
        "warning: the budget is {} but {} is read-only: each run trains for {}",
        config::duration::format(cfg.budget),
        fixed.source,
        config::duration::format(fixed.value)
    );
    let needed = config::default_timeout(fixed.value);
    if cfg.timeout == config::default_timeout(cfg.budget) && cfg.timeout < needed {
        cfg.timeout = needed;
        msg.push_str(&format!(
            "; the default hard timeout is raised to {}",
            config::duration::format(needed)
        ));
    } else if cfg.timeout < fixed.value {
        msg.push_str(&format!(
            "; timeout = {} will kill every run: raise it",
            config::duration::format(cfg.timeout)
        ));
    }
    Some(msg)
}

pub fn run(args: &RunArgs) -> anyhow::Result<i32> {
    let mut cfg = load_config(&args.repo, args.config.as_deref())?;
    if let Some(tag) = &args.tag {
        cfg.tag = tag.clone();
    }
    let hypothesis = check_hypothesis(&cfg, args.hypothesis.as_deref())?;
    if let Some(warning) = check_time_budget(&args.repo, &mut cfg) {
        eprintln!("{warning}");
    }
    let opts = Options {
        iterations: args.iterations,
        run_for: args.run_for,
        target: args.target,
        grace: std::time::Duration::from_secs_f64(args.grace.max(0.0)),
        hypothesis,
        ..Options::default()
    };
    let platform = Platform::detect();
    let mut workers = crate::engine::plan_workers(&platform, args.workers, args.gpus.as_deref())
        .map_err(|e| anyhow::Error::new(crate::cli::UsageError(e)))?;
    if cfg.executor != config::ExecutorConfig::Local {
        // Slurm gives each job its own devices; this machine's GPUs are not the jobs'.
        for w in &mut workers {
            w.env.clear();
            w.device = "slurm job".into();
        }
    }
    let mut reporter = Reporter::new(args.json, args.quiet);
    if !args.json {
        reporter.plain(&research_config(&args.repo, &cfg));
        reporter.plain(&format!(
            "Workers: {}",
            crate::engine::describe_workers(
                &workers,
                cfg.agent.concurrency_for(workers.len()),
                cfg.agent.ahead
            )
        ));
        if !args.yes && !confirm("Start the session? [Y/n] ")? {
            reporter.plain("Not started.");
            return Ok(exit::OK);
        }
    }
    let opts = Options { workers, ..opts };
    // Served from a background thread until this process ends; it only reads.
    let dashboard = if args.dashboard {
        let root = super::report::repo_root(&args.repo);
        let d = super::dashboard::bind(
            &root,
            Some(cfg.tag.clone()),
            &args.dashboard_host,
            args.dashboard_port,
        )?;
        eprintln!("dashboard: {}", d.url());
        Some(d.spawn())
    } else {
        None
    };
    let tag = cfg.tag.clone();
    let code = run_session(&args.repo, cfg, opts, &mut reporter);
    if let Some(d) = &dashboard {
        // Open pages get the session's last experiment before the server goes.
        d.drain(std::time::Duration::from_secs(2));
    }
    let code = code?;
    // With --json stdout is events only: the summary is still written, silently.
    where_reports_are(&args.repo, &tag, args.summary, !args.json)?;
    Ok(code)
}

/// The last lines of a run: where the chart is, and the summary when asked for (written
/// now, from the journal, as `autoresearch summary` would).
pub(crate) fn where_reports_are(
    repo: &Path,
    tag: &str,
    summary: bool,
    say: bool,
) -> anyhow::Result<()> {
    let root = super::report::repo_root(repo);
    let state = root.join(crate::session::STATE_DIR);
    // Not `println!`: after a hangup the terminal is gone and a print must not panic.
    let say = |line: String| {
        if say {
            use std::io::Write as _;
            let _ = writeln!(std::io::stdout(), "{line}");
        }
    };
    say(format!(
        "chart: {} (and .svg)",
        state.join("progress.png").display()
    ));
    if summary {
        let source = super::report::Source {
            repo: root.clone(),
            tag: Some(tag.to_string()),
            results: None,
            direction: None,
            metric: None,
        };
        let loaded = super::report::load(&source)?;
        let out = root.join("autoresearch-summary.md");
        let written = super::report::write_summary(&loaded, &out, None)?;
        say(format!("summary: {}", written[0].display()));
        for p in &written[1..] {
            say(format!("  with its chart: {}", p.display()));
        }
    } else {
        say(
            "summary: run `autoresearch summary` (or pass --summary) to write autoresearch-summary.md"
                .to_string(),
        );
    }
    Ok(())
}

/// Asks on the terminal; without one, proceeds (scripts pass --yes anyway).
pub(crate) fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Ok(true);
    }
    print!("{question}");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    let a = answer.trim().to_ascii_lowercase();
    Ok(a.is_empty() || a == "y" || a == "yes")
}

/// Runs a session with the local executor and prints through `reporter`.
pub(crate) fn run_session(
    repo: &Path,
    cfg: Config,
    opts: Options,
    reporter: &mut Reporter,
) -> anyhow::Result<i32> {
    make_non_dumpable();
    let cancel = Cancel::new();
    install_signals(&cancel)?;
    let platform = Platform::detect();
    let mut proposer = proposer_for(&cfg)?;
    // A Ctrl-C abandons an LLM call at once; its progress shows while it runs.
    proposer.watch(cancel.clone(), reporter.call_progress());
    let local = LocalExecutor::new();
    let slurm = match &cfg.executor {
        config::ExecutorConfig::Slurm(s) => {
            let slurm = SlurmExecutor::new(s.clone());
            // Before anything is touched: Slurm answers and the partition has nodes.
            let seen = slurm.check()?;
            reporter.plain(&format!("executor: Slurm ({seen})"));
            Some(slurm)
        }
        config::ExecutorConfig::Local => None,
    };
    let executor: &dyn crate::runner::Executor = match &slurm {
        Some(s) => s,
        None => &local,
    };
    let mut emit = |e: &crate::session::Event| reporter.event(e);
    let mut session = Session::start(Setup {
        repo,
        config: cfg,
        platform,
        executor,
        proposer,
        emit: &mut emit,
        cancel: cancel.clone(),
        opts,
    })?;
    let reason = session.run()?;
    Ok(if reason == EndReason::Interrupted {
        exit::INTERRUPTED
    } else {
        exit::OK
    })
}
