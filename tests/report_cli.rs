//! Black-box tests of `autoresearch status`, `summary` and `plot` on a real repository and
//! journal, on a results.tsv from elsewhere, and while another connection writes.

#[path = "fixtures/report_cli/session.rs"]
mod session;

use autoresearch::experiment::Status;
use session::*;
use std::path::Path;

fn run(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = bin().args(args).arg("--repo").arg(dir).output().unwrap();
    let (o, e) = out_text(&out);
    (out.status.success(), o, e)
}

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (w, h)
}

fn assert_svg(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(text.contains("Experiments"), "the title is in the SVG");
}

#[test]
fn status_prints_and_writes_the_progress_report_of_a_finished_session() {
    let s = build(&night());
    let (ok, out, err) = run(s.path(), &["status"]);
    assert!(ok, "{err}");
    let best = &s.kept[1][..7];
    assert!(
        out.contains(&format!(
            "**Best so far:** 1.000000 at iteration 2 (commit {best})"
        )),
        "{out}"
    );
    assert!(out.contains("**Baseline:** 1.090000"), "{out}");
    assert!(
        out.contains("-0.090000 (-8.26%), better"),
        "delta vs baseline: {out}"
    );
    assert!(
        out.contains("**Experiments:** 4 / 20 (2 kept, 1 discarded, 1 crashed)"),
        "max from the config: {out}"
    );
    // Finished: the clock stopped at the last experiment (01:00 → 01:25), not now.
    assert!(out.contains("**Elapsed:** 25m 00s"), "{out}");
    assert!(out.contains("| 4 | "), "{out}");
    assert!(out.contains("| crash | LR 0.4 → 1.6 |"), "{out}");
    assert!(
        out.contains("**hyperparameters** (iteration 4): LR 0.4 → 1.6"),
        "{out}"
    );
    assert!(
        out.contains("σ = 0.002000 pooled over 3 repeated runs"),
        "{out}"
    );
    let written = std::fs::read_to_string(s.path().join(".autoresearch/progress.md")).unwrap();
    assert_eq!(written, out);

    // --tag picks the same session, with or without the branch prefix.
    for tag in ["t", "autoresearch/t"] {
        let (ok, again, err) = run(s.path(), &["status", "--tag", tag]);
        assert!(ok, "{err}");
        assert_eq!(again, out);
    }
    let (ok, _, err) = run(s.path(), &["status", "--tag", "nope"]);
    assert!(!ok);
    assert!(err.contains("no session tagged `nope`"), "{err}");
}

#[test]
fn status_without_a_journal_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(dir.path(), &["status"]);
    assert!(!ok);
    assert!(
        err.contains("no session journal") && err.contains("autoresearch run"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn summary_writes_markdown_and_both_charts_next_to_it() {
    let s = build(&night());
    let (ok, out, err) = run(s.path(), &["summary"]);
    assert!(ok, "{err}");
    assert!(out.contains("autoresearch-summary.md"), "{out}");
    let md = std::fs::read_to_string(s.path().join("autoresearch-summary.md")).unwrap();
    assert!(md.contains("- **Branch:** autoresearch/t"), "{md}");
    assert!(
        md.contains("2026-11-23T01:00:00Z → 2026-11-23T01:25:00Z"),
        "ended at the last experiment: {md}"
    );
    assert!(md.contains("- **Budget per run:** 5m 00s"), "{md}");
    assert!(
        md.contains("](progress.png)"),
        "the chart is embedded: {md}"
    );
    assert!(md.contains("## Recommended next steps"), "{md}");
    assert!(md.contains("LR 0.2 → 0.4"), "{md}");
    let png = std::fs::read(s.path().join("progress.png")).unwrap();
    assert_eq!(png_size(&png), (1600, 800));
    assert_svg(&s.path().join("progress.svg"));
}

#[test]
fn summary_of_a_running_session_says_so() {
    let s = build(&night());
    // A session holds the repository: the lock is what `status` and `summary` look at.
    let _lock =
        autoresearch::session::SessionLock::acquire(&s.path().join(".autoresearch")).unwrap();
    let (ok, _, err) = run(s.path(), &["summary", "--out", "reports/night.md"]);
    assert!(ok, "{err}");
    let md = std::fs::read_to_string(s.path().join("reports/night.md")).unwrap();
    assert!(md.contains("→ still running"), "{md}");
    assert!(s.path().join("reports/progress.png").exists());
    assert!(s.path().join("reports/progress.svg").exists());
}

#[test]
fn plot_writes_png_and_svg_where_asked() {
    let s = build(&night());
    let (ok, _, err) = run(s.path(), &["plot", "--out", "charts/night.png"]);
    assert!(ok, "{err}");
    let png = std::fs::read(s.path().join("charts/night.png")).unwrap();
    assert_eq!(png_size(&png), (1600, 800));
    assert_svg(&s.path().join("charts/night.svg"));
    let svg = std::fs::read_to_string(s.path().join("charts/night.svg")).unwrap();
    assert!(
        svg.contains("4 Experiments, 2 Kept Improvements"),
        "the title counts as the reports do: the baseline is not an experiment"
    );
}

#[test]
fn results_file_from_elsewhere_is_read_and_broken_lines_are_named() {
    // Not a git repository, no journal: the file alone.
    let dir = tempfile::tempdir().unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report_cli/karpathy_extra.tsv");
    let fixture = fixture.to_str().unwrap();
    let (ok, out, err) = run(dir.path(), &["status", "--results", fixture]);
    assert!(ok, "{err}");
    assert!(
        out.contains("**Best so far:** 0.987700 at iteration 4 (commit f6a7b8c)"),
        "{out}"
    );
    assert!(out.contains("**Baseline:** 0.997900"), "{out}");
    assert!(
        err.lines()
            .next()
            .unwrap()
            .starts_with("reading val_bpb from column 2 of "),
        "{err}"
    );
    let skipped: Vec<&str> = err.lines().filter(|l| l.starts_with("skipped")).collect();
    assert_eq!(skipped.len(), 3, "{err}");
    assert!(skipped[0].starts_with("skipped line 5: "), "{err}");
    assert!(skipped[1].starts_with("skipped line 7: "), "{err}");
    assert!(skipped[1].contains("not-a-number"), "{err}");
    assert!(skipped[2].starts_with("skipped line 10: "), "{err}");
    assert!(
        !dir.path().join(".autoresearch").exists(),
        "an imported file leaves no state behind"
    );

    let (ok, _, err) = run(dir.path(), &["summary", "--results", fixture]);
    assert!(ok, "{err}");
    let md = std::fs::read_to_string(dir.path().join("autoresearch-summary.md")).unwrap();
    assert!(
        md.contains("double model width (OOM)"),
        "the crash is listed: {md}"
    );
    assert!(dir.path().join("progress.png").exists());
    // The lines not read are in the summary too, with their reasons.
    let unread = md
        .split("## Lines not read")
        .nth(1)
        .expect("a section on unread lines");
    assert!(
        unread.contains("| 5 | ") && unread.contains("| 7 | ") && unread.contains("not-a-number"),
        "{unread}"
    );

    // Maximised metrics: the direction comes from the flag.
    let (ok, out, err) = run(
        dir.path(),
        &["status", "--results", fixture, "--direction", "maximize"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("higher is better"), "{out}");
}

#[test]
fn results_file_with_the_metric_in_its_fourth_column_and_failed_runs_as_zero() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/report/metric_fourth_column.tsv");
    let fixture = fixture.to_str().unwrap();
    let (ok, _, err) = run(dir.path(), &["summary", "--results", fixture]);
    assert!(ok, "{err}");
    assert!(err.contains("reading val_bpb from column 4"), "{err}");
    let md = std::fs::read_to_string(dir.path().join("autoresearch-summary.md")).unwrap();
    // What the file knows: its dates, its budget column, the time between them.
    assert!(
        md.contains("- **Dates:** 2026-03-05 01:00:00 → 2026-03-05 01:30:00"),
        "{md}"
    );
    assert!(md.contains("- **Budget per run:** 5m 00s"), "{md}");
    assert!(md.contains("- **Time elapsed:** 30m 00s"), "{md}");
    // The zero-valued discard is a crash, so never the best nor a near miss.
    assert!(
        md.contains("- **Experiments:** 5 (2 kept, 2 discarded, 1 crashed)"),
        "{md}"
    );
    assert!(md.contains("| Best | 0.990100 |"), "{md}");
    assert!(md.contains("read as a failed run"), "{md}");
    assert!(
        !md.contains("0.000000 (-"),
        "a zero is never shown as a gain: {md}"
    );

    // --metric picks another column; a wrong one names the columns there are.
    let (ok, out, err) = run(
        dir.path(),
        &["status", "--results", fixture, "--metric", "memory_gb"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("memory_gb"), "{out}");
    let (ok, _, err) = run(
        dir.path(),
        &["status", "--results", fixture, "--metric", "loss"],
    );
    assert!(!ok);
    assert!(
        err.contains("no column `loss`") && err.contains("`val_bpb`"),
        "{err}"
    );
}

#[test]
fn status_reads_while_another_connection_holds_a_write_transaction() {
    let s = build(&night());
    // A writer in the middle of a transaction, as a session finalising an experiment.
    let writer = rusqlite::Connection::open(&s.journal_path).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    writer
        .execute(
            "INSERT INTO experiments (session_id, iteration, attempt, parent, commit_sha, status,
             metric, metrics, memory_gb, description, category, proposer, reason, log_path,
             started_at, finished_at, duration_s, state_hash)
             VALUES (?1, 5, 1, 'p', 'c', 'keep', 0.5, '{}', NULL, 'uncommitted idea',
             'other', 'search', '', NULL, 't', NULL, NULL, 'h5')",
            [s.session_id],
        )
        .unwrap();
    let (ok, out, err) = run(s.path(), &["status"]);
    assert!(ok, "{err}");
    assert!(
        !out.contains("uncommitted idea"),
        "only committed rows: {out}"
    );
    assert!(out.contains("| crash | LR 0.4 → 1.6 |"), "{out}");
    writer.execute_batch("COMMIT").unwrap();
    let (ok, out, err) = run(s.path(), &["status"]);
    assert!(ok, "{err}");
    assert!(out.contains("uncommitted idea"), "now committed: {out}");
}

#[test]
fn a_session_that_kept_nothing_still_reports() {
    let s = build(&[step(
        Status::Discard,
        Some(1.2),
        "LR 0.1 → 0.05",
        "LR = 0.05\n",
    )]);
    let (ok, out, err) = run(s.path(), &["status"]);
    assert!(ok, "{err}");
    assert!(out.contains("no improvement yet"), "{out}");
}
