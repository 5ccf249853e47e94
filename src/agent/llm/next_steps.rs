//! An LLM's next steps for a report, treated as data: turned into a short markdown list
//! that cannot break the document around it (no code fences, no headings, no raw HTML,
//! balanced inline code, bounded length), or refused so that the report falls back to
//! steps derived from the records. Pure; it never calls a model.

/// Items kept, at most.
pub const MAX_ITEMS: usize = 8;
/// Characters per item, at most (longer ones are cut with `…`).
pub const MAX_ITEM_CHARS: usize = 300;

/// The answer as a bullet list, one line per item; `None` when nothing usable is left
/// (the caller derives the steps from the data then).
///
/// Kept: list items (`-`, `*`, `+`, `1.`, `1)`) and plain lines, each made one `- ` item.
/// Dropped: headings, fence lines and everything inside fences (code is not a step),
/// horizontal rules, table rows. Escaped: `<`, `>` (no HTML), and a line's backticks when
/// they are unbalanced (an inline code span left open).
pub fn sanitize(text: &str) -> Option<String> {
    let mut items: Vec<String> = Vec::new();
    let mut in_fence = false;
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with("```") || line.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence || line.is_empty() || line.starts_with('#') || line.starts_with('|') {
            continue;
        }
        if line
            .chars()
            .all(|c| matches!(c, '-' | '*' | '_' | '=' | ' '))
        {
            continue;
        }
        let body = strip_marker(line);
        if body.is_empty() {
            continue;
        }
        items.push(item(body));
        if items.len() == MAX_ITEMS {
            break;
        }
    }
    if items.is_empty() {
        return None;
    }
    let mut out = String::new();
    for i in items {
        out.push_str("- ");
        out.push_str(&i);
        out.push('\n');
    }
    Some(out)
}

/// A list item's text without its marker (`- `, `* `, `+ `, `12. `, `3) `).
fn strip_marker(line: &str) -> &str {
    for m in ["- ", "* ", "+ "] {
        if let Some(rest) = line.strip_prefix(m) {
            return rest.trim();
        }
    }
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    if digits > 0 {
        let rest = &line[digits..];
        if let Some(r) = rest.strip_prefix(". ").or_else(|| rest.strip_prefix(") ")) {
            return r.trim();
        }
    }
    line
}

fn item(body: &str) -> String {
    let mut s: String = body
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    if s.matches('`').count() % 2 == 1 {
        s = s.replace('`', "'");
    }
    if s.chars().count() > MAX_ITEM_CHARS {
        s = s.chars().take(MAX_ITEM_CHARS - 1).collect::<String>() + "…";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_stays_a_list() {
        let s = sanitize("- Try LR 0.3.\n* Re-run `LR 0.4`.\n2) Widen the MLP.\n").unwrap();
        assert_eq!(s, "- Try LR 0.3.\n- Re-run `LR 0.4`.\n- Widen the MLP.\n");
    }

    #[test]
    fn fences_headings_and_html_cannot_break_the_document() {
        let text = "## Next steps\nHere is what I suggest:\n```python\nLR = 0.3\n- not a step\n";
        let s = sanitize(text).unwrap();
        assert_eq!(
            s, "- Here is what I suggest:\n",
            "the unclosed fence swallowed only itself"
        );
        let s = sanitize("- use <script>alert(1)</script> and `half\n").unwrap();
        assert_eq!(s, "- use &lt;script&gt;alert(1)&lt;/script&gt; and 'half\n");
        assert!(!s.contains('<'));
    }

    #[test]
    fn nothing_usable_falls_back_and_length_is_capped() {
        assert_eq!(sanitize("# Heading only\n```\ncode\n```\n---\n"), None);
        assert_eq!(sanitize("   \n"), None);
        let many: String = (0..20).map(|k| format!("- step {k}\n")).collect();
        assert_eq!(sanitize(&many).unwrap().lines().count(), MAX_ITEMS);
        let long = format!("- {}", "x".repeat(1000));
        let s = sanitize(&long).unwrap();
        assert_eq!(s.trim_end().chars().count(), 2 + MAX_ITEM_CHARS);
        assert!(s.trim_end().ends_with('…'));
    }
}
