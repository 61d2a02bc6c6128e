//! The metrics server (placeholder: binds, serves nothing yet).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Instant;

pub struct Server {
    listener: TcpListener,
}

impl Server {
    pub fn bind(addr: SocketAddr) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(Server { listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn interest(&self, out: &mut Vec<libc::pollfd>) {
        let _ = out;
    }

    pub fn deadline(&self) -> Option<Instant> {
        None
    }

    pub fn step(&mut self, now: Instant, body: &mut dyn FnMut(&mut String)) {
        let _ = (now, body);
    }
}
