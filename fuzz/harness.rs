//! The checks behind each fuzz target, shared by the targets (fuzz/fuzz_targets/*.rs) and by
//! the regression test that replays the committed corpus and crash inputs
//! (tests/faults_fuzz_inputs.rs). Each takes arbitrary bytes, must not panic on any of them,
//! and asserts what must hold of the result.

#![allow(dead_code)]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use vipd::config;
use vipd::dcs::etcd::{self, ReplyError, WatchLine};
use vipd::dcs::http::wire;
use vipd::dcs::{consul, etcd2};
use vipd::net::{conflict, netlink};

/// The leader key the etcd targets read replies for.
const KEY: &[u8] = b"/service/demo/leader";
/// The scope a replica VIP's reads and watches cover.
const PREFIX: &[u8] = b"/service/demo/";

/// The flat YAML subset reader: entries or an error, with line numbers inside the text.
pub fn yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.split('\n').count();
    match config::yaml::parse(text) {
        Ok(entries) => {
            for e in &entries {
                assert!(
                    e.line >= 1 && e.line <= lines,
                    "entry line {} of {lines}",
                    e.line
                );
            }
        }
        Err(e) => assert!(
            e.line >= 1 && e.line <= lines,
            "error line {} of {lines}",
            e.line
        ),
    }
}

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("vipd-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    })
}

/// The configuration from arbitrary argv, environment and configuration file.
///
/// Input: segments separated by NUL bytes. The first segment is written to a file that
/// arguments and variables can name as `@FILE`; a segment starting with 0x01 is an
/// environment entry `NAME=VALUE`; every other segment is one argument (any bytes).
pub fn config(data: &[u8]) {
    let mut parts = data.split(|&b| b == 0);
    let file_text = parts.next().unwrap_or_default();
    let file = scratch().join("vipd.yml");
    let file_name = file.to_string_lossy().into_owned();
    if std::fs::write(&file, file_text).is_err() {
        return;
    }
    let swap = |s: String| s.replace("@FILE", &file_name);
    let mut args = Vec::new();
    let mut env = Vec::new();
    for part in parts {
        if let Some(entry) = part.strip_prefix(&[1u8]) {
            let entry = swap(String::from_utf8_lossy(entry).into_owned());
            if let Some((k, v)) = entry.split_once('=') {
                env.push((k.to_string(), v.to_string()));
            }
        } else {
            match String::from_utf8(part.to_vec()) {
                Ok(s) => args.push(OsString::from(swap(s))),
                Err(e) => args.push(OsString::from_vec(e.into_bytes())),
            }
        }
    }
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    match config::load(args, &lookup, "fuzzhost") {
        Ok(loaded) => {
            if let config::Command::Run(cfg) | config::Command::Once { config: cfg, .. } =
                loaded.command
            {
                assert!(!cfg.endpoints.is_empty(), "no endpoints: {cfg:?}");
                assert!(!cfg.interval.is_zero(), "zero interval: {cfg:?}");
                assert!(!cfg.interface.is_empty(), "no interface: {cfg:?}");
            }
        }
        Err(e) => assert!(!e.to_string().is_empty(), "an empty error"),
    }
}

/// The etcd `kv/range` reply handling, of the key and of a scope's prefix: a range or
/// an error, messages bounded; a scope's keys all under its prefix.
pub fn etcd_range(data: &[u8]) {
    match etcd::parse_range(data, KEY) {
        Ok(_) | Err(ReplyError::Malformed(_)) => {}
        Err(ReplyError::Etcd { message, .. }) => assert!(message.chars().count() <= 200),
    }
    match etcd::parse_scope_range(data, PREFIX) {
        Ok(range) => {
            for kv in &range.kvs {
                assert!(kv.key.as_bytes().starts_with(PREFIX), "{:?}", kv.key);
                assert!(kv.value.is_some(), "a read has no deletions");
            }
        }
        Err(ReplyError::Malformed(_)) => {}
        Err(ReplyError::Etcd { message, .. }) => assert!(message.chars().count() <= 200),
    }
}

/// The etcd watch stream: the body split into bounded lines as the client does, each a watch
/// line or an error.
pub fn etcd_watch(data: &[u8]) {
    for line in data.split(|&b| b == b'\n').take(64) {
        if line.len() > etcd::MAX_WATCH_LINE {
            break;
        }
        if let Ok(WatchLine::Canceled(why) | WatchLine::Error(why)) =
            etcd::parse_watch_line(line, KEY)
        {
            assert!(why.chars().count() <= 200 || why.starts_with("start revision"));
        }
        // A scope's watch: events under the prefix only, never an empty list; the rest
        // read as for the key alone.
        match etcd::parse_scope_watch_line(line, PREFIX) {
            Ok(WatchLine::Events(events)) => {
                assert!(!events.is_empty(), "an empty list of events");
                for ev in &events {
                    assert!(ev.key.as_bytes().starts_with(PREFIX), "{:?}", ev.key);
                    assert!(
                        ev.value.is_some() || ev.lease == 0,
                        "a deletion with a lease"
                    );
                }
            }
            Ok(WatchLine::Changed { .. }) => panic!("a single key's change from a scope"),
            Ok(WatchLine::Canceled(why) | WatchLine::Error(why)) => {
                assert!(why.chars().count() <= 200 || why.starts_with("start revision"));
            }
            Ok(_) | Err(_) => {}
        }
    }
}

/// The rtnetlink reply parser: messages, then at most one error that ends the iteration;
/// never more messages than 16-byte headers fit in the datagram.
pub fn netlink(data: &[u8]) {
    let mut n = 0usize;
    let mut failed = false;
    for m in netlink::parse(data) {
        assert!(!failed, "a message after an error");
        n += 1;
        assert!(
            n <= data.len() / 16 + 1,
            "{n} messages from {} bytes",
            data.len()
        );
        failed = m.is_err();
    }
}

/// The Consul KV reply handling: the first two bytes pick the HTTP status (mostly 200, also
/// 404, 500, and when their low 3 bits are all set, the status in the other 13), the rest is
/// the body. A value, no key, or an error that names the
/// reason in bounded text; the blocking index never goes backwards unless reset to 0.
pub fn consul(data: &[u8]) {
    let [a, b, body @ ..] = data else {
        return;
    };
    let raw = u16::from_be_bytes([*a, *b]);
    let status = match raw % 8 {
        0..=4 => 200,
        5 => 404,
        6 => 500,
        _ => raw >> 3,
    };
    match consul::parse_list(status, body, "service/pg/") {
        Ok(list) => assert!(list.len() <= consul::MAX_ENTRIES, "{} entries", list.len()),
        Err(e) => assert!(
            !e.is_empty() && e.chars().count() <= 400,
            "error of {} chars",
            e.len()
        ),
    }
    match consul::parse_kv(status, body, "service/pg/leader") {
        Ok(_) => assert!(status == 200 || status == 404, "a value from HTTP {status}"),
        Err(e) => assert!(
            !e.is_empty() && e.chars().count() <= 300,
            "error text of {} chars",
            e.chars().count()
        ),
    }
    let previous = u64::from(raw);
    let reply = body
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
    let next = consul::next_index(previous, reply);
    assert!(next == 0 || next >= previous, "index {previous} -> {next}");
}

/// The etcd v2 keys reply handling (Patroni's `etcd:` section): a node or an error.
pub fn etcd2(data: &[u8]) {
    // A replica VIP's recursive read and wait event: never a panic, bounded text.
    for text in [
        etcd2::recursive::parse_listing(data, "/service/demo").err(),
        etcd2::recursive::parse_event(data, "/service/demo").err(),
    ]
    .into_iter()
    .flatten()
    {
        assert!(
            text.to_string().chars().count() <= 400,
            "error of {} chars",
            text.to_string().len()
        );
    }
    match etcd2::parse_reply(data, "/service/demo/leader") {
        Ok(_) | Err(etcd2::ReplyError::Malformed(_)) => {}
        Err(etcd2::ReplyError::Etcd { message, .. }) => {
            assert!(
                message.chars().count() <= 300,
                "message of {} chars",
                message.len()
            )
        }
    }
}

/// The HTTP reply parser, fed as from the network: the first byte picks the body limit and
/// the size of each read; the reply is parsed after every read, as the client does. Once
/// complete, it stays the same however much more arrives (unless the connection's end
/// completes it); a body never exceeds the limit; error texts are short. The rest of the
/// input also goes through the chunked stream decoder of etcd's watch, bounded the same
/// way.
pub fn http_reply(data: &[u8]) {
    let [pick, reply @ ..] = data else {
        return;
    };
    let limit = 16 << (pick >> 4);
    let step = usize::from(pick & 15) + 1;
    let mut complete = None;
    let mut received = 0;
    while received < reply.len() {
        received = (received + step).min(reply.len());
        match wire::parse_reply(&reply[..received], false, limit) {
            Ok(Some(r)) => {
                assert!(r.body.len() <= limit, "body of {} > {limit}", r.body.len());
                assert!((100..600).contains(&r.status), "status {}", r.status);
                if let Some(first) = &complete {
                    assert_eq!(first, &r, "the reply changed after it was complete");
                }
                complete = Some(r);
            }
            Ok(None) => assert!(complete.is_none(), "a complete reply became incomplete"),
            Err(e) => {
                assert!(!e.is_empty() && e.chars().count() <= 800, "error {e:?}");
                break;
            }
        }
    }
    if let Ok(Some(r)) = wire::parse_reply(reply, true, limit) {
        assert!(r.body.len() <= limit && r.body.len() <= reply.len());
    }
    let mut raw = reply.to_vec();
    let mut out = Vec::new();
    for _ in 0..4 {
        match wire::decode_chunks(&mut raw, &mut out, limit) {
            Ok(true) => assert!(out.len() <= reply.len()),
            Ok(false) => break,
            Err(e) => {
                assert!(!e.is_empty() && e.chars().count() <= 800, "error {e:?}");
                break;
            }
        }
    }
}

/// The conflict listener's frame check, for an IPv4 and an IPv6 VIP: a claim's MAC is
/// read from the frame (the ARP sender MAC; the NA's option or Ethernet source).
pub fn conflict(data: &[u8]) {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 50));
    let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x50));
    if let Some(mac) = conflict::claim(data, v4) {
        assert_eq!(data.get(22..28), Some(&mac[..]), "ARP sender MAC");
        assert_eq!(data.get(28..32), Some(&[192, 0, 2, 50][..]), "sender IP");
    }
    if let Some(mac) = conflict::claim(data, v6) {
        assert!(data.len() >= 78, "an NA with its target");
        assert!(
            data.windows(6).skip(6).any(|w| w == mac),
            "MAC from the frame"
        );
    }
}

/// A replica VIP's reading of the scope: the input is a sequence of records separated by
/// 0xFF, each a selector byte (which key: leader, status, optime/leader, sync, or one of
/// 300 member names, beyond the member bound) and the value; then the same input as
/// Patroni's `GET /cluster` reply. Nothing panics, the holder is always a name that
/// was put in (a member or the leader), and an oversized record is never kept.
pub fn scope(data: &[u8]) {
    use std::time::{Duration, Instant};
    use vipd::dcs::Observation;
    use vipd::dcs::scope::{Fallback, Role, Rules, Scope, parse_member};

    let role = match data.first().copied().unwrap_or(0) % 3 {
        0 => Role::Replica,
        1 => Role::Sync,
        _ => Role::Primary,
    };
    let rules = Rules {
        role,
        vip: "192.0.2.60".into(),
        max_lag: data.get(1).map(|b| u64::from(*b) << 16),
        settle: Duration::from_millis(u64::from(data.get(2).copied().unwrap_or(0)) * 10),
        fallback: match data.get(3).copied().unwrap_or(0) % 2 {
            0 => Fallback::Primary,
            _ => Fallback::None,
        },
        skip_nofailover: data.get(4).is_some_and(|b| b % 2 == 1),
    };
    let mut s = Scope::new(rules, "/service/fz/leader", "n7");
    let (mut names, mut saw_leader) = (Vec::new(), false);
    let now = Instant::now();
    for (i, record) in data.split(|b| *b == 0xff).enumerate() {
        let Some((&selector, value)) = record.split_first() else {
            continue;
        };
        let key = match selector {
            0 => "leader".to_string(),
            1 => "status".to_string(),
            2 => "optime/leader".to_string(),
            3 => "sync".to_string(),
            4 => "history".to_string(),
            n => format!("members/n{}", u32::from(n) * 2 % 300),
        };
        if selector == 0 {
            saw_leader = true;
        } else if let Some(name) = key.strip_prefix("members/") {
            names.push(name.to_string());
        }
        if selector == 5 {
            s.delete(&format!("/service/fz/{key}"), i % 2 == 0);
        } else {
            s.put(&format!("/service/fz/{key}"), value, i64::from(selector));
        }
        match s.observe(now + Duration::from_millis(i as u64 * 100)) {
            // A member put in, or the leader key's value (cut to a bound, made UTF-8).
            Observation::Leader(name) => assert!(
                names.contains(&name) || (saw_leader && name.len() <= 4 * 1024),
                "holder {name:?} was never put in"
            ),
            Observation::NoLeader | Observation::Unknown(_) => {}
        }
        if let Err(why) = parse_member(value) {
            assert!(
                !why.is_empty() && why.len() <= 200,
                "reason of {} bytes",
                why.len()
            );
        }
    }
    assert!(
        s.digest().len() <= 64 * 1024 * 300,
        "digest of {} bytes",
        s.digest().len()
    );
    let mut c = Scope::new(s.rules().clone(), "/cluster", "n7");
    if c.load_cluster(data).is_ok() {
        let _ = c.observe(now);
    }
}
