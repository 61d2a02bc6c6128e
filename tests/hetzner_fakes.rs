//! The Hetzner fakes (tests/fakes/hetzner.rs) against vipd's own HTTP client: every
//! documented call, answer shape, error and knob, over https verified with the test's
//! CA (and refused without it). No root needed; openssl makes the certificates.

#![cfg(feature = "tls")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use vipd::dcs::http::conn::{Connection, Error, Request};
use vipd::dcs::http::{Tls, TlsFiles};

use crate::fakes::hetzner::*;

const FAILOVER: &str = "203.0.113.10";
const HERE: &str = "198.51.100.1";
const THERE: &str = "198.51.100.2";
const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

/// vipd's client for one base URL, trusting `ca` (None: the built-in Mozilla roots).
struct Client(Connection);

impl Client {
    fn new(url: &str, ca: Option<&str>) -> Client {
        let files = TlsFiles {
            ca: ca.map(PathBuf::from),
            ..TlsFiles::default()
        };
        let tls = Tls::load(&files, &[url.to_string()]).expect("the TLS files load");
        Client(Connection::new(url, Duration::from_secs(3), &tls))
    }

    /// One request below the base URL: its status and body.
    fn call(
        &mut self,
        method: &str,
        path: &[&str],
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<(u16, Vec<u8>), Error> {
        let req = Request {
            method,
            body,
            ..Request::get(path, headers)
        };
        let reply = self
            .0
            .request(&req, Instant::now() + Duration::from_secs(10))?;
        Ok((reply.status, reply.body))
    }

    /// Like [`Client::call`], the body as JSON.
    fn json(
        &mut self,
        method: &str,
        path: &[&str],
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (u16, Value) {
        let (status, body) = self
            .call(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path:?}: {e}"));
        let json = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{method} {path:?}: {e}: {body:?}"));
        (status, json)
    }
}

/// Robot's error code in an error reply.
fn robot_code(reply: &(u16, Value)) -> (u16, &str) {
    (
        reply.0,
        reply.1["error"]["code"].as_str().unwrap_or("(none)"),
    )
}

/// The Cloud API's error code in an error reply.
fn cloud_code(reply: &(u16, Value)) -> (u16, &str) {
    robot_code(reply)
}

#[test]
fn robot_fake_answers_the_documented_failover_calls() {
    gate!(Tools, "openssl");
    let pki = TestPki::new(&[]);
    let config = RobotConfig::ipv4(FAILOVER, &[HERE, THERE]);
    let auth = config.basic_auth();
    let robot = FakeRobot::start("127.0.0.1:0", &pki, config);
    assert!(
        robot.url().starts_with("https://127.0.0.1:"),
        "{}",
        robot.url()
    );
    assert_eq!(robot.url(), format!("https://{}", robot.addr()));
    let mut client = Client::new(&robot.url(), Some(&pki.ca_file()));
    let basic = [("Authorization", auth.as_str())];

    let (status, got) = client.json("GET", &["/failover/", FAILOVER], &basic, None);
    assert_eq!(status, 200, "{got}");
    let want = serde_json::json!({"failover": {
        "ip": FAILOVER,
        "netmask": "255.255.255.255",
        "server_ip": HERE,
        "server_ipv6_net": "2001:db8:1::",
        "server_number": 321,
        "active_server_ip": HERE,
    }});
    assert_eq!(got, want);
    let (status, list) = client.json("GET", &["/failover"], &basic, None);
    assert_eq!((status, list), (200, serde_json::json!([want])));

    // Routing it elsewhere answers the object with its new target.
    let form = format!("active_server_ip={THERE}");
    let moved = client.json(
        "POST",
        &["/failover/", FAILOVER],
        &[basic[0], FORM],
        Some(&form),
    );
    assert_eq!(moved.0, 200, "{}", moved.1);
    assert_eq!(moved.1["failover"]["active_server_ip"], THERE);
    assert_eq!(moved.1["failover"]["server_ip"], HERE, "the owner stays");
    assert_eq!(robot.route().as_deref(), Some(THERE));
    let again = client.json(
        "POST",
        &["/failover/", FAILOVER],
        &[basic[0], FORM],
        Some(&form),
    );
    assert_eq!(robot_code(&again), (409, "FAILOVER_ALREADY_ROUTED"));

    // Errors in Robot's shape.
    let other = client.json("GET", &["/failover/203.0.113.99"], &basic, None);
    assert_eq!(robot_code(&other), (404, "NOT_FOUND"));
    assert_eq!(other.1["error"]["status"], 404);
    assert_eq!(other.1["error"]["message"], "Failover IP not found");
    let stranger = format!("active_server_ip={}", "198.51.100.77");
    let reply = client.json(
        "POST",
        &["/failover/", FAILOVER],
        &[basic[0], FORM],
        Some(&stranger),
    );
    assert_eq!(robot_code(&reply), (404, "SERVER_NOT_FOUND"));
    // Robot reads a form only: the same field as JSON is missing.
    let reply = client.json(
        "POST",
        &["/failover/", FAILOVER],
        &basic,
        Some(r#"{"active_server_ip":"198.51.100.1"}"#),
    );
    assert_eq!(robot_code(&reply), (400, "INVALID_INPUT"));
    assert_eq!(
        reply.1["error"]["missing"],
        serde_json::json!(["active_server_ip"])
    );
    let v6 = "active_server_ip=2001%3Adb8%3A1%3A%3A";
    let reply = client.json(
        "POST",
        &["/failover/", FAILOVER],
        &[basic[0], FORM],
        Some(v6),
    );
    assert_eq!(robot_code(&reply), (400, "INVALID_INPUT"));
    assert_eq!(
        reply.1["error"]["invalid"],
        serde_json::json!(["active_server_ip"])
    );

    // Credentials: none, or a wrong password, get 401.
    let wrong = basic_auth(ROBOT_USER, "not-the-password");
    for headers in [&[][..], &[("Authorization", wrong.as_str())][..]] {
        let reply = client.json("GET", &["/failover/", FAILOVER], headers, None);
        assert_eq!(robot_code(&reply), (401, "UNAUTHORIZED"));
        assert_eq!(reply.1["error"]["status"], 401);
    }
    robot.set_credentials(ROBOT_USER, "rotated");
    let reply = client.json("GET", &["/failover/", FAILOVER], &basic, None);
    assert_eq!(
        robot_code(&reply),
        (401, "UNAUTHORIZED"),
        "the old password"
    );

    // Another client of the account moves it; DELETE unroutes it.
    robot.set_credentials(ROBOT_USER, ROBOT_PASSWORD);
    robot.set_route(Some(HERE));
    let (_, got) = client.json("GET", &["/failover/", FAILOVER], &basic, None);
    assert_eq!(got["failover"]["active_server_ip"], HERE);
    let (status, got) = client.json("DELETE", &["/failover/", FAILOVER], &basic, None);
    assert_eq!(
        (status, &got["failover"]["active_server_ip"]),
        (200, &Value::Null)
    );
    assert_eq!(robot.route(), None);

    // Every request recorded, the form decoded, no credential kept.
    let calls = robot.requests();
    assert_eq!(calls.len(), 13, "{calls:#?}");
    assert_eq!(robot.gets().len(), 7);
    let posts = robot.posts();
    assert_eq!(posts.len(), 5);
    assert_eq!(posts[0].form("active_server_ip").as_deref(), Some(THERE));
    assert_eq!(posts[0].path, format!("/failover/{FAILOVER}"));
    assert_eq!(
        posts[4].form("active_server_ip").as_deref(),
        Some("2001:db8:1::")
    );
    assert_eq!(
        posts[0].content_type.as_deref(),
        Some("application/x-www-form-urlencoded"),
        "vipd's client sends one Content-Type"
    );
    assert_eq!(posts[3].json().unwrap()["active_server_ip"], HERE);
    let statuses: Vec<_> = posts.iter().map(|c| c.status).collect();
    let want = [200, 409, 404, 400, 400].map(Some);
    assert_eq!(statuses, want);
    let anonymous = calls.iter().filter(|c| !c.authorization).count();
    let refused = calls.iter().filter(|c| !c.authorized).count();
    assert_eq!((anonymous, refused), (1, 3));
    assert!(calls.windows(2).all(|w| w[0].at <= w[1].at));
    let printed = format!("{calls:?}");
    let token = auth.trim_start_matches("Basic ");
    assert!(!printed.contains(ROBOT_PASSWORD) && !printed.contains(token));
}

#[test]
fn robot_fake_routes_an_ipv6_failover_net_to_subnet_addresses() {
    gate!(Tools, "openssl");
    let pki = TestPki::new(&[]);
    let config = RobotConfig::ipv6("2001:db8:f::", &["2001:db8:1::", "2001:db8:2::"]);
    let auth = config.basic_auth();
    let robot = FakeRobot::start("127.0.0.1:0", &pki, config);
    let mut client = Client::new(&robot.url(), Some(&pki.ca_file()));
    let basic = ("Authorization", auth.as_str());
    let path = ["/failover/", "2001%3Adb8%3Af%3A%3A"];
    let (status, got) = client.json("GET", &path, &[basic], None);
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["failover"]["netmask"], "ffff:ffff:ffff:ffff::");
    assert_eq!(got["failover"]["active_server_ip"], "2001:db8:1::");
    assert_eq!(got["failover"]["server_ip"], "198.51.100.1");
    // A server's own address is not its subnet's.
    let form = "active_server_ip=2001:db8:2::1";
    let reply = client.json("POST", &path, &[basic, FORM], Some(form));
    assert_eq!(robot_code(&reply), (404, "SERVER_NOT_FOUND"));
    let form = "active_server_ip=2001%3Adb8%3A2%3A%3A";
    let (status, got) = client.json(
        "POST",
        &["/failover/2001:db8:f::"],
        &[basic, FORM],
        Some(form),
    );
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["failover"]["active_server_ip"], "2001:db8:2::");
    assert_eq!(robot.route().as_deref(), Some("2001:db8:2::"));
    let form = "active_server_ip=198.51.100.2";
    let reply = client.json("POST", &path, &[basic, FORM], Some(form));
    assert_eq!(
        robot_code(&reply),
        (400, "INVALID_INPUT"),
        "IPv4 for an IPv6 net"
    );
}

#[test]
fn robot_fake_knobs_lock_fail_limit_delay_and_override() {
    gate!(Tools, "openssl");
    let pki = TestPki::new(&[]);
    let config = RobotConfig::ipv4(FAILOVER, &[HERE, THERE]);
    let auth = config.basic_auth();
    let robot = Arc::new(FakeRobot::start("127.0.0.1:0", &pki, config));
    let mut client = Client::new(&robot.url(), Some(&pki.ca_file()));
    let basic = ("Authorization", auth.as_str());
    let there = format!("active_server_ip={THERE}");
    let here = format!("active_server_ip={HERE}");
    let post = |client: &mut Client, form: &str| {
        client.json(
            "POST",
            &["/failover/", FAILOVER],
            &[basic, FORM],
            Some(form),
        )
    };

    robot.locked_next(2);
    for _ in 0..2 {
        assert_eq!(
            robot_code(&post(&mut client, &there)),
            (409, "FAILOVER_LOCKED")
        );
    }
    robot.fail_next(1, 500, "INTERNAL_ERROR");
    assert_eq!(
        robot_code(&post(&mut client, &there)),
        (500, "INTERNAL_ERROR")
    );
    assert_eq!(robot.route().as_deref(), Some(HERE), "nothing moved yet");
    assert_eq!(post(&mut client, &there).0, 200);

    // A slow switch: the answer and the route change come after the delay; another
    // POST meanwhile finds it locked; GETs answer the old route.
    robot.post_delay(Duration::from_millis(600));
    let (url, ca) = (robot.url(), pki.ca_file());
    let slow = thread::spawn(move || {
        let mut client = Client::new(&url, Some(&ca));
        let started = Instant::now();
        let form = format!("active_server_ip={HERE}");
        let auth = RobotConfig::ipv4(FAILOVER, &[]).basic_auth();
        let headers = [("Authorization", auth.as_str()), FORM];
        let reply = client.json("POST", &["/failover/", FAILOVER], &headers, Some(&form));
        (reply, started.elapsed())
    });
    let until = Instant::now() + Duration::from_secs(5);
    while robot.posts().len() < 5 && Instant::now() < until {
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(robot.posts().last().unwrap().status, None, "in flight");
    assert_eq!(
        robot_code(&post(&mut client, &here)),
        (409, "FAILOVER_LOCKED")
    );
    let (_, got) = client.json("GET", &["/failover/", FAILOVER], &[basic], None);
    assert_eq!(got["failover"]["active_server_ip"], THERE);
    let (reply, took) = slow.join().unwrap();
    assert_eq!(reply.0, 200, "{}", reply.1);
    assert!(took >= Duration::from_millis(600), "{took:?}");
    assert_eq!(robot.route().as_deref(), Some(HERE));
    robot.post_delay(Duration::ZERO);

    // Canned answers: malformed JSON, wrong types, a body over vipd's 64 KiB, a hang-up.
    let get = |client: &mut Client| client.call("GET", &["/failover/", FAILOVER], &[basic], None);
    robot.get_reply_override(Some(Canned::json(200, "{\"failover\": {")));
    assert_eq!(get(&mut client), Ok((200, b"{\"failover\": {".to_vec())));
    robot.get_reply_override(Some(Canned::json(
        200,
        r#"{"failover":{"active_server_ip":7}}"#,
    )));
    assert_eq!(get(&mut client).unwrap().0, 200);
    robot.get_reply_override(Some(Canned::oversized(2 << 20)));
    let Err(Error::Failed(why)) = get(&mut client) else {
        panic!("a 2 MiB reply is refused");
    };
    assert!(why.contains("too large") || why.contains("larger"), "{why}");
    robot.get_reply_override(Some(Canned::Hangup));
    assert!(get(&mut client).is_err(), "no answer");
    robot.get_reply_override(None);
    assert_eq!(get(&mut client).unwrap().0, 200);
    robot.post_reply_override(Some(Canned::json(200, "not json")));
    assert_eq!(
        client.call(
            "POST",
            &["/failover/", FAILOVER],
            &[basic, FORM],
            Some(&there)
        ),
        Ok((200, b"not json".to_vec()))
    );
    assert_eq!(robot.route().as_deref(), Some(THERE), "the switch happened");
    robot.post_reply_override(None);

    // Robot's rate limit, per method over a sliding interval.
    robot.rate_limit(Some(RobotLimit {
        get: 2,
        post: 1,
        interval: Duration::from_millis(800),
    }));
    for _ in 0..2 {
        assert_eq!(get(&mut client).unwrap().0, 200);
    }
    let limited = client.json("GET", &["/failover/", FAILOVER], &[basic], None);
    assert_eq!(robot_code(&limited), (403, "RATE_LIMIT_EXCEEDED"));
    assert_eq!(limited.1["error"]["max_request"], 2);
    assert_eq!(limited.1["error"]["interval"], 0);
    assert_eq!(robot_code(&post(&mut client, &here)), (200, "(none)"));
    let limited = post(&mut client, &there);
    assert_eq!(robot_code(&limited), (403, "RATE_LIMIT_EXCEEDED"));
    assert_eq!(limited.1["error"]["max_request"], 1);
    thread::sleep(Duration::from_millis(900));
    assert_eq!(get(&mut client).unwrap().0, 200, "the interval passed");
    robot.rate_limit(Some(RobotLimit::HETZNER));
    for _ in 0..100 {
        assert_eq!(get(&mut client).unwrap().0, 200);
    }
    let limited = client.json("GET", &["/failover/", FAILOVER], &[basic], None);
    assert_eq!(limited.1["error"]["interval"], 3600);
    robot.rate_limit(None);
    assert_eq!(get(&mut client).unwrap().0, 200);
}

#[test]
fn cloud_fake_answers_the_documented_calls() {
    gate!(Tools, "openssl");
    let pki = TestPki::new(&[]);
    let cloud = FakeCloud::start(
        "127.0.0.1:0",
        &pki,
        CloudConfig::new(4711, "203.0.113.20", &[42, 43]),
    );
    assert_eq!(cloud.url(), format!("https://{}/v1", cloud.addr()));
    let mut client = Client::new(&cloud.url(), Some(&pki.ca_file()));
    let bearer = format!("Bearer {CLOUD_TOKEN}");
    let auth = [("Authorization", bearer.as_str())];

    let (status, got) = client.json("GET", &["/floating_ips/4711"], &auth, None);
    assert_eq!(status, 200, "{got}");
    let fip = &got["floating_ip"];
    assert_eq!(fip["id"], 4711);
    assert_eq!(fip["ip"], "203.0.113.20");
    assert_eq!(fip["type"], "ipv4");
    assert_eq!(fip["server"], 42);
    assert_eq!(fip["blocked"], false);
    assert_eq!(fip["labels"], serde_json::json!({}));
    assert_eq!(fip["protection"], serde_json::json!({"delete": false}));
    assert_eq!(fip["dns_ptr"], serde_json::json!([]));
    assert_eq!(fip["home_location"]["name"], "fsn1");
    assert!(fip["name"].is_string() && fip["description"].is_string());
    assert_eq!(fip["created"], "2024-01-01T00:00:00+00:00");

    // Assign: 201 with a running action; the move happens when the action succeeds.
    let (status, got) = client.json(
        "POST",
        &["/floating_ips/4711/actions/assign"],
        &auth,
        Some(r#"{"server":43}"#),
    );
    assert_eq!(status, 201, "{got}");
    let action = &got["action"];
    assert_eq!(action["command"], "assign_floating_ip");
    assert_eq!(action["status"], "running");
    assert_eq!(action["progress"], 0);
    assert_eq!(action["finished"], Value::Null);
    assert_eq!(action["error"], Value::Null);
    assert!(
        action["started"]
            .as_str()
            .is_some_and(|t| t.ends_with("+00:00"))
    );
    let resources = serde_json::json!([
        {"id": 43, "type": "server"},
        {"id": 4711, "type": "floating_ip"},
    ]);
    assert_eq!(action["resources"], resources);
    let id = action["id"].as_u64().unwrap().to_string();
    assert_eq!(cloud.server(), Some(42), "not before the action ends");
    let (_, got) = client.json("GET", &["/actions/", &id], &auth, None);
    assert_eq!(got["action"]["status"], "running");
    let (_, got) = client.json("GET", &["/actions/", &id], &auth, None);
    assert_eq!(got["action"]["status"], "success");
    assert_eq!(got["action"]["progress"], 100);
    assert!(got["action"]["finished"].is_string());
    assert_eq!(cloud.server(), Some(43));
    let (_, got) = client.json("GET", &["/floating_ips/4711/actions/", &id], &auth, None);
    assert_eq!(got["action"]["status"], "success");
    let (_, got) = client.json("GET", &["/floating_ips/4711"], &auth, None);
    assert_eq!(got["floating_ip"]["server"], 43);

    // Errors in the Cloud API's shape.
    let assign = |client: &mut Client, body: &str| {
        client.json(
            "POST",
            &["/floating_ips/4711/actions/assign"],
            &auth,
            Some(body),
        )
    };
    let reply = assign(&mut client, r#"{"server":43}"#);
    assert_eq!(cloud_code(&reply), (422, "floating_ip_assigned"));
    assert_eq!(
        cloud_code(&assign(&mut client, r#"{"server":99}"#)),
        (404, "not_found")
    );
    assert_eq!(
        cloud_code(&assign(&mut client, r#"{"server":"42"}"#)),
        (400, "invalid_input")
    );
    assert_eq!(cloud_code(&assign(&mut client, "{")), (400, "json_error"));
    let reply = client.json("GET", &["/floating_ips/4712"], &auth, None);
    assert_eq!(cloud_code(&reply), (404, "not_found"));
    assert_eq!(reply.1["error"]["details"], serde_json::json!({}));
    let reply = client.json("GET", &["/actions/999"], &auth, None);
    assert_eq!(cloud_code(&reply), (404, "not_found"));
    let wrong = [("Authorization", "Bearer not-the-token")];
    for headers in [&[][..], &wrong[..]] {
        let (status, got) = client.json("GET", &["/floating_ips/4711"], headers, None);
        let want =
            r#"{"error":{"code":"unauthorized","message":"unable to authenticate","details":{}}}"#;
        assert_eq!((status, got), (401, serde_json::from_str(want).unwrap()));
    }
    cloud.set_token("rotated");
    let reply = client.json("GET", &["/floating_ips/4711"], &auth, None);
    assert_eq!(cloud_code(&reply), (401, "unauthorized"));
    cloud.set_token(CLOUD_TOKEN);

    // Unassign, then another client assigns it.
    let (status, got) = client.json(
        "POST",
        &["/floating_ips/4711/actions/unassign"],
        &auth,
        None,
    );
    assert_eq!(
        (status, &got["action"]["command"]),
        (201, &"unassign_floating_ip".into())
    );
    let id = got["action"]["id"].to_string();
    for _ in 0..2 {
        client.json("GET", &["/actions/", &id], &auth, None);
    }
    assert_eq!(cloud.server(), None);
    cloud.set_server(Some(42));
    let (_, got) = client.json("GET", &["/floating_ips/4711"], &auth, None);
    assert_eq!(got["floating_ip"]["server"], 42);

    let calls = cloud.requests();
    assert_eq!(calls.len(), 19, "{calls:#?}");
    assert_eq!((cloud.gets().len(), cloud.posts().len()), (13, 6));
    let first = &cloud.posts()[0];
    assert_eq!(first.json(), Some(serde_json::json!({"server": 43})));
    assert_eq!(first.content_type.as_deref(), Some("application/json"));
    assert_eq!(first.path, "/v1/floating_ips/4711/actions/assign");
    assert_eq!(first.status, Some(201));
    let printed = format!("{calls:?}");
    assert!(!printed.contains(CLOUD_TOKEN));
}

/// The head of the answer to `request`, sent raw over TLS (vipd's client keeps no
/// headers).
fn raw_head(addr: SocketAddr, ca: &str, request: &str) -> String {
    let url = format!("https://{addr}");
    let files = TlsFiles {
        ca: Some(PathBuf::from(ca)),
        ..TlsFiles::default()
    };
    let config = Tls::load(&files, &[url]).unwrap().client_config().unwrap();
    let name = rustls::pki_types::ServerName::from(addr.ip());
    let session = rustls::ClientConnection::new(config, name).unwrap();
    let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(session, sock);
    tls.write_all(request.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 65536 {
        let n = tls.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before the head: {got:?}");
        got.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn cloud_fake_knobs_lock_limit_delay_fail_and_override() {
    gate!(Tools, "openssl");
    let pki = TestPki::new(&[]);
    let cloud = Arc::new(FakeCloud::start(
        "127.0.0.1:0",
        &pki,
        CloudConfig::new(4711, "2001:db8:f::/64", &[42, 43]),
    ));
    let mut client = Client::new(&cloud.url(), Some(&pki.ca_file()));
    let bearer = format!("Bearer {CLOUD_TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    let assign = |client: &mut Client, server: u64| {
        let body = format!(r#"{{"server":{server}}}"#);
        client.json(
            "POST",
            &["/floating_ips/4711/actions/assign"],
            &auth,
            Some(&body),
        )
    };
    let get = |client: &mut Client, path: &str| client.json("GET", &[path], &auth, None);
    assert_eq!(
        get(&mut client, "/floating_ips/4711").1["floating_ip"]["type"],
        "ipv6"
    );

    // The rate-limit headers on every reply, from the bucket.
    let request =
        format!("GET /v1/floating_ips/4711 HTTP/1.1\r\nHost: x\r\nAuthorization: {bearer}\r\n\r\n");
    let head = raw_head(cloud.addr(), &pki.ca_file(), &request);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(header(&head, "RateLimit-Limit"), Some("3600"));
    let remaining: u32 = header(&head, "RateLimit-Remaining")
        .unwrap()
        .parse()
        .unwrap();
    assert!((3590..3600).contains(&remaining), "{head}");
    let reset: u64 = header(&head, "RateLimit-Reset").unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(reset > now && reset <= now + 11, "{reset} vs {now}");
    cloud.rate_limited_next(1);
    let head = raw_head(cloud.addr(), &pki.ca_file(), &request);
    assert!(head.starts_with("HTTP/1.1 429 "), "{head}");
    assert_eq!(header(&head, "RateLimit-Remaining"), Some("0"));
    let unauthorized = "GET /v1/floating_ips/4711 HTTP/1.1\r\nHost: x\r\n\r\n";
    let head = raw_head(cloud.addr(), &pki.ca_file(), unauthorized);
    assert!(head.starts_with("HTTP/1.1 401 "), "{head}");
    assert!(header(&head, "RateLimit-Limit").is_some(), "{head}");
    cloud.rate_limited_next(2);
    for _ in 0..2 {
        let reply = get(&mut client, "/floating_ips/4711");
        assert_eq!(cloud_code(&reply), (429, "rate_limit_exceeded"));
    }
    assert_eq!(get(&mut client, "/floating_ips/4711").0, 200);
    cloud.set_rate_limit(2);
    assert_eq!(get(&mut client, "/floating_ips/4711").0, 200);
    assert_eq!(get(&mut client, "/floating_ips/4711").0, 200);
    let reply = get(&mut client, "/floating_ips/4711");
    assert_eq!(
        cloud_code(&reply),
        (429, "rate_limit_exceeded"),
        "the bucket is empty"
    );
    thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        get(&mut client, "/floating_ips/4711").0,
        200,
        "refilled one a second"
    );
    cloud.set_rate_limit(3600);

    cloud.locked_next(1);
    assert_eq!(cloud_code(&assign(&mut client, 43)), (423, "locked"));
    cloud.fail_next(1, 503, "unavailable");
    assert_eq!(cloud_code(&assign(&mut client, 43)), (503, "unavailable"));

    // A failing action: error with its object, the floating IP stays.
    cloud.action_fails(true);
    let (_, got) = assign(&mut client, 43);
    let id = got["action"]["id"].to_string();
    // An action running locks the floating IP.
    assert_eq!(cloud_code(&assign(&mut client, 43)), (423, "locked"));
    get(&mut client, &format!("/actions/{id}"));
    let (_, got) = get(&mut client, &format!("/actions/{id}"));
    assert_eq!(got["action"]["status"], "error");
    assert_eq!(got["action"]["error"]["code"], "action_failed");
    assert_eq!(cloud.server(), Some(42));
    cloud.action_fails(false);

    // Steps and duration: with no step, time alone ends it.
    cloud.action_steps(3);
    let (_, got) = assign(&mut client, 43);
    let path = format!("/actions/{}", got["action"]["id"]);
    let statuses: Vec<Value> = (0..4)
        .map(|_| get(&mut client, &path).1["action"]["status"].clone())
        .collect();
    assert_eq!(statuses, ["running", "running", "running", "success"]);
    cloud.action_steps(0);
    cloud.action_duration(Duration::from_millis(300));
    assign(&mut client, 42);
    assert_eq!(cloud.server(), Some(43));
    thread::sleep(Duration::from_millis(350));
    assert_eq!(cloud.server(), Some(42), "done without a poll");
    cloud.action_duration(Duration::ZERO);

    // A slow assignment answers after the delay; meanwhile others find it locked.
    cloud.assign_delay(Duration::from_millis(500));
    let (url, ca) = (cloud.url(), pki.ca_file());
    let slow = thread::spawn(move || {
        let mut client = Client::new(&url, Some(&ca));
        let started = Instant::now();
        let bearer = format!("Bearer {CLOUD_TOKEN}");
        let reply = client.json(
            "POST",
            &["/floating_ips/4711/actions/assign"],
            &[("Authorization", bearer.as_str())],
            Some(r#"{"server":43}"#),
        );
        (reply, started.elapsed())
    });
    let until = Instant::now() + Duration::from_secs(5);
    while cloud.posts().last().is_some_and(|c| c.status.is_some()) && Instant::now() < until {
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(cloud_code(&assign(&mut client, 43)), (423, "locked"));
    let (reply, took) = slow.join().unwrap();
    assert_eq!(
        (reply.0, &reply.1["action"]["status"]),
        (201, &"running".into())
    );
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert_eq!(cloud.server(), Some(43));
    cloud.assign_delay(Duration::ZERO);

    // Canned answers.
    cloud.get_reply_override(Some(Canned::json(200, r#"{"floating_ip":{"server":"x"}}"#)));
    assert_eq!(
        get(&mut client, "/floating_ips/4711").1["floating_ip"]["server"],
        "x"
    );
    cloud.get_reply_override(Some(Canned::oversized(2 << 20)));
    assert!(
        client
            .call("GET", &["/floating_ips/4711"], &auth, None)
            .is_err()
    );
    cloud.get_reply_override(None);
    cloud.post_reply_override(Some(Canned::json(201, "{")));
    let reply = client.call(
        "POST",
        &["/floating_ips/4711/actions/assign"],
        &auth,
        Some(r#"{"server":42}"#),
    );
    assert_eq!(reply, Ok((201, b"{".to_vec())));
    cloud.post_reply_override(None);
    cloud.action_reply_override(Some(Canned::Hangup));
    assert!(client.call("GET", &["/actions/13"], &auth, None).is_err());
    cloud.action_reply_override(None);
}

#[test]
fn the_fakes_are_trusted_only_with_the_test_ca() {
    gate!(Tools, "openssl");
    let pki = TestPki::new(&["192.0.2.1", "2001:db8::1"]);
    let robot = FakeRobot::start("127.0.0.1:0", &pki, RobotConfig::ipv4(FAILOVER, &[HERE]));
    let cloud = FakeCloud::start(
        "127.0.0.1:0",
        &pki,
        CloudConfig::new(1, "203.0.113.20", &[2]),
    );
    for url in [robot.url(), cloud.url()] {
        for (ca, what) in [
            (None, "the Mozilla roots"),
            (Some(pki.other_ca_file()), "another CA"),
        ] {
            let mut client = Client::new(&url, ca.as_deref());
            let Err(Error::Failed(why)) = client.call("GET", &["/x"], &[], None) else {
                panic!("{url} is trusted with {what}");
            };
            assert!(why.contains("UnknownIssuer"), "{url} with {what}: {why}");
        }
        let mut client = Client::new(&url, Some(&pki.ca_file()));
        let (status, _) = client.call("GET", &["/x"], &[], None).unwrap();
        assert_eq!(status, 401, "{url}");
    }
    assert_eq!(robot.requests().len(), 1, "no request without a handshake");
    assert_eq!(cloud.requests().len(), 1);
}

#[test]
fn a_dropped_fake_ends_a_delayed_answer() {
    gate!(Tools, "openssl");
    let pki = TestPki::new(&[]);
    let robot = FakeRobot::start(
        "127.0.0.1:0",
        &pki,
        RobotConfig::ipv4(FAILOVER, &[HERE, THERE]),
    );
    let cloud = FakeCloud::start(
        "127.0.0.1:0",
        &pki,
        CloudConfig::new(1, "203.0.113.20", &[2, 3]),
    );
    robot.post_delay(Duration::from_secs(120));
    cloud.assign_delay(Duration::from_secs(120));
    let ca = pki.ca_file();
    let robot_call = {
        let (url, ca) = (robot.url(), ca.clone());
        thread::spawn(move || {
            let auth = RobotConfig::ipv4(FAILOVER, &[]).basic_auth();
            let form = format!("active_server_ip={THERE}");
            let headers = [("Authorization", auth.as_str()), FORM];
            let started = Instant::now();
            let got = Client::new(&url, Some(&ca)).call(
                "POST",
                &["/failover/", FAILOVER],
                &headers,
                Some(&form),
            );
            (got, started.elapsed())
        })
    };
    let cloud_call = {
        let url = cloud.url();
        thread::spawn(move || {
            let bearer = format!("Bearer {CLOUD_TOKEN}");
            let headers = [("Authorization", bearer.as_str())];
            let started = Instant::now();
            let got = Client::new(&url, Some(&ca)).call(
                "POST",
                &["/floating_ips/1/actions/assign"],
                &headers,
                Some(r#"{"server":3}"#),
            );
            (got, started.elapsed())
        })
    };
    let until = Instant::now() + Duration::from_secs(5);
    while (robot.posts().is_empty() || cloud.posts().is_empty()) && Instant::now() < until {
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(100));
    drop(robot);
    drop(cloud);
    for call in [robot_call, cloud_call] {
        let (got, took) = call.join().unwrap();
        assert!(got.is_err(), "{got:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
}
