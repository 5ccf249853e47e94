//! results.tsv files from the wild: every variant the issue names, with the skipped line
//! numbers pinned.

use autoresearch::experiment::Status;
use autoresearch::store::import::{ImportError, parse_results, read_results};
use std::path::Path;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(Path::new("tests/fixtures/report").join(name)).unwrap()
}

fn skipped_lines(text: &str) -> Vec<usize> {
    parse_results(text)
        .skipped
        .iter()
        .map(|(l, _)| *l)
        .collect()
}

#[test]
fn plain_karpathy_file() {
    let imp = parse_results(&fixture("karpathy_plain.tsv"));
    assert_eq!(imp.metric_name, "val_bpb");
    assert_eq!(imp.rows.len(), 6);
    assert!(imp.skipped.is_empty(), "{:?}", imp.skipped);
    let crash = &imp.rows[3];
    assert_eq!(
        (crash.status, crash.metric, crash.memory_gb),
        (Status::Crash, None, None)
    );
    assert_eq!(crash.line, 5);
    assert_eq!(imp.rows[4].description, "MATRIX_LR 0.04 → 0.06");
    assert_eq!(imp.rows[0].memory_gb, Some(44.0));
}

#[test]
fn extra_columns_capitalised_statuses_crlf_no_final_newline() {
    let imp = parse_results(&fixture("extra_columns_crlf.tsv"));
    assert!(imp.skipped.is_empty(), "{:?}", imp.skipped);
    let statuses: Vec<Status> = imp.rows.iter().map(|r| r.status).collect();
    use Status::*;
    assert_eq!(statuses, vec![Keep, Keep, Discard, Crash, Keep]);
    assert_eq!(
        imp.rows[1].extra.get("mfu").map(String::as_str),
        Some("41.0")
    );
    assert_eq!(
        imp.rows[1].extra.get("tok_per_sec").map(String::as_str),
        Some("509000")
    );
    // No carriage return leaks into the last column.
    assert_eq!(imp.rows[4].description, "muon momentum 0.95 → 0.97");
    assert_eq!(imp.rows[3].metric, None);

    let recs = imp.to_records();
    assert_eq!(recs[0].iteration, 0);
    assert_eq!(recs[2].parent, "2222222");
    assert_eq!(recs[1].metrics.get("mfu"), Some(&41.0));
    assert_eq!(recs[1].metrics.get("val_bpb"), Some(&1.0088));
}

#[test]
fn notes_second_table_and_broken_lines_are_skipped_with_line_numbers() {
    let text = fixture("notes_and_broken.tsv");
    let imp = parse_results(&text);
    let rows: Vec<usize> = imp.rows.iter().map(|r| r.line).collect();
    assert_eq!(rows, vec![3, 7, 10]);
    assert_eq!(skipped_lines(&text), vec![4, 5, 6, 9, 12, 14, 15, 16]);
    let why = |line: usize| {
        imp.skipped
            .iter()
            .find(|(l, _)| *l == line)
            .unwrap()
            .1
            .clone()
    };
    assert!(why(4).contains("found 2"), "{}", why(4));
    assert!(why(5).contains("unknown status `kept it`"), "{}", why(5));
    assert!(
        why(6).contains("`abc` is not a finite number"),
        "{}",
        why(6)
    );
    assert!(why(9).contains("no val_bpb value"), "{}", why(9));
    assert_eq!(why(14), "repeated header");
    assert_eq!(imp.rows[1].description, "more heads\twith a tab inside");
}

#[test]
fn metric_column_found_when_not_second() {
    let text = "status\tcommit\tmemory_gb\tloss\tdescription\nkeep\tabc1234\t10.0\t2.5\tbaseline\n";
    let imp = parse_results(text);
    assert_eq!(imp.metric_name, "loss");
    assert_eq!(imp.rows[0].metric, Some(2.5));
    assert_eq!(imp.rows[0].commit, "abc1234");
}

#[test]
fn headerless_file_reads_as_karpathy_columns() {
    let text = "abc1234\t0.99\t40.0\tkeep\tbaseline\nbcd2345\t0.98\t40.0\tkeep\tmore";
    let imp = parse_results(text);
    assert_eq!(imp.rows.len(), 2);
    assert!(imp.skipped.is_empty());
}

#[test]
fn read_results_reports_missing_files_and_empty_tables() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.tsv");
    let err = read_results(&missing).unwrap_err();
    assert!(matches!(err, ImportError::Read { .. }));
    assert!(err.to_string().contains("nope.tsv"));

    let empty = dir.path().join("empty.tsv");
    std::fs::write(
        &empty,
        "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n\nnotes only\n",
    )
    .unwrap();
    let err = read_results(&empty).unwrap_err();
    assert!(err.to_string().contains("no experiment rows"), "{err}");

    let ok = read_results(Path::new("tests/fixtures/report/karpathy_plain.tsv")).unwrap();
    assert_eq!(ok.rows.len(), 6);
}

#[test]
fn metric_in_the_fourth_column_is_found_by_name_with_dates_and_budget() {
    let imp = parse_results(&fixture("metric_fourth_column.tsv"));
    assert!(imp.skipped.is_empty(), "{:?}", imp.skipped);
    assert_eq!(
        (imp.metric_name.as_str(), imp.metric_column),
        ("val_bpb", 4)
    );
    assert_eq!(imp.rows.len(), 6);
    assert_eq!(imp.rows[1].metric, Some(0.9932));
    assert_eq!(imp.rows[0].date.as_deref(), Some("2026-03-05 01:00:00"));
    assert_eq!(imp.budget, Some(std::time::Duration::from_secs(300)));
    // The zero-valued "discard" is a failed run, with the reason said.
    assert_eq!(
        (imp.rows[3].status, imp.rows[3].metric),
        (Status::Crash, None)
    );
    assert!(
        imp.rows[3]
            .note
            .as_deref()
            .unwrap()
            .contains("read as a failed run")
    );
}

#[test]
fn metric_chosen_by_name_and_a_missing_one_names_the_columns() {
    use autoresearch::store::import::{ImportOptions, parse_results_with, read_results_with};
    let text = fixture("extra_columns_crlf.tsv");
    let opts = ImportOptions {
        metric: Some("mfu"),
        metric_hint: None,
    };
    let imp = parse_results_with(&text, &opts);
    assert_eq!(imp.metric_name, "mfu");
    assert_eq!(imp.rows[1].metric, Some(41.0));
    let opts = ImportOptions {
        metric: Some("val_loss"),
        metric_hint: None,
    };
    let err = read_results_with(
        Path::new("tests/fixtures/report/extra_columns_crlf.tsv"),
        &opts,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("no column `val_loss`") && err.contains("`tok_per_sec`"),
        "{err}"
    );
}

#[test]
fn zero_valued_failures_are_crashes_never_better_than_the_best() {
    let imp = parse_results(&fixture("zero_failures.tsv"));
    let statuses: Vec<Status> = imp.rows.iter().map(|r| r.status).collect();
    use Status::*;
    assert_eq!(statuses, vec![Keep, Crash, Discard, Crash, Keep, Discard]);
    assert!(imp.rows.iter().all(|r| r.metric != Some(0.0)));
}

#[test]
fn other_statuses_are_understood_and_unknown_ones_named() {
    let imp = parse_results(&fixture("other_statuses.tsv"));
    let statuses: Vec<Status> = imp.rows.iter().map(|r| r.status).collect();
    use Status::*;
    assert_eq!(statuses, vec![Keep, Crash, Keep, Discard, Crash]);
    assert_eq!(imp.skipped.len(), 1, "{:?}", imp.skipped);
    assert_eq!(imp.skipped[0].0, 7);
    assert!(imp.skipped[0].1.contains("unknown status `pending`"));
}

#[test]
fn a_second_table_appended_is_named_as_one() {
    let imp = parse_results(&fixture("second_table.tsv"));
    assert_eq!(imp.rows.len(), 3);
    let lines: Vec<usize> = imp.skipped.iter().map(|s| s.0).collect();
    assert_eq!(lines, vec![6, 7, 8]);
    assert!(
        imp.skipped[0]
            .1
            .starts_with("another table starts here (category, kept, tried"),
        "{:?}",
        imp.skipped
    );
    assert!(
        imp.skipped[1].1.contains("that starts at line 6"),
        "{:?}",
        imp.skipped
    );
}

#[test]
fn no_rows_says_why_each_line_was_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("r.tsv");
    std::fs::write(
        &f,
        "commit\tdate\tstatus\nabc\tmonday\tkept it\nbcd\ttuesday\tmaybe\n",
    )
    .unwrap();
    let err = read_results(&f).unwrap_err().to_string();
    assert!(
        err.contains("2 lines skipped: line 2: ") && err.contains("--metric"),
        "{err}"
    );
}
