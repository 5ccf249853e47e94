//! Untrusted text (LLM answers, descriptions, training output, crash reasons) made safe to
//! show: ANSI escape sequences and other control characters removed, bidirectional
//! overrides and invisible format characters dropped, line and paragraph separators turned
//! into newlines. What comes out can go to a terminal, a TSV cell, a commit subject or a
//! report without moving the cursor, recolouring the screen or reordering what is read.

/// Code points that reorder or hide text (Trojan Source) and are never needed in a
/// description or a log line: bidi embeddings, overrides and isolates, marks, zero-width
/// characters, the BOM.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// Removes escape sequences (CSI `ESC [ … final`, OSC `ESC ] … BEL` or `ESC \`, and
/// two-character `ESC x`), control characters other than newline and tab, and invisible
/// format characters; U+2028/U+2029 and CR become newlines.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => {
                    // Parameters and intermediates, then one final byte in @..~.
                    for n in chars.by_ref() {
                        if ('@'..='~').contains(&n) {
                            break;
                        }
                    }
                }
                Some(']') | Some('P') | Some('_') | Some('^') => {
                    // A string: until BEL or ST (ESC \).
                    while let Some(n) = chars.next() {
                        if n == '\u{7}' {
                            break;
                        }
                        if n == '\u{1b}' {
                            if chars.peek() == Some(&'\\') {
                                chars.next();
                            }
                            break;
                        }
                    }
                }
                _ => {}
            },
            // The C1 CSI, in case a terminal honours it.
            '\u{9b}' => {
                for n in chars.by_ref() {
                    if ('@'..='~').contains(&n) {
                        break;
                    }
                }
            }
            '\n' | '\t' => out.push(c),
            '\r' | '\u{2028}' | '\u{2029}' | '\u{85}' => out.push('\n'),
            c if c.is_control() || invisible(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// The first non-empty line of [`clean`] text, trimmed, at most `max` characters.
pub fn first_line(s: &str, max: usize) -> String {
    clean(s)
        .lines()
        .map(|l| l.replace('\t', " "))
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().chars().take(max).collect())
        .unwrap_or_default()
}

/// [`clean`] text on one line: newlines and tabs become spaces, at most `max` characters.
pub fn flat(s: &str, max: usize) -> String {
    let cleaned = clean(s);
    let joined: Vec<&str> = cleaned.split_whitespace().collect();
    joined.join(" ").chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_and_trojan_source_are_removed() {
        assert_eq!(clean("\u{1b}[31mred\u{1b}[0m"), "red");
        assert_eq!(clean("a\u{1b}]0;title\u{7}b"), "ab");
        assert_eq!(clean("a\u{1b}]8;;http://x\u{1b}\\link"), "alink");
        assert_eq!(clean("x\u{9b}2Jy"), "xy");
        assert_eq!(clean("LR \u{202E}2.0\u{202C} up"), "LR 2.0 up");
        assert_eq!(clean("one\u{2028}two"), "one\ntwo");
        assert_eq!(clean("bell\u{7}\u{8}!"), "bell!");
        assert_eq!(
            first_line("\n\n  \u{1b}[2Kraise LR\nsecond", 200),
            "raise LR"
        );
        assert_eq!(flat("a\nb\u{2029}c\td", 200), "a b c d");
        assert_eq!(first_line("\u{200B}\u{FEFF}", 200), "");
    }

    proptest! {
        #[test]
        fn nothing_that_moves_the_cursor_or_reorders_text_survives(s in "\\PC*|[\\x00-\\x1f\\x7f-\\x9f\\u{2028}\\u{202a}-\\u{202e}\\u{2066}-\\u{2069}a-z\\[\\]]*") {
            for out in [clean(&s), first_line(&s, 50), flat(&s, 50)] {
                prop_assert!(out.chars().all(|c| c == '\n' || c == '\t' || !(c.is_control() || invisible(c) || c == '\u{2028}' || c == '\u{2029}')), "{out:?}");
            }
            prop_assert!(!first_line(&s, 50).contains('\n'));
            prop_assert!(!flat(&s, 50).contains('\n'));
        }
    }
}
