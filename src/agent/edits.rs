//! The proposal format (DESCRIPTION / CATEGORY / SCRATCHPAD / SEARCH-REPLACE blocks) and
//! applying its edits to in-memory file contents. Pure code: it never reads or writes the
//! disk, and it applies all blocks or none.

use crate::experiment::Category;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

/// The longest scratchpad kept; the rest is cut so working memory cannot grow unbounded.
pub const SCRATCHPAD_MAX_BYTES: usize = 16 * 1024;

/// One edit of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Replace the lines `search` (one or more whole lines) with `replace`.
    Replace {
        path: PathBuf,
        search: String,
        replace: String,
    },
    /// Replace the whole file (or create it).
    WholeFile { path: PathBuf, contents: String },
}

impl Edit {
    pub fn path(&self) -> &Path {
        match self {
            Edit::Replace { path, .. } | Edit::WholeFile { path, .. } => path,
        }
    }
}

/// A parsed answer. Fields the answer left out are `None`; the caller decides defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub description: Option<String>,
    /// `Some(Err(text))` when a CATEGORY line named no known category.
    pub category: Option<Result<Category, String>>,
    pub scratchpad: Option<String>,
    pub edits: Vec<Edit>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("edit block {index} has no file path: put the path on its own line before it")]
    MissingPath { index: usize },
    #[error("edit block {index} ({path}) is not closed: it needs a `{expected}` line")]
    Unterminated {
        index: usize,
        path: String,
        expected: &'static str,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Marker {
    Search,
    Divider,
    Replace,
    WholeFile,
    End,
}

/// Recognises the block markers, tolerating 5–9 angle brackets and surrounding blanks.
fn marker(line: &str) -> Option<Marker> {
    let t = line.trim();
    let run = |c: char| t.chars().take_while(|&x| x == c).count();
    if (5..=9).contains(&run('=')) && t.chars().all(|c| c == '=') {
        return Some(Marker::Divider);
    }
    let (n, rest) = match t.chars().next()? {
        '<' => (run('<'), t.trim_start_matches('<')),
        '>' => (run('>'), t.trim_start_matches('>')),
        _ => return None,
    };
    if !(5..=9).contains(&n) {
        return None;
    }
    let word = rest.trim().to_ascii_uppercase();
    match (t.starts_with('<'), word.as_str()) {
        (true, "SEARCH") => Some(Marker::Search),
        (true, "WHOLE FILE") | (true, "WHOLE_FILE") => Some(Marker::WholeFile),
        (false, "REPLACE") => Some(Marker::Replace),
        (false, "END") => Some(Marker::End),
        _ => None,
    }
}

fn is_fence(line: &str) -> bool {
    line.trim_start().starts_with("```")
}

/// `KEY: value` with markdown decoration (`**KEY:**`, `# KEY:`) tolerated.
fn keyed<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let t = line.trim().trim_start_matches(['#', '*', '-', '>', ' ']);
    let head = t.get(..key.len())?;
    if !head.eq_ignore_ascii_case(key) {
        return None;
    }
    let rest = t[key.len()..].trim_start_matches('*').trim_start();
    let rest = rest.strip_prefix(':')?;
    Some(rest.trim().trim_matches('*').trim())
}

/// The value of the last `KEY:` line in `text` (e.g. a CLI agent's final DESCRIPTION).
pub fn field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .rev()
        .find_map(|l| keyed(l, key).filter(|v| !v.is_empty()))
        .map(str::to_string)
}

/// A line that names a file: no inner whitespace once backticks, `./`, bold and a
/// trailing colon are removed.
fn path_line(line: &str) -> Option<String> {
    let mut t = line.trim().trim_matches('*').trim_matches('`').trim();
    t = t.strip_suffix(':').unwrap_or(t).trim_matches('`').trim();
    while let Some(rest) = t.strip_prefix("./") {
        t = rest;
    }
    (!t.is_empty() && !t.chars().any(char::is_whitespace)).then(|| t.to_string())
}

fn join_lines(lines: &[&str]) -> String {
    let mut s = String::new();
    for l in lines {
        s.push_str(l.strip_suffix('\r').unwrap_or(l));
        s.push('\n');
    }
    s
}

/// Parses an answer in the proposal format. Never panics; unknown prose is ignored.
pub fn parse(text: &str) -> Result<Parsed, ParseError> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = Parsed::default();
    let mut path: Option<String> = None;
    let mut last_block_path: Option<String> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(m) = marker(line).filter(|m| matches!(m, Marker::Search | Marker::WholeFile)) {
            let index = out.edits.len() + 1;
            let p = path
                .take()
                .or_else(|| last_block_path.clone())
                .ok_or(ParseError::MissingPath { index })?;
            let (edit, next) = parse_block(&lines, i + 1, m, &p, index)?;
            out.edits.push(edit);
            last_block_path = Some(p);
            i = next;
            continue;
        }
        if let Some(d) = keyed(line, "DESCRIPTION") {
            out.description = Some(d.to_string()).filter(|d| !d.is_empty());
        } else if let Some(c) = keyed(line, "CATEGORY") {
            out.category = Some(Category::parse(c).ok_or_else(|| c.to_string()));
        } else if let Some(first) = keyed(line, "SCRATCHPAD") {
            i = parse_scratchpad(&lines, i, first, &mut out);
            continue;
        } else if is_fence(line) || line.trim().is_empty() {
            // Fences and blank lines sit between a path and its block.
        } else {
            path = path_line(line);
        }
        i += 1;
    }
    Ok(out)
}

/// Reads a SCRATCHPAD section starting at line `start`; returns where parsing resumes.
/// The section ends at `END SCRATCHPAD`, at a DESCRIPTION/CATEGORY line, or before the
/// path line of the next edit block.
fn parse_scratchpad(lines: &[&str], start: usize, first: &str, out: &mut Parsed) -> usize {
    let mut body: Vec<&str> = Vec::new();
    if !first.is_empty() {
        body.push(first);
    }
    let mut j = start + 1;
    let resume = loop {
        let Some(l) = lines.get(j) else { break j };
        let t = l.trim().to_ascii_uppercase();
        if t == "END SCRATCHPAD" || t == "END_SCRATCHPAD" {
            break j + 1;
        }
        if keyed(l, "DESCRIPTION").is_some() || keyed(l, "CATEGORY").is_some() {
            break j;
        }
        if matches!(marker(l), Some(Marker::Search | Marker::WholeFile)) {
            // Give the path line (and any fence before the block) back to the parser.
            while body
                .last()
                .is_some_and(|b| b.trim().is_empty() || is_fence(b))
            {
                body.pop();
                j -= 1;
            }
            if body.last().is_some_and(|b| path_line(b).is_some()) {
                body.pop();
                j -= 1;
            }
            break j;
        }
        body.push(l);
        j += 1;
    };
    let mut text = join_lines(&body).trim().to_string();
    if text.len() > SCRATCHPAD_MAX_BYTES {
        let mut cut = SCRATCHPAD_MAX_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    out.scratchpad = Some(text);
    resume
}

fn parse_block(
    lines: &[&str],
    start: usize,
    kind: Marker,
    path: &str,
    index: usize,
) -> Result<(Edit, usize), ParseError> {
    let unterminated = |expected| ParseError::Unterminated {
        index,
        path: path.to_string(),
        expected,
    };
    let find =
        |from: usize, want: Marker| (from..lines.len()).find(|&k| marker(lines[k]) == Some(want));
    let path = PathBuf::from(path);
    if kind == Marker::WholeFile {
        let end = find(start, Marker::End).ok_or_else(|| unterminated(">>>>>>> END"))?;
        let contents = join_lines(&lines[start..end]);
        return Ok((Edit::WholeFile { path, contents }, end + 1));
    }
    let div = find(start, Marker::Divider).ok_or_else(|| unterminated("======="))?;
    let end = find(div + 1, Marker::Replace).ok_or_else(|| unterminated(">>>>>>> REPLACE"))?;
    let edit = Edit::Replace {
        path,
        search: join_lines(&lines[start..div]),
        replace: join_lines(&lines[div + 1..end]),
    };
    Ok((edit, end + 1))
}

/// Why one block could not be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    NotFound,
    /// The SEARCH text occurs at these 1-based lines.
    Ambiguous(Vec<usize>),
    MissingFile,
    EmptySearch,
}

/// A block that did not apply, with what the LLM needs to correct it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockFailure {
    /// 1-based position of the block in the answer.
    pub index: usize,
    pub path: PathBuf,
    pub kind: FailureKind,
    /// The file's lines closest to the SEARCH text, 1-based line numbers.
    pub closest: Vec<(usize, String)>,
}

impl fmt::Display for BlockFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.kind {
            FailureKind::NotFound => {
                "its SEARCH lines are not in the file; copy them exactly from it".to_string()
            }
            FailureKind::Ambiguous(at) => {
                let at: Vec<String> = at.iter().map(|n| n.to_string()).collect();
                format!(
                    "its SEARCH lines occur {} times (lines {}); include more context",
                    at.len(),
                    at.join(", ")
                )
            }
            FailureKind::MissingFile => "the file does not exist; use WHOLE FILE".to_string(),
            FailureKind::EmptySearch => {
                "its SEARCH section is empty; put the lines to replace in it".to_string()
            }
        };
        write!(f, "block {} ({}): {what}", self.index, self.path.display())
    }
}

impl BlockFailure {
    /// The failure and the closest lines, numbered, for asking the LLM again.
    pub fn report(&self) -> String {
        let mut s = format!("{self}\n");
        if !self.closest.is_empty() {
            s.push_str("Closest lines of the file:\n");
            for (n, l) in &self.closest {
                s.push_str(&format!("{n:>5} | {l}\n"));
            }
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "edits to files that are not editable: {}; change only the editable files",
        list(paths)
    )]
    Forbidden { paths: Vec<PathBuf> },
    #[error("{} edit block(s) did not apply: {}", .0.len(), .0.iter().map(|b| b.to_string()).collect::<Vec<_>>().join("; "))]
    Blocks(Vec<BlockFailure>),
    #[error("edit blocks {first} and {second} change overlapping lines of {}; merge them into one block", path.display())]
    Overlap {
        path: PathBuf,
        first: usize,
        second: usize,
    },
    #[error("the edits change nothing; the REPLACE lines must differ from the SEARCH lines")]
    NoOp,
}

fn list(paths: &[PathBuf]) -> String {
    let v: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    v.join(", ")
}

/// `./a/../b` → `b`-style cleanup of the harmless parts; `..` and roots are kept so that
/// they never compare equal to an editable path.
fn normalize(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// One line of a file: text without its terminator, and the terminator (`\n`, `\r\n`, ``).
struct Line<'a> {
    start: usize,
    text: &'a str,
    eol: &'a str,
}

fn split_lines(s: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < s.len() {
        let end = s[start..].find('\n').map_or(s.len(), |k| start + k + 1);
        let raw = &s[start..end];
        let (text, eol) = if let Some(t) = raw.strip_suffix("\r\n") {
            (t, "\r\n")
        } else if let Some(t) = raw.strip_suffix('\n') {
            (t, "\n")
        } else {
            (raw, "")
        };
        out.push(Line { start, text, eol });
        start = end;
    }
    out
}

fn leading_ws(s: &str) -> &str {
    &s[..s.len() - s.trim_start().len()]
}

/// Line ranges `[a, a+n)` where `eq` holds for every line.
fn find_all(file: &[Line<'_>], search: &[&str], eq: impl Fn(&str, &str) -> bool) -> Vec<usize> {
    if search.is_empty() || search.len() > file.len() {
        return Vec::new();
    }
    (0..=file.len() - search.len())
        .filter(|&a| {
            search
                .iter()
                .enumerate()
                .all(|(k, s)| eq(file[a + k].text, s))
        })
        .collect()
}

/// The window of the file most like `search`, with two lines of context each side.
fn closest(file: &[Line<'_>], search: &[&str]) -> Vec<(usize, String)> {
    if file.is_empty() {
        return Vec::new();
    }
    let n = search.len().clamp(1, file.len());
    // Levenshtein is quadratic per line pair; fall back to trimmed equality on big inputs.
    let cheap = file.len() * n > 100_000;
    let score = |a: usize| -> f64 {
        (0..n)
            .map(|k| {
                let (x, y) = (
                    file[a + k].text.trim(),
                    search.get(k).map_or("", |s| s.trim()),
                );
                if cheap {
                    f64::from(u8::from(x == y))
                } else {
                    strsim::normalized_levenshtein(x, y)
                }
            })
            .sum()
    };
    let mut best = (0, f64::MIN);
    for a in 0..=file.len() - n {
        let s = score(a);
        if s > best.1 {
            best = (a, s);
        }
    }
    let from = best.0.saturating_sub(2);
    let to = (best.0 + n + 2).min(file.len());
    (from..to)
        .map(|k| (k + 1, file[k].text.to_string()))
        .collect()
}

/// A located block: replace file lines `[a, b)` with `text`.
struct Placed {
    index: usize,
    a: usize,
    b: usize,
    text: String,
}

/// Places one SEARCH/REPLACE block: exact match first, then a whitespace-tolerant one.
fn place(
    file: &[Line<'_>],
    search: &str,
    replace: &str,
    index: usize,
    path: &Path,
) -> Result<Placed, BlockFailure> {
    let s: Vec<&str> = search.lines().collect();
    let fail = |kind| BlockFailure {
        index,
        path: path.to_path_buf(),
        kind,
        closest: closest(file, &s),
    };
    if s.is_empty() {
        return Err(fail(FailureKind::EmptySearch));
    }
    let mut hits = find_all(file, &s, |f, s| f == s);
    let exact = !hits.is_empty();
    if !exact {
        hits = find_all(file, &s, |f, s| f.trim() == s.trim());
    }
    let a = match hits.as_slice() {
        [a] => *a,
        [] => return Err(fail(FailureKind::NotFound)),
        many => {
            return Err(fail(FailureKind::Ambiguous(
                many.iter().map(|a| a + 1).collect(),
            )));
        }
    };
    let b = a + s.len();
    // The matched lines' terminator style carries over to the new lines; a last line
    // without one takes the file's (a CRLF file must not gain a bare `\n`).
    let eol = [file[a].eol, file[a.saturating_sub(1)].eol, "\n"]
        .into_iter()
        .find(|e| !e.is_empty())
        .unwrap_or("\n");
    let reindent = |line: &str| -> String {
        if exact || line.trim().is_empty() {
            return line.to_string();
        }
        let first = (0..s.len()).find(|&k| !s[k].trim().is_empty()).unwrap_or(0);
        let (fi, si) = (leading_ws(file[a + first].text), leading_ws(s[first]));
        if let Some(extra) = fi.strip_prefix(si) {
            format!("{extra}{line}")
        } else if let Some(extra) = si.strip_prefix(fi) {
            line.strip_prefix(extra).unwrap_or(line).to_string()
        } else {
            line.to_string()
        }
    };
    let new: Vec<String> = replace.lines().map(reindent).collect();
    let mut text = new.join(eol);
    // Keep the file's final-newline state when the match ends the file.
    if !new.is_empty() && !file[b - 1].eol.is_empty() {
        text.push_str(eol);
    }
    Ok(Placed { index, a, b, text })
}

/// Applies every edit to `files` (all or none). `editable` lists the paths that may change.
pub fn apply(
    files: &BTreeMap<PathBuf, String>,
    edits: &[Edit],
    editable: &[PathBuf],
) -> Result<BTreeMap<PathBuf, String>, ApplyError> {
    let allowed: Vec<PathBuf> = editable.iter().map(|p| normalize(p)).collect();
    let mut forbidden: Vec<PathBuf> = edits
        .iter()
        .map(|e| normalize(e.path()))
        .filter(|p| !allowed.contains(p))
        .collect();
    if !forbidden.is_empty() {
        forbidden.sort();
        forbidden.dedup();
        return Err(ApplyError::Forbidden { paths: forbidden });
    }
    // Group by file, keeping each block's 1-based index.
    let mut by_file: BTreeMap<PathBuf, Vec<(usize, &Edit)>> = BTreeMap::new();
    for (k, e) in edits.iter().enumerate() {
        by_file
            .entry(normalize(e.path()))
            .or_default()
            .push((k + 1, e));
    }
    let mut out = files.clone();
    let mut failures = Vec::new();
    for (path, blocks) in by_file {
        let key = files
            .keys()
            .find(|k| normalize(k) == path)
            .cloned()
            .unwrap_or_else(|| path.clone());
        let whole: Vec<usize> = blocks
            .iter()
            .filter(|(_, e)| matches!(e, Edit::WholeFile { .. }))
            .map(|(i, _)| *i)
            .collect();
        if let Some(&w) = whole.first() {
            if blocks.len() > 1 {
                let other = blocks
                    .iter()
                    .map(|(i, _)| *i)
                    .find(|&i| i != w)
                    .unwrap_or(w);
                return Err(ApplyError::Overlap {
                    path,
                    first: w.min(other),
                    second: w.max(other),
                });
            }
            if let Edit::WholeFile { contents, .. } = blocks[0].1 {
                out.insert(key, contents.clone());
            }
            continue;
        }
        let Some(original) = files.get(&key) else {
            for (index, _) in blocks {
                failures.push(BlockFailure {
                    index,
                    path: path.clone(),
                    kind: FailureKind::MissingFile,
                    closest: Vec::new(),
                });
            }
            continue;
        };
        let lines = split_lines(original);
        let mut placed = Vec::new();
        for (index, e) in blocks {
            if let Edit::Replace {
                search, replace, ..
            } = e
            {
                match place(&lines, search, replace, index, &path) {
                    Ok(p) => placed.push(p),
                    Err(f) => failures.push(f),
                }
            }
        }
        placed.sort_by_key(|p| (p.a, p.b));
        for w in placed.windows(2) {
            if w[1].a < w[0].b {
                return Err(ApplyError::Overlap {
                    path,
                    first: w[0].index.min(w[1].index),
                    second: w[0].index.max(w[1].index),
                });
            }
        }
        let mut new = String::with_capacity(original.len());
        let mut pos = 0;
        for p in &placed {
            let start = lines[p.a].start;
            let end = lines.get(p.b).map_or(original.len(), |l| l.start);
            new.push_str(&original[pos..start]);
            new.push_str(&p.text);
            pos = end;
        }
        new.push_str(&original[pos..]);
        out.insert(key, new);
    }
    if !failures.is_empty() {
        failures.sort_by_key(|f| f.index);
        return Err(ApplyError::Blocks(failures));
    }
    if &out == files {
        return Err(ApplyError::NoOp);
    }
    Ok(out)
}
