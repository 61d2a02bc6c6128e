//! A replica VIP with etcd's v2 keys API (Patroni's `etcd:` section): the client reads
//! Patroni's whole scope recursively from Debian's real etcd 3.4 (`--enable-v2`), on the
//! loopback of a network namespace the test makes, and waits on the directory.
//!
//! Needs root and etcd (the lab's gate: it fails without them, unless VIPD_ALLOW_SKIP=1).

use std::time::{Duration, Instant};

use crate::common::scope::{MAX_LAG, POS, member, replica_rules, replicas_by_weight};
use crate::common::*;
use vipd::dcs::etcd::Settings;
use vipd::dcs::etcd2::Etcd2;
use vipd::dcs::http::Tls;
use vipd::dcs::scope::{Fallback, Scope};
use vipd::dcs::{Dcs, Observation, Wait};

const VIP: &str = "192.0.2.50";
const LEADER_KEY: &str = "/service/lab/leader";

/// etcd's v2 keys API as Patroni's v2 client writes it (form-encoded PUT, DELETE);
/// called inside the namespace.
struct V2 {
    agent: ureq::Agent,
    base: String,
}

impl V2 {
    fn new(endpoint: &str) -> V2 {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .build();
        V2 {
            agent: ureq::Agent::new_with_config(config),
            base: format!("{endpoint}/v2/keys/service/lab"),
        }
    }

    fn set(&self, rel: &str, value: &str, ttl: Option<u32>) {
        let url = format!("{}/{rel}", self.base);
        let ttl = ttl.map(|t| t.to_string());
        let mut form = vec![("value", value)];
        form.extend(ttl.as_deref().map(|t| ("ttl", t)));
        self.agent
            .put(&url)
            .send_form(form)
            .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
    }

    fn delete(&self, rel: &str) {
        let url = format!("{}/{rel}", self.base);
        self.agent
            .delete(&url)
            .call()
            .unwrap_or_else(|e| panic!("DELETE {url}: {e}"));
    }

    /// node1 leads, node2 and node3 replicate without lag; records and leader with
    /// Patroni's 30 s TTL.
    fn patroni_scope(&self) {
        self.set("members/node1", &member(1, "master", POS), Some(30));
        self.set("members/node2", &member(2, "replica", POS), Some(30));
        self.set("members/node3", &member(3, "replica", POS), Some(30));
        self.set("leader", "node1", Some(30));
        self.set("status", r#"{"optime":50331808,"slots":{}}"#, None);
        self.set("initialize", "7241234567890123456", None);
    }
}

fn client(endpoint: &str, me: &str) -> Etcd2 {
    let rules = replica_rules(VIP, Fallback::None);
    Etcd2::new(&Settings {
        endpoints: vec![endpoint.to_string()],
        key: LEADER_KEY.into(),
        credentials: None,
        interval: Duration::from_millis(500),
        watch: true,
        check_interval: Duration::from_millis(500),
        tls: Tls::default(),
        scope: Some(Scope::new(rules, LEADER_KEY, me)),
    })
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(3)
}

/// The next change a wait reports, within `bound` (at most 10 waits).
fn next_change(c: &mut Etcd2, bound: Duration) -> Option<Observation> {
    let end = Instant::now() + bound;
    for _ in 0..10 {
        match c.wait_for_change(end) {
            Some(Wait::Changed(obs)) => return Some(obs),
            Some(Wait::Reread) => panic!("the wait broke"),
            _ if Instant::now() >= end => return None,
            _ => {}
        }
    }
    None
}

/// A lab with etcd serving the v2 API on the node's 127.0.0.1:2379.
fn etcd_lab() -> (NodeLab, Etcd) {
    let lab = NodeLab::new();
    let extra = format!("{FAST_ELECTIONS} --enable-v2");
    let etcd = Etcd::start_with(&lab.node, &lab.lab, "http://127.0.0.1:2379", &extra, &[]);
    (lab, etcd)
}

#[test]
fn the_scope_is_read_and_followed_through_v2() {
    gate!(Etcd);
    let (lab, etcd) = etcd_lab();
    let (holder, other) = replicas_by_weight(VIP);
    let n = holder.as_bytes()[4] - b'0';
    let holder_key = format!("members/{holder}");
    in_netns(&lab.node.name, || {
        let v2 = V2::new(&etcd.endpoint);
        let mut c = client(&etcd.endpoint, holder);
        // No directory yet: nobody, and no bound.
        assert_eq!(c.observe(soon()), Observation::NoLeader);
        assert_eq!(c.lease_bound(), None);
        v2.patroni_scope();
        let asked = Instant::now();
        assert_eq!(c.observe(soon()), Observation::Leader(holder.into()));
        // The bound is this node's own record's TTL (30 s, one second less).
        let bound = c
            .lease_bound()
            .expect("a bound from the member record's ttl");
        let left = bound.saturating_duration_since(asked);
        assert!(
            left > Duration::from_secs(25) && left <= Duration::from_secs(30),
            "{left:?}"
        );

        // The holder falls behind: the other replica, from the recursive wait.
        v2.set(
            &holder_key,
            &member(n, "replica", POS - 2 * MAX_LAG),
            Some(30),
        );
        let bound = Duration::from_secs(3);
        assert_eq!(
            next_change(&mut c, bound),
            Some(Observation::Leader(other.into()))
        );
        v2.set(&holder_key, &member(n, "replica", POS), Some(30));
        assert_eq!(
            next_change(&mut c, bound),
            Some(Observation::Leader(holder.into()))
        );

        // Patroni's history over a key read's bound, in an event and in a read.
        let entry =
            r#"[1,50331808,"no recovery target specified","2026-12-03T12:00:00+00:00","node1"]"#;
        let history = format!("[{}]", vec![entry; 2000].join(","));
        assert!(
            history.len() > vipd::dcs::http::MAX_REPLY,
            "{}",
            history.len()
        );
        v2.set("history", &history, None);
        assert_eq!(
            next_change(&mut c, bound),
            Some(Observation::Leader(holder.into()))
        );
        assert_eq!(c.observe(soon()), Observation::Leader(holder.into()));

        // Its record deleted: the other one, and no bound for this node any more.
        v2.delete(&holder_key);
        assert_eq!(
            next_change(&mut c, bound),
            Some(Observation::Leader(other.into()))
        );
        assert_eq!(c.lease_bound(), None);
        // Back with a TTL of 1 s that runs out (etcd's `expire` event).
        v2.set(&holder_key, &member(n, "replica", POS), Some(1));
        assert_eq!(
            next_change(&mut c, bound),
            Some(Observation::Leader(holder.into()))
        );
        let expired = next_change(&mut c, Duration::from_secs(5));
        assert_eq!(expired, Some(Observation::Leader(other.into())));
        assert_eq!(c.observe(soon()), Observation::Leader(other.into()));
    });
}

#[test]
fn a_removed_scope_directory_is_nobody() {
    gate!(Etcd);
    let (lab, etcd) = etcd_lab();
    let (holder, _) = replicas_by_weight(VIP);
    // Another cluster's scope, which is none of this one's business.
    etcd.v2(&["set", "/service/other/leader", "node9"]);
    in_netns(&lab.node.name, || {
        let v2 = V2::new(&etcd.endpoint);
        v2.patroni_scope();
        let mut c = client(&etcd.endpoint, "node1");
        assert_eq!(c.observe(soon()), Observation::Leader(holder.into()));
        // The whole directory, as `patronictl remove` does: one event for it.
        let url = format!("{}?recursive=true", v2.base);
        v2.agent.delete(&url).call().expect("DELETE the scope");
        let removed = next_change(&mut c, Duration::from_secs(3));
        assert_eq!(removed, Some(Observation::NoLeader));
        assert_eq!(c.observe(soon()), Observation::NoLeader);
        assert_eq!(c.lease_bound(), None);
    });
}

/// `dcs-type etcd` with a replica VIP: the scope exists only in v2, so v2 is followed;
/// with no eligible member (fallback none) it stays there rather than going back to v3,
/// whose scope does not exist; and a scope written to v3 wins.
#[test]
fn either_api_follows_where_the_scope_exists() {
    use vipd::dcs::etcd_any::{Api, EtcdAny, Mode};
    gate!(Etcd);
    let (lab, etcd) = etcd_lab();
    let (holder, _) = replicas_by_weight(VIP);
    let rules = replica_rules(VIP, Fallback::None);
    let settings = Settings {
        endpoints: vec![etcd.endpoint.clone()],
        key: LEADER_KEY.into(),
        credentials: None,
        interval: Duration::from_millis(500),
        watch: true,
        check_interval: Duration::from_millis(500),
        tls: Tls::default(),
        scope: Some(Scope::new(rules, LEADER_KEY, "node2")),
    };
    in_netns(&lab.node.name, || {
        let v2 = V2::new(&etcd.endpoint);
        v2.patroni_scope();
        let mut c = EtcdAny::new(&settings, Mode::Either);
        assert_eq!(c.observe(soon()), Observation::Leader(holder.into()));
        assert_eq!(c.following(), Api::V2);
        // Nobody eligible: no holder, but the scope is still in v2.
        for n in [2, 3] {
            v2.set(
                &format!("members/node{n}"),
                &member(n, "replica", 0),
                Some(30),
            );
        }
        assert_eq!(c.observe(soon()), Observation::NoLeader);
        assert_eq!(c.following(), Api::V2);
    });
    // A scope in v3 wins, even with no eligible member there while v2 has a holder.
    for n in [1u8, 2, 3] {
        let (role, pos) = if n == 1 {
            ("master", POS)
        } else {
            ("replica", 0)
        };
        etcd.put(
            &format!("/service/lab/members/node{n}"),
            &member(n, role, pos),
        );
    }
    etcd.put("/service/lab/status", r#"{"optime":50331808,"slots":{}}"#);
    etcd.put(LEADER_KEY, "node1");
    in_netns(&lab.node.name, || {
        V2::new(&etcd.endpoint).patroni_scope();
        let mut c = EtcdAny::new(&settings, Mode::Either);
        assert_eq!(c.observe(soon()), Observation::NoLeader);
        assert_eq!(c.following(), Api::V3);
    });
    etcd.put("/service/lab/members/node2", &member(2, "replica", POS));
    etcd.put("/service/lab/members/node3", &member(3, "replica", POS));
    in_netns(&lab.node.name, || {
        let mut c = EtcdAny::new(&settings, Mode::Either);
        assert_eq!(c.observe(soon()), Observation::Leader(holder.into()));
        assert_eq!(c.following(), Api::V3);
    });
}
