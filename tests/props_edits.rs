//! Extends tests/edits_props.rs: several blocks in one answer, written in the answer
//! format and parsed back (not built as `Edit`s), on LF or CRLF files, applied and then
//! undone by the inverse answer, restore the file byte for byte; and a failing block
//! anywhere makes the whole answer apply nothing.

use autoresearch::agent::edits::{ApplyError, apply, parse};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// An answer in the proposal format with one SEARCH/REPLACE block per (search, replace).
fn answer(blocks: &[(String, String)]) -> String {
    let mut s = String::from("DESCRIPTION: several changes\nCATEGORY: other\n\n");
    for (search, replace) in blocks {
        s.push_str(&format!(
            "train.py\n```python\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n```\n\n"
        ));
    }
    s
}

/// Disjoint, sorted line ranges `[a, b)` within `n` lines, from random cut points.
fn ranges(n: usize, cuts: &[usize]) -> Vec<(usize, usize)> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (n + 1)).collect();
    points.sort_unstable();
    points.dedup();
    points
        .chunks(2)
        .filter_map(|c| match c {
            [a, b] if b > a => Some((*a, *b)),
            _ => None,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn several_blocks_then_their_inverse_restore_the_file(
        n in 1usize..40,
        cuts in prop::collection::vec(any::<usize>(), 2..10),
        new_lines in prop::collection::vec(0usize..4, 10),
        crlf in any::<bool>(),
        trailing_newline in any::<bool>(),
    ) {
        let blocks = ranges(n, &cuts);
        prop_assume!(!blocks.is_empty());
        let eol = if crlf { "\r\n" } else { "\n" };
        let lines: Vec<String> = (0..n).map(|i| format!("line_{i} = {}", i * 7)).collect();
        let mut original = lines.join(eol);
        if trailing_newline {
            original.push_str(eol);
        }
        // The LLM writes `\n` whatever the file uses.
        let forward: Vec<(String, String)> = blocks
            .iter()
            .enumerate()
            .map(|(k, &(a, b))| {
                let search: String = lines[a..b].iter().map(|l| format!("{l}\n")).collect();
                // At least one new line, so the inverse has something to search for.
                let replace: String = (0..new_lines[k].max(1))
                    .map(|j| format!("block_{k}_new_{j} = {a}\n"))
                    .collect();
                (search, replace)
            })
            .collect();
        let path = PathBuf::from("train.py");
        let ed = [path.clone()];
        let files = BTreeMap::from([(path.clone(), original.clone())]);

        let parsed = parse(&answer(&forward)).unwrap();
        prop_assert_eq!(parsed.edits.len(), blocks.len());
        let changed = apply(&files, &parsed.edits, &ed).unwrap();
        prop_assert_ne!(&changed[&path], &original);
        if original.contains("\r\n") {
            // New lines take the file's line endings, even where the last line has none.
            prop_assert!(!changed[&path].replace("\r\n", "").contains('\n'));
        }

        let inverse: Vec<(String, String)> =
            forward.iter().map(|(s, r)| (r.clone(), s.clone())).collect();
        let parsed = parse(&answer(&inverse)).unwrap();
        let restored = apply(&changed, &parsed.edits, &ed).unwrap();
        if crlf && !changed[&path].contains('\n') {
            // The forward edit left one line with no terminator: nothing in the file says
            // it used CRLF any more, so the inverse can only restore the text.
            prop_assert_eq!(
                restored[&path].replace("\r\n", "\n"),
                original.replace("\r\n", "\n")
            );
        } else {
            prop_assert_eq!(&restored[&path], &original);
        }
    }

    #[test]
    fn one_failing_block_applies_nothing(
        n in 2usize..30,
        cuts in prop::collection::vec(any::<usize>(), 2..8),
        bad_at in any::<prop::sample::Index>(),
    ) {
        let mut blocks: Vec<(String, String)> = ranges(n, &cuts)
            .into_iter()
            .map(|(a, b)| {
                let s: String = (a..b).map(|i| format!("line_{i} = {}\n", i * 7)).collect();
                (s, format!("changed_{a} = 1\n"))
            })
            .collect();
        prop_assume!(!blocks.is_empty());
        let k = bad_at.index(blocks.len());
        blocks[k].0 = "this line is not in the file\n".into();
        let original: String = (0..n).map(|i| format!("line_{i} = {}\n", i * 7)).collect();
        let path = PathBuf::from("train.py");
        let files = BTreeMap::from([(path.clone(), original)]);
        let parsed = parse(&answer(&blocks)).unwrap();
        match apply(&files, &parsed.edits, &[path]) {
            Err(ApplyError::Blocks(f)) => {
                prop_assert_eq!(f.len(), 1);
                prop_assert_eq!(f[0].index, k + 1);
            }
            other => prop_assert!(false, "expected one failed block, got {:?}", other),
        }
    }
}
