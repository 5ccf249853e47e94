//! Output floods: how much of a run's output is split into lines for the live display (and
//! whatever else watches lines). A script may print a line per step at any rate; past
//! [`LINES_PER_WINDOW`] lines in a [`WINDOW`], what it prints is still written to the log
//! in full but only the last whole line of each chunk read is handed on until the window
//! ends: nobody watches faster, and
//! splitting 100 MB of progress lines one by one made such a script 13x slower under the
//! harness than alone. The metric and a crash's traceback are read from the log, never
//! from these lines.

use super::logsink::LineSplitter;
use std::time::{Duration, Instant};

/// Lines handed on per window, at most (a chunk read while under it is handed on whole).
pub(crate) const LINES_PER_WINDOW: u32 = 200;
pub(crate) const WINDOW: Duration = Duration::from_millis(100);

/// Counts the lines handed on in the current window.
pub(crate) struct Throttle {
    since: Instant,
    handed: u32,
}

impl Throttle {
    pub(crate) fn new() -> Throttle {
        Throttle {
            since: Instant::now(),
            handed: 0,
        }
    }

    /// Feeds `chunk` to `lines`: whole while the window has room; otherwise only its last
    /// whole line and what follows it (the other lines it completes are skipped), so that
    /// every line handed on is whole.
    pub(crate) fn feed(
        &mut self,
        lines: &mut LineSplitter,
        chunk: &[u8],
        emit: &mut dyn FnMut(String),
    ) {
        self.feed_at(Instant::now(), lines, chunk, emit);
    }

    fn feed_at(
        &mut self,
        now: Instant,
        lines: &mut LineSplitter,
        chunk: &[u8],
        emit: &mut dyn FnMut(String),
    ) {
        if now.duration_since(self.since) >= WINDOW {
            self.since = now;
            self.handed = 0;
        }
        if self.handed < LINES_PER_WINDOW {
            let handed = &mut self.handed;
            lines.feed(chunk, &mut |line| {
                *handed += 1;
                emit(line);
            });
            return;
        }
        // Of the lines this chunk completes, only the last is handed on (the latest state,
        // and a script's last line when the chunk is its last).
        let end = |b: &u8| *b == b'\n';
        match chunk.iter().rposition(end) {
            Some(last) => match chunk[..last].iter().rposition(end) {
                Some(before) => {
                    lines.feed(b"\n", &mut |_| {});
                    lines.feed(&chunk[before + 1..], emit);
                }
                None => lines.feed(chunk, emit),
            },
            // No line ends here: it goes on with the line begun (cut at its longest).
            None => lines.feed(chunk, emit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_handed_on_in_part_and_every_line_handed_on_is_whole() {
        let mut t = Throttle::new();
        let at = t.since;
        let mut lines = LineSplitter::default();
        let mut got = Vec::new();
        let chunk: Vec<u8> = (0..1000)
            .flat_map(|i| format!("step {i} | loss: 1.5\n").into_bytes())
            .collect();
        // Ten chunks of a thousand lines, faster than a window: the first is handed on
        // whole, of the others only the last line each.
        for i in 0..10 {
            t.feed_at(at, &mut lines, &chunk, &mut |l| got.push(l));
            let partial = format!("step x{i} | lo");
            t.feed_at(at, &mut lines, partial.as_bytes(), &mut |l| got.push(l));
        }
        t.feed_at(at, &mut lines, b"ss: 2.0\nlast\n", &mut |l| got.push(l));
        assert_eq!(got.len(), 1000 + 9 + 1, "{:?}", &got[1000..]);
        assert!(got[1000..1009].iter().all(|l| l == "step 999 | loss: 1.5"));
        assert_eq!(got.last().map(String::as_str), Some("last"));
        // A line begun in a skipped stretch is never handed on in pieces.
        assert!(got.iter().all(|l| !l.contains('x')));
        // The next window hands every line on again.
        t.feed_at(at + WINDOW, &mut lines, b"a\nb\n", &mut |l| got.push(l));
        assert_eq!(got[got.len() - 2..], ["a", "b"]);
    }

    #[test]
    fn a_script_that_prints_fewer_lines_than_a_window_holds_loses_none() {
        let mut t = Throttle::new();
        let at = t.since;
        let mut lines = LineSplitter::default();
        let mut got = Vec::new();
        for i in 0..LINES_PER_WINDOW {
            let line = format!("line {i}\n");
            t.feed_at(at, &mut lines, line.as_bytes(), &mut |l| got.push(l));
        }
        assert_eq!(got.len(), LINES_PER_WINDOW as usize);
    }
}
