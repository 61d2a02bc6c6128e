//! A Hetzner Robot failover IP (`manager-type hetzner`), through the Robot webservice
//! (<https://robot.hetzner.com/doc/webservice/en.html>, "Failover"):
//! - `GET /failover/<ip>` (for an IPv6 failover net, `<ip>` is the net's address) answers `{"failover":{"ip":…,"active_server_ip":…,…}}`, where
//!   `active_server_ip` is the main address of the server it routes to (null:
//!   unrouted); for an IPv6 failover net, the target's /64 subnet address.
//! - `POST /failover/<ip>` with the form field `active_server_ip` moves it and answers,
//!   once the switch is done, with the same object.
//! - Errors are `{"error":{"status":…,"code":…,"message":…}}`: `409
//!   FAILOVER_ALREADY_ROUTED` (the route is already there: done), `409 FAILOVER_LOCKED`
//!   (a switch in progress: later), `401 UNAUTHORIZED`, `404 NOT_FOUND`, `403
//!   RATE_LIMIT_EXCEEDED`.
//! - Limits: 100 GETs and 50 POSTs of `/failover/<ip>` per hour; vipd keeps below both
//!   ([`Window`]), and its recheck is at least 36 s for that reason.
//!
//! This server's address is `hetzner-server-ip`, else the primary address of
//! `interface`, else the source address the kernel would use towards the API (a route
//! lookup over rtnetlink: no packet is sent). It is looked up before each move, so a
//! renumbered server needs no restart.

use std::net::{IpAddr, Ipv6Addr, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::http::Client;
use super::limit::Window;
use super::{Api, Failure, FailureKind, RobotSettings, Route, ServerIp, error_object, object_of};
use crate::dcs::http::Tls;
use crate::dcs::http::conn::Target;

const HOUR: Duration = Duration::from_secs(3600);
pub const GETS_PER_HOUR: usize = 100;
pub const POSTS_PER_HOUR: usize = 50;
/// The shortest recheck that keeps within the GET limit (3600 s / 100).
pub const MIN_RECHECK: Duration = Duration::from_secs(36);
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A switch answers when it is done; Hetzner's own tooling waits up to 180 s.
const MOVE_TIMEOUT: Duration = Duration::from_secs(180);

pub struct Robot {
    settings: RobotSettings,
    vip: IpAddr,
    client: Client,
    gets: Window,
    posts: Window,
}

impl Robot {
    pub fn new(settings: RobotSettings, vip: IpAddr, tls: &Tls) -> Robot {
        let credentials = format!("{}:{}", settings.user, settings.password.0);
        let auth = format!("Basic {}", crate::base64::encode(credentials.as_bytes()));
        Robot {
            client: Client::new(&settings.api_url, tls, auth),
            settings,
            vip,
            gets: Window::new(GETS_PER_HOUR, HOUR),
            posts: Window::new(POSTS_PER_HOUR, HOUR),
        }
    }

    /// The failover IP as Robot names it: the VIP, or for IPv6 its /64 net's address
    /// (an IPv6 failover IP is a /64 net; the VIP may be any address in it).
    fn failover(&self) -> IpAddr {
        target_of(self.vip)
    }

    /// This server's main address, of the VIP's family.
    fn server_ip(&self) -> Result<IpAddr, Failure> {
        let v6 = self.vip.is_ipv6();
        let failed = |text: String| Failure::new(FailureKind::Failed, text);
        match &self.settings.server_ip {
            ServerIp::Given(ip) => Ok(*ip),
            ServerIp::Interface(name) => crate::net::primary_address(name, v6, self.vip)
                .map_err(|e| failed(format!("this server's address on {name}: {e}")))?
                .ok_or_else(|| {
                    failed(format!(
                        "{name} has no primary {} address to route {} to \
                         (set hetzner-server-ip)",
                        if v6 { "IPv6" } else { "IPv4" },
                        self.vip
                    ))
                }),
            ServerIp::Route => {
                let target = Target::parse(&self.settings.api_url).map_err(failed)?;
                let api = (target.host.as_str(), target.port)
                    .to_socket_addrs()
                    .map_err(|e| failed(format!("looking up {}: {e}", target.host)))?
                    .map(|a| a.ip())
                    .find(|ip| ip.is_ipv6() == v6)
                    .ok_or_else(|| {
                        failed(format!(
                            "{} has no address of {}'s family (set hetzner-server-ip)",
                            target.host, self.vip
                        ))
                    })?;
                // Without a global address the kernel names a link-local one or
                // loopback, which Robot cannot route to.
                crate::net::route_source(api)
                    .map_err(|e| failed(format!("the route towards {api}: {e}")))?
                    .filter(|ip| !ip.is_loopback() && !link_local(*ip))
                    .ok_or_else(|| {
                        failed(format!(
                            "the route towards {api} names no global source address \
                             (set hetzner-server-ip)"
                        ))
                    })
            }
        }
    }
}

fn link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// What Robot expects in `active_server_ip` for this server: its address, or for an
/// IPv6 failover net its /64 subnet address.
pub fn target_of(server: IpAddr) -> IpAddr {
    match server {
        IpAddr::V6(a) => {
            let bits = u128::from(a) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// The route a failover object names, judged against this server's target address
/// (`None`: the address is not known, so nothing routes "here").
pub fn parse_route(body: &[u8], here: Option<IpAddr>) -> Result<Route, String> {
    let failover = object_of(body, "failover")?;
    match failover.get("active_server_ip") {
        None => Err("the failover object has no active_server_ip".into()),
        Some(serde_json::Value::Null) => Ok(Route::Unrouted),
        Some(serde_json::Value::String(s)) => {
            let ip: IpAddr = s.parse().map_err(|_| {
                format!(
                    "active_server_ip {:?} is not an address",
                    crate::dcs::http::server_text(s.as_bytes())
                )
            })?;
            Ok(if here.is_some_and(|h| target_of(ip) == target_of(h)) {
                Route::Here
            } else {
                Route::Elsewhere(ip.to_string())
            })
        }
        Some(_) => Err("active_server_ip is not a string".into()),
    }
}

/// How Robot's error replies fail a call.
fn kind_of(status: u16, code: &str) -> FailureKind {
    match (status, code) {
        (403, "RATE_LIMIT_EXCEEDED") | (409, "FAILOVER_LOCKED") => FailureKind::Busy,
        (401, _) | (403, _) => FailureKind::Rejected,
        (404, _) => FailureKind::NotFound,
        (429, _) | (503, _) => FailureKind::Busy,
        _ => FailureKind::Failed,
    }
}

fn refused(status: u16, body: &[u8], what: &str) -> Failure {
    let rejected = "the Robot webservice refused the credentials";
    Failure::refused(status, body, what, kind_of, rejected)
}

fn limited(what: &str, at: Instant, per_hour: usize) -> Failure {
    Failure::held_back(what, at, &format!("Robot's {per_hour} per hour"))
}

impl Api for Robot {
    fn read(&mut self, now: Instant) -> Result<Route, Failure> {
        let what = format!("GET failover/{}", self.failover());
        self.gets
            .admit(now)
            .map_err(|at| limited(&what, at, GETS_PER_HOUR))?;
        let vip = self.failover().to_string();
        let reply = self
            .client
            .call("GET", &["/failover/", &vip], None, READ_TIMEOUT)?;
        if reply.status != 200 {
            return Err(refused(reply.status, &reply.body, &what));
        }
        // An unknown address of this server routes nothing here; the read still
        // tells where the VIP is.
        let here = self.server_ip().ok().map(target_of);
        parse_route(&reply.body, here)
            .map_err(|e| Failure::new(FailureKind::Failed, format!("{what}: {e}")))
    }

    fn claim(&mut self, now: Instant) -> Result<Option<Route>, Failure> {
        let server = self.server_ip()?;
        let target = target_of(server);
        let what = format!(
            "POST failover/{} active_server_ip={target}",
            self.failover()
        );
        self.posts
            .admit(now)
            .map_err(|at| limited(&what, at, POSTS_PER_HOUR))?;
        let (vip, form) = (
            self.failover().to_string(),
            format!("active_server_ip={target}"),
        );
        let body = Some(("application/x-www-form-urlencoded", form.as_str()));
        let reply = self
            .client
            .call("POST", &["/failover/", &vip], body, MOVE_TIMEOUT)?;
        match reply.status {
            // The answer is the failover object after the switch; one that cannot be
            // read is read back.
            200 | 201 => Ok(parse_route(&reply.body, Some(server)).ok()),
            // Already routed to the target asked for: to this server.
            409 if error_object(&reply.body)
                .is_some_and(|(code, _)| code == "FAILOVER_ALREADY_ROUTED") =>
            {
                Ok(Some(Route::Here))
            }
            status => Err(refused(status, &reply.body, &what)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_as_robot_describes_them() {
        let here: IpAddr = "198.51.100.1".parse().unwrap();
        let body = |active: &str| {
            format!(
                r#"{{"failover":{{"ip":"203.0.113.10","netmask":"255.255.255.255",
                "server_ip":"198.51.100.9","server_ipv6_net":"2001:db8:9::",
                "server_number":321,"active_server_ip":{active}}}}}"#
            )
        };
        let cases = [
            ("\"198.51.100.1\"", Ok(Route::Here)),
            (
                "\"198.51.100.2\"",
                Ok(Route::Elsewhere("198.51.100.2".into())),
            ),
            ("null", Ok(Route::Unrouted)),
            ("42", Err("active_server_ip is not a string".to_string())),
            (
                "\"no\"",
                Err("active_server_ip \"no\" is not an address".to_string()),
            ),
        ];
        for (active, want) in cases {
            assert_eq!(parse_route(body(active).as_bytes(), Some(here)), want);
        }
        // This server's address unknown: nothing routes here.
        assert_eq!(
            parse_route(body("\"198.51.100.1\"").as_bytes(), None),
            Ok(Route::Elsewhere("198.51.100.1".into()))
        );
        for bad in [&b"{}"[..], b"[1]", b"{\"failover\":[]}", b"", b"\xff"] {
            assert!(parse_route(bad, Some(here)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_ipv6_failover_net_routes_to_the_servers_subnet() {
        let server: IpAddr = "2001:db8:1::2".parse().unwrap();
        assert_eq!(target_of(server), "2001:db8:1::".parse::<IpAddr>().unwrap());
        let body = br#"{"failover":{"ip":"2001:db8:f::","active_server_ip":"2001:db8:1::"}}"#;
        assert_eq!(parse_route(body, Some(server)), Ok(Route::Here));
        let v4: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(target_of(v4), v4);
    }

    #[test]
    fn error_replies_by_kind_without_the_request() {
        let err = |status, code: &str| {
            let body =
                format!(r#"{{"error":{{"status":{status},"code":"{code}","message":"said"}}}}"#);
            refused(status, body.as_bytes(), "POST failover/203.0.113.10")
        };
        let cases = [
            (409, "FAILOVER_LOCKED", FailureKind::Busy),
            (403, "RATE_LIMIT_EXCEEDED", FailureKind::Busy),
            (401, "UNAUTHORIZED", FailureKind::Rejected),
            (404, "NOT_FOUND", FailureKind::NotFound),
            (500, "INTERNAL_ERROR", FailureKind::Failed),
            (400, "INVALID_INPUT", FailureKind::Failed),
        ];
        for (status, code, kind) in cases {
            let f = err(status, code);
            assert_eq!(f.kind, kind, "{status} {code}");
            assert!(f.text.contains(code) && f.text.contains("said"), "{f}");
        }
        let f = refused(502, b"<html>bad gateway</html>", "GET failover/x");
        assert_eq!(f.text, "GET failover/x: 502 <html>bad gateway</html>");
    }
}
