//! The live lines under the session's log on a terminal: one per worker while its run
//! trains (a bar of the elapsed time over the budget, and the run's latest numbers) and one
//! while an LLM call is out. Drawn by `indicatif`, so that the lines the reporter prints
//! scroll above them and several workers never overwrite each other's line.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Steps of a run's bar (its position is the elapsed fraction of the budget).
const STEPS: u64 = 1000;

pub(crate) struct Live {
    multi: MultiProgress,
    /// Worker (0: an event without one) → its run's line.
    bars: BTreeMap<usize, ProgressBar>,
    budget_s: f64,
    /// The LLM call's line while one is out.
    llm: Arc<Mutex<Option<ProgressBar>>>,
    /// The terminal could not be written to (set by the draw target): nothing is drawn
    /// any more, and text goes out as plain lines.
    gone: Arc<AtomicBool>,
}

/// stdout as indicatif draws on it. Write errors are kept, not returned: after a hangup
/// (EIO) indicatif's redraws would panic on them; here they mark the terminal gone.
#[derive(Debug)]
struct Stdout {
    term: console::Term,
    gone: Arc<AtomicBool>,
}

impl Stdout {
    fn keep(&self, r: io::Result<()>) -> io::Result<()> {
        if r.is_err() {
            self.gone.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}

impl TermLike for Stdout {
    fn width(&self) -> u16 {
        self.term.size().1
    }
    fn move_cursor_up(&self, n: usize) -> io::Result<()> {
        self.keep(self.term.move_cursor_up(n))
    }
    fn move_cursor_down(&self, n: usize) -> io::Result<()> {
        self.keep(self.term.move_cursor_down(n))
    }
    fn move_cursor_right(&self, n: usize) -> io::Result<()> {
        self.keep(self.term.move_cursor_right(n))
    }
    fn move_cursor_left(&self, n: usize) -> io::Result<()> {
        self.keep(self.term.move_cursor_left(n))
    }
    fn write_line(&self, s: &str) -> io::Result<()> {
        self.keep(self.term.write_line(s))
    }
    fn write_str(&self, s: &str) -> io::Result<()> {
        self.keep(self.term.write_str(s))
    }
    fn clear_line(&self) -> io::Result<()> {
        self.keep(self.term.clear_line())
    }
    fn flush(&self) -> io::Result<()> {
        self.keep(self.term.flush())
    }
}

impl Live {
    /// Lines on stdout, a terminal; None where a terminal cannot draw them (`TERM` unset
    /// or `dumb`), and the reporter prints plain lines.
    pub(crate) fn stdout() -> Option<Live> {
        if !draws(std::env::var("TERM").ok().as_deref()) {
            return None;
        }
        let gone = Arc::new(AtomicBool::new(false));
        let term = Stdout {
            term: console::Term::stdout(),
            gone: gone.clone(),
        };
        Some(Live::new(
            ProgressDrawTarget::term_like_with_hz(Box::new(term), 20),
            gone,
        ))
    }

    /// Lines drawn on `target`, whose writes never fail but set `gone` instead.
    fn new(target: ProgressDrawTarget, gone: Arc<AtomicBool>) -> Live {
        Live {
            multi: MultiProgress::with_draw_target(target),
            bars: BTreeMap::new(),
            budget_s: 0.0,
            llm: Arc::new(Mutex::new(None)),
            gone,
        }
    }

    pub(crate) fn set_budget(&mut self, budget_s: f64) {
        self.budget_s = budget_s;
    }

    /// Worker `worker`'s line: its run's elapsed time against the budget and `numbers`.
    pub(crate) fn run_output(&mut self, worker: usize, elapsed_s: f64, numbers: &str) {
        let budget = self.budget_s;
        let bar = self.bars.entry(worker).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(STEPS));
            bar.set_style(run_style());
            if worker > 0 {
                bar.set_prefix(format!("w{worker} "));
            }
            bar
        });
        let frac = (elapsed_s / budget.max(1e-9)).clamp(0.0, 1.0);
        bar.set_position((frac * STEPS as f64).round() as u64);
        bar.set_message(format!("{elapsed_s:>5.0}s/{budget:.0}s  {numbers}"));
    }

    /// The run on `worker` ended: its line goes.
    pub(crate) fn run_finished(&mut self, worker: usize) {
        if let Some(bar) = self.bars.remove(&worker) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }

    /// Every line goes (the session ended).
    pub(crate) fn clear(&mut self) {
        for (_, bar) in std::mem::take(&mut self.bars) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        let _ = self.multi.clear();
    }

    /// Prints `text` and a newline above the live lines. Once the terminal is gone (a
    /// hangup) the lines are given up and text goes out as plain lines, whose errors are
    /// ignored: the session must still stop cleanly and record what it did.
    pub(crate) fn print(&mut self, text: &str) {
        let out = || super::terminal::out(format_args!("{text}\n"));
        if self.gone.load(Ordering::Relaxed) {
            out();
        } else {
            self.multi.suspend(out);
        }
        if self.gone.load(Ordering::Relaxed) && !self.multi.is_hidden() {
            self.multi.set_draw_target(ProgressDrawTarget::hidden());
        }
    }

    /// The sink for an LLM call's progress (called from the proposer's threads): a line
    /// while a call is out, gone when it ends.
    pub(crate) fn call_progress(&self) -> crate::agent::ProgressSink {
        let multi = self.multi.clone();
        let slot = self.llm.clone();
        Arc::new(move |p: &crate::agent::CallProgress| {
            let mut line = slot.lock().unwrap_or_else(|e| e.into_inner());
            if p.done {
                if let Some(bar) = line.take() {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
                return;
            }
            let bar = line.get_or_insert_with(|| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(ProgressStyle::with_template("  {msg}").expect("a valid template"));
                bar
            });
            bar.set_message(if p.tokens == 0 {
                format!("waiting for the LLM: {:.1} s", p.seconds)
            } else {
                format!(
                    "the LLM is answering: {} tokens, {:.1} s",
                    p.tokens, p.seconds
                )
            });
        })
    }

    /// What each worker's line says now, by worker, and the LLM call's line.
    #[cfg(test)]
    pub(crate) fn lines(&self) -> (Vec<(usize, String)>, Option<String>) {
        let runs = self
            .bars
            .iter()
            .map(|(w, b)| (*w, format!("{}{}", b.prefix(), b.message())))
            .collect();
        let llm = self
            .llm
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|b| b.message());
        (runs, llm)
    }
}

/// Whether a terminal of this `TERM` can draw the live lines (cursor moves, line clears).
fn draws(term: Option<&str>) -> bool {
    term.is_some_and(|t| !t.is_empty() && t != "dumb")
}

fn run_style() -> ProgressStyle {
    ProgressStyle::with_template("  {prefix}[{bar:20}] {msg}")
        .expect("a valid template")
        .progress_chars("##-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::CallProgress;
    use indicatif::TermLike;

    /// A terminal in memory: what was drawn; `broken`: every write fails (a closed pty),
    /// kept as the real one keeps it.
    #[derive(Debug, Clone, Default)]
    struct Screen {
        text: Arc<Mutex<String>>,
        broken: bool,
        gone: Arc<AtomicBool>,
    }

    impl Screen {
        fn put(&self, s: &str) -> io::Result<()> {
            if self.broken {
                self.gone.store(true, Ordering::Relaxed);
            } else {
                self.text.lock().unwrap().push_str(s);
            }
            Ok(())
        }
    }

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            100
        }
        fn move_cursor_up(&self, _: usize) -> io::Result<()> {
            self.put("")
        }
        fn move_cursor_down(&self, _: usize) -> io::Result<()> {
            self.put("")
        }
        fn move_cursor_right(&self, _: usize) -> io::Result<()> {
            self.put("")
        }
        fn move_cursor_left(&self, _: usize) -> io::Result<()> {
            self.put("")
        }
        fn write_line(&self, s: &str) -> io::Result<()> {
            self.put(&format!("{s}\n"))
        }
        fn write_str(&self, s: &str) -> io::Result<()> {
            self.put(s)
        }
        fn clear_line(&self) -> io::Result<()> {
            self.put("")
        }
        fn flush(&self) -> io::Result<()> {
            self.put("")
        }
    }

    fn on(screen: &Screen) -> Live {
        Live::new(
            ProgressDrawTarget::term_like(Box::new(screen.clone())),
            screen.gone.clone(),
        )
    }

    #[test]
    fn no_live_lines_on_a_dumb_terminal() {
        assert!(draws(Some("xterm-256color")));
        assert!(!draws(Some("dumb")) && !draws(Some("")) && !draws(None));
    }

    #[test]
    fn the_lines_are_drawn_and_a_broken_terminal_is_given_up_without_a_panic() {
        let screen = Screen::default();
        let mut live = on(&screen);
        live.set_budget(10.0);
        live.run_output(1, 2.0, "loss 3.2000");
        live.print("[1] keep");
        assert!(
            screen.text.lock().unwrap().contains("w1 "),
            "the worker's line is drawn: {:?}",
            screen.text
        );
        let broken = Screen {
            broken: true,
            ..Screen::default()
        };
        let mut live = on(&broken);
        live.run_output(1, 2.0, "loss 3.2000");
        live.print("[2] discard");
        assert!(live.gone.load(Ordering::Relaxed));
        assert!(live.multi.is_hidden(), "nothing is drawn on it any more");
        live.print("[3] discard");
    }

    #[test]
    fn each_worker_has_its_own_line_until_its_run_ends() {
        let mut live = on(&Screen::default());
        live.set_budget(300.0);
        live.run_output(1, 12.0, "loss 3.2000");
        live.run_output(2, 40.0, "loss 2.9000");
        live.run_output(1, 13.0, "loss 3.1000");
        let (runs, llm) = live.lines();
        assert_eq!(
            runs,
            [
                (1, "w1    13s/300s  loss 3.1000".to_string()),
                (2, "w2    40s/300s  loss 2.9000".to_string()),
            ]
        );
        assert_eq!(llm, None);
        assert_eq!(live.bars[&1].position(), 43, "13 s of 300: 4.3% of the bar");
        live.run_finished(1);
        assert_eq!(live.lines().0.len(), 1);
        assert_eq!(live.lines().0[0].0, 2);
        live.clear();
        assert!(live.lines().0.is_empty());
    }

    #[test]
    fn an_llm_call_has_a_line_while_it_is_out() {
        let live = on(&Screen::default());
        let sink = live.call_progress();
        sink(&CallProgress {
            tokens: 0,
            seconds: 1.5,
            done: false,
        });
        assert_eq!(
            live.lines().1.as_deref(),
            Some("waiting for the LLM: 1.5 s")
        );
        sink(&CallProgress {
            tokens: 40,
            seconds: 2.0,
            done: false,
        });
        assert_eq!(
            live.lines().1.as_deref(),
            Some("the LLM is answering: 40 tokens, 2.0 s")
        );
        sink(&CallProgress {
            tokens: 40,
            seconds: 2.1,
            done: true,
        });
        assert_eq!(live.lines().1, None);
    }
}
