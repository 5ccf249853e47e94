//! The run log on disk with a size cap, and the splitting of output into display lines.
//! Owns the bytes a run writes; never holds more than half the cap (plus one 4 KiB line)
//! in memory, and never interprets what it stores.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

/// Longest line handed to `on_line`, in bytes; the rest of the line is dropped, so a
/// 10 MB line without a newline costs 4 KiB, not 10 MB.
pub(crate) const MAX_LINE_BYTES: usize = 4096;

/// The log file of one run. Writes go straight to disk until the cap is reached; past it
/// the file is cut back to the head (the first half of the cap) and only the last half-cap
/// bytes are kept, in a ring, to be appended with a marker line by [`LogSink::finish`].
pub(crate) struct LogSink {
    file: File,
    cap: u64,
    head_limit: u64,
    /// Every byte the script wrote, kept or not.
    total: u64,
    /// Bytes written past the head, kept for the tail once the cap is exceeded.
    tail: Ring,
    overflowed: bool,
    /// Last byte of the head on disk, to start the marker on a line of its own.
    head_last_byte: Option<u8>,
    /// Set after an I/O error or after `finish`; later writes are dropped (but counted).
    closed: bool,
}

/// Creates or truncates `path`, never through a symlink: an earlier run in this folder
/// could have left one at this name to have us truncate and write a file out of its box.
/// A symlink there is removed and the file made afresh; anything else (a file, a device
/// such as `/dev/full`) is opened as it is.
fn open_no_follow(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(path)
    };
    match open() {
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) => {
            std::fs::remove_file(path)?;
            open()
        }
        r => r,
    }
}

impl LogSink {
    /// Creates the log file afresh (replacing an old one) and its parent folders.
    pub(crate) fn create(path: &Path, cap: u64) -> io::Result<LogSink> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = open_no_follow(path)?;
        let head_limit = cap / 2;
        let tail_cap = usize::try_from(cap - head_limit).unwrap_or(usize::MAX);
        Ok(LogSink {
            file,
            cap,
            head_limit,
            total: 0,
            tail: Ring::new(tail_cap),
            overflowed: false,
            head_last_byte: None,
            closed: false,
        })
    }

    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Appends a chunk of output. After an error the sink is closed: the caller reports
    /// the error once and keeps draining the pipes so the script never blocks on them.
    pub(crate) fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        let start = self.total;
        self.total += chunk.len() as u64;
        if self.closed {
            return Ok(());
        }
        // Bytes past the head go to the ring too, so that the tail is ready the moment
        // the cap is exceeded.
        if self.total > self.head_limit {
            let skip = usize::try_from(self.head_limit.saturating_sub(start)).unwrap_or(0);
            self.tail.push(&chunk[skip.min(chunk.len())..]);
        }
        let result = self.write_to_disk(start, chunk);
        if result.is_err() {
            self.closed = true;
        }
        result
    }

    fn write_to_disk(&mut self, start: u64, chunk: &[u8]) -> io::Result<()> {
        if self.overflowed {
            return Ok(());
        }
        if self.total <= self.cap {
            self.file.write_all(chunk)?;
            self.note_head_byte(start, chunk);
            return Ok(());
        }
        // First time past the cap: keep only the head on disk from now on.
        self.overflowed = true;
        self.file.set_len(self.head_limit)?;
        self.file.seek(SeekFrom::Start(self.head_limit))?;
        if start < self.head_limit {
            let keep = usize::try_from(self.head_limit - start).unwrap_or(chunk.len());
            self.note_head_byte(start, &chunk[..keep.min(chunk.len())]);
        }
        Ok(())
    }

    fn note_head_byte(&mut self, start: u64, chunk: &[u8]) {
        // Only bytes inside the head matter for where the marker starts.
        let in_head = usize::try_from(self.head_limit.saturating_sub(start)).unwrap_or(0);
        if let Some(&b) = chunk[..in_head.min(chunk.len())].last() {
            self.head_last_byte = Some(b);
        }
    }

    /// Writes the marker and the tail if output was dropped, and closes the sink.
    pub(crate) fn finish(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        if !self.overflowed {
            return self.file.flush();
        }
        let tail = self.tail.contents();
        let dropped = self.total - self.head_limit - tail.len() as u64;
        let newline = if matches!(self.head_last_byte, Some(b'\n') | None) {
            ""
        } else {
            "\n"
        };
        writeln!(
            self.file,
            "{newline}[autoresearch: {dropped} bytes of output dropped here]"
        )?;
        self.file.write_all(&tail)?;
        self.file.flush()
    }

    /// Stops all further writes (used when the run gives up on a reader that never ends).
    pub(crate) fn close(&mut self) {
        self.closed = true;
    }
}

/// A fixed-size byte ring holding the last `cap` bytes pushed.
struct Ring {
    buf: Vec<u8>,
    cap: usize,
    /// Next write position once the buffer is full.
    pos: usize,
}

impl Ring {
    fn new(cap: usize) -> Ring {
        // Allocated lazily, as output arrives: most runs never fill half the cap.
        Ring {
            buf: Vec::new(),
            cap,
            pos: 0,
        }
    }

    fn push(&mut self, mut data: &[u8]) {
        if self.cap == 0 {
            return;
        }
        if data.len() >= self.cap {
            data = &data[data.len() - self.cap..];
            self.buf.clear();
            self.buf.extend_from_slice(data);
            self.pos = 0;
            return;
        }
        if self.buf.len() < self.cap {
            let room = self.cap - self.buf.len();
            let now = data.len().min(room);
            self.buf.extend_from_slice(&data[..now]);
            data = &data[now..];
        }
        while !data.is_empty() {
            let now = data.len().min(self.cap - self.pos);
            self.buf[self.pos..self.pos + now].copy_from_slice(&data[..now]);
            self.pos = (self.pos + now) % self.cap;
            data = &data[now..];
        }
    }

    fn contents(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buf.len());
        out.extend_from_slice(&self.buf[self.pos..]);
        out.extend_from_slice(&self.buf[..self.pos]);
        out
    }
}

/// Splits one stream into lines for display: lossy UTF-8, each cut to [`MAX_LINE_BYTES`].
/// A lone `\r` ends a line too: progress bars (karpathy's `\rstep 00123 (45.6%) | loss:
/// …`) rewrite one terminal line without ever printing a newline, and each update is a
/// point of the training curve.
#[derive(Default)]
pub(crate) struct LineSplitter {
    current: Vec<u8>,
    /// True when bytes of the current line were dropped by the cut.
    any: bool,
    /// The last byte seen was a `\r` that ended a line (its `\n`, if next, ends nothing).
    after_cr: bool,
}

impl LineSplitter {
    /// Feeds a chunk; calls `emit` for every line it completes.
    pub(crate) fn feed(&mut self, mut chunk: &[u8], emit: &mut dyn FnMut(String)) {
        while !chunk.is_empty() {
            if std::mem::take(&mut self.after_cr) && chunk[0] == b'\n' {
                chunk = &chunk[1..];
                continue;
            }
            match chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(i) => {
                    self.take(&chunk[..i]);
                    let cr = chunk[i] == b'\r';
                    // `\r` at the start of a line (before its first update) ends nothing.
                    if !cr || !self.current.is_empty() {
                        emit(self.line());
                    } else {
                        self.any = false;
                    }
                    self.after_cr = cr;
                    chunk = &chunk[i + 1..];
                }
                None => {
                    self.take(chunk);
                    chunk = &[];
                }
            }
        }
    }

    /// Emits the last line if the stream ended without a newline.
    pub(crate) fn flush(&mut self, emit: &mut dyn FnMut(String)) {
        if self.any {
            emit(self.line());
        }
    }

    fn take(&mut self, bytes: &[u8]) {
        self.any = true;
        let room = MAX_LINE_BYTES.saturating_sub(self.current.len());
        self.current
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn line(&mut self) -> String {
        self.any = false;
        let mut bytes = std::mem::take(&mut self.current);
        // Progress bars end their lines with \r\n; the \r would only confuse displays.
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> Vec<String> {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, &mut |l| out.push(l));
        }
        s.flush(&mut |l| out.push(l));
        out
    }

    #[test]
    fn splits_across_chunks_and_keeps_the_partial_last_line() {
        assert_eq!(
            lines(&[b"ab", b"c\nd\n\ne", b"f"]),
            vec!["abc", "d", "", "ef"]
        );
        assert_eq!(lines(&[b"x\r\n"]), vec!["x"]);
        assert!(lines(&[b""]).is_empty());
    }

    #[test]
    fn a_lone_carriage_return_ends_a_progress_line() {
        assert_eq!(
            lines(&[
                b"\rstep 1 | loss: 3.0\rstep 2 | lo",
                b"ss: 2.5\r",
                b"\nval: 1\n"
            ]),
            vec!["step 1 | loss: 3.0", "step 2 | loss: 2.5", "val: 1"]
        );
        assert_eq!(lines(&[b"a\r", b"\n", b"\n"]), vec!["a", ""]);
    }

    #[test]
    fn long_lines_are_cut() {
        let big = vec![b'y'; 3 * MAX_LINE_BYTES];
        let out = lines(&[&big, &big, b"\nok\n"]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), MAX_LINE_BYTES);
        assert_eq!(out[1], "ok");
    }

    #[test]
    fn ring_keeps_the_last_bytes() {
        let mut r = Ring::new(5);
        r.push(b"abc");
        assert_eq!(r.contents(), b"abc");
        r.push(b"defg");
        assert_eq!(r.contents(), b"cdefg");
        r.push(b"h");
        assert_eq!(r.contents(), b"defgh");
        r.push(b"0123456789");
        assert_eq!(r.contents(), b"56789");
        r.push(b"ab");
        assert_eq!(r.contents(), b"789ab");
    }

    #[test]
    fn sink_keeps_head_and_tail_past_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/run.log");
        let mut sink = LogSink::create(&path, 10).unwrap();
        for chunk in [&b"0123"[..], b"4567", b"89ab", b"cdefghij"] {
            sink.write(chunk).unwrap();
        }
        sink.finish().unwrap();
        assert_eq!(sink.total(), 20);
        let log = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            log,
            "01234\n[autoresearch: 10 bytes of output dropped here]\nfghij"
        );
    }

    #[test]
    fn sink_under_the_cap_is_verbatim() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.log");
        let mut sink = LogSink::create(&path, 10).unwrap();
        sink.write(b"01234").unwrap();
        sink.write(b"56789").unwrap();
        sink.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789");
    }

    #[test]
    fn a_symlink_at_the_log_path_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let path = dir.path().join("run.log");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let mut sink = LogSink::create(&path, 1 << 20).unwrap();
        sink.write(b"log").unwrap();
        sink.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "log");
    }
}
