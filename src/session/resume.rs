//! Continuing a session: unfinished experiments become `interrupted`, the research branch
//! is put at the best, and nothing of the user's is thrown away on the way. A resume whose
//! metric, direction or editable files differ from the session's, or that finds commits or
//! uncommitted edits on the research branch the session did not make, refuses and says
//! what it found and how to go on. What it did on the way comes back as notes, said once
//! the session has started.

use super::{SessionError, now};
use crate::config::Config;
use crate::experiment::{ExperimentRecord, Status};
use crate::runner::LiveJob;
use crate::store::{Journal, Measurement, SessionRow};
use crate::workspace::Repo;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// The config must describe the session it continues: one metric, one direction, one set
/// of editable files per session.
pub(super) fn check_same_setup(config: &Config, row: &SessionRow) -> Result<(), SessionError> {
    let mut differences = Vec::new();
    if config.metric.name != row.metric {
        differences.push(format!(
            "metric `{}` (the session measured `{}`)",
            config.metric.name, row.metric
        ));
    }
    if config.metric.direction.as_str() != row.direction {
        differences.push(format!(
            "direction {} (the session's is {})",
            config.metric.direction.as_str(),
            row.direction
        ));
    }
    if let Some(before) = editable_of(&row.config) {
        let now: BTreeSet<PathBuf> = config.editable.iter().cloned().collect();
        if now != before {
            let show = |s: &BTreeSet<PathBuf>| {
                s.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            differences.push(format!(
                "editable files {} (the session's are {})",
                show(&now),
                show(&before)
            ));
        }
    }
    if differences.is_empty() {
        return Ok(());
    }
    Err(SessionError::ResumeRefused(format!(
        "session `{tag}` cannot continue with this config: it now says {}; results of the two cannot be compared. Start a new session with `--tag {tag}-2` (or put the config back to continue this one)",
        differences.join("; "),
        tag = row.tag
    )))
}

/// The editable files a session was started with, from the config text it recorded.
fn editable_of(config_text: &str) -> Option<BTreeSet<PathBuf>> {
    if config_text.trim().is_empty() {
        return None;
    }
    let doc: toml::Table = config_text.parse().ok()?;
    Some(match doc.get("editable") {
        Some(toml::Value::Array(list)) => list
            .iter()
            .filter_map(|v| v.as_str().map(PathBuf::from))
            .collect(),
        Some(_) => return None,
        None => [PathBuf::from("train.py")].into_iter().collect(),
    })
}

/// An unfinished experiment whose runs still go on with the executor (Slurm jobs a
/// killed session left): the resumed session follows those jobs to their end and decides
/// the experiment, instead of recording it as interrupted and running it again.
#[derive(Debug, Clone)]
pub(crate) struct Adopt {
    pub rec: ExperimentRecord,
    /// Its runs measured before the session was killed: (seed, value), in order.
    pub runs: Vec<(u64, f64)>,
    /// How many run folders it has used (`0007`, `0007-2`, …): the next label's number.
    pub started: usize,
    /// The runs still going on: their label, job id and seed.
    pub jobs: Vec<Attached>,
}

/// A job to reattach to, for the run labelled `label` with `seed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attached {
    pub label: String,
    pub job: String,
    pub seed: u64,
}

/// What [`reconcile`] found.
struct Reconciled {
    history: Vec<ExperimentRecord>,
    best: String,
    /// An experiment was unfinished (what it left in the tree is the killed session's).
    unfinished: bool,
    adopt: Vec<Adopt>,
}

/// The run number of `label` for experiment `id`: `0007` is 1, `0007-3` is 3.
fn run_number(label: &str, id: i64) -> Option<usize> {
    let (head, n) = match label.split_once('-') {
        Some((h, n)) => (h, n.parse().ok()?),
        None => (label, 1),
    };
    (head.parse::<i64>().ok()? == id).then_some(n)
}

/// The seed a run's batch script gives the training (`export AUTORESEARCH_SEED=…`).
fn seed_in_script(state_dir: &std::path::Path, label: &str) -> Option<u64> {
    let text =
        std::fs::read_to_string(state_dir.join("runs").join(label).join("job.sbatch")).ok()?;
    text.lines().find_map(|l| {
        let v = l.strip_prefix("export AUTORESEARCH_SEED=")?;
        v.trim().trim_matches('\'').parse().ok()
    })
}

/// The session's experiments, the unfinished ones recorded as `interrupted` unless their
/// runs still go on among `live` (those are left `running` and returned to adopt, out of
/// the history), and the best commit (the last kept, else the session's base).
fn reconcile(
    repo: &Repo,
    journal: &Journal,
    row: &SessionRow,
    live: &[LiveJob],
) -> Result<Reconciled, SessionError> {
    let state_dir = &repo.root().join(super::STATE_DIR);
    let mut history = journal.experiments(row.id)?;
    let measurements = journal.measurements(row.id)?;
    let mut unfinished = false;
    let mut adopt = Vec::new();
    for r in history.iter_mut().filter(|r| r.status == Status::Running) {
        unfinished = true;
        if let Some(a) = adoptable(r, &measurements, state_dir, live) {
            adopt.push(a);
            continue;
        }
        r.status = Status::Interrupted;
        r.reason = "the session stopped before this experiment finished".into();
        r.finished_at = Some(now());
        journal.update(r)?;
    }
    history.retain(|r| r.status != Status::Running);
    let best = history
        .iter()
        .rev()
        .find(|r| r.status == Status::Keep)
        .map_or_else(|| row.base_commit.clone(), |r| r.commit.clone());
    Ok(Reconciled {
        history,
        best,
        unfinished,
        adopt,
    })
}

/// `r` to adopt: a candidate (not the baseline) with a committed state, no failed run on
/// record, and at least one of its runs still going on with a seed we can read back.
fn adoptable(
    r: &ExperimentRecord,
    measurements: &[Measurement],
    state_dir: &std::path::Path,
    live: &[LiveJob],
) -> Option<Adopt> {
    if r.iteration == 0 || r.commit.is_empty() {
        return None;
    }
    let mine: Vec<&Measurement> = measurements
        .iter()
        .filter(|m| m.experiment_id == r.id)
        .collect();
    let runs: Option<Vec<(u64, f64)>> = mine.iter().map(|m| Some((m.seed, m.value?))).collect();
    let runs = runs?;
    let mut jobs = Vec::new();
    let mut started = mine.len();
    for j in live {
        let Some(n) = run_number(&j.label, r.id) else {
            continue;
        };
        let seed = seed_in_script(state_dir, &j.label)?;
        started = started.max(n);
        jobs.push(Attached {
            label: j.label.clone(),
            job: j.id.clone(),
            seed,
        });
    }
    (!jobs.is_empty()).then(|| Adopt {
        rec: r.clone(),
        runs,
        started,
        jobs,
    })
}

/// Refuses when the research branch points at a commit the session did not make: the
/// user (or something else) committed on it, and resetting it would hide that work. The
/// one exception is the experiment commit a session killed between committing and
/// journaling left: one commit on top of a known one while an experiment was unfinished.
fn check_branch_is_ours(
    repo: &Repo,
    row: &SessionRow,
    history: &[ExperimentRecord],
    best: &str,
    unfinished: bool,
) -> Result<(), SessionError> {
    let Ok(tip) = repo.branch_commit(&row.branch) else {
        return Ok(());
    };
    let known: BTreeSet<&str> = std::iter::once(row.base_commit.as_str())
        .chain(
            history
                .iter()
                .flat_map(|r| [r.commit.as_str(), r.parent.as_str()]),
        )
        .filter(|c| !c.is_empty())
        .collect();
    if known.contains(tip.as_str()) {
        return Ok(());
    }
    let parent = repo.git(&["rev-parse", "-q", "--verify", &format!("{tip}^")]);
    if unfinished && parent.as_deref().is_ok_and(|p| known.contains(p)) {
        return Ok(());
    }
    // How many commits are the user's: those not reachable from any known commit.
    let mut args = vec!["rev-list", "--count", tip.as_str()];
    let excluded: Vec<String> = known.iter().map(|c| format!("^{c}")).collect();
    args.extend(excluded.iter().map(String::as_str));
    let count = repo.git(&args).unwrap_or_else(|_| "some".into());
    let subject = repo
        .git(&["log", "-1", "--format=%h %s", &tip])
        .unwrap_or_else(|_| repo.short(&tip));
    let branch = &row.branch;
    Err(SessionError::ResumeRefused(format!(
        "the research branch {branch} has {count} commit(s) the session did not make (newest: {subject}); resuming would reset them away. Keep them on a branch of your own (`git branch my-work {branch}`), then either drop them from the research branch (`git branch -f {branch} {best}`, after `git switch --detach` if it is checked out) and run again, or start a new session from your branch (`git switch my-work && autoresearch run --tag NEW`)",
        best = repo.short(best)
    )))
}

/// Whether the research branch is missing and must be made again at the session's base:
/// the session was killed between recording itself and creating the branch. Missing
/// after experiments finished is an error (their commits would be lost from view).
fn branch_to_recreate(
    repo: &Repo,
    row: &SessionRow,
    history: &[ExperimentRecord],
) -> Result<bool, SessionError> {
    if repo.branch_exists(&row.branch)? {
        return Ok(false);
    }
    if history.iter().any(|r| r.status.in_results_tsv()) {
        return Err(SessionError::BranchMissing {
            tag: row.tag.clone(),
            branch: row.branch.clone(),
        });
    }
    Ok(true)
}

/// Reconciles a killed session, leaving the user's checkout alone: unfinished experiments
/// become `interrupted` and the research branch is pointed at the best. A checkout that
/// has the research branch checked out (the user switched to it, or a session of an
/// earlier release left it there) is detached at the same commit first, files untouched,
/// so that moving the branch cannot make it look changed.
pub(super) fn resume_beside(
    repo: &Repo,
    journal: &Journal,
    row: &SessionRow,
    live: &[LiveJob],
    notes: &mut Vec<String>,
) -> Result<(Vec<ExperimentRecord>, Vec<Adopt>), SessionError> {
    let Reconciled {
        history,
        best,
        unfinished,
        adopt,
    } = reconcile(repo, journal, row, live)?;
    if branch_to_recreate(repo, row, &history)? {
        repo.create_branch(&row.branch, &row.base_commit)?;
    }
    check_branch_is_ours(repo, row, &history, &best, unfinished)?;
    if repo.current_branch().is_ok_and(|b| b == row.branch) {
        repo.git(&["switch", "-q", "--detach"])?;
        notes.push(format!(
            "your checkout had {} checked out; detached it at the same commit (no file changed) so the session can move the branch; `git switch {}` shows the best at any time",
            row.branch, row.branch
        ));
    }
    let name = format!("refs/heads/{}", row.branch);
    repo.git(&[
        "update-ref",
        "-m",
        "autoresearch: resume at the best",
        &name,
        &best,
    ])?;
    Ok((history, adopt))
}
