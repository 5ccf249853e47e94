//! Which constants only feed printing or reporting: a small data-flow reading of a Python
//! file's text. A constant whose every use ends in a `print(…)`/logging call (directly, or
//! through variables that are themselves only printed) cannot change the metric, so the
//! search leaves it out. Reads text only; never runs or edits anything.

use std::collections::{BTreeMap, BTreeSet};

/// A constant left out of the search, and why (`only printed (via mfu)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    pub name: String,
    pub reason: String,
}

/// Calls whose arguments are output, not computation.
const REPORTING_CALLS: &[&str] = &[
    "print",
    "print0",
    "pprint",
    "logging.",
    "logger.",
    "log.",
    "wandb.log",
    "tqdm.write",
    "sys.stdout.write",
    "sys.stderr.write",
    "writer.add_",
    "mlflow.log",
];

/// One logical statement: its code with comments removed and plain strings blanked
/// (f-strings keep their text, so `{mfu:.1f}` counts as a use of `mfu`).
struct Statement {
    code: String,
    /// The statement's lines as written (strings intact), for the metric's name.
    raw: String,
}

/// Of `names` (the file's constants), those whose every use in `text` is reporting.
/// A name with no use at all is not left out: it may be read by name (`globals()`), from
/// another file, or be meant for a later edit. A print whose text holds one of `metric`
/// (the metric's name, e.g. `val_bpb`) is the run's result, not reporting.
pub fn reporting_only(text: &str, names: &[String], metric: &[&str]) -> Vec<LeftOut> {
    let mut statements = statements(text);
    for st in &mut statements {
        if metric.iter().any(|m| !m.is_empty() && st.raw.contains(m)) {
            // Not a reporting call: a use here is a real one.
            st.code = format!("result({})", st.code);
        }
    }
    let mut memo: BTreeMap<String, Verdict> = BTreeMap::new();
    let mut out = Vec::new();
    for name in names {
        let mut visiting = BTreeSet::new();
        if let Verdict::Reporting(via) = verdict(name, &statements, &mut memo, &mut visiting) {
            let reason = if via.is_empty() {
                "only printed".to_string()
            } else {
                format!("only printed (via {})", via.join(", "))
            };
            out.push(LeftOut {
                name: name.clone(),
                reason,
            });
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    /// At least one use, every one reporting; the variables it flowed through.
    Reporting(Vec<String>),
    /// Some use reaches computation.
    Real,
    /// No use at all.
    Unused,
}

fn verdict(
    name: &str,
    statements: &[Statement],
    memo: &mut BTreeMap<String, Verdict>,
    visiting: &mut BTreeSet<String>,
) -> Verdict {
    if let Some(v) = memo.get(name) {
        return v.clone();
    }
    if !visiting.insert(name.to_string()) {
        // A cycle (`x = x * a`) adds no use of its own.
        return Verdict::Unused;
    }
    let mut via: Vec<String> = Vec::new();
    let mut used = false;
    let mut result = None;
    for st in statements {
        let code = st.code.trim_start();
        let positions = uses(code, name);
        if positions.is_empty() {
            continue;
        }
        if is_reporting_call(code) {
            used = true;
            continue;
        }
        match split_assignment(code) {
            Some((targets, value_at)) => {
                let in_value = positions.iter().any(|&p| p >= value_at);
                if !in_value {
                    // The name is (re)assigned here (a constant's own line, a local of the
                    // same name): not a use.
                    continue;
                }
                used = true;
                for t in &targets {
                    if t == name {
                        continue;
                    }
                    match verdict(t, statements, memo, visiting) {
                        Verdict::Real => {
                            result = Some(Verdict::Real);
                            break;
                        }
                        Verdict::Reporting(v) => {
                            via.push(t.clone());
                            via.extend(v);
                        }
                        // Assigned and never read here: it may be read by name or from
                        // elsewhere, so it counts as a real use.
                        Verdict::Unused => {
                            result = Some(Verdict::Real);
                            break;
                        }
                    }
                }
                if result.is_some() {
                    break;
                }
            }
            None => {
                result = Some(Verdict::Real);
                break;
            }
        }
    }
    visiting.remove(name);
    let v = result.unwrap_or(if used {
        via.dedup();
        Verdict::Reporting(via)
    } else {
        Verdict::Unused
    });
    memo.insert(name.to_string(), v.clone());
    v
}

fn is_reporting_call(code: &str) -> bool {
    REPORTING_CALLS.iter().any(|c| {
        code.strip_prefix(c).is_some_and(|rest| {
            // `print(` exactly; `logging.` / `writer.add_` are prefixes of the call's name.
            if c.ends_with('.') || c.ends_with('_') {
                rest.split('(')
                    .next()
                    .is_some_and(|n| n.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'))
                    && rest.contains('(')
            } else {
                rest.trim_start().starts_with('(')
            }
        })
    })
}

/// `a = …`, `a, b = …`, `a += …`: the plain-name targets and where the value starts.
/// `None` for anything else (a call, a condition, an attribute or item assignment, a
/// comparison).
fn split_assignment(code: &str) -> Option<(Vec<String>, usize)> {
    let bytes = code.as_bytes();
    let mut depth = 0i32;
    for (i, &c) in bytes.iter().enumerate() {
        match c {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b'=' if depth == 0 => {
                let next = bytes.get(i + 1).copied();
                let prev = if i > 0 { bytes[i - 1] } else { b' ' };
                if next == Some(b'=') || matches!(prev, b'=' | b'!' | b'<' | b'>') {
                    return None;
                }
                let mut lhs = &code[..i];
                // Augmented assignment: `x += v`, `x //= v`, `x **= v`.
                lhs = lhs.trim_end_matches(['+', '-', '*', '/', '%', '&', '|', '^', '@']);
                let lhs = lhs.trim_end_matches(['<', '>']).trim();
                let lhs = lhs.split(':').next().unwrap_or(lhs); // `x: int = …`
                let targets: Vec<String> = lhs
                    .trim_matches(|c| c == '(' || c == ')')
                    .split(',')
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .collect();
                let plain = |t: &String| {
                    t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !t.chars().next().is_some_and(|c| c.is_ascii_digit())
                };
                if targets.is_empty() || !targets.iter().all(plain) {
                    return None;
                }
                return Some((targets, i + 1));
            }
            _ => {}
        }
    }
    None
}

/// Byte offsets of `name` as a whole identifier in `code` (not `x.name`, an attribute).
fn uses(code: &str, name: &str) -> Vec<usize> {
    let b = code.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    code.match_indices(name)
        .map(|(i, _)| i)
        .filter(|&i| {
            let before = i.checked_sub(1).map(|j| b[j]);
            let after = b.get(i + name.len()).copied();
            !before.is_some_and(|c| ident(c) || c == b'.') && !after.is_some_and(ident)
        })
        .collect()
}

/// Splits `text` into logical statements (brackets and `\` join lines), each with comments
/// removed and non-f-string contents blanked.
fn statements(text: &str) -> Vec<Statement> {
    let mut out = Vec::new();
    let mut code = String::new();
    let mut raw = String::new();
    let mut depth: i32 = 0;
    // The open string: quote, triple, f-string.
    let mut open: Option<(u8, bool, bool)> = None;
    for physical in text.split_inclusive('\n') {
        let line = physical.trim_end_matches(['\n', '\r']);
        raw.push_str(line);
        raw.push('\n');
        let b = line.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            match open {
                Some((q, triple, f)) => {
                    if c == b'\\' {
                        i += 2;
                        continue;
                    }
                    let closes = if triple {
                        b[i..].starts_with(&[q, q, q])
                    } else {
                        c == q
                    };
                    if closes {
                        open = None;
                        code.push(c as char);
                        i += if triple { 3 } else { 1 };
                        continue;
                    }
                    if f {
                        // Keep the character (multi-byte ones whole).
                        let ch = line[i..].chars().next().unwrap_or(' ');
                        code.push(ch);
                        i += ch.len_utf8();
                        continue;
                    }
                    code.push(' ');
                }
                None => match c {
                    b'#' => break,
                    b'"' | b'\'' => {
                        let triple = b[i..].starts_with(&[c, c, c]);
                        let prefix: String = code
                            .chars()
                            .rev()
                            .take_while(char::is_ascii_alphabetic)
                            .collect();
                        let f = prefix.to_ascii_lowercase().contains('f');
                        open = Some((c, triple, f));
                        code.push(c as char);
                        i += if triple { 3 } else { 1 };
                        continue;
                    }
                    b'(' | b'[' | b'{' => {
                        depth += 1;
                        code.push(c as char);
                    }
                    b')' | b']' | b'}' => {
                        depth -= 1;
                        code.push(c as char);
                    }
                    _ => {
                        let ch = line[i..].chars().next().unwrap_or(' ');
                        code.push(ch);
                        i += ch.len_utf8();
                        continue;
                    }
                },
            }
            i += 1;
        }
        let continued = code.ends_with('\\');
        if matches!(open, Some((_, false, _))) && !continued {
            open = None;
        }
        if depth > 0 || open.is_some() || continued {
            if continued {
                code.pop();
            }
            code.push(' ');
            continue;
        }
        depth = 0;
        // `if x: print(y)` and `a = 1; b = 2` on one line: split on a top-level `;`.
        for part in code.split(';') {
            let part = strip_compound_header(part);
            if !part.trim().is_empty() {
                out.push(Statement {
                    code: part.to_string(),
                    raw: raw.clone(),
                });
            }
        }
        code.clear();
        raw.clear();
    }
    out
}

/// `if cond: body` keeps `if cond:` as a statement of its own (a condition is a real use);
/// a one-line `else: print(…)` is just its body.
fn strip_compound_header(part: &str) -> &str {
    let t = part.trim_start();
    for kw in ["else:", "try:", "finally:"] {
        if let Some(rest) = t.strip_prefix(kw) {
            return rest;
        }
    }
    part
}

#[cfg(test)]
mod tests {
    use super::*;

    fn left_out(text: &str, names: &[&str]) -> Vec<String> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        reporting_only(text, &names, &["val_bpb"])
            .into_iter()
            .map(|l| l.name)
            .collect()
    }

    #[test]
    fn a_constant_only_printed_through_a_variable_is_left_out() {
        let text = "PEAK = 989.5e12\nLR = 0.1\nstep = 0\nwhile True:\n    x = LR * 2\n    mfu = 100 * x / PEAK\n    print(f\"mfu: {mfu:.1f}%\", end=\"\")\n    if x > 3: break\n";
        assert_eq!(left_out(text, &["PEAK", "LR"]), vec!["PEAK"]);
    }

    #[test]
    fn any_computing_use_keeps_it() {
        let text = "PEAK = 1.0\nmfu = PEAK * 2\nprint(mfu)\nassert mfu > 0\n";
        assert!(left_out(text, &["PEAK"]).is_empty());
        let text = "PEAK = 1.0\nrun(PEAK)\n";
        assert!(left_out(text, &["PEAK"]).is_empty());
    }

    #[test]
    fn unused_and_string_mentions_are_not_uses() {
        let text = "PEAK = 1.0\nKNOBS = (\"PEAK\",)\n# PEAK in a comment\n";
        assert!(left_out(text, &["PEAK"]).is_empty());
    }

    #[test]
    fn the_metric_print_is_a_real_use() {
        let text = "LR = 0.1\nvalue = (LR - 0.4) ** 2 + 1\nprint(f'val_bpb: {value:.6f}')\n";
        assert!(left_out(text, &["LR"]).is_empty());
        let text = "LR = 0.1\nprint(\"val_bpb:\", LR * 2)\n";
        assert!(left_out(text, &["LR"]).is_empty());
    }

    #[test]
    fn logging_calls_and_multiline_prints() {
        let text = "A = 1\nB = 2\nlogger.info(\"a=%s\", A)\nprint(\n    f\"{B}\",\n)\n";
        assert_eq!(left_out(text, &["A", "B"]), vec!["A", "B"]);
    }
}
