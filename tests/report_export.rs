//! `autoresearch export` on a real journal: the CSV and JSON read back to the same
//! experiments and effects, the LaTeX (booktabs) escapes a hostile description so that it
//! can neither run a command nor break the table, and the Markdown defuses HTML.

#[path = "fixtures/report_cli/session.rs"]
mod session;

use autoresearch::experiment::Status;
use session::*;
use std::path::Path;

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
