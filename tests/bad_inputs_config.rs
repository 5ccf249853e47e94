//! Bad autoresearch.toml and bad command lines, black-box through the binary: each is
//! refused before anything runs, with one line naming where and the fix, exit code 2, and
//! the repository left exactly as it was. Rows of docs/bad-inputs.md.

mod bad_inputs_support;

use bad_inputs_support::*;

/// Writes `config`, runs the binary, checks exit 2, one line, nothing touched.
fn refused(config: &str, parts: &[&str]) -> Refusal {
    let dir = fixture(Some(config));
    let before = snapshot(dir.path());
    let r = refuse(dir.path(), &[]);
    assert_eq!(r.code, CONFIG, "{r:?}");
    says(&r, parts);
    untouched(dir.path(), &before);
    r
}

#[test]
fn malformed_toml_names_line_and_column() {
    let text = config_with("", "").replace("budget = \"1s\"", "budget = \"1s");
    let r = refused(
        &text,
        &["autoresearch.toml:4:", "invalid TOML", "fix the syntax"],
    );
    assert!(!r.message.contains('\n'));
}

#[test]
fn a_table_header_never_closed() {
    let text = config_with("", "").replace("[metric]", "[metric");
    refused(&text, &["autoresearch.toml:8:", "invalid TOML"]);
}

#[test]
fn unknown_key_suggests_the_nearest() {
    let text = config_with("", "").replace("budget =", "budgt =");
    refused(
        &text,
        &[
            "autoresearch.toml:4:1",
            "unknown key `budgt`",
            "did you mean `budget`?",
        ],
    );
}

#[test]
fn unknown_key_in_a_table_suggests_within_it() {
    refused(
        &config_with("", "memroy_key = \"mem\"\n"),
        &[
            "unknown key `memroy_key` in [metric]",
            "did you mean `memory_key`?",
        ],
    );
}

#[test]
fn table_key_at_the_top_level_suggests_the_dotted_spelling() {
    let text = format!("seed = 3\n{}", config_with("", ""));
    refused(
        &text,
        &[
            "autoresearch.toml:1:1",
            "unknown key `seed`",
            "`agent.seed`",
        ],
    );
}

#[test]
fn unrelated_unknown_key_lists_the_valid_ones() {
    let text = format!("zzzzzz = 1\n{}", config_with("", ""));
    refused(
        &text,
        &["unknown key `zzzzzz`", "valid keys: editable, read_only"],
    );
}

#[test]
fn wrong_type_for_budget() {
    let text = config_with("", "").replace("budget = \"1s\"", "budget = true");
    refused(
        &text,
        &[
            "autoresearch.toml:4:10",
            "`budget` must be a duration",
            "not a boolean",
        ],
    );
}

#[test]
fn wrong_type_for_editable() {
    let text = config_with("", "").replace("[\"train.py\"]", "\"train.py\"");
    refused(
        &text,
        &["`editable` must be a list of paths", "not a string"],
    );
}

#[test]
fn metric_written_as_a_string_not_a_table() {
    let text = config_with("", "")
        .replace(
            "[metric]\nname = \"val_bpb\"\ndirection = \"minimize\"\n",
            "",
        )
        .replace("tag = \"t\"", "tag = \"t\"\nmetric = \"val_bpb\"");
    refused(&text, &["`metric` must be a table, not a string"]);
}

#[test]
fn zero_budget() {
    let text = config_with("", "").replace("budget = \"1s\"", "budget = 0");
    refused(&text, &["`budget` is zero", "a run needs a positive time"]);
}

#[test]
fn budget_under_a_second() {
    let text = config_with("", "").replace("budget = \"1s\"", "budget = \"400ms\"");
    refused(
        &text,
        &[
            "`budget` is 400ms",
            "at least one second",
            "budget = \"1s\"",
        ],
    );
}

#[test]
fn negative_budget() {
    let text = config_with("", "").replace("budget = \"1s\"", "budget = \"-5m\"");
    refused(
        &text,
        &["`budget` is negative", "a run needs a positive time"],
    );
}

#[test]
fn budget_that_is_not_a_duration() {
    let text = config_with("", "").replace("budget = \"1s\"", "budget = \"5 parsecs\"");
    refused(&text, &["`5 parsecs` is not a duration", "\"1h30m\""]);
}

#[test]
fn timeout_below_budget() {
    let text = config_with("", "")
        .replace("budget = \"1s\"", "budget = \"5m\"")
        .replace("timeout = \"20s\"", "timeout = \"1m\"");
    refused(
        &text,
        &[
            "autoresearch.toml:5:",
            "`timeout` (1m) must be greater than `budget` (5m)",
            "raise it",
        ],
    );
}

#[test]
fn timeout_equal_to_budget() {
    let text = config_with("", "").replace("timeout = \"20s\"", "timeout = \"1s\"");
    refused(
        &text,
        &["must be greater than `budget`", "remove it for the default"],
    );
}

#[test]
fn invalid_regex() {
    refused(
        &config_with("", "regex = 'val_bpb=([0-9.'\n"),
        &[
            "autoresearch.toml:11:",
            "`metric.regex` does not compile",
            "fix the pattern",
        ],
    );
}

#[test]
fn regex_without_a_capture_group() {
    refused(
        &config_with("", "regex = 'val_bpb=[0-9.]+'\n"),
        &["has no capture group", "wrap it in parentheses"],
    );
}

#[test]
fn missing_editable_file() {
    let text = config_with("", "").replace("[\"train.py\"]", "[\"model.py\"]");
    refused(
        &text,
        &[
            "autoresearch.toml:1:",
            "editable file `model.py` does not exist",
            "create it or fix the path",
        ],
    );
}

#[test]
fn missing_read_only_file() {
    let text = config_with("", "").replace("[\"prepare.py\"]", "[\"data.py\"]");
    refused(
        &text,
        &["read-only file `data.py` does not exist", "fix the path"],
    );
}

#[test]
fn editable_and_read_only_overlap() {
    let text = config_with("", "").replace("[\"prepare.py\"]", "[\"prepare.py\", \"train.py\"]");
    refused(
        &text,
        &[
            "`train.py` is editable but also listed in `read_only`",
            "remove it from one list",
        ],
    );
}

#[test]
fn a_dependency_file_cannot_be_editable() {
    let dir = fixture(None);
    std::fs::write(dir.path().join("requirements.txt"), "torch\n").unwrap();
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-qm", "deps"]);
    let text =
        config_with("", "").replace("[\"train.py\"]", "[\"train.py\", \"requirements.txt\"]");
    std::fs::write(dir.path().join("autoresearch.toml"), text).unwrap();
    let before = snapshot(dir.path());
    let r = refuse(dir.path(), &[]);
    assert_eq!(r.code, CONFIG);
    says(
        &r,
        &["`requirements.txt` is editable but it is a dependency file, always read-only"],
    );
    untouched(dir.path(), &before);
}

#[test]
fn editable_path_outside_the_repository() {
    let text = config_with("", "").replace("[\"train.py\"]", "[\"../train.py\"]");
    refused(
        &text,
        &[
            "`../train.py`, which is not a path inside the repository",
            "use a path relative",
        ],
    );
}

#[test]
fn absolute_results_path() {
    refused(
        &config_with("results = \"/tmp/results.tsv\"", ""),
        &[
            "`results` has `/tmp/results.tsv`",
            "not a path inside the repository",
        ],
    );
}

#[test]
fn empty_editable_list() {
    let text = config_with("", "").replace("[\"train.py\"]", "[]");
    refused(
        &text,
        &[
            "`editable` is empty",
            "list the file(s) the agent may change",
        ],
    );
}

#[test]
fn empty_command() {
    let text = config_with("", "").replace("\"python3 train.py\"", "\"  \"");
    refused(&text, &["`command` is empty", "set the training command"]);
}

#[test]
fn missing_budget() {
    let text = config_with("", "").replace("budget = \"1s\"\n", "");
    refused(
        &text,
        &[
            "`budget` is required",
            "budget = \"5m\"",
            "never assumes it",
        ],
    );
}

#[test]
fn missing_metric_table() {
    let text = config_with("", "").replace(
        "[metric]\nname = \"val_bpb\"\ndirection = \"minimize\"\n",
        "",
    );
    refused(&text, &["`metric` is required", "add a [metric] table"]);
}

#[test]
fn missing_metric_name() {
    let text = config_with("", "").replace("name = \"val_bpb\"\n", "");
    refused(&text, &["`metric.name` is required", "name = \"val_bpb\""]);
}

#[test]
fn missing_metric_direction() {
    let text = config_with("", "").replace("direction = \"minimize\"\n", "");
    refused(
        &text,
        &[
            "`metric.direction` is required",
            "\"minimize\" if lower is better",
        ],
    );
}

#[test]
fn unknown_direction() {
    let text = config_with("", "").replace("\"minimize\"", "\"sideways\"");
    refused(
        &text,
        &["`metric.direction` is `sideways`", "use \"minimize\""],
    );
}

#[test]
fn zero_max_iterations() {
    refused(
        &config_with("max_iterations = 0", ""),
        &["`max_iterations` is 0", "use 1 or more"],
    );
}

#[test]
fn tag_that_is_not_a_branch_name() {
    let text = config_with("", "").replace("tag = \"t\"", "tag = \"my run\"");
    refused(
        &text,
        &["`tag` `my run` contains ' '", "use letters, digits"],
    );
}

#[test]
fn unknown_agent_backend() {
    refused(
        &format!("{}\n[agent]\nbackend = \"gpt\"\n", config_with("", "")),
        &[
            "`agent.backend` is `gpt`",
            "use one of search, anthropic, openai, command",
        ],
    );
}

#[test]
fn command_backend_without_a_command() {
    refused(
        &format!("{}\n[agent]\nbackend = \"command\"\n", config_with("", "")),
        &["`agent.command` is required", "claude -p"],
    );
}

#[test]
fn missing_config_file() {
    let dir = fixture(None);
    let before = snapshot(dir.path());
    let r = refuse(dir.path(), &[]);
    assert_eq!(r.code, CONFIG, "{r:?}");
    says(&r, &["autoresearch.toml", "run `autoresearch init`"]);
    untouched(dir.path(), &before);
    assert!(!dir.path().join(".autoresearch").exists());
}

#[test]
fn config_path_given_but_missing() {
    let dir = fixture(Some(&config_with("", "")));
    let before = snapshot(dir.path());
    let r = refuse(dir.path(), &["--config", "nope.toml"]);
    assert_eq!(r.code, CONFIG, "{r:?}");
    says(&r, &["cannot read nope.toml", "pass the right path"]);
    untouched(dir.path(), &before);
}

#[test]
fn bad_duration_on_the_command_line() {
    let dir = fixture(Some(&config_with("", "")));
    let before = snapshot(dir.path());
    let out = bad_inputs_support::cli(dir.path(), &["--for", "5 parsecs"]);
    assert_eq!(out.0, CONFIG, "{out:?}");
    assert!(
        out.1
            .contains("invalid value '5 parsecs' for '--for <DURATION>'"),
        "{out:?}"
    );
    untouched(dir.path(), &before);
}

#[test]
fn a_value_with_a_newline_is_escaped_in_the_message() {
    let text = config_with("", "").replace("\"minimize\"", "\"sideways\\nx\"");
    refused(
        &text,
        &["`metric.direction` is `sideways\\nx`", "use \"minimize\""],
    );
}
