//! Fakes of Hetzner's two failover APIs, served over https with a CA the test makes
//! ([`TestPki`]), since the real services can only be reached with real accounts and
//! money: tests never resolve or contact Hetzner's hosts.
//!
//! - [`FakeRobot`], the Robot webservice's failover calls as Hetzner documents them
//!   (robot.hetzner.com/doc/webservice/en.html, "Failover"): HTTP Basic auth;
//!   `GET /failover` and `GET /failover/<ip>` answer the failover object
//!   (`ip`, `netmask`, `server_ip`, `server_ipv6_net`, `server_number`,
//!   `active_server_ip`, null when unrouted); `POST /failover/<ip>` with the form
//!   `active_server_ip=<ip>` routes it and answers once the switch is done;
//!   `DELETE /failover/<ip>` unroutes it. Errors are Robot's object
//!   `{"error":{"status":…,"code":…,"message":…}}`: 401 UNAUTHORIZED, 404 NOT_FOUND
//!   (failover IP), 404 SERVER_NOT_FOUND (target), 400 INVALID_INPUT (with `missing` and
//!   `invalid`), 409 FAILOVER_ALREADY_ROUTED, 409 FAILOVER_LOCKED (a switch in
//!   progress), 403 RATE_LIMIT_EXCEEDED (with `max_request` and `interval`).
//! - [`FakeCloud`], the Cloud API's floating IPs and actions (docs.hetzner.cloud):
//!   Bearer tokens; `GET /v1/floating_ips/{id}`; `POST
//!   /v1/floating_ips/{id}/actions/assign` (`{"server":N}`) and `…/actions/unassign`,
//!   which answer 201 with a running action; `GET /v1/actions/{id}` (and
//!   `/v1/floating_ips/{id}/actions/{action}`), the action running until it ends in
//!   `success` (the assignment takes effect then) or `error`. Errors are
//!   `{"error":{"code":…,"message":…,"details":{}}}`: 401 unauthorized, 404 not_found,
//!   400 json_error / invalid_input, 422 floating_ip_assigned (already on that
//!   server), 423 locked (an action running), 429 rate_limit_exceeded; `RateLimit-Limit`,
//!   `RateLimit-Remaining` and `RateLimit-Reset` on every reply, from a bucket of 3600
//!   refilled one a second.
//!
//! Both record every request as a [`Call`] (never a credential) and take knobs while
//! running. A delayed answer waits in small steps and ends when the fake is dropped,
//! so no test hangs on one.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};

use super::{Conn, Reply, Request, Server};
use crate::common::{Proc, TempDir, args, lab_id, lock, tool};

// --- The test CA --------------------------------------------------------------------

/// A CA made for the test, the certificate it signed for the fakes, and another CA that
/// signed nothing (made with openssl(1) in a scratch directory, removed on drop).
pub struct TestPki {
    dir: TempDir,
    config: Arc<rustls::ServerConfig>,
}

impl TestPki {
    /// A CA and a server certificate (ECDSA P-256) valid for the addresses 127.0.0.1
    /// and `ips` (a namespace's addresses; tests connect by IP literal) and the names
    /// `robot-ws.test` and `api.test` (which resolve nowhere).
    pub fn new(ips: &[&str]) -> TestPki {
        let dir = TempDir::new(&lab_id(), "hetzner-pki");
        let openssl = |line: &str| {
            let mut cmd = std::process::Command::new(tool("openssl"));
            cmd.current_dir(&dir.path).args(args(line));
            let out = Proc::spawn("openssl", cmd, true).finish(Duration::from_secs(30));
            assert!(out.status.success(), "openssl {line}: {out:?}");
        };
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
        for ca in ["ca", "other-ca"] {
            openssl(&format!(
                "req -x509 {ec} -keyout {ca}.key -out {ca}.crt -subj /CN=vipd-test-{ca} -days 2"
            ));
        }
        let mut names = vec!["IP:127.0.0.1".to_string()];
        names.extend(ips.iter().map(|ip| format!("IP:{ip}")));
        names.extend(["DNS:robot-ws.test".into(), "DNS:api.test".into()]);
        let ext = format!(
            "subjectAltName={}\nextendedKeyUsage=serverAuth\n",
            names.join(",")
        );
        dir.write("server.ext", ext);
        openssl(&format!(
            "req {ec} -keyout server.key -out server.csr -subj /CN=robot-ws.test"
        ));
        openssl(
            "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
             -out server.crt -days 2 -extfile server.ext",
        );
        let chain = CertificateDer::pem_file_iter(dir.file("server.crt"))
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .expect("server certificate");
        let key = PrivateKeyDer::from_pem_file(dir.file("server.key")).expect("server key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate and key");
        TestPki {
            dir,
            config: Arc::new(config),
        }
    }

    /// The CA's certificate (PEM), for `--hetzner-ca-file`.
    pub fn ca_file(&self) -> String {
        self.dir.file("ca.crt")
    }

    /// A CA that did not sign the fakes' certificate (PEM).
    pub fn other_ca_file(&self) -> String {
        self.dir.file("other-ca.crt")
    }

    /// The server side of TLS the fakes serve with.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.config.clone()
    }
}

// --- What both fakes share ----------------------------------------------------------

/// One request as a fake received it. The Authorization header is only noted as
/// present, never kept.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// The path as sent (percent-encoding kept), without the query.
    pub path: String,
    /// An Authorization header was sent.
    pub authorization: bool,
    /// Its credentials were the ones the fake takes.
    pub authorized: bool,
    /// The Content-Type header(s), joined with ", ".
    pub content_type: Option<String>,
    /// The body as sent.
    pub body: String,
    /// When the request had been read.
    pub at: Instant,
    /// The status answered; `None` while the answer is pending (or when the fake stopped
    /// or hung up before answering).
    pub status: Option<u16>,
}

impl Call {
    /// Field `name` of a form body (`application/x-www-form-urlencoded`), decoded.
    pub fn form(&self, name: &str) -> Option<String> {
        form_field(&self.body, name)
    }

    /// The body as JSON, when it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// The requests a fake recorded, for both fakes alike.
pub trait Recorded {
    fn calls(&self) -> &Mutex<Vec<Call>>;

    /// Every request so far, in order.
    fn requests(&self) -> Vec<Call> {
        lock(self.calls()).clone()
    }

    fn posts(&self) -> Vec<Call> {
        self.of_method("POST")
    }

    fn gets(&self) -> Vec<Call> {
        self.of_method("GET")
    }

    fn of_method(&self, method: &str) -> Vec<Call> {
        let calls = lock(self.calls());
        calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }
}

impl Recorded for FakeRobot {
    fn calls(&self) -> &Mutex<Vec<Call>> {
        &self.calls
    }
}

impl Recorded for FakeCloud {
    fn calls(&self) -> &Mutex<Vec<Call>> {
        &self.calls
    }
}

/// A reply a fake sends instead of its own (see the `*_reply_override` knobs).
#[derive(Debug, Clone)]
pub enum Canned {
    /// This status and body, with `Content-Type: application/json` (the body need not
    /// be JSON at all).
    Json(u16, Vec<u8>),
    /// The connection closed without an answer.
    Hangup,
}

impl Canned {
    pub fn json(status: u16, body: &str) -> Canned {
        Canned::Json(status, body.as_bytes().to_vec())
    }

    /// 200 with a well-formed JSON body of about `bytes` bytes (`{"pad":"xxx…"}`).
    pub fn oversized(bytes: usize) -> Canned {
        let pad = "x".repeat(bytes.saturating_sub(10));
        Canned::Json(200, format!(r#"{{"pad":"{pad}"}}"#).into_bytes())
    }

    fn reply(&self) -> Reply {
        match self {
            Canned::Json(status, body) => Reply::json(*status, body.clone()),
            Canned::Hangup => Reply::raw(|_| Ok(())),
        }
    }
}

/// Injected errors: the next `n` calls answer `status` with `code`.
#[derive(Debug, Default)]
struct Failures {
    n: u32,
    status: u16,
    code: String,
}

impl Failures {
    /// The code to answer with now, if any (counting it off).
    fn take(&mut self) -> Option<(u16, String)> {
        if self.n == 0 {
            return None;
        }
        self.n -= 1;
        Some((self.status, self.code.clone()))
    }
}

/// Takes one off `n` if there is one to take.
fn take_one(n: &mut u32) -> bool {
    let some = *n > 0;
    *n = n.saturating_sub(1);
    some
}

/// Waits `delay` in small steps: false when the fake stopped meanwhile.
fn wait(delay: Duration, conn: &Conn) -> bool {
    let until = Instant::now() + delay;
    while Instant::now() < until {
        if conn.stopped() {
            return false;
        }
        thread::sleep(Duration::from_millis(10).min(until - Instant::now()));
    }
    !conn.stopped()
}

/// Serves one connection: every request recorded in `calls`, then answered by
/// `answer` (`None`: the fake is stopping, the connection closes).
fn serve(
    mut conn: Conn,
    calls: &Mutex<Vec<Call>>,
    credentials_ok: &dyn Fn(Option<&str>) -> bool,
    answer: &dyn Fn(&Request, &Conn) -> Option<Reply>,
) {
    while let Some(req) = conn.next_request() {
        let authorization = req.header("authorization");
        let content_types: Vec<&str> = req
            .headers
            .iter()
            .filter(|(n, _)| n == "content-type")
            .map(|(_, v)| v.as_str())
            .collect();
        let call = Call {
            method: req.method.clone(),
            path: req.path().to_string(),
            authorization: authorization.is_some(),
            authorized: credentials_ok(authorization),
            content_type: (!content_types.is_empty()).then(|| content_types.join(", ")),
            body: String::from_utf8_lossy(body_of(&req)).into_owned(),
            at: req.at,
            status: None,
        };
        let at = {
            let mut calls = lock(calls);
            calls.push(call);
            calls.len() - 1
        };
        let Some(reply) = answer(&req, &conn) else {
            break;
        };
        if reply.raw.is_none() {
            lock(calls)[at].status = Some(reply.status);
        }
        if !conn.send(reply) {
            break;
        }
    }
}

/// The body of a request (after its head).
fn body_of(req: &Request) -> &[u8] {
    let head_end = req.raw.windows(4).position(|w| w == b"\r\n\r\n");
    head_end.map_or(&[][..], |at| &req.raw[at + 4..])
}

/// Percent-decoding (and `+` as a blank in forms); bad escapes are kept as written.
fn url_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| {
            let h = std::str::from_utf8(h).ok()?;
            u8::from_str_radix(h, 16).ok()
        });
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
                continue;
            }
            (b'+', _) if plus_is_space => out.push(b' '),
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn form_field(body: &str, name: &str) -> Option<String> {
    body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (url_decode(k, true) == name).then(|| url_decode(v, true))
    })
}

/// Two addresses are the same (as parsed; as written when either does not parse).
fn same_ip(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// `t` as Hetzner writes times: `2024-05-01T12:00:00+00:00` (vipd's log time, which
/// has the same date and time, without its milliseconds).
fn rfc3339(t: SystemTime) -> String {
    let stamp = vipd::logger::timestamp(t);
    format!("{}+00:00", &stamp[..19])
}

// --- Robot --------------------------------------------------------------------------

/// One server of the Robot account.
#[derive(Debug, Clone)]
pub struct RobotServer {
    /// Its main IPv4 address: an IPv4 failover IP's target.
    pub ip: String,
    /// Its IPv6 /64 subnet address (`2001:db8:1::`): an IPv6 failover net's target.
    pub ipv6_net: String,
    pub number: u64,
}

/// The failover IP a [`FakeRobot`] serves, its account's servers and credentials.
#[derive(Debug, Clone)]
pub struct RobotConfig {
    pub user: String,
    pub password: String,
    /// An IPv4 address, or an IPv6 /64 net's address (`2001:db8:f::`).
    pub failover_ip: String,
    /// The account's servers: a POST may route to these only. The first is the one the
    /// failover IP belongs to (`server_ip`, `server_number`).
    pub servers: Vec<RobotServer>,
    /// Where it routes at the start (a server's `ip`, or `ipv6_net` for IPv6).
    pub active: Option<String>,
}

/// The Robot webservice user and password a [`RobotConfig`] starts with.
pub const ROBOT_USER: &str = "#ws+vipdTest";
pub const ROBOT_PASSWORD: &str = "robot-s3cret-Pa55";

impl RobotConfig {
    /// IPv4 failover IP `failover_ip`, routed to the first of `server_ips`, the
    /// account's servers (numbers from 321, IPv6 nets `2001:db8:<n>::`).
    pub fn ipv4(failover_ip: &str, server_ips: &[&str]) -> RobotConfig {
        let servers = server_ips.iter().enumerate().map(|(i, ip)| RobotServer {
            ip: ip.to_string(),
            ipv6_net: format!("2001:db8:{:x}::", i + 1),
            number: 321 + i as u64,
        });
        RobotConfig::with(failover_ip, servers.collect(), |s| s.ip.clone())
    }

    /// IPv6 failover net `failover_net` (its address, `2001:db8:f::`), routed to the
    /// first of `server_nets`, the account's servers' /64 subnet addresses (main IPv4
    /// addresses `198.51.100.<n>`).
    pub fn ipv6(failover_net: &str, server_nets: &[&str]) -> RobotConfig {
        let servers = server_nets.iter().enumerate().map(|(i, net)| RobotServer {
            ip: format!("198.51.100.{}", i + 1),
            ipv6_net: net.to_string(),
            number: 321 + i as u64,
        });
        RobotConfig::with(failover_net, servers.collect(), |s| s.ipv6_net.clone())
    }

    fn with(
        failover_ip: &str,
        servers: Vec<RobotServer>,
        target: impl Fn(&RobotServer) -> String,
    ) -> RobotConfig {
        RobotConfig {
            user: ROBOT_USER.into(),
            password: ROBOT_PASSWORD.into(),
            failover_ip: failover_ip.into(),
            active: servers.first().map(target),
            servers,
        }
    }

    fn is_ipv6(&self) -> bool {
        self.failover_ip.contains(':')
    }

    /// The `Authorization` header value these credentials make.
    pub fn basic_auth(&self) -> String {
        basic_auth(&self.user, &self.password)
    }
}

/// `Basic base64(user:password)`.
pub fn basic_auth(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!("Basic {}", vipd::base64::encode(pair.as_bytes()))
}

/// Robot's rate limits (per endpoint and method, over a sliding interval).
#[derive(Debug, Clone, Copy)]
pub struct RobotLimit {
    /// GETs of the failover IP per interval.
    pub get: usize,
    /// POSTs (and DELETEs, counted apart) per interval.
    pub post: usize,
    pub interval: Duration,
}

impl RobotLimit {
    /// What Hetzner documents: 100 GETs and 50 POSTs an hour.
    pub const HETZNER: RobotLimit = RobotLimit {
        get: 100,
        post: 50,
        interval: Duration::from_secs(3600),
    };
}

#[derive(Debug)]
struct RobotState {
    config: RobotConfig,
    route: Option<String>,
    /// A POST is switching the route (until its delay ends).
    switching: bool,
    locked_next: u32,
    failures: Failures,
    post_delay: Duration,
    get_override: Option<Canned>,
    post_override: Option<Canned>,
    limit: Option<RobotLimit>,
    /// The requests the limiter counted: method and time.
    counted: Vec<(String, Instant)>,
}

impl RobotState {
    fn credentials_ok(&self, authorization: Option<&str>) -> bool {
        let Some((scheme, token)) = authorization.and_then(|a| a.split_once(' ')) else {
            return false;
        };
        let Ok(pair) = vipd::base64::decode(token.trim()) else {
            return false;
        };
        let want = format!("{}:{}", self.config.user, self.config.password);
        scheme.eq_ignore_ascii_case("basic") && pair == want.as_bytes()
    }

    fn failover(&self) -> Value {
        let c = &self.config;
        let owner = c.servers.first();
        let netmask = if c.is_ipv6() {
            "ffff:ffff:ffff:ffff::"
        } else {
            "255.255.255.255"
        };
        json!({"failover": {
            "ip": c.failover_ip,
            "netmask": netmask,
            "server_ip": owner.map(|s| s.ip.as_str()),
            "server_ipv6_net": owner.map(|s| s.ipv6_net.as_str()),
            "server_number": owner.map(|s| s.number),
            "active_server_ip": self.route,
        }})
    }

    /// Whether the limiter refuses a `method` request now (counting it when not).
    fn limited(&mut self, method: &str) -> Option<RobotLimit> {
        let limit = self.limit?;
        let now = Instant::now();
        self.counted
            .retain(|(_, at)| now.duration_since(*at) < limit.interval);
        let max = if method == "GET" {
            limit.get
        } else {
            limit.post
        };
        let used = self.counted.iter().filter(|(m, _)| m == method).count();
        if used >= max {
            return Some(limit);
        }
        self.counted.push((method.to_string(), now));
        None
    }

    /// The target server's route string for a POST's `active_server_ip`, or the
    /// error to answer.
    fn target(&self, req: &Request) -> Result<String, Reply> {
        let types: Vec<&str> = req
            .headers
            .iter()
            .filter(|(n, _)| n == "content-type")
            .map(|(_, v)| v.split(';').next().unwrap_or("").trim())
            .collect();
        // Robot reads the field from a form body only.
        let form =
            types.len() == 1 && types[0].eq_ignore_ascii_case("application/x-www-form-urlencoded");
        let body = String::from_utf8_lossy(body_of(req));
        let field = form
            .then(|| form_field(&body, "active_server_ip"))
            .flatten();
        let Some(value) = field.filter(|v| !v.is_empty()) else {
            return Err(invalid_input(&["active_server_ip"], &[]));
        };
        let family_ok = match value.parse::<IpAddr>() {
            Ok(ip) => ip.is_ipv6() == self.config.is_ipv6(),
            Err(_) => false,
        };
        if !family_ok {
            return Err(invalid_input(&[], &["active_server_ip"]));
        }
        let servers = &self.config.servers;
        let found = servers.iter().find_map(|s| {
            let route = if self.config.is_ipv6() {
                &s.ipv6_net
            } else {
                &s.ip
            };
            same_ip(route, &value).then(|| route.clone())
        });
        found.ok_or_else(|| {
            let message = format!("Server with ip {value} not found");
            robot_error(404, "SERVER_NOT_FOUND", &message)
        })
    }
}

fn robot_error(status: u16, code: &str, message: &str) -> Reply {
    let body = json!({"error": {"status": status, "code": code, "message": message}});
    Reply::json(status, body.to_string())
}

fn invalid_input(missing: &[&str], invalid: &[&str]) -> Reply {
    let body = json!({"error": {
        "status": 400,
        "code": "INVALID_INPUT",
        "message": "invalid input",
        "missing": missing,
        "invalid": invalid,
    }});
    Reply::json(400, body.to_string())
}

/// A fake Robot webservice (see the module documentation), at `https://<addr>`.
pub struct FakeRobot {
    http: Server,
    state: Arc<Mutex<RobotState>>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl FakeRobot {
    /// Listen on `addr` (of the calling thread's network namespace; port 0: any free
    /// port) with `pki`'s certificate, serving `config`'s failover IP.
    pub fn start(addr: &str, pki: &TestPki, config: RobotConfig) -> FakeRobot {
        let state = Arc::new(Mutex::new(RobotState {
            route: config.active.clone(),
            config,
            switching: false,
            locked_next: 0,
            failures: Failures::default(),
            post_delay: Duration::ZERO,
            get_override: None,
            post_override: None,
            limit: None,
            counted: Vec::new(),
        }));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let (s, c) = (state.clone(), calls.clone());
        let http = Server::serve_tls(addr, pki.server_config(), move |conn| {
            let credentials_ok = |a: Option<&str>| lock(&s).credentials_ok(a);
            serve(conn, &c, &credentials_ok, &|req, conn| {
                robot_answer(&s, req, conn)
            });
        });
        FakeRobot { http, state, calls }
    }

    /// `https://<addr>`, the `--hetzner-api-url`.
    pub fn url(&self) -> String {
        self.http.url()
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.http.addr
    }

    /// Where the failover IP routes now (`None`: unrouted).
    pub fn route(&self) -> Option<String> {
        lock(&self.state).route.clone()
    }

    /// Route it elsewhere (or nowhere), as another client of the account would.
    pub fn set_route(&self, route: Option<&str>) {
        lock(&self.state).route = route.map(str::to_string);
    }

    /// Take these credentials from now on.
    pub fn set_credentials(&self, user: &str, password: &str) {
        let mut s = lock(&self.state);
        s.config.user = user.into();
        s.config.password = password.into();
    }

    /// The next `n` POSTs answer 409 FAILOVER_LOCKED.
    pub fn locked_next(&self, n: u32) {
        lock(&self.state).locked_next = n;
    }

    /// POSTs answer (and the route switches) only after `delay`; meanwhile other POSTs
    /// answer 409 FAILOVER_LOCKED. A client that hangs up does not stop the switch.
    pub fn post_delay(&self, delay: Duration) {
        lock(&self.state).post_delay = delay;
    }

    /// The next `n` POSTs answer `status` with Robot's error `code`.
    pub fn fail_next(&self, n: u32, status: u16, code: &str) {
        lock(&self.state).failures = Failures {
            n,
            status,
            code: code.into(),
        };
    }

    /// Authorized GETs of the failover IP answer `canned` from now on (`None`: the
    /// fake's own answer again).
    pub fn get_reply_override(&self, canned: Option<Canned>) {
        lock(&self.state).get_override = canned;
    }

    /// Successful POSTs (the route switched) answer `canned` from now on.
    pub fn post_reply_override(&self, canned: Option<Canned>) {
        lock(&self.state).post_override = canned;
    }

    /// Refuse authorized requests beyond `limit` with 403 RATE_LIMIT_EXCEEDED (`None`,
    /// the default: no limit). Turning it on starts counting afresh.
    pub fn rate_limit(&self, limit: Option<RobotLimit>) {
        let mut s = lock(&self.state);
        s.limit = limit;
        s.counted.clear();
    }
}

/// Robot's answer to `req`; `None` when the fake stopped during a POST's delay.
fn robot_answer(state: &Mutex<RobotState>, req: &Request, conn: &Conn) -> Option<Reply> {
    let mut s = lock(state);
    if !s.credentials_ok(req.header("authorization")) {
        let reply = robot_error(401, "UNAUTHORIZED", "Unauthorized");
        return Some(reply.header("WWW-Authenticate", "Basic realm=\"Robot Webservice\""));
    }
    let path = req.path();
    let not_found = || robot_error(404, "NOT_FOUND", "Not Found");
    let Some(rest) = path.strip_prefix("/failover") else {
        return Some(not_found());
    };
    let ip = match rest.trim_end_matches('/') {
        "" => None,
        one => match one.strip_prefix('/') {
            Some(ip) if !ip.contains('/') => Some(url_decode(ip, false)),
            _ => return Some(not_found()),
        },
    };
    let method = req.method.as_str();
    if !matches!(method, "GET" | "POST" | "DELETE") || ip.is_none() && method != "GET" {
        return Some(robot_error(405, "METHOD_NOT_ALLOWED", "Method not allowed"));
    }
    if let Some(limit) = s.limited(method) {
        let max = if method == "GET" {
            limit.get
        } else {
            limit.post
        };
        let body = json!({"error": {
            "status": 403,
            "code": "RATE_LIMIT_EXCEEDED",
            "message": "Rate limit exceeded",
            "max_request": max,
            "interval": limit.interval.as_secs(),
        }});
        return Some(Reply::json(403, body.to_string()));
    }
    let Some(ip) = ip else {
        return Some(Reply::json(200, json!([s.failover()]).to_string()));
    };
    if !same_ip(&ip, &s.config.failover_ip) {
        return Some(robot_error(404, "NOT_FOUND", "Failover IP not found"));
    }
    match method {
        "GET" => Some(match &s.get_override {
            Some(canned) => canned.reply(),
            None => Reply::json(200, s.failover().to_string()),
        }),
        "DELETE" => Some(if s.switching {
            robot_error(409, "FAILOVER_LOCKED", "Failover IP is locked")
        } else {
            s.route = None;
            Reply::json(200, s.failover().to_string())
        }),
        _ => {
            if let Some((status, code)) = s.failures.take() {
                return Some(robot_error(status, &code, "Injected failure"));
            }
            if take_one(&mut s.locked_next) || s.switching {
                return Some(robot_error(409, "FAILOVER_LOCKED", "Failover IP is locked"));
            }
            let target = match s.target(req) {
                Ok(target) => target,
                Err(reply) => return Some(reply),
            };
            if s.route.as_deref().is_some_and(|r| same_ip(r, &target)) {
                let message = format!("Failover already routed to {target}");
                return Some(robot_error(409, "FAILOVER_ALREADY_ROUTED", &message));
            }
            s.switching = true;
            let delay = s.post_delay;
            drop(s);
            let waited = wait(delay, conn);
            let mut s = lock(state);
            s.switching = false;
            if !waited {
                return None;
            }
            s.route = Some(target);
            Some(match &s.post_override {
                Some(canned) => canned.reply(),
                None => Reply::json(200, s.failover().to_string()),
            })
        }
    }
}

// --- Cloud --------------------------------------------------------------------------

/// The floating IP a [`FakeCloud`] serves, its project's servers and token.
#[derive(Debug, Clone)]
pub struct CloudConfig {
    pub token: String,
    pub floating_ip_id: u64,
    /// An IPv4 address, or an IPv6 net as the API writes it (`2001:db8:f::/64`).
    pub ip: String,
    /// The project's server ids: an assignment may name these only.
    pub servers: Vec<u64>,
    /// The server it is assigned to at the start.
    pub server: Option<u64>,
}

/// The API token a [`CloudConfig`] starts with.
pub const CLOUD_TOKEN: &str = "cloud-t0ken-vipd-test";

impl CloudConfig {
    /// Floating IP `id` with address `ip` (IPv4, or an IPv6 net `…/64`), assigned to
    /// the first of `servers`.
    pub fn new(id: u64, ip: &str, servers: &[u64]) -> CloudConfig {
        CloudConfig {
            token: CLOUD_TOKEN.into(),
            floating_ip_id: id,
            ip: ip.into(),
            servers: servers.to_vec(),
            server: servers.first().copied(),
        }
    }
}

/// The API's limit: 3600 requests, refilled one a second.
const CLOUD_LIMIT: u32 = 3600;

#[derive(Debug)]
struct Action {
    id: u64,
    command: &'static str,
    /// The server an assignment moves the floating IP to (`None`: an unassignment).
    target: Option<u64>,
    started: SystemTime,
    begun: Instant,
    /// GETs that answered it running.
    polls: u32,
    /// "running", "success" or "error".
    status: &'static str,
    finished: Option<SystemTime>,
    fails: bool,
    /// Its request was answered: a delayed assignment's action does not end before.
    answered: bool,
}

#[derive(Debug)]
struct CloudState {
    config: CloudConfig,
    server: Option<u64>,
    created: SystemTime,
    actions: Vec<Action>,
    next_action: u64,
    locked_next: u32,
    rate_limited_next: u32,
    failures: Failures,
    assign_delay: Duration,
    action_duration: Duration,
    action_steps: u32,
    action_fails: bool,
    get_override: Option<Canned>,
    post_override: Option<Canned>,
    action_override: Option<Canned>,
    /// The rate-limit bucket: its size, what is left, and when it was last refilled.
    limit: u32,
    remaining: u32,
    refilled: Instant,
}

impl CloudState {
    fn credentials_ok(&self, authorization: Option<&str>) -> bool {
        let Some((scheme, token)) = authorization.and_then(|a| a.split_once(' ')) else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer") && token.trim() == self.config.token
    }

    /// Ends the actions whose time has come (and as many polls as asked for have seen
    /// them running); a successful one moves the floating IP.
    fn settle(&mut self) {
        for a in &mut self.actions {
            let due = a.polls >= self.action_steps && a.begun.elapsed() >= self.action_duration;
            if a.status != "running" || !a.answered || !due {
                continue;
            }
            a.finished = Some(SystemTime::now());
            if a.fails {
                a.status = "error";
            } else {
                a.status = "success";
                self.server = a.target;
            }
        }
    }

    fn refill(&mut self) {
        let whole = self.refilled.elapsed().as_secs();
        let capped = whole.min(u64::from(self.limit)) as u32;
        self.remaining = (self.remaining + capped).min(self.limit);
        self.refilled += Duration::from_secs(whole);
    }

    fn floating_ip(&self) -> Value {
        let c = &self.config;
        let kind = if c.ip.contains(':') { "ipv6" } else { "ipv4" };
        json!({"floating_ip": {
            "id": c.floating_ip_id,
            "name": "vipd-test",
            "description": "vipd test floating IP",
            "ip": c.ip,
            "type": kind,
            "server": self.server,
            "dns_ptr": [],
            "home_location": {
                "id": 1,
                "name": "fsn1",
                "description": "Falkenstein DC Park 1",
                "country": "DE",
                "city": "Falkenstein",
                "latitude": 50.47612,
                "longitude": 12.370071,
                "network_zone": "eu-central",
            },
            "blocked": false,
            "protection": {"delete": false},
            "labels": {},
            "created": rfc3339(self.created),
        }})
    }

    fn action(&self, a: &Action) -> Value {
        let mut resources = Vec::new();
        if let Some(server) = a.target {
            resources.push(json!({"id": server, "type": "server"}));
        }
        resources.push(json!({"id": self.config.floating_ip_id, "type": "floating_ip"}));
        let error = (a.status == "error")
            .then(|| json!({"code": "action_failed", "message": "Action failed"}));
        json!({"action": {
            "id": a.id,
            "command": a.command,
            "status": a.status,
            "progress": if a.status == "running" { 0 } else { 100 },
            "started": rfc3339(a.started),
            "finished": a.finished.map(rfc3339),
            "resources": resources,
            "error": error,
        }})
    }

    /// The floating IP id in `path` is this one.
    fn is_ours(&self, id: &str) -> bool {
        id.parse::<u64>().ok() == Some(self.config.floating_ip_id)
    }
}

fn cloud_error(status: u16, code: &str, message: &str) -> Reply {
    let body = json!({"error": {"code": code, "message": message, "details": {}}});
    Reply::json(status, body.to_string())
}

/// A fake Hetzner Cloud API (see the module documentation), at `https://<addr>/v1`.
pub struct FakeCloud {
    http: Server,
    state: Arc<Mutex<CloudState>>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl FakeCloud {
    /// Listen on `addr` (of the calling thread's network namespace; port 0: any free
    /// port) with `pki`'s certificate, serving `config`'s floating IP. Actions end at
    /// the second GET by default (see [`FakeCloud::action_steps`]).
    pub fn start(addr: &str, pki: &TestPki, config: CloudConfig) -> FakeCloud {
        let state = Arc::new(Mutex::new(CloudState {
            server: config.server,
            config,
            created: UNIX_EPOCH + Duration::from_secs(1_704_067_200),
            actions: Vec::new(),
            next_action: 13,
            locked_next: 0,
            rate_limited_next: 0,
            failures: Failures::default(),
            assign_delay: Duration::ZERO,
            action_duration: Duration::ZERO,
            action_steps: 1,
            action_fails: false,
            get_override: None,
            post_override: None,
            action_override: None,
            limit: CLOUD_LIMIT,
            remaining: CLOUD_LIMIT,
            refilled: Instant::now(),
        }));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let (s, c) = (state.clone(), calls.clone());
        let http = Server::serve_tls(addr, pki.server_config(), move |conn| {
            let credentials_ok = |a: Option<&str>| lock(&s).credentials_ok(a);
            serve(conn, &c, &credentials_ok, &|req, conn| {
                cloud_answer(&s, req, conn)
            });
        });
        FakeCloud { http, state, calls }
    }

    /// `https://<addr>/v1`, the `--hetzner-cloud-api-url`.
    pub fn url(&self) -> String {
        format!("{}/v1", self.http.url())
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.http.addr
    }

    /// The server the floating IP is assigned to now (ending due actions first).
    pub fn server(&self) -> Option<u64> {
        let mut s = lock(&self.state);
        s.settle();
        s.server
    }

    /// Assign it elsewhere (or nowhere), as another client of the project would.
    pub fn set_server(&self, server: Option<u64>) {
        lock(&self.state).server = server;
    }

    pub fn set_token(&self, token: &str) {
        lock(&self.state).config.token = token.into();
    }

    /// The next `n` assignments answer 423 locked.
    pub fn locked_next(&self, n: u32) {
        lock(&self.state).locked_next = n;
    }

    /// The next `n` authorized requests (any) answer 429 rate_limit_exceeded.
    pub fn rate_limited_next(&self, n: u32) {
        lock(&self.state).rate_limited_next = n;
    }

    /// The next `n` assignments answer `status` with error `code`.
    pub fn fail_next(&self, n: u32, status: u16, code: &str) {
        lock(&self.state).failures = Failures {
            n,
            status,
            code: code.into(),
        };
    }

    /// Assignments answer only after `delay` (their action runs from the request on,
    /// and other assignments meanwhile answer 423 locked).
    pub fn assign_delay(&self, delay: Duration) {
        lock(&self.state).assign_delay = delay;
    }

    /// An action ends once `n` GETs of it answered "running" (default 1; 0: the first
    /// GET may see it ended) and [`FakeCloud::action_duration`] passed.
    pub fn action_steps(&self, n: u32) {
        lock(&self.state).action_steps = n;
    }

    /// An action runs at least this long (default: no time).
    pub fn action_duration(&self, duration: Duration) {
        lock(&self.state).action_duration = duration;
    }

    /// Actions started from now on end in "error" (the floating IP stays), or not.
    pub fn action_fails(&self, fails: bool) {
        lock(&self.state).action_fails = fails;
    }

    /// The bucket's size (and a full bucket): 3600 unless set.
    pub fn set_rate_limit(&self, limit: u32) {
        let mut s = lock(&self.state);
        (s.limit, s.remaining, s.refilled) = (limit, limit, Instant::now());
    }

    /// Authorized GETs of the floating IP answer `canned` from now on.
    pub fn get_reply_override(&self, canned: Option<Canned>) {
        lock(&self.state).get_override = canned;
    }

    /// Accepted assignments (their action started) answer `canned` from now on.
    pub fn post_reply_override(&self, canned: Option<Canned>) {
        lock(&self.state).post_override = canned;
    }

    /// Authorized GETs of an existing action answer `canned` from now on (each still
    /// counts as a poll).
    pub fn action_reply_override(&self, canned: Option<Canned>) {
        lock(&self.state).action_override = canned;
    }
}

/// The Cloud API's answer to `req`, with the rate-limit headers; `None` when the fake
/// stopped during an assignment's delay.
fn cloud_answer(state: &Mutex<CloudState>, req: &Request, conn: &Conn) -> Option<Reply> {
    let mut s = lock(state);
    s.settle();
    s.refill();
    let mut remaining = None;
    let reply = if !s.credentials_ok(req.header("authorization")) {
        cloud_error(401, "unauthorized", "unable to authenticate")
    } else if take_one(&mut s.rate_limited_next) || s.remaining == 0 {
        remaining = Some(0);
        let message = format!("limit of {} requests per hour reached", s.limit);
        cloud_error(429, "rate_limit_exceeded", &message)
    } else {
        s.remaining -= 1;
        match cloud_route(&mut s, req) {
            Ok(reply) => reply,
            Err((delay, id)) => {
                drop(s);
                if !wait(delay, conn) {
                    return None;
                }
                s = lock(state);
                if let Some(a) = s.actions.iter_mut().find(|a| a.id == id) {
                    a.answered = true;
                }
                let action = s.actions.iter().find(|a| a.id == id).map(|a| s.action(a));
                match (&s.post_override, action) {
                    (Some(canned), _) => canned.reply(),
                    (None, action) => Reply::json(201, action.unwrap_or_default().to_string()),
                }
            }
        }
    };
    let remaining = remaining.unwrap_or(s.remaining);
    let reset = SystemTime::now() + Duration::from_secs(u64::from(s.limit - remaining));
    let reset = reset.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Some(
        reply
            .header("RateLimit-Limit", s.limit)
            .header("RateLimit-Remaining", remaining)
            .header("RateLimit-Reset", reset),
    )
}

/// An authorized request's answer, or the delay after which an accepted assignment
/// answers (and its action's id).
fn cloud_route(s: &mut CloudState, req: &Request) -> Result<Reply, (Duration, u64)> {
    let not_found = || Ok(cloud_error(404, "not_found", "not found"));
    let path = req.path().trim_end_matches('/');
    let Some(path) = path.strip_prefix("/v1/") else {
        return not_found();
    };
    let parts: Vec<&str> = path.split('/').collect();
    match (req.method.as_str(), parts.as_slice()) {
        ("GET", ["floating_ips", id]) => {
            if !s.is_ours(id) {
                return not_found();
            }
            Ok(match &s.get_override {
                Some(canned) => canned.reply(),
                None => Reply::json(200, s.floating_ip().to_string()),
            })
        }
        (
            "POST",
            [
                "floating_ips",
                id,
                "actions",
                command @ ("assign" | "unassign"),
            ],
        ) => {
            if !s.is_ours(id) {
                return not_found();
            }
            start_action(s, req, *command == "assign")
        }
        ("GET", ["actions", id]) | ("GET", ["floating_ips", _, "actions", id]) => {
            let Some(i) = s.actions.iter().position(|a| id.parse() == Ok(a.id)) else {
                return not_found();
            };
            let reply = s.action(&s.actions[i]);
            if s.actions[i].status == "running" {
                s.actions[i].polls += 1;
            }
            Ok(match &s.action_override {
                Some(canned) => canned.reply(),
                None => Reply::json(200, reply.to_string()),
            })
        }
        _ => not_found(),
    }
}

/// An assignment (or unassignment): refused, or its action started (answered after the
/// assignment delay).
fn start_action(s: &mut CloudState, req: &Request, assign: bool) -> Result<Reply, (Duration, u64)> {
    if let Some((status, code)) = s.failures.take() {
        return Ok(cloud_error(status, &code, "injected failure"));
    }
    let running = s.actions.iter().any(|a| a.status == "running");
    if take_one(&mut s.locked_next) || running {
        let message = "floating IP is locked: another action is running";
        return Ok(cloud_error(423, "locked", message));
    }
    let target = if assign {
        let body: Value = match serde_json::from_slice(body_of(req)) {
            Ok(body) => body,
            Err(_) => {
                return Ok(cloud_error(
                    400,
                    "json_error",
                    "invalid JSON in the request",
                ));
            }
        };
        let Some(server) = body.get("server").and_then(Value::as_u64) else {
            let details = json!({"fields": [{"name": "server", "messages": ["is invalid"]}]});
            let body = json!({"error": {
                "code": "invalid_input",
                "message": "invalid input in field 'server'",
                "details": details,
            }});
            return Ok(Reply::json(400, body.to_string()));
        };
        if !s.config.servers.contains(&server) {
            let message = format!("server with ID '{server}' not found");
            return Ok(cloud_error(404, "not_found", &message));
        }
        if s.server == Some(server) {
            let message = "floating IP is already assigned to this server";
            return Ok(cloud_error(422, "floating_ip_assigned", message));
        }
        Some(server)
    } else {
        None
    };
    let action = Action {
        id: s.next_action,
        command: if assign {
            "assign_floating_ip"
        } else {
            "unassign_floating_ip"
        },
        target,
        started: SystemTime::now(),
        begun: Instant::now(),
        polls: 0,
        status: "running",
        finished: None,
        fails: s.action_fails,
        answered: s.assign_delay.is_zero(),
    };
    s.next_action += 1;
    let id = action.id;
    s.actions.push(action);
    if !s.assign_delay.is_zero() {
        return Err((s.assign_delay, id));
    }
    let started = s.actions.last().map(|a| s.action(a)).unwrap_or_default();
    Ok(match &s.post_override {
        Some(canned) => canned.reply(),
        None => Reply::json(201, started.to_string()),
    })
}
