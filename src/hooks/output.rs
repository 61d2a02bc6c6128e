//! A hook's stdout and stderr: read without waiting, a bounded amount at a time, and
//! cut into bounded lines for vipd's log.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use super::sys;

/// The longest line logged, in bytes; a longer one is cut and ends in `...`.
pub const MAX_LINE: usize = 1024;
/// The most bytes read from one pipe in one step, so that a chatty hook cannot hold
/// the loop. A pipe holds 64 KiB by default: a hook writing more waits for the next
/// step, which is what bounds its log volume.
pub const READ_PER_STEP: usize = 16 * 1024;
/// The most bytes read from one pipe once its hook has ended: a pipe's default size,
/// so that everything the hook wrote before it ended is logged.
pub const READ_AT_END: usize = 64 * 1024;

/// Bytes cut into lines: at most [`MAX_LINE`] bytes are kept, so memory stays
/// bounded whatever the hook writes.
#[derive(Debug, Default)]
pub struct Lines {
    buf: Vec<u8>,
    /// The current line was too long: its rest is skipped up to the newline.
    skipping: bool,
}

impl Lines {
    /// Take `bytes`; every line they complete goes to `out` (without its newline).
    pub fn feed(&mut self, bytes: &[u8], out: &mut dyn FnMut(String)) {
        for &b in bytes {
            if b == b'\n' {
                if !self.skipping {
                    out(text(&self.buf));
                }
                self.buf.clear();
                self.skipping = false;
            } else if self.skipping {
            } else if self.buf.len() == MAX_LINE {
                out(format!("{}...", text(&self.buf)));
                self.buf.clear();
                self.skipping = true;
            } else {
                self.buf.push(b);
            }
        }
    }

    /// The stream ended: a last line without a newline goes to `out` too.
    pub fn finish(&mut self, out: &mut dyn FnMut(String)) {
        if !self.buf.is_empty() && !self.skipping {
            out(text(&self.buf));
        }
        self.buf.clear();
        self.skipping = false;
    }
}

/// A line as logged: invalid UTF-8 replaced, a trailing CR dropped, and control
/// characters (which could fake a log line or drive a terminal) shown as `?`.
pub fn text(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line)
        .chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect()
}

/// One of a hook's output pipes, vipd's end.
#[derive(Debug)]
pub struct Pipe {
    file: File,
    lines: Lines,
    /// stderr: its lines are warnings.
    pub is_stderr: bool,
}

/// Whether a pipe can still give output.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Open,
    Ended,
}

impl Pipe {
    /// Make `fd` (vipd's end, which `std` opens with `O_CLOEXEC`) non-blocking.
    pub fn new(fd: OwnedFd, is_stderr: bool) -> io::Result<Pipe> {
        sys::set_nonblocking(fd.as_fd())?;
        Ok(Pipe {
            file: File::from(fd),
            lines: Lines::default(),
            is_stderr,
        })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Read what is there, at most `limit` bytes, without waiting; lines to `out`.
    /// `Ended` at end of file or an error (the rest of a line is then given too).
    pub fn read(&mut self, limit: usize, out: &mut dyn FnMut(String)) -> Flow {
        let mut buf = [0u8; 4096];
        let mut left = limit;
        while left > 0 {
            let want = left.min(buf.len());
            match self.file.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => {
                    self.lines.feed(&buf[..n], out);
                    left -= n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flow::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
            if left == 0 {
                return Flow::Open;
            }
        }
        self.lines.finish(out);
        Flow::Ended
    }

    /// The hook ended: read what it left in the pipe (bounded), then close it.
    /// A process the hook left behind may still hold the pipe; it is not waited for.
    pub fn drain(mut self, out: &mut dyn FnMut(String)) {
        if self.read(READ_AT_END, out) == Flow::Open {
            self.lines.finish(out);
        }
    }
}
