//! Reading results.tsv files that this tool did not write (hand-run karpathy sessions and
//! their variants). Tolerant: columns are found by header name, anything not understood is
//! skipped with its line number and a reason. Never writes anything.

use crate::experiment::{Category, ExperimentRecord, Status};
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
        "{path}: no experiment rows could be read ({skipped} lines skipped); expected a tab-separated results.tsv with a header such as `commit<TAB>val_bpb<TAB>memory_gb<TAB>status<TAB>description`"
    )]
    NoRows { path: PathBuf, skipped: usize },
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
}

/// Reads and parses a results.tsv; fails only when the file cannot be read or holds no
/// row at all.
pub fn read_results(path: &Path) -> Result<Imported, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    // Hand-edited files are not always UTF-8; a stray byte must not lose the night.
    let imported = parse_results(&String::from_utf8_lossy(&bytes));
    if imported.rows.is_empty() {
        return Err(ImportError::NoRows {
            path: path.to_path_buf(),
            skipped: imported.skipped.len(),
        });
    }
    Ok(imported)
}

/// Where each known column is.
struct Columns {
    names: Vec<String>,
    commit: usize,
    metric: usize,
    memory: Option<usize>,
    status: usize,
    description: Option<usize>,
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
        }
    }

    /// Reads a header line; None when it is not one (no `status` column).
    fn from_header(fields: &[&str], first_row: Option<&[&str]>) -> Option<Self> {
        let normed: Vec<String> = fields.iter().map(|f| norm(f)).collect();
        let find = |pred: &dyn Fn(&str) -> bool| normed.iter().position(|n| pred(n));
        let status = find(&|n| n == "status")?;
        let commit = find(&|n| matches!(n, "commit" | "hash" | "sha")).unwrap_or(0);
        let memory = find(&|n| is_memory(n));
        let description = find(&|n| is_description(n));
        let known =
            |i: usize| i == commit || i == status || Some(i) == memory || Some(i) == description;
        // The metric is the second column unless that is a known one; then the first
        // other column whose first value is a number.
        let metric = if fields.len() > 1 && !known(1) {
            1
        } else {
            (0..fields.len()).find(|&i| {
                !known(i)
                    && first_row
                        .and_then(|r| r.get(i))
                        .is_some_and(|v| v.trim().parse::<f64>().is_ok())
            })?
        };
        Some(Columns {
            names: fields.iter().map(|f| f.trim().to_string()).collect(),
            commit,
            metric,
            memory,
            status,
            description,
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
        let status = Status::parse(raw_status)
            .ok_or_else(|| format!("unknown status `{}`", shorten(raw_status)))?;
        let commit = fields[self.commit].trim().to_string();
        if commit.is_empty() || commit.contains(char::is_whitespace) {
            return Err(format!("`{}` is not a commit", shorten(&commit)));
        }
        let raw_metric = fields[self.metric].trim();
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
                || Some(i) == self.description;
            if let (false, Some(v)) = (used, fields.get(i)) {
                extra.insert(name.clone(), v.trim().to_string());
            }
        }
        Ok(ImportedRow {
            line,
            commit,
            metric,
            memory_gb,
            status,
            description,
            extra,
        })
    }
}

fn shorten(s: &str) -> String {
    crate::report::shorten(s, 40)
}

/// Parses results.tsv text. Never fails: what cannot be read lands in `skipped`.
pub fn parse_results(text: &str) -> Imported {
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
    let (cols, body) = match Columns::from_header(&header_refs, second_refs.as_deref()) {
        Some(c) => (c, &lines[1..]),
        None => {
            // No usable header: read karpathy's five columns if the first line fits them,
            // otherwise the first line was a header we do not understand.
            let k = Columns::karpathy();
            if k.parse_row(lines[0].0, &header_refs).is_ok() {
                (k, &lines[..])
            } else {
                out.skipped.push((
                    lines[0].0,
                    "header has no `status` column; assuming karpathy's five columns".into(),
                ));
                (k, &lines[1..])
            }
        }
    };
    for &(line, text) in body {
        let fields: Vec<&str> = text.split('\t').collect();
        match cols.parse_row(line, &fields) {
            Ok(row) => out.rows.push(row),
            Err(why) => out.skipped.push((line, why)),
        }
    }
    out.metric_name = cols.names[cols.metric].clone();
    out.columns = cols.names;
    out
}

/// Guesses a category from free text, for the summary's grouping of imported rows.
fn guess_category(description: &str) -> Category {
    let d = description.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| d.contains(w));
    if has(&[
        "adam", "muon", "optim", "momentum", "beta", "nesterov", "sgd",
    ]) {
        Category::Optimizer
    } else if has(&[
        "warmup", "warmdown", "cooldown", "schedule", "anneal", "clip", "dropout", "ema",
    ]) {
        Category::TrainingDynamics
    } else if has(&["lr", "learning rate", "weight decay", "batch", "wd "]) {
        Category::Hyperparameters
    } else if has(&[
        "layer",
        "head",
        "depth",
        "width",
        "dim",
        "embed",
        "attention",
        "mlp",
        "norm",
        "gelu",
        "relu",
        "rope",
        "window",
        "activation",
    ]) {
        Category::Architecture
    } else if has(&["data", "token", "seq", "context", "shuffle"]) {
        Category::Data
    } else {
        Category::Other
    }
}

impl Imported {
    /// Turns the rows into records so the reports can render them: the first row is the
    /// baseline (iteration 0), each later row one iteration; categories are guessed from
    /// the descriptions.
    pub fn to_records(&self) -> Vec<ExperimentRecord> {
        let mut parent = String::new();
        self.rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let mut metrics: BTreeMap<String, f64> = row
                    .extra
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.parse::<f64>().ok()?)))
                    .collect();
                if let Some(m) = row.metric {
                    metrics.insert(self.metric_name.clone(), m);
                }
                let category = if i == 0 {
                    Category::Baseline
                } else {
                    guess_category(&row.description)
                };
                let rec = ExperimentRecord {
                    id: i as i64 + 1,
                    iteration: i as u64,
                    attempt: 1,
                    parent: parent.clone(),
                    commit: row.commit.clone(),
                    status: row.status,
                    metric: row.metric,
                    metrics,
                    memory_gb: row.memory_gb,
                    description: row.description.clone(),
                    category,
                    proposer: "imported".to_string(),
                    reason: String::new(),
                    log_path: None,
                    started_at: String::new(),
                    finished_at: None,
                    duration_s: None,
                    state_hash: String::new(),
                };
                if row.status == Status::Keep {
                    parent = row.commit.clone();
                }
                rec
            })
            .collect()
    }
}
