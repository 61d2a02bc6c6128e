//! One socket, plain TCP or TLS (rustls, with the cargo feature `tls`), non-blocking: one
//! way to bound a wait, a `poll(2)` that ends at the turn's deadline, never a socket
//! timeout, an alarm or a signal.
//!
//! Contract for a caller that waits on several descriptors in one `poll`: wait for `POLLIN`
//! on [`Transport::poll_fd`] only while [`Transport::has_buffered`] is false. rustls may
//! hold decrypted bytes it already read from the socket, which no `poll` reports; a read
//! returns them at once (this module's own reads drain them before they poll).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use crate::net::sys;
use crate::wake::Wake;

/// The socket of a connection, with TLS or without.
pub enum Transport {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Transport {
    fn socket(&self) -> &TcpStream {
        match self {
            Transport::Plain(sock) => sock,
            #[cfg(feature = "tls")]
            Transport::Tls(tls) => &tls.sock,
        }
    }

    /// The descriptor to poll for `POLLIN` (see the module's contract).
    pub fn poll_fd(&self) -> RawFd {
        self.socket().as_raw_fd()
    }

    /// Whether a read returns without the socket: rustls holds decrypted bytes (or the
    /// peer's close) already.
    pub fn has_buffered(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            #[cfg(feature = "tls")]
            Transport::Tls(tls) => !tls.conn.is_handshaking() && !tls.conn.wants_read(),
        }
    }

    /// Read what is there without waiting: `WouldBlock` when nothing is, `Ok(0)` at the end.
    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(sock) => sock.read(buf),
            #[cfg(feature = "tls")]
            Transport::Tls(tls) => loop {
                match tls.conn.reader().read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // The peer closed without close_notify: the end all the same.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    other => return other,
                }
                if tls.conn.read_tls(&mut tls.sock)? == 0 {
                    // The reader now reports the end.
                    continue;
                }
                process(tls)?;
            },
        }
    }

    /// Read at least one byte (`Ok(0)`: the server closed), waiting until `deadline`.
    /// With `wake` (a wait for a change), a signal or a ready descriptor of `wake` ends
    /// the wait with `Interrupted`, the connection left as it was.
    pub fn read(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
        wake: Option<Wake<'_>>,
    ) -> io::Result<usize> {
        loop {
            if !self.has_buffered() {
                wait(self.socket(), libc::POLLIN, deadline, wake)?;
            }
            match self.read_now(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted && wake.is_none() => {}
                other => return other,
            }
        }
    }

    /// Write all of `data`, waiting for room until `deadline`.
    pub fn write_all(&mut self, data: &[u8], deadline: Instant) -> io::Result<()> {
        match self {
            Transport::Plain(sock) => {
                let mut at = 0;
                while at < data.len() {
                    match sock.write(&data[at..]) {
                        Ok(n) => at += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            wait(sock, libc::POLLOUT, deadline, None)?;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
            #[cfg(feature = "tls")]
            Transport::Tls(tls) => {
                tls.conn.writer().write_all(data)?;
                flush(tls, deadline)
            }
        }
    }
}

#[cfg(feature = "tls")]
type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Take in the TLS records read; on a TLS error, send rustls' alert (best effort).
#[cfg(feature = "tls")]
fn process(tls: &mut TlsStream) -> io::Result<()> {
    match tls.conn.process_new_packets() {
        Ok(_) => Ok(()),
        Err(e) => {
            let _ = tls.conn.write_tls(&mut tls.sock);
            Err(io::Error::new(io::ErrorKind::InvalidData, e))
        }
    }
}

/// Send what rustls has queued, waiting for room until `deadline`.
#[cfg(feature = "tls")]
fn flush(tls: &mut TlsStream, deadline: Instant) -> io::Result<()> {
    while tls.conn.wants_write() {
        match tls.conn.write_tls(&mut tls.sock) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait(&tls.sock, libc::POLLOUT, deadline, None)?;
            }
            Err(e) if e.kind() != io::ErrorKind::Interrupted => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// A TLS session with `host` (its name or IP address verified) on a connected
/// non-blocking socket: the handshake, until `deadline`.
#[cfg(feature = "tls")]
pub fn tls(
    sock: TcpStream,
    config: std::sync::Arc<rustls::ClientConfig>,
    host: &str,
    deadline: Instant,
) -> io::Result<Transport> {
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| invalid(format!("{host:?}: {e}")))?;
    let conn = rustls::ClientConnection::new(config, name).map_err(|e| invalid(e.to_string()))?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        if tls.conn.wants_write() {
            flush(&mut tls, deadline)?;
            continue;
        }
        match tls.conn.read_tls(&mut tls.sock) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the server closed the connection during the TLS handshake",
                ));
            }
            Ok(_) => process(&mut tls)?,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait(&tls.sock, libc::POLLIN, deadline, None)?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Transport::Tls(Box::new(tls)))
}

/// Wait with `poll(2)` until `sock` is ready for `events`: `TimedOut` at `deadline`.
/// With `wake`, the loop's other descriptors share the `poll` ([`crate::wake`]): one of
/// them ready, or a signal, ends the wait with `Interrupted`; without, the wait goes on.
fn wait(
    sock: &TcpStream,
    events: libc::c_short,
    deadline: Instant,
    wake: Option<Wake<'_>>,
) -> io::Result<()> {
    let own = libc::pollfd {
        fd: sock.as_raw_fd(),
        events,
        revents: 0,
    };
    // The socket first, then the loop's descriptors: on the stack (a wait a turn
    // allocates nothing), unless the loop has more than it holds.
    let extra = wake.map_or(&[][..], |w| w.fds());
    let (mut stack, mut heap) = ([own; 16], Vec::new());
    let fds: &mut [libc::pollfd] = if extra.len() < stack.len() {
        stack[1..=extra.len()].copy_from_slice(extra);
        &mut stack[..=extra.len()]
    } else {
        heap.push(own);
        heap.extend_from_slice(extra);
        &mut heap
    };
    loop {
        if Instant::now() >= deadline {
            return Err(io::ErrorKind::TimedOut.into());
        }
        match sys::poll_until(fds, deadline) {
            Ok(0) => return Err(io::ErrorKind::TimedOut.into()),
            // The socket first: its data is never left for a later wait.
            Ok(_) if fds[0].revents != 0 => return Ok(()),
            Ok(_) => {
                wake.inspect(|w| w.woke());
                return Err(io::ErrorKind::Interrupted.into());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted && wake.is_none() => {}
            Err(e) => {
                wake.inspect(|w| w.woke());
                return Err(e);
            }
        }
    }
}
