//! Reading results.tsv files that this tool did not write (hand-run karpathy sessions and
//! their variants). Tolerant: columns are found by header name, anything not understood is
//! skipped with its line number and a reason. Never writes anything.

use crate::experiment::Status;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}; check the path given to --results")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: no experiment rows could be read ({skipped} lines skipped: {first_reasons}); expected a tab-separated results.tsv with a header such as `commit<TAB>val_bpb<TAB>memory_gb<TAB>status<TAB>description` (choose the metric's column with --metric)"
    )]
    NoRows {
        path: PathBuf,
        skipped: usize,
        /// The first few skipped lines and why, e.g. `line 2: date `…` is not a number`.
        first_reasons: String,
    },
    #[error(
        "{path} has no column `{wanted}`; its columns are {columns}; pass one of them to --metric"
    )]
    NoSuchMetric {
        path: PathBuf,
        wanted: String,
        columns: String,
    },
}

/// How to read a file from elsewhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions<'a> {
    /// The metric's column, by header name (`--metric`); must exist.
    pub metric: Option<&'a str>,
    /// A name to prefer when the header has it (the config's metric); may be absent.
    pub metric_hint: Option<&'a str>,
}

/// One experiment row as read.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedRow {
    /// 1-based line number in the file.
    pub line: usize,
    pub commit: String,
    /// None for crashes (karpathy writes them as 0.000000).
    pub metric: Option<f64>,
    pub memory_gb: Option<f64>,
    pub status: Status,
    pub description: String,
    /// Every other column by its header name (mfu, tok_per_sec, …), as written.
    pub extra: BTreeMap<String, String>,
    /// A date or time column's value, as written.
    pub date: Option<String>,
    /// Why the row was read the way it was (a zero read as a failed run).
    pub note: Option<String>,
}

/// What a results.tsv held.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Imported {
    /// The metric column's header, e.g. `val_bpb`.
    pub metric_name: String,
    /// The header's column names as written (assumed karpathy's five when missing).
    pub columns: Vec<String>,
    pub rows: Vec<ImportedRow>,
    /// (1-based line number, why) for each non-blank line that was not a row.
    pub skipped: Vec<(usize, String)>,
    /// The 1-based column the metric was read from.
    pub metric_column: usize,
    /// The training budget, when a budget column says the same on every row.
    pub budget: Option<std::time::Duration>,
}

/// Reads and parses a results.tsv; fails only when the file cannot be read or holds no
/// row at all.
pub fn read_results(path: &Path) -> Result<Imported, ImportError> {
    read_results_with(path, &ImportOptions::default())
}

/// [`read_results`] with a chosen metric column.
pub fn read_results_with(path: &Path, opts: &ImportOptions) -> Result<Imported, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    // Hand-edited files are not always UTF-8; a stray byte must not lose the night.
    let text = String::from_utf8_lossy(&bytes);
    if let Some(wanted) = opts.metric {
        let header = header_fields(&text);
        if !header.iter().any(|h| norm(h) == norm(wanted)) {
            return Err(ImportError::NoSuchMetric {
                path: path.to_path_buf(),
                wanted: wanted.to_string(),
                columns: header
                    .iter()
                    .map(|h| format!("`{}`", h.trim()))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    let imported = parse_results_with(&text, opts);
    if imported.rows.is_empty() {
        let first_reasons = imported
            .skipped
            .iter()
            .take(3)
            .map(|(l, why)| format!("line {l}: {why}"))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(ImportError::NoRows {
            path: path.to_path_buf(),
            skipped: imported.skipped.len(),
            first_reasons: if first_reasons.is_empty() {
                "the file is empty".to_string()
            } else {
                first_reasons
            },
        });
    }
    Ok(imported)
}

fn header_fields(text: &str) -> Vec<String> {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim_start_matches('\u{feff}')
                .split('\t')
                .map(|f| f.trim_end_matches('\r').to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Where each known column is.
struct Columns {
    names: Vec<String>,
    commit: usize,
    metric: usize,
    memory: Option<usize>,
    status: usize,
    description: Option<usize>,
    date: Option<usize>,
    budget: Option<usize>,
}

fn norm(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace([' ', '-'], "_")
}

fn is_memory(n: &str) -> bool {
    matches!(
        n,
        "memory_gb" | "memory" | "mem_gb" | "peak_memory_gb" | "vram_gb"
    )
}

fn is_description(n: &str) -> bool {
    matches!(n, "description" | "desc" | "change" | "notes" | "note")
}

fn is_date(n: &str) -> bool {
    matches!(
        n,
        "date"
            | "time"
            | "timestamp"
            | "datetime"
            | "started"
            | "started_at"
            | "finished_at"
            | "when"
    )
}

fn is_budget(n: &str) -> bool {
    matches!(
        n,
        "budget" | "time_budget" | "budget_s" | "budget_seconds" | "budget_min" | "budget_minutes"
    )
}

/// Columns that are never the metric even when they hold numbers.
fn is_bookkeeping(n: &str) -> bool {
    matches!(
        n,
        "step"
            | "steps"
            | "iteration"
            | "iter"
            | "exp"
            | "experiment"
            | "#"
            | "id"
            | "run"
            | "n"
            | "seed"
            | "duration"
            | "duration_s"
            | "elapsed"
            | "seconds"
            | "minutes"
    ) || is_date(n)
        || is_budget(n)
}

/// Metric names seen in the wild, most likely first.
const METRIC_NAMES: &[&str] = &[
    "val_bpb",
    "bpb",
    "val_loss",
    "eval_loss",
    "valid_loss",
    "test_loss",
    "loss",
    "val_acc",
    "val_accuracy",
    "accuracy",
    "acc",
    "val_ppl",
    "perplexity",
    "ppl",
    "score",
    "metric",
    "reward",
    "f1",
    "bleu",
];

impl Columns {
    /// karpathy's five, for files without a header line.
    fn karpathy() -> Self {
        Columns {
            names: ["commit", "val_bpb", "memory_gb", "status", "description"]
                .map(String::from)
                .to_vec(),
            commit: 0,
            metric: 1,
            memory: Some(2),
            status: 3,
            description: Some(4),
            date: None,
            budget: None,
        }
    }

    /// Reads a header line; Err(why) when it is not one we can read. The metric is
    /// the column `opts` names, else one with a known metric name, else the first other
    /// column whose first value is a number.
    fn from_header(
        fields: &[&str],
        first_row: Option<&[&str]>,
        opts: &ImportOptions,
    ) -> Result<Self, String> {
        let normed: Vec<String> = fields.iter().map(|f| norm(f)).collect();
        let find = |pred: &dyn Fn(&str) -> bool| normed.iter().position(|n| pred(n));
        let status = find(&|n| n == "status").ok_or("header has no `status` column")?;
        let commit = find(&|n| matches!(n, "commit" | "hash" | "sha")).unwrap_or(0);
        let memory = find(&|n| is_memory(n));
        let description = find(&|n| is_description(n));
        let date = find(&|n| is_date(n));
        let budget = find(&|n| is_budget(n));
        let known = |i: usize| {
            i == commit
                || i == status
                || Some(i) == memory
                || Some(i) == description
                || is_bookkeeping(&normed[i])
        };
        let by_name = |name: &str| normed.iter().position(|n| *n == norm(name));
        let metric = opts
            .metric
            .and_then(by_name)
            .or_else(|| opts.metric_hint.and_then(by_name))
            .or_else(|| METRIC_NAMES.iter().find_map(|m| by_name(m)))
            .or_else(|| {
                (0..fields.len()).find(|&i| {
                    !known(i)
                        && first_row
                            .and_then(|r| r.get(i))
                            .is_some_and(|v| v.trim().parse::<f64>().is_ok())
                })
            })
            // karpathy's place for it, when that column is nothing else (a header alone).
            .or_else(|| {
                let plain = |i: usize| {
                    i != commit && i != status && Some(i) != memory && Some(i) != description
                };
                (fields.len() > 1 && plain(1)).then_some(1)
            })
            .ok_or(
                "header names no metric column and none holds numbers (choose one with --metric)",
            )?;
        Ok(Columns {
            names: fields.iter().map(|f| f.trim().to_string()).collect(),
            commit,
            metric,
            memory,
            status,
            description,
            date,
            budget,
        })
    }

    fn parse_row(&self, line: usize, fields: &[&str]) -> Result<ImportedRow, String> {
        let needed = [Some(self.commit), Some(self.metric), Some(self.status)]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(0)
            + 1;
        if fields.len() < needed {
            return Err(format!(
                "expected at least {needed} tab-separated columns, found {}",
                fields.len()
            ));
        }
        if fields
            .iter()
            .map(|f| norm(f))
            .eq(self.names.iter().map(|n| norm(n)))
        {
            return Err("repeated header".to_string());
        }
        let raw_status = fields[self.status].trim();
        let mut status = parse_status(raw_status)
            .ok_or_else(|| format!("unknown status `{}`", shorten(raw_status)))?;
        let commit = fields[self.commit].trim().to_string();
        if commit.is_empty() || commit.contains(char::is_whitespace) {
            return Err(format!("`{}` is not a commit", shorten(&commit)));
        }
        let raw_metric = fields[self.metric].trim();
        let mut note = None;
        // karpathy's loop logs a failed run as 0.000000 whatever it calls it: a zero is a
        // crash, not a result better than every real one.
        if status != Status::Crash && raw_metric.parse::<f64>() == Ok(0.0) {
            note = Some(format!(
                "logged as {raw_metric} with status `{}`: read as a failed run",
                shorten(raw_status)
            ));
            status = Status::Crash;
        }
        let metric = match raw_metric.parse::<f64>() {
            // Crash rows carry zeros, not measurements.
            Ok(v) if status == Status::Crash && v == 0.0 => None,
            Ok(v) if v.is_finite() => Some(v),
            Ok(_) if status == Status::Crash => None,
            Err(_) if status == Status::Crash => None,
            Err(_) if raw_metric.is_empty() => {
                return Err(format!(
                    "no {} value on a {status} row",
                    self.names[self.metric]
                ));
            }
            _ => {
                return Err(format!(
                    "{} `{}` is not a finite number",
                    self.names[self.metric],
                    shorten(raw_metric)
                ));
            }
        };
        let memory_gb = self
            .memory
            .and_then(|i| fields.get(i))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && !(status == Status::Crash && *v == 0.0));
        // A description may itself contain tabs when it is the last column.
        let description = match self.description {
            Some(i) if i + 1 == self.names.len() => fields.get(i..).map(|f| f.join("\t")),
            Some(i) => fields.get(i).map(|f| f.to_string()),
            None => None,
        }
        .unwrap_or_default()
        .trim()
        .to_string();
        let mut extra = BTreeMap::new();
        for (i, name) in self.names.iter().enumerate() {
            let used = i == self.commit
                || i == self.metric
                || i == self.status
                || Some(i) == self.memory
                || Some(i) == self.description
                || Some(i) == self.date;
            if let (false, Some(v)) = (used, fields.get(i)) {
                extra.insert(name.clone(), v.trim().to_string());
            }
        }
        let cell = |i: Option<usize>| {
            i.and_then(|i| fields.get(i))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        Ok(ImportedRow {
            line,
            commit,
            metric,
            memory_gb,
            status,
            description,
            extra,
            date: cell(self.date),
            note,
        })
    }
}

fn shorten(s: &str) -> String {
    crate::report::shorten(s, 40)
}

/// Statuses as others write them: ours and karpathy's, and the usual words for a run
/// that ran out of memory or time.
fn parse_status(raw: &str) -> Option<Status> {
    Status::parse(raw).or_else(|| {
        Some(match norm(raw).as_str() {
            "oom" | "timeout" | "timed_out" | "nan" | "diverged" | "killed" => Status::Crash,
            "improved" | "accepted" | "accept" | "new_best" => Status::Keep,
            "worse" | "reject" | "no_improvement" | "skip" | "skipped" => Status::Discard,
            _ => return None,
        })
    })
}

/// A budget cell: seconds (`300`), or with a unit (`5m`, `300s`, `1h`).
fn parse_budget(v: &str) -> Option<std::time::Duration> {
    let v = v.trim();
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(std::time::Duration::from_secs_f64)
        .or_else(|| crate::config::duration::parse(v).ok())
}

/// A line that names columns rather than holds values: two or more fields, none a number.
fn looks_like_header(fields: &[&str]) -> bool {
    fields.len() >= 2
        && fields
            .iter()
            .all(|f| !f.trim().is_empty() && f.trim().parse::<f64>().is_err())
}

/// Parses results.tsv text. Never fails: what cannot be read lands in `skipped`.
pub fn parse_results(text: &str) -> Imported {
    parse_results_with(text, &ImportOptions::default())
}

/// [`parse_results`] with a chosen metric column.
pub fn parse_results_with(text: &str, opts: &ImportOptions) -> Imported {
    let lines: Vec<(usize, &str)> = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let mut out = Imported::default();
    let Some(&(_, first)) = lines.first() else {
        return out;
    };
    let split = |l: &str| -> Vec<String> { l.split('\t').map(str::to_string).collect() };
    let header: Vec<String> = split(first.trim_start_matches('\u{feff}'));
    let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
    let second = lines.get(1).map(|(_, l)| split(l));
    let second_refs: Option<Vec<&str>> = second
        .as_ref()
        .map(|v| v.iter().map(String::as_str).collect());
    let (cols, body) = match Columns::from_header(&header_refs, second_refs.as_deref(), opts) {
        Ok(c) => (c, &lines[1..]),
        Err(not_header) => {
            // No usable header: read karpathy's five columns if the first line fits them,
            // otherwise the first line was a header we do not understand.
            let k = Columns::karpathy();
            if k.parse_row(lines[0].0, &header_refs).is_ok() {
                (k, &lines[..])
            } else {
                out.skipped.push((
                    lines[0].0,
                    format!("{not_header}; assuming karpathy's five columns"),
                ));
                (k, &lines[1..])
            }
        }
    };
    // A table of something else appended below (a tally by category, notes): its lines
    // are named as such, not each as a broken row.
    let mut other_table: Option<(usize, String)> = None;
    for &(line, text) in body {
        let fields: Vec<&str> = text.split('\t').collect();
        match cols.parse_row(line, &fields) {
            Ok(row) => {
                other_table = None;
                out.rows.push(row);
            }
            Err(why) if why == "repeated header" => out.skipped.push((line, why)),
            Err(why) => {
                let why = match &other_table {
                    Some((start, names)) => {
                        format!(
                            "in the table of {names} that starts at line {start}, not an experiment"
                        )
                    }
                    None if !out.rows.is_empty() && looks_like_header(&fields) => {
                        let names = fields
                            .iter()
                            .map(|f| shorten(f.trim()))
                            .collect::<Vec<_>>()
                            .join(", ");
                        let why = format!("another table starts here ({names}): not experiments");
                        other_table = Some((line, names));
                        why
                    }
                    None => why,
                };
                out.skipped.push((line, why));
            }
        }
    }
    out.budget = cols.budget.and_then(|i| {
        let mut values = out
            .rows
            .iter()
            .filter_map(|r| r.extra.get(&cols.names[i]))
            .map(|v| parse_budget(v));
        let first = values.next()??;
        values.all(|v| v == Some(first)).then_some(first)
    });
    out.metric_name = cols.names[cols.metric].clone();
    out.metric_column = cols.metric + 1;
    out.columns = cols.names;
    out
}
