//! `LocalExecutor`: runs a job as `sh -c` in its own process group on this machine,
//! streams its output to a capped log, enforces the timeout and cancellation, and makes
//! sure nothing of the run survives it. Never interprets the output and never waits on a
//! process that is not provably the run's.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::cgroup::RunCgroup;
use super::logsink::{LineSplitter, LogSink};
use super::procs;
use super::{Cancel, Executor, Exit, Job, RunOutcome, RunnerError};

pub use super::procs::{kill_processes_with_env, processes_with_env};

/// Set to a value unique to each run in the environment of its script; every descendant
/// inherits it, which is how escaped grandchildren are found.
pub const RUN_TOKEN_ENV: &str = "AUTORESEARCH_RUN_TOKEN";

/// Whether an environment variable holds a credential that training processes must not
/// inherit: API keys and auth tokens (`*_API_KEY`, `*_AUTH_TOKEN`) and everything of the
/// LLM providers (`ANTHROPIC_*`, `OPENAI_*`).
pub fn is_secret_env(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    n.ends_with("_API_KEY")
        || n.ends_with("_AUTH_TOKEN")
        || n.starts_with("ANTHROPIC_")
        || n.starts_with("OPENAI_")
}

/// Takes every credential of this process's environment out of what `cmd` inherits.
pub(crate) fn remove_secrets(cmd: &mut std::process::Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_secret_env) {
            cmd.env_remove(&name);
        }
    }
}

/// How long cleanup waits for the output pipes to close after the last known process of
/// the run is dead. Only an unfindable descendant (one that scrubbed its environment and
/// left the group) can keep them open that long.
const READER_PATIENCE: Duration = Duration::from_secs(5);
/// The longest cleanup waits for the readers however much output keeps coming.
const READER_HARD_CAP: Duration = Duration::from_secs(120);
/// How long cleanup keeps killing and reaping the run's processes.
const CLEANUP_PATIENCE: Duration = Duration::from_secs(5);

/// Runs jobs as local processes.
#[derive(Debug, Clone)]
pub struct LocalExecutor {
    /// How often the child, the cancel flag and the timeout are checked.
    poll: Duration,
    /// How often the memory of the process tree is sampled.
    sample_every: Duration,
}

impl Default for LocalExecutor {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalExecutor {
    pub fn new() -> Self {
        LocalExecutor {
            poll: Duration::from_millis(50),
            sample_every: Duration::from_millis(200),
        }
    }
}

/// What the reader threads tell the supervising thread.
enum Msg {
    Line(String),
    LogFailed(io::Error),
}

/// Why we are stopping the run.
#[derive(Debug, Clone, Copy)]
enum Stop {
    TimedOut,
    Interrupted,
}

impl Executor for LocalExecutor {
    fn run(
        &self,
        job: &Job,
        cancel: &Cancel,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<RunOutcome, RunnerError> {
        let _busy = cancel.training();
        procs::become_subreaper();
        let token = new_token();
        let log_error = |source| RunnerError::Log {
            path: job.log_path.clone(),
            source,
        };
        let sink = LogSink::create(&job.log_path, job.max_log_bytes).map_err(log_error)?;
        let sink = Arc::new(Mutex::new(sink));

        // Best effort: without its cgroup the run is still found by its group and token.
        let cgroup = job
            .sandbox
            .cgroup
            .as_deref()
            .and_then(|parent| RunCgroup::create(parent, &token).ok());
        // `sh -c <command>`, or the sandbox's wrapper around it (which execs or waits for it
        // in this same group, with this same environment). The hooks given here run in the
        // child before it enters the box (if any): outside its user namespace.
        let spawn_error = |source| RunnerError::Spawn {
            command: job.command.clone(),
            source,
        };
        let mut cmd = job
            .sandbox
            .local_command(job, cgroup.as_ref(), |cmd| {
                set_parent_death_signal(cmd);
                super::sandbox::apply_limits(cmd, job.sandbox.limits);
            })
            .map_err(spawn_error)?;
        // Credentials are the orchestrator's, not the run's: a script (LLM-written) could
        // print its environment into the log, or send it somewhere.
        remove_secrets(&mut cmd);
        cmd.current_dir(&job.cwd)
            .envs(job.env.iter().map(|(k, v)| (k, v)))
            .env(RUN_TOKEN_ENV, &token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so one signal reaches the script and everything it starts,
            // and a Ctrl-C at the terminal does not reach it behind our back.
            .process_group(0);
        let start = Instant::now();
        let mut child = cmd.spawn().map_err(spawn_error)?;
        // Whatever unwinds from here on (a panicking `on_line`, no thread for a reader)
        // must not leave the run behind.
        let guard = KillGroupOnDrop(Some(child.id() as i32));

        let (tx, rx) = mpsc::sync_channel(1024);
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(spawn_reader("stdout", out, sink.clone(), tx.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(spawn_reader("stderr", err, sink.clone(), tx.clone()));
        }
        drop(tx);

        let mut watch = Watch {
            job,
            cancel,
            pgid: child.id() as i32,
            needle: format!("{RUN_TOKEN_ENV}={token}").into_bytes(),
            rx,
            rx_open: true,
            idle_wait: Duration::from_millis(1),
            stop: None,
            term_sent: None,
            killed: false,
            log_error: None,
            peak_rss: None,
            seen: HashMap::new(),
            poll: self.poll,
            sample_every: self.sample_every,
            cgroup,
        };
        let waited = watch.supervise(&mut child, start, on_line);
        let duration = start.elapsed();
        let stragglers_killed = watch.clean_up(on_line);
        guard.disarm();
        // Done: both readers have hung up (their last write is in the sink), though their
        // threads may not have returned yet.
        let output_bytes = finish_log(&sink, &readers, !watch.rx_open).map_err(log_error)?;
        if let Some(source) = watch.log_error.take() {
            return Err(log_error(source));
        }
        let status = waited.map_err(RunnerError::Wait)?;
        let exit = match watch.stop {
            Some(Stop::TimedOut) => Exit::TimedOut,
            Some(Stop::Interrupted) => Exit::Interrupted,
            None => match exit_of(status) {
                Exit::Code(c @ 129..=159) if job.sandbox.reports_signals_as_codes() => {
                    Exit::Signal(c - 128)
                }
                e => e,
            },
        };
        Ok(RunOutcome {
            exit,
            duration,
            peak_rss_bytes: watch.peak_rss,
            log_path: job.log_path.clone(),
            output_bytes,
            stragglers_killed,
            job_id: None,
            queued: None,
        })
    }
}

/// The supervising side of one run, on the caller's thread.
struct Watch<'a> {
    job: &'a Job,
    cancel: &'a Cancel,
    pgid: i32,
    /// `AUTORESEARCH_RUN_TOKEN=<token>`, as it appears in `/proc/<pid>/environ`.
    needle: Vec<u8>,
    rx: Receiver<Msg>,
    /// False once both readers have ended.
    rx_open: bool,
    /// How long to wait before looking at a child whose output has ended again.
    idle_wait: Duration,
    stop: Option<Stop>,
    term_sent: Option<Instant>,
    killed: bool,
    log_error: Option<io::Error>,
    peak_rss: Option<u64>,
    /// Every process of the run seen while sampling (pid → start time), to reap later.
    seen: HashMap<i32, u64>,
    poll: Duration,
    sample_every: Duration,
    /// The run's own cgroup, where the machine allows one.
    cgroup: Option<RunCgroup>,
}

impl Watch<'_> {
    /// Forwards output and enforces timeout and cancellation until the main child ends.
    fn supervise(
        &mut self,
        child: &mut Child,
        start: Instant,
        on_line: &mut dyn FnMut(&str),
    ) -> io::Result<ExitStatus> {
        let deadline = start.checked_add(self.job.timeout);
        let mut next_sample = start;
        loop {
            // Sampled first, so that even a run shorter than one poll gets a figure.
            if Instant::now() >= next_sample {
                self.sample();
                next_sample = Instant::now() + self.sample_every;
            }
            self.pump(Instant::now() + self.poll, on_line);
            match child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) => {}
                Err(e) => {
                    self.kill_now();
                    let _ = child.wait();
                    return Err(e);
                }
            }
            let now = Instant::now();
            if self.log_error.is_some() || self.cancel.level() >= 2 {
                // Nowhere to write the output, or asked to stop at once.
                self.stop.get_or_insert(Stop::Interrupted);
                self.kill_now();
            } else if self.cancel.level() == 1 {
                self.terminate(Stop::Interrupted);
            } else if deadline.is_some_and(|d| now >= d) {
                self.terminate(Stop::TimedOut);
            }
            let grace_over = self
                .term_sent
                .is_some_and(|sent| sent.checked_add(self.job.grace).is_none_or(|t| now >= t));
            if grace_over {
                self.kill_now();
            }
        }
    }

    /// SIGTERM to the group (once), starting the grace period.
    fn terminate(&mut self, why: Stop) {
        if self.term_sent.is_some() || self.killed {
            return;
        }
        // The last chance to see the run at its largest.
        self.sample();
        self.stop.get_or_insert(why);
        self.term_sent = Some(Instant::now());
        let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGTERM);
    }

    /// SIGKILL to the group (once).
    fn kill_now(&mut self) {
        if self.killed {
            return;
        }
        self.sample();
        self.killed = true;
        let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGKILL);
        // What left the group (`setsid`) is still in the cgroup.
        if let Some(cg) = &self.cgroup {
            cg.kill_all();
        }
    }

    /// Records the run's summed resident memory and remembers its processes.
    fn sample(&mut self) {
        let procs = procs::run_processes(self.pgid, &self.needle);
        for p in &procs {
            self.seen.insert(p.pid, p.start);
        }
        let pids: Vec<i32> = procs.iter().map(|p| p.pid).collect();
        if let Some(rss) = procs::total_rss(&pids) {
            self.peak_rss = Some(self.peak_rss.map_or(rss, |peak| peak.max(rss)));
        }
    }

    /// Hands lines to `on_line` until `until`; returns early only on time.
    fn pump(&mut self, until: Instant, on_line: &mut dyn FnMut(&str)) {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            if !self.rx_open {
                // Both pipes are closed but the child still runs: nothing to forward. It
                // is most likely exiting: looked at again after 1 ms, 2 ms, … up to a poll.
                std::thread::sleep(left.min(self.idle_wait));
                self.idle_wait = (self.idle_wait * 2).min(self.poll);
                return;
            }
            match self.rx.recv_timeout(left) {
                Ok(msg) => self.handle(msg, on_line),
                Err(RecvTimeoutError::Timeout) => return,
                Err(RecvTimeoutError::Disconnected) => {
                    // The output ended, as it does when the script exits: see at once
                    // whether it has, rather than at the end of the poll.
                    self.rx_open = false;
                    return;
                }
            }
        }
    }

    fn handle(&mut self, msg: Msg, on_line: &mut dyn FnMut(&str)) {
        match msg {
            Msg::Line(line) => on_line(&line),
            Msg::LogFailed(e) => {
                self.log_error.get_or_insert(e);
            }
        }
    }

    /// After the main child ended: kills every process of the run that is still alive,
    /// reaps those that are ours, and drains what is left of the output. Returns how
    /// many processes had to be killed one by one.
    fn clean_up(&mut self, on_line: &mut dyn FnMut(&str)) -> usize {
        let deadline = Instant::now() + CLEANUP_PATIENCE;
        let mut killed: HashMap<i32, u64> = HashMap::new();
        // The cgroup first: it holds every process of the run, however it hid. The scans
        // below then only reap (and catch what a machine without the cgroup let escape).
        let in_cgroup = self
            .cgroup
            .as_ref()
            .map(RunCgroup::kill_all)
            .unwrap_or_default();
        // Repeated because a dying process may still fork, or still look alive for a moment.
        loop {
            let mut alive = procs::run_processes(self.pgid, &self.needle);
            // Seen as the run's while sampling, and still the same process: killed too, even
            // if it has since left the group and scrubbed its environment.
            alive.extend(self.seen.iter().filter_map(|(&pid, &start)| {
                procs::stat(pid).filter(|s| !s.zombie && s.start == start)
            }));
            alive.sort_by_key(|p| p.pid);
            alive.dedup_by_key(|p| p.pid);
            if alive.is_empty() || Instant::now() >= deadline {
                break;
            }
            for p in &alive {
                if kill(Pid::from_raw(p.pid), Signal::SIGKILL).is_ok() {
                    killed.insert(p.pid, p.start);
                }
            }
            let ours: Vec<(i32, u64)> = alive.iter().map(|p| (p.pid, p.start)).collect();
            procs::reap(&ours, Duration::from_millis(20));
        }
        // Whatever the scans could not see (a non-Linux system) still gets the group kill.
        let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGKILL);

        let mut to_reap: Vec<(i32, u64)> = killed
            .iter()
            .chain(self.seen.iter())
            .map(|(&pid, &start)| (pid, start))
            .collect();
        to_reap.extend(in_cgroup.iter().copied());
        to_reap.extend(
            procs::zombie_children_in_group(self.pgid)
                .into_iter()
                .map(|p| (p.pid, p.start)),
        );
        // The main child is std's to reap, and it already has.
        to_reap.retain(|&(pid, _)| pid != self.pgid);
        procs::reap(&to_reap, CLEANUP_PATIENCE);
        if let Some(cg) = self.cgroup.take() {
            cg.remove();
        }

        // With every writer dead the pipes close and the readers end. The patience counts
        // from the last output seen, so a reader still draining a flood on a busy machine is
        // never cut off; only silence (or the hard cap) ends the wait.
        let hard = Instant::now() + READER_HARD_CAP;
        let mut until = Instant::now() + READER_PATIENCE;
        while self.rx_open && Instant::now() < until {
            match self
                .rx
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                Ok(msg) => {
                    self.handle(msg, on_line);
                    until = (Instant::now() + READER_PATIENCE).min(hard);
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => self.rx_open = false,
            }
        }
        killed.len().max(in_cgroup.len())
    }
}

/// SIGKILLs a process group when dropped while armed: the last resort on unwinding.
struct KillGroupOnDrop(Option<i32>);

impl KillGroupOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

/// Appends the dropped-output marker and the tail, and returns the byte count. If a reader
/// is still stuck on a pipe held open by an unfindable process, it is left behind with the
/// sink closed, so it can never write to the log again.
fn finish_log(
    sink: &Arc<Mutex<LogSink>>,
    readers: &[JoinHandle<()>],
    readers_done: bool,
) -> io::Result<u64> {
    let mut sink = lock(sink);
    if !readers_done && readers.iter().any(|r| !r.is_finished()) {
        sink.close();
    }
    sink.finish()?;
    Ok(sink.total())
}

fn lock(sink: &Mutex<LogSink>) -> MutexGuard<'_, LogSink> {
    // A panicking reader cannot leave the sink half-updated in a way that matters more
    // than losing the log, so poisoning is ignored.
    sink.lock().unwrap_or_else(|e| e.into_inner())
}

/// Drains one pipe into the shared log and the line channel. Runs on its own thread so a
/// full stderr pipe can never block the script while we read stdout, and vice versa.
fn spawn_reader(
    name: &str,
    mut pipe: impl Read + Send + 'static,
    sink: Arc<Mutex<LogSink>>,
    tx: SyncSender<Msg>,
) -> JoinHandle<()> {
    let body = move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut lines = LineSplitter::default();
        let mut throttle = super::flood::Throttle::new();
        // A failed send means the supervisor stopped listening; keep draining anyway.
        let mut emit = |line: String| {
            let _ = tx.send(Msg::Line(line));
        };
        loop {
            let n = match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let chunk = &buf[..n];
            if let Err(e) = lock(&sink).write(chunk) {
                let _ = tx.send(Msg::LogFailed(e));
            }
            throttle.feed(&mut lines, chunk, &mut emit);
        }
        throttle.finish(&mut emit);
        lines.flush(&mut emit);
    };
    std::thread::Builder::new()
        .name(format!("runner-{name}"))
        .spawn(body)
        .expect("the OS refused to start a thread for reading the run's output")
}

fn exit_of(status: ExitStatus) -> Exit {
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(sig)) => Exit::Signal(sig),
        // wait() only reports exits and deaths, but be total.
        (None, None) => Exit::Code(-1),
    }
}

/// A token no other run (in this or any other process) shares.
fn new_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{n}-{nanos:x}", std::process::id())
}

/// Asks the kernel to SIGKILL the script if the thread that spawned it dies (the `run`
/// call blocks that thread for the whole run), so a crashed orchestrator does not leave
/// training running. Grandchildren are covered by `kill_processes_with_env` on resume.
#[cfg(target_os = "linux")]
#[expect(
    unsafe_code,
    reason = "pre_exec is unsafe; the hook only makes async-signal-safe system calls"
)]
fn set_parent_death_signal(cmd: &mut Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the hook runs in the forked child before exec, where only
    // async-signal-safe operations are allowed. prctl and getppid are plain system calls
    // (no allocation, no locks), and an io::Error built from an errno does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // If we died between fork and prctl, the signal will never come: give up.
            if nix::unistd::getppid() != parent {
                return Err(nix::errno::Errno::ESRCH.into());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn set_parent_death_signal(_cmd: &mut Command) {}

#[cfg(test)]
mod tests {
    use super::is_secret_env;

    #[test]
    fn api_keys_and_provider_variables_are_secret() {
        for name in [
            "ANTHROPIC_API_KEY",
            "OPENAI_API_KEY",
            "WANDB_API_KEY",
            "anthropic_api_key",
            "ANTHROPIC_AUTH_TOKEN",
            "OPENAI_ORG_ID",
        ] {
            assert!(is_secret_env(name), "{name}");
        }
        for name in [
            "PATH",
            "HOME",
            "CUDA_VISIBLE_DEVICES",
            "AUTORESEARCH_SESSION_ID",
            "TOKENIZERS_PARALLELISM",
        ] {
            assert!(!is_secret_env(name), "{name}");
        }
    }
}
