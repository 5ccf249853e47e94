//! Writing results.tsv in karpathy's format: `commit`, the metric's name, `memory_gb`,
//! `status`, `description`, tab-separated; crashes as `0.000000` and `0.0`. The file is
//! regenerated from the journal and replaced atomically, so it can never hold a finished
//! experiment twice or a half-written row.

use super::StoreError;
use crate::experiment::ExperimentRecord;
use std::io::Write;
use std::path::Path;

/// The text of results.tsv for these experiments (rows for keep/discard/crash only).
pub fn render(metric_name: &str, records: &[ExperimentRecord]) -> String {
    let mut out = format!(
        "commit\t{}\tmemory_gb\tstatus\tdescription\n",
        clean(metric_name)
    );
    for r in records.iter().filter(|r| r.status.in_results_tsv()) {
        let crashed = r.status == crate::experiment::Status::Crash;
        let metric = if crashed { None } else { r.metric };
        let memory = if crashed { None } else { r.memory_gb };
        let commit: String = r.commit.chars().take(7).collect();
        let description = match r.repeats_note() {
            Some(note) => format!("{} ({note})", r.description),
            None => r.description.clone(),
        };
        // A pruned run: the note that says where and against what (before the evidence).
        let description = match r.status {
            crate::experiment::Status::Pruned => {
                let note = r.reason.split("; ").next().unwrap_or("pruned");
                format!("{description} ({note})")
            }
            _ => description,
        };
        out.push_str(&format!(
            "{}\t{:.6}\t{:.1}\t{}\t{}\n",
            if commit.is_empty() {
                "-".into()
            } else {
                commit
            },
            metric.unwrap_or(0.0),
            memory.unwrap_or(0.0),
            r.status.tsv_str(),
            clean(&description)
        ));
    }
    out
}

/// Tabs and newlines would break the columns.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == '\t' || c == '\n' || c == '\r' {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// Writes `text` to `path` atomically: a temporary file beside it, fsync, rename.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), StoreError> {
    write_bytes_atomic(path, text.as_bytes())
}

/// Writes `bytes` to `path` atomically (readers never see a half-written file).
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let err = |source| StoreError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        // Made afresh, never opened through what is there: a training run could have left
        // a symlink at this name to have us write through it (out of its box).
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        crate::chaos::point("results_tmp");
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)?;
    crate::chaos::point("results");
    Ok(())
}

/// Regenerates results.tsv from the journal's records.
pub fn write(
    path: &Path,
    metric_name: &str,
    records: &[ExperimentRecord],
) -> Result<(), StoreError> {
    write_atomic(path, &render(metric_name, records))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{Category, Status};

    fn rec(commit: &str, status: Status, metric: Option<f64>, desc: &str) -> ExperimentRecord {
        ExperimentRecord {
            id: 1,
            iteration: 1,
            attempt: 1,
            parent: String::new(),
            commit: commit.into(),
            status,
            metric,
            metrics: Default::default(),
            memory_gb: Some(44.04),
            description: desc.into(),
            category: Category::Other,
            proposer: "search".into(),
            reason: String::new(),
            log_path: None,
            started_at: String::new(),
            finished_at: None,
            duration_s: None,
            state_hash: String::new(),
        }
    }

    #[test]
    fn renders_karpathys_columns() {
        let text = render(
            "val_bpb",
            &[
                rec("a1b2c3d4e5", Status::Keep, Some(0.9979), "baseline"),
                rec(
                    "b2c3d4e",
                    Status::Discard,
                    Some(1.005),
                    "switch to GeLU\tactivation",
                ),
                rec(
                    "c3d4e5f",
                    Status::Crash,
                    Some(f64::NAN),
                    "double the width (OOM)",
                ),
                rec("", Status::Rejected, None, "touched prepare.py"),
            ],
        );
        assert_eq!(
            text,
            "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n\
             a1b2c3d\t0.997900\t44.0\tkeep\tbaseline\n\
             b2c3d4e\t1.005000\t44.0\tdiscard\tswitch to GeLU activation\n\
             c3d4e5f\t0.000000\t0.0\tcrash\tdouble the width (OOM)\n"
        );
    }

    #[test]
    fn atomic_write_replaces_and_reports_unwritable_paths() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("results.tsv");
        write(&p, "m", &[]).unwrap();
        write(&p, "m", &[rec("abcdef0", Status::Keep, Some(1.0), "x")]).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap().lines().count(), 2);
        let bad = dir.path().join("missing-dir").join("results.tsv");
        let e = write(&bad, "m", &[]).unwrap_err().to_string();
        assert!(
            e.contains("cannot write") && e.contains("disk space"),
            "{e}"
        );
    }
}
