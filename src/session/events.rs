//! The one event enum for everything that happens in a session. The loop emits; the
//! terminal, `--json` lines and (later) the dashboard consume. Serialisable as JSON lines.

use crate::experiment::ExperimentRecord;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    SessionStarted {
        tag: String,
        branch: String,
        resumed: bool,
        platform: String,
        metric: String,
        direction: String,
        budget_s: f64,
        timeout_s: f64,
        /// Experiments already on record (resume), counted as the reports count them.
        experiments: u64,
    },
    /// Something the user should know that does not stop the session.
    Warning {
        message: String,
    },
    /// A fact about the session worth recording (the sandbox in effect, a proposer note).
    Note {
        message: String,
    },
    ProposalStarted {
        iteration: u64,
    },
    Proposal {
        iteration: u64,
        description: String,
        category: String,
        proposer: String,
    },
    /// A proposal that never ran (forbidden path, no-op, duplicate, unusable answer).
    Rejected {
        iteration: u64,
        description: String,
        reason: String,
    },
    RunStarted {
        /// The engine's worker (1-based) that runs it; absent in journals of earlier releases.
        #[serde(skip_serializing_if = "Option::is_none")]
        worker: Option<usize>,
        iteration: u64,
        attempt: u32,
        commit: String,
        seed: u64,
        budget_s: f64,
        timeout_s: f64,
        log: String,
    },
    /// What the scheduler said of a run's job (Slurm): `queued` (with Slurm's reason),
    /// `started` (after `queued_s` in the queue), `requeued`, `resubmitted`, `reattached`.
    Job {
        #[serde(skip_serializing_if = "Option::is_none")]
        worker: Option<usize>,
        iteration: u64,
        job: String,
        state: String,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        queued_s: Option<f64>,
    },
    /// Numbers from a progress line the script printed (e.g. the step loss).
    RunOutput {
        #[serde(skip_serializing_if = "Option::is_none")]
        worker: Option<usize>,
        iteration: u64,
        elapsed_s: f64,
        numbers: Vec<(String, f64)>,
    },
    RunFinished {
        #[serde(skip_serializing_if = "Option::is_none")]
        worker: Option<usize>,
        iteration: u64,
        attempt: u32,
        exit: String,
        duration_s: f64,
        metric: Option<f64>,
        memory_gb: Option<f64>,
        crash: Option<String>,
    },
    /// A finished experiment with its decision and the evidence.
    Decision {
        record: Box<ExperimentRecord>,
        best: Option<f64>,
        baseline: Option<f64>,
        /// Signed improvement over the previous best (positive is better).
        gain: Option<f64>,
    },
    /// A progress report (markdown), also written to `.autoresearch/progress.md`.
    Report {
        markdown: String,
        path: String,
    },
    SessionEnded {
        reason: String,
        best: Option<f64>,
        best_commit: Option<String>,
        baseline: Option<f64>,
        /// Proposals that ran (`tally.experiments`).
        experiments: u64,
        /// How they ended: the same count every report prints.
        tally: crate::report::Tally,
    },
}

impl Event {
    /// The event for what the scheduler said of the job of run `iteration`.
    pub fn job(worker: Option<usize>, iteration: u64, news: &crate::runner::JobNews) -> Event {
        use crate::runner::JobNews as N;
        let (job, state, queued_s) = match news {
            N::Queued { job, .. } => (job, "queued", None),
            N::Started { job, queued_s } => (job, "started", Some(*queued_s)),
            N::Requeued { job, .. } => (job, "requeued", None),
            N::Resubmitted { job, .. } => (job, "resubmitted", None),
            N::Reattached { job } => (job, "reattached", None),
        };
        Event::Job {
            worker,
            iteration,
            job: job.clone(),
            state: state.into(),
            message: news.describe(),
            queued_s,
        }
    }

    /// The event with every field that can carry untrusted text (LLM answers, training
    /// output, descriptions) passed through [`crate::text`]: what any consumer gets.
    pub fn sanitized(mut self) -> Event {
        use crate::text::{clean, flat};
        match &mut self {
            Event::Warning { message } | Event::Note { message } => *message = flat(message, 2000),
            Event::Proposal { description, .. } => *description = flat(description, 300),
            Event::Rejected {
                description,
                reason,
                ..
            } => {
                *description = flat(description, 300);
                *reason = flat(reason, 2000);
            }
            Event::RunFinished { crash: Some(c), .. } => *c = flat(c, 2000),
            Event::Job { message, job, .. } => {
                *message = flat(message, 500);
                *job = flat(job, 40);
            }
            Event::Decision { record, .. } => {
                record.description = flat(&record.description, 300);
                record.reason = flat(&record.reason, 2000);
            }
            Event::Report { markdown, .. } => *markdown = clean(markdown),
            Event::SessionEnded { reason, .. } => *reason = flat(reason, 2000),
            _ => {}
        }
        self
    }
}
