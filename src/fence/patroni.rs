//! This node's Patroni, asked whether its PostgreSQL is a running primary:
//! `GET <patroni-url>/patroni`, judged by the body's `role` and `state`.
//!
//! The status code says too little: Patroni 3.0 answers `GET /primary` (and `/leader`)
//! with 200 as soon as the node holds the leader lock, before PostgreSQL has left
//! recovery. The body's `role` is `replica` until the promotion is done, then
//! `master` (Patroni 3.0) or `primary` (3.1 and later); a standby cluster's leader is
//! `standby_leader`. `state` is `running` once PostgreSQL accepts connections.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::dcs::http::Tls;
use crate::dcs::http::conn::{Connection, Request};
use crate::decide::PatroniSays;

/// The roles in which this node's PostgreSQL serves the cluster's writes (a standby
/// cluster's leader serves its reads: the VIP belongs to it all the same).
const PRIMARY_ROLES: [&str; 3] = ["master", "primary", "standby_leader"];

/// Judge a reply to `GET /patroni` by its body, whatever its status: a body that is
/// not Patroni's JSON is "not a running primary" (something answered, and it is not
/// a primary that says so).
pub fn judge(status: u16, body: &[u8]) -> PatroniSays {
    let field = |v: &Value, name: &str| v.get(name).and_then(Value::as_str).map(str::to_owned);
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let (role, state) = match parsed.as_ref() {
        Some(v) => (field(v, "role"), field(v, "state")),
        None => (None, None),
    };
    match (role, state) {
        (Some(role), Some(state))
            if PRIMARY_ROLES.contains(&role.as_str()) && state == "running" =>
        {
            PatroniSays::Primary
        }
        (Some(role), Some(state)) => PatroniSays::NotPrimary(format!(
            "role {}, state {}",
            crate::dcs::http::server_text(role.as_bytes()),
            crate::dcs::http::server_text(state.as_bytes())
        )),
        _ => PatroniSays::NotPrimary(format!(
            "HTTP {status} without a role and state: {}",
            crate::dcs::http::server_text(body)
        )),
    }
}

/// Asks this node's Patroni; a trait so that the daemon's tests can script answers.
pub trait AskPatroni {
    /// `GET /patroni` until `deadline`; no HTTP answer at all is [`PatroniSays::NoAnswer`]
    /// (the reason goes to the debug log).
    fn ask(&mut self, deadline: Instant) -> PatroniSays;
}

/// The HTTP client: one kept-alive connection to `<patroni-url>/patroni`.
pub struct Patroni {
    conn: Connection,
    url: String,
}

impl Patroni {
    pub fn new(patroni_url: &str, interval: Duration, tls: &Tls) -> Patroni {
        let url = format!("{}/patroni", patroni_url.trim_end_matches('/'));
        Patroni {
            conn: Connection::new(&url, interval, tls),
            url,
        }
    }
}

impl AskPatroni for Patroni {
    fn ask(&mut self, deadline: Instant) -> PatroniSays {
        match self.conn.request(&Request::get(&[], &[]), deadline) {
            Ok(reply) => judge(reply.status, &reply.body),
            Err(e) => {
                log::debug!("{}: {e}", self.url);
                PatroniSays::NoAnswer
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(role: &str, state: &str) -> String {
        format!(r#"{{"state": "{state}", "role": "{role}", "server_version": 150005}}"#)
    }

    #[test]
    fn role_and_state_decide_not_the_status() {
        for role in ["master", "primary", "standby_leader"] {
            assert_eq!(
                judge(200, body(role, "running").as_bytes()),
                PatroniSays::Primary
            );
            assert_eq!(
                judge(503, body(role, "running").as_bytes()),
                PatroniSays::Primary
            );
        }
        let not = |role: &str, state: &str| {
            PatroniSays::NotPrimary(format!("role {role}, state {state}"))
        };
        // A new leader still in recovery: the lock is held, the role is not yet primary.
        for (role, state) in [
            ("replica", "running"),
            ("master", "starting"),
            ("master", "stopped"),
            ("primary", "restarting"),
            ("demoted", "running"),
            ("uninitialized", "stopped"),
        ] {
            assert_eq!(judge(200, body(role, state).as_bytes()), not(role, state));
        }
    }

    #[test]
    fn a_reply_that_is_not_patroni_is_not_a_primary() {
        for (status, text) in [
            (200, "<html>proxy</html>"),
            (502, ""),
            (200, r#"{"role": "master"}"#),
            (200, r#"{"role": 1, "state": "running"}"#),
            (200, "[]"),
        ] {
            match judge(status, text.as_bytes()) {
                PatroniSays::NotPrimary(why) => {
                    assert!(why.starts_with(&format!("HTTP {status}")), "{why}")
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    /// Every body a real Patroni 3.0.2 sent during bootstrap, switchovers, a paused
    /// stop and a restart (tests/fixtures/patroni/): only the running primary is one.
    /// The new leader still in recovery already answers 200 on /primary, and the old
    /// primary shutting down still holds the lock and says master: neither is ready.
    #[test]
    fn the_captured_answers_of_a_real_cluster() {
        macro_rules! fixture {
            ($name:literal) => {
                include_str!(concat!("../../tests/fixtures/patroni/", $name, ".json"))
            };
        }
        let captured = [
            ("demoted-stopped", fixture!("demoted-stopped")),
            ("demoted-stopping", fixture!("demoted-stopping")),
            (
                "master-stopping-codes-200-503-503",
                fixture!("master-stopping-codes-200-503-503"),
            ),
            (
                "master-stopping-holds-leader-lock",
                fixture!("master-stopping-holds-leader-lock"),
            ),
            ("master-stopping", fixture!("master-stopping")),
            (
                "new-leader-still-in-recovery-codes-503-200-200",
                fixture!("new-leader-still-in-recovery-codes-503-200-200"),
            ),
            (
                "new-leader-still-in-recovery",
                fixture!("new-leader-still-in-recovery"),
            ),
            ("primary-running", fixture!("primary-running")),
            ("replica-restarting", fixture!("replica-restarting")),
            (
                "replica-running-codes-503-503-503",
                fixture!("replica-running-codes-503-503-503"),
            ),
            ("replica-running", fixture!("replica-running")),
            ("replica-starting", fixture!("replica-starting")),
            ("replica-stopped", fixture!("replica-stopped")),
            ("replica-stopping", fixture!("replica-stopping")),
            ("replica-unknown", fixture!("replica-unknown")),
            (
                "uninitialized-creating-replica",
                fixture!("uninitialized-creating-replica"),
            ),
            (
                "uninitialized-initializing-new-cluster",
                fixture!("uninitialized-initializing-new-cluster"),
            ),
            ("uninitialized-stopped", fixture!("uninitialized-stopped")),
        ];
        for (name, body) in captured {
            let says = judge(200, body.as_bytes());
            match name {
                "primary-running" => assert_eq!(says, PatroniSays::Primary, "{name}"),
                _ => assert!(
                    matches!(says, PatroniSays::NotPrimary(_)),
                    "{name}: {says:?}"
                ),
            }
        }
        let stopping = judge(200, captured[3].1.as_bytes());
        let want = PatroniSays::NotPrimary("role master, state stopping".into());
        assert_eq!(stopping, want);
    }
}
