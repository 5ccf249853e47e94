//! The proposal format and applying edits: parsing, all-or-nothing, tolerant matching,
//! ambiguity, overlap, forbidden paths and no-ops.

use autoresearch::agent::edits::{ApplyError, Edit, FailureKind, apply, parse};
use autoresearch::experiment::Category;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const TRAIN: &str =
    "import torch\n\nLR = 0.04\nBATCH = 64\n\ndef step(x):\n    y = x * LR\n    return y\n";

fn files() -> BTreeMap<PathBuf, String> {
    BTreeMap::from([
        (PathBuf::from("train.py"), TRAIN.to_string()),
        (
            PathBuf::from("model.py"),
            "class M:\n    pass\n".to_string(),
        ),
    ])
}

fn editable() -> Vec<PathBuf> {
    vec!["train.py".into(), "model.py".into()]
}

fn replace(path: &str, search: &str, replace: &str) -> Edit {
    Edit::Replace {
        path: path.into(),
        search: search.into(),
        replace: replace.into(),
    }
}

#[test]
fn parses_a_full_answer_with_scratchpad_and_two_blocks() {
    let answer = "Some thinking first.\n\n**DESCRIPTION:** raise LR to 0.08\nCATEGORY: Hyperparameters\nSCRATCHPAD:\n- LR 0.04 was baseline\n- try 0.08 next\n\ntrain.py\n<<<<<<< SEARCH\nLR = 0.04\n=======\nLR = 0.08\n>>>>>>> REPLACE\n\nmodel.py\n```\n<<<<<<< WHOLE FILE\nclass M:\n    x = 1\n>>>>>>> END\n```\n";
    let p = parse(answer).unwrap();
    assert_eq!(p.description.as_deref(), Some("raise LR to 0.08"));
    assert_eq!(p.category, Some(Ok(Category::Hyperparameters)));
    assert_eq!(
        p.scratchpad.as_deref(),
        Some("- LR 0.04 was baseline\n- try 0.08 next")
    );
    assert_eq!(
        p.edits,
        vec![
            replace("train.py", "LR = 0.04\n", "LR = 0.08\n"),
            Edit::WholeFile {
                path: "model.py".into(),
                contents: "class M:\n    x = 1\n".into()
            }
        ]
    );
}

#[test]
fn scratchpad_ends_at_end_marker_and_unknown_category_is_kept_as_text() {
    let p = parse("SCRATCHPAD: first\nsecond\nEND SCRATCHPAD\nCATEGORY: vibes\n").unwrap();
    assert_eq!(p.scratchpad.as_deref(), Some("first\nsecond"));
    assert_eq!(p.category, Some(Err("vibes".to_string())));
    assert!(p.edits.is_empty());
}

#[test]
fn unterminated_block_and_missing_path_are_errors() {
    let e = parse("train.py\n<<<<<<< SEARCH\nLR = 1\n=======\nLR = 2\n").unwrap_err();
    assert!(e.to_string().contains(">>>>>>> REPLACE"), "{e}");
    let e = parse("<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n").unwrap_err();
    assert!(e.to_string().contains("no file path"), "{e}");
}

#[test]
fn applies_several_blocks_against_the_original() {
    let e = vec![
        replace("train.py", "BATCH = 64\n", "BATCH = 32\n"),
        replace("train.py", "LR = 0.04\n", "LR = 0.08\n"),
    ];
    let out = apply(&files(), &e, &editable()).unwrap();
    assert_eq!(
        out[Path::new("train.py")],
        TRAIN.replace("0.04", "0.08").replace("64", "32")
    );
    assert_eq!(out[Path::new("model.py")], "class M:\n    pass\n");
}

#[test]
fn whitespace_tolerant_match_shifts_the_replacement_indentation() {
    let e = vec![replace(
        "train.py",
        "  y = x * LR   \n  return y\n",
        "  y = x * LR * 2\n  return y\n",
    )];
    let out = apply(&files(), &e, &editable()).unwrap();
    assert!(out[Path::new("train.py")].contains("\n    y = x * LR * 2\n    return y\n"));
}

#[test]
fn one_failed_block_applies_nothing_and_reports_closest_lines() {
    let e = vec![
        replace("train.py", "LR = 0.04\n", "LR = 0.08\n"),
        replace("train.py", "BATCH = 65\n", "BATCH = 32\n"),
    ];
    let Err(ApplyError::Blocks(f)) = apply(&files(), &e, &editable()) else {
        panic!("expected a block failure");
    };
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].index, 2);
    assert_eq!(f[0].kind, FailureKind::NotFound);
    assert!(f[0].closest.contains(&(4, "BATCH = 64".to_string())));
    let report = f[0].report();
    assert!(report.contains("block 2 (train.py)"), "{report}");
    assert!(report.contains("    4 | BATCH = 64"), "{report}");
}

#[test]
fn ambiguous_search_is_an_error_naming_the_lines() {
    let f = BTreeMap::from([(
        PathBuf::from("train.py"),
        "x = 1\ny = 2\nx = 1\n".to_string(),
    )]);
    let Err(ApplyError::Blocks(fail)) = apply(
        &f,
        &[replace("train.py", "x = 1\n", "x = 3\n")],
        &["train.py".into()],
    ) else {
        panic!("expected ambiguity");
    };
    assert_eq!(fail[0].kind, FailureKind::Ambiguous(vec![1, 3]));
}

#[test]
fn overlapping_blocks_are_an_error() {
    let e = vec![
        replace("train.py", "LR = 0.04\nBATCH = 64\n", "LR = 1\nBATCH = 1\n"),
        replace("train.py", "BATCH = 64\n", "BATCH = 2\n"),
    ];
    assert_eq!(
        apply(&files(), &e, &editable()),
        Err(ApplyError::Overlap {
            path: "train.py".into(),
            first: 1,
            second: 2
        })
    );
}

#[test]
fn forbidden_paths_are_named_and_nothing_applies() {
    let e = vec![
        replace("train.py", "LR = 0.04\n", "LR = 0.08\n"),
        replace("prepare.py", "a\n", "b\n"),
        replace("../train.py", "a\n", "b\n"),
    ];
    assert_eq!(
        apply(&files(), &e, &editable()),
        Err(ApplyError::Forbidden {
            paths: vec!["../train.py".into(), "prepare.py".into()]
        })
    );
    let e = vec![replace("./train.py", "LR = 0.04\n", "LR = 0.08\n")];
    assert!(apply(&files(), &e, &editable()).is_ok());
}

#[test]
fn unchanged_result_is_a_noop() {
    let e = vec![replace("train.py", "LR = 0.04\n", "LR = 0.04\n")];
    assert_eq!(apply(&files(), &e, &editable()), Err(ApplyError::NoOp));
}

#[test]
fn deletion_and_last_line_without_newline() {
    let f = BTreeMap::from([(PathBuf::from("train.py"), "a\nb\nc".to_string())]);
    let ed = ["train.py".into()];
    let out = apply(&f, &[replace("train.py", "c\n", "d\n")], &ed).unwrap();
    assert_eq!(out[Path::new("train.py")], "a\nb\nd");
    let out = apply(&f, &[replace("train.py", "b\n", "")], &ed).unwrap();
    assert_eq!(out[Path::new("train.py")], "a\nc");
}

#[test]
fn missing_file_needs_whole_file() {
    let ed = ["new.py".into()];
    let Err(ApplyError::Blocks(f)) = apply(&files(), &[replace("new.py", "a\n", "b\n")], &ed)
    else {
        panic!("expected failure");
    };
    assert_eq!(f[0].kind, FailureKind::MissingFile);
    let whole = Edit::WholeFile {
        path: "new.py".into(),
        contents: "x = 1\n".into(),
    };
    let out = apply(&files(), &[whole], &ed).unwrap();
    assert_eq!(out[Path::new("new.py")], "x = 1\n");
}

#[test]
fn crlf_file_keeps_its_line_endings_under_a_tolerant_match() {
    let f = BTreeMap::from([(
        PathBuf::from("train.py"),
        "def f():\r\n    x = 1  \r\n    return x\r\n".to_string(),
    )]);
    let e = vec![replace(
        "train.py",
        "x = 1\nreturn x\n",
        "x = 2\nreturn x\n",
    )];
    let out = apply(&f, &e, &["train.py".into()]).unwrap();
    assert_eq!(
        out[Path::new("train.py")],
        "def f():\r\n    x = 2\r\n    return x\r\n"
    );
}

#[test]
fn field_takes_the_last_keyed_line() {
    let out = "DESCRIPTION: draft\nworking...\n**DESCRIPTION:** final one\n";
    assert_eq!(
        autoresearch::agent::edits::field(out, "DESCRIPTION").as_deref(),
        Some("final one")
    );
}
