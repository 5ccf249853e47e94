//! Knob hygiene of the built-in search on a karpathy-shaped train.py
//! (`tests/fixtures/search/karpathy_train.py`): a constant that only feeds a printout is
//! not a knob, a crashing value is not run again from another state, a value past a broken
//! assertion is learned, batch sizes that are powers of two stay powers of two and `2**19`
//! stays a power, with its comment restated, integers stay integers, and
//! a knob whose moves never change the metric goes to the back of the queue. In-memory
//! sessions first (the proposer alone), then the binary on a real repo and a real Python.

mod common;
mod search_support;

use autoresearch::agent::search::{Memory, SearchProposer, left_out};
use autoresearch::config::Scope;
use autoresearch::experiment::Status;
use search_support::Session;
use std::path::{Path, PathBuf};

fn karpathy() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/search/karpathy_train.py"),
    )
    .unwrap()
}

/// The value a description sets `name` to, if it moves it.
fn sets(description: &str, name: &str) -> Option<String> {
    description.split(", ").find_map(|part| {
        let rest = part.strip_prefix(name)?.strip_prefix(' ')?;
        Some(rest.split(" \u{2192} ").nth(1)?.to_string())
    })
}

#[test]
fn a_constant_that_only_feeds_the_mfu_printout_is_left_out_with_its_reason() {
    let files = vec![(PathBuf::from("train.py"), karpathy())];
    let left = left_out(
        &files,
        &search_support::config(Scope::All, &["train.py"]).metric,
    );
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].name, "H100_BF16_PEAK_FLOPS");
    assert_eq!(left[0].reason, "only printed (via mfu, steady_state_mfu)");

    // A whole session never proposes it, whatever is kept.
    let mut s = Session::new(&karpathy(), Scope::All);
    let mut p = SearchProposer::new(1, 2);
    for i in 0..80 {
        let Ok(proposal) = s.propose(&mut p) else {
            break;
        };
        assert!(
            !proposal.description.contains("H100_BF16_PEAK_FLOPS"),
            "{}",
            proposal.description
        );
        s.apply(
            &proposal,
            if i % 3 == 0 {
                Status::Keep
            } else {
                Status::Discard
            },
        );
    }
}

#[test]
fn a_crashing_value_is_not_run_again_after_keeps_elsewhere() {
    let mut s = Session::new(&karpathy(), Scope::All);
    let mut p = SearchProposer::new(1, 2);
    let mut to_128 = 0;
    for _ in 0..120 {
        let Ok(proposal) = s.propose(&mut p) else {
            break;
        };
        let d = proposal.description.clone();
        let crash = sets(&d, "ASPECT_RATIO").is_some_and(|v| v.parse::<f64>().unwrap() >= 128.0);
        if crash {
            to_128 += 1;
        }
        // Everything that does not crash is kept: the state changes in every other knob.
        s.apply(&proposal, if crash { Status::Crash } else { Status::Keep });
        if crash {
            s.history.last_mut().unwrap().reason =
                "AssertionError: this fixture's model must stay small".into();
        }
    }
    assert_eq!(to_128, 1, "ASPECT_RATIO ≥ 128 was proposed {to_128} times");
}

#[test]
fn a_value_past_a_broken_assertion_is_barred_and_a_plain_crash_only_bars_itself() {
    let mut s = Session::new(&karpathy(), Scope::All);
    let mut p = SearchProposer::new(1, 2);
    let first = s.propose(&mut p).unwrap();
    assert_eq!(first.description, "ASPECT_RATIO 64 \u{2192} 128");
    s.apply(&first, Status::Crash);
    s.history.last_mut().unwrap().reason = "AssertionError".into();
    let memory = Memory::read(&s.history);
    assert!(memory.barred("ASPECT_RATIO", 64.0, 128.0));
    assert!(
        memory.barred("ASPECT_RATIO", 96.0, 160.0),
        "beyond the broken value"
    );
    assert!(!memory.barred("ASPECT_RATIO", 64.0, 96.0));
    assert!(
        !memory.barred("ASPECT_RATIO", 256.0, 160.0),
        "from the other side"
    );

    s.history.last_mut().unwrap().reason = "exit code 1: RuntimeError".into();
    let memory = Memory::read(&s.history);
    assert!(memory.barred("ASPECT_RATIO", 64.0, 128.0));
    assert!(!memory.barred("ASPECT_RATIO", 96.0, 160.0));
    assert_eq!(memory.bars("ASPECT_RATIO"), 1);
}

#[test]
fn powers_of_two_stay_powers_of_two_written_as_the_script_wrote_them() {
    let mut s = Session::new(&karpathy(), Scope::All);
    let mut p = SearchProposer::new(1, 1);
    let mut seen_total = Vec::new();
    for _ in 0..150 {
        let Ok(proposal) = s.propose(&mut p) else {
            break;
        };
        let d = proposal.description.clone();
        if let Some(v) = sets(&d, "DEVICE_BATCH_SIZE") {
            let v: u64 = v.parse().unwrap_or_else(|_| panic!("{d}: not an integer"));
            assert!(v.is_power_of_two(), "{d}");
        }
        if let Some(v) = sets(&d, "HEAD_DIM") {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("{d}: HEAD_DIM not an integer"));
        }
        if let Some(v) = sets(&d, "TOTAL_BATCH_SIZE") {
            assert!(v.starts_with("2**"), "{d}");
            let text = &proposal.changes[0].contents;
            let line = text
                .lines()
                .find(|l| l.starts_with("TOTAL_BATCH_SIZE"))
                .unwrap();
            seen_total.push(line.to_string());
        }
        if let Some(v) = sets(&d, "DEPTH") {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("{d}: DEPTH not an integer"));
        }
        s.apply(&proposal, Status::Discard);
    }
    // The comment states the old value (~524K tokens): it is restated, not left stale.
    assert!(
        seen_total
            .contains(&"TOTAL_BATCH_SIZE = 2**20 # ~1049K tokens per optimizer step".to_string()),
        "{seen_total:?}"
    );
    assert!(
        seen_total
            .contains(&"TOTAL_BATCH_SIZE = 2**18 # ~262K tokens per optimizer step".to_string()),
        "{seen_total:?}"
    );
}

#[test]
fn a_knob_whose_moves_never_change_the_metric_goes_last() {
    let text = "A = 1.0\nB = 2.0\nC = 3.0\n";
    let mut s = Session::new(text, Scope::All);
    s.history[0].commit = "c0".into();
    let mut p = SearchProposer::new(1, 1);
    // A's two moves leave the metric exactly where it was; the others change it.
    let mut order = Vec::new();
    for _ in 0..16 {
        let Ok(proposal) = s.propose(&mut p) else {
            break;
        };
        let d = proposal.description.clone();
        let single = !d.contains(", ");
        let name = d.split(' ').next().unwrap().to_string();
        s.apply(&proposal, Status::Discard);
        let r = s.history.last_mut().unwrap();
        r.parent = "c0".into();
        r.metric = Some(if single && name == "A" { 1.0 } else { 1.5 });
        if single {
            order.push(name);
        } else {
            assert!(sets(&d, "A").is_none(), "a joint move of the inert A: {d}");
        }
    }
    // Round robin first (A ×2, B ×2, C ×2, A ÷2): two moves of A, neither changed anything.
    assert_eq!(&order[..4], ["A", "B", "C", "A"], "{order:?}");
    // From then on A waits until B and C have had their finer moves.
    assert!(order.len() >= 8, "{order:?}");
    assert!(!order[4..8].contains(&"A".to_string()), "{order:?}");
}

#[test]
fn a_real_session_never_runs_the_printing_constant_nor_a_known_crash_twice() {
    let dir = common::repo(&[
        ("train.py", &karpathy()),
        ("autoresearch.toml", &common::config("")),
    ]);
    let out = common::run(dir.path(), &["-n", "40"]);
    let log = common::text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("| Left out of the search | `H100_BF16_PEAK_FLOPS` (only printed (via mfu, steady_state_mfu)) |"),
        "{log}"
    );
    let conn = rusqlite::Connection::open(dir.path().join(".autoresearch/journal.sqlite")).unwrap();
    let rows: Vec<(String, String)> = conn
        .prepare("SELECT description, status FROM experiments WHERE iteration > 0 ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(rows.len() >= 20, "{rows:?}");
    assert!(
        rows.iter()
            .all(|(d, _)| !d.contains("H100_BF16_PEAK_FLOPS")),
        "{rows:?}"
    );
    let crashes: Vec<&String> = rows
        .iter()
        .filter(|(_, st)| st == "crash")
        .map(|(d, _)| d)
        .collect();
    // Every crash is a different move: a single (knob, value) never repeated after a keep,
    // a joint move (several knobs at once) never run twice.
    let mut moves: Vec<(String, String)> = crashes
        .iter()
        .map(|d| {
            let name = d.split(' ').next().unwrap().to_string();
            if d.contains(", ") {
                ((*d).clone(), String::new())
            } else {
                (name.clone(), sets(d, &name).unwrap())
            }
        })
        .collect();
    let n = moves.len();
    moves.sort();
    moves.dedup();
    assert_eq!(moves.len(), n, "{crashes:?}");
    assert!(
        n >= 1,
        "the fixture's assertions make some moves crash: {rows:?}"
    );
    assert_eq!(common::dirty(dir.path()), "");
}
