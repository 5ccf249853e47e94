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

/// Installs SIGINT/SIGTERM handling: the first asks for a clean stop, the second for an
/// immediate one. The training process has its own process group, so the terminal's
/// Ctrl-C reaches only us and we decide how it dies.
pub(crate) fn install_signals(cancel: &Cancel) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("cannot install the Ctrl-C handler")?;
    let cancel = cancel.clone();
    std::thread::spawn(move || {
        for _ in signals.forever() {
            cancel.escalate();
            if cancel.level() == 1 {
                eprintln!(
                    "\nautoresearch: stopping after cleaning up the current run (Ctrl-C again to kill it now)"
                );
            }
        }
    });
    Ok(())
}

pub fn run(args: &RunArgs) -> anyhow::Result<i32> {
    let mut cfg = load_config(&args.repo, args.config.as_deref())?;
    if let Some(tag) = &args.tag {
        cfg.tag = tag.clone();
    }
    let opts = Options {
        iterations: args.iterations,
        run_for: args.run_for,
        target: args.target,
        grace: std::time::Duration::from_secs_f64(args.grace.max(0.0)),
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
        reporter.plain(&config::init::config_table(&cfg));
        reporter.plain(&format!(
            "Workers: {}",
            crate::engine::describe_workers(&workers)
        ));
        if !args.yes && !confirm("Start the session? [Y/n] ")? {
            reporter.plain("Not started.");
            return Ok(exit::OK);
        }
    }
    // The engine when asked for (`--workers`, `--gpus`) or when there is more than one
    // device; otherwise the one-tree loop in the checkout, as before.
    let engine = args.workers.is_some() || args.gpus.is_some() || workers.len() > 1;
    let opts = Options {
        workers: if engine { workers } else { Vec::new() },
        ..opts
    };
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
    let code = run_session(&args.repo, cfg, opts, &mut reporter);
    if let Some(d) = &dashboard {
        // Open pages get the session's last experiment before the server goes.
        d.drain(std::time::Duration::from_secs(2));
    }
    code
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
    let cancel = Cancel::new();
    install_signals(&cancel)?;
    let platform = Platform::detect();
    let proposer = proposer_for(&cfg)?;
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
