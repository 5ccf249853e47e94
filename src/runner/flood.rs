//! Output floods: how much of a run's output is split into lines for the live display (and
//! whatever else watches lines). A script may print a line per step at any rate; past
//! [`LINES_PER_WINDOW`] lines in a [`WINDOW`], what it prints is still written to the log
//! in full but not split and handed on until the window ends, except the latest line, held
//! and handed on when the window ends or the output does: nobody watches faster, and
//! splitting 100 MB of progress lines one by one made such a script 13x slower under the
//! harness than alone. The metric and a crash's traceback are read from the log, never
//! from these lines.

use super::logsink::LineSplitter;
use std::time::{Duration, Instant};

/// Lines handed on per window, at most (a chunk read while under it is handed on whole).
pub(crate) const LINES_PER_WINDOW: u32 = 200;
pub(crate) const WINDOW: Duration = Duration::from_millis(100);

/// Counts the lines handed on in the current window, and holds the latest line skipped.
pub(crate) struct Throttle {
    since: Instant,
    handed: u32,
    /// The last whole line of the stretch skipped (with its line end), handed on when the
    /// window ends or the output does: the latest state, and a script's last line.
    held: Vec<u8>,
}

impl Throttle {
    pub(crate) fn new() -> Throttle {
        Throttle {
            since: Instant::now(),
            handed: 0,
            held: Vec::new(),
        }
    }

    /// Feeds `chunk` to `lines`: whole while the window has room; otherwise only what
    /// follows its last line end (the lines it completes are skipped, the last of them
    /// held), so that every line handed on is whole.
    pub(crate) fn feed(
        &mut self,
        lines: &mut LineSplitter,
        chunk: &[u8],
        emit: &mut dyn FnMut(String),
    ) {
        self.feed_at(Instant::now(), lines, chunk, emit);
    }

    /// Hands on the line held, at the end of the output (before the splitter's flush).
    pub(crate) fn finish(&mut self, emit: &mut dyn FnMut(String)) {
        if !self.held.is_empty() {
            LineSplitter::default().feed(&std::mem::take(&mut self.held), emit);
        }
    }

    fn feed_at(
        &mut self,
        now: Instant,
        lines: &mut LineSplitter,
        chunk: &[u8],
        emit: &mut dyn FnMut(String),
    ) {
        if now.duration_since(self.since) >= WINDOW {
            self.finish(emit);
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
        let end = |b: &u8| *b == b'\n';
        let Some(last) = chunk.iter().rposition(end) else {
            // No line ends here: it goes on with the line begun (cut at its longest).
            return lines.feed(chunk, emit);
        };
        // The line the chunk's last line end completes (the splitter's begun one when it is
        // the chunk's only line end): the lines before it are not even split.
        let from = match chunk[..last].iter().rposition(end) {
            Some(before) => {
                lines.feed(b"\n", &mut |_| {});
                before + 1
            }
            None => 0,
        };
        let mut whole = Vec::new();
        lines.feed(&chunk[from..=last], &mut |line| whole = line.into_bytes());
        whole.push(b'\n');
        self.held = whole;
        lines.feed(&chunk[last + 1..], emit);
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
        // whole, the others skipped but for their last line, held until the window ends.
        for i in 0..10 {
            t.feed_at(at, &mut lines, &chunk, &mut |l| got.push(l));
            let partial = format!("step x{i} | lo");
            t.feed_at(at, &mut lines, partial.as_bytes(), &mut |l| got.push(l));
        }
        t.feed_at(at, &mut lines, b"ss: 2.0\nlast\n", &mut |l| got.push(l));
        assert_eq!(got.len(), 1000);
        // A line begun in a skipped stretch is never handed on in pieces.
        assert!(got.iter().all(|l| !l.contains('x')));
        // The next window hands on the line held, then every line again.
        t.feed_at(at + WINDOW, &mut lines, b"a\nb\n", &mut |l| got.push(l));
        assert_eq!(got[1000..], ["last", "a", "b"]);
        // The end of the output hands on the line held.
        t.feed_at(at + WINDOW, &mut lines, &chunk, &mut |l| got.push(l));
        t.feed_at(at + WINDOW, &mut lines, b"9 | lo", &mut |l| got.push(l));
        t.feed_at(at + WINDOW, &mut lines, b"ss: 0.5\n", &mut |l| got.push(l));
        t.finish(&mut |l| got.push(l));
        assert_eq!(got.last().map(String::as_str), Some("9 | loss: 0.5"));
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
