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
