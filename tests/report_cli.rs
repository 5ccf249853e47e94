//! Black-box tests of `autoresearch status`, `summary`, `plot` and `export` on a real
//! repository and journal, on a results.tsv from elsewhere, and while another connection
//! writes. The export's CSV and JSON are read back; its LaTeX must escape a hostile
//! description so that it can neither run a command nor break the table.

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

// ---- export ----

const HOSTILE: &str =
    "=HYPERLINK(\"x\") 50% & $LR_2 {x} \\input{/etc/passwd} #1 ~^ | <b>bold</b>, \"quoted\"";

fn steps() -> Vec<Step> {
    vec![
        step(Status::Keep, Some(1.04), "LR 0.1 → 0.2", "LR = 0.2\n"),
        step(Status::Keep, Some(1.0), HOSTILE, "LR = 0.4\n"),
        step(Status::Discard, Some(1.16), "LR 0.4 → 0.8", "LR = 0.8\n"),
        step(Status::Crash, None, "LR 0.4 → 1.6", "LR = 1.6\n"),
    ]
}

fn export(dir: &Path, format: &str) -> String {
    let out = bin()
        .args(["export", "--format", format, "--repo"])
        .arg(dir)
        .output()
        .unwrap();
    let (o, e) = out_text(&out);
    assert!(out.status.success(), "{e}");
    o
}

/// RFC 4180 fields: quotes, doubled quotes, commas and line breaks inside quotes.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => field.push(c),
        }
    }
    assert!(
        !quoted && field.is_empty() && row.is_empty(),
        "unterminated CSV"
    );
    rows
}

#[test]
fn csv_reads_back_to_the_experiments_and_defuses_formulas() {
    let s = build(&steps());
    let rows = parse_csv(&export(s.path(), "csv"));
    let header = &rows[0];
    assert_eq!(header.len(), 14);
    assert!(rows.iter().all(|r| r.len() == header.len()), "{rows:?}");
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    // The baseline and four experiments.
    assert_eq!(rows.len(), 6);
    let hostile = &rows[3];
    assert_eq!(hostile[col("description")], format!("'{HOSTILE}"));
    assert_eq!(hostile[col("status")], "keep");
    let delta: f64 = hostile[col("delta")].parse().unwrap();
    assert!((delta - (1.0 - 1.04)).abs() < 1e-9, "{delta}");
    let (lo, hi): (f64, f64) = (
        hostile[col("ci_low")].parse().unwrap(),
        hostile[col("ci_high")].parse().unwrap(),
    );
    assert!(lo < delta && delta < hi, "{lo} {delta} {hi}");
    assert_eq!(hostile[col("ci_method")], "pooled");
    // A crash has no value and no effect.
    let crash = &rows[5];
    assert_eq!(
        (crash[col("value")].as_str(), crash[col("delta")].as_str()),
        ("", "")
    );
}

#[test]
fn json_reads_back_with_noise_and_effects() {
    let s = build(&steps());
    let doc: serde_json::Value = serde_json::from_str(&export(s.path(), "json")).unwrap();
    assert_eq!(doc["metric"], "val_bpb");
    let sigma = doc["noise"]["sigma"].as_f64().unwrap();
    assert!((sigma - 0.002).abs() < 1e-9, "{sigma}");
    assert_eq!(doc["noise"]["df"], 2);
    let exps = doc["experiments"].as_array().unwrap();
    assert_eq!(exps.len(), 5);
    assert_eq!(exps[2]["description"], HOSTILE);
    // Against the baseline's three runs (mean 1.09): -0.05 with σ̂·√(1 + 1/3) · t(0.975, 2).
    let e = &exps[1]["effect"];
    let half = 4.302653 * 0.002 * (1.0f64 + 1.0 / 3.0).sqrt();
    assert!((e["diff"].as_f64().unwrap() + 0.05).abs() < 1e-9, "{e}");
    assert!(
        (e["ci_high"].as_f64().unwrap() - (-0.05 + half)).abs() < 1e-5,
        "{e}"
    );
    assert_eq!(doc["settings"]["Budget per run"], "5m 00s");
    assert!(exps[4]["effect"].is_null() && exps[4]["value"].is_null());
}

#[test]
fn latex_uses_booktabs_and_escapes_a_hostile_description() {
    let s = build(&steps());
    let tex = export(s.path(), "latex");
    for rule in ["\\toprule", "\\midrule", "\\bottomrule", "\\begin{tabular}"] {
        assert!(tex.contains(rule), "{rule} missing:\n{tex}");
    }
    let row = tex
        .lines()
        .find(|l| l.contains("HYPERLINK"))
        .expect("the hostile row");
    assert!(
        row.contains(r"50\% \& \$LR\_2 \{x\} \textbackslash{}input\{/etc/passwd\} \#1 \textasciitilde{}\textasciicircum{} \textbar{} \textless{}b\textgreater{}"),
        "{row}"
    );
    // Nothing can end a cell or open a group: 6 separators, balanced braces.
    let unescaped_amp = row
        .match_indices('&')
        .filter(|(i, _)| !row[..*i].ends_with('\\'))
        .count();
    assert_eq!(unescaped_amp, 6, "{row}");
    let depth = row
        .chars()
        .fold((0i32, '\0'), |(d, prev), c| match (c, prev) {
            ('{', p) if p != '\\' => (d + 1, c),
            ('}', p) if p != '\\' => (d - 1, c),
            _ => (d, c),
        });
    assert_eq!(depth.0, 0, "{row}");
    assert!(!row.contains("\\input{"), "{row}");
}

#[test]
fn markdown_defuses_html_and_pipes_and_writes_where_asked() {
    let s = build(&steps());
    let out_file = s.path().join("table.md");
    let out = bin()
        .args(["export", "-o"])
        .arg(&out_file)
        .arg("--repo")
        .arg(s.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", out_text(&out).1);
    let md = std::fs::read_to_string(&out_file).unwrap();
    assert!(
        md.contains("&lt;b&gt;bold&lt;/b&gt;") && !md.contains("<b>"),
        "{md}"
    );
    let row = md.lines().find(|l| l.contains("HYPERLINK")).unwrap();
    assert!(row.contains("\\|"), "{row}");
    assert!(
        md.contains("- **Noise estimate:** σ̂ = 0.002000 (df = 2, 3 runs)"),
        "{md}"
    );
    assert!(
        md.contains("- **Experiments:** 4 experiments (2 kept, 1 discarded, 1 crashed)"),
        "{md}"
    );
}
