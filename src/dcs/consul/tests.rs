//! Consul reply parsing on the shapes of Consul's KV API documentation
//! (developer.hashicorp.com/consul/api-docs/kv, "Read Key"): a JSON array of entries,
//! `Value` base64 or null, 404 with an empty body for a missing key, 403 and 500 with
//! plain text.

use super::*;

const KEY: &str = "service/pg/leader";

// The documented sample, for Patroni's leader key held by a session.
const HELD: &str = r#"[
  {
    "CreateIndex": 100,
    "ModifyIndex": 200,
    "LockIndex": 200,
    "Key": "service/pg/leader",
    "Flags": 0,
    "Value": "cGcx",
    "Session": "adf4238a-882b-9ddc-4a9d-5b6758e4159e"
  }
]"#;

#[test]
fn keys_lose_their_leading_slash() {
    assert_eq!(consul_key("/service/pg/leader"), KEY);
    assert_eq!(consul_key("//service/pg/leader"), KEY);
    assert_eq!(consul_key(KEY), KEY);
}

#[test]
fn values() {
    assert_eq!(parse_kv(200, HELD.as_bytes(), KEY), Ok(Some("pg1".into())));
    let null = r#"[{"Key":"service/pg/leader","Value":null,"ModifyIndex":5}]"#;
    assert_eq!(parse_kv(200, null.as_bytes(), KEY), Ok(Some(String::new())));
    assert_eq!(parse_kv(404, b"", KEY), Ok(None));
    assert_eq!(parse_kv(200, b"[]", KEY), Ok(None));
}

#[test]
fn refusals_quote_the_server() {
    assert_eq!(
        parse_kv(403, b"Permission denied", KEY),
        Err("HTTP 403: Permission denied".into())
    );
    assert_eq!(
        parse_kv(403, b"ACL not found\n", KEY),
        Err("HTTP 403: ACL not found".into())
    );
    assert_eq!(
        parse_kv(500, b"No cluster leader", KEY),
        Err("HTTP 500: No cluster leader".into())
    );
    assert_eq!(
        parse_kv(500, b"rpc error making call: No cluster leader", KEY),
        Err("HTTP 500: rpc error making call: No cluster leader".into())
    );
    assert_eq!(
        parse_kv(502, b"", KEY),
        Err("HTTP 502: (empty reply)".into())
    );
}

#[test]
fn malformed_replies_are_errors_not_panics() {
    for body in [
        "",
        "{}",
        "null",
        "[1]",
        r#"[{}]"#,
        r#"[{"Key":7}]"#,
        r#"[{"Key":"service/other/leader","Value":"cGcx"}]"#,
        r#"[{"Key":"service/pg/leader","Value":"***"}]"#,
        r#"[{"Key":"service/pg/leader","Value":7}]"#,
        r#"[{"Key":"service/pg/leader","Value":"//79"}]"#,
        r#"[{"Key":"service/pg/leader","Value":"cGcx"},{"Key":"service/pg/leader","Value":"cGcx"}]"#,
    ] {
        let got = parse_kv(200, body.as_bytes(), KEY);
        assert!(
            matches!(&got, Err(e) if e.starts_with("malformed reply")),
            "{body:?}: {got:?}"
        );
    }
    for end in 0..HELD.len() {
        let _ = parse_kv(200, &HELD.as_bytes()[..end], KEY);
    }
}

#[test]
fn index_rules() {
    // The first read, and growth.
    assert_eq!(next_index(0, Some(12)), 12);
    assert_eq!(next_index(12, Some(12)), 12);
    assert_eq!(next_index(12, Some(13)), 13);
    // Backwards: reset to 0 (and 0 never blocks).
    assert_eq!(next_index(12, Some(11)), 0);
    // No header, or zero.
    assert_eq!(next_index(12, None), 0);
    assert_eq!(next_index(0, Some(0)), 0);
}

#[test]
fn wait_parameter() {
    assert_eq!(wait_param(Duration::from_millis(4987)), "4987ms");
    assert_eq!(wait_param(Duration::from_secs(3600)), "600000ms");
}
