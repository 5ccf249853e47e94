//! The tolerant results.tsv importer on arbitrary text: no panics, every non-blank line is
//! either a row or skipped with a reason, and the rows turn into records.
#![no_main]

use autoresearch::store::import::parse_results;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let imported = parse_results(&text);
    let nonblank = text.split('\n').filter(|l| !l.trim().is_empty()).count();
    assert!(imported.rows.len() + imported.skipped.len() <= nonblank);
    let records = imported.to_records();
    assert_eq!(records.len(), imported.rows.len());
});
