//! Writing results.tsv in karpathy's format: `commit`, the metric's name, `memory_gb`,
//! `status`, `description`, tab-separated; crashes as `0.000000` and `0.0`. The journal is
//! the source of truth: the file is regenerated from it and replaced atomically at a
//! session's start and whenever a row must change or go anywhere but the end, and
//! otherwise a finished experiment's row is appended (what it costs does not grow with the
//! journal). An append is made only to the very file the last write left (same length,
//! not a link); a kill between the journal and the append leaves the row out, and the
//! next session's start writes it.

use super::StoreError;
use crate::experiment::ExperimentRecord;
use std::io::Write;
use std::path::Path;

/// The text of results.tsv for these experiments (rows for keep/discard/crash only).
pub fn render(metric_name: &str, records: &[ExperimentRecord]) -> String {
    let mut out = header(metric_name);
    for r in records.iter().filter(|r| r.status.in_results_tsv()) {
        out.push_str(&row(r));
    }
    out
}

fn header(metric_name: &str) -> String {
    format!(
        "commit\t{}\tmemory_gb\tstatus\tdescription\n",
        clean(metric_name)
    )
}

/// One experiment's line.
fn row(r: &ExperimentRecord) -> String {
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
    format!(
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
    )
}

/// What results.tsv holds as the session last wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Its length in bytes.
    len: u64,
    /// The journal id of its last row (0: none).
    last_id: i64,
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
    let tmp = tmp_of(path);
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

/// The temporary file beside `path` that an atomic write goes through.
fn tmp_of(path: &Path) -> std::path::PathBuf {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(".{name}.tmp"))
}

/// Regenerates results.tsv from the journal's records; what it now holds.
pub fn write(
    path: &Path,
    metric_name: &str,
    records: &[ExperimentRecord],
) -> Result<Written, StoreError> {
    let text = render(metric_name, records);
    write_atomic(path, &text)?;
    let last_id = records
        .iter()
        .rev()
        .find(|r| r.status.in_results_tsv())
        .map_or(0, |r| r.id);
    Ok(Written {
        len: text.len() as u64,
        last_id,
    })
}

/// Puts `rec` (just finished, already among `records`, which are in the journal's order)
/// into results.tsv: its row appended when it belongs at the end of what `written` says
/// the file holds and the file is still that, else the whole file regenerated.
pub fn record(
    path: &Path,
    metric_name: &str,
    records: &[ExperimentRecord],
    rec: &ExperimentRecord,
    written: Option<Written>,
) -> Result<Written, StoreError> {
    if !rec.status.in_results_tsv() {
        // Not a row: the file is what it was (regenerated when that is not known).
        return match written {
            Some(w) => Ok(w),
            None => write(path, metric_name, records),
        };
    }
    // Whatever a run left at the temporary file's name (a link, for a later atomic write
    // to follow) is removed after every experiment, as when each one rewrote the file.
    let _ = std::fs::remove_file(tmp_of(path));
    match written {
        Some(w) if rec.id > w.last_id => match append(path, &row(rec), w.len) {
            Ok(Some(len)) => Ok(Written {
                len,
                last_id: rec.id,
            }),
            Ok(None) => write(path, metric_name, records),
            Err(source) => Err(StoreError::Write {
                path: path.to_path_buf(),
                source,
            }),
        },
        _ => write(path, metric_name, records),
    }
}

/// Appends `line` to the file at `path` when it is a plain file (not a link) of exactly
/// `len` bytes; its new length, or `None` when it is not that file.
fn append(path: &Path, line: &str, len: u64) -> std::io::Result<Option<u64>> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .append(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path);
    let mut f = match f {
        Ok(f) => f,
        // Gone, or a link put in its place: regenerated (the rename replaces a link).
        Err(_) => return Ok(None),
    };
    let meta = f.metadata()?;
    if !meta.is_file() || meta.len() != len {
        return Ok(None);
    }
    crate::chaos::point("results_tmp");
    // One write of one short line: no reader sees a part of it in practice, and a torn
    // tail (a power cut) is rewritten from the journal at the next start. No fsync: the
    // journal, not this file, is what must survive.
    f.write_all(line.as_bytes())?;
    crate::chaos::point("results");
    Ok(Some(len + line.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{Category, Status};
    use std::os::unix::fs::MetadataExt;

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
    fn rows_are_appended_at_the_end_and_anything_else_regenerates_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("results.tsv");
        let mut recs = vec![rec("a000000", Status::Keep, Some(1.0), "baseline")];
        let w = write(&p, "m", &recs).unwrap();
        let add = |recs: &mut Vec<ExperimentRecord>, id: i64, w: Option<Written>| {
            let mut r = rec(&format!("b{id:06}"), Status::Discard, Some(2.0), "x");
            r.id = id;
            let at = recs.partition_point(|o| o.id < id);
            recs.insert(at, r.clone());
            let w = record(&p, "m", recs, &r, w).unwrap();
            assert_eq!(std::fs::read_to_string(&p).unwrap(), render("m", recs));
            w
        };
        let w = add(&mut recs, 3, Some(w));
        let appended = std::fs::metadata(&p).unwrap().ino();
        // An earlier id finishing later (another worker's): the whole file, replaced.
        let w = add(&mut recs, 2, Some(w));
        assert_ne!(std::fs::metadata(&p).unwrap().ino(), appended);
        // A link planted at the temporary file's name is removed, and not followed.
        let planted = dir.path().join(".results.tsv.tmp");
        std::os::unix::fs::symlink(dir.path().join("victim"), &planted).unwrap();
        let w = add(&mut recs, 4, Some(w));
        assert_eq!(w.last_id, 4);
        assert!(std::fs::symlink_metadata(&planted).is_err());
        assert!(!dir.path().join("victim").exists());
        // The file changed behind our back (a user's edit): regenerated, not appended to.
        std::fs::write(&p, "commit\tm\tmemory_gb\tstatus\tdescription\n").unwrap();
        let w = add(&mut recs, 5, Some(w));
        // A link put in its place is replaced, never written through.
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "keep me").unwrap();
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink(&target, &p).unwrap();
        add(&mut recs, 6, Some(w));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
        assert!(
            !std::fs::symlink_metadata(&p)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // Unknown (a session's start): regenerated.
        add(&mut recs, 7, None);
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
