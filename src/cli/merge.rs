//! `autoresearch merge`: shows a session's kept commits and its result, asks, and brings the
//! best result into the branch the session started from (squash or rebase). Refuses while a
//! session holds the repository or the tree has changes; never touches a remote.

use super::exit;
use super::report::{open_journal, pick_session};
use crate::session::{STATE_DIR, SessionLock};
use crate::workspace::Repo;
use crate::workspace::merge::{MergeMode, MergePlan, SessionRef, merge};
use anyhow::bail;
use std::io::{BufRead, Write};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The repository (default: the current directory).
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// The session's tag (default: the latest session).
    #[arg(long)]
    pub tag: Option<String>,
    /// One commit holding the best result, its message listing the kept experiments.
    #[arg(long, conflicts_with = "rebase")]
    pub squash: bool,
    /// The kept commits themselves, replayed in order onto the base branch.
    #[arg(long)]
    pub rebase: bool,
    /// Merge without asking (squash unless --rebase), for scripts.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

pub fn run(args: &MergeArgs) -> anyhow::Result<i32> {
    let repo = Repo::find_project(&args.repo)?;
    let state_dir = repo.root().join(STATE_DIR);
    let journal = open_journal(repo.root())?;
    let row = pick_session(&journal, args.tag.as_deref())?;
    // Held until the merge is done, so no session can start under our feet.
    let _lock = SessionLock::acquire(&state_dir)?;
    repo.check_no_operation_in_progress()?;
    repo.ensure_clean()?;
    let records = journal.experiments(row.id)?;
    let direction = crate::config::parse_direction(&row.direction).unwrap_or_default();
    let plan = MergePlan::build(
        &repo,
        SessionRef {
            tag: &row.tag,
            research_branch: &row.branch,
            base_branch: &row.base_branch,
            base_commit: &row.base_commit,
            metric_name: &row.metric,
            direction,
        },
        &records,
    )?;
    let Some(best) = plan.best() else {
        return Err(crate::workspace::merge::MergeError::NothingKept {
            tag: plan.tag.clone(),
            branch: plan.research_branch.clone(),
        }
        .into());
    };
    println!(
        "Session {} ({}, started from {}): {} kept experiment{}",
        plan.tag,
        plan.research_branch,
        plan.base_branch,
        plan.kept.len(),
        if plan.kept.len() == 1 { "" } else { "s" }
    );
    println!("(iteration, commit, {}, change)", plan.metric_name);
    print!("{}", plan.listing());
    println!("{}", plan.metric_line());

    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let short: String = best.commit.chars().take(7).collect();
    if !args.yes {
        let q = format!(
            "Bring the best result (iteration {}, commit {short}) into {}? [y/N] ",
            best.iteration, plan.base_branch
        );
        if !yes_no(&ask(&mut input, &q)?) {
            println!("Not merged.");
            return Ok(exit::OK);
        }
    }
    let mode = if args.rebase {
        MergeMode::Rebase
    } else if args.squash || args.yes {
        MergeMode::Squash
    } else {
        let q = format!(
            "Squash into one commit, or rebase the {} kept commit(s) onto {}? [S/r] ",
            plan.kept.len(),
            plan.base_branch
        );
        match ask(&mut input, &q)?.trim().to_ascii_lowercase().as_str() {
            "" | "s" | "squash" => MergeMode::Squash,
            "r" | "rebase" => MergeMode::Rebase,
            other => bail!("`{other}` is neither squash nor rebase; run again and answer s or r"),
        }
    };
    let done = merge(&repo, &plan, mode)?;
    println!(
        "{}: {} → {} ({} {} commit{}); {} is checked out",
        done.base_branch,
        repo.short(&done.before),
        repo.short(&done.after),
        done.commits,
        mode.as_str(),
        if done.commits == 1 { "" } else { "s" },
        done.base_branch
    );
    Ok(exit::OK)
}

/// Prints `question` and reads one answer; no answer at all (no terminal, closed stdin) is
/// an error rather than a guess.
fn ask(input: &mut dyn BufRead, question: &str) -> anyhow::Result<String> {
    print!("{question}");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    if input.read_line(&mut answer)? == 0 {
        println!();
        bail!(
            "no answer on standard input; pass --yes (and --squash or --rebase) to merge without asking"
        );
    }
    Ok(answer.trim().to_string())
}

fn yes_no(answer: &str) -> bool {
    matches!(answer.to_ascii_lowercase().as_str(), "y" | "yes")
}
