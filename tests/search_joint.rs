//! The built-in search's joint move: once the record can fit a model, it moves every knob at
//! once towards where a quadratic fitted to all runs says the metric is lowest. In-memory
//! sessions whose "training run" is a known function of the proposed file (a tilted bowl
//! the coordinate search crawls along), with the parents and metrics the journal keeps.

mod search_support;

use autoresearch::agent::search::{SearchProposer, find_constants};
use autoresearch::agent::state_hash;
use autoresearch::config::Scope;
use autoresearch::experiment::{ExperimentRecord, Status};
use search_support::{Session, record};
use std::collections::BTreeMap;
use std::path::PathBuf;

const SCRIPT: &str = "LR = 0.01  # the learning rate\nWIDTH = 256\nDECAY = 0.4\n";

/// A tilted bowl in log space: the best LR moves with WIDTH; minimum 1.0 at (0.05, 700, 0.1).
/// LR × WIDTH above 2× the optimum's crashes (a cliff).
fn truth(text: &str) -> Option<f64> {
    let v: BTreeMap<String, f64> = find_constants(text)
        .into_iter()
        .map(|c| (c.name, c.number.value))
        .collect();
    let (a, b, c) = (
        (v["LR"] / 0.05).ln(),
        (v["WIDTH"] / 700.0).ln(),
        (v["DECAY"] / 0.1).ln(),
    );
    if a + b > 2f64.ln() {
        return None;
    }
    let across = (a + b) / 2f64.sqrt();
    let along = (a - b) / 2f64.sqrt();
    Some(1.0 + 0.04 * across * across + 0.004 * along * along + 0.01 * c * c)
}

/// Runs `n` proposals greedily (keep if better); returns the best value and the history.
fn session(n: usize, seed: u64) -> (f64, Session) {
    let mut s = Session::new(SCRIPT, Scope::All);
    s.history[0].commit = "c0".into();
    s.history[0].metric = truth(SCRIPT);
    let mut best = (truth(SCRIPT).unwrap(), "c0".to_string());
    let mut p = SearchProposer::new(seed, 2);
    for i in 1..=n {
        let Ok(proposal) = s.propose(&mut p) else {
            break;
        };
        let text = proposal.changes[0].contents.clone();
        let value = truth(&text);
        let status = match value {
            None => Status::Crash,
            Some(v) if v < best.0 => Status::Keep,
            Some(_) => Status::Discard,
        };
        let mut state = s.files.clone();
        state.insert(PathBuf::from("train.py"), text.clone());
        let hash = state_hash(&state);
        let mut r: ExperimentRecord = record(i as u64, &proposal.description, status, &hash);
        r.parent = best.1.clone();
        r.commit = format!("c{i}");
        r.metric = value;
        if status == Status::Crash {
            r.reason = "exit code 1: loss diverged".into();
        }
        s.seen.insert(hash);
        s.history.push(r);
        if status == Status::Keep {
            best = (value.unwrap(), format!("c{i}"));
            s.files = state;
        }
    }
    (best.0, s)
}

#[test]
fn joint_moves_follow_the_tilt_and_beat_the_coordinate_search_alone() {
    let (best, s) = session(60, 1);
    let joint: Vec<&ExperimentRecord> = s
        .history
        .iter()
        .filter(|r| r.description.contains(", "))
        .collect();
    assert!(!joint.is_empty(), "no joint move in 60 proposals");
    assert!(
        joint.iter().any(|r| r.status == Status::Keep),
        "no joint move was kept"
    );
    // The coordinate search alone (the first proposals are its) gets stuck in the valley;
    // the joint move goes down it.
    assert!(best < 1.001, "best {best} after 60 proposals");
}

#[test]
fn joint_moves_write_each_knob_in_its_notation_and_never_repeat_a_state() {
    let (_, s) = session(60, 2);
    let mut hashes = std::collections::HashSet::new();
    for r in &s.history[1..] {
        assert!(
            hashes.insert(r.state_hash.clone()),
            "repeated: {}",
            r.description
        );
        for part in r.description.split(", ") {
            let new = part.split(" \u{2192} ").nth(1).unwrap();
            if part.starts_with("WIDTH") {
                new.parse::<u64>()
                    .unwrap_or_else(|_| panic!("WIDTH not an integer: {part}"));
            }
        }
    }
    // The comment beside LR is kept.
    assert!(s.text().contains("  # the learning rate\n"), "{}", s.text());
}

#[test]
fn after_a_crash_the_joint_move_stays_off_the_cliff_and_resumes_from_the_record() {
    let (_, s) = session(60, 3);
    let crashes = s
        .history
        .iter()
        .filter(|r| r.status == Status::Crash)
        .count();
    assert!(crashes <= 4, "{crashes} crashes in 60 proposals");
    // Stateless: a fresh proposer on the same record proposes the same thing, mid-session
    // as at the end.
    for n in [12, 25, s.history.len()] {
        let mut part = Session::new(SCRIPT, Scope::All);
        part.history = s.history[..n].to_vec();
        part.files = s.files.clone();
        part.seen = s.seen.clone();
        let a = part
            .propose(&mut SearchProposer::new(3, 2))
            .map(|p| p.description);
        let b = part
            .propose(&mut SearchProposer::new(3, 2))
            .map(|p| p.description);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }
}
