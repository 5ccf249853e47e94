//! The config loader on arbitrary text beside a real train.py and prepare.py: no panics,
//! and every error is a single line (what the user sees).
#![no_main]

use autoresearch::config::load_str;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::LazyLock;

static CONFIG: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("autoresearch-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("train.py"), "LR = 0.1\n").unwrap();
    std::fs::write(dir.join("prepare.py"), "SEQ = 1\n").unwrap();
    dir.join("autoresearch.toml")
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = load_str(text, &CONFIG) {
        let m = e.to_string();
        assert!(!m.contains('\n'), "multi-line error: {m:?}");
    }
});
