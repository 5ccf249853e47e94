//! The coordinator: the single writer of the journal and the only mover of the research
//! branch. It keeps every worker fed (a trial's pending seeds first, then a prepared
//! proposal), keeps proposals one per worker ahead of them, and turns each message from a
//! worker or the proposer into records. What a finished run leads to (a decision, a
//! retry, a repair, a recheck) is in [`super::decide`].

use super::WorkerSpec;
use super::proposals::{self, Ask, Request, Snapshot};
use super::trial::{Kind, Trial};
use super::worker::{Assignment, Msg, Worker};
use crate::agent::{AgentError, Context, Proposal, Proposer, state_hash};
use crate::decision::policy::{self, Earlier};
use crate::experiment::Category;
use crate::session::{EndReason, Event, Session, SessionError, runs_in};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// How often the coordinator looks at the stop flag while nothing arrives.
const WAKE: Duration = Duration::from_millis(100);
/// How long a session that was interrupted waits for the LLM calls it abandoned to say
/// so (they give up within 50 ms of a Ctrl-C; a CLI agent gets the signal itself).
const ABANDONED: Duration = Duration::from_secs(2);
/// How long a session that ended otherwise waits for calls in flight, `[agent] timeout`
/// unless set.
const CALL_LIMIT: Duration = crate::agent::llm::transport::DEFAULT_TIMEOUT;

/// A proposal waiting for a worker.
pub(super) struct Ready {
    pub proposal: Proposal,
    /// The best it was made on.
    pub parent: String,
    pub earlier: Earlier,
    pub prompt: Option<String>,
    /// Its files' state hash on its parent (so the proposer does not offer it again).
    pub hash: String,
    /// The LLM calls that made it, written to the journal when it gets its number.
    pub calls: Vec<crate::agent::CallRecord>,
    /// Who made it (`None`: a revisit, the session's own).
    pub proposer: Option<String>,
}

/// Stands in for the proposer while it runs on its own thread.
struct Away(String);

impl Proposer for Away {
    fn name(&self) -> String {
        self.0.clone()
    }
    fn propose(&mut self, _: &Context<'_>) -> Result<Proposal, AgentError> {
        Err(AgentError::Fatal(
            "the proposer runs on the engine's thread".into(),
        ))
    }
}

pub(super) struct Engine<'s, 'a> {
    pub s: &'s mut Session<'a>,
    pub specs: Vec<WorkerSpec>,
    trees: Vec<PathBuf>,
    /// The trial each worker runs, by worker position.
    busy: Vec<Option<u64>>,
    assign: Vec<Sender<Assignment>>,
    ask: Sender<Request>,
    /// Proposer threads: requests answered at the same time, at most.
    pub(super) concurrency: usize,
    /// Requests not answered yet.
    pub(super) asked: usize,
    /// Of those, repair requests (a session waits for them before it ends).
    pub repairs: usize,
    pub trials: BTreeMap<u64, Trial>,
    next_trial: u64,
    pub ready: VecDeque<Ready>,
    /// The proposer said it has nothing new (until the next decision).
    pub exhausted: Option<String>,
    /// Experiments started by this invocation (the baseline, repairs and rechecks aside).
    pub started_now: u64,
    pub failed_proposals: u32,
    /// Proposals in a row that got no answer from the LLM server.
    pub unanswered: u32,
    pub next_iteration: u64,
    pub stop: Option<EndReason>,
    /// When the session found it had nothing left but calls in flight.
    stopping: Option<Instant>,
    /// The error the session ends with once the runs in flight are recorded.
    failure: Option<SessionError>,
    host: String,
    /// With the hybrid: the built-in search, asked on this thread when a worker would
    /// otherwise wait for the LLM (see [`super::filler`]).
    pub filler: Option<crate::agent::search::SearchProposer>,
}

/// Runs the session on the engine until a stop condition.
pub(crate) fn run(s: &mut Session<'_>) -> Result<EndReason, SessionError> {
    let specs = s.opts.workers.clone();
    let dir = s.state_dir().join("worktrees");
    let best = s.best_commit();
    let results_top = s
        .config
        .results
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    let links = s.repo.untracked_top_level(&[results_top.as_str()])?;
    let mut trees = Vec::new();
    for w in &specs {
        let tree = dir.join(format!("w{}", w.index));
        s.repo.worktree_at(&tree, &best, &links)?;
        trees.push(tree);
    }
    // One proposer per LLM call made at the same time, each with a scratch worktree of
    // its own (a CLI agent edits it) and a record of calls of its own.
    let name = s.proposer.name();
    let first = std::mem::replace(&mut s.proposer, Box::new(Away(name)));
    let wanted = s.config.agent.concurrency_for(specs.len());
    let mut pool = Vec::with_capacity(wanted);
    while pool.len() + 1 < wanted {
        match first.fork() {
            Some(p) => pool.push(p),
            None => break,
        }
    }
    pool.insert(0, first);
    let concurrency = pool.len();
    let mut agent_trees = Vec::with_capacity(concurrency);
    for i in 1..=concurrency {
        let tree = match i {
            1 => dir.join("agent"),
            _ => dir.join(format!("agent-{i}")),
        };
        s.repo.worktree_at(&tree, &best, &links)?;
        agent_trees.push(tree);
    }
    s.note(super::describe_workers(
        &specs,
        concurrency,
        s.config.agent.ahead,
    ));

    let (tx, rx) = mpsc::channel::<Msg>();
    let (ask, requests) = mpsc::channel::<Request>();
    let requests = std::sync::Arc::new(std::sync::Mutex::new(requests));
    let root = s.repo.root().to_path_buf();
    for (i, (proposer, agent_tree)) in pool.into_iter().zip(agent_trees).enumerate() {
        let agent_project = s.repo.in_worktree(&agent_tree);
        let (to_us, requests, root) = (tx.clone(), requests.clone(), root.clone());
        // Not scoped: a proposer stuck in a long call must not hold up the end of a session.
        std::thread::Builder::new()
            .name(format!("proposer-{}", i + 1))
            .spawn(move || {
                proposals::serve(proposer, root, agent_tree, agent_project, &requests, &to_us)
            })
            .map_err(|e| SessionError::Engine(format!("cannot start a proposer's thread: {e}")))?;
    }

    let executor = s.executor;
    let cancel = s.cancel.clone();
    let metric = s.config.metric.clone();
    let timeout = s.config.timeout;
    let curve = s.config.prune.curve.clone();
    let budget = s.config.budget;
    std::thread::scope(|scope| {
        let mut assign = Vec::new();
        // The research branch moves under the runs (the coordinator keeps results while
        // others train): the guard after each run leaves it to the coordinator.
        let owned = vec![format!("refs/heads/{}", s.config.branch())];
        for (w, tree) in specs.iter().zip(&trees) {
            let (jobs_tx, jobs) = mpsc::channel::<Assignment>();
            let worker = Worker {
                index: w.index,
                tree: tree.clone(),
                executor,
                cancel: cancel.clone(),
                metric: metric.clone(),
                timeout,
                curve: curve.clone(),
                budget,
                owned: owned.clone(),
            };
            let out = tx.clone();
            scope.spawn(move || worker.serve(&jobs, &out));
            assign.push(jobs_tx);
        }
        drop(tx);
        let next_iteration = s.history.iter().map(|r| r.iteration).max().unwrap_or(0) + 1;
        let mut engine = Engine {
            busy: vec![None; specs.len()],
            specs: specs.clone(),
            trees,
            assign,
            ask,
            concurrency,
            asked: 0,
            repairs: 0,
            trials: BTreeMap::new(),
            next_trial: 1,
            ready: VecDeque::new(),
            exhausted: None,
            started_now: 0,
            failed_proposals: 0,
            unanswered: 0,
            next_iteration,
            stop: None,
            stopping: None,
            failure: None,
            host: super::host_name(),
            filler: s.config.agent.has_tuner().then(|| {
                crate::agent::search::SearchProposer::new(
                    s.config.agent.seed,
                    s.config.agent.patience,
                )
            }),
            s,
        };
        let result = engine.drive(&rx);
        // Proposals prepared but never started (or answered as the session ended) were
        // still asked for: their calls count.
        let mut unstarted: Vec<_> = engine.ready.drain(..).flat_map(|r| r.calls).collect();
        while let Ok(msg) = rx.try_recv() {
            if let Msg::Proposal(reply) = msg {
                unstarted.extend(reply.calls);
            }
        }
        let at = engine.next_iteration;
        let recorded =
            crate::session::write_calls(&engine.s.journal, engine.s.row.id, at, unstarted);
        let result = result.and_then(|r| recorded.map(|()| r));
        if result.is_err() {
            // Runs still in flight are killed cleanly; their experiments stay `running` in
            // the journal and a resume records them as interrupted.
            cancel.set(cancel.level().max(1));
        }
        drop(engine);
        result
    })
}

impl Engine<'_, '_> {
    fn drive(&mut self, rx: &Receiver<Msg>) -> Result<EndReason, SessionError> {
        if self.s.baseline().is_none() {
            if self.s.cancel.requested() {
                return Ok(EndReason::Interrupted);
            }
            self.start_baseline()?;
        }
        self.adopt()?;
        loop {
            self.check_stop();
            self.schedule()?;
            if self.trials.is_empty() {
                if let Some(reason) = self.stop.clone() {
                    // A repair belongs to the experiment that crashed: wait for it, unless
                    // the user asked to stop. Calls still in flight were paid for: their
                    // answers are waited for (briefly after a Ctrl-C, which abandons
                    // them), so that each is on the record.
                    let interrupted = reason == EndReason::Interrupted;
                    let since = *self.stopping.get_or_insert_with(Instant::now);
                    let patience = if interrupted {
                        ABANDONED
                    } else {
                        self.s.config.agent.timeout.unwrap_or(CALL_LIMIT)
                    };
                    let waited = since.elapsed() >= patience || self.s.cancel.level() >= 2;
                    if (self.repairs == 0 || interrupted) && (self.asked == 0 || waited) {
                        return match self.failure.take() {
                            Some(e) => Err(e),
                            None => Ok(reason),
                        };
                    }
                }
            }
            match rx.recv_timeout(WAKE) {
                Ok(msg) => match self.handle(msg) {
                    // The proposer cannot go on (a refused key, a server gone, answers
                    // unusable again and again): nothing new starts, and the runs in flight
                    // finish and are recorded before the session ends with the error.
                    Err(
                        e @ (SessionError::Proposer(_)
                        | SessionError::LlmUnreachable(..)
                        | SessionError::TooManyFailedProposals(..)),
                    ) if !self.trials.is_empty() && !self.s.cancel.requested() => {
                        self.stop.get_or_insert(EndReason::Interrupted);
                        self.failure.get_or_insert(e);
                    }
                    r => r?,
                },
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(SessionError::Engine("every worker thread ended".into()));
                }
            }
        }
    }

    /// Feeds idle workers, asks for proposals, and falls back on a leftover when the
    /// proposer has nothing new and nothing else is going on.
    fn schedule(&mut self) -> Result<(), SessionError> {
        for w in 0..self.specs.len() {
            if self.busy[w].is_some() {
                continue;
            }
            let pending = self
                .trials
                .iter()
                .find(|(_, t)| {
                    !t.pending.is_empty()
                        && t.failed.is_none()
                        && t.interrupted.is_none()
                        && t.pruned.is_none()
                })
                .map(|(id, _)| *id);
            if let Some(id) = pending {
                self.dispatch(w, id)?;
                continue;
            }
            if self.stop.is_some() || self.s.baseline().is_none() {
                continue;
            }
            // With the hybrid, an idle worker does not wait for the LLM: the tuner fills in.
            if self.ready.is_empty() && self.may_fill() {
                self.fill()?;
            }
            while let Some(r) = self.ready.pop_front() {
                if let Some(id) = self.start_candidate(r)? {
                    self.dispatch(w, id)?;
                    break;
                }
            }
        }
        if self.may_ask() {
            self.request_proposal()?;
        }
        if self.stop.is_none()
            && self.exhausted.is_some()
            && self.trials.is_empty()
            && self.ready.is_empty()
            && self.asked == 0
        {
            self.use_leftover()?;
        }
        Ok(())
    }

    fn use_leftover(&mut self) -> Result<(), SessionError> {
        let why = self.exhausted.clone().unwrap_or_default();
        match self.s.leftover()? {
            crate::session::Leftover::Revisit(r) => {
                let parent = self.s.best_commit();
                self.ready.push_back(Ready {
                    proposal: r.proposal,
                    parent,
                    earlier: r.earlier,
                    prompt: None,
                    hash: String::new(),
                    calls: Vec::new(),
                    proposer: None,
                });
            }
            crate::session::Leftover::MeasureBest(what) => {
                if !self.start_remeasure(what, Some(why.clone()))? {
                    self.stop = Some(EndReason::Exhausted(why));
                }
            }
            crate::session::Leftover::Nothing => self.stop = Some(EndReason::Exhausted(why)),
        }
        Ok(())
    }

    pub(super) fn take_iteration(&mut self) -> u64 {
        let i = self.next_iteration;
        self.next_iteration += 1;
        i
    }

    /// What the proposer must not offer again beside the states run (the session's
    /// `seen_done`): those running or prepared.
    fn seen_more(&self) -> Vec<String> {
        self.trials
            .values()
            .map(|t| t.rec.state_hash.clone())
            .chain(self.ready.iter().map(|r| r.hash.clone()))
            .filter(|h| !h.is_empty())
            .collect()
    }

    pub(super) fn snapshot(
        &self,
        iteration: u64,
        commit: String,
        tail: Option<String>,
    ) -> Snapshot {
        let s = &self.s;
        Snapshot {
            config: s.config.clone(),
            platform: s.platform.clone(),
            iteration,
            files: s.repo.files_at(&commit, &s.config.editable),
            commit,
            history: s.history.clone(),
            seen_done: s.seen_done.clone(),
            seen_more: self.seen_more(),
            seen: Default::default(),
            last_crash_tail: tail,
            scratchpad: s.scratchpad.clone(),
            hypothesis: s.settings.hypothesis.clone(),
            in_flight: self.in_flight(),
        }
    }

    /// The candidates training now, oldest first, as the proposer is told of them.
    fn in_flight(&self) -> Vec<crate::experiment::ExperimentRecord> {
        let mut running: Vec<_> = self
            .trials
            .values()
            .filter(|t| matches!(t.kind, Kind::Candidate { .. }))
            .map(|t| t.rec.clone())
            .collect();
        running.sort_by_key(|r| r.id);
        running
    }

    fn request_proposal(&mut self) -> Result<(), SessionError> {
        let iteration = self.next_iteration + self.ready.len() as u64 + self.asked as u64;
        self.s.send(Event::ProposalStarted { iteration });
        let tail = self.s.last_crash_tail();
        let snapshot = Box::new(self.snapshot(iteration, self.s.best_commit(), tail));
        self.send_request(Request {
            ask: Ask::Propose,
            snapshot,
        })
    }

    pub(super) fn send_request(&mut self, r: Request) -> Result<(), SessionError> {
        if matches!(r.ask, Ask::Repair { .. }) {
            self.repairs += 1;
        }
        self.ask
            .send(r)
            .map_err(|_| SessionError::Engine("the proposer's thread has ended".into()))?;
        self.asked += 1;
        Ok(())
    }

    /// Hands a trial's next seed to worker `w`.
    fn dispatch(&mut self, w: usize, id: u64) -> Result<(), SessionError> {
        let t = self.trials.get_mut(&id).expect("a trial to dispatch");
        let seed = t.pending.pop_front().expect("a pending seed");
        t.in_flight += 1;
        // A run a killed session left going is followed under its own label and job.
        let (label, attach) = match t.attached.iter().position(|a| a.seed == seed) {
            Some(i) => {
                let a = t.attached.remove(i);
                (a.label, Some(a.job))
            }
            None => (t.next_label(), None),
        };
        let t = &self.trials[&id];
        let spec = &self.specs[w];
        let mut extra = spec.env.clone();
        extra.push(("AUTORESEARCH_WORKER".into(), spec.index.to_string()));
        let mut job = self.s.job_for(
            &self.s.repo.in_worktree(&self.trees[w]),
            seed,
            t.scale,
            &label,
            &extra,
        )?;
        job.attach = attach;
        let started = self.s.run_started(Some(spec.index), &t.rec, seed, &job);
        let judge = match t.kind {
            Kind::Candidate { .. } => self.s.prune_reference()?,
            _ => None,
        };
        let a = Assignment {
            judge,
            trial: id,
            iteration: t.rec.iteration,
            seed,
            commit: t.rec.commit.clone(),
            label,
            job,
        };
        self.s.send(started);
        self.assign[w]
            .send(a)
            .map_err(|_| SessionError::Engine(format!("worker {} has stopped", spec.index)))?;
        self.busy[w] = Some(id);
        Ok(())
    }

    /// A trial for `rec` whose first seeds come from the policy (or the baseline plan).
    pub(super) fn add_trial(
        &mut self,
        rec: crate::experiment::ExperimentRecord,
        kind: Kind,
    ) -> Result<u64, SessionError> {
        let s = &self.s;
        let measurements = s.journal.measurements(s.row.id)?;
        let best_runs = s
            .best()
            .map(|b| runs_in(&measurements, &s.code_ids(b)))
            .unwrap_or_default();
        let noise = crate::session::progress::noise_of(&measurements);
        let mut t = Trial::new(rec, kind, s.batch_scale, s.best_commit(), best_runs, noise);
        t.pending = match &t.kind {
            Kind::Baseline => policy::baseline_plan(&s.config.decision).into(),
            Kind::Candidate { earlier } => match policy::decide_again(
                &s.config.decision,
                s.config.metric.direction,
                &t.noise,
                &t.best_runs,
                earlier,
                &[],
            ) {
                policy::Verdict::Measure { seeds, .. } => t.asks_for(&seeds),
                _ => unreachable!("a candidate with no run is measured first"),
            },
            Kind::Remeasure { before, .. } => {
                t.started = before.len();
                VecDeque::from(vec![policy::recheck_seeds(before)[0]])
            }
        };
        let id = self.next_trial;
        self.next_trial += 1;
        self.trials.insert(id, t);
        Ok(id)
    }

    fn start_baseline(&mut self) -> Result<(), SessionError> {
        let best = self.s.best_commit();
        let files = self.s.repo.files_at(&best, &self.s.config.editable);
        let mut rec = self.s.new_record(0, "baseline", Category::Baseline);
        rec.commit = best.clone();
        rec.parent = best;
        rec.proposer = "baseline".into();
        rec.state_hash = state_hash(&files);
        rec.id = self.s.journal.insert(self.s.row.id, &rec)?;
        self.add_trial(rec, Kind::Baseline)?;
        Ok(())
    }

    /// Re-measures the best once on a new seed. False when there is no best.
    pub(super) fn start_remeasure(
        &mut self,
        what: String,
        leftover: Option<String>,
    ) -> Result<bool, SessionError> {
        let Some(best) = self.s.best().cloned() else {
            return Ok(false);
        };
        let before = self.s.runs_of_code(&best)?;
        self.add_trial(
            best,
            Kind::Remeasure {
                before,
                what,
                leftover,
            },
        )?;
        Ok(true)
    }

    fn handle(&mut self, msg: Msg) -> Result<(), SessionError> {
        match msg {
            Msg::Output {
                worker,
                iteration,
                elapsed_s,
                numbers,
            } => {
                self.s.send(Event::RunOutput {
                    worker: Some(worker),
                    iteration,
                    elapsed_s,
                    numbers,
                });
                Ok(())
            }
            Msg::Job {
                worker,
                iteration,
                news,
            } => {
                self.s.send(Event::job(Some(worker), iteration, &news));
                Ok(())
            }
            Msg::Done {
                worker,
                trial,
                seed,
                result,
            } => {
                let w = self
                    .specs
                    .iter()
                    .position(|s| s.index == worker)
                    .expect("a known worker");
                self.busy[w] = None;
                let r = (*result).map_err(SessionError::Engine)?;
                let place = crate::store::RunPlace {
                    worker,
                    device: self.specs[w].device.clone(),
                    host: self.host.clone(),
                    duration_s: r.outcome.duration.as_secs_f64(),
                };
                self.run_done(trial, seed, r, &place)
            }
            Msg::Proposal(reply) => {
                self.asked = self.asked.saturating_sub(1);
                self.on_reply(*reply)
            }
        }
    }
}
