//! `autoresearch dashboard`: serve the live dashboard of a repository's sessions, and the
//! same server started beside a session by `run --dashboard`. Prints the address and any
//! warning; the server itself never prints.

use super::exit;
use crate::dashboard::{Dashboard, Options, is_loopback};
use anyhow::Context as _;
use std::path::{Path, PathBuf};

/// The default port (the issue's).
pub const DEFAULT_PORT: u16 = 8765;

#[derive(Debug, clap::Args)]
pub struct DashboardArgs {
    /// The repository (default: the current directory).
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// The session shown first (default: the latest); the page lists every session.
    #[arg(long)]
    pub tag: Option<String>,
    /// The port to listen on (0 lets the system choose).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// The address to listen on. Anything but loopback shows the journal, the diffs and
    /// the training logs to the network, without a password.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
}

/// Binds the dashboard for `root`, warning on stderr when it is reachable from the network.
pub(crate) fn bind(
    root: &Path,
    tag: Option<String>,
    host: &str,
    port: u16,
) -> anyhow::Result<Dashboard> {
    if !is_loopback(host) {
        eprintln!(
            "warning: --host {host} serves the dashboard beyond this machine: anyone who can reach {host}:{port} can read the journal, every diff and the training logs (no password, no TLS); use 127.0.0.1 and an SSH tunnel (ssh -L {port}:127.0.0.1:{port}) instead"
        );
    }
    let d = Dashboard::bind(&Options {
        root: root.to_path_buf(),
        tag,
        host: host.to_string(),
        port,
    })
    .context("cannot start the dashboard")?;
    Ok(d)
}

pub fn dashboard(args: &DashboardArgs) -> anyhow::Result<i32> {
    let root = super::report::repo_root(&args.repo);
    // Fail early and clearly when there is nothing to show yet.
    super::report::open_journal(&root)?;
    let d = bind(&root, args.tag.clone(), &args.host, args.port)?;
    println!("dashboard: {}", d.url());
    println!("(read-only; Ctrl-C stops it)");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    d.serve();
    Ok(exit::OK)
}
