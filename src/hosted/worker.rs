//! The one long-lived thread that talks to the provider's API, so that a call that
//! takes a minute never holds the loop. Jobs go in over a channel; each answer comes
//! back over another, and one byte on a socket pair wakes the loop's `poll` (a socket
//! pair rather than a pipe: std makes it without unsafe code). The thread ends when
//! the loop drops its [`Worker`]: after the call in flight, whose answer nobody reads.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use super::{Api, Done, Failure, carry_out};

/// What the loop asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Read the route.
    Read,
    /// Read the route and move it here if it is elsewhere.
    Ensure,
}

/// An answer to job number `seq`.
#[derive(Debug)]
pub struct Outcome {
    pub seq: u64,
    pub result: Result<Done, Failure>,
}

pub struct Worker {
    jobs: Sender<(u64, Job)>,
    answers: Receiver<Outcome>,
    /// The loop's end of the socket pair: readable when an answer is queued.
    bell: UnixStream,
}

impl Worker {
    pub fn spawn(mut api: Box<dyn Api>) -> std::io::Result<Worker> {
        let (jobs, job_rx) = mpsc::channel::<(u64, Job)>();
        let (answer_tx, answers) = mpsc::channel();
        let (bell, mut ring) = UnixStream::pair()?;
        bell.set_nonblocking(true)?;
        ring.set_nonblocking(true)?;
        std::thread::Builder::new()
            .name("vipd-api".into())
            .spawn(move || {
                while let Ok((seq, job)) = job_rx.recv() {
                    let result = carry_out(api.as_mut(), job);
                    if answer_tx.send(Outcome { seq, result }).is_err() {
                        return;
                    }
                    // A full socket already rings: the loop drains every answer.
                    let _ = ring.write(&[1]);
                }
            })?;
        Ok(Worker {
            jobs,
            answers,
            bell,
        })
    }

    pub fn fd(&self) -> std::os::fd::RawFd {
        self.bell.as_raw_fd()
    }

    /// Hand a job over; `false` if the thread is gone.
    pub fn send(&self, seq: u64, job: Job) -> bool {
        self.jobs.send((seq, job)).is_ok()
    }

    /// An answer, if one is queued (never waits, no system call).
    pub fn answer(&mut self) -> Option<Outcome> {
        self.answers.try_recv().ok()
    }

    /// Empty the bell once `poll` said it rang; the answers are taken with
    /// [`Worker::answer`]. Each answer is queued before its byte is written, so no
    /// answer is left behind a bell already emptied.
    pub fn silence(&mut self) {
        let mut sink = [0u8; 64];
        while matches!(self.bell.read(&mut sink), Ok(n) if n > 0) {}
    }

    /// Wait for the answer to job `seq`, at most `bound` (`--once`).
    pub fn wait(&mut self, seq: u64, bound: Duration) -> Option<Result<Done, Failure>> {
        let until = Instant::now() + bound;
        loop {
            let left = until.checked_duration_since(Instant::now())?;
            let outcome = self.answers.recv_timeout(left).ok()?;
            if outcome.seq == seq {
                return Some(outcome.result);
            }
        }
    }
}
