//! The command line: clap definitions, dispatch, and the mapping from errors to exit codes.
//! Commands live one per file; the session itself never prints, reporters do.

mod dashboard;
mod demo;
mod export;
mod live;
mod merge;
pub mod report;
mod run;
pub mod terminal;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Exit codes, documented in the README.
pub mod exit {
    /// Finished normally (including a stop by --iterations, --for, --target).
    pub const OK: i32 = 0;
    /// An unexpected failure (I/O, a journal problem).
    pub const FAILURE: i32 = 1;
    /// Bad command line or bad autoresearch.toml.
    pub const CONFIG: i32 = 2;
    /// The repository is not in a state a session can start from.
    pub const REPOSITORY: i32 = 3;
    /// The baseline run failed: the training script needs fixing first.
    pub const BASELINE: i32 = 4;
    /// The proposer failed in a way more iterations cannot fix (bad key, unknown model).
    pub const PROPOSER: i32 = 5;
    /// Another session holds the repository.
    pub const LOCKED: i32 = 6;
    /// Stopped by Ctrl-C or SIGTERM (128 + SIGINT).
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Debug, Parser)]
#[command(
    name = "autoresearch",
    version,
    about = "Runs an autonomous ML research loop on a git repository, unattended."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write autoresearch.toml, asking for what must not be assumed (budget, metric).
    Init {
        /// The repository (default: the current directory).
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        #[command(flatten)]
        args: crate::config::init::InitArgs,
    },
    /// Run the research loop: baseline, then experiments until a stop condition.
    Run(run::RunArgs),
    /// Run the loop on the bundled example (examples/tinylm) in a fresh repository.
    Demo(demo::DemoArgs),
    /// Print the progress report of the latest (or --tag) session; works while it runs.
    Status(report::StatusArgs),
    /// Write autoresearch-summary.md with the chart (progress.png, progress.svg) next to it.
    Summary(report::SummaryArgs),
    /// Write the progress chart: progress.png and progress.svg.
    Plot(report::PlotArgs),
    /// Serve the live dashboard (chart, experiments, diffs, logs) on 127.0.0.1:8765; read-only.
    Dashboard(dashboard::DashboardArgs),
    /// Bring a session's best result into the branch it started from (squash or rebase).
    Merge(merge::MergeArgs),
    /// The session's experiments as a table for a paper: md, latex, csv or json.
    Export(export::ExportArgs),
}

/// Parses the command line and runs it; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Init { repo, args } => init(&repo, &args),
        Command::Run(args) => run::run(&args),
        Command::Demo(args) => demo::demo(&args),
        Command::Status(args) => report::status(&args),
        Command::Summary(args) => report::summary(&args),
        Command::Plot(args) => report::plot(&args),
        Command::Merge(args) => merge::run(&args),
        Command::Export(args) => export::export(&args),
        Command::Dashboard(args) => dashboard::dashboard(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            code_for(&e)
        }
    }
}

/// The error and its causes on one line.
fn chain(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

/// A command-line flag that cannot be honoured (exit 2, like a config error).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn code_for(e: &anyhow::Error) -> i32 {
    use crate::session::SessionError;
    use crate::workspace::merge::MergeError;
    for cause in e.chain() {
        if cause.downcast_ref::<crate::session::LockError>().is_some() {
            return exit::LOCKED;
        }
        if let Some(m) = cause.downcast_ref::<MergeError>() {
            return match m {
                MergeError::NothingKept { .. } | MergeError::AlreadyMerged { .. } => exit::FAILURE,
                _ => exit::REPOSITORY,
            };
        }
        if cause.downcast_ref::<crate::config::ConfigError>().is_some()
            || cause.downcast_ref::<UsageError>().is_some()
            || cause
                .downcast_ref::<crate::config::init::InitError>()
                .is_some()
        {
            return exit::CONFIG;
        }
        if cause.downcast_ref::<crate::workspace::GitError>().is_some() {
            return exit::REPOSITORY;
        }
        if let Some(s) = cause.downcast_ref::<SessionError>() {
            return match s {
                SessionError::Git(_)
                | SessionError::ResultsTracked(_)
                | SessionError::BranchMissing { .. }
                | SessionError::ResumeRefused(_) => exit::REPOSITORY,
                SessionError::BaselineFailed { .. } => exit::BASELINE,
                SessionError::Proposer(_)
                | SessionError::TooManyFailedProposals(..)
                | SessionError::LlmUnreachable(..) => exit::PROPOSER,
                SessionError::Lock(_) => exit::LOCKED,
                _ => exit::FAILURE,
            };
        }
    }
    exit::FAILURE
}

fn init(repo: &std::path::Path, args: &crate::config::init::InitArgs) -> anyhow::Result<i32> {
    use std::io::IsTerminal;
    let interactive = std::io::stdin().is_terminal();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut out = std::io::stdout();
    crate::config::init::run_init(repo, args, &mut input, &mut out, interactive)?;
    Ok(exit::OK)
}
