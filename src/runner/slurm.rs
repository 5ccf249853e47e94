//! Running a job on Slurm: a batch script written into the run folder (for the user to
//! read), `sbatch --parsable` with the orchestrator's credentials scrubbed from what the
//! job inherits, then `scontrol show job -o` until Slurm says the job is over. Time in the
//! queue never counts against the budget; the hard timeout counts from RUNNING and ends in
//! `scancel`, as does Ctrl-C, and either waits until Slurm says the job is gone. A node
//! failure or preemption submits the run again instead of calling it a crash.

use super::local::{RUN_TOKEN_ENV, remove_secrets};
use super::sandbox::quote;
use super::{Cancel, Executor, Exit, Job, JobNews, LiveJob, RunOutcome, RunnerError};
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
    /// How long it has run (`RunTime`), for a job followed after it started.
    run_time: Option<Duration>,
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

    /// The jobs of `session` (by the token in their comment) still in Slurm's queue:
    /// id, label (from the job name) and state.
    fn session_jobs(&self, session: &str) -> Vec<(String, String)> {
        let Ok(out) = slurm("squeue", &["-h".into(), "-o".into(), "%i|%k|%j".into()]) else {
            return Vec::new();
        };
        out.lines()
            .filter_map(|l| {
                let mut f = l.splitn(3, '|');
                let (id, comment, name) = (f.next()?, f.next()?, f.next()?);
                (comment.trim() == session).then(|| {
                    let label = name.trim().strip_prefix(NAME_PREFIX).unwrap_or("");
                    (id.trim().to_string(), label.to_string())
                })
            })
            .collect()
    }

    /// Cancels the jobs a killed session left, found by the session token in their
    /// comment, except those in `keep`. Returns how many.
    pub fn cancel_session_jobs(&self, session: &str, keep: &[String]) -> usize {
        let ids: Vec<String> = self
            .session_jobs(session)
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| !keep.contains(id))
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
        // The nodes see the paths behind the links (`shared_dir`), not the repository's.
        let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let log = match (job.log_path.parent(), job.log_path.file_name()) {
            (Some(dir), Some(name)) => real(dir).join(name),
            _ => job.log_path.clone(),
        };
        let mut directives = vec![
            format!("--job-name={NAME_PREFIX}{label}"),
            format!("--output={}", log.display()),
            format!("--chdir={}", real(&job.cwd).display()),
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
        if let Some(probe) = namespace_probe(&cmd) {
            // The login node could make the box; a compute node may not (user namespaces
            // off): the run then fails saying so, instead of running unboxed.
            s.push_str(&format!(
                "if ! {probe} >/dev/null 2>&1; then\n  echo \"autoresearch: the sandbox cannot start on node $(hostname): '{probe}' failed (user namespaces may be off there); set [sandbox] mode = \\\"none\\\" for runs on this cluster, or ask its admins to allow unprivileged user namespaces\" >&2\n  exit 125\nfi\n"
            ));
        }
        let mut words = vec![quote(&cmd.get_program().to_string_lossy())];
        words.extend(cmd.get_args().map(|a| quote(&a.to_string_lossy())));
        s.push_str(&format!("exec {}\n", words.join(" ")));
        s
    }
}

/// The folders of a session's state that the nodes must see.
const SHARED: [&str; 2] = ["runs", "worktrees"];

impl SlurmExecutor {
    /// Links `state_dir`'s run folders and worktrees into `shared`, in a folder of this
    /// project's own (its name and a hash of its path), after checking it can be written.
    fn link_shared(&self, state_dir: &Path, shared: &Path) -> Result<PathBuf, RunnerError> {
        use sha2::Digest;
        let project = state_dir.parent().unwrap_or(state_dir);
        let name = project
            .file_name()
            .map_or_else(|| "project".into(), |n| n.to_string_lossy().into_owned());
        let hash = format!(
            "{:x}",
            sha2::Sha256::digest(project.display().to_string().as_bytes())
        );
        let home = shared.join(format!("{name}-{}", &hash[..8]));
        let fail = |what: &str, e: std::io::Error| {
            RunnerError::Slurm(format!(
                "[executor] shared_dir {}: cannot {what}: {e}; point it at a directory every node can write (e.g. \"/scratch/$USER/autoresearch\")",
                shared.display()
            ))
        };
        let probe = home.join(".write-probe");
        std::fs::create_dir_all(&home)
            .and_then(|()| std::fs::write(&probe, b"autoresearch\n"))
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| fail("write there", e))?;
        for sub in SHARED {
            let target = home.join(sub);
            std::fs::create_dir_all(&target).map_err(|e| fail("create a folder", e))?;
            let link = state_dir.join(sub);
            match std::fs::read_link(&link) {
                Ok(t) if t == target => continue,
                Ok(_) => std::fs::remove_file(&link).map_err(|e| fail("relink", e))?,
                Err(_) if link.exists() => {
                    let empty = std::fs::read_dir(&link).is_ok_and(|mut d| d.next().is_none());
                    if !empty {
                        return Err(RunnerError::Slurm(format!(
                            "{} holds runs of an earlier session kept in the repository; move its contents to {} (or leave out [executor] shared_dir) and run again",
                            link.display(),
                            target.display()
                        )));
                    }
                    std::fs::remove_dir(&link).map_err(|e| fail("replace an empty folder", e))?;
                }
                Err(_) => {}
            }
            std::os::unix::fs::symlink(&target, &link).map_err(|e| fail("link it", e))?;
        }
        Ok(home)
    }
}

impl Executor for SlurmExecutor {
    fn prepare_state(&self, state_dir: &Path) -> Result<Option<String>, RunnerError> {
        let Some(shared) = &self.cfg.shared_dir else {
            return Ok(None);
        };
        let home = self.link_shared(state_dir, shared)?;
        Ok(Some(format!(
            "run folders and worktrees live in {} (shared_dir), linked from .autoresearch/",
            home.display()
        )))
    }

    fn reap_session(&self, session: &str, keep: &[String]) -> usize {
        self.cancel_session_jobs(session, keep)
    }

    fn live_jobs(&self, session: &str) -> Vec<LiveJob> {
        self.session_jobs(session)
            .into_iter()
            .map(|(id, label)| LiveJob { id, label })
            .collect()
    }

    fn run(
        &self,
        job: &Job,
        cancel: &Cancel,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<RunOutcome, RunnerError> {
        self.run_watched(job, cancel, on_line, &mut |_| {})
    }

    fn run_watched(
        &self,
        job: &Job,
        cancel: &Cancel,
        on_line: &mut dyn FnMut(&str),
        on_news: &mut dyn FnMut(JobNews),
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
        // A job a killed session submitted for this run is followed, not submitted again:
        // its script and id are in the run folder already.
        let mut attached = job.attach.clone();
        if attached.is_none() {
            std::fs::write(&script, self.script(job, &label)).map_err(io)?;
        }
        let mut tries = 0;
        // Time in the queue, over every submission and requeue of the run.
        let mut queued = Duration::ZERO;
        loop {
            let id = match attached.take() {
                Some(id) => {
                    on_news(JobNews::Reattached { job: id.clone() });
                    id
                }
                None => self.submit(job, &script)?,
            };
            let _ = std::fs::write(dir.join("job.id"), format!("{id}\n"));
            let followed = follow(job, &id, cancel, on_line, on_news, &mut queued)?;
            match followed {
                Followed::Lost(state) if tries < RESUBMITS => {
                    tries += 1;
                    on_news(JobNews::Resubmitted {
                        job: id.clone(),
                        state,
                    });
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
                    return Ok(outcome(job, Exit::Code(255), Duration::ZERO, &id, queued));
                }
                Followed::Ended { exit, ran } => {
                    return Ok(outcome(job, exit, ran, &id, queued));
                }
            }
        }
    }
}

/// A command that fails where the sandbox of `cmd` cannot start: its namespaces, then
/// `true`. None when `cmd` needs none.
fn namespace_probe(cmd: &Command) -> Option<String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .take_while(|a| a != "--")
        .collect();
    let keep: &[&str] = match program.as_str() {
        "unshare" => &[
            "--user",
            "--map-root-user",
            "--mount",
            "--net",
            "--pid",
            "--fork",
        ],
        "bwrap" => &["--unshare-net"],
        _ => return None,
    };
    let mut words = vec![program.clone()];
    if program == "bwrap" {
        words.extend(["--ro-bind", "/", "/"].map(String::from));
    }
    words.extend(args.into_iter().filter(|a| keep.contains(&a.as_str())));
    words.push("true".into());
    Some(words.join(" "))
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

fn outcome(job: &Job, exit: Exit, ran: Duration, id: &str, queued: Duration) -> RunOutcome {
    let output_bytes = std::fs::metadata(&job.log_path).map_or(0, |m| m.len());
    RunOutcome {
        exit,
        duration: ran,
        peak_rss_bytes: None,
        log_path: job.log_path.clone(),
        output_bytes,
        stragglers_killed: 0,
        job_id: Some(id.to_string()),
        queued: Some(queued),
    }
}

/// Follows job `id` to its end, feeding its output lines to `on_line`, what Slurm says
/// of it to `on_news`, and adding its time in the queue to `queued`.
fn follow(
    job: &Job,
    id: &str,
    cancel: &Cancel,
    on_line: &mut dyn FnMut(&str),
    on_news: &mut dyn FnMut(JobNews),
    queued: &mut Duration,
) -> Result<Followed, RunnerError> {
    let mut tail = Tail::default();
    let mut started: Option<Instant> = None;
    let mut stopping: Option<Exit> = None;
    let mut waiting = Instant::now();
    let mut reason: Option<String> = None;
    loop {
        let info = job_info(id)?;
        tail.read(&job.log_path, on_line);
        let state = info.state.as_str();
        let running = matches!(state, "RUNNING" | "COMPLETING" | "STOPPED" | "SUSPENDED");
        if running && started.is_none() {
            // A job followed after it started (a resume reattaching) has run a while.
            let before = info.run_time.unwrap_or_default();
            started = Some(
                Instant::now()
                    .checked_sub(before)
                    .unwrap_or_else(Instant::now),
            );
            // A reattached job's wait was the killed session's to see; this counts ours.
            *queued += waiting.elapsed();
            reason = None;
            on_news(JobNews::Started {
                job: id.to_string(),
                queued_s: queued.as_secs_f64(),
            });
        }
        if !running && started.is_some() && matches!(state, "PENDING" | "REQUEUED") {
            // Slurm requeued it (a node went down): its next start counts from zero, and
            // its log starts again.
            started = None;
            tail = Tail::default();
            waiting = Instant::now();
            reason = Some(info.reason.clone());
            on_news(JobNews::Requeued {
                job: id.to_string(),
                reason: info.reason.clone(),
            });
        } else if state == "PENDING" && reason.as_deref() != Some(info.reason.as_str()) {
            // Said when it starts waiting and each time Slurm gives another reason.
            reason = Some(info.reason.clone());
            on_news(JobNews::Queued {
                job: id.to_string(),
                reason: info.reason.clone(),
            });
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
        run_time: fields.get("RunTime").and_then(|t| slurm_duration(t)),
    })
}

/// Slurm's `[days-]hours:minutes:seconds` (also `minutes:seconds`).
fn slurm_duration(text: &str) -> Option<Duration> {
    let (days, rest) = match text.split_once('-') {
        Some((d, r)) => (d.parse::<u64>().ok()?, r),
        None => (0, text),
    };
    let parts: Vec<u64> = rest
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let secs = match parts[..] {
        [h, m, s] => h * 3600 + m * 60 + s,
        [m, s] => m * 60 + s,
        [s] => s,
        _ => return None,
    };
    Some(Duration::from_secs(days * 86_400 + secs))
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
            run_time: None,
        }
    }

    #[test]
    fn slurm_durations_parse() {
        assert_eq!(slurm_duration("00:01:05"), Some(Duration::from_secs(65)));
        assert_eq!(
            slurm_duration("1-02:00:00"),
            Some(Duration::from_secs(93_600))
        );
        assert_eq!(slurm_duration("03:07"), Some(Duration::from_secs(187)));
        assert_eq!(slurm_duration("INVALID"), None);
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
            attach: None,
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
