//! The search proposer's discipline, driven by constructed histories: keep → same way,
//! discard → other way, patience → next constant, seen states skipped, refinement,
//! exhaustion, scope, and resuming from the history alone.

mod search_support;

use autoresearch::agent::search::{SearchProposer, find_constants};
use autoresearch::agent::{AgentError, Proposer, state_hash};
use autoresearch::config::Scope;
use autoresearch::experiment::{Category, Status};
use search_support::{Session, fixture, record};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

const SMALL: &str = "\
# three knobs
A_LR = 0.04  # the lr
DEPTH = 8
WARMUP_RATIO = 0.0
";

fn search(patience: u32) -> SearchProposer {
    SearchProposer::new(7, patience)
}

/// Appends a history row as if `description` had run with `status` (files move on keep).
fn ran(s: &mut Session, description: &str, status: Status) {
    let (name, rest) = description.split_once(' ').unwrap();
    let (old, new) = rest.split_once(" \u{2192} ").unwrap();
    let text = s.text().to_string();
    let c = find_constants(&text)
        .into_iter()
        .find(|c| c.name == name)
        .unwrap();
    assert_eq!(
        c.number.text, old,
        "history row must start from the best value"
    );
    let mut state = s.files.clone();
    let changed = format!("{}{}{}", &text[..c.span.start], new, &text[c.span.end..]);
    state.insert(PathBuf::from("train.py"), changed);
    let hash = state_hash(&state);
    s.seen.insert(hash.clone());
    let n = s.history.len() as u64;
    s.history.push(record(n, description, status, &hash));
    if status == Status::Keep {
        s.files = state;
    }
}

fn next(s: &Session, p: &mut SearchProposer) -> String {
    s.propose(p).expect("a proposal").description
}

#[test]
fn first_proposal_doubles_the_first_constant() {
    let s = Session::new(&fixture(), Scope::All);
    let mut p = search(3);
    assert_eq!(p.name(), "search");
    let proposal = s.propose(&mut p).unwrap();
    assert_eq!(proposal.description, "ASPECT_RATIO 64 \u{2192} 128");
    assert_eq!(proposal.category, Category::Architecture);
    assert_eq!(proposal.scratchpad, None);
    assert_eq!(proposal.usage, Default::default());
    assert_eq!(proposal.changes.len(), 1);
    assert_eq!(proposal.changes[0].path, PathBuf::from("train.py"));
    let before = fixture();
    let after = &proposal.changes[0].contents;
    let diff: Vec<(&str, &str)> = before
        .lines()
        .zip(after.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(
        diff,
        [(
            "ASPECT_RATIO = 64       # model width = DEPTH * ASPECT_RATIO",
            "ASPECT_RATIO = 128       # model width = DEPTH * ASPECT_RATIO"
        )]
    );
    assert_eq!(before.lines().count(), after.lines().count());
}

#[test]
fn description_is_name_old_arrow_new() {
    let s = Session::new("MATRIX_LR = 0.04\n", Scope::All);
    let d = next(&s, &mut search(3));
    assert_eq!(d, "MATRIX_LR 0.04 → 0.08");
    assert_eq!(d.chars().filter(|&c| c == '\u{2192}').count(), 1);
}

#[test]
fn keep_goes_on_in_the_same_direction() {
    let mut s = Session::new(SMALL, Scope::All);
    ran(&mut s, "A_LR 0.04 → 0.08", Status::Keep);
    assert_eq!(next(&s, &mut search(3)), "A_LR 0.08 → 0.16");
    // Downwards too: a discarded ×2 then a kept ÷2 continues with ÷2.
    let mut s = Session::new(SMALL, Scope::All);
    ran(&mut s, "A_LR 0.04 → 0.08", Status::Discard);
    ran(&mut s, "A_LR 0.04 → 0.02", Status::Keep);
    assert_eq!(next(&s, &mut search(3)), "A_LR 0.02 → 0.01");
}

#[test]
fn keep_at_a_fine_step_goes_on_at_that_step() {
    let mut s = Session::new(SMALL, Scope::All);
    ran(&mut s, "A_LR 0.04 → 0.06", Status::Keep);
    assert_eq!(next(&s, &mut search(3)), "A_LR 0.06 → 0.09");
}

#[test]
fn discard_or_crash_tries_the_other_direction() {
    for status in [Status::Discard, Status::Crash] {
        let mut s = Session::new(SMALL, Scope::All);
        ran(&mut s, "A_LR 0.04 → 0.08", status);
        assert_eq!(next(&s, &mut search(3)), "A_LR 0.04 → 0.02", "{status}");
    }
    // A crash of a size going up (an OOM, say) tries it smaller.
    let mut s = Session::new(SMALL, Scope::All);
    ran(&mut s, "A_LR 0.04 → 0.08", Status::Keep);
    ran(&mut s, "DEPTH 8 → 16", Status::Crash);
    assert_eq!(next(&s, &mut search(3)), "DEPTH 8 → 4");
}

#[test]
fn patience_spent_moves_to_the_next_constant() {
    let mut s = Session::new(SMALL, Scope::All);
    ran(&mut s, "A_LR 0.04 → 0.08", Status::Discard);
    assert_eq!(next(&s, &mut search(1)), "DEPTH 8 → 16");
    assert_eq!(next(&s, &mut search(2)), "A_LR 0.04 → 0.02");
    // Patience 0 behaves like 1.
    assert_eq!(next(&s, &mut search(0)), "DEPTH 8 → 16");
}

#[test]
fn both_directions_failed_moves_on_whatever_the_patience() {
    let mut s = Session::new(SMALL, Scope::All);
    ran(&mut s, "A_LR 0.04 → 0.08", Status::Discard);
    ran(&mut s, "A_LR 0.04 → 0.02", Status::Discard);
    assert_eq!(next(&s, &mut search(10)), "DEPTH 8 → 16");
    // After a keep, the way back is a state already run: move on too.
    let mut s = Session::new(SMALL, Scope::All);
    ran(&mut s, "A_LR 0.04 → 0.08", Status::Keep);
    ran(&mut s, "A_LR 0.08 → 0.16", Status::Discard);
    assert_eq!(next(&s, &mut search(10)), "DEPTH 8 → 16");
}

#[test]
fn moving_on_prefers_the_least_tried_constant() {
    let mut s = Session::new(SMALL, Scope::All);
    ran(&mut s, "DEPTH 8 → 16", Status::Discard);
    ran(&mut s, "A_LR 0.04 → 0.08", Status::Discard);
    ran(&mut s, "A_LR 0.04 → 0.02", Status::Discard);
    // DEPTH was tried once, WARMUP_RATIO never: it comes first though DEPTH is next in file.
    assert_eq!(next(&s, &mut search(2)), "WARMUP_RATIO 0.0 → 0.1");
    ran(&mut s, "WARMUP_RATIO 0.0 → 0.1", Status::Discard);
    assert_eq!(next(&s, &mut search(2)), "WARMUP_RATIO 0.0 → 0.05");
    ran(&mut s, "WARMUP_RATIO 0.0 → 0.05", Status::Discard);
    // Now DEPTH: its ×2 was run from this very state, so ÷2.
    assert_eq!(next(&s, &mut search(2)), "DEPTH 8 → 4");
}

#[test]
fn seen_states_are_never_proposed() {
    let mut s = Session::new(SMALL, Scope::All);
    let mut p = search(3);
    let first = s.propose(&mut p).unwrap();
    let mut state = s.files.clone();
    state.insert(PathBuf::from("train.py"), first.changes[0].contents.clone());
    // Seen without any history row (a rejected duplicate, say): still skipped.
    s.seen.insert(state_hash(&state));
    assert_eq!(next(&s, &mut p), "A_LR 0.04 → 0.02");
}

#[test]
fn refines_when_every_coarse_move_was_run() {
    let mut s = Session::new(SMALL, Scope::All);
    for d in [
        "A_LR 0.04 → 0.08",
        "A_LR 0.04 → 0.02",
        "DEPTH 8 → 16",
        "DEPTH 8 → 4",
        "WARMUP_RATIO 0.0 → 0.1",
        "WARMUP_RATIO 0.0 → 0.05",
    ] {
        ran(&mut s, d, Status::Discard);
    }
    // The last knob tried was WARMUP_RATIO; the least-tried tie goes on in file order.
    assert_eq!(next(&s, &mut search(2)), "A_LR 0.04 → 0.06");
    ran(&mut s, "A_LR 0.04 → 0.06", Status::Discard);
    assert_eq!(next(&s, &mut search(2)), "A_LR 0.04 → 0.02667");
    ran(&mut s, "A_LR 0.04 → 0.02667", Status::Discard);
    assert_eq!(next(&s, &mut search(2)), "DEPTH 8 → 12");
}

#[test]
fn exhausts_when_nothing_is_left() {
    let mut s = Session::new("N_LAYER = 1\n", Scope::All);
    let mut p = search(3);
    assert_eq!(s.step(&mut p, Status::Discard), "N_LAYER 1 → 2");
    assert!(matches!(s.propose(&mut p), Err(AgentError::Exhausted(_))));

    // A float has six moves: ×2, ÷2, ×1.5, ÷1.5, ×1.25, ÷1.25.
    let mut s = Session::new("LR = 0.04\n", Scope::All);
    let mut descriptions = Vec::new();
    while let Ok(proposal) = s.propose(&mut p) {
        descriptions.push(proposal.description.clone());
        s.apply(&proposal, Status::Discard);
        assert!(descriptions.len() <= 6, "{descriptions:?}");
    }
    assert_eq!(
        descriptions,
        [
            "LR 0.04 → 0.08",
            "LR 0.04 → 0.02",
            "LR 0.04 → 0.06",
            "LR 0.04 → 0.02667",
            "LR 0.04 → 0.05",
            "LR 0.04 → 0.032"
        ]
    );

    let s = Session::new("WINDOW = \"SSSL\"\nBETAS = (0.9, 0.95)\n", Scope::All);
    let Err(AgentError::Exhausted(msg)) = s.propose(&mut p) else {
        panic!("a file without numeric constants exhausts at once");
    };
    assert!(msg.contains("train.py") && !msg.contains('\n'), "{msg}");
}

#[test]
fn scope_restricts_the_knobs() {
    let cases = [
        (Scope::Architecture, "ASPECT_RATIO 64 → 128"),
        (Scope::Optimizer, "EMBEDDING_LR 0.6 → 1.2"),
        (Scope::Hyperparameters, "TOTAL_BATCH_SIZE 2**19 → 2**20"),
        (Scope::All, "ASPECT_RATIO 64 → 128"),
    ];
    for (scope, first) in cases {
        let mut s = Session::new(&fixture(), scope);
        let mut p = search(1);
        assert_eq!(next(&s, &mut p), first, "{scope:?}");
        // Over a run of discards to exhaustion every proposal stays inside the scope.
        let mut count = 0;
        while let Ok(proposal) = s.propose(&mut p) {
            count += 1;
            assert!(count < 500, "{scope:?} never exhausts");
            let allowed = match scope {
                Scope::Architecture => vec![Category::Architecture],
                Scope::Optimizer => vec![Category::Optimizer],
                Scope::Hyperparameters => {
                    vec![Category::Hyperparameters, Category::TrainingDynamics]
                }
                Scope::All => vec![
                    Category::Architecture,
                    Category::Optimizer,
                    Category::Hyperparameters,
                    Category::TrainingDynamics,
                ],
            };
            assert!(
                allowed.contains(&proposal.category),
                "{scope:?}: {proposal:?}"
            );
            s.apply(&proposal, Status::Discard);
        }
        assert!(count >= 10, "{scope:?}: only {count} proposals");
    }
}

#[test]
fn other_rows_are_ignored_but_their_states_are_not_rerun() {
    let mut s = Session::new(SMALL, Scope::All);
    let n = s.history.len() as u64;
    s.history
        .push(record(n, "swap GELU for SwiGLU", Status::Discard, "x1"));
    // A rejected row is not an event (no "other direction" after it)...
    s.history
        .push(record(n + 1, "A_LR 0.04 → 0.08", Status::Rejected, "x2"));
    assert_eq!(next(&s, &mut search(3)), "A_LR 0.04 → 0.08");
    // ...but a row's state hash counts as run even when `seen` lacks it.
    let mut state = s.files.clone();
    state.insert(
        PathBuf::from("train.py"),
        SMALL.replace("A_LR = 0.04", "A_LR = 0.08"),
    );
    let h = state_hash(&state);
    s.history
        .push(record(n + 2, "unparsed", Status::Interrupted, &h));
    assert_eq!(next(&s, &mut search(3)), "A_LR 0.04 → 0.02");
}

#[test]
fn same_history_same_proposal_and_resume_from_history_alone() {
    let mut s = Session::new(&fixture(), Scope::All);
    let mut live = search(2);
    let statuses = [
        Status::Keep,
        Status::Discard,
        Status::Crash,
        Status::Discard,
        Status::Keep,
        Status::Keep,
        Status::Discard,
        Status::Discard,
    ];
    for (i, status) in statuses.into_iter().cycle().take(40).enumerate() {
        let a = s.propose(&mut live).unwrap();
        // A fresh proposer (a resumed session) and another seed agree with the live one.
        let b = s.propose(&mut search(2)).unwrap();
        let c = s.propose(&mut SearchProposer::new(99, 2)).unwrap();
        assert_eq!(a, b, "step {i}");
        assert_eq!(a, c, "step {i}");
        s.apply(&a, status);
    }
}

#[test]
fn a_whole_session_never_repeats_a_state() {
    // Keep whatever moves DEPTH towards 32 or MATRIX_LR towards 0.01; discard the rest.
    let mut s = Session::new(&fixture(), Scope::All);
    let mut p = search(2);
    let mut hashes = HashSet::new();
    let mut kept = Vec::new();
    for _ in 0..150 {
        let proposal = match s.propose(&mut p) {
            Ok(p) => p,
            Err(AgentError::Exhausted(_)) => break,
            Err(e) => panic!("{e}"),
        };
        let mut state = s.files.clone();
        state.insert(
            PathBuf::from("train.py"),
            proposal.changes[0].contents.clone(),
        );
        assert!(
            hashes.insert(state_hash(&state)),
            "repeated: {}",
            proposal.description
        );
        assert!(!s.seen.contains(&state_hash(&state)));
        let good = [
            "DEPTH 8 → 16",
            "DEPTH 16 → 32",
            "MATRIX_LR 0.04 → 0.02",
            "MATRIX_LR 0.02 → 0.01",
        ]
        .contains(&proposal.description.as_str());
        if good {
            kept.push(proposal.description.clone());
        }
        s.apply(&proposal, if good { Status::Keep } else { Status::Discard });
    }
    assert_eq!(
        kept,
        [
            "MATRIX_LR 0.04 → 0.02",
            "MATRIX_LR 0.02 → 0.01",
            "DEPTH 8 → 16",
            "DEPTH 16 → 32"
        ]
    );
    assert!(
        s.text()
            .contains("\nDEPTH = 32               # transformer blocks\n")
    );
    assert!(s.text().contains("\nMATRIX_LR = 0.01        # Muon lr"));
}

#[test]
fn several_files_follow_the_editable_order() {
    let mut s = Session::with_files(
        &[
            ("train.py", "DEPTH = 8\n"),
            ("model.py", "DEPTH = 4\nHEAD_DIM = 64\n"),
        ],
        Scope::All,
    );
    // `with_files` lists train.py first in `editable`; BTreeMap order would put model.py first.
    let p = s.propose(&mut search(3)).unwrap();
    assert_eq!(p.description, "DEPTH 8 → 16");
    assert_eq!(p.changes.len(), 1);
    assert_eq!(p.changes[0].path, PathBuf::from("train.py"));
    // The seen check hashes every editable file, not only the changed one.
    let mut state: BTreeMap<PathBuf, String> = s.files.clone();
    state.insert(PathBuf::from("train.py"), "DEPTH = 16\n".into());
    s.seen.insert(state_hash(&state));
    assert_eq!(next(&s, &mut search(3)), "DEPTH 8 → 4");
    // DEPTH in model.py is shadowed by train.py's; HEAD_DIM is the second knob.
    ran_in(&mut s, "DEPTH 8 → 4");
    assert_eq!(next(&s, &mut search(1)), "HEAD_DIM 64 → 128");
    assert_eq!(
        s.propose(&mut search(1)).unwrap().changes[0].path,
        PathBuf::from("model.py")
    );
}

fn ran_in(s: &mut Session, description: &str) {
    let n = s.history.len() as u64;
    s.history.push(record(n, description, Status::Discard, ""));
}
