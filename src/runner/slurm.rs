//! Running a job on Slurm: a batch script written into the run folder (for the user to
//! read), `sbatch --parsable` with the orchestrator's credentials scrubbed from what the
//! job inherits, then `scontrol show job -o` until Slurm says the job is over. Time in the
//! queue never counts against the budget; the hard timeout counts from RUNNING and ends in
//! `scancel`, as does Ctrl-C, and either waits until Slurm says the job is gone. A node
//! failure or preemption submits the run again instead of calling it a crash.

use super::local::{RUN_TOKEN_ENV, remove_secrets};
use super::sandbox::quote;
use super::{Cancel, Executor, Exit, Job, RunOutcome, RunnerError};
use crate::config::SlurmConfig;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How often the job's state and its output are read.
const POLL: Duration = Duration::from_millis(200);
/// How many times a run lost to a node failure or preemption is submitted again.
const RESUBMITS: u32 = 3;
/// The session's jobs carry its token as their comment, so a resume finds them.
const NAME_PREFIX: &str = "autoresearch-";

/// Runs jobs as Slurm batch jobs.
#[derive(Debug, Clone)]
pub struct SlurmExecutor {
    cfg: SlurmConfig,
}

/// A job's state as `scontrol show job -o` tells it.
#[derive(Debug, Clone, Default)]
struct JobInfo {
    state: String,
    reason: String,
    exit_code: String,
}

impl SlurmExecutor {
    pub fn new(cfg: SlurmConfig) -> SlurmExecutor {
        SlurmExecutor { cfg }
    }

    /// Fails with Slurm's own words when the controller cannot be reached or the
    /// partition does not exist: said once at start, before any run.
    pub fn check(&self) -> Result<String, RunnerError> {
        let mut args = vec!["-h".to_string(), "-o".into(), "%P %a %D %T".into()];
        if let Some(p) = &self.cfg.partition {
            args.push("-p".into());
            args.push(p.clone());
        }
        let out = slurm("sinfo", &args)?;
        let text = out.trim();
        if text.is_empty() {
            return Err(RunnerError::Slurm(format!(
                "partition {} has no nodes (sinfo printed nothing); check [executor] partition (`sinfo -s` lists them)",
                self.cfg.partition.as_deref().unwrap_or("(default)")
            )));
        }
        Ok(text.lines().next().unwrap_or("").to_string())
    }

    /// Cancels the jobs a killed session left, found by the session token in their
    /// comment. Returns how many.
    pub fn cancel_session_jobs(&self, session: &str) -> usize {
        let Ok(out) = slurm("squeue", &["-h".into(), "-o".into(), "%i|%k".into()]) else {
            return 0;
        };
        let ids: Vec<String> = out
            .lines()
            .filter_map(|l| l.split_once('|'))
            .filter(|(_, comment)| comment.trim() == session)
            .map(|(id, _)| id.trim().to_string())
            .collect();
        for id in &ids {
            let _ = slurm("scancel", std::slice::from_ref(id));
        }
        for id in &ids {
            let _ = wait_gone(id);
        }
        ids.len()
    }

    fn submit(&self, job: &Job, script: &Path) -> Result<String, RunnerError> {
        let session = job
            .env
            .iter()
            .find(|(k, _)| k == crate::session::SESSION_ENV)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let mut cmd = Command::new("sbatch");
        cmd.arg("--parsable").arg(format!("--comment={session}"));
        // The job inherits sbatch's environment: never the orchestrator's credentials.
        remove_secrets(&mut cmd);
        cmd.arg(script).stdin(Stdio::null());
        let out = cmd.output().map_err(|e| spawn_error("sbatch", e))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(RunnerError::Slurm(format!(
                "sbatch refused the job: {}; check [executor] (partition, account, qos, sbatch_args)",
                crate::text::flat(&String::from_utf8_lossy(&out.stderr), 500)
            )));
        }
        let id = stdout.trim().split(';').next().unwrap_or("").to_string();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit() || c == '_') {
            return Err(RunnerError::Slurm(format!(
                "sbatch printed no job id ({})",
                crate::text::flat(&stdout, 200)
            )));
        }
        Ok(id)
    }

    /// The batch script for `job`: Slurm's settings, then the environment, then the
    /// (sandboxed) command in the job's directory.
    fn script(&self, job: &Job, label: &str) -> String {
        let mut s = String::from("#!/bin/sh\n# Written by autoresearch for one training run.\n");
        let minutes = (job.timeout + self.cfg.time_margin)
            .as_secs()
            .div_ceil(60)
            .max(1);
        let mut directives = vec![
            format!("--job-name={NAME_PREFIX}{label}"),
            format!("--output={}", job.log_path.display()),
            format!("--chdir={}", job.cwd.display()),
            format!("--time={minutes}"),
            "--ntasks=1".to_string(),
        ];
        let c = &self.cfg;
        directives.extend(c.partition.iter().map(|p| format!("--partition={p}")));
        directives.extend(c.account.iter().map(|a| format!("--account={a}")));
        directives.extend(c.qos.iter().map(|q| format!("--qos={q}")));
        directives.extend(c.gpus_per_job.iter().map(|g| format!("--gpus={g}")));
        directives.extend(
            c.cpus_per_job
                .iter()
                .map(|n| format!("--cpus-per-task={n}")),
        );
        directives.extend(c.mem.iter().map(|m| format!("--mem={m}")));
        directives.extend(c.sbatch_args.iter().cloned());
        for d in directives {
            s.push_str(&format!("#SBATCH {d}\n"));
        }
        for (k, v) in &job.env {
            s.push_str(&format!("export {k}={}\n", quote(v)));
        }
        s.push_str(&format!("export {RUN_TOKEN_ENV}={}\n", quote(label)));
        let cmd = job.sandbox.command(job);
        let mut words = vec![quote(&cmd.get_program().to_string_lossy())];
        words.extend(cmd.get_args().map(|a| quote(&a.to_string_lossy())));
        s.push_str(&format!("exec {}\n", words.join(" ")));
        s
    }
}

impl Executor for SlurmExecutor {
    fn reap_session(&self, session: &str) -> usize {
        self.cancel_session_jobs(session)
    }

    fn run(
        &self,
        job: &Job,
        cancel: &Cancel,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<RunOutcome, RunnerError> {
        let dir = job
            .log_path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let io = |source| RunnerError::Log {
            path: job.log_path.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let label = dir
            .file_name()
            .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
        let script = dir.join("job.sbatch");
        std::fs::write(&script, self.script(job, &label)).map_err(io)?;
        let mut tries = 0;
        loop {
            let id = self.submit(job, &script)?;
            let _ = std::fs::write(dir.join("job.id"), format!("{id}\n"));
            let followed = follow(job, &id, cancel, on_line)?;
            match followed {
                Followed::Lost(state) if tries < RESUBMITS => {
                    tries += 1;
                    on_line(&format!(
                        "autoresearch: job {id} ended with {state} (not the script's doing); submitted again"
                    ));
                }
                Followed::Lost(state) => {
                    // The crash reason is the log's last line: say there what happened.
                    use std::io::Write;
                    if let Ok(mut f) = std::fs::OpenOptions::new()
                        .append(true)
                        .create(true)
                        .open(&job.log_path)
                    {
                        let _ = writeln!(
                            f,
                            "autoresearch: job {id} ended with {state} {RESUBMITS} times; not run"
                        );
                    }
                    return Ok(outcome(job, Exit::Code(255), Duration::ZERO, &id));
                }
                Followed::Ended { exit, ran } => return Ok(outcome(job, exit, ran, &id)),
            }
        }
    }
}

/// How a job ended.
enum Followed {
    Ended {
        exit: Exit,
        ran: Duration,
    },
    /// A node failure or preemption: the run did not fail, it was lost.
    Lost(String),
}

fn outcome(job: &Job, exit: Exit, ran: Duration, id: &str) -> RunOutcome {
    let output_bytes = std::fs::metadata(&job.log_path).map_or(0, |m| m.len());
    RunOutcome {
        exit,
        duration: ran,
        peak_rss_bytes: None,
        log_path: job.log_path.clone(),
        output_bytes,
        stragglers_killed: 0,
        job_id: Some(id.to_string()),
    }
}

/// Follows job `id` to its end, feeding its output lines to `on_line`.
fn follow(
    job: &Job,
    id: &str,
    cancel: &Cancel,
    on_line: &mut dyn FnMut(&str),
) -> Result<Followed, RunnerError> {
    let mut tail = Tail::default();
    let mut started: Option<Instant> = None;
    let mut stopping: Option<Exit> = None;
    loop {
        let info = job_info(id)?;
        tail.read(&job.log_path, on_line);
        let state = info.state.as_str();
        let running = matches!(state, "RUNNING" | "COMPLETING" | "STOPPED" | "SUSPENDED");
        if running && started.is_none() {
            started = Some(Instant::now());
        }
        if !running && started.is_some() && matches!(state, "PENDING" | "REQUEUED") {
            // Slurm requeued it (a node went down): its next start counts from zero, and
            // its log starts again.
            started = None;
            tail = Tail::default();
            on_line(&format!(
                "autoresearch: Slurm requeued job {id} ({}); waiting for it to start again",
                info.reason
            ));
        }
        let ran = started.map_or(Duration::ZERO, |s| s.elapsed());
        if let Some(exit) = ended(&info)
            && (state == "COMPLETED" || stopping.is_some() || settled(id)?)
        {
            tail.read(&job.log_path, on_line);
            if matches!(state, "NODE_FAIL" | "PREEMPTED" | "BOOT_FAIL") && stopping.is_none() {
                return Ok(Followed::Lost(format!("{state} ({})", info.reason)));
            }
            return Ok(Followed::Ended {
                exit: stopping.unwrap_or(exit),
                ran,
            });
        }
        if stopping.is_none() {
            let why = if cancel.requested() {
                Some(Exit::Interrupted)
            } else if ran > job.timeout {
                Some(Exit::TimedOut)
            } else {
                None
            };
            if let Some(why) = why {
                let _ = slurm("scancel", &[id.to_string()]);
                stopping = Some(why);
            }
        }
        std::thread::sleep(POLL);
    }
}

/// How long a job that ended badly is watched before its end is believed: when a node
/// fails, Slurm may show the job FAILED or NODE_FAIL for a moment before it requeues it.
const SETTLE: Duration = Duration::from_secs(5);

/// Whether job `id` stays over for [`SETTLE`] (false: Slurm took it back into the queue).
fn settled(id: &str) -> Result<bool, RunnerError> {
    let until = Instant::now() + SETTLE;
    while Instant::now() < until {
        std::thread::sleep(POLL);
        if ended(&job_info(id)?).is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Our outcome for a job Slurm says is over; None while it is not.
fn ended(info: &JobInfo) -> Option<Exit> {
    let (code, signal) = info
        .exit_code
        .split_once(':')
        .map(|(c, s)| (c.parse().unwrap_or(0), s.parse().unwrap_or(0)))
        .unwrap_or((0, 0));
    Some(match info.state.as_str() {
        "COMPLETED" => Exit::Code(code),
        "FAILED" if signal > 0 => Exit::Signal(signal),
        "FAILED" => Exit::Code(if code == 0 { 1 } else { code }),
        "TIMEOUT" | "DEADLINE" => Exit::TimedOut,
        "OUT_OF_MEMORY" => Exit::Signal(9),
        "CANCELLED" => Exit::Signal(15),
        "NODE_FAIL" | "PREEMPTED" | "BOOT_FAIL" => Exit::Code(255),
        // Gone from scontrol (MinJobAge passed): treat as over.
        "" => Exit::Code(255),
        _ => return None,
    })
}

/// `scontrol show job -o <id>` as a map; an unknown job reads as state "".
fn job_info(id: &str) -> Result<JobInfo, RunnerError> {
    let out = Command::new("scontrol")
        .args(["show", "job", "-o", id])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error("scontrol", e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("Invalid job id") {
            return Ok(JobInfo::default());
        }
        return Err(RunnerError::Slurm(format!(
            "scontrol show job {id} failed: {}; is slurmctld reachable (`scontrol ping`)?",
            crate::text::flat(&err, 300)
        )));
    }
    let fields: HashMap<&str, &str> = text
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect();
    Ok(JobInfo {
        state: fields.get("JobState").copied().unwrap_or("").to_string(),
        reason: fields.get("Reason").copied().unwrap_or("").to_string(),
        exit_code: fields.get("ExitCode").copied().unwrap_or("0:0").to_string(),
    })
}

/// Waits until Slurm no longer lists job `id` as pending or running.
fn wait_gone(id: &str) -> Result<(), RunnerError> {
    for _ in 0..300 {
        if ended(&job_info(id)?).is_some() {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
    Err(RunnerError::Slurm(format!(
        "job {id} is still there a minute after scancel; cancel it by hand (`scancel {id}`)"
    )))
}

/// The new complete lines of a growing log file.
#[derive(Default)]
struct Tail {
    offset: u64,
    partial: Vec<u8>,
}

impl Tail {
    fn read(&mut self, path: &Path, on_line: &mut dyn FnMut(&str)) {
        let Ok(mut f) = std::fs::File::open(path) else {
            return;
        };
        // A log shorter than what was read was started again (a requeued job).
        if f.metadata().is_ok_and(|m| m.len() < self.offset) {
            self.offset = 0;
            self.partial.clear();
        }
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        if f.take(4 << 20).read_to_end(&mut buf).is_err() {
            return;
        }
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        // A lone `\r` ends a line too (progress bars), as for local runs.
        while let Some(i) = self.partial.iter().position(|b| *b == b'\n' || *b == b'\r') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line);
            if !line.trim().is_empty() {
                on_line(line.trim_end());
            }
        }
    }
}

/// Runs a Slurm command and returns its stdout, or Slurm's own message with the fix.
fn slurm(program: &str, args: &[String]) -> Result<String, RunnerError> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error(program, e))?;
    if !out.status.success() {
        return Err(RunnerError::Slurm(format!(
            "`{program} {}` failed: {}; is slurmctld up (`scontrol ping`) and the partition right?",
            args.join(" "),
            crate::text::flat(&String::from_utf8_lossy(&out.stderr), 500)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn spawn_error(program: &str, e: std::io::Error) -> RunnerError {
    if e.kind() == std::io::ErrorKind::NotFound {
        RunnerError::Slurm(format!(
            "`{program}` is not on PATH; run on a Slurm login node, or set [executor] kind = \"local\""
        ))
    } else {
        RunnerError::Slurm(format!("cannot run `{program}`: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_splits_progress_lines_at_a_lone_carriage_return() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("run.log");
        std::fs::write(
            &log,
            "\rstep 1 | loss: 3\rstep 2 | loss: 2\r\nval_bpb: 1\npart",
        )
        .unwrap();
        let mut tail = Tail::default();
        let mut lines = Vec::new();
        tail.read(&log, &mut |l| lines.push(l.to_string()));
        assert_eq!(
            lines,
            ["step 1 | loss: 3", "step 2 | loss: 2", "val_bpb: 1"]
        );
    }

    fn info(state: &str, exit: &str) -> JobInfo {
        JobInfo {
            state: state.into(),
            reason: "None".into(),
            exit_code: exit.into(),
        }
    }

    #[test]
    fn slurm_states_map_to_outcomes() {
        assert_eq!(ended(&info("PENDING", "0:0")), None);
        assert_eq!(ended(&info("RUNNING", "0:0")), None);
        assert_eq!(ended(&info("COMPLETED", "0:0")), Some(Exit::Code(0)));
        assert_eq!(ended(&info("FAILED", "3:0")), Some(Exit::Code(3)));
        assert_eq!(ended(&info("FAILED", "0:9")), Some(Exit::Signal(9)));
        assert_eq!(ended(&info("TIMEOUT", "0:15")), Some(Exit::TimedOut));
        assert_eq!(
            ended(&info("OUT_OF_MEMORY", "0:125")),
            Some(Exit::Signal(9))
        );
        assert_eq!(ended(&info("", "")), Some(Exit::Code(255)));
    }

    #[test]
    fn the_script_asks_for_the_time_limit_and_never_carries_a_key() {
        let exec = SlurmExecutor::new(SlurmConfig {
            partition: Some("gpu".into()),
            gpus_per_job: Some(1),
            ..SlurmConfig::default()
        });
        let job = Job {
            command: "python train.py && echo 'done'".into(),
            cwd: PathBuf::from("/repo"),
            env: vec![("AUTORESEARCH_SEED".into(), "3".into())],
            budget: Duration::from_secs(300),
            timeout: Duration::from_secs(660),
            grace: Duration::from_secs(10),
            log_path: PathBuf::from("/repo/.autoresearch/runs/0002/run.log"),
            max_log_bytes: 1 << 20,
            sandbox: Default::default(),
        };
        let s = exec.script(&job, "0002");
        // 660 s + 5 min margin = 16 min.
        assert!(s.contains("#SBATCH --time=16\n"), "{s}");
        assert!(s.contains("#SBATCH --partition=gpu\n"));
        assert!(s.contains("#SBATCH --gpus=1\n"));
        assert!(s.contains("#SBATCH --output=/repo/.autoresearch/runs/0002/run.log\n"));
        assert!(s.contains("export AUTORESEARCH_SEED=3\n"));
        assert!(
            s.contains("exec sh -c 'python train.py && echo '\\''done'\\'''\n"),
            "{s}"
        );
    }
}
