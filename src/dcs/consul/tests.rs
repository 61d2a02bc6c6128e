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

// --- a replica VIP's scope: `?recurse` -------------------------------------------
//
// The documented list shape ("Read Key" with `recurse`: every key under the prefix, in
// key order), holding Patroni's records: `leader` held by a session, members with
// their sessions, `status` and `history` without; values base64 of the JSON Patroni
// writes.

mod scope {
    use std::time::Instant;

    use super::super::*;
    use crate::dcs::scope::{Fallback, Role, Rules, Scope};

    const PREFIX: &str = "service/lab/";

    const LIST: &str = r#"[
  {"LockIndex":1,"Key":"service/lab/history","Flags":0,"Value":"W1sxLDUwMzMxODA4LCJubyByZWNvdmVyeSB0YXJnZXQgc3BlY2lmaWVkIl1d","CreateIndex":31,"ModifyIndex":31},
  {"LockIndex":1,"Key":"service/lab/leader","Flags":0,"Value":"bm9kZTE=","Session":"adf4238a-882b-9ddc-4a9d-5b6758e4159e","CreateIndex":20,"ModifyIndex":20},
  {"LockIndex":1,"Key":"service/lab/members/node1","Flags":0,"Value":"eyJjb25uX3VybCI6InBvc3RncmVzOi8vMTkyLjAuMi4xMTo1NDMyL3Bvc3RncmVzIiwiYXBpX3VybCI6Imh0dHA6Ly8xOTIuMC4yLjExOjgwMDgvcGF0cm9uaSIsInN0YXRlIjoicnVubmluZyIsInJvbGUiOiJtYXN0ZXIiLCJ2ZXJzaW9uIjoiMy4wLjIiLCJ4bG9nX2xvY2F0aW9uIjo1MDMzMTgwOCwidGltZWxpbmUiOjF9","Session":"adf4238a-882b-9ddc-4a9d-5b6758e4159e","CreateIndex":18,"ModifyIndex":40},
  {"LockIndex":1,"Key":"service/lab/members/node2","Flags":0,"Value":"eyJjb25uX3VybCI6InBvc3RncmVzOi8vMTkyLjAuMi4xMjo1NDMyL3Bvc3RncmVzIiwiYXBpX3VybCI6Imh0dHA6Ly8xOTIuMC4yLjEyOjgwMDgvcGF0cm9uaSIsInN0YXRlIjoicnVubmluZyIsInJvbGUiOiJyZXBsaWNhIiwidmVyc2lvbiI6IjMuMC4yIiwieGxvZ19sb2NhdGlvbiI6NTAzMzE4MDgsInRpbWVsaW5lIjoxfQ==","Session":"b2a1c9d0-5f3e-4c1a-9e7b-0d6f2a8c4e11","CreateIndex":19,"ModifyIndex":41},
  {"LockIndex":0,"Key":"service/lab/members/","Flags":0,"Value":null,"CreateIndex":5,"ModifyIndex":5},
  {"LockIndex":0,"Key":"service/lab/status","Flags":0,"Value":"eyJvcHRpbWUiOjUwMzMxODA4LCJzbG90cyI6e319","CreateIndex":21,"ModifyIndex":42}
]"#;

    fn rules() -> Rules {
        Rules {
            role: Role::Replica,
            vip: "192.0.2.50".into(),
            max_lag: Some(1 << 20),
            settle: std::time::Duration::ZERO,
            fallback: Fallback::None,
            skip_nofailover: false,
        }
    }

    #[test]
    fn a_recursive_read_lists_the_scope() {
        let entries = parse_list(200, LIST.as_bytes(), PREFIX).unwrap();
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "service/lab/history",
                "service/lab/leader",
                "service/lab/members/node1",
                "service/lab/members/node2",
                "service/lab/members/",
                "service/lab/status",
            ]
        );
        assert_eq!(entries[1].1, b"node1");
        assert_eq!(entries[4].1, b"", "a null value is empty");
        assert_eq!(entries[5].1, br#"{"optime":50331808,"slots":{}}"#);

        let mut scope = Scope::new(rules(), "/service/lab/leader", "node2");
        for (key, value) in &entries {
            scope.put(key, value, 0);
        }
        assert_eq!(
            scope.observe(Instant::now()),
            Observation::Leader("node2".into())
        );
        // No keys: 404 with an empty body, or an empty list.
        assert_eq!(parse_list(404, b"", PREFIX), Ok(Vec::new()));
        assert_eq!(parse_list(200, b"[]", PREFIX), Ok(Vec::new()));
    }

    #[test]
    fn recursive_reads_that_cannot_be_trusted() {
        assert_eq!(
            parse_list(403, b"Permission denied", PREFIX),
            Err("HTTP 403: Permission denied".into())
        );
        assert_eq!(
            parse_list(500, b"No cluster leader", PREFIX),
            Err("HTTP 500: No cluster leader".into())
        );
        for body in [
            "",
            "{}",
            "[1]",
            r#"[{"Key":"service/labx/leader","Value":"cGcx"}]"#,
            r#"[{"Key":"service/lab/leader","Value":"***"}]"#,
            r#"[{"Key":"service/lab/leader","Value":7}]"#,
        ] {
            let got = parse_list(200, body.as_bytes(), PREFIX);
            assert!(
                matches!(&got, Err(e) if e.starts_with("malformed reply")),
                "{body:?}: {got:?}"
            );
        }
        for end in 0..LIST.len() {
            let _ = parse_list(200, &LIST.as_bytes()[..end], PREFIX);
        }
        let entry = r#"{"Key":"service/lab/members/m","Value":null}"#;
        let many = |n: usize| format!("[{}]", vec![entry; n].join(","));
        assert_eq!(
            parse_list(200, many(MAX_ENTRIES).as_bytes(), PREFIX)
                .unwrap()
                .len(),
            MAX_ENTRIES
        );
        let over = parse_list(200, many(MAX_ENTRIES + 1).as_bytes(), PREFIX);
        assert!(
            matches!(&over, Err(e) if e.contains("more than")),
            "{over:?}"
        );
    }
}
