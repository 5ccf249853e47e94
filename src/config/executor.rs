//! Reading the `[executor]` table: where training runs go. `kind = "local"` (the default)
//! runs them as processes here; `kind = "slurm"` submits each as a Slurm job with the
//! partition, account, QoS, GPUs, CPUs, memory and extra `sbatch` arguments given here.
//! Reads and validates only; `runner::slurm` submits.

use super::error::{ConfigError, invalid_at};
use super::section::Section;
use std::time::Duration;

pub(super) const KEYS: &[&str] = &[
    "kind",
    "partition",
    "account",
    "qos",
    "gpus_per_job",
    "cpus_per_job",
    "mem",
    "time_margin",
    "sbatch_args",
    "shared_dir",
];

/// Where training runs go.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ExecutorConfig {
    /// Processes on this machine.
    #[default]
    Local,
    Slurm(SlurmConfig),
}

/// `[executor] kind = "slurm"`: how each run's job is requested.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmConfig {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// `--gpus=N` per job.
    pub gpus_per_job: Option<u32>,
    /// `--cpus-per-task=N`.
    pub cpus_per_job: Option<u32>,
    /// `--mem=…` as Slurm spells it (`64G`).
    pub mem: Option<String>,
    /// Added to the hard timeout for the job's `--time` (Slurm's own limit is a backstop).
    pub time_margin: Duration,
    /// Passed to `sbatch` as they are, e.g. `["--constraint=a100"]`.
    pub sbatch_args: Vec<String>,
    /// Where the run folders and worktrees live when the repository is not on a
    /// filesystem every node sees (`$VAR` and a leading `~` expanded); None: inside the
    /// repository's `.autoresearch/`.
    pub shared_dir: Option<std::path::PathBuf>,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        SlurmConfig {
            partition: None,
            account: None,
            qos: None,
            gpus_per_job: None,
            cpus_per_job: None,
            mem: None,
            time_margin: Duration::from_secs(300),
            sbatch_args: Vec::new(),
            shared_dir: None,
        }
    }
}

impl ExecutorConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            ExecutorConfig::Local => "local",
            ExecutorConfig::Slurm(_) => "slurm",
        }
    }

    /// One line for the Research Config: `slurm (partition gpu, 1 GPU, 8 CPUs per job)`.
    pub fn describe(&self) -> String {
        match self {
            ExecutorConfig::Local => "local processes".into(),
            ExecutorConfig::Slurm(s) => {
                let mut parts = Vec::new();
                parts.push(format!(
                    "partition {}",
                    s.partition.as_deref().unwrap_or("(default)")
                ));
                if let Some(a) = &s.account {
                    parts.push(format!("account {a}"));
                }
                if let Some(q) = &s.qos {
                    parts.push(format!("qos {q}"));
                }
                if let Some(g) = s.gpus_per_job {
                    parts.push(format!("{g} GPU(s)"));
                }
                if let Some(c) = s.cpus_per_job {
                    parts.push(format!("{c} CPU(s)"));
                }
                if let Some(m) = &s.mem {
                    parts.push(format!("mem {m}"));
                }
                format!("Slurm jobs ({} per job)", parts.join(", "))
            }
        }
    }
}

pub(super) fn read(top: &Section) -> Result<ExecutorConfig, ConfigError> {
    let Some(t) = top.table("executor", KEYS)? else {
        return Ok(ExecutorConfig::Local);
    };
    let kind = match t.string("kind")? {
        Some((k, at)) => match k.trim() {
            "local" => "local",
            "slurm" => "slurm",
            _ => {
                return Err(invalid_at(
                    at,
                    "executor.kind",
                    format!("is `{k}`"),
                    "use \"local\" (processes on this machine) or \"slurm\"",
                ));
            }
        },
        None => "local",
    };
    if kind == "local" {
        if let Some((key, at)) = KEYS[1..]
            .iter()
            .find_map(|k| t.get(k).map(|(_, at)| (k, at)))
        {
            return Err(invalid_at(
                at,
                "executor",
                format!("sets `{key}` for local runs"),
                "add kind = \"slurm\" to run on Slurm, or remove the Slurm settings",
            ));
        }
        return Ok(ExecutorConfig::Local);
    }
    let mut s = SlurmConfig::default();
    let word = |key: &str| -> Result<Option<String>, ConfigError> {
        match t.string(key)? {
            Some((v, at)) if v.trim().is_empty() || v.chars().any(char::is_whitespace) => {
                Err(invalid_at(
                    at,
                    &format!("executor.{key}"),
                    format!("is `{v}`"),
                    "give one word, as sbatch takes it",
                ))
            }
            Some((v, _)) => Ok(Some(v)),
            None => Ok(None),
        }
    };
    s.partition = word("partition")?;
    s.account = word("account")?;
    s.qos = word("qos")?;
    s.mem = word("mem")?;
    s.gpus_per_job = t.uint("gpus_per_job")?;
    s.cpus_per_job = t.uint("cpus_per_job")?.filter(|n| *n > 0);
    if let Some((d, _)) = t.duration("time_margin", "a duration like \"5m\"")? {
        s.time_margin = d;
    }
    if let Some(list) = t.string_list("sbatch_args")? {
        s.sbatch_args = list.into_iter().map(|(a, _)| a).collect();
    }
    if let Some((dir, at)) = t.string("shared_dir")? {
        let expanded = expand(&dir).map_err(|var| {
            invalid_at(
                at.clone(),
                "executor.shared_dir",
                format!("names ${var}, which is not set"),
                "set it, or write the path out",
            )
        })?;
        if !expanded.is_absolute() {
            return Err(invalid_at(
                at,
                "executor.shared_dir",
                format!("is `{dir}`, a relative path"),
                "give an absolute path every node sees, e.g. \"/scratch/$USER/autoresearch\"",
            ));
        }
        s.shared_dir = Some(expanded);
    }
    Ok(ExecutorConfig::Slurm(s))
}

/// `text` with `$VAR`, `${VAR}` and a leading `~` expanded; Err: the variable not set.
fn expand(text: &str) -> Result<std::path::PathBuf, String> {
    let mut out = String::new();
    let home = super::home_path(text).ok_or_else(|| "HOME".to_string())?;
    let home = home.to_string_lossy();
    let mut rest: &str = &home;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = match after.strip_prefix('{') {
            Some(b) => match b.find('}') {
                Some(j) => (&b[..j], &b[j + 1..]),
                None => (b, ""),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        if name.is_empty() {
            out.push('$');
        } else {
            out.push_str(&std::env::var(name).map_err(|_| name.to_string())?);
        }
        rest = tail;
    }
    out.push_str(rest);
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn shared_dir_expands_variables_and_home() {
        let home = std::env::var("HOME").unwrap();
        assert_eq!(
            super::expand("~/x").unwrap(),
            std::path::PathBuf::from(format!("{home}/x"))
        );
        assert_eq!(
            super::expand("/s/${HOME}/a$HOME").unwrap(),
            std::path::PathBuf::from(format!("/s/{home}/a{home}"))
        );
        assert_eq!(
            super::expand("/a/$/b").unwrap(),
            std::path::PathBuf::from("/a/$/b")
        );
        assert_eq!(
            super::expand("/x/$AUTORESEARCH_SURELY_UNSET_VAR").unwrap_err(),
            "AUTORESEARCH_SURELY_UNSET_VAR"
        );
    }
}
