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
    Ok(ExecutorConfig::Slurm(s))
}
