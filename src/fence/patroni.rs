//! This node's Patroni, asked whether its PostgreSQL is a running primary:
//! `GET <patroni-url>/patroni`, judged by the body's `role` and `state`.
//!
//! The status code says too little: Patroni 3.0 answers `GET /primary` (and `/leader`)
//! with 200 as soon as the node holds the leader lock, before PostgreSQL has left
//! recovery. The body's `role` is `replica` until the promotion is done, then
//! `master` (Patroni 3.0) or `primary` (3.1 and later); a standby cluster's leader is
//! `standby_leader`. `state` is `running` once PostgreSQL accepts connections.
//!
//! A replica or sync VIP asks its own question: does this node run a replica that
//! serves reads (`role` `replica`, `state` `running` or `streaming`)? A node that was
//! promoted, or whose PostgreSQL stopped, answers no, and the VIP goes.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::dcs::http::Tls;
use crate::dcs::http::conn::{Connection, Request};
use crate::dcs::scope::Role;
use crate::decide::PatroniSays;

/// The roles in which this node's PostgreSQL serves the cluster's writes (a standby
/// cluster's leader serves its reads: the VIP belongs to it all the same).
const PRIMARY_ROLES: [&str; 3] = ["master", "primary", "standby_leader"];

/// The roles and states in which this node serves a replica VIP's reads.
const REPLICA_ROLES: [&str; 3] = ["replica", "sync_standby", "quorum_standby"];
const REPLICA_STATES: [&str; 2] = ["running", "streaming"];

/// Whether `role` and `state` serve a VIP of `vip_role`.
fn serves(vip_role: Role, role: &str, state: &str) -> bool {
    match vip_role {
        Role::Primary => PRIMARY_ROLES.contains(&role) && state == "running",
        Role::Replica | Role::Sync => {
            REPLICA_ROLES.contains(&role) && REPLICA_STATES.contains(&state)
        }
    }
}

/// Judge a reply to `GET /patroni` by its body, whatever its status: a body that is
/// not Patroni's JSON does not serve (something answered, and it is not a primary, or
/// a replica, that says so).
pub fn judge(status: u16, body: &[u8], vip_role: Role) -> PatroniSays {
    let field = |v: &Value, name: &str| v.get(name).and_then(Value::as_str).map(str::to_owned);
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let (role, state) = match parsed.as_ref() {
        Some(v) => (field(v, "role"), field(v, "state")),
        None => (None, None),
    };
    match (role, state) {
        (Some(role), Some(state)) if serves(vip_role, &role, &state) => PatroniSays::Serves,
        (Some(role), Some(state)) => PatroniSays::NotServing(format!(
            "role {}, state {}",
            crate::dcs::http::server_text(role.as_bytes()),
            crate::dcs::http::server_text(state.as_bytes())
        )),
        _ => PatroniSays::NotServing(format!(
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
    role: Role,
}

impl Patroni {
    pub fn new(patroni_url: &str, interval: Duration, tls: &Tls, role: Role) -> Patroni {
        let url = format!("{}/patroni", patroni_url.trim_end_matches('/'));
        Patroni {
            conn: Connection::new(&url, interval, tls),
            url,
            role,
        }
    }
}

impl AskPatroni for Patroni {
    fn ask(&mut self, deadline: Instant) -> PatroniSays {
        match self.conn.request(&Request::get(&[], &[]), deadline) {
            Ok(reply) => judge(reply.status, &reply.body, self.role),
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
                judge(200, body(role, "running").as_bytes(), Role::Primary),
                PatroniSays::Serves
            );
            assert_eq!(
                judge(503, body(role, "running").as_bytes(), Role::Primary),
                PatroniSays::Serves
            );
        }
        let not = |role: &str, state: &str| {
            PatroniSays::NotServing(format!("role {role}, state {state}"))
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
            assert_eq!(
                judge(200, body(role, state).as_bytes(), Role::Primary),
                not(role, state)
            );
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
            match judge(status, text.as_bytes(), Role::Primary) {
                PatroniSays::NotServing(why) => {
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
            let says = judge(200, body.as_bytes(), Role::Primary);
            match name {
                "primary-running" => assert_eq!(says, PatroniSays::Serves, "{name}"),
                _ => assert!(
                    matches!(says, PatroniSays::NotServing(_)),
                    "{name}: {says:?}"
                ),
            }
        }
        // A replica VIP: kept by a running replica only, never by the primary or a
        // stopped, starting or restarting node.
        for (name, body) in captured {
            let says = judge(200, body.as_bytes(), Role::Replica);
            let serves = [
                "replica-running",
                "replica-running-codes-503-503-503",
                // Holds the lock but still replays: still a replica to its clients.
                "new-leader-still-in-recovery",
                "new-leader-still-in-recovery-codes-503-200-200",
            ];
            match serves.contains(&name) {
                true => assert_eq!(says, PatroniSays::Serves, "{name}"),
                false => assert!(
                    matches!(says, PatroniSays::NotServing(_)),
                    "{name}: {says:?}"
                ),
            }
            assert_eq!(says, judge(200, body.as_bytes(), Role::Sync), "{name}");
        }
        let stopping = judge(200, captured[3].1.as_bytes(), Role::Primary);
        let want = PatroniSays::NotServing("role master, state stopping".into());
        assert_eq!(stopping, want);
    }
}
