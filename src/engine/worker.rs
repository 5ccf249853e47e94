//! A worker: a thread that owns one detached worktree and one device. For each assignment
//! it puts the worktree exactly at the commit (tracked files as committed, so whatever the
//! last run changed is gone), runs the job through the executor, reads the metric, and
//! reports back. It never writes the journal and never moves a ref, but puts back any
//! ref, HEAD or tracked file the run changed (and says so in the run's result).

use crate::config::MetricSpec;
use crate::runner::{Cancel, Executor, Job};
use crate::session::{CurveWatch, Progress, RunResult, read_result};
use crate::workspace::{Repo, TreeWatch};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Duration;

/// One run for a worker to do.
pub(crate) struct Assignment {
    pub trial: u64,
    pub iteration: u64,
    pub seed: u64,
    pub commit: String,
    /// The run's folder name (`0007`, `0007-2`): the label its quarantined refs get.
    pub label: String,
    pub job: Job,
    /// The pruning rule's reference, for a candidate's run.
    pub judge: Option<std::sync::Arc<crate::decision::prune::Reference>>,
}

/// What the threads tell the coordinator.
pub(crate) enum Msg {
    /// Numbers from a progress line (at most ten a second per run).
    Output {
        worker: usize,
        iteration: u64,
        elapsed_s: f64,
        numbers: Vec<(String, f64)>,
    },
    /// What the scheduler said of a run's job (queued, started, requeued).
    Job {
        worker: usize,
        iteration: u64,
        news: crate::runner::JobNews,
    },
    /// A run ended; `Err`: it could not be run at all (git or the executor failed).
    Done {
        worker: usize,
        trial: u64,
        seed: u64,
        /// Boxed: a result is large beside the other messages.
        result: Box<Result<RunResult, String>>,
    },
    /// The proposer answered.
    Proposal(Box<super::proposals::Reply>),
}

/// What a worker thread needs.
pub(crate) struct Worker<'e> {
    pub index: usize,
    pub tree: PathBuf,
    pub executor: &'e dyn Executor,
    pub cancel: Cancel,
    pub metric: MetricSpec,
    pub timeout: Duration,
    /// How progress lines are read into a curve.
    pub curve: crate::decision::curve::CurveSpec,
    pub budget: Duration,
    /// Refs the coordinator moves while runs go on (the research branch).
    pub owned: Vec<String>,
}

impl Worker<'_> {
    /// Runs assignments until the coordinator hangs up.
    pub(crate) fn serve(self, jobs: &Receiver<Assignment>, out: &Sender<Msg>) {
        let tree = Repo::open_worktree(&self.tree).ok_or_else(|| {
            format!(
                "worktree {} is not a work tree of its own",
                self.tree.display()
            )
        });
        // What the worker knows of its tree between runs (see `TreeWatch`): read once.
        let mut watch = tree.as_ref().ok().map(|t| {
            TreeWatch::new(t, &self.owned)
                .map_err(|e| format!("cannot read worker {}'s git folders: {e}", self.index))
        });
        for a in jobs {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let tree = tree.as_ref().map_err(Clone::clone)?;
                let watch = match watch.as_mut() {
                    Some(Ok(w)) => w,
                    Some(Err(e)) => return Err(e.clone()),
                    None => return Err("no worktree".into()),
                };
                self.run(tree, watch, &a, out)
            }))
            .unwrap_or_else(|_| {
                Err(format!(
                    "worker {} panicked (a bug in autoresearch)",
                    self.index
                ))
            });
            let done = Msg::Done {
                worker: self.index,
                trial: a.trial,
                seed: a.seed,
                result: Box::new(result),
            };
            if out.send(done).is_err() {
                return;
            }
        }
    }

    fn run(
        &self,
        tree: &Repo,
        watch: &mut TreeWatch,
        a: &Assignment,
        out: &Sender<Msg>,
    ) -> Result<RunResult, String> {
        watch.checkout(tree, &a.commit).map_err(|e| {
            format!(
                "cannot put worker {}'s worktree at {}: {e}",
                self.index, a.commit
            )
        })?;
        // Refs, HEAD and config are guarded unless the box walls git off.
        let refs = !a.job.sandbox.walls_off_git();
        let guard = watch
            .arm(tree, refs)
            .map_err(|e| format!("cannot read worker {}'s refs: {e}", self.index))?;
        let mut progress = Progress::new();
        let (worker, iteration) = (self.index, a.iteration);
        let (cancel, stop) = self.cancel.for_run();
        let mut curve = CurveWatch::new(
            self.curve.clone(),
            self.budget,
            a.judge.clone().map(|r| (r, stop)),
        );
        let outcome = self
            .executor
            .run_watched(
                &a.job,
                &cancel,
                &mut |line: &str| {
                    crate::chaos::point("run_line");
                    curve.line(line);
                    if let Some((elapsed_s, numbers)) = progress.line(line) {
                        let _ = out.send(Msg::Output {
                            worker,
                            iteration,
                            elapsed_s,
                            numbers,
                        });
                    }
                },
                &mut |news| {
                    let _ = out.send(Msg::Job {
                        worker,
                        iteration,
                        news,
                    });
                },
            )
            .map_err(|e| e.to_string())?;
        let mut r = read_result(outcome, &self.metric, self.timeout);
        curve.finish(&mut r, &self.cancel);
        // Whatever the run did to git or the tracked files is undone before anything else
        // reads the tree, and makes the run a crash that says so.
        let tampered = watch
            .undo(tree, guard, &self.owned, &a.label)
            .map_err(|e| format!("cannot undo what run {} changed: {e}", a.label))?;
        r.tampered(&tampered);
        Ok(r)
    }
}
