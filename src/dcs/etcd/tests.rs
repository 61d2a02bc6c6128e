//! The etcd v3 reply parsers on the byte shapes etcd 3.4.23 sent.

use super::reply::key_body;
use super::*;
use crate::dcs::http::Tls;
use crate::dcs::scope::weight;

const KEY: &[u8] = b"/service/demo/leader";

// Bodies as Debian's etcd 3.4.23 sent them, captured with
// `curl -s -XPOST http://127.0.0.1:23790/v3/kv/range -d '{"key":"L3Nl…"}'` after
// `etcdctl put /service/demo/leader node1` and after `etcdctl del …`.
const RANGE_HIT: &str = r#"{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"2","raft_term":"2"},"kvs":[{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","create_revision":"2","mod_revision":"2","version":"1","value":"bm9kZTE="}],"count":"1"}"#;
const RANGE_MISS: &str = r#"{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"3","raft_term":"2"}}"#;
// The shape DESIGN.md records for a member without quorum (with hasleader).
const NO_LEADER: &str =
    r#"{"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14}"#;

#[test]
fn range_with_value() {
    let r = parse_range(RANGE_HIT.as_bytes(), KEY).unwrap();
    assert_eq!(
        r,
        Range {
            revision: 2,
            value: Some("node1".into()),
            lease: 0
        }
    );
}

#[test]
fn range_of_missing_key_is_no_value() {
    let r = parse_range(RANGE_MISS.as_bytes(), KEY).unwrap();
    assert_eq!(
        r,
        Range {
            revision: 3,
            value: None,
            lease: 0
        }
    );
    let empty_list = r#"{"header":{"revision":"7"},"kvs":[]}"#;
    assert_eq!(parse_range(empty_list.as_bytes(), KEY).unwrap().value, None);
}

#[test]
fn empty_value_is_omitted_by_the_gateway() {
    let body = r#"{"header":{"revision":"9"},"kvs":[{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","mod_revision":"9"}],"count":"1"}"#;
    assert_eq!(
        parse_range(body.as_bytes(), KEY).unwrap().value,
        Some(String::new())
    );
}

#[test]
fn etcd_errors() {
    assert_eq!(
        parse_range(NO_LEADER.as_bytes(), KEY),
        Err(ReplyError::Etcd {
            code: 14,
            message: "etcdserver: no leader".into(),
            v2: false
        })
    );
    // Captured: a range with `Authorization: Bearer <token>` (3.4 wants the raw token).
    let unauth = r#"{"error":"etcdserver: invalid auth token","message":"etcdserver: invalid auth token","code":16}"#;
    assert!(matches!(
        parse_range(unauth.as_bytes(), KEY),
        Err(ReplyError::Etcd { code: 16, .. })
    ));
}

#[test]
fn malformed_replies_are_errors_not_panics() {
    let cases = [
        "",
        "not json",
        "[]",
        "{}",
        r#"{"header":{}}"#,
        r#"{"header":{"revision":"x"}}"#,
        r#"{"header":{"revision":"1"},"kvs":{}}"#,
        r#"{"header":{"revision":"1"},"kvs":[{}]}"#,
        r#"{"header":{"revision":"1"},"kvs":[{"key":"!!!!","value":"bm9kZTE="}]}"#,
        r#"{"header":{"revision":"1"},"kvs":[{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","value":"bm9kZTE"}]}"#,
        r#"{"header":{"revision":"1"},"kvs":[{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","value":7}]}"#,
        r#"{"header":{"revision":"1"},"kvs":[{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","value":"//79"}]}"#,
        r#"{"header":{"revision":"1"},"kvs":[{"key":"b3RoZXI=","value":"bm9kZTE="}]}"#,
    ];
    for body in cases {
        assert!(
            matches!(
                parse_range(body.as_bytes(), KEY),
                Err(ReplyError::Malformed(_))
            ),
            "body {body:?}"
        );
    }
}

#[test]
fn api_prefix_by_version() {
    let v =
        |s: &str| api_prefix(format!(r#"{{"etcdserver":"{s}","etcdcluster":"3.4.0"}}"#).as_bytes());
    assert_eq!(v("3.4.23"), Some("/v3"));
    assert_eq!(v("3.5.9"), Some("/v3"));
    assert_eq!(v("3.6.0"), Some("/v3"));
    assert_eq!(v("3.3.27"), Some("/v3beta"));
    assert_eq!(v("3.2.32"), Some("/v3alpha"));
    assert_eq!(v("2.3.8"), None);
    assert_eq!(v("garbage"), None);
    assert_eq!(api_prefix(b"{}"), None);
}

#[test]
fn auth_token() {
    // Captured from etcd 3.4.23 with auth enabled.
    let good = r#"{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"3","raft_term":"2"},"token":"BbaDiwEqrmZmPfGo.12"}"#;
    assert_eq!(
        parse_auth(good.as_bytes()),
        Ok("BbaDiwEqrmZmPfGo.12".into())
    );
    let bad = r#"{"error":"etcdserver: authentication failed, invalid user ID or password","message":"etcdserver: authentication failed, invalid user ID or password","code":3}"#;
    assert!(matches!(
        parse_auth(bad.as_bytes()),
        Err(ReplyError::Etcd { code: 3, .. })
    ));
    assert!(parse_auth(b"{}").is_err());
}

// The stream etcd 3.4.23 sent for `curl -N -XPOST …/v3/watch -d
// '{"create_request":{"key":…,"start_revision":"3"}}'` after puts of node1..node3
// and a delete, then for a start revision below `etcdctl compact 4`.
const WATCH_CREATED: &str = r#"{"result":{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"4","raft_term":"2"},"created":true}}"#;
const WATCH_PUTS: &str = r#"{"result":{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"4","raft_term":"2"},"events":[{"kv":{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","create_revision":"2","mod_revision":"3","version":"2","value":"bm9kZTI="}},{"kv":{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","create_revision":"2","mod_revision":"4","version":"3","value":"bm9kZTM="}}]}}"#;
const WATCH_DELETE: &str = r#"{"result":{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"5","raft_term":"2"},"events":[{"type":"DELETE","kv":{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","mod_revision":"5"}}]}}"#;
const WATCH_COMPACTED: &str = r#"{"result":{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","raft_term":"2"},"canceled":true,"compact_revision":"4"}}"#;

#[test]
fn watch_lines() {
    let p = |l: &str| parse_watch_line(l.as_bytes(), KEY).unwrap();
    assert_eq!(p(WATCH_CREATED), WatchLine::Created);
    assert_eq!(
        p(WATCH_PUTS),
        WatchLine::Changed {
            value: Some("node3".into()),
            revision: 4,
            lease: 0
        },
        "the last event wins"
    );
    assert_eq!(
        p(WATCH_DELETE),
        WatchLine::Changed {
            value: None,
            revision: 5,
            lease: 0
        }
    );
    assert!(
        matches!(p(WATCH_COMPACTED), WatchLine::Canceled(why) if why.contains("compact_revision 4"))
    );
    let err = r#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}"#;
    assert_eq!(p(err), WatchLine::Error("etcdserver: no leader".into()));
    let unary = r#"{"error":"illegal base64 data at input byte 0","message":"illegal base64 data at input byte 0","code":2}"#;
    assert_eq!(
        p(unary),
        WatchLine::Error("illegal base64 data at input byte 0".into())
    );
    let other_key = r#"{"result":{"header":{"revision":"9"},"events":[{"kv":{"key":"b3RoZXI=","value":"eA=="}}]}}"#;
    assert_eq!(p(other_key), WatchLine::Other);
}

#[test]
fn malformed_watch_lines_are_errors() {
    for line in [
        "",
        "{",
        "[]",
        r#"{"result":{"events":{}}}"#,
        r#"{"result":{"events":[{}]}}"#,
        r#"{"result":{"events":[{"kv":{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","value":"***"}}]}}"#,
    ] {
        assert!(parse_watch_line(line.as_bytes(), KEY).is_err(), "{line:?}");
    }
}

#[test]
fn range_body_names_the_key() {
    assert_eq!(
        key_body(KEY, false),
        r#"{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI="}"#
    );
    assert_eq!(
        key_body(KEY, true),
        r#"{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","serializable":true}"#
    );
}

#[test]
fn error_statuses_quote_a_plain_text_body() {
    let not_json = parse_range(b"404 page not found\n", KEY).unwrap_err();
    assert_eq!(
        status_error(404, b"404 page not found\n", &not_json),
        "HTTP 404: \"404 page not found\""
    );
    // etcd 3.4's words to a client certificate with a CommonName, and what to do.
    let common_name = b"CommonName of client sending a request against gateway will be \
        ignored and not used as expected\n";
    let text = status_error(400, common_name, &parse_auth(common_name).unwrap_err());
    assert!(
        text.starts_with("HTTP 400: \"CommonName of client sending a request against gateway")
            && text.ends_with("or password authentication without client certificates)"),
        "{text}"
    );
    let object = parse_range(NO_LEADER.as_bytes(), KEY).unwrap_err();
    assert_eq!(
        status_error(503, NO_LEADER.as_bytes(), &object),
        "HTTP 503: etcd error 14: etcdserver: no leader"
    );
    let shape = parse_range(b"{}", KEY).unwrap_err();
    assert_eq!(
        status_error(500, b"{}", &shape),
        "HTTP 500: malformed reply: no header"
    );
}

fn client(endpoint: &str) -> Etcd {
    Etcd::new(&Settings {
        endpoints: vec![endpoint.into()],
        key: "/service/demo/leader".into(),
        credentials: None,
        interval: Duration::from_secs(1),
        watch: true,
        check_interval: Duration::from_secs(3),
        tls: Tls::default(),
        scope: None,
    })
}

fn at(value: &str, revision: i64) -> Range {
    Range {
        revision,
        value: Some(value.into()),
        lease: 0,
    }
}

// What etcd 3.4.23 sent for a key put with a lease, then for `lease/timetolive` while
// the lease lived and after it was revoked.
const RANGE_LEASED: &str = r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"3","raft_term":"2"},"kvs":[{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","create_revision":"3","mod_revision":"3","version":"1","value":"bm9kZTE=","lease":"4111120395265511891"}],"count":"1"}"#;
const WATCH_LEASED: &str = r#"{"result":{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"3","raft_term":"2"},"events":[{"kv":{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","create_revision":"3","mod_revision":"3","version":"1","value":"bm9kZTE=","lease":"4111120395265511891"}}]}}"#;
const TTL_ALIVE: &str = r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"3","raft_term":"2"},"ID":"4111120395265511891","TTL":"29","grantedTTL":"30"}"#;
const TTL_GONE: &str = r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"4","raft_term":"2"},"ID":"4111120395265511891","TTL":"-1"}"#;

#[test]
fn leases_in_reads_events_and_time_to_live() {
    use super::lease::{bound, parse_ttl};
    const ID: i64 = 4111120395265511891;
    assert_eq!(parse_range(RANGE_LEASED.as_bytes(), KEY).unwrap().lease, ID);
    match parse_watch_line(WATCH_LEASED.as_bytes(), KEY).unwrap() {
        WatchLine::Changed { lease, .. } => assert_eq!(lease, ID),
        other => panic!("{other:?}"),
    }
    assert_eq!(parse_ttl(TTL_ALIVE.as_bytes()), Ok(29));
    assert_eq!(parse_ttl(TTL_GONE.as_bytes()), Ok(-1));
    assert!(parse_ttl(b"{}").is_err());
    // Perhaps rounded up: a second less; gone or at its last second: now.
    let t0 = Instant::now();
    assert_eq!(bound(t0, 29), t0 + Duration::from_secs(28));
    for ttl in [1, 0, -1, i64::MIN] {
        assert_eq!(bound(t0, ttl), t0, "{ttl}");
    }
    // A new lease (another leader, or none) makes the bound unknown.
    let mut e = client("http://192.0.2.1:2379");
    e.lease_seen(ID);
    e.lease_bound = Some(t0);
    e.lease_seen(ID);
    assert_eq!(e.lease_bound, Some(t0));
    e.lease_seen(0);
    assert_eq!((e.lease, e.lease_bound), (0, None));
}

#[test]
fn a_healthy_watch_is_trusted_until_the_check_interval() {
    let (t0, s) = (Instant::now(), Duration::from_secs(1));
    let ms = Duration::from_millis;
    let look = |healthy, fact, now| {
        next_look(
            healthy,
            Some(t0),
            Some(t0 + ms(fact)),
            t0 + ms(now),
            3 * s,
            s,
        )
    };
    for now in [0, 1000, 2000, 2749] {
        assert_eq!(look(true, 0, now), Look::Remembered, "{now} ms");
    }
    // Due at the third turn even when it comes a little early; counted from etcd's
    // last answer (a probe or an event), not from the last read.
    for now in [2750, 3000, 20_000] {
        assert_eq!(look(true, 0, now), Look::Probe, "{now} ms");
    }
    assert_eq!(look(true, 2000, 4000), Look::Remembered);
    assert_eq!(look(true, 2000, 4750), Look::Probe);
    // The key itself every tenth check (30 s), whatever answered in between.
    for (fact, now) in [(0, 29_750), (29_000, 29_750), (0, 60_000)] {
        assert_eq!(look(true, fact, now), Look::Confirm, "{fact}, {now} ms");
    }
    // Any doubt (no created watch, a failed check or contradicting read): a fresh read.
    for now in [0, 1000, 5000] {
        assert_eq!(look(false, 0, now), Look::Read, "{now} ms");
    }
    assert_eq!(next_look(true, None, Some(t0), t0, 3 * s, s), Look::Read);
    assert_eq!(next_look(true, Some(t0), None, t0, 3 * s, s), Look::Read);
    // A check interval of one turn checks every turn.
    assert_eq!(
        next_look(true, Some(t0), Some(t0), t0 + s, s, s),
        Look::Probe
    );
}

#[test]
fn a_confirming_read_keeps_an_agreeing_state_and_doubts_the_rest() {
    let mut e = client("http://192.0.2.1:2379");
    let pg1 = Observation::Leader("pg1".into());
    let t0 = Instant::now();
    assert_eq!(e.read_done(t0, at("pg1", 5)), pg1);
    assert_eq!((&e.known, e.revision), (&Some(pg1.clone()), Some(5)));
    assert_eq!((e.last_read, e.last_fact()), (Some(t0), Some(t0)));
    // Agrees: the state stands, as a fact of this read.
    let t1 = t0 + Duration::from_secs(3);
    assert_eq!(e.doubt_unless_agrees(0, t1, t1, Ok(at("pg1", 6))), Ok(pg1));
    assert_eq!(
        (e.revision, e.last_read, e.last_fact()),
        (Some(6), Some(t1), Some(t1))
    );
    // Disagrees (the event is still on its way, or was lost): read afresh at once, and
    // until then nothing is remembered.
    assert_eq!(
        e.doubt_unless_agrees(0, t1, t1, Ok(at("pg2", 7))),
        Err(None)
    );
    assert_eq!(e.known, None);
    // Fails: unknown when the turn's time is up; otherwise a fresh read follows. Either
    // way the state and the watch are forgotten.
    let failed = || Err(Failure::Transport("timed out".into()));
    for (deadline, late) in [
        (Instant::now(), true),
        (t1 + Duration::from_secs(60), false),
    ] {
        e.read_done(t1, at("pg1", 7));
        let text = "http://192.0.2.1:2379: timed out".to_string();
        let expected = Err(late.then_some(text));
        assert_eq!(e.doubt_unless_agrees(0, t1, deadline, failed()), expected);
        assert!(e.known.is_none() && e.revision.is_none() && e.stream.is_none());
    }
}

#[test]
fn without_a_watch_stream_a_turn_reads() {
    // Port 1 on loopback refuses at once: a read was made, not a remembered answer.
    let mut e = client("http://127.0.0.1:1");
    e.read_done(Instant::now(), at("pg1", 5));
    let obs = e.observe(Instant::now() + Duration::from_secs(1));
    assert!(matches!(obs, Observation::Unknown(_)), "{obs}");
    assert_eq!((&e.known, e.revision), (&None, None));
}

// A replica VIP's scope, as etcd 3.4.23 sent it: `kv/range` of `/service/lab/` to
// `/service/lab0` after puts of members/node2 (with a lease), leader, status, history and
// /service/other/leader; then the watch of that range from revision 7 while
// members/node3 was put, /service/other/leader put, members/node2 deleted, and two
// `etcdctl txn`s: status with members/node3, then leader with a delete of members/node3.
const PREFIX: &[u8] = b"/service/lab/";
const NODE2_LEASE: i64 = 2324035785570801157;
const SCOPE_RANGE: &str = r#"{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"6","raft_term":"2"},"kvs":[{"key":"L3NlcnZpY2UvbGFiL2hpc3Rvcnk=","create_revision":"5","mod_revision":"5","version":"1","value":"W1sxLDI1MTY1OTg0LCJubyByZWNvdmVyeSB0YXJnZXQgc3BlY2lmaWVkIiwiMjAyNC0wMS0wMVQwMDowMDowMCswMDowMCIsIm5vZGUxIl1d"},{"key":"L3NlcnZpY2UvbGFiL2xlYWRlcg==","create_revision":"3","mod_revision":"3","version":"1","value":"bm9kZTE="},{"key":"L3NlcnZpY2UvbGFiL21lbWJlcnMvbm9kZTI=","create_revision":"2","mod_revision":"2","version":"1","value":"eyJjb25uX3VybCI6InBvc3RncmVzOi8vMTkyLjAuMi4xMjo1NDMyL3Bvc3RncmVzIiwiYXBpX3VybCI6Imh0dHA6Ly8xOTIuMC4yLjEyOjgwMDgvcGF0cm9uaSIsInN0YXRlIjoicnVubmluZyIsInJvbGUiOiJyZXBsaWNhIiwidmVyc2lvbiI6IjMuMC4yIiwieGxvZ19sb2NhdGlvbiI6NTAzMzE4MDgsInRpbWVsaW5lIjoxfQ==","lease":"2324035785570801157"},{"key":"L3NlcnZpY2UvbGFiL3N0YXR1cw==","create_revision":"4","mod_revision":"4","version":"1","value":"eyJvcHRpbWUiOjUwMzMxODA4LCJzbG90cyI6e319"}],"count":"4"}"#;
const SCOPE_WATCH_CREATED: &str = r#"{"result":{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"6","raft_term":"2"},"created":true}}"#;
const SCOPE_WATCH_PUT: &str = r#"{"result":{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"7","raft_term":"2"},"events":[{"kv":{"key":"L3NlcnZpY2UvbGFiL21lbWJlcnMvbm9kZTM=","create_revision":"7","mod_revision":"7","version":"1","value":"eyJzdGF0ZSI6InJ1bm5pbmciLCJyb2xlIjoicmVwbGljYSIsInhsb2dfbG9jYXRpb24iOjUwMzMxODA4fQ=="}}]}}"#;
const SCOPE_WATCH_DELETE: &str = r#"{"result":{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"9","raft_term":"2"},"events":[{"type":"DELETE","kv":{"key":"L3NlcnZpY2UvbGFiL21lbWJlcnMvbm9kZTI=","mod_revision":"9"}}]}}"#;
const SCOPE_WATCH_TXN: &str = r#"{"result":{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"10","raft_term":"2"},"events":[{"kv":{"key":"L3NlcnZpY2UvbGFiL3N0YXR1cw==","create_revision":"4","mod_revision":"10","version":"2","value":"eyJvcHRpbWUiOjUwMzMxOTAwLCJzbG90cyI6e319"}},{"kv":{"key":"L3NlcnZpY2UvbGFiL21lbWJlcnMvbm9kZTM=","create_revision":"7","mod_revision":"10","version":"2","value":"eyJzdGF0ZSI6InJ1bm5pbmciLCJyb2xlIjoicmVwbGljYSIsInhsb2dfbG9jYXRpb24iOjUwMzMxOTAwfQ=="}}]}}"#;
const SCOPE_WATCH_PUT_DELETE: &str = r#"{"result":{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"11","raft_term":"2"},"events":[{"kv":{"key":"L3NlcnZpY2UvbGFiL2xlYWRlcg==","create_revision":"3","mod_revision":"11","version":"2","value":"bm9kZTM="}},{"type":"DELETE","kv":{"key":"L3NlcnZpY2UvbGFiL21lbWJlcnMvbm9kZTM=","mod_revision":"11"}}]}}"#;

use crate::dcs::scope::{Fallback, Role, Rules, Scope};
use reply::{ScopeKv, prefix_body, prefix_end};

const VIP: &str = "192.0.2.100";

fn rules(max_lag: Option<u64>, settle: Duration) -> Rules {
    Rules {
        role: Role::Replica,
        vip: VIP.into(),
        max_lag,
        settle,
        fallback: Fallback::Primary,
        skip_nofailover: false,
    }
}

/// A client of the scope of /service/lab/leader for node2.
fn scope_client(rules: Rules) -> Etcd {
    Etcd::new(&Settings {
        endpoints: vec!["http://192.0.2.1:2379".into()],
        key: "/service/lab/leader".into(),
        credentials: None,
        interval: Duration::from_secs(1),
        watch: true,
        check_interval: Duration::from_secs(3),
        tls: Tls::default(),
        scope: Some(Scope::new(rules, "/service/lab/leader", "node2")),
    })
}

fn put(key: &str, value: &str, revision: i64) -> ScopeKv {
    ScopeKv {
        key: key.into(),
        value: Some(value.as_bytes().to_vec()),
        lease: 0,
        revision,
    }
}

fn events(line: &str) -> Vec<ScopeKv> {
    match parse_scope_watch_line(line.as_bytes(), PREFIX) {
        Ok(WatchLine::Events(events)) => events,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_scope_is_read_as_the_range_of_its_prefix() {
    assert_eq!(prefix_end(PREFIX), b"/service/lab0");
    assert_eq!(prefix_end(b"a\xff\xff"), b"b");
    assert_eq!(prefix_end(b"\xff"), [0]);
    assert_eq!(prefix_end(b""), [0]);
    assert_eq!(
        prefix_body(PREFIX, false),
        r#"{"key":"L3NlcnZpY2UvbGFiLw==","range_end":"L3NlcnZpY2UvbGFiMA=="}"#
    );
    assert_eq!(
        prefix_body(PREFIX, true),
        r#"{"key":"L3NlcnZpY2UvbGFiLw==","range_end":"L3NlcnZpY2UvbGFiMA==","serializable":true}"#
    );
    let e = scope_client(rules(None, Duration::ZERO));
    assert_eq!(
        (e.key.as_slice(), e.range_end.as_deref()),
        (PREFIX, Some(&b"/service/lab0"[..]))
    );
    assert_eq!(e.range_body, prefix_body(PREFIX, false));
    assert_eq!(e.confirm_body, prefix_body(PREFIX, true));
    assert_eq!(e.max_line, crate::dcs::http::MAX_SCOPE_REPLY);
    // Without a scope: the key alone, as ever.
    let e = client("http://192.0.2.1:2379");
    assert_eq!((e.key.as_slice(), e.range_end.as_deref()), (KEY, None));
    assert_eq!(e.range_body, key_body(KEY, false));
    assert_eq!(e.max_line, MAX_WATCH_LINE);
}

#[test]
fn a_scope_range_reply_with_several_keys() {
    let r = parse_scope_range(SCOPE_RANGE.as_bytes(), PREFIX).unwrap();
    assert_eq!(r.revision, 6);
    let keys: Vec<&str> = r.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "/service/lab/history",
            "/service/lab/leader",
            "/service/lab/members/node2",
            "/service/lab/status"
        ]
    );
    assert_eq!(r.kvs[1].value.as_deref(), Some(&b"node1"[..]));
    assert_eq!((r.kvs[2].lease, r.kvs[2].revision), (NODE2_LEASE, 2));
    assert_eq!(
        r.kvs[3].value.as_deref(),
        Some(&br#"{"optime":50331808,"slots":{}}"#[..])
    );
    // No key under the prefix: an empty scope.
    let miss = parse_scope_range(RANGE_MISS.as_bytes(), PREFIX).unwrap();
    assert_eq!((miss.revision, miss.kvs.len()), (3, 0));
    // A value need not be text (0xff 0xfe 0xfd); a key that is not is nothing Patroni
    // wrote and is passed over.
    let bytes = r#"{"header":{"revision":"8"},"kvs":[{"key":"L3NlcnZpY2UvbGFiL3g=","value":"//79"},{"key":"L3NlcnZpY2UvbGFiL/8=","value":"eA=="}]}"#;
    let r = parse_scope_range(bytes.as_bytes(), PREFIX).unwrap();
    assert_eq!(r.kvs.len(), 1);
    assert_eq!(r.kvs[0].value.as_deref(), Some(&[0xff, 0xfe, 0xfd][..]));
    for body in [
        "",
        "{}",
        r#"{"header":{"revision":"1"},"kvs":{}}"#,
        r#"{"header":{"revision":"1"},"kvs":[{}]}"#,
        r#"{"header":{"revision":"1"},"kvs":[{"key":"L3NlcnZpY2UvbGFiL3g=","value":"***"}]}"#,
        // A key outside the prefix: the reply is not for this read.
        r#"{"header":{"revision":"1"},"kvs":[{"key":"L3NlcnZpY2Uvb3RoZXIvbGVhZGVy","value":"eA=="}]}"#,
    ] {
        assert!(
            matches!(
                parse_scope_range(body.as_bytes(), PREFIX),
                Err(ReplyError::Malformed(_))
            ),
            "{body:?}"
        );
    }
    assert!(matches!(
        parse_scope_range(NO_LEADER.as_bytes(), PREFIX),
        Err(ReplyError::Etcd { code: 14, .. })
    ));
}

#[test]
fn scope_watch_lines_with_several_events() {
    let p = |l: &str| parse_scope_watch_line(l.as_bytes(), PREFIX).unwrap();
    assert_eq!(p(SCOPE_WATCH_CREATED), WatchLine::Created);
    let node3 = br#"{"state":"running","role":"replica","xlog_location":50331808}"#;
    assert_eq!(
        events(SCOPE_WATCH_PUT),
        [ScopeKv {
            key: "/service/lab/members/node3".into(),
            value: Some(node3.to_vec()),
            lease: 0,
            revision: 7
        }]
    );
    assert_eq!(
        events(SCOPE_WATCH_DELETE),
        [ScopeKv {
            key: "/service/lab/members/node2".into(),
            value: None,
            lease: 0,
            revision: 9
        }]
    );
    let txn = events(SCOPE_WATCH_TXN);
    let keys: Vec<(&str, i64)> = txn.iter().map(|e| (e.key.as_str(), e.revision)).collect();
    assert_eq!(
        keys,
        [
            ("/service/lab/status", 10),
            ("/service/lab/members/node3", 10)
        ]
    );
    // Both kinds in one line, in order.
    let mixed = events(SCOPE_WATCH_PUT_DELETE);
    assert_eq!(mixed.len(), 2);
    assert_eq!(mixed[0].value.as_deref(), Some(&b"node3"[..]));
    assert_eq!(
        (mixed[1].key.as_str(), &mixed[1].value),
        ("/service/lab/members/node3", &None)
    );
    // Events for keys outside the prefix are passed over; a line of nothing else is
    // no change. Errors and cancellations read as for the key alone.
    let outside = r#"{"result":{"header":{"revision":"8"},"events":[{"kv":{"key":"L3NlcnZpY2Uvb3RoZXIvbGVhZGVy","mod_revision":"8","value":"eQ=="}},{"kv":{"key":"L3NlcnZpY2UvbGFiL2xlYWRlcg==","mod_revision":"8","value":"bm9kZTI="}}]}}"#;
    let only = events(outside);
    assert_eq!(
        (only.len(), only[0].key.as_str()),
        (1, "/service/lab/leader")
    );
    let none = r#"{"result":{"header":{"revision":"8"},"events":[{"kv":{"key":"L3NlcnZpY2Uvb3RoZXIvbGVhZGVy","mod_revision":"8","value":"eQ=="}}]}}"#;
    assert_eq!(p(none), WatchLine::Other);
    for line in [
        WATCH_COMPACTED,
        r#"{"error":{"grpc_code":14,"message":"etcdserver: no leader"}}"#,
    ] {
        assert_eq!(p(line), parse_watch_line(line.as_bytes(), KEY).unwrap());
    }
    for line in [
        "",
        r#"{"result":{"events":{}}}"#,
        r#"{"result":{"events":[{}]}}"#,
        r#"{"result":{"events":[{"kv":{"key":"L3NlcnZpY2UvbGFiL2xlYWRlcg==","value":"***"}}]}}"#,
    ] {
        assert!(
            parse_scope_watch_line(line.as_bytes(), PREFIX).is_err(),
            "{line:?}"
        );
    }
}

#[test]
fn a_scope_client_follows_its_reads_and_events() {
    let mut e = scope_client(rules(None, Duration::ZERO));
    let node2 = Observation::Leader("node2".into());
    let range = parse_scope_range(SCOPE_RANGE.as_bytes(), PREFIX).unwrap();
    let range = load_scope(e.scope.as_mut().unwrap(), range);
    // The lease tracked is this node's member record's, not the leader key's.
    assert_eq!((range.lease, range.revision), (NODE2_LEASE, 6));
    let t0 = Instant::now();
    assert_eq!(e.read_done(t0, range), node2, "the only replica");
    assert_eq!(
        (e.lease, e.revision, &e.known),
        (NODE2_LEASE, Some(6), &Some(node2.clone()))
    );
    // node3 appears: the heavier of the two holds it.
    let heavier = match weight(VIP, "node3") > weight(VIP, "node2") {
        true => "node3",
        false => "node2",
    };
    let put3 = events(SCOPE_WATCH_PUT);
    assert_eq!(
        e.scope_events(&put3, 6),
        Some(Observation::Leader(heavier.into()))
    );
    assert_eq!(e.revision, Some(7));
    // Events at or below the known revision are already reflected: skipped.
    assert_eq!(e.scope_events(&put3, 7), None);
    // node2's record deleted: node3 holds it, and no lease of this node is known.
    assert_eq!(
        e.scope_events(&events(SCOPE_WATCH_DELETE), 7),
        Some(Observation::Leader("node3".into()))
    );
    assert_eq!((e.lease, e.revision), (0, Some(9)));
    assert_eq!(
        e.scope_events(&events(SCOPE_WATCH_TXN), 9),
        Some(Observation::Leader("node3".into()))
    );
    // node3 leads and its record is gone: no replica, the leader as the fallback.
    assert_eq!(
        e.scope_events(&events(SCOPE_WATCH_PUT_DELETE), 10),
        Some(Observation::Leader("node3".into()))
    );
    assert_eq!(e.revision, Some(11));
    assert_eq!(
        e.scope.as_mut().unwrap().observe(t0),
        Observation::Leader("node3".into())
    );
    // A new full read replaces the records (nothing of node3 is left).
    let range = parse_scope_range(SCOPE_RANGE.as_bytes(), PREFIX).unwrap();
    let range = load_scope(e.scope.as_mut().unwrap(), range);
    assert_eq!(e.read_done(t0, range), node2);
}

#[test]
fn a_remembered_scope_is_chosen_again_as_time_passes() {
    let settle = Duration::from_secs(10);
    let mut e = scope_client(rules(Some(100), settle));
    let (heavy, light) = match weight(VIP, "node3") > weight(VIP, "node2") {
        true => ("node3", "node2"),
        false => ("node2", "node3"),
    };
    let member =
        |pos: u64| format!(r#"{{"state":"running","role":"replica","xlog_location":{pos}}}"#);
    let t0 = Instant::now();
    let records = [
        put("/service/lab/leader", "node1", 2),
        put("/service/lab/status", r#"{"optime":5000,"slots":{}}"#, 3),
        put(&format!("/service/lab/members/{heavy}"), &member(1000), 4),
        put(&format!("/service/lab/members/{light}"), &member(5000), 5),
    ];
    let range = load_scope(
        e.scope.as_mut().unwrap(),
        reply::ScopeRange {
            revision: 5,
            kvs: records.to_vec(),
        },
    );
    let light_holds = Observation::Leader(light.into());
    assert_eq!(e.read_done(t0, range), light_holds, "{heavy} lags");
    // The heavier member catches up: eligible again, it must stay so for the settle
    // period before it takes the VIP.
    let caught_up = [put(
        &format!("/service/lab/members/{heavy}"),
        &member(5000),
        6,
    )];
    assert_eq!(e.scope_events(&caught_up, 5), Some(light_holds.clone()));
    assert_eq!(e.remembered(Instant::now()), Some(light_holds));
    // No event, no read: the remembered state is chosen again when the turn comes.
    let later = Instant::now() + settle + Duration::from_secs(1);
    let heavy_holds = Observation::Leader(heavy.into());
    assert_eq!(e.remembered(later), Some(heavy_holds.clone()));
    assert_eq!(e.known, Some(heavy_holds));
    // Nothing known (a failed read): nothing remembered.
    e.known = None;
    assert_eq!(e.remembered(later), None);
}
