//! Bad training output, at the library level: what `metric::parse_reader` reads from a log
//! and the one-line crash reason `session::classify` gives it. A baseline with such a
//! reason stops the session with exit 4 (`SessionError::BaselineFailed`); a later
//! experiment is recorded as `crash` with the reason and the session goes on. Rows of
//! docs/bad-inputs.md.

use autoresearch::config::MetricSpec;
use autoresearch::experiment::Direction;
use autoresearch::metric::{Metrics, parse_reader};
use autoresearch::runner::{Exit, RunOutcome};
use autoresearch::session::{SessionError, classify};
use regex::Regex;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);

fn spec(regex: Option<&str>) -> MetricSpec {
    MetricSpec {
        name: "val_bpb".into(),
        direction: Direction::Minimize,
        regex: regex.map(|r| Regex::new(r).unwrap()),
        memory_key: "peak_vram_mb".into(),
    }
}

fn outcome(exit: Exit) -> RunOutcome {
    RunOutcome {
        exit,
        duration: Duration::from_secs(1),
        peak_rss_bytes: None,
        log_path: PathBuf::from(".autoresearch/runs/0001/run.log"),
        output_bytes: 0,
        stragglers_killed: 0,
        job_id: None,
        queued: None,
    }
}

fn parse(log: &[u8]) -> Metrics {
    parse_reader(log, &spec(None)).unwrap()
}

/// The verdict on a log from a process that exited with `exit`.
fn verdict(log: &[u8], exit: Exit) -> Result<f64, String> {
    classify(&outcome(exit), &parse(log), "val_bpb", TIMEOUT)
}

/// The crash reason, checked to be one short line; also what a failed baseline says.
#[track_caller]
fn reason(log: &[u8], exit: Exit) -> String {
    let why = verdict(log, exit).expect_err("must count as a crash");
    assert!(
        !why.contains('\n') && why.len() < 500,
        "not one line: {why:?}"
    );
    let baseline = SessionError::BaselineFailed {
        reason: why.clone(),
        log: ".autoresearch/runs/0001/run.log".into(),
    }
    .to_string();
    assert!(
        !baseline.contains('\n') && baseline.ends_with("and run again"),
        "{baseline}"
    );
    // `--nocapture` prints what the user saw, for docs/bad-inputs.md.
    eprintln!("CATALOGUE\t{why}");
    why
}

#[test]
fn no_metric_line() {
    let log = b"step 1 | loss: 3.2\ntraining done\n";
    assert_eq!(
        reason(log, Exit::Code(0)),
        "no `val_bpb:` line in the output (last line: training done)"
    );
}

#[test]
fn no_output_at_all() {
    assert_eq!(
        reason(b"", Exit::Code(0)),
        "no `val_bpb:` line in the output (last line: none)"
    );
}

#[test]
fn metric_line_with_trailing_text_is_not_a_metric_line() {
    // Shown as the last line, so the user sees why it did not count.
    let why = reason(b"val_bpb: 0.99 (ema)\n", Exit::Code(0));
    assert!(why.contains("last line: val_bpb: 0.99 (ema)"), "{why}");
}

#[test]
fn nan_metric() {
    assert_eq!(reason(b"val_bpb: nan\n", Exit::Code(0)), "val_bpb is NaN");
    assert_eq!(reason(b"val_bpb: NaN\n", Exit::Code(0)), "val_bpb is NaN");
}

#[test]
fn infinite_metric() {
    assert_eq!(reason(b"val_bpb: inf\n", Exit::Code(0)), "val_bpb is inf");
    assert_eq!(
        reason(b"val_bpb: -Infinity\n", Exit::Code(0)),
        "val_bpb is -inf"
    );
}

#[test]
fn metric_printed_several_times_the_last_wins() {
    let log = b"val_bpb: 1.50\nval_bpb: 1.20\n---\nval_bpb:          0.997900\n";
    assert_eq!(verdict(log, Exit::Code(0)), Ok(0.9979));
    // A run that ends diverged is a crash even if it was fine earlier.
    assert_eq!(
        reason(b"val_bpb: 0.9\nval_bpb: nan\n", Exit::Code(0)),
        "val_bpb is NaN"
    );
}

#[test]
fn regex_metric_matched_several_times_the_last_wins() {
    let m = parse_reader(
        &b"eval bpb=1.1\neval bpb=0.8\neval bpb=0.85\n"[..],
        &spec(Some(r"bpb=([0-9.]+)")),
    )
    .unwrap();
    assert_eq!(m.primary, Some(0.85));
}

#[test]
fn non_utf8_bytes_around_the_metric() {
    let mut log = vec![0xff, 0xfe, 0x00, b'\n', 0xc3, b'(', b'\n'];
    log.extend_from_slice(b"val_bpb: 0.95\n\xe2\x28\xa1 trailing junk\n");
    assert_eq!(verdict(&log, Exit::Code(0)), Ok(0.95));
    // Without the metric, the junk is shown (lossily) in a valid one-line reason.
    let why = reason(b"\xff\xfebad \xc3(\n", Exit::Code(0));
    assert!(why.contains("bad"), "{why}");
}

#[test]
fn no_trailing_newline() {
    assert_eq!(verdict(b"step 9\nval_bpb: 0.95", Exit::Code(0)), Ok(0.95));
}

#[test]
fn crlf_line_endings() {
    assert_eq!(
        verdict(b"step 9\r\nval_bpb: 0.95\r\n", Exit::Code(0)),
        Ok(0.95)
    );
}

/// `n` bytes of progress lines, produced on demand so the test never holds them.
struct Chatty {
    left: u64,
    tail: &'static [u8],
}

impl Read for Chatty {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        const LINE: &[u8] = b"step 00042 | loss: 3.141593 | lr: 0.000600 | tok/s: 123456 | padding padding padding padding padding padding padding padding padding padding padding padding\n";
        if self.left == 0 {
            let n = self.tail.len().min(buf.len());
            buf[..n].copy_from_slice(&self.tail[..n]);
            self.tail = &self.tail[n..];
            return Ok(n);
        }
        let n = (buf.len() as u64).min(self.left).min(LINE.len() as u64) as usize;
        buf[..n].copy_from_slice(&LINE[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

#[test]
fn one_hundred_megabytes_of_output() {
    let log = Chatty {
        left: 100 * 1024 * 1024,
        tail: b"\nval_bpb: 0.91\npeak_vram_mb: 2048\n",
    };
    let m = parse_reader(log, &spec(None)).unwrap();
    assert_eq!(m.primary, Some(0.91));
    assert_eq!(m.memory_gb(&spec(None)), Some(2.0));
    // Progress lines are not summary lines: nothing from them was kept.
    assert!(!m.values.contains_key("loss"));
}

#[test]
fn a_ten_megabyte_line() {
    let mut log = vec![b'x'; 10 * 1024 * 1024];
    log.extend_from_slice(b"\nval_bpb: 0.93\n");
    assert_eq!(verdict(&log, Exit::Code(0)), Ok(0.93));
    // Without the metric, the reason quotes at most 300 characters of that line.
    let why = reason(&vec![b'y'; 10 * 1024 * 1024], Exit::Code(0));
    assert!(why.len() < 400, "{}", why.len());
}

#[test]
fn python_traceback_and_nonzero_exit() {
    let log = b"step 1\nTraceback (most recent call last):\n  File \"train.py\", line 3\nNameError: name 'x' is not defined\n";
    assert_eq!(
        reason(log, Exit::Code(1)),
        "exit 1: NameError: name 'x' is not defined"
    );
}

#[test]
fn metric_printed_then_nonzero_exit_is_a_crash() {
    let log = b"val_bpb: 0.95\nSegfault in cleanup\n";
    assert_eq!(reason(log, Exit::Code(3)), "exit 3: Segfault in cleanup");
}

#[test]
fn out_of_memory_exit() {
    let log = b"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n";
    let why = reason(log, Exit::Code(1));
    assert!(
        why.starts_with("out of memory (exit 1): torch.OutOfMemoryError"),
        "{why}"
    );
}

#[test]
fn killed_by_sigkill() {
    assert_eq!(
        reason(b"step 1\n", Exit::Signal(9)),
        "killed by SIGKILL (out of memory?)"
    );
    assert_eq!(
        reason(b"step 1\n", Exit::Code(137)),
        "killed by SIGKILL (out of memory?)"
    );
}

#[test]
fn killed_by_another_signal() {
    assert_eq!(reason(b"step 1\n", Exit::Signal(11)), "killed by SIGSEGV");
}

#[test]
fn ran_past_the_timeout() {
    assert_eq!(
        reason(b"val_bpb: 0.9\n", Exit::TimedOut),
        "timeout: still running after 20s, killed"
    );
}

#[test]
fn interrupted_run_is_not_a_metric() {
    assert_eq!(
        verdict(b"val_bpb: 0.9\n", Exit::Interrupted),
        Err("interrupted".into())
    );
}
