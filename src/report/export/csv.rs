//! The export as CSV (RFC 4180: comma-separated, quoted where needed, CRLF-free lines
//! inside quotes kept). A text cell that a spreadsheet would run as a formula is prefixed
//! with `'`.

use super::ExportData;

/// One CSV field, quoted when it holds a comma, quote or line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Untrusted text: a leading `=`, `+`, `-`, `@` or tab would be a formula in a
/// spreadsheet.
fn text(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        field(&format!("'{s}"))
    } else {
        field(s)
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| format!("{v}"))
}

pub fn render(d: &ExportData) -> String {
    let mut out = String::from(
        "iteration,attempt,commit,parent,status,category,description,value,runs,sd,delta,ci_low,ci_high,ci_method\n",
    );
    for r in &d.rows {
        let e = r.effect.as_ref();
        let cells = [
            r.iteration.to_string(),
            r.attempt.to_string(),
            text(&r.commit),
            text(&r.parent),
            r.status.clone(),
            text(&r.category),
            text(&r.description),
            opt(r.value),
            r.runs.to_string(),
            opt(r.sd),
            opt(e.map(|e| e.diff)),
            opt(e.map(|e| e.ci_low)),
            opt(e.map(|e| e.ci_high)),
            e.map_or_else(String::new, |e| e.method.to_string()),
        ];
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}
