//! Property tests: parsing and applying never panic, and an edit followed by its inverse
//! restores the file.

use autoresearch::agent::edits::{Edit, apply, parse};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn any_text() -> impl Strategy<Value = String> {
    // Bias towards the format's own markers so the parser's edge cases get exercised.
    let piece = prop_oneof![
        Just("<<<<<<< SEARCH\n".to_string()),
        Just("=======\n".to_string()),
        Just(">>>>>>> REPLACE\n".to_string()),
        Just("<<<<<<< WHOLE FILE\n".to_string()),
        Just(">>>>>>> END\n".to_string()),
        Just("train.py\n".to_string()),
        Just("```\n".to_string()),
        Just("SCRATCHPAD:\n".to_string()),
        Just("DESCRIPTION: d\n".to_string()),
        Just("\r\n".to_string()),
        "[ -~\n\té]{0,12}",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn parse_and_apply_never_panic(answer in any_text(), file in any_text()) {
        if let Ok(p) = parse(&answer) {
            let files = BTreeMap::from([(PathBuf::from("train.py"), file)]);
            let _ = apply(&files, &p.edits, &["train.py".into()]);
        }
    }

    #[test]
    fn edit_then_inverse_restores(
        n in 1usize..30,
        start in 0usize..30,
        len in 1usize..5,
        new_lines in 1usize..4,
        trailing_newline in any::<bool>(),
        indent in 0usize..3,
    ) {
        let start = start % n;
        let len = len.min(n - start);
        let lines: Vec<String> = (0..n).map(|i| format!("{}line_{i} = {}", "  ".repeat(indent), i * 7)).collect();
        let mut original = lines.join("\n");
        if trailing_newline {
            original.push('\n');
        }
        let search: String = lines[start..start + len].iter().map(|l| format!("{l}\n")).collect();
        let replace: String = (0..new_lines).map(|k| format!("new_{k} = {start}\n")).collect();
        let path = PathBuf::from("train.py");
        let files = BTreeMap::from([(path.clone(), original.clone())]);
        let ed = [path.clone()];
        let forward = Edit::Replace { path: path.clone(), search: search.clone(), replace: replace.clone() };
        let changed = apply(&files, &[forward], &ed).unwrap();
        prop_assert_ne!(&changed[&path], &original);
        let inverse = Edit::Replace { path: path.clone(), search: replace, replace: search };
        let restored = apply(&changed, &[inverse], &ed).unwrap();
        prop_assert_eq!(&restored[&path], &original);
    }
}
