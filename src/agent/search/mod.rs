//! The built-in, no-LLM proposer over the top-level numeric constants of the editable files:
//! coordinate moves (one constant, ×2 / ÷2 then finer) mixed with joint moves (every
//! constant at once, where a quadratic fitted to all runs on record points; `joint.rs`).
//! Stateless: its whole strategy is read back from the history, so a resumed session goes
//! on where it stopped. It never runs anything and never touches git or the disk.

pub mod comment;
pub mod dataflow;
mod joint;
pub mod knobs;
pub mod memory;
pub mod number;
pub mod surrogate;

pub use dataflow::LeftOut;
pub use knobs::{Constant, category_of, find_constants};
pub use memory::Memory;
pub use number::{Dir, Notation, Number};

use super::{AgentError, Context, FileChange, Proposal, Proposer, Usage, state_hash};
use crate::config::{MetricSpec, Scope};
use crate::experiment::{Category, ExperimentRecord, Status};
use regex::Regex;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

/// The search proposer. See the module docs and `propose` for the discipline.
#[derive(Debug, Clone)]
pub struct SearchProposer {
    seed: u64,
    patience: u32,
}

impl SearchProposer {
    /// `patience`: non-keeps in a row on one constant before moving on (0 counts as 1).
    pub fn new(seed: u64, patience: u32) -> SearchProposer {
        SearchProposer { seed, patience }
    }

    /// The seed: it draws the joint move's candidates (with the experiment count, so the
    /// same record gives the same proposal on a resume).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn patience(&self) -> u32 {
        self.patience
    }
}

/// A constant of one editable file that the scope lets the search change.
struct Knob<'a> {
    path: &'a Path,
    constant: Constant,
}

/// A past experiment on a knob, read back from its description.
#[derive(Debug, Clone, Copy)]
struct Event {
    knob: usize,
    dir: Dir,
    level: usize,
    status: Status,
}

/// `NAME old → new`, the description every search proposal carries.
static DESCRIPTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*([A-Z_][A-Z0-9_]*) (.+?) \x{2192} (.+?)\s*$").expect("static regex")
});

/// The description of a change, e.g. `MATRIX_LR 0.04 → 0.08`.
pub fn describe(name: &str, old: &str, new: &str) -> String {
    format!("{name} {old} \u{2192} {new}")
}

/// Whether `scope` lets the search change a constant of `category`.
pub fn in_scope(scope: Scope, category: Category) -> bool {
    match scope {
        Scope::All => true,
        Scope::Architecture => category == Category::Architecture,
        Scope::Optimizer => category == Category::Optimizer,
        Scope::Hyperparameters => matches!(
            category,
            Category::Hyperparameters | Category::TrainingDynamics
        ),
    }
}

impl Proposer for SearchProposer {
    fn name(&self) -> String {
        "search".to_string()
    }

    /// Coordinate search. Start on the first constant, ×2 first then ÷2. After a keep, go
    /// on the same way. After a discard or crash, try the other way from the best value,
    /// unless `patience` non-keeps in a row were spent on this constant. Otherwise move to
    /// the least-tried other constant (file order breaks ties). When no ×2/÷2 move from the
    /// best state is new, refine to ×1.5/÷1.5, then ×1.25/÷1.25. A state already run is
    /// never proposed; when none is left the search is exhausted.
    fn propose(&mut self, ctx: &Context<'_>) -> Result<Proposal, AgentError> {
        let knobs = collect_knobs(ctx);
        if knobs.is_empty() {
            return Err(AgentError::Exhausted(format!(
                "no top-level numeric constant (`NAME = number` at column 0) in scope `{}` in {}; \
                 widen `scope` or add such constants",
                ctx.config.scope.as_str(),
                list_files(ctx)
            )));
        }
        let events = read_events(ctx.history, &knobs);
        let memory = Memory::read(ctx.history);
        let mut tried: HashSet<&str> = ctx.seen.iter().map(String::as_str).collect();
        tried.extend(
            ctx.history
                .iter()
                .map(|r| r.state_hash.as_str())
                .filter(|h| !h.is_empty()),
        );
        let attempt =
            |k: usize, dir: Dir, level: usize| build(ctx, &knobs[k], dir, level, &tried, &memory);

        // The mix: a joint move once the record can fit a model, except right after a
        // coordinate keep (going on in a direction that just paid is cheap and often right)
        // and right after a joint move that failed (a coordinate move then explores what
        // the model has not seen, e.g. a knob it has barely moved). When the coordinate
        // search has nothing left, the joint move is tried whatever came last.
        let last_search = ctx.history.iter().rev().find(|r| {
            matches!(
                r.status,
                Status::Keep | Status::Discard | Status::Crash | Status::Pruned
            ) && memory::moves(&r.description).is_some()
        });
        let joint_move = |r: &ExperimentRecord| r.description.contains(", ");
        let coordinate_keep =
            last_search.is_some_and(|r| r.status == Status::Keep && !joint_move(r));
        let joint_failed = last_search.is_some_and(|r| r.status != Status::Keep && joint_move(r));
        let try_joint = |strict| joint::propose(ctx, &knobs, &memory, &tried, self.seed, strict);
        if !coordinate_keep && !joint_failed {
            if let Some(p) = try_joint(true) {
                return Ok(p);
            }
        }

        let last = events.last().copied();
        if let Some(e) = last {
            let next = if e.status == Status::Keep {
                attempt(e.knob, e.dir, e.level)
            } else {
                let streak = events
                    .iter()
                    .rev()
                    .take_while(|x| x.knob == e.knob && x.status != Status::Keep)
                    .count();
                let patience = usize::try_from(self.patience.max(1)).unwrap_or(usize::MAX);
                if streak < patience {
                    attempt(e.knob, e.dir.opposite(), e.level)
                } else {
                    None
                }
            };
            if let Some(p) = next {
                return Ok(p);
            }
        }

        let inert: Vec<bool> = knobs
            .iter()
            .map(|k| memory.inert.contains(&k.constant.name))
            .collect();
        let order = knob_order(&inert, &events, last.map(|e| e.knob));
        for level in 0..number::LEVELS.len() {
            for &k in &order {
                for dir in [Dir::Up, Dir::Down] {
                    if let Some(p) = attempt(k, dir, level) {
                        return Ok(p);
                    }
                }
            }
        }
        if let Some(p) = try_joint(false) {
            return Ok(p);
        }
        Err(AgentError::Exhausted(format!(
            "every move of the {} numeric constant(s) in scope `{}` (×2, ×1.5, ×1.25 each way) \
             from the best state has been run; widen `scope` or switch to an LLM proposer",
            knobs.len(),
            ctx.config.scope.as_str()
        )))
    }
}

/// Knobs in the order of `config.editable` (then any other file), each file top to bottom.
/// A name found in two files belongs to the first: descriptions name constants, not files.
fn collect_knobs<'a>(ctx: &Context<'a>) -> Vec<Knob<'a>> {
    let mut knobs: Vec<Knob<'a>> = Vec::new();
    for (path, text) in ordered_files(ctx) {
        let constants = find_constants(text);
        let names: Vec<String> = constants.iter().map(|c| c.name.clone()).collect();
        let printed = dataflow::reporting_only(text, &names, &metric_words(&ctx.config.metric));
        for constant in constants {
            let taken = knobs.iter().any(|k| k.constant.name == constant.name);
            let reporting = printed.iter().any(|l| l.name == constant.name);
            if !taken && !reporting && in_scope(ctx.config.scope, constant.category) {
                knobs.push(Knob { path, constant });
            }
        }
    }
    knobs
}

/// The numeric constants of `files` the search leaves out because they only feed printing
/// or reporting, with the reason, in file order (for the Research Config).
pub fn left_out(files: &[(PathBuf, String)], metric: &MetricSpec) -> Vec<LeftOut> {
    let words = metric_words(metric);
    let mut out = Vec::new();
    for (_, text) in files {
        let names: Vec<String> = find_constants(text).into_iter().map(|c| c.name).collect();
        out.extend(dataflow::reporting_only(text, &names, &words));
    }
    out
}

/// What a print of the run's result contains: the metric's name, and the literal start of
/// its regex when one is set (`bpb=` of `bpb=([0-9.]+)`).
fn metric_words(metric: &MetricSpec) -> Vec<&str> {
    let mut words = vec![metric.name.as_str()];
    if let Some(re) = metric.regex.as_ref().map(regex::Regex::as_str) {
        let end = re
            .find(|c: char| "\\^$.|?*+()[]{}".contains(c))
            .unwrap_or(re.len());
        if end >= 3 {
            words.push(&re[..end]);
        }
    }
    words
}

fn ordered_files<'a>(ctx: &Context<'a>) -> Vec<(&'a Path, &'a str)> {
    let files: &'a BTreeMap<PathBuf, String> = ctx.files;
    let mut out: Vec<(&'a Path, &'a str)> = Vec::new();
    for p in &ctx.config.editable {
        if let Some((path, text)) = files.get_key_value(p) {
            if !out.iter().any(|(q, _)| *q == path.as_path()) {
                out.push((path.as_path(), text.as_str()));
            }
        }
    }
    for (path, text) in files {
        if !out.iter().any(|(q, _)| *q == path.as_path()) {
            out.push((path.as_path(), text.as_str()));
        }
    }
    out
}

fn list_files(ctx: &Context<'_>) -> String {
    let names: Vec<String> = ordered_files(ctx)
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    if names.is_empty() {
        "no editable file".to_string()
    } else {
        names.join(", ")
    }
}

/// The keeps, discards and crashes whose description is a search move on a current knob.
/// Everything else (the baseline, LLM proposals, rejected or interrupted runs) is ignored.
fn read_events(history: &[ExperimentRecord], knobs: &[Knob<'_>]) -> Vec<Event> {
    history
        .iter()
        .filter(|r| {
            matches!(
                r.status,
                Status::Keep | Status::Discard | Status::Crash | Status::Pruned
            )
        })
        // A joint move (several knobs at once) is not a step of the coordinate search.
        .filter(|r| !r.description.contains(", "))
        .filter_map(|r| {
            let caps = DESCRIPTION.captures(&r.description)?;
            let knob = knobs.iter().position(|k| k.constant.name == caps[1])?;
            let (dir, level) = classify(caps[2].trim(), caps[3].trim())?;
            Some(Event {
                knob,
                dir,
                level,
                status: r.status,
            })
        })
        .collect()
}

/// Which step turned `old` into `new`. A move the search would not have made (a hand edit,
/// an imported row) counts as a coarse step in the direction the magnitude went.
fn classify(old: &str, new: &str) -> Option<(Dir, usize)> {
    let before = Number::parse(old)?;
    for level in 0..number::LEVELS.len() {
        for dir in [Dir::Up, Dir::Down] {
            if before.step(dir, level).as_deref() == Some(new) {
                return Some((dir, level));
            }
        }
    }
    let after = Number::parse(new)?;
    let dir = if after.value.abs() >= before.value.abs() {
        Dir::Up
    } else {
        Dir::Down
    };
    Some((dir, 0))
}

/// Candidates for a move elsewhere: the least-tried knobs first, ties in file order
/// starting after `current`; `current` itself comes last, and after it the inert knobs
/// (whose moves never changed the metric), least-tried first.
fn knob_order(inert: &[bool], events: &[Event], current: Option<usize>) -> Vec<usize> {
    let n = inert.len();
    let mut tries = vec![0usize; n];
    for e in events {
        tries[e.knob] += 1;
    }
    let start = current.map_or(0, |c| c + 1);
    let key = |k: usize| (tries[k], (k + n - start % n) % n);
    let mut order: Vec<usize> = (0..n)
        .filter(|&k| Some(k) != current && !inert[k])
        .collect();
    order.sort_by_key(|&k| key(k));
    order.extend(current.filter(|&c| !inert[c]));
    let mut rest: Vec<usize> = (0..n).filter(|&k| inert[k]).collect();
    rest.sort_by_key(|&k| key(k));
    order.extend(rest);
    order
}

/// The proposal moving `knob` one step, or `None` when there is no such step or its state
/// was already run.
fn build(
    ctx: &Context<'_>,
    knob: &Knob<'_>,
    dir: Dir,
    level: usize,
    tried: &HashSet<&str>,
    memory: &Memory,
) -> Option<Proposal> {
    let c = &knob.constant;
    if level > 0 && c.keeps_power_of_two() {
        return None;
    }
    let new_value = c.number.step(dir, level)?;
    let new_number = Number::parse(&new_value)?;
    if memory.barred(&c.name, c.number.value, new_number.value) {
        return None;
    }
    let old_text = ctx.files.get(knob.path)?;
    let contents = rewrite(old_text, c, &new_value, new_number.value);
    let mut state = ctx.files.clone();
    state.insert(knob.path.to_path_buf(), contents.clone());
    if tried.contains(state_hash(&state).as_str()) {
        return None;
    }
    Some(Proposal {
        description: describe(&c.name, &c.number.text, &new_value),
        category: c.category,
        changes: vec![FileChange {
            path: knob.path.to_path_buf(),
            contents,
        }],
        scratchpad: None,
        usage: Usage::default(),
    })
}

/// `text` with constant `c` set to `new_text`, and a same-line comment that stated the old
/// value restated for the new one.
pub(crate) fn rewrite(text: &str, c: &Constant, new_text: &str, new_value: f64) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str(&text[..c.span.start]);
    out.push_str(new_text);
    let rest = &text[c.span.end..];
    let line_end = rest.find('\n').unwrap_or(rest.len());
    let (line, after) = rest.split_at(line_end);
    match line.find('#').and_then(|at| {
        comment::restate(&line[at..], c.number.value, new_value, new_text).map(|n| (at, n))
    }) {
        Some((at, new_comment)) => {
            out.push_str(&line[..at]);
            out.push_str(&new_comment);
        }
        None => out.push_str(line),
    }
    out.push_str(after);
    out
}
