//! One running hook: started without a shell in its own process group, its output
//! read and logged, its end noticed, its group killed at its timeout.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::output::{Flow, Pipe, READ_PER_STEP};
use super::{Event, Kind, sys};

/// A started hook.
#[derive(Debug)]
pub struct Running {
    pub kind: Kind,
    child: Child,
    /// Polls readable once the hook has exited; `None` where the kernel has no
    /// pidfds (before Linux 5.3) or a filter refuses them.
    pidfd: Option<OwnedFd>,
    out: Option<Pipe>,
    err: Option<Pipe>,
    pub started: Instant,
    pub timeout_at: Instant,
}

/// How a step left the hook.
#[derive(Debug)]
pub enum State {
    Running,
    Exited(ExitStatus),
    /// Waiting for the exit failed: the hook is gone (already reaped).
    Lost(io::Error),
}

/// The most lines of one pipe logged in one step: a hook printing short lines fast
/// must not turn a step into thousands of log writes (the log keeps 64 lines anyway).
pub const LINES_PER_STEP: usize = 64;

/// Log the lines `read` gives for one pipe, at most [`LINES_PER_STEP`]; the rest are
/// counted in one line.
fn log_lines<T>(kind: Kind, is_stderr: bool, read: impl FnOnce(&mut dyn FnMut(String)) -> T) -> T {
    let (mut logged, mut skipped) = (0usize, 0u64);
    let name = kind.name();
    let result = read(&mut |line| {
        if logged == LINES_PER_STEP {
            skipped += 1;
        } else if is_stderr {
            logged += 1;
            log::warn!("on-change[{name}]: {line}");
        } else {
            logged += 1;
            log::info!("on-change[{name}]: {line}");
        }
    });
    if skipped > 0 {
        log::warn!("on-change[{name}]: {skipped} more lines not logged (too much output at once)");
    }
    result
}

/// vipd's end of a pipe, made non-blocking; `None` (closed, the output lost) if that
/// fails, since a blocking pipe could hold the loop.
fn nonblocking(kind: Kind, fd: OwnedFd, is_stderr: bool) -> Option<Pipe> {
    Pipe::new(fd, is_stderr)
        .map_err(|e| log::warn!("on-change[{}]: its output is not read: {e}", kind.name()))
        .ok()
}

impl Running {
    /// Start `argv` for `ev` with only `PATH` and the `VIPD_*` variables, stdin
    /// `/dev/null` and its output into non-blocking pipes.
    pub fn spawn(
        argv: &[String],
        path: &str,
        ev: &Event,
        now: Instant,
        timeout_at: Instant,
    ) -> io::Result<Running> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no program"))?;
        let mut child = Command::new(program)
            .args(args)
            .env_clear()
            .env("PATH", path)
            .env("VIPD_EVENT", ev.kind.name())
            .env("VIPD_VIP", &ev.vip)
            .env("VIPD_INTERFACE", &ev.interface)
            .env("VIPD_LEADER", &ev.leader)
            .env("VIPD_NODE", &ev.node)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()?;
        let pidfd = sys::pidfd_open(child.id()).ok();
        let kind = ev.kind;
        let out = child
            .stdout
            .take()
            .and_then(|p| nonblocking(kind, p.into(), false));
        let err = child
            .stderr
            .take()
            .and_then(|p| nonblocking(kind, p.into(), true));
        Ok(Running {
            kind,
            child,
            pidfd,
            out,
            err,
            started: now,
            timeout_at,
        })
    }

    /// Whether the hook's exit can be polled for (else the caller ticks).
    pub fn has_pidfd(&self) -> bool {
        self.pidfd.is_some()
    }

    /// Behave as on a kernel without pidfds.
    #[cfg(test)]
    pub fn forget_pidfd(&mut self) {
        self.pidfd = None;
    }

    /// The descriptors to poll: the open pipes and the pidfd, all for `POLLIN`.
    pub fn interest(&self, out: &mut Vec<libc::pollfd>) {
        let fds = [self.out.as_ref(), self.err.as_ref()]
            .into_iter()
            .flatten()
            .map(Pipe::raw_fd)
            .chain(self.pidfd.as_ref().map(|fd| fd.as_raw_fd()));
        out.extend(fds.map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        }));
    }

    /// Read and log the output there is (bounded), then see whether the hook ended;
    /// if it did, log what it left in its pipes and close them.
    pub fn step(&mut self) -> State {
        let kind = self.kind;
        for pipe in [&mut self.out, &mut self.err] {
            if let Some(p) = pipe {
                let flow = log_lines(kind, p.is_stderr, |log| p.read(READ_PER_STEP, log));
                if flow == Flow::Ended {
                    *pipe = None;
                }
            }
        }
        let state = match self.child.try_wait() {
            Ok(None) => return State::Running,
            Ok(Some(status)) => State::Exited(status),
            Err(e) => State::Lost(e),
        };
        self.drain();
        state
    }

    /// Log what is left in the pipes and close them.
    fn drain(&mut self) {
        let kind = self.kind;
        for p in [self.out.take(), self.err.take()].into_iter().flatten() {
            log_lines(kind, p.is_stderr, |log| p.drain(log));
        }
    }

    /// SIGKILL the hook's process group (the hook and whatever it started that
    /// stayed in it), log what its pipes hold, and give back the child to reap.
    pub fn kill(mut self) -> Child {
        if let Err(e) = sys::kill_group(self.child.id()) {
            // The group is gone only if the hook and its children are; the hook is
            // not reaped yet, so this is unexpected: at least kill the hook.
            log::warn!(
                "on-change[{}]: killing its process group: {e}",
                self.kind.name()
            );
            let _ = self.child.kill();
        }
        self.drain();
        self.child
    }

    /// How long the hook has run.
    pub fn ran(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }
}
