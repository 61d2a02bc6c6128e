//! The server on real loopback sockets, driven by stepping with chosen times (the
//! deadlines are tested without waiting for them).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::*;

fn server() -> Server {
    Server::bind("127.0.0.1:0".parse().expect("an address")).expect("bind on loopback")
}

fn client(s: &Server) -> TcpStream {
    let c = TcpStream::connect(s.local_addr()).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("a read timeout");
    c
}

/// Step a few times at `now`, with a short pause before each, so that what a client
/// wrote on loopback has arrived.
fn settle(s: &mut Server, now: Instant, body: &mut dyn FnMut(&mut String)) {
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(10));
        s.step(now, body);
    }
}

/// Everything until the server closes (bounded by the read timeout).
fn reply(c: &mut TcpStream) -> String {
    let mut out = Vec::new();
    c.read_to_end(&mut out).expect("the reply, then EOF");
    String::from_utf8(out).expect("UTF-8")
}

/// Nothing to read yet (and the connection still open).
fn nothing_yet(c: &mut TcpStream) -> bool {
    c.set_nonblocking(true).expect("non-blocking");
    let r = c.read(&mut [0u8; 16]);
    c.set_nonblocking(false).expect("blocking");
    matches!(r, Err(e) if e.kind() == ErrorKind::WouldBlock)
}

fn header<'a>(reply: &'a str, name: &str) -> Option<&'a str> {
    let head = reply.split("\r\n\r\n").next()?;
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

#[test]
fn a_head_in_pieces_gets_the_metrics_once_complete() {
    let mut s = server();
    let t0 = Instant::now();
    let mut rendered = 0;
    let mut body = |out: &mut String| {
        rendered += 1;
        out.push_str("vipd_dcs_up 1\n");
    };
    let mut c = client(&s);
    for piece in [
        "GET /met",
        "rics?name[]=x HTTP/1.1\r\nHost: vip",
        "d\r\nAccept: */*\r\n",
    ] {
        c.write_all(piece.as_bytes()).expect("write");
        settle(&mut s, t0, &mut body);
        assert!(nothing_yet(&mut c), "no reply before the blank line");
        assert_eq!(s.connections(), 1);
    }
    c.write_all(b"\r\n").expect("write");
    settle(&mut s, t0 + Duration::from_millis(1500), &mut body);
    let r = reply(&mut c);
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert_eq!(
        header(&r, "Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(header(&r, "Content-Length"), Some("14"));
    assert_eq!(header(&r, "Connection"), Some("close"));
    assert!(r.ends_with("\r\n\r\nvipd_dcs_up 1\n"), "{r}");
    assert_eq!(s.connections(), 0);
    assert_eq!(rendered, 1);
}

/// Send `request` whole and return the reply and how often the body was rendered.
fn exchange(request: &[u8]) -> (String, u32) {
    let mut s = server();
    let mut rendered = 0;
    let mut c = client(&s);
    c.write_all(request).expect("write");
    settle(&mut s, Instant::now(), &mut |out: &mut String| {
        rendered += 1;
        out.push_str("x 1\n");
    });
    (reply(&mut c), rendered)
}

#[test]
fn other_paths_and_methods() {
    let (r, n) = exchange(b"GET /metricsx HTTP/1.1\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");
    assert_eq!(n, 0, "no rendering for a 404");
    let (r, n) = exchange(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{r}");
    assert_eq!(header(&r, "Allow"), Some("GET, HEAD"));
    assert_eq!(header(&r, "Connection"), Some("close"));
    assert_eq!(n, 0);
    let (r, n) = exchange(b"HEAD /metrics HTTP/1.0\n\n");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert_eq!(header(&r, "Content-Length"), Some("4"));
    assert!(r.ends_with("\r\n\r\n"), "no body: {r}");
    assert_eq!(n, 1);
    for bad in [
        &b"garbage\r\n\r\n"[..],
        b"GET /metrics\r\n\r\n",
        b"GET /metrics SPDY/3\r\n\r\n",
    ] {
        let (r, n) = exchange(bad);
        assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{r}");
        assert_eq!(n, 0);
    }
}

#[test]
fn a_head_over_4_kib_gets_431() {
    let mut request = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
    request.resize(5 * 1024, b'a');
    request.extend_from_slice(b"\r\n\r\n");
    let (r, n) = exchange(&request);
    assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
    assert_eq!(n, 0);
}

#[test]
fn a_silent_client_is_dropped_at_its_deadline() {
    let mut s = server();
    let t0 = Instant::now();
    let mut body = |_: &mut String| panic!("nothing to render");
    let mut c = client(&s);
    settle(&mut s, t0, &mut body);
    assert_eq!(s.connections(), 1);
    assert_eq!(s.deadline(), Some(t0 + HEAD_TIMEOUT));
    s.step(t0 + HEAD_TIMEOUT - Duration::from_millis(1), &mut body);
    assert_eq!(s.connections(), 1);
    assert!(nothing_yet(&mut c));
    s.step(t0 + HEAD_TIMEOUT, &mut body);
    assert_eq!(s.connections(), 0);
    assert_eq!(s.deadline(), None);
    assert_eq!(reply(&mut c), "", "closed without a reply");
}

#[test]
fn a_client_that_does_not_read_is_dropped_and_asked_for_pollout_meanwhile() {
    let mut s = server();
    let t0 = Instant::now();
    // Far more than the socket buffers on both sides hold.
    let mut body = |out: &mut String| {
        for _ in 0..(256 * 1024) {
            out.push_str("vipd_padding_total 12345678901234567890123456789\n");
        }
    };
    let c = client(&s);
    (&c).write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
        .expect("write");
    settle(&mut s, t0, &mut body);
    assert_eq!(s.connections(), 1, "the rest of the reply is kept");
    let mut fds = Vec::new();
    s.interest(&mut fds);
    assert_eq!(fds.len(), 2, "the listener and the connection");
    assert_eq!(fds[1].events, libc::POLLOUT);
    assert_eq!(s.deadline(), Some(t0 + WRITE_TIMEOUT));
    s.step(t0 + WRITE_TIMEOUT, &mut body);
    assert_eq!(s.connections(), 0);
}

#[test]
fn at_most_four_connections_and_the_fifth_waits_its_turn() {
    let mut s = server();
    let t0 = Instant::now();
    let mut body = |out: &mut String| out.push_str("x 1\n");
    let mut clients: Vec<TcpStream> = (0..5).map(|_| client(&s)).collect();
    settle(&mut s, t0, &mut body);
    assert_eq!(s.connections(), MAX_CONNECTIONS);
    let mut fds = Vec::new();
    s.interest(&mut fds);
    assert_eq!(
        fds.len(),
        MAX_CONNECTIONS,
        "the listener is left out while full"
    );
    assert!(fds.iter().all(|p| p.events == libc::POLLIN));
    // The fifth sends its request while it waits in the backlog.
    clients[4]
        .write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
        .expect("write");
    clients[0]
        .write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
        .expect("write");
    settle(&mut s, t0 + Duration::from_millis(100), &mut body);
    assert!(reply(&mut clients[0]).ends_with("\r\n\r\nx 1\n"));
    assert!(reply(&mut clients[4]).ends_with("\r\n\r\nx 1\n"));
    // The three that never sent anything are left.
    assert_eq!(s.connections(), MAX_CONNECTIONS - 1);
}
