//! The proposal parser and the edit applier on arbitrary answers and files: no panics,
//! all-or-none, and nothing but the editable file ever changes.
#![no_main]

use autoresearch::agent::edits::{ApplyError, apply, parse};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::path::PathBuf;

fuzz_target!(|data: &[u8]| {
    // First NUL splits the input into the LLM's answer and train.py's contents.
    let (answer, file) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"LR = 0.1\nBATCH = 64\n"[..]),
    };
    let answer = String::from_utf8_lossy(answer);
    let Ok(parsed) = parse(&answer) else { return };
    let train = PathBuf::from("train.py");
    let prepare = PathBuf::from("prepare.py");
    let files = BTreeMap::from([
        (train.clone(), String::from_utf8_lossy(file).into_owned()),
        (prepare.clone(), "SEQ_LEN = 256\n".to_string()),
    ]);
    match apply(&files, &parsed.edits, std::slice::from_ref(&train)) {
        Ok(out) => {
            assert_eq!(out.get(&prepare), files.get(&prepare), "read-only changed");
            assert!(out.keys().all(|k| k == &train || k == &prepare), "new file");
            assert_ne!(out, files, "an Ok apply changes something");
        }
        Err(ApplyError::Blocks(failures)) => {
            for f in failures {
                let _ = f.report();
            }
        }
        Err(e) => {
            assert!(!e.to_string().contains('\n') || e.to_string().contains("block"));
        }
    }
});
