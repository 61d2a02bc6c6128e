//! Patroni's scope as the scope client tests write it: member records in the format
//! Patroni 3.0.2 writes, the rules of a replica VIP, and the order the rendezvous hash
//! gives the two replicas.

use std::time::Duration;

use vipd::dcs::scope::{Fallback, Role, Rules, weight};

/// Every member's xlog position, and the leader's (`status`'s `optime`), while none lags.
pub const POS: u64 = 50331808;
/// replica-max-lag in these tests.
pub const MAX_LAG: u64 = 1 << 20;

/// Member `n`'s record (192.0.2.1n) at WAL position `xlog`, as Patroni 3.0.2 writes it.
pub fn member(n: u8, role: &str, xlog: u64) -> String {
    format!(
        r#"{{"conn_url":"postgres://192.0.2.1{n}:5432/postgres","api_url":"http://192.0.2.1{n}:8008/patroni","state":"running","role":"{role}","version":"3.0.2","xlog_location":{xlog},"timeline":1}}"#
    )
}

/// The rules of a replica VIP `vip`: at most [`MAX_LAG`] behind, no settle period.
pub fn replica_rules(vip: &str, fallback: Fallback) -> Rules {
    Rules {
        role: Role::Replica,
        vip: vip.into(),
        max_lag: Some(MAX_LAG),
        settle: Duration::ZERO,
        fallback,
        skip_nofailover: false,
    }
}

/// The replicas node2 and node3 as the rendezvous weight orders them for `vip`:
/// (heavier, lighter), so the first is the one that holds it.
pub fn replicas_by_weight(vip: &str) -> (&'static str, &'static str) {
    match weight(vip, "node3") > weight(vip, "node2") {
        true => ("node3", "node2"),
        false => ("node2", "node3"),
    }
}
