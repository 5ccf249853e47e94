//! Property: whatever the constants and the history, a proposal changes exactly one line of
//! one file, that line is still `NAME = <number>` with its spacing and comment, the
//! description names the change, and no state is proposed twice.

mod search_support;

use autoresearch::agent::AgentError;
use autoresearch::agent::search::{Number, SearchProposer, find_constants};
use autoresearch::agent::state_hash;
use autoresearch::config::Scope;
use autoresearch::experiment::Status;
use proptest::prelude::*;
use search_support::Session;
use std::collections::HashSet;
use std::path::PathBuf;

fn literal() -> impl Strategy<Value = String> {
    let unsigned = prop_oneof![
        (0u64..100_000).prop_map(|n| n.to_string()),
        (0u64..5).prop_map(|n| n.to_string()),
        Just("0.0".to_string()),
        (1_000u64..10_000_000).prop_map(|n| {
            let s = n.to_string();
            let mut out = String::new();
            for (i, c) in s.chars().enumerate() {
                if i > 0 && (s.len() - i) % 3 == 0 {
                    out.push('_');
                }
                out.push(c);
            }
            out
        }),
        (0u64..100_000, 1usize..6).prop_map(|(m, scale)| format!(
            "{:.*}",
            scale,
            m as f64 / 10f64.powi(scale as i32)
        )),
        (1u64..1000).prop_map(|d| format!(".{d}")),
        (0u64..1000).prop_map(|n| format!("{n}.")),
        (1u64..100, 1u32..12, any::<bool>())
            .prop_map(|(m, e, upper)| format!("{m}{}-{e}", if upper { 'E' } else { 'e' })),
        (2u64..11, 1u32..40).prop_map(|(b, e)| format!("{b}**{e}")),
    ];
    (any::<bool>(), unsigned).prop_map(|(neg, s)| if neg { format!("-{s}") } else { s })
}

const WORDS: &[&str] = &["LR", "DEPTH", "WARMUP", "BATCH", "BETA", "HEAD_DIM", "SEED"];

fn constant_line(i: usize) -> impl Strategy<Value = String> {
    (
        literal(),
        0usize..WORDS.len(),
        " {0,2}",
        prop::option::of("[a-z ]{0,12}"),
    )
        .prop_map(move |(lit, w, pad, comment)| {
            let mut line = format!("K{i}_{}{pad}= {lit}", WORDS[w]);
            if let Some(c) = comment {
                line.push_str(&format!("  # {c}"));
            }
            line
        })
}

fn noise_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("# a comment".to_string()),
        Just("    INDENTED = 3".to_string()),
        Just("PAIR = (0.8, 0.95)".to_string()),
        Just("NAME = \"SSSL\"".to_string()),
        Just("FLAG = True".to_string()),
        Just("import os".to_string()),
        Just(String::new()),
    ]
}

fn file() -> impl Strategy<Value = String> {
    (1usize..7).prop_flat_map(|n| {
        let lines: Vec<_> = (0..n)
            .map(|i| (constant_line(i), prop::option::of(noise_line())))
            .collect();
        lines.prop_map(|pairs| {
            let mut text = String::new();
            for (c, noise) in pairs {
                if let Some(n) = noise {
                    text.push_str(&n);
                    text.push('\n');
                }
                text.push_str(&c);
                text.push('\n');
            }
            text
        })
    })
}

fn status(i: u8) -> Status {
    match i % 3 {
        0 => Status::Keep,
        1 => Status::Discard,
        _ => Status::Crash,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn a_proposal_changes_one_line_to_another_number(
        text in file(),
        statuses in prop::collection::vec(any::<u8>(), 0..16),
        patience in 1u32..4,
        seed in any::<u64>(),
    ) {
        let mut s = Session::new(&text, Scope::All);
        let mut p = SearchProposer::new(seed, patience);
        let mut states = HashSet::new();
        for st in statuses {
            let proposal = match s.propose(&mut p) {
                Ok(p) => p,
                Err(AgentError::Exhausted(_)) => break,
                Err(e) => panic!("{e}"),
            };
            prop_assert_eq!(proposal.changes.len(), 1);
            let before = s.text().to_string();
            let after = proposal.changes[0].contents.clone();
            let old: Vec<&str> = before.split('\n').collect();
            let new: Vec<&str> = after.split('\n').collect();
            prop_assert_eq!(old.len(), new.len());
            let changed: Vec<usize> = (0..old.len()).filter(|&i| old[i] != new[i]).collect();
            prop_assert_eq!(changed.len(), 1, "{:?}", proposal.description);
            let line = changed[0];

            let b = find_constants(&before).into_iter().find(|c| c.line == line).unwrap();
            let a = find_constants(&after).into_iter().find(|c| c.line == line);
            prop_assert!(a.is_some(), "changed line no longer a constant: {}", new[line]);
            let a = a.unwrap();
            prop_assert_eq!(&a.name, &b.name);
            prop_assert_eq!(&a.comment, &b.comment);
            prop_assert!(Number::parse(&a.number.text).is_some());
            prop_assert_eq!(&old[line][..b.span.start - offset(&before, line)],
                            &new[line][..a.span.start - offset(&after, line)]);
            // Spacing and comment after the value are untouched too.
            prop_assert_eq!(
                &old[line][b.span.end - offset(&before, line)..],
                &new[line][a.span.end - offset(&after, line)..]
            );
            prop_assert_eq!(
                &proposal.description,
                &format!("{} {} \u{2192} {}", b.name, b.number.text, a.number.text)
            );
            if b.number.value != 0.0 {
                prop_assert_eq!(a.number.value < 0.0, b.number.value < 0.0);
            }

            let mut state = s.files.clone();
            state.insert(PathBuf::from("train.py"), after);
            let h = state_hash(&state);
            prop_assert!(!s.seen.contains(&h));
            prop_assert!(states.insert(h));
            s.apply(&proposal, status(st));
        }
    }
}

fn offset(text: &str, line: usize) -> usize {
    text.split_inclusive('\n').take(line).map(str::len).sum()
}
