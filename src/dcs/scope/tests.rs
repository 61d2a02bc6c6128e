use super::*;

const VIP: &str = "192.0.2.60";

fn rules(role: Role) -> Rules {
    Rules {
        role,
        vip: VIP.into(),
        max_lag: Some(16 << 20),
        settle: Duration::from_secs(30),
        fallback: Fallback::Primary,
        skip_nofailover: false,
    }
}

fn record(role: &str, state: &str, pos: u64, tags: &str) -> String {
    format!(
        r#"{{"conn_url":"postgres://192.0.2.11:5432/postgres","api_url":"http://192.0.2.11:8008/patroni","state":"{state}","role":"{role}","version":"3.0.2","xlog_location":{pos},"timeline":1{tags}}}"#
    )
}

/// A scope of three members: node1 leads at position 100 MiB, node2 and node3 replicas.
fn three(role: Role) -> Scope {
    let mut s = Scope::new(rules(role), "/service/lab/leader", "node2");
    s.put("/service/lab/leader", b"node1", 7);
    s.put(
        "/service/lab/status",
        br#"{"optime":104857600,"slots":{}}"#,
        0,
    );
    s.put(
        "/service/lab/members/node1",
        record("master", "running", 104857600, "").as_bytes(),
        1,
    );
    s.put(
        "/service/lab/members/node2",
        record("replica", "running", 104857000, "").as_bytes(),
        2,
    );
    s.put(
        "/service/lab/members/node3",
        record("replica", "running", 104857600, "").as_bytes(),
        3,
    );
    s
}

fn holder(s: &mut Scope, now: Instant) -> Option<String> {
    match s.observe(now) {
        Observation::Leader(name) => Some(name),
        Observation::NoLeader => None,
        Observation::Unknown(why) => panic!("unknown: {why}"),
    }
}

/// The replica of node2 and node3 with the higher weight for VIP.
fn preferred() -> (&'static str, &'static str) {
    if weight(VIP, "node2") > weight(VIP, "node3") {
        ("node2", "node3")
    } else {
        ("node3", "node2")
    }
}

#[test]
fn the_weight_is_fixed_and_spreads() {
    // Part of the protocol between nodes: these values must never change.
    assert_eq!(weight("192.0.2.60", "node1"), weight("192.0.2.60", "node1"));
    assert_ne!(weight("192.0.2.60", "node1"), weight("192.0.2.60", "node2"));
    assert_ne!(weight("192.0.2.60", "node1"), weight("192.0.2.61", "node1"));
    // The separator keeps ("ab", "c") apart from ("a", "bc").
    assert_ne!(weight("ab", "c"), weight("a", "bc"));
    // Over many VIPs each of three members wins about a third.
    let mut wins = [0u32; 3];
    for i in 0..3000 {
        let vip = format!("198.51.100.{}/{i}", i % 256);
        let w: Vec<u64> = ["a", "b", "c"].iter().map(|m| weight(&vip, m)).collect();
        let best = (0..3).max_by_key(|&k| w[k]).unwrap();
        wins[best] += 1;
    }
    assert!(wins.iter().all(|&n| (850..1150).contains(&n)), "{wins:?}");
}

#[test]
fn a_replica_vip_sits_on_the_preferred_eligible_replica() {
    let now = Instant::now();
    let mut s = three(Role::Replica);
    let (first, _) = preferred();
    assert_eq!(holder(&mut s, now).as_deref(), Some(first));
    // The leader is never chosen, whatever its own record says.
    s.put(
        "/service/lab/members/node1",
        record("replica", "running", 104857600, "").as_bytes(),
        1,
    );
    assert_eq!(holder(&mut s, now).as_deref(), Some(first));
}

#[test]
fn lag_over_the_limit_moves_it_and_settle_delays_the_return() {
    let t0 = Instant::now();
    let mut s = three(Role::Replica);
    let (first, second) = preferred();
    assert_eq!(holder(&mut s, t0).as_deref(), Some(first));
    let key = format!("/service/lab/members/{first}");
    s.put(&key, record("replica", "running", 0, "").as_bytes(), 0);
    assert_eq!(holder(&mut s, t0).as_deref(), Some(second));
    // Back within the limit: not before replica-settle of continuous eligibility.
    s.put(
        &key,
        record("replica", "running", 104857600, "").as_bytes(),
        0,
    );
    let t1 = t0 + Duration::from_secs(1);
    assert_eq!(holder(&mut s, t1).as_deref(), Some(second));
    assert_eq!(
        holder(&mut s, t1 + Duration::from_secs(29)).as_deref(),
        Some(second)
    );
    // Lagging again within the settle period starts it over.
    s.put(&key, record("replica", "running", 0, "").as_bytes(), 0);
    assert_eq!(
        holder(&mut s, t1 + Duration::from_secs(29)).as_deref(),
        Some(second)
    );
    s.put(
        &key,
        record("replica", "running", 104857600, "").as_bytes(),
        0,
    );
    let t2 = t1 + Duration::from_secs(30);
    assert_eq!(holder(&mut s, t2).as_deref(), Some(second));
    assert_eq!(
        holder(&mut s, t2 + Duration::from_secs(30)).as_deref(),
        Some(first)
    );
}

#[test]
fn a_new_reader_agrees_at_once() {
    let now = Instant::now();
    let (mut a, mut b) = (three(Role::Replica), three(Role::Replica));
    assert_eq!(holder(&mut a, now), holder(&mut b, now));
}

#[test]
fn tags_roles_and_states_that_make_a_member_ineligible() {
    let now = Instant::now();
    let (first, second) = preferred();
    let key = format!("/service/lab/members/{first}");
    for (value, moves) in [
        (
            record(
                "replica",
                "running",
                104857600,
                r#","tags":{"noloadbalance":true}"#,
            ),
            true,
        ),
        (
            record(
                "replica",
                "running",
                104857600,
                r#","tags":{"noloadbalance":"true"}"#,
            ),
            true,
        ),
        (
            record(
                "replica",
                "running",
                104857600,
                r#","tags":{"noloadbalance":false}"#,
            ),
            false,
        ),
        (
            record(
                "replica",
                "running",
                104857600,
                r#","tags":{"nofailover":true}"#,
            ),
            false,
        ),
        (record("replica", "streaming", 104857600, ""), false),
        (record("replica", "starting", 104857600, ""), true),
        (record("replica", "stopped", 104857600, ""), true),
        (record("master", "running", 104857600, ""), true),
        (r#"{"role":"replica"}"#.to_string(), true),
        (r#"{"role":1,"state":"running"}"#.to_string(), true),
        (
            r#"{"role":"replica","state":"running","xlog_location":"x"}"#.to_string(),
            true,
        ),
        (
            r#"{"role":"replica","state":"running","xlog_location":-5}"#.to_string(),
            true,
        ),
        ("[]".to_string(), true),
        ("not json".to_string(), true),
        ("x".repeat(MAX_RECORD + 1), true),
    ] {
        let mut s = three(Role::Replica);
        s.put(&key, value.as_bytes(), 0);
        let want = if moves { second } else { first };
        assert_eq!(holder(&mut s, now).as_deref(), Some(want), "{value:.80}");
    }
    // nofailover counts with replica-skip-nofailover.
    let mut s = three(Role::Replica);
    s.rules.skip_nofailover = true;
    s.put(
        &key,
        record(
            "replica",
            "running",
            104857600,
            r#","tags":{"nofailover":true}"#,
        )
        .as_bytes(),
        0,
    );
    assert_eq!(holder(&mut s, now).as_deref(), Some(second));
}

#[test]
fn nobody_eligible_falls_back_to_the_primary_or_nowhere() {
    let now = Instant::now();
    let mut s = three(Role::Replica);
    for n in ["node2", "node3"] {
        s.put(
            &format!("/service/lab/members/{n}"),
            record("replica", "stopped", 0, "").as_bytes(),
            0,
        );
    }
    assert_eq!(holder(&mut s, now).as_deref(), Some("node1"));
    s.rules.fallback = Fallback::None;
    assert_eq!(holder(&mut s, now), None);
    // No leader either: nobody.
    s.rules.fallback = Fallback::Primary;
    s.delete("/service/lab/leader", false);
    assert_eq!(holder(&mut s, now), None);
}

#[test]
fn the_leader_position_from_status_or_optime() {
    let now = Instant::now();
    let (first, second) = preferred();
    let mut s = three(Role::Replica);
    // Without any position of the leader, a lag limit cannot be checked.
    s.delete("/service/lab/status", false);
    assert_eq!(holder(&mut s, now).as_deref(), Some("node1"));
    // Patroni before 2.1: optime/leader holds the position as text.
    let mut s = three(Role::Replica);
    s.delete("/service/lab/status", false);
    s.put("/service/lab/optime/leader", b"104857600", 0);
    assert_eq!(holder(&mut s, now).as_deref(), Some(first));
    // Without a limit, no position is needed.
    let mut s = three(Role::Replica);
    s.rules.max_lag = None;
    s.delete("/service/lab/status", false);
    s.put(
        &format!("/service/lab/members/{second}"),
        br#"{"role":"replica","state":"running"}"#,
        0,
    );
    assert_eq!(holder(&mut s, now).as_deref(), Some(first));
    // A negative lag (records up to loop_wait old) counts as none.
    let mut s = three(Role::Replica);
    s.put("/service/lab/status", br#"{"optime":1}"#, 0);
    assert_eq!(holder(&mut s, now).as_deref(), Some(first));
}

#[test]
fn sync_follows_the_sync_key() {
    let now = Instant::now();
    let mut s = three(Role::Sync);
    assert_eq!(
        holder(&mut s, now).as_deref(),
        Some("node1"),
        "no sync key: fallback"
    );
    s.put(
        "/service/lab/sync",
        br#"{"leader":"node1","sync_standby":"node3"}"#,
        0,
    );
    assert_eq!(holder(&mut s, now).as_deref(), Some("node3"));
    s.put(
        "/service/lab/sync",
        br#"{"leader":"node1","sync_standby":"node2"}"#,
        0,
    );
    assert_eq!(holder(&mut s, now).as_deref(), Some("node2"));
    s.put(
        "/service/lab/sync",
        br#"{"leader":"node1","sync_standby":"node2,node3"}"#,
        0,
    );
    assert_eq!(holder(&mut s, now).as_deref(), Some(preferred().0));
    // Becoming the synchronous standby is Patroni's choice, not lag noise: no settling.
    s.put(
        "/service/lab/sync",
        br#"{"leader":"node1","sync_standby":"node3"}"#,
        0,
    );
    assert_eq!(holder(&mut s, now).as_deref(), Some("node3"));
    s.put(
        "/service/lab/sync",
        br#"{"leader":"node1","sync_standby":null}"#,
        0,
    );
    s.rules.fallback = Fallback::None;
    assert_eq!(holder(&mut s, now), None);
}

#[test]
fn a_switchover_takes_the_new_leader_out() {
    let now = Instant::now();
    let (first, second) = preferred();
    let mut s = three(Role::Replica);
    s.put("/service/lab/leader", first.as_bytes(), 0);
    assert_eq!(holder(&mut s, now).as_deref(), Some(second));
}

#[test]
fn too_many_members_is_unknown_and_memory_stays_bounded() {
    let now = Instant::now();
    let mut s = three(Role::Replica);
    for i in 0..MAX_MEMBERS + 10 {
        s.put(
            &format!("/service/lab/members/m{i}"),
            record("replica", "running", 0, "").as_bytes(),
            0,
        );
    }
    assert!(s.members.len() <= MAX_MEMBERS);
    assert!(matches!(s.observe(now), Observation::Unknown(_)));
    s.clear();
    assert_eq!(holder(&mut s, now), None);
    // Vanished members are remembered only while it matters, and never beyond a bound.
    let mut s = three(Role::Replica);
    for round in 0..20 {
        s.clear();
        for i in 0..200 {
            let name = format!("/service/lab/members/r{round}-{i}");
            s.put(&name, record("replica", "stopped", 0, "").as_bytes(), 0);
        }
        s.observe(now);
    }
    assert!(
        s.settle.len() <= MAX_REMEMBERED + MAX_MEMBERS,
        "{}",
        s.settle.len()
    );
}

#[test]
fn keys_outside_the_scope_and_unneeded_keys_are_dropped() {
    let mut s = three(Role::Replica);
    let before = s.digest();
    s.put("/service/other/members/x", b"{}", 0);
    s.put("/service/lab/history", "[".repeat(1 << 20).as_bytes(), 0);
    s.put("/service/lab/config", b"{}", 0);
    s.put("/service/lab/members/a/b", b"{}", 0);
    assert_eq!(s.digest(), before);
    // Consul spells keys without the leading slash.
    s.put("service/lab/leader", b"node3", 0);
    assert!(s.digest().contains("node3"));
    assert_eq!(s.prefix(true), "/service/lab/");
    assert_eq!(s.prefix(false), "service/lab/");
    // etcd v2 deletes a directory with its keys, the scope's own included.
    s.delete("/service/lab/members", true);
    assert!(s.members.is_empty());
    s.delete("/service/lab", true);
    assert_eq!(s.leader, None);
}

#[test]
fn my_lease_is_my_member_records() {
    let s = three(Role::Replica);
    assert_eq!(s.my_lease(), 2);
}

#[test]
fn lag_values_in_patronis_style() {
    assert_eq!(parse_lag("16MB"), Some(16 << 20));
    assert_eq!(parse_lag("16 MB"), Some(16 << 20));
    assert_eq!(parse_lag("1048576"), Some(1 << 20));
    assert_eq!(parse_lag("100kB"), Some(100 << 10));
    assert_eq!(parse_lag("1GB"), Some(1 << 30));
    assert_eq!(parse_lag("0"), Some(0));
    for bad in [
        "",
        "MB",
        "-1",
        "1.5MB",
        "16XB",
        "99999999999999999999",
        "17000000TB",
    ] {
        assert_eq!(parse_lag(bad), None, "{bad:?}");
    }
}

#[test]
fn patroni_cluster_replies() {
    let now = Instant::now();
    let body = br#"{"members":[
        {"name":"node1","role":"leader","state":"running","api_url":"http://192.0.2.11:8008/patroni","host":"192.0.2.11","port":5432,"timeline":1},
        {"name":"node2","role":"sync_standby","state":"streaming","host":"192.0.2.12","port":5432,"timeline":1,"lag":0},
        {"name":"node3","role":"replica","state":"running","host":"192.0.2.13","port":5432,"timeline":1,"lag":"unknown"}
    ],"scope":"lab"}"#;
    let mut s = Scope::new(rules(Role::Replica), "/cluster", "node2");
    s.load_cluster(body).unwrap();
    assert_eq!(
        holder(&mut s, now).as_deref(),
        Some("node2"),
        "node3's lag is unknown"
    );
    let mut s = Scope::new(rules(Role::Sync), "/cluster", "node2");
    s.load_cluster(body).unwrap();
    assert_eq!(holder(&mut s, now).as_deref(), Some("node2"));
    for bad in [&b"{}"[..], b"[]", b"not json", br#"{"members":{}}"#] {
        assert!(s.load_cluster(bad).is_err());
    }
}

/// The scope of a range reply captured from Patroni 3.0.2 on etcd 3.4
/// (tests/fixtures/scope/, tests/accept/capture-scope.sh), put in key by key.
fn captured(file: &str, role: Role, me: &str) -> Scope {
    let path = format!("{}/tests/fixtures/scope/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let reply: Value = serde_json::from_str(&text).unwrap();
    let mut s = Scope::new(rules(role), "/service/lab/leader", me);
    for kv in reply["kvs"].as_array().unwrap() {
        let key = crate::base64::decode(kv["key"].as_str().unwrap()).unwrap();
        let value = crate::base64::decode(kv["value"].as_str().unwrap_or("")).unwrap();
        let lease = kv["lease"].as_str().map_or(0, |l| l.parse().unwrap());
        s.put(std::str::from_utf8(&key).unwrap(), &value, lease);
    }
    s
}

fn fixture(file: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/scope/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn captured_scopes_of_patroni_3_0_2() {
    let now = Instant::now();
    // After bootstrap: node3 leads, node1 and node2 are running replicas.
    let mut s = captured("etcd3-range.json", Role::Replica, "node1");
    assert_eq!(s.leader.as_deref(), Some("node3"));
    assert_eq!(s.status_pos, Some(67108864));
    let want = if weight(VIP, "node1") > weight(VIP, "node2") {
        "node1"
    } else {
        "node2"
    };
    assert_eq!(holder(&mut s, now).as_deref(), Some(want));
    assert_ne!(
        s.my_lease(),
        0,
        "Patroni's member keys carry a lease on etcd v3"
    );
    for name in ["node1", "node2", "node3"] {
        let (record, _) = &s.members[name];
        let m = record.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
        let leader = name == "node3";
        assert_eq!(m.role, if leader { "master" } else { "replica" }, "{name}");
        assert_eq!(m.state, "running");
        assert!(
            matches!(m.lag, Lag::Position(67108864)),
            "{name}: {:?}",
            m.lag
        );
    }
    // Synchronous mode after a switchover to node1: the sync key names node3.
    let mut s = captured("etcd3-sync-range.json", Role::Sync, "node3");
    assert_eq!(s.sync, ["node3"]);
    assert_eq!(holder(&mut s, now).as_deref(), Some("node3"));
    // node3 restarted with nofailover and noloadbalance: never a replica VIP's holder,
    // and Patroni made node2 the synchronous standby.
    let mut s = captured("etcd3-tags-range.json", Role::Replica, "node3");
    let (record, _) = &s.members["node3"];
    let m = record.as_ref().unwrap();
    assert!(m.noloadbalance && m.nofailover);
    assert_eq!(holder(&mut s, now).as_deref(), Some("node2"));
    let mut s = captured("etcd3-tags-range.json", Role::Sync, "node3");
    assert_eq!(holder(&mut s, now).as_deref(), Some("node2"));
}

#[test]
fn captured_cluster_replies_of_patroni_3_0_2() {
    let now = Instant::now();
    let mut s = Scope::new(rules(Role::Replica), "/cluster", "node1");
    s.load_cluster(&fixture("cluster.json")).unwrap();
    assert_eq!(s.leader.as_deref(), Some("node3"));
    let want = if weight(VIP, "node1") > weight(VIP, "node2") {
        "node1"
    } else {
        "node2"
    };
    assert_eq!(holder(&mut s, now).as_deref(), Some(want));
    let mut s = Scope::new(rules(Role::Sync), "/cluster", "node1");
    s.load_cluster(&fixture("cluster-sync.json")).unwrap();
    assert_eq!(holder(&mut s, now).as_deref(), Some("node3"));
    let mut s = Scope::new(rules(Role::Replica), "/cluster", "node1");
    s.load_cluster(&fixture("cluster-tags.json")).unwrap();
    assert_eq!(holder(&mut s, now).as_deref(), Some("node2"));
    s.load_cluster(&fixture("cluster-etcd2.json")).unwrap();
    assert!(matches!(s.observe(now), Observation::Leader(_)));
}

#[test]
fn every_captured_member_record_parses() {
    let dir = format!("{}/tests/fixtures/scope", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for sub in ["etcd3", "etcd3-sync", "etcd3-tags"] {
        for entry in std::fs::read_dir(format!("{dir}/{sub}/members")).unwrap() {
            let value = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(
                parse_member(&value).is_ok(),
                "{}",
                String::from_utf8_lossy(&value)
            );
            n += 1;
        }
    }
    assert!(n >= 9, "{n} records");
}
