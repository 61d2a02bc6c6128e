//! v2 reply parsing on bodies Debian's etcd 3.4.23 (`--enable-v2`) sent, captured with
//! curl after `ETCDCTL_API=2 etcdctl set/rm/set --ttl 1 /service/demo/leader …` and
//! `curl -XPUT …?prevValue=` / `-XDELETE …?prevValue=`.

use super::*;

const KEY: &str = "/service/demo/leader";

const GET: &str = r#"{"action":"get","node":{"key":"/service/demo/leader","value":"pg1","modifiedIndex":4,"createdIndex":4}}"#;
const MISSING: &str =
    r#"{"errorCode":100,"message":"Key not found","cause":"/service/demo/leader","index":11}"#;
// A key below a path that does not exist yet names the first missing segment.
const MISSING_PARENT: &str =
    r#"{"errorCode":100,"message":"Key not found","cause":"/service","index":3}"#;
const SET: &str = r#"{"action":"set","node":{"key":"/service/demo/leader","value":"pg2","modifiedIndex":5,"createdIndex":5},"prevNode":{"key":"/service/demo/leader","value":"pg1","modifiedIndex":4,"createdIndex":4}}"#;
const DELETE: &str = r#"{"action":"delete","node":{"key":"/service/demo/leader","modifiedIndex":6,"createdIndex":5},"prevNode":{"key":"/service/demo/leader","value":"pg2","modifiedIndex":5,"createdIndex":5}}"#;
const EXPIRE: &str = r#"{"action":"expire","node":{"key":"/service/demo/leader","modifiedIndex":8,"createdIndex":7},"prevNode":{"key":"/service/demo/leader","value":"pg3","expiration":"2026-11-26T10:57:12.309679446Z","modifiedIndex":7,"createdIndex":7}}"#;
const CREATE: &str = r#"{"action":"create","node":{"key":"/service/demo/leader","value":"pg4","modifiedIndex":9,"createdIndex":9}}"#;
const CAS: &str = r#"{"action":"compareAndSwap","node":{"key":"/service/demo/leader","value":"pg5","modifiedIndex":10,"createdIndex":9},"prevNode":{"key":"/service/demo/leader","value":"pg4","modifiedIndex":9,"createdIndex":9}}"#;
const CAD: &str = r#"{"action":"compareAndDelete","node":{"key":"/service/demo/leader","modifiedIndex":11,"createdIndex":9},"prevNode":{"key":"/service/demo/leader","value":"pg5","modifiedIndex":10,"createdIndex":9}}"#;
// With v2 authentication enabled and a wrong password (HTTP 401).
const UNAUTHORIZED: &str = r#"{"errorCode":110,"message":"The request requires user authentication","cause":"Insufficient credentials","index":0}"#;
const DIRECTORY: &str = r#"{"action":"get","node":{"key":"/service/demo","dir":true,"nodes":[{"key":"/service/demo/leader","value":"pg1","modifiedIndex":4,"createdIndex":4}],"modifiedIndex":4,"createdIndex":4}}"#;
// The documented shape of error 401 (a waitIndex older than the 1000 events kept).
const CLEARED: &str = r#"{"errorCode":401,"message":"The event in requested index is outdated and cleared","cause":"the requested history has been cleared [1008/5]","index":2007}"#;

fn parse(body: &str) -> Result<Node, ReplyError> {
    parse_reply(body.as_bytes(), KEY)
}

fn value(v: &str, index: u64) -> Node {
    Node {
        value: Some(v.into()),
        index: Some(index),
        ttl: None,
    }
}

fn gone(index: u64) -> Node {
    Node {
        value: None,
        index: Some(index),
        ttl: None,
    }
}

// A key set with `ttl=30`, read 1.2 s later with a quorum read (etcd 3.4.23).
const GET_TTL: &str = r#"{"action":"get","node":{"key":"/service/demo/leader","value":"pg1","expiration":"2026-12-02T18:00:58.207647238Z","ttl":29,"modifiedIndex":5,"createdIndex":5}}"#;

#[test]
fn a_key_with_a_ttl() {
    let node = parse(GET_TTL).unwrap();
    assert_eq!((node.value.as_deref(), node.ttl), (Some("pg1"), Some(29)));
    assert_eq!(parse(GET).unwrap().ttl, None);
}

#[test]
fn reads() {
    assert_eq!(parse(GET), Ok(value("pg1", 4)));
    assert_eq!(parse(MISSING), Ok(gone(11)));
    assert_eq!(parse(MISSING_PARENT), Ok(gone(3)));
}

#[test]
fn events() {
    assert_eq!(parse(SET), Ok(value("pg2", 5)));
    assert_eq!(parse(CREATE), Ok(value("pg4", 9)));
    assert_eq!(parse(CAS), Ok(value("pg5", 10)));
    assert_eq!(parse(DELETE), Ok(gone(6)));
    assert_eq!(parse(EXPIRE), Ok(gone(8)), "a TTL expiry is a delete");
    assert_eq!(parse(CAD), Ok(gone(11)));
}

#[test]
fn errors() {
    assert_eq!(
        parse(UNAUTHORIZED),
        Err(ReplyError::Etcd {
            code: CODE_UNAUTHORIZED,
            message: "The request requires user authentication (Insufficient credentials)".into(),
            v2: true
        })
    );
    assert!(matches!(
        parse(CLEARED),
        Err(ReplyError::Etcd {
            code: CODE_EVENT_INDEX_CLEARED,
            ..
        })
    ));
    assert_eq!(
        parse_reply(DIRECTORY.as_bytes(), "/service/demo"),
        Err(ReplyError::Malformed(
            "the trigger key is a directory".into()
        ))
    );
}

#[test]
fn keys_compare_cleaned() {
    assert_eq!(clean_key("service/demo/leader"), KEY);
    assert_eq!(clean_key("//service//demo/leader/"), KEY);
    assert_eq!(clean_key(""), "/");
    assert_eq!(
        parse_reply(GET.as_bytes(), "service/demo/leader/"),
        Ok(value("pg1", 4))
    );
    assert_eq!(
        parse_reply(GET.as_bytes(), "/service/other/leader"),
        Err(ReplyError::Malformed("reply is for another key".into()))
    );
}

#[test]
fn malformed_replies_are_errors_not_panics() {
    for body in [
        "",
        "404 page not found\n",
        "[]",
        "{}",
        "null",
        r#"{"errorCode":"100"}"#,
        r#"{"action":"get"}"#,
        r#"{"action":"get","node":{}}"#,
        r#"{"action":"get","node":{"key":7}}"#,
        r#"{"action":"get","node":{"key":"/service/demo/leader"}}"#,
        r#"{"action":"get","node":{"key":"/service/demo/leader","value":7}}"#,
        r#"{"action":"get","node":{"key":"/service/demo/leader","value":null}}"#,
    ] {
        assert!(
            matches!(parse(body), Err(ReplyError::Malformed(_))),
            "{body:?}"
        );
    }
    // Every prefix of the real bodies.
    for body in [GET, SET, DELETE, MISSING, UNAUTHORIZED] {
        for end in 0..body.len() {
            assert!(parse_reply(&body.as_bytes()[..end], KEY).is_err());
        }
    }
}

#[test]
fn error_messages_are_bounded_single_lines() {
    let long = format!(
        r#"{{"errorCode":300,"message":"Raft Internal Error","cause":"{}\nsecond line"}}"#,
        "x".repeat(5000)
    );
    match parse(&long) {
        Err(ReplyError::Etcd {
            code: 300, message, ..
        }) => {
            assert!(message.chars().count() <= 201, "{}", message.len());
            assert!(!message.contains('\n'));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn basic_auth_header() {
    let cred = Credentials {
        user: "patroni".into(),
        password: crate::dcs::Secret("secret2".into()),
    };
    // `curl -u patroni:secret2` sends the same header.
    assert_eq!(basic_auth(&cred), "Basic cGF0cm9uaTpzZWNyZXQy");
}

// --- a replica VIP's scope: recursive reads and waits ------------------------------
//
// Bodies etcd 3.4.23 (`--enable-v2`) sent after Patroni-shaped records were written with
// curl (`PUT /v2/keys/service/lab/members/node1 value=… ttl=30`, …): a recursive quorum
// read of the scope, and the lines of a recursive stream on it.

mod scope {
    use std::time::{Duration, Instant};

    use super::super::*;
    use super::{CLEARED, MISSING};
    use crate::dcs::scope::{Fallback, Role, Rules, Scope};

    const DIR: &str = "/service/lab";

    const LISTING: &str = r#"{"action":"get","node":{"key":"/service/lab","dir":true,"nodes":[{"key":"/service/lab/members","dir":true,"nodes":[{"key":"/service/lab/members/node1","value":"{\"conn_url\":\"postgres://192.0.2.11:5432/postgres\",\"api_url\":\"http://192.0.2.11:8008/patroni\",\"state\":\"running\",\"role\":\"master\",\"version\":\"3.0.2\",\"xlog_location\":50331808,\"timeline\":1}","expiration":"2026-12-03T12:12:45.925272456Z","ttl":30,"modifiedIndex":4,"createdIndex":4},{"key":"/service/lab/members/node2","value":"{\"conn_url\":\"postgres://192.0.2.12:5432/postgres\",\"api_url\":\"http://192.0.2.12:8008/patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"xlog_location\":50331808,\"timeline\":1}","expiration":"2026-12-03T12:12:45.937819793Z","ttl":30,"modifiedIndex":5,"createdIndex":5}],"modifiedIndex":4,"createdIndex":4},{"key":"/service/lab/leader","value":"node1","expiration":"2026-12-03T12:12:45.949257079Z","ttl":30,"modifiedIndex":6,"createdIndex":6},{"key":"/service/lab/status","value":"{\"optime\":50331808,\"slots\":{}}","modifiedIndex":7,"createdIndex":7},{"key":"/service/lab/initialize","value":"7241234567890123456","modifiedIndex":8,"createdIndex":8},{"key":"/service/lab/optime","dir":true,"nodes":[{"key":"/service/lab/optime/leader","value":"50331808","modifiedIndex":9,"createdIndex":9}],"modifiedIndex":9,"createdIndex":9}],"modifiedIndex":4,"createdIndex":4}}"#;
    // Before anything was written: the first missing segment, the store's index.
    const NO_SCOPE: &str =
        r#"{"errorCode":100,"message":"Key not found","cause":"/service","index":3}"#;
    // The root lists without a key.
    const ROOT: &str = r#"{"action":"get","node":{"dir":true,"nodes":[{"key":"/leader","value":"node1","modifiedIndex":5,"createdIndex":5}]}}"#;

    const SET_MEMBER: &str = r#"{"action":"set","node":{"key":"/service/lab/members/node2","value":"{\"conn_url\":\"postgres://192.0.2.12:5432/postgres\",\"api_url\":\"http://192.0.2.12:8008/patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"xlog_location\":50331000,\"timeline\":1}","expiration":"2026-12-03T12:12:50.656085661Z","ttl":30,"modifiedIndex":10,"createdIndex":10},"prevNode":{"key":"/service/lab/members/node2","value":"{\"conn_url\":\"postgres://192.0.2.12:5432/postgres\",\"api_url\":\"http://192.0.2.12:8008/patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"xlog_location\":50331808,\"timeline\":1}","expiration":"2026-12-03T12:12:45.937819793Z","ttl":26,"modifiedIndex":5,"createdIndex":5}}"#;
    const CAS_LEADER: &str = r#"{"action":"compareAndSwap","node":{"key":"/service/lab/leader","value":"node1","expiration":"2026-12-03T12:12:50.664677904Z","ttl":30,"modifiedIndex":11,"createdIndex":6},"prevNode":{"key":"/service/lab/leader","value":"node1","expiration":"2026-12-03T12:12:45.949257079Z","ttl":26,"modifiedIndex":6,"createdIndex":6}}"#;
    const DELETE_MEMBER: &str = r#"{"action":"delete","node":{"key":"/service/lab/members/node2","modifiedIndex":13,"createdIndex":10},"prevNode":{"key":"/service/lab/members/node2","value":"{\"conn_url\":\"postgres://192.0.2.12:5432/postgres\",\"api_url\":\"http://192.0.2.12:8008/patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"xlog_location\":50331000,\"timeline\":1}","expiration":"2026-12-03T12:12:50.656085661Z","ttl":30,"modifiedIndex":10,"createdIndex":10}}"#;
    const DELETE_DIR: &str = r#"{"action":"delete","node":{"key":"/service/lab/optime","dir":true,"modifiedIndex":14,"createdIndex":9},"prevNode":{"key":"/service/lab/optime","dir":true,"modifiedIndex":9,"createdIndex":9}}"#;
    const CREATE_SYNC: &str = r#"{"action":"create","node":{"key":"/service/lab/sync","value":"{\"leader\":\"node1\",\"sync_standby\":null}","modifiedIndex":15,"createdIndex":15}}"#;
    const EXPIRE_MEMBER: &str = r#"{"action":"expire","node":{"key":"/service/lab/members/node1","modifiedIndex":18,"createdIndex":4},"prevNode":{"key":"/service/lab/members/node1","value":"{\"conn_url\":\"postgres://192.0.2.11:5432/postgres\",\"api_url\":\"http://192.0.2.11:8008/patroni\",\"state\":\"running\",\"role\":\"master\",\"version\":\"3.0.2\",\"xlog_location\":50331808,\"timeline\":1}","expiration":"2026-12-03T12:12:45.925272456Z","modifiedIndex":4,"createdIndex":4}}"#;
    const CAD_SYNC: &str = r#"{"action":"compareAndDelete","node":{"key":"/service/lab/sync","modifiedIndex":20,"createdIndex":15},"prevNode":{"key":"/service/lab/sync","value":"{\"leader\":\"node1\",\"sync_standby\":null}","modifiedIndex":15,"createdIndex":15}}"#;

    fn rules(max_lag: Option<u64>) -> Rules {
        Rules {
            role: Role::Replica,
            vip: "192.0.2.50".into(),
            max_lag,
            settle: Duration::ZERO,
            fallback: Fallback::None,
            skip_nofailover: false,
        }
    }

    fn delete(key: &str, dir: bool, index: u64) -> Event {
        Event {
            change: Change::Delete {
                key: key.into(),
                dir,
            },
            index: Some(index),
        }
    }

    fn apply(scope: &mut Scope, body: &str) -> Observation {
        let event = parse_event(body.as_bytes(), DIR).unwrap();
        super::super::apply(scope, &event.change, DIR, 0);
        scope.observe(Instant::now())
    }

    #[test]
    fn a_recursive_read_flattens_into_the_keys() {
        let listing = parse_listing(LISTING.as_bytes(), DIR).unwrap();
        let keys: Vec<(&str, Option<i64>)> = (listing.leaves.iter())
            .map(|l| (l.key.as_str(), l.ttl))
            .collect();
        assert_eq!(
            keys,
            [
                ("/service/lab/members/node1", Some(30)),
                ("/service/lab/members/node2", Some(30)),
                ("/service/lab/leader", Some(30)),
                ("/service/lab/status", None),
                ("/service/lab/initialize", None),
                ("/service/lab/optime/leader", None),
            ]
        );
        assert_eq!(listing.leaves[2].value, "node1");
        assert_eq!(listing.index, Some(9), "the highest modifiedIndex");
        // The scope's directory spelled with a trailing slash, as the scope's prefix is.
        assert_eq!(
            parse_listing(LISTING.as_bytes(), "/service/lab/"),
            Ok(listing)
        );

        // Into the scope: node2 is the only replica, and its record's lease is kept.
        let mut scope = Scope::new(rules(Some(1000)), "/service/lab/leader", "node2");
        for (i, l) in parse_listing(LISTING.as_bytes(), DIR)
            .unwrap()
            .leaves
            .iter()
            .enumerate()
        {
            scope.put(&l.key, l.value.as_bytes(), i as i64 + 1);
        }
        assert_eq!(
            scope.observe(Instant::now()),
            Observation::Leader("node2".into())
        );
        assert_eq!(scope.my_lease(), 2);
    }

    #[test]
    fn a_missing_scope_is_empty() {
        let listing = parse_listing(NO_SCOPE.as_bytes(), DIR).unwrap();
        assert_eq!(
            listing,
            Listing {
                leaves: Vec::new(),
                index: Some(3)
            }
        );
        let root = parse_listing(ROOT.as_bytes(), "/").unwrap();
        assert_eq!(root.leaves.len(), 1);
        assert_eq!(root.index, Some(5));
    }

    #[test]
    fn recursive_reads_that_cannot_be_trusted() {
        // Another directory, a key instead of a directory, an error.
        assert!(parse_listing(LISTING.as_bytes(), "/service/other").is_err());
        let file =
            r#"{"action":"get","node":{"key":"/service/lab","value":"x","modifiedIndex":4}}"#;
        assert_eq!(
            parse_listing(file.as_bytes(), DIR),
            Err(ReplyError::Malformed("the scope is not a directory".into()))
        );
        let cleared = r#"{"errorCode":110,"message":"The request requires user authentication","cause":"Insufficient credentials","index":0}"#;
        assert!(matches!(
            parse_listing(cleared.as_bytes(), DIR),
            Err(ReplyError::Etcd {
                code: CODE_UNAUTHORIZED,
                ..
            })
        ));
        for end in 0..LISTING.len() {
            assert!(parse_listing(&LISTING.as_bytes()[..end], DIR).is_err());
        }
        for body in [
            "{}",
            "[]",
            r#"{"action":"get","node":{"key":"/service/lab","dir":true,"nodes":7}}"#,
        ] {
            assert!(parse_listing(body.as_bytes(), DIR).is_err(), "{body}");
        }
    }

    /// A directory of `n` keys, with a deeper directory under a member's name.
    fn many(n: usize) -> String {
        let leaves: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    r#"{{"key":"/service/lab/members/m{i}","value":"{{}}","modifiedIndex":{i}}}"#
                )
            })
            .collect();
        let deep = r#"{"key":"/service/lab/members/deep","dir":true,"nodes":[{"key":"/service/lab/members/deep/x","value":"1","modifiedIndex":99999}]}"#;
        format!(
            r#"{{"action":"get","node":{{"key":"/service/lab","dir":true,"nodes":[{{"key":"/service/lab/members","dir":true,"nodes":[{},{deep}]}}]}}}}"#,
            leaves.join(",")
        )
    }

    #[test]
    fn recursive_reads_are_bounded() {
        let listing = parse_listing(many(MAX_LEAVES).as_bytes(), DIR).unwrap();
        assert_eq!(listing.leaves.len(), MAX_LEAVES, "deeper keys are not read");
        assert_eq!(listing.index, Some(MAX_LEAVES as u64 - 1));
        assert!(parse_listing(many(MAX_LEAVES + 1).as_bytes(), DIR).is_err());
    }

    #[test]
    fn recursive_wait_events() {
        let member = "/service/lab/members/node2";
        match parse_event(SET_MEMBER.as_bytes(), DIR).unwrap() {
            Event {
                change: Change::Put(l),
                index,
            } => {
                assert_eq!((l.key.as_str(), l.ttl, index), (member, Some(30), Some(10)));
                assert!(l.value.contains("\"xlog_location\":50331000"));
            }
            other => panic!("{other:?}"),
        }
        let cas = parse_event(CAS_LEADER.as_bytes(), DIR).unwrap();
        assert_eq!(cas.index, Some(11));
        assert!(matches!(cas.change, Change::Put(l) if l.value == "node1"));
        let create = parse_event(CREATE_SYNC.as_bytes(), DIR).unwrap();
        assert!(matches!(create.change, Change::Put(l) if l.key == "/service/lab/sync"));
        assert_eq!(
            parse_event(DELETE_MEMBER.as_bytes(), DIR),
            Ok(delete(member, false, 13))
        );
        assert_eq!(
            parse_event(DELETE_DIR.as_bytes(), DIR),
            Ok(delete("/service/lab/optime", true, 14))
        );
        assert_eq!(
            parse_event(EXPIRE_MEMBER.as_bytes(), DIR),
            Ok(delete("/service/lab/members/node1", false, 18))
        );
        assert_eq!(
            parse_event(CAD_SYNC.as_bytes(), DIR),
            Ok(delete("/service/lab/sync", false, 20))
        );
        // A directory made where a key was replaces it.
        let mkdir = r#"{"action":"set","node":{"key":"/service/lab/leader","dir":true,"modifiedIndex":21,"createdIndex":21}}"#;
        assert_eq!(
            parse_event(mkdir.as_bytes(), DIR),
            Ok(delete("/service/lab/leader", false, 21))
        );
    }

    #[test]
    fn wait_events_move_the_holder() {
        // node2 and node3 replicas; node2 falls behind, then its record goes.
        let mut scope = Scope::new(rules(Some(1000)), "/service/lab/leader", "node1");
        for l in parse_listing(LISTING.as_bytes(), DIR).unwrap().leaves {
            scope.put(&l.key, l.value.as_bytes(), 0);
        }
        let node3 = LISTING
            .replace("node2", "node3")
            .replace("192.0.2.12", "192.0.2.13");
        for l in parse_listing(node3.as_bytes(), DIR).unwrap().leaves {
            if l.key.ends_with("node3") {
                scope.put(&l.key, l.value.as_bytes(), 0);
            }
        }
        let w = |m: &str| crate::dcs::scope::weight("192.0.2.50", m);
        let first = if w("node2") > w("node3") {
            "node2"
        } else {
            "node3"
        };
        assert_eq!(
            scope.observe(Instant::now()),
            Observation::Leader(first.into())
        );
        // 808 bytes behind: still within 1000.
        assert_eq!(
            apply(&mut scope, SET_MEMBER),
            Observation::Leader(first.into())
        );
        let lagging = SET_MEMBER.replace("50331000,", "50000000,");
        assert_eq!(
            apply(&mut scope, &lagging),
            Observation::Leader("node3".into())
        );
        // Back in line, then gone.
        assert_eq!(
            apply(&mut scope, SET_MEMBER),
            Observation::Leader(first.into())
        );
        assert_eq!(
            apply(&mut scope, DELETE_MEMBER),
            Observation::Leader("node3".into())
        );
        // The scope's directory removed: nobody.
        let rmdir = r#"{"action":"delete","node":{"key":"/service/lab","dir":true,"modifiedIndex":30,"createdIndex":4},"prevNode":{"key":"/service/lab","dir":true,"modifiedIndex":4,"createdIndex":4}}"#;
        assert_eq!(apply(&mut scope, rmdir), Observation::NoLeader);
    }

    #[test]
    fn wait_events_that_cannot_be_trusted() {
        let outside =
            SET_MEMBER.replace("/service/lab/members/node2", "/service/labx/members/node2");
        assert!(parse_event(outside.as_bytes(), DIR).is_err());
        assert!(matches!(
            parse_event(CLEARED.as_bytes(), DIR),
            Err(ReplyError::Etcd {
                code: CODE_EVENT_INDEX_CLEARED,
                ..
            })
        ));
        assert!(parse_event(MISSING.as_bytes(), DIR).is_err());
        let get = r#"{"action":"get","node":{"key":"/service/lab/leader","value":"x"}}"#;
        assert!(parse_event(get.as_bytes(), DIR).is_err());
        for body in [SET_MEMBER, DELETE_DIR, EXPIRE_MEMBER] {
            for end in 0..body.len() {
                assert!(parse_event(&body.as_bytes()[..end], DIR).is_err());
            }
        }
    }
}
