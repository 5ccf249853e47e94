//! Starting a session: the repository checks, the lock, the journal, and either a new
//! research branch or the resumption of an existing one (reconciling what a killed session
//! left behind).

use super::{Event, Options, STATE_DIR, Session, SessionError, SessionLock, now};
use crate::agent::Proposer;
use crate::config::Config;
use crate::platform::Platform;
use crate::runner::{Cancel, Executor};
use crate::store::{Journal, SessionRow, SessionSettings};
use crate::workspace::{GitError, Repo};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Everything a session needs from the caller.
pub struct Setup<'a> {
    pub repo: &'a Path,
    pub config: Config,
    pub platform: Platform,
    pub executor: &'a dyn Executor,
    pub proposer: Box<dyn Proposer>,
    pub emit: &'a mut dyn FnMut(&Event),
    pub cancel: Cancel,
    pub opts: Options,
}

/// sha256 of each file (missing files are left out).
pub(crate) fn hash_files(root: &Path, paths: &[PathBuf]) -> BTreeMap<PathBuf, String> {
    paths
        .iter()
        .filter_map(|p| {
            let bytes = std::fs::read(root.join(p)).ok()?;
            Some((p.clone(), format!("{:x}", Sha256::digest(&bytes))))
        })
        .collect()
}

/// Records what this invocation runs with (the reports read it back): the budget in force
/// and the experiment count at which it stops, `max_iterations` or the experiments on
/// record plus `--iterations`, whichever comes first.
fn record_settings(
    root: &Path,
    journal: &Journal,
    row: &SessionRow,
    history: &[crate::experiment::ExperimentRecord],
    config: &Config,
    opts: &Options,
) -> Result<SessionSettings, SessionError> {
    let before = crate::report::Tally::of(history).experiments;
    let from_flag = opts.iterations.map(|n| before.saturating_add(n));
    let iteration_limit = match (config.max_iterations, from_flag) {
        (Some(m), Some(f)) => Some(m.min(f)),
        (m, f) => m.or(f),
    };
    let fixed_seed = config
        .editable
        .iter()
        .find_map(|f| crate::config::detect::pinned_seed_in(root, f))
        .map(|f| f.source);
    let settings = SessionSettings {
        budget_s: config.budget.as_secs_f64(),
        timeout_s: config.timeout.as_secs_f64(),
        iteration_limit,
        hypothesis: opts.hypothesis.clone(),
        fixed_seed,
        command: Some(config.command.clone()),
    };
    journal.set_settings(row.id, &settings, &now())?;
    // A resume without --hypothesis keeps the one the session started with.
    Ok(journal.settings(row.id)?.unwrap_or(settings))
}

impl<'a> Session<'a> {
    /// Opens or resumes the session for `config.tag`.
    pub fn start(mut s: Setup<'a>) -> Result<Session<'a>, SessionError> {
        // Before anything is touched: a session that may not run its training must not
        // create a branch or a journal entry first.
        // The project is the config's folder, also when that is a subfolder of the
        // repository: git runs there and every path is relative to it.
        let project = s
            .config
            .source
            .as_deref()
            .map_or_else(|| s.repo.to_path_buf(), crate::config::repo_root);
        let sandbox = crate::runner::sandbox::resolve(
            &s.config.sandbox,
            &project,
            &super::run::protected_paths(&s.config, &project),
            crate::runner::sandbox::Probe::cached(),
        )
        .map_err(crate::runner::RunnerError::from)?;
        let repo = Repo::open_project(&project)?;
        repo.head()?;
        repo.check_no_operation_in_progress()?;
        let results = s.config.results.to_string_lossy().into_owned();
        if repo
            .git(&["ls-files", "--error-unmatch", "--", &results])
            .is_ok()
        {
            return Err(SessionError::ResultsTracked(results));
        }
        // A new session that must refuse (a dirty tree, a taken branch name) refuses
        // before anything is written, `.git/info/exclude` and `.autoresearch/` included.
        let state_dir = repo.root().join(STATE_DIR);
        if !state_dir.join("journal.sqlite").exists() {
            repo.ensure_clean()?;
            if repo.branch_exists(&s.config.branch())? {
                return Err(GitError::BranchExists(s.config.branch(), s.config.tag.clone()).into());
            }
        }
        let prefix = repo.prefix();
        repo.exclude(&[
            &format!("/{prefix}{results}"),
            &format!("/{prefix}{STATE_DIR}/"),
        ])?;
        let lock = SessionLock::acquire(&state_dir)?;
        // Where the executor needs the runs to be (Slurm: a folder every node sees).
        let prepared = s.executor.prepare_state(&state_dir)?;
        // Before the baseline: an LLM that cannot answer must say so now, not after it.
        let llm_notes = s
            .proposer
            .check()
            .map_err(|e| SessionError::Proposer(e.to_string()))?;
        let journal = Journal::open(&state_dir.join("journal.sqlite"))?;
        let branch = s.config.branch();
        let existing = journal.session_by_tag(&s.config.tag)?;
        let resumed = existing.is_some();
        // One worker unless told otherwise: the engine is the only loop.
        if s.opts.workers.is_empty() {
            s.opts.workers =
                crate::engine::plan_workers(&s.platform, Some(1), None).unwrap_or_default();
        }
        let mut notes = Vec::new();
        let mut adopted = Vec::new();
        let (row, history) = match existing {
            Some(row) => {
                super::resume::check_same_setup(&s.config, &row)?;
                // Jobs the killed session left that still run are followed, not redone.
                let live = s.executor.live_jobs(&token_of(&repo, &row));
                let (history, adopt) =
                    super::resume::resume_beside(&repo, &journal, &row, &live, &mut notes)?;
                adopted = adopt;
                (row, history)
            }
            None => {
                let base_branch = repo.current_branch()?;
                repo.ensure_clean()?;
                if repo.branch_exists(&branch)? {
                    return Err(GitError::BranchExists(branch, s.config.tag.clone()).into());
                }
                let base_commit = repo.head()?;
                let hashes = hash_files(repo.root(), &s.config.read_only);
                let config_text = s
                    .config
                    .source
                    .as_ref()
                    .and_then(|p| std::fs::read_to_string(p).ok())
                    .unwrap_or_default();
                let mut row = SessionRow {
                    id: 0,
                    tag: s.config.tag.clone(),
                    branch: branch.clone(),
                    base_branch,
                    base_commit: base_commit.clone(),
                    started_at: now(),
                    metric: s.config.metric.name.clone(),
                    direction: s.config.metric.direction.as_str().into(),
                    platform: serde_json::to_string(&s.platform).unwrap_or_default(),
                    config: config_text,
                    read_only_hashes: serde_json::to_string(&hashes).unwrap_or_default(),
                };
                set_aside_foreign_results(&repo, &s.config.results, s.emit)?;
                row.id = journal.create_session(&row)?;
                crate::chaos::point("session_created");
                repo.create_branch(&branch, &base_commit)?;
                (row, Vec::new())
            }
        };
        let scratchpad = std::fs::read_to_string(state_dir.join("scratchpad.md")).ok();
        let default_scale = s.platform.adjustments.batch_scale;
        let settings = record_settings(repo.root(), &journal, &row, &history, &s.config, &s.opts)?;
        let mut session = Session {
            session_token: token_of(&repo, &row),
            repo,
            config: s.config,
            platform: s.platform,
            journal,
            executor: s.executor,
            proposer: s.proposer,
            emit: s.emit,
            cancel: s.cancel,
            opts: s.opts,
            row,
            seen_done: std::sync::Arc::new(super::seen_of(&history)),
            history: std::sync::Arc::new(history),
            batch_scale: default_scale,
            scratchpad,
            since_recheck: 0,
            started: Instant::now(),
            unrecorded_cost_usd: 0.0,
            chart_drawn: None,
            chart_stale: false,
            results_written: None,
            _lock: lock,
            pending_prompt: None,
            proposed_by: None,
            settings,
            adopt: adopted,
        };
        if let Some(scale) = session
            .best()
            .and_then(|b| b.metrics.get(super::run::BATCH_SCALE_KEY))
        {
            session.batch_scale = *scale;
        }
        session.write_results()?;
        let e = Event::SessionStarted {
            tag: session.config.tag.clone(),
            branch: session.config.branch(),
            resumed,
            platform: session.platform.describe(),
            metric: session.config.metric.name.clone(),
            direction: session.config.metric.direction.as_str().into(),
            budget_s: session.config.budget.as_secs_f64(),
            timeout_s: session.config.timeout.as_secs_f64(),
            experiments: crate::report::Tally::of(&session.history).experiments,
        };
        session.send(e);
        session.note(format!("sandbox: {}", sandbox.summary));
        if let Some(at) = session.settings.fixed_seed.clone() {
            let call = at.split_once(' ').map_or(at.as_str(), |(_, c)| c);
            session.warn(format!(
                "{at} pins the seed and AUTORESEARCH_SEED is never read: repeated runs are one fixed seed, so their spread is not a noise estimate; fix: {}",
                crate::config::detect::seed_fix(call)
            ));
        }
        if let Some(w) = sandbox.warning {
            session.warn(format!("sandbox: {w}"));
        }
        for note in llm_notes.into_iter().chain(prepared) {
            session.note(note);
        }
        if let Some(note) = session.proposer.note() {
            session.warn(note);
        }
        for note in notes {
            session.warn(note);
        }
        if resumed {
            let token = session.session_token.clone();
            // The executor's own first (a Slurm job is cancelled, not killed under it),
            // except the jobs the session reattaches to.
            let keep: Vec<String> = session
                .adopt
                .iter()
                .flat_map(|a| a.jobs.iter().map(|j| j.job.clone()))
                .collect();
            let cancelled = session.executor.reap_session(&token, &keep);
            if cancelled > 0 {
                session.warn(format!(
                    "cancelled {cancelled} job(s) the previous, interrupted session left queued or running; their experiments are recorded as interrupted"
                ));
            }
            let reattached: Vec<String> = session
                .adopt
                .iter()
                .map(|a| {
                    let jobs: Vec<String> = a.jobs.iter().map(|j| j.job.clone()).collect();
                    format!(
                    "reattached to job(s) {} of experiment {} ({}), still running since the previous session was interrupted; their results are recorded as they come",
                    jobs.join(", "),
                    a.rec.iteration,
                    crate::text::first_line(&a.rec.description, 80)
                )
                })
                .collect();
            for note in reattached {
                session.note(note);
            }
            let spare: Vec<String> = keep.iter().map(|id| format!("SLURM_JOB_ID={id}")).collect();
            let killed =
                crate::runner::local::kill_processes_with_env(super::SESSION_ENV, &token, &spare);
            if killed > 0 {
                session.warn(format!(
                    "killed {killed} training process(es) left running by the previous, interrupted session"
                ));
            }
        }
        Ok(session)
    }
}

/// The token that marks the session's runs (their environment, their Slurm comment).
fn token_of(repo: &Repo, row: &SessionRow) -> String {
    format!("{}#{}", repo.root().display(), row.id)
}

/// A results file that no session of ours wrote is moved aside, not overwritten.
fn set_aside_foreign_results(
    repo: &Repo,
    results: &Path,
    emit: &mut dyn FnMut(&Event),
) -> Result<(), SessionError> {
    let path = repo.root().join(results);
    let Ok(meta) = std::fs::metadata(&path) else {
        return Ok(());
    };
    if meta.len() == 0 {
        return Ok(());
    }
    let mut n = 1;
    let aside = loop {
        let candidate = path.with_extension(format!("tsv.{n}.bak"));
        if !candidate.exists() {
            break candidate;
        }
        n += 1;
    };
    std::fs::rename(&path, &aside).map_err(|source| SessionError::Io {
        path: path.clone(),
        source,
    })?;
    emit(&Event::Warning {
        message: format!(
            "{} already existed; moved it to {} so the new session starts a fresh one",
            results.display(),
            super::rel(repo.root(), &aside)
        ),
    });
    Ok(())
}
