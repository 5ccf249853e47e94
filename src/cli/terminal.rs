//! Reporters: turn session events into terminal lines (coloured only on a terminal and
//! without `NO_COLOR`, with a live line per worker while runs train: see [`super::live`])
//! or into JSON lines for other programs.

use super::live::Live;
use crate::experiment::Status;
use crate::session::Event;
use std::io::{IsTerminal, Write};

pub struct Reporter {
    json: bool,
    quiet: bool,
    /// Colour only when stdout is a terminal and `NO_COLOR` is not set.
    color: bool,
    /// The live lines (a terminal, neither `--json` nor `--quiet`).
    live: Option<Live>,
    budget_s: f64,
    metric: String,
    minimize: bool,
    /// The session's tag once it has started: every JSON line carries it.
    session: Option<String>,
}

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const DIM: &str = "\x1b[2m";
const YELLOW: &str = "\x1b[33m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

impl Reporter {
    pub fn new(json: bool, quiet: bool) -> Reporter {
        let tty = std::io::stdout().is_terminal();
        Reporter {
            json,
            quiet,
            color: color_wanted(tty, std::env::var_os("NO_COLOR").as_deref()),
            live: (tty && !json && !quiet).then(Live::stdout).flatten(),
            budget_s: 0.0,
            metric: String::new(),
            minimize: true,
            session: None,
        }
    }

    /// Where an LLM call's progress goes: a live line when the output is for eyes on a
    /// terminal (not `--json`, not `--quiet`); nowhere otherwise.
    pub fn call_progress(&self) -> Option<crate::agent::ProgressSink> {
        self.live.as_ref().map(Live::call_progress)
    }

    fn paint(&self, color: &str, text: &str) -> String {
        if self.color {
            format!("{color}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    /// A plain line (config table, messages).
    pub fn plain(&mut self, text: &str) {
        if self.json {
            return;
        }
        self.line(text);
    }

    pub fn event(&mut self, e: &Event) {
        if self.json {
            if let Event::SessionStarted { tag, .. } = e {
                self.session = Some(tag.clone());
            }
            // Per-line progress is for eyes; programs get the structured events, each in
            // an envelope: when (milliseconds, UTC) and which session.
            if !matches!(e, Event::RunOutput { .. }) {
                if let Ok(line) = serde_json::to_string(e) {
                    let at =
                        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                    let session = self
                        .session
                        .as_ref()
                        .map(|t| format!(",\"session\":{}", serde_json::Value::from(t.as_str())))
                        .unwrap_or_default();
                    // The event's own fields follow, in their order (`{"event":…`).
                    let fields = line.strip_prefix('{').unwrap_or(&line);
                    out(format_args!("{{\"at\":\"{at}\"{session},{fields}\n"));
                }
            }
            return;
        }
        match e {
            Event::RunOutput {
                worker,
                elapsed_s,
                numbers,
                ..
            } => {
                if let Some(live) = &mut self.live {
                    let nums: Vec<String> =
                        numbers.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
                    live.run_output(worker.unwrap_or(0), *elapsed_s, &nums.join("  "));
                }
            }
            Event::SessionStarted {
                tag,
                branch,
                resumed,
                platform,
                metric,
                direction,
                budget_s,
                timeout_s,
                experiments,
            } => {
                self.budget_s = *budget_s;
                if let Some(live) = &mut self.live {
                    live.set_budget(*budget_s);
                }
                self.metric = metric.clone();
                self.minimize = direction == "minimize";
                let how = if *resumed {
                    format!("resumed, {experiments} experiments on record")
                } else {
                    "new".into()
                };
                self.line(&format!(
                    "{} session {tag} on {branch} ({how})\n  platform: {platform}\n  metric: {metric} ({}), budget {} per run, hard timeout {}",
                    self.paint(BOLD, "autoresearch:"),
                    if self.minimize { "lower is better" } else { "higher is better" },
                    exact(*budget_s),
                    exact(*timeout_s),
                ));
            }
            Event::Warning { message } => {
                let w = self.paint(YELLOW, "warning:");
                self.line(&format!("{w} {message}"));
            }
            Event::Note { message } => {
                if !self.quiet {
                    let n = self.paint(DIM, &format!("  {message}"));
                    self.line(&n);
                }
            }
            Event::ProposalStarted { .. } => {}
            Event::Proposal {
                iteration,
                description,
                category,
                ..
            } => {
                if !self.quiet {
                    self.line(&format!("[{iteration}] {description}  ({category})"));
                }
            }
            Event::Rejected {
                iteration, reason, ..
            } => {
                let r = self.paint(YELLOW, "rejected");
                self.line(&format!("[{iteration}] {r}  {reason}"));
            }
            Event::RunStarted {
                worker,
                iteration,
                attempt,
                seed,
                log,
                ..
            } => {
                if !self.quiet {
                    let again = if *attempt > 1 {
                        format!(" (attempt {attempt})")
                    } else {
                        String::new()
                    };
                    let what = match (*iteration, worker) {
                        (0, _) => "baseline".to_string(),
                        (_, Some(_)) => format!("running [{iteration}]"),
                        (_, None) => "running".to_string(),
                    };
                    let who = worker.map(|w| format!("w{w} ")).unwrap_or_default();
                    self.line(&self.paint(
                        DIM,
                        &format!("  {who}{what}{again}, seed {seed}, log {log}"),
                    ));
                }
            }
            Event::RunFinished { worker, .. } => {
                if let Some(live) = &mut self.live {
                    live.run_finished(worker.unwrap_or(0));
                }
            }
            Event::Job {
                worker,
                iteration,
                state,
                message,
                queued_s,
                ..
            } => {
                // A start straight away is no news; a wait, a requeue or a reattach is.
                let quick = state == "started" && queued_s.is_none_or(|q| q < 1.0);
                if !self.quiet && !quick {
                    let who = worker.map(|w| format!("w{w} ")).unwrap_or_default();
                    self.line(&self.paint(DIM, &format!("  {who}[{iteration}] {message}")));
                }
            }
            Event::Decision { record, gain, .. } => {
                let (label, color) = match record.status {
                    Status::Keep => ("keep", GREEN),
                    Status::Discard => ("discard", DIM),
                    Status::Pruned => ("pruned", DIM),
                    Status::Crash => ("crash", RED),
                    _ => (record.status.as_str(), YELLOW),
                };
                let value = match (record.status, record.metric) {
                    (Status::Crash, _) | (_, None) => "—".to_string(),
                    (_, Some(v)) => format!("{v:.6}"),
                };
                let delta = match (record.status, gain) {
                    (Status::Crash, _) => record.reason.clone(),
                    // Where it was stopped and against what; the evidence follows below.
                    (Status::Pruned, _) => {
                        record.reason.split("; ").next().unwrap_or("").to_string()
                    }
                    (_, Some(g)) => {
                        let signed = if self.minimize { -g } else { *g };
                        let value = record.metric.unwrap_or(0.0);
                        let change = crate::report::fmt_change(value, value - signed);
                        format!("{change} vs best")
                    }
                    _ => String::new(),
                };
                let head = self.paint(color, &format!("{label:<8}"));
                let note = record
                    .repeats_note()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default();
                self.line(&format!(
                    "[{}] {head} {} {value}{note}  {delta}  {}",
                    record.iteration, self.metric, record.description
                ));
                // The evidence behind a keep or discard: the test, the threshold, the noise.
                if !self.quiet
                    && matches!(
                        record.status,
                        Status::Keep | Status::Discard | Status::Pruned
                    )
                {
                    if let Some((_, why)) = record.reason.split_once("; ") {
                        let why = self.paint(DIM, &format!("      {why}"));
                        self.line(&why);
                    }
                }
            }
            Event::Report { markdown, path } => {
                if !self.quiet {
                    self.line(&format!("{markdown}\n(written to {path})"));
                }
            }
            Event::SessionEnded {
                reason,
                best,
                best_commit,
                baseline,
                tally,
                ..
            } => {
                let mut msg = format!("done: {reason}; {}", tally.headline());
                if let (Some(b), Some(base)) = (best, baseline) {
                    let commit: String = best_commit
                        .clone()
                        .unwrap_or_default()
                        .chars()
                        .take(7)
                        .collect();
                    msg.push_str(&format!(
                        "; {} baseline {base:.6} → best {b:.6} at {commit}",
                        self.metric
                    ));
                }
                let d = self.paint(BOLD, &msg);
                if let Some(live) = &mut self.live {
                    live.clear();
                }
                self.line(&d);
            }
        }
    }

    fn line(&mut self, text: &str) {
        match &mut self.live {
            Some(live) => live.print(text),
            None => out(format_args!("{text}\n")),
        }
    }
}

/// Colour on a terminal unless `NO_COLOR` is set to anything but the empty string
/// (<https://no-color.org>).
fn color_wanted(tty: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    tty && no_color.is_none_or(|v| v.is_empty())
}

/// A duration in seconds as the config spells it (`1m30s`, `1500ms`): exact, never `0s`.
fn exact(secs: f64) -> String {
    crate::config::duration::format(std::time::Duration::from_secs_f64(secs.max(0.0)))
}

/// Writes to stdout and flushes, ignoring failure: after a hangup the terminal is gone
/// (EIO) or a reader closed the pipe (EPIPE), and the session must still stop cleanly and
/// record what it did rather than panic in `println!`.
pub(super) fn out(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_fmt(args);
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::color_wanted;
    use std::ffi::OsStr;

    #[test]
    fn no_color_turns_colour_off_and_a_pipe_never_has_it() {
        assert!(color_wanted(true, None));
        assert!(color_wanted(true, Some(OsStr::new(""))));
        assert!(!color_wanted(true, Some(OsStr::new("1"))));
        assert!(!color_wanted(false, None));
    }
}
