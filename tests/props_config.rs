//! Properties of the config loader: on any TOML-ish text beside a real train.py and
//! prepare.py it never panics, and every error it returns is a single line (what the user
//! reads); a valid config stays valid with any positive budget and a larger timeout.

use autoresearch::config::load_str;
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

/// One fixture repo for all cases: the loader only reads it.
static REPO: LazyLock<tempfile::TempDir> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.py"), "LR = 0.1\n").unwrap();
    std::fs::write(dir.path().join("prepare.py"), "SEQ = 1\n").unwrap();
    std::fs::write(dir.path().join("program.md"), "# go\n").unwrap();
    dir
});

fn config_path() -> PathBuf {
    REPO.path().join("autoresearch.toml")
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "editable",
            "read_only",
            "command",
            "budget",
            "timeout",
            "max_iterations",
            "scope",
            "tag",
            "results",
            "program",
            "report_every",
            "metric",
            "agent",
            "decision",
            "name",
            "direction",
            "regex",
            "memory_key",
            "backend",
            "model",
            "seed",
            "mode",
            "z",
            "min_delta",
            "metric.name",
            "metric.direction",
            "agent.backend",
        ])
        .prop_map(String::from),
        "[a-z_]{1,10}",
        // Quoted keys may hold anything, newlines included.
        any::<String>().prop_map(|s| format!("{s:?}")),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "\"5m\"",
            "\"0\"",
            "-1",
            "0",
            "300",
            "1.5",
            "true",
            "[\"train.py\"]",
            "[\"prepare.py\", \"train.py\"]",
            "[\"../x\"]",
            "[]",
            "\"minimize\"",
            "\"max\"",
            "\"val_bpb\"",
            "'val_bpb=([0-9.]+)'",
            "'(['",
            "'x'",
            "{ name = \"v\" }",
            "\"search\"",
            "\"command\"",
            "1979-05-27T07:32:00Z",
            "nan",
            "inf",
            "9223372036854775807",
            "\"1h30m\"",
            "\"5 parsecs\"",
            "\"\"",
            "\"a\\nb\"",
        ])
        .prop_map(String::from),
        any::<String>().prop_map(|s| format!("{s:?}")),
        any::<i64>().prop_map(|n| n.to_string()),
        "[ -~]{0,12}",
    ]
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (key(), value()).prop_map(|(k, v)| format!("{k} = {v}")),
        1 => prop::sample::select(vec!["[metric]", "[agent]", "[decision]", "[[metric]]", "[x]", "[", "#", ""])
            .prop_map(String::from),
        1 => "[ -~]{0,30}",
    ]
}

/// (table, key) of every setting whose value is a string or a list of strings.
const STRING_SLOTS: &[(&str, &str)] = &[
    ("", "editable"),
    ("", "read_only"),
    ("", "command"),
    ("", "budget"),
    ("", "scope"),
    ("", "tag"),
    ("", "results"),
    ("", "program"),
    ("", "\"quoted\\nkey\""),
    ("metric", "name"),
    ("metric", "direction"),
    ("metric", "regex"),
    ("agent", "backend"),
    ("agent", "timeout"),
    ("agent", "\"bad\\tkey\""),
];

/// A TOML basic string holding `s` exactly (control characters as \uXXXX escapes).
fn toml_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn valid_with(budget_s: u64, extra_s: u64) -> String {
    format!(
        "editable = [\"train.py\"]\nbudget = {budget_s}\ntimeout = {}\n[metric]\nname = \"val_bpb\"\ndirection = \"minimize\"\n",
        budget_s + extra_s
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn never_panics_and_errors_are_one_line(lines in prop::collection::vec(line(), 0..16)) {
        let text = lines.join("\n");
        if let Err(e) = load_str(&text, &config_path()) {
            let m = e.to_string();
            prop_assert!(!m.contains('\n') && !m.contains('\r'), "multi-line error: {m:?}\nfrom:\n{text}");
        }
    }

    #[test]
    fn one_bad_line_in_a_valid_config_gives_a_one_line_error(
        top in prop::collection::vec((key(), value()), 0..3),
        metric in prop::collection::vec((key(), value()), 0..2),
        table in prop::sample::select(vec!["agent", "decision"]),
        rest in prop::collection::vec((key(), value()), 0..3),
    ) {
        // Keys the valid part already sets would only be duplicate-key syntax errors.
        let fresh = |k: &String| !["editable", "budget", "timeout", "name", "direction"].contains(&k.as_str());
        let kv = |v: &[(String, String)]| -> String {
            v.iter().filter(|(k, _)| fresh(k)).map(|(k, v)| format!("{k} = {v}\n")).collect()
        };
        let text = format!(
            "{}editable = [\"train.py\"]\nbudget = 60\ntimeout = 200\n[metric]\nname = \"val_bpb\"\ndirection = \"minimize\"\n{}[{table}]\n{}",
            kv(&top), kv(&metric), kv(&rest)
        );
        if let Err(e) = load_str(&text, &config_path()) {
            let m = e.to_string();
            prop_assert!(!m.contains('\n') && !m.contains('\r'), "multi-line error: {m:?}\nfrom:\n{text}");
        }
    }

    #[test]
    fn control_characters_in_any_string_value_stay_escaped(
        (table, key) in prop::sample::select(STRING_SLOTS.to_vec()),
        raw in "[a-z./ \\x00-\\x1f\\x7f\u{85}\u{2028}]{0,8}",
        as_list in any::<bool>(),
    ) {
        let v = if as_list { format!("[{}]", toml_quote(&raw)) } else { toml_quote(&raw) };
        // The valid config, with this one setting replaced or added in its table.
        let mut tables: Vec<(&str, Vec<(String, String)>)> = vec![
            ("", vec![("budget".into(), "60".into())]),
            ("metric", vec![("name".into(), "\"val_bpb\"".into()), ("direction".into(), "\"minimize\"".into())]),
            ("agent", vec![]),
        ];
        let slot = tables.iter_mut().find(|(t, _)| *t == table).unwrap();
        slot.1.retain(|(k, _)| k != key);
        slot.1.push((key.to_string(), v));
        let text: String = tables
            .iter()
            .map(|(t, kvs)| {
                let head = if t.is_empty() { String::new() } else { format!("[{t}]\n") };
                let body: String = kvs.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
                head + &body
            })
            .collect();
        if let Err(e) = load_str(&text, &config_path()) {
            let m = e.to_string();
            prop_assert!(!m.chars().any(char::is_control), "control character in: {m:?}\nfrom:\n{text}");
        }
    }

    #[test]
    fn never_panics_on_any_text(text in any::<String>()) {
        if let Err(e) = load_str(&text, Path::new("/nonexistent/autoresearch.toml")) {
            prop_assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn any_positive_budget_with_a_larger_timeout_loads(budget in 1u64..1_000_000, extra in 1u64..1_000_000) {
        let c = load_str(&valid_with(budget, extra), &config_path()).unwrap();
        prop_assert_eq!(c.budget.as_secs(), budget);
        prop_assert_eq!(c.timeout.as_secs(), budget + extra);
    }
}
