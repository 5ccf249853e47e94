//! The engine's scheduler on a scripted fake executor, in process: the test is the
//! cluster. Every run the engine submits arrives here as a request (its label, worker,
//! seed and the LR its worktree holds); the test answers each, in the order it chooses, with
//! a value, a crash or an interruption. So the hard orderings are exact, not timed: a keep
//! on one worker while another trains, a candidate that beats its parent after the best
//! moved, a crash on one worker, the baseline's seeds side by side, Ctrl-C with four runs
//! in flight. Real git, real journal; only the training is scripted.

mod common;

use autoresearch::config;
use autoresearch::engine::plan_workers;
use autoresearch::platform::{Accelerator, Platform};
use autoresearch::runner::{Cancel, Executor, Exit, Job, RunOutcome, RunnerError};
use autoresearch::session::{EndReason, Event, Options, Session, Setup};
use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

/// What the test answers a run with.
enum Answer {
    Value(f64),
    Crash,
    Interrupted,
}

/// One run the engine submitted, waiting for its answer.
struct Run {
    label: String,
    worker: String,
    seed: String,
    lr: String,
    reply: Sender<Answer>,
}

impl Run {
    fn answer(self, a: Answer) {
        self.reply.send(a).expect("the worker waits for its answer");
    }
}

enum Msg {
    Run(Run),
    Ended(Result<EndReason, String>),
}

/// An executor whose runs are answered by the test.
struct Fake {
    to_test: Mutex<Sender<Msg>>,
}

impl Executor for Fake {
    fn run(
        &self,
        job: &Job,
        _cancel: &Cancel,
        _on_line: &mut dyn FnMut(&str),
    ) -> Result<RunOutcome, RunnerError> {
        let env = |k: &str| {
            job.env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let train = std::fs::read_to_string(job.cwd.join("train.py")).unwrap_or_default();
        let lr = train
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("LR = "))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or("?")
            .to_string();
        let label = job
            .log_path
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (reply, answer) = mpsc::channel();
        let run = Run {
            label,
            worker: env("AUTORESEARCH_WORKER"),
            seed: env("AUTORESEARCH_SEED"),
            lr,
            reply,
        };
        self.to_test.lock().unwrap().send(Msg::Run(run)).unwrap();
        let (exit, log) = match answer.recv().expect("an answer") {
            Answer::Value(v) => (Exit::Code(0), format!("val_bpb: {v:.6}\n")),
            Answer::Crash => (
                Exit::Code(1),
                "Traceback (most recent call last):\nValueError: boom\n".to_string(),
            ),
            Answer::Interrupted => (Exit::Interrupted, String::new()),
        };
        std::fs::create_dir_all(job.log_path.parent().unwrap()).unwrap();
        std::fs::write(&job.log_path, &log).unwrap();
        Ok(RunOutcome {
            exit,
            duration: Duration::from_secs(1),
            peak_rss_bytes: None,
            log_path: job.log_path.clone(),
            output_bytes: log.len() as u64,
            stragglers_killed: 0,
            job_id: None,
            queued: None,
        })
    }
}

/// A session of `workers` on the fake, in its own thread; the test drives it with the
/// returned receiver and gets the events at the end.
struct Cluster {
    dir: tempfile::TempDir,
    runs: Receiver<Msg>,
    cancel: Cancel,
}

fn repo(decision: &str) -> tempfile::TempDir {
    let cfg = common::config("\n[sandbox]\nmode = \"none\"\nnetwork = \"allow\"")
        .replace("[decision]\nmode = \"greedy\"\n", decision);
    common::repo(&[
        ("train.py", &common::train_py("print('never run')")),
        ("prepare.py", common::PREPARE),
        ("autoresearch.toml", &cfg),
    ])
}

/// Runs the session on `scope`'s thread and the test body `drive` on this one.
fn with_cluster(
    decision: &str,
    workers: usize,
    iterations: u64,
    drive: impl FnOnce(&Cluster) -> Result<EndReason, String>,
) -> (tempfile::TempDir, Vec<Event>, Result<EndReason, String>) {
    let dir = repo(decision);
    let (tx, rx) = mpsc::channel();
    let fake = Fake {
        to_test: Mutex::new(tx.clone()),
    };
    let cancel = Cancel::new();
    let events = Mutex::new(Vec::new());
    let platform = Platform::with(Accelerator::Cpu, vec![], 2);
    let specs = plan_workers(&platform, Some(workers), None).unwrap();
    let cluster = Cluster {
        dir,
        runs: rx,
        cancel: cancel.clone(),
    };
    let ended = std::thread::scope(|scope| {
        let (fake, events, cancel, root) = (&fake, &events, cancel.clone(), cluster.dir.path());
        scope.spawn(move || {
            let ended = session(root, fake, events, cancel, platform, specs, iterations);
            tx.send(Msg::Ended(ended)).unwrap();
        });
        drive(&cluster)
    });
    let events = events.into_inner().unwrap();
    (cluster.dir, events, ended)
}

fn session(
    root: &Path,
    fake: &Fake,
    events: &Mutex<Vec<Event>>,
    cancel: Cancel,
    platform: Platform,
    workers: Vec<autoresearch::engine::WorkerSpec>,
    iterations: u64,
) -> Result<EndReason, String> {
    let config = config::load(&root.join("autoresearch.toml")).map_err(|e| e.to_string())?;
    let proposer = autoresearch::agent::from_config(&config.agent).map_err(|e| e.to_string())?;
    let mut emit = |e: &Event| events.lock().unwrap().push(e.clone());
    let mut s = Session::start(Setup {
        repo: root,
        config,
        platform,
        executor: fake,
        proposer,
        emit: &mut emit,
        cancel,
        opts: Options {
            iterations: Some(iterations),
            grace: Duration::from_millis(100),
            workers,
            ..Options::default()
        },
    })
    .map_err(|e| e.to_string())?;
    s.run().map_err(|e| e.to_string())
}

impl Cluster {
    /// The next run the engine submits (panics if the session ended instead).
    fn next(&self) -> Run {
        match self.runs.recv().expect("the session is alive") {
            Msg::Run(r) => r,
            Msg::Ended(e) => panic!("the session ended while a run was expected: {e:?}"),
        }
    }

    /// Answers every further run with `value` until the session ends.
    fn finish(&self, value: f64) -> Result<EndReason, String> {
        loop {
            match self.runs.recv().expect("the session is alive") {
                Msg::Run(r) => r.answer(Answer::Value(value)),
                Msg::Ended(e) => return e,
            }
        }
    }
}

/// (iteration, status, description, reason) of every decision, in order.
fn decisions(events: &[Event]) -> Vec<(u64, String, String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Decision { record, .. } => Some((
                record.iteration,
                record.status.as_str().to_string(),
                record.description.clone(),
                record.reason.clone(),
            )),
            _ => None,
        })
        .collect()
}

fn branch(dir: &Path) -> String {
    common::git(dir, &["rev-parse", "autoresearch/t"])
}

fn commit_of(dir: &Path, iteration: u64) -> String {
    common::journal(dir)
        .into_iter()
        .find(|r| r.0 == iteration as i64)
        .map(|r| r.4)
        .unwrap()
}

const GREEDY: &str = "[decision]\nmode = \"greedy\"\n";

#[test]
fn a_keep_on_one_worker_while_another_trains_and_a_stale_winner_queued_again() {
    let (dir, events, ended) = with_cluster(GREEDY, 2, 4, |c| {
        c.next().answer(Answer::Value(1.09));
        // Two experiments from the baseline, side by side.
        let (a, b) = (c.next(), c.next());
        assert_ne!(a.worker, b.worker, "two workers");
        assert_eq!((a.label.as_str(), b.label.as_str()), ("0002", "0003"));
        // The first becomes the best while the second still trains; its worker is the one
        // that gets the next experiment.
        let freed = a.worker.clone();
        a.answer(Answer::Value(1.00));
        let third = c.next();
        assert_eq!(third.worker, freed);
        // The second beats its own parent (1.09) but not the new best (1.00): it is queued
        // again at the front, so its worker's next run is that retry, against the best.
        let b_worker = b.worker.clone();
        b.answer(Answer::Value(1.05));
        let again = c.next();
        assert_eq!(again.worker, b_worker);
        assert_eq!(
            again.lr, "0.05",
            "its own change, on top of experiment 1's files"
        );
        third.answer(Answer::Value(1.20));
        again.answer(Answer::Value(1.10));
        c.finish(1.30)
    });
    assert_eq!(ended, Ok(EndReason::Iterations));
    let d = decisions(&events);
    assert_eq!(d[0].1, "keep", "{d:#?}");
    assert_eq!((d[1].0, d[1].1.as_str()), (1, "keep"), "{d:#?}");
    let stale = d.iter().find(|r| r.0 == 2).unwrap();
    assert_eq!(stale.1, "discard", "{d:#?}");
    assert!(
        stale.3.contains("became the best while it ran"),
        "{stale:?}"
    );
    assert!(
        d.iter()
            .any(|r| r.2.contains("(again, on top of 1)") || r.2.contains("(against 1)")),
        "the stale winner ran again against the new best: {d:#?}"
    );
    // The branch is at the best: experiment 1.
    assert_eq!(branch(dir.path()), commit_of(dir.path(), 1));
}

#[test]
fn a_crash_on_one_worker_does_not_disturb_the_other() {
    let (dir, events, ended) = with_cluster(GREEDY, 2, 2, |c| {
        c.next().answer(Answer::Value(1.09));
        let (a, b) = (c.next(), c.next());
        a.answer(Answer::Crash);
        b.answer(Answer::Value(1.00));
        c.finish(1.30)
    });
    assert_eq!(ended, Ok(EndReason::Iterations));
    let d = decisions(&events);
    let crash = d.iter().find(|r| r.0 == 1).unwrap();
    assert_eq!(crash.1, "crash", "{d:#?}");
    assert!(crash.3.contains("ValueError: boom"), "{crash:?}");
    let kept = d.iter().find(|r| r.0 == 2).unwrap();
    assert_eq!(kept.1, "keep", "{d:#?}");
    assert_eq!(branch(dir.path()), commit_of(dir.path(), 2));
    assert_eq!(common::dirty(dir.path()), "");
}

#[test]
fn the_baselines_seeds_run_side_by_side() {
    let (_dir, events, ended) = with_cluster("", 3, 1, |c| {
        // All three baseline runs are submitted before any is answered.
        let runs = [c.next(), c.next(), c.next()];
        let mut labels: Vec<&str> = runs.iter().map(|r| r.label.as_str()).collect();
        labels.sort();
        assert_eq!(labels, ["0001", "0001-2", "0001-3"]);
        let mut seeds: Vec<&str> = runs.iter().map(|r| r.seed.as_str()).collect();
        seeds.sort();
        seeds.dedup();
        assert_eq!(seeds.len(), 3, "three different seeds");
        let mut workers: Vec<&str> = runs.iter().map(|r| r.worker.as_str()).collect();
        workers.sort();
        assert_eq!(workers, ["1", "2", "3"]);
        assert!(runs.iter().all(|r| r.lr == "0.1"));
        for (r, v) in runs.into_iter().zip([1.09, 1.10, 1.08]) {
            r.answer(Answer::Value(v));
        }
        c.finish(1.30)
    });
    assert_eq!(ended, Ok(EndReason::Iterations));
    let d = decisions(&events);
    assert_eq!(d[0].1, "keep");
    assert!(
        d[0].3.contains("n=3") || d[0].3.contains("3 runs"),
        "{d:#?}"
    );
}

#[test]
fn ctrl_c_with_four_runs_in_flight_stops_them_all_and_starts_nothing_more() {
    let (dir, events, ended) = with_cluster(GREEDY, 4, 20, |c| {
        c.next().answer(Answer::Value(1.09));
        let held: Vec<Run> = (0..4).map(|_| c.next()).collect();
        let mut lrs: Vec<&str> = held.iter().map(|r| r.lr.as_str()).collect();
        lrs.sort();
        lrs.dedup();
        assert_eq!(lrs.len(), 4, "four different experiments");
        c.cancel.set(1);
        for r in held {
            r.answer(Answer::Interrupted);
        }
        // Nothing more is submitted: the next message is the end.
        match c.runs.recv().unwrap() {
            Msg::Ended(e) => e,
            Msg::Run(r) => panic!("run {} started after Ctrl-C", r.label),
        }
    });
    assert_eq!(ended, Ok(EndReason::Interrupted));
    let rows = common::journal(dir.path());
    let interrupted = rows.iter().filter(|r| r.1 == "interrupted").count();
    assert_eq!(interrupted, 4, "{rows:#?}");
    assert!(rows.iter().all(|r| r.1 != "running"), "{rows:#?}");
    assert_eq!(branch(dir.path()), commit_of(dir.path(), 0));
    assert!(!decisions(&events).is_empty());
}
