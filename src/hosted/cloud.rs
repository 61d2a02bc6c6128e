//! A Hetzner Cloud floating IP (`manager-type hetzner-cloud`), through the Cloud API
//! (<https://docs.hetzner.cloud/>, "Floating IPs" and "Actions"), with a bearer token:
//! - `GET /floating_ips/{id}` answers `{"floating_ip":{"id":…,"ip":…,"server":<id>|null,…}}`.
//! - `POST /floating_ips/{id}/actions/assign` with `{"server":<id>}` answers `201` and
//!   an action, followed with `GET /actions/{id}` until its `status` is `success` or
//!   `error`; the floating IP is then read back.
//! - Errors are `{"error":{"code":…,"message":…,"details":…}}`: `locked` (423),
//!   `rate_limit_exceeded` (429), `unauthorized` (401), `forbidden` (403), `not_found`
//!   (404), `invalid_input`, `conflict`, server errors.
//! - Limit: 3600 requests per hour per project, refilled one per second; vipd keeps its
//!   own calls within it and rechecks at most every 10 s.
//!
//! The cloud routes the address to the server; the guest must still own it, so the
//! VIP is also added to the interface and announced, as `manager-type basic` does.

use std::time::{Duration, Instant};

use super::http::Client;
use super::limit::Window;
use super::{Api, CloudSettings, Failure, FailureKind, Route, object_of};
use crate::dcs::http::Tls;

pub const REQUESTS_PER_HOUR: usize = 3600;
pub const MIN_RECHECK: Duration = Duration::from_secs(10);
const TIMEOUT: Duration = Duration::from_secs(30);
/// How often an action is looked at, and for how long at most.
const ACTION_POLL: Duration = Duration::from_secs(1);
const ACTION_BOUND: Duration = Duration::from_secs(120);

pub struct Cloud {
    settings: CloudSettings,
    client: Client,
    calls: Window,
}

impl Cloud {
    pub fn new(settings: CloudSettings, tls: &Tls) -> Cloud {
        let auth = format!("Bearer {}", settings.token.0);
        Cloud {
            client: Client::new(&settings.api_url, tls, auth),
            settings,
            calls: Window::new(REQUESTS_PER_HOUR, Duration::from_secs(3600)),
        }
    }

    fn call(
        &mut self,
        method: &str,
        path: &[&str],
        body: Option<&str>,
        what: &str,
    ) -> Result<crate::dcs::http::wire::Reply, Failure> {
        self.calls.admit(Instant::now()).map_err(|at| {
            Failure::held_back(what, at, &format!("{REQUESTS_PER_HOUR} calls per hour"))
        })?;
        let body = body.map(|b| ("application/json", b));
        self.client.call(method, path, body, TIMEOUT)
    }
}

/// The route a floating IP object names, judged against this server's id.
pub fn parse_route(body: &[u8], server_id: u64) -> Result<Route, String> {
    let ip = object_of(body, "floating_ip")?;
    match ip.get("server") {
        None => Err("the floating_ip object has no server".into()),
        Some(serde_json::Value::Null) => Ok(Route::Unrouted),
        Some(s) => match s.as_u64() {
            Some(id) if id == server_id => Ok(Route::Here),
            Some(id) => Ok(Route::Elsewhere(format!("server {id}"))),
            None => Err("server is not a server id".into()),
        },
    }
}

/// An action's id and status (`running`, `success`, `error`) and, for `error`, its
/// error text.
pub fn parse_action(body: &[u8]) -> Result<(u64, String, Option<String>), String> {
    let action = object_of(body, "action")?;
    let id = action
        .get("id")
        .and_then(serde_json::Value::as_u64)
        .ok_or("the action has no id")?;
    let status = action
        .get("status")
        .and_then(serde_json::Value::as_str)
        .ok_or("the action has no status")?;
    let error = action.get("error").filter(|e| e.is_object()).map(|e| {
        let text = |k| e.get(k).and_then(serde_json::Value::as_str).unwrap_or("");
        let (code, message) = (text("code"), text("message"));
        crate::dcs::http::server_text(format!("{code}: {message}").as_bytes())
    });
    let status = crate::dcs::http::server_text(status.as_bytes());
    Ok((id, status, error))
}

/// How the Cloud API's error replies fail a call.
fn kind_of(status: u16, code: &str) -> FailureKind {
    match (status, code) {
        (_, "locked" | "rate_limit_exceeded") | (423 | 429 | 503, _) => FailureKind::Busy,
        (_, "unauthorized" | "forbidden") | (401 | 403, _) => FailureKind::Rejected,
        (404, _) | (_, "not_found") => FailureKind::NotFound,
        _ => FailureKind::Failed,
    }
}

fn refused(status: u16, body: &[u8], what: &str) -> Failure {
    Failure::refused(
        status,
        body,
        what,
        kind_of,
        "the Cloud API refused the token",
    )
}

impl Api for Cloud {
    fn read(&mut self, _now: Instant) -> Result<Route, Failure> {
        let id = self.settings.floating_ip_id.to_string();
        let what = format!("GET floating_ips/{id}");
        let reply = self.call("GET", &["/floating_ips/", &id], None, &what)?;
        if reply.status != 200 {
            return Err(refused(reply.status, &reply.body, &what));
        }
        parse_route(&reply.body, self.settings.server_id)
            .map_err(|e| Failure::new(FailureKind::Failed, format!("{what}: {e}")))
    }

    fn claim(&mut self, _now: Instant) -> Result<Option<Route>, Failure> {
        let id = self.settings.floating_ip_id.to_string();
        let what = format!(
            "POST floating_ips/{id}/actions/assign server {}",
            self.settings.server_id
        );
        let body = format!("{{\"server\":{}}}", self.settings.server_id);
        let reply = self.call(
            "POST",
            &["/floating_ips/", &id, "/actions/assign"],
            Some(&body),
            &what,
        )?;
        if !matches!(reply.status, 200 | 201) {
            return Err(refused(reply.status, &reply.body, &what));
        }
        let bad = |e: String| Failure::new(FailureKind::Failed, format!("{what}: {e}"));
        let (action, mut status, mut error) = parse_action(&reply.body).map_err(bad)?;
        let until = Instant::now() + ACTION_BOUND;
        let action_id = action.to_string();
        let follow = format!("GET actions/{action_id}");
        // Bounded by time and by count (one look a second).
        for _ in 0..ACTION_BOUND.as_secs() {
            if status != "running" || Instant::now() >= until {
                break;
            }
            std::thread::sleep(ACTION_POLL);
            let reply = self.call("GET", &["/actions/", &action_id], None, &follow)?;
            if reply.status != 200 {
                return Err(refused(reply.status, &reply.body, &follow));
            }
            (_, status, error) = parse_action(&reply.body).map_err(bad)?;
        }
        match status.as_str() {
            // The action says nothing of the route: it is read back.
            "success" => Ok(None),
            "error" => Err(Failure::new(
                FailureKind::Failed,
                format!(
                    "{what}: action {action_id} failed: {}",
                    error.unwrap_or_default()
                ),
            )),
            _ => Err(Failure::new(
                FailureKind::Failed,
                format!(
                    "{what}: action {action_id} still {status} after {} s",
                    ACTION_BOUND.as_secs()
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floating_ips_and_actions_as_documented() {
        let ip = |server: &str| {
            format!(
                r#"{{"floating_ip":{{"id":4711,"ip":"203.0.113.20","type":"ipv4",
                "server":{server},"blocked":false,"labels":{{}}}}}}"#
            )
        };
        assert_eq!(parse_route(ip("42").as_bytes(), 42), Ok(Route::Here));
        assert_eq!(
            parse_route(ip("43").as_bytes(), 42),
            Ok(Route::Elsewhere("server 43".into()))
        );
        assert_eq!(parse_route(ip("null").as_bytes(), 42), Ok(Route::Unrouted));
        for bad in [ip("\"x\""), ip("-1"), "{}".into(), "nope".into()] {
            assert!(parse_route(bad.as_bytes(), 42).is_err(), "{bad}");
        }
        let running = br#"{"action":{"id":13,"command":"assign_floating_ip","status":"running","progress":0,"error":null}}"#;
        assert_eq!(parse_action(running), Ok((13, "running".into(), None)));
        let failed = br#"{"action":{"id":13,"status":"error","error":{"code":"action_failed","message":"Action failed"}}}"#;
        assert_eq!(
            parse_action(failed),
            Ok((
                13,
                "error".into(),
                Some("action_failed: Action failed".into())
            ))
        );
        assert!(parse_action(br#"{"action":{"status":"running"}}"#).is_err());
    }

    #[test]
    fn error_replies_by_kind() {
        let err = |status, code: &str| {
            let body = format!(r#"{{"error":{{"code":"{code}","message":"m","details":{{}}}}}}"#);
            refused(status, body.as_bytes(), "GET floating_ips/1").kind
        };
        assert_eq!(err(423, "locked"), FailureKind::Busy);
        assert_eq!(err(429, "rate_limit_exceeded"), FailureKind::Busy);
        assert_eq!(err(401, "unauthorized"), FailureKind::Rejected);
        assert_eq!(err(403, "forbidden"), FailureKind::Rejected);
        assert_eq!(err(404, "not_found"), FailureKind::NotFound);
        assert_eq!(err(422, "invalid_input"), FailureKind::Failed);
        assert_eq!(err(500, "server_error"), FailureKind::Failed);
    }
}
