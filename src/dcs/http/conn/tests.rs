//! The connection against small servers on loopback.

use super::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn endpoint_urls() {
    let t = Target::parse("http://192.0.2.1:2379").unwrap();
    assert_eq!(
        (t.https, t.host.as_str(), t.port),
        (false, "192.0.2.1", 2379)
    );
    assert_eq!(
        (t.authority.as_str(), t.path.as_str()),
        ("192.0.2.1:2379", "")
    );
    let t = Target::parse("HTTPS://[2001:db8::1]/etcd/").unwrap();
    assert_eq!(
        (t.https, t.host.as_str(), t.port),
        (true, "2001:db8::1", 443)
    );
    assert_eq!(
        (t.authority.as_str(), t.path.as_str()),
        ("[2001:db8::1]", "/etcd")
    );
    let t = Target::parse("http://[2001:db8::1]:8008/leader?lag=1").unwrap();
    assert_eq!((t.port, t.path.as_str()), (8008, "/leader?lag=1"));
    assert_eq!(Target::parse("http://etcd.example").unwrap().port, 80);
    for bad in [
        "etcd:2379",
        "ftp://h",
        "http://",
        "http://h:x",
        "http://h:70000",
    ] {
        assert!(Target::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn names_are_looked_up_and_literals_are_not() {
    let soon = Instant::now() + Duration::from_secs(2);
    assert_eq!(
        resolve("2001:db8::1", 2379, Instant::now()).unwrap(),
        vec!["[2001:db8::1]:2379".parse().unwrap()]
    );
    let local = resolve("localhost", 80, soon).unwrap();
    assert!(
        local.iter().all(|a| a.ip().is_loopback() && a.port() == 80),
        "{local:?}"
    );
    assert!(resolve("name.invalid", 80, soon).is_err());
}

/// A server answering each request on a connection with `reply(n)`, counting
/// connections; it closes a connection after `per_conn` requests.
fn server(per_conn: usize, reply: fn(usize) -> Vec<u8>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let c = conns.clone();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().take(20).enumerate() {
            let Ok(mut s) = stream else { continue };
            c.fetch_add(1, Ordering::SeqCst);
            for i in 0..per_conn {
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                // One request: head and the small body arrive together or soon.
                loop {
                    let Ok(k) = s.read(&mut buf) else { return };
                    if k == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..k]);
                    if let Some(p) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&got[..p]).to_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if got.len() >= p + 4 + len {
                            break;
                        }
                    }
                }
                if got.is_empty() {
                    break;
                }
                let _ = s.write_all(&reply(n * 100 + i));
            }
        }
    });
    (addr, conns)
}

fn client(addr: SocketAddr) -> Connection {
    Connection::new(
        &format!("http://{addr}"),
        Duration::from_secs(2),
        &Tls::default(),
    )
}

/// A POST of `body` to `path`: status and body.
fn post(c: &mut Connection, path: &str, body: &str) -> Result<(u16, Vec<u8>), Error> {
    let headers = [("Grpc-Metadata-hasleader", "true")];
    c.request(&Request::post(&[path], &headers, body), soon())
        .map(|r| (r.status, r.body))
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(2)
}

#[test]
fn keeps_one_connection_alive() {
    let (addr, conns) = server(100, |i| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{i}",
            i.to_string().len()
        )
        .into_bytes()
    });
    let mut c = client(addr);
    for i in 0..5 {
        let (status, body) = post(&mut c, "/v3/kv/range", "{}").unwrap();
        assert_eq!((status, body), (200, i.to_string().into_bytes()));
    }
    assert_eq!(conns.load(Ordering::SeqCst), 1);
}

#[test]
fn replaces_a_connection_the_server_closed() {
    let (addr, conns) = server(1, |_| {
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()
    });
    let mut c = client(addr);
    for _ in 0..3 {
        assert_eq!(post(&mut c, "/", "").unwrap(), (200, b"ok".to_vec()));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(conns.load(Ordering::SeqCst), 3);
}

/// Framing and bounds are the parser's (wire's tests); here, what needs a socket: a reply
/// that ends with the connection, and a refusal that ends the exchange.
#[test]
fn close_delimited_and_refused_replies() {
    let (addr, _) = server(1, |_| b"HTTP/1.0 200 OK\r\n\r\nold".to_vec());
    assert_eq!(
        post(&mut client(addr), "/", "").unwrap(),
        (200, b"old".to_vec())
    );
    let (addr, _) = server(100, |_| {
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec()
    });
    let err = post(&mut client(addr), "/", "").unwrap_err();
    assert_eq!(err.to_string(), "reply larger than 65536 bytes refused");
}

#[test]
fn a_stream_outlives_its_deadlines() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<&'static [u8]>();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for piece in rx {
            let _ = s.write_all(piece);
        }
    });
    let req = Request::post(&["/v3/watch"], &[], "{}");
    let mut stream = client(addr).open_stream(&req, soon()).unwrap();
    assert!(!stream.transport().has_buffered());
    let mut out = Vec::new();
    let short = || Instant::now() + Duration::from_millis(50);
    assert_eq!(
        stream.read_into(&mut out, short(), Wake::SIGNALS),
        Err(StreamEnd::Deadline)
    );
    tx.send(b"6\r\nline1\n\r\n4\r\nli").unwrap();
    stream.read_into(&mut out, soon(), Wake::SIGNALS).unwrap();
    assert_eq!(out, b"line1\n");
    assert_eq!(
        stream.read_into(&mut out, short(), Wake::SIGNALS),
        Err(StreamEnd::Deadline),
        "half a chunk waits"
    );
    tx.send(b"ne\r\n").unwrap();
    stream.read_into(&mut out, soon(), Wake::SIGNALS).unwrap();
    assert_eq!(out, b"line1\nline");
    tx.send(b"0\r\n\r\n").unwrap();
    assert!(matches!(
        stream.read_into(&mut out, soon(), Wake::SIGNALS),
        Err(StreamEnd::Closed(_))
    ));
}

#[test]
fn a_silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut c = client(addr);
    let t = Instant::now();
    let err = c
        .request(
            &Request::get(&["/"], &[]),
            Instant::now() + Duration::from_millis(100),
        )
        .unwrap_err();
    assert_eq!(err, Error::TimedOut);
    assert_eq!(err.to_string(), "timed out");
    assert!(t.elapsed() < Duration::from_secs(2));
    drop(listener);
}
