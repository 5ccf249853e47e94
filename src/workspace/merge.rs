//! Bringing a session's best result into the branch it started from: one squash commit, or
//! the kept commits replayed in order. Works in the user's work tree through the real git
//! binary. Never force-pushes, never touches a remote, never rewrites the research branch;
//! on any failure the base branch is put back where it was.

use super::{GitError, Repo};
use crate::experiment::{Direction, ExperimentRecord, Status};
use std::fmt::Write as _;

/// How the result lands on the base branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MergeMode {
    /// One new commit holding the best result, its message listing the kept experiments.
    Squash,
    /// The kept commits themselves, cherry-picked in order.
    Rebase,
}

impl MergeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MergeMode::Squash => "squash",
            MergeMode::Rebase => "rebase",
        }
    }
}

/// One kept experiment on the research branch.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptCommit {
    pub iteration: u64,
    /// Full sha.
    pub commit: String,
    pub metric: Option<f64>,
    pub description: String,
}

/// What a merge would do: everything the user is shown before saying yes.
#[derive(Debug, Clone, PartialEq)]
pub struct MergePlan {
    /// The session's tag, for the commit message.
    pub tag: String,
    pub research_branch: String,
    /// The branch the session started from: where the result lands.
    pub base_branch: String,
    pub metric_name: String,
    pub direction: Direction,
    pub baseline: Option<f64>,
    /// Kept experiments (the baseline not counted), oldest first; the last is the best.
    pub kept: Vec<KeptCommit>,
}

/// Where the session came from, as the journal says.
#[derive(Debug, Clone, Copy)]
pub struct SessionRef<'a> {
    pub tag: &'a str,
    pub research_branch: &'a str,
    pub base_branch: &'a str,
    pub base_commit: &'a str,
    pub metric_name: &'a str,
    pub direction: Direction,
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(
        "session `{tag}` kept nothing beyond its baseline on {branch}; there is no result to merge"
    )]
    NothingKept { tag: String, branch: String },
    #[error(
        "branch {0} is gone; the result can only land on the branch the session started from (recreate it with `git branch {0} <commit>`)"
    )]
    BaseMissing(String),
    #[error("research branch {0} is gone; nothing to merge (was it deleted with `git branch -D`?)")]
    ResearchMissing(String),
    #[error(
        "{what} onto {base} conflicts ({base} moved since the session started: {detail}); {base} is unchanged. {fix}"
    )]
    Conflict {
        what: String,
        base: String,
        detail: String,
        fix: String,
    },
    #[error("{base} already holds the result of {branch}; nothing to merge")]
    AlreadyMerged { base: String, branch: String },
}

/// What a merge did.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeOutcome {
    pub mode: MergeMode,
    pub base_branch: String,
    /// The base branch's tip before and after.
    pub before: String,
    pub after: String,
    /// Commits added to the base branch.
    pub commits: usize,
}

impl MergePlan {
    /// Reads the plan from the journal's records and the research branch: kept experiments
    /// whose commits are still on the branch (a later re-measurement may have reset one
    /// away), in branch order.
    pub fn build(
        repo: &Repo,
        session: SessionRef<'_>,
        records: &[ExperimentRecord],
    ) -> Result<MergePlan, MergeError> {
        if !repo.branch_exists(session.research_branch)? {
            return Err(MergeError::ResearchMissing(
                session.research_branch.to_string(),
            ));
        }
        if !repo.branch_exists(session.base_branch)? {
            return Err(MergeError::BaseMissing(session.base_branch.to_string()));
        }
        let range = format!(
            "{}..refs/heads/{}",
            session.base_commit, session.research_branch
        );
        let on_branch = repo.git(&["rev-list", "--reverse", "--topo-order", &range])?;
        let kept: Vec<KeptCommit> = on_branch
            .lines()
            .filter_map(|sha| {
                // The last record for a commit wins (a re-measurement updates its row).
                records
                    .iter()
                    .rev()
                    .find(|r| r.commit == sha && r.iteration > 0)
                    .filter(|r| r.status == Status::Keep)
                    .map(|r| KeptCommit {
                        iteration: r.iteration,
                        commit: sha.to_string(),
                        metric: r.metric,
                        description: r.description.clone(),
                    })
            })
            .collect();
        let baseline = records
            .iter()
            .find(|r| r.iteration == 0 && r.status == Status::Keep)
            .and_then(|r| r.metric);
        Ok(MergePlan {
            tag: session.tag.to_string(),
            research_branch: session.research_branch.to_string(),
            base_branch: session.base_branch.to_string(),
            metric_name: session.metric_name.to_string(),
            direction: session.direction,
            baseline,
            kept,
        })
    }

    pub fn best(&self) -> Option<&KeptCommit> {
        self.kept.last()
    }

    /// `val_bpb 1.090000 → 1.000000 (-0.090000, -8.26%)`, or what is known of it.
    pub fn metric_line(&self) -> String {
        let best = self.best().and_then(|k| k.metric);
        match (self.baseline, best) {
            (Some(b), Some(v)) => {
                let d = v - b;
                let pct = if b == 0.0 {
                    String::new()
                } else {
                    format!(", {:+.2}%", d / b.abs() * 100.0)
                };
                format!("{} {b:.6} → {v:.6} ({d:+.6}{pct})", self.metric_name)
            }
            (None, Some(v)) => format!("{} → {v:.6}", self.metric_name),
            _ => format!("{} unknown", self.metric_name),
        }
    }

    /// The listing shown before asking and written into the squash commit's message.
    pub fn listing(&self) -> String {
        let mut out = String::new();
        for k in &self.kept {
            let metric = k
                .metric
                .map_or_else(|| "—".to_string(), |v| format!("{v:.6}"));
            let short: String = k.commit.chars().take(7).collect();
            let desc = k
                .description
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(out, "- #{} {short} {metric} {desc}", k.iteration);
        }
        out
    }

    /// The squash commit's message: subject with the metric, then the kept experiments.
    pub fn squash_message(&self) -> String {
        format!(
            "autoresearch {}: {}\n\nKept experiments from {} (iteration, commit, {}, change):\n{}",
            self.tag,
            self.metric_line(),
            self.research_branch,
            self.metric_name,
            self.listing()
        )
    }
}

/// Runs the merge in `repo`'s work tree and leaves the base branch checked out. On failure
/// the base branch is reset to where it was and the original branch checked out again.
/// The caller has checked that the tree is clean and no session holds the repository.
pub fn merge(repo: &Repo, plan: &MergePlan, mode: MergeMode) -> Result<MergeOutcome, MergeError> {
    let Some(best) = plan.best() else {
        return Err(MergeError::NothingKept {
            tag: plan.tag.clone(),
            branch: plan.research_branch.clone(),
        });
    };
    repo.check_no_operation_in_progress()?;
    repo.ensure_clean()?;
    let base = &plan.base_branch;
    let base_ref = format!("refs/heads/{base}");
    let before = repo.git(&["rev-parse", "--verify", &base_ref])?;
    if repo.ok(&["merge-base", "--is-ancestor", &best.commit, &before])? {
        return Err(MergeError::AlreadyMerged {
            base: base.clone(),
            branch: plan.research_branch.clone(),
        });
    }
    let original = repo.current_branch().ok();
    if original.as_deref() != Some(base.as_str()) {
        repo.checkout(base)?;
    }
    let result = match mode {
        MergeMode::Squash => squash(repo, plan, best),
        MergeMode::Rebase => replay(repo, plan),
    };
    match result {
        Ok(commits) => Ok(MergeOutcome {
            mode,
            base_branch: base.clone(),
            before,
            after: repo.head()?,
            commits,
        }),
        Err(e) => {
            // Put everything back: the base branch where it was, the user where they were.
            let _ = repo.git(&["reset", "-q", "--hard", &before]);
            if let Some(b) = original.filter(|b| b != base) {
                let _ = repo.checkout(&b);
            }
            Err(e)
        }
    }
}

/// Runs a committing command; Err(stderr) when git fails.
fn run_committing(repo: &Repo, args: &[&str]) -> Result<Result<(), String>, GitError> {
    let out = repo.committing(args).output().map_err(GitError::Spawn)?;
    if out.status.success() {
        Ok(Ok(()))
    } else {
        let mut msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if msg.is_empty() {
            msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        Ok(Err(msg))
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| l.contains("CONFLICT") || l.starts_with("error"))
        .or_else(|| s.lines().next())
        .unwrap_or("")
        .trim()
        .to_string()
}

/// One commit on the base branch with the best commit's changes since the session's start.
fn squash(repo: &Repo, plan: &MergePlan, best: &KeptCommit) -> Result<usize, MergeError> {
    let base = &plan.base_branch;
    if let Err(stderr) = run_committing(repo, &["merge", "--squash", "-q", &best.commit])? {
        // A squash merge leaves no MERGE_HEAD; the caller's reset clears the index.
        return Err(MergeError::Conflict {
            what: format!("squashing {}", plan.research_branch),
            base: base.clone(),
            detail: first_line(&stderr),
            fix: format!(
                "Merge by hand (`git switch {base} && git merge --squash {}`) and resolve the conflicts",
                plan.research_branch
            ),
        });
    }
    let staged = repo.git(&["diff", "--cached", "--name-only"])?;
    if staged.is_empty() {
        return Err(MergeError::AlreadyMerged {
            base: base.clone(),
            branch: plan.research_branch.clone(),
        });
    }
    let message = plan.squash_message();
    if let Err(stderr) = run_committing(repo, &["commit", "-q", "--no-verify", "-m", &message])? {
        return Err(GitError::Failed {
            args: "commit (squash)".into(),
            stderr,
        }
        .into());
    }
    Ok(1)
}

/// The kept commits, cherry-picked in order onto the base branch.
fn replay(repo: &Repo, plan: &MergePlan) -> Result<usize, MergeError> {
    let base = &plan.base_branch;
    for k in &plan.kept {
        if let Err(stderr) = run_committing(repo, &["cherry-pick", "--allow-empty", &k.commit])? {
            if repo.git_path("CHERRY_PICK_HEAD")?.exists() {
                let _ = repo.git(&["cherry-pick", "--abort"]);
            }
            let short: String = k.commit.chars().take(7).collect();
            return Err(MergeError::Conflict {
                what: format!("replaying {short} ({})", k.description),
                base: base.clone(),
                detail: first_line(&stderr),
                fix: format!(
                    "Try `autoresearch merge --squash`, or merge by hand (`git switch {base} && git merge {}`)",
                    plan.research_branch
                ),
            });
        }
    }
    Ok(plan.kept.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(baseline: Option<f64>, kept: &[(u64, Option<f64>, &str)]) -> MergePlan {
        MergePlan {
            tag: "mar5".into(),
            research_branch: "autoresearch/mar5".into(),
            base_branch: "main".into(),
            metric_name: "accuracy".into(),
            direction: Direction::Maximize,
            baseline,
            kept: kept
                .iter()
                .map(|&(iteration, metric, d)| KeptCommit {
                    iteration,
                    commit: format!("{iteration}{}", "a".repeat(39)),
                    metric,
                    description: d.into(),
                })
                .collect(),
        }
    }

    #[test]
    fn message_lists_kept_experiments_under_a_metric_subject() {
        let p = plan(Some(0.5), &[(3, Some(0.6), "wider\nmodel"), (7, None, "x")]);
        let msg = p.squash_message();
        let mut lines = msg.lines();
        // The best is the last kept one even without a metric: say what is unknown.
        assert_eq!(lines.next(), Some("autoresearch mar5: accuracy unknown"));
        assert!(msg.contains("- #3 3aaaaaa 0.600000 wider model\n"), "{msg}");
        assert!(msg.contains("- #7 7aaaaaa — x\n"), "{msg}");
    }

    #[test]
    fn metric_line_signs_and_guards_a_zero_baseline() {
        let p = plan(Some(0.5), &[(1, Some(0.6), "a")]);
        assert_eq!(
            p.metric_line(),
            "accuracy 0.500000 → 0.600000 (+0.100000, +20.00%)"
        );
        let p = plan(Some(0.0), &[(1, Some(0.6), "a")]);
        assert_eq!(p.metric_line(), "accuracy 0.000000 → 0.600000 (+0.600000)");
        let p = plan(None, &[(1, Some(0.6), "a")]);
        assert_eq!(p.metric_line(), "accuracy → 0.600000");
    }
}
