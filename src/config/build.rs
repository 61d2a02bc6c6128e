//! Building the [`Config`] from the layered sources: each setting read and checked,
//! alone and against the others (DCS type, credentials, TLS files), with a warning
//! for each default worth knowing and each setting that has no effect.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use super::sources::Sources;
use super::values::{
    parse_endpoint, parse_endpoints, parse_ip, parse_netmask, parse_number, valid_interface,
};
use super::yaml::Value;
use super::{Config, ConfigError, DcsType, Secret};
use crate::dcs::scope::{Fallback, Role, Rules, parse_lag};
use crate::decide::Grace;
use crate::net::{AnnounceMode, Vip};

/// `trigger-key` and `trigger-value` with `dcs-type patroni`, as vip-manager sets them.
const PATRONI_TRIGGER_KEY: &str = "/leader";
const PATRONI_TRIGGER_VALUE: &str = "200";
/// What a replica VIP reads with `dcs-type patroni`: every member, with its role,
/// state, tags and lag.
const PATRONI_CLUSTER_PATH: &str = "/cluster";

/// The longest interval, announce-interval (1 hour) and dcs-grace (1 day) accepted, so
/// that deadline arithmetic stays far from overflow.
const MAX_MS: u64 = 3_600_000;
const MAX_GRACE_MS: u64 = 86_400_000;
const MIN_INTERVAL_MS: u64 = 10;
const MAX_ANNOUNCE_COUNT: u64 = 100;
/// The default vip-lifetime when 3 × interval is less.
const DEFAULT_LIFETIME_MS: u64 = 10_000;

/// The configuration the sources describe; `hostname` is the default trigger-value.
pub(super) fn build(
    src: &Sources<'_>,
    hostname: &str,
    config_file: Option<PathBuf>,
    warnings: &mut Vec<String>,
) -> Result<Config, ConfigError> {
    let dcs_type = dcs_type(src)?;
    let vip = vip(src, warnings)?;
    let hosted = super::hosted::hosted(src, vip.addr, warnings)?;
    // A routed Robot failover IP needs no interface unless it is also added there.
    let interface = match &hosted {
        Some(h) if !h.local_address() && src.origin("interface").is_none() => String::new(),
        _ => interface(src)?,
    };
    let replica = replica(src, &vip)?;
    let (trigger_key, trigger_value) =
        trigger(src, dcs_type, hostname, replica.is_some(), warnings)?;
    let endpoints = endpoints(src, dcs_type, warnings)?;
    let (etcd_user, etcd_password) = etcd_credentials(src, dcs_type, warnings)?;
    let consul_token = consul_token(src, dcs_type, warnings)?;
    let [etcd_ca_file, etcd_cert_file, etcd_key_file] = tls_files(src, &endpoints, warnings)?;
    let interval = src.number("interval", 1000, MIN_INTERVAL_MS, MAX_MS)?;
    let dcs_grace = dcs_grace(src)?;
    // Never below interval (a turn reads at most once): an error names the range.
    let dcs_check_interval =
        src.number("dcs-check-interval", interval.max(3000), interval, MAX_MS)?;
    let (patroni_url, primary_check) = patroni(src, replica.is_some(), warnings)?;
    let (announce_count, announce_interval, announce_mode) =
        announcements(src, vip.addr, warnings)?;
    for key in ["retry-num", "retry-after"] {
        if let Some(origin) = src.origin(key) {
            warnings.push(format!(
                "{origin} is ignored: vipd retries the DCS every interval"
            ));
        }
    }
    Ok(Config {
        vip,
        interface,
        trigger_key,
        trigger_value,
        dcs_type,
        endpoints,
        etcd_user,
        etcd_password,
        etcd_ca_file,
        etcd_cert_file,
        etcd_key_file,
        consul_token,
        interval: Duration::from_millis(interval),
        dcs_grace,
        status_file: src.text("status-file")?.map(|(v, _)| PathBuf::from(v)),
        keep_on_exit: src.bool("keep-on-exit", false)?,
        vip_lifetime: vip_lifetime(src, interval)?,
        announce_count,
        announce_interval,
        announce_mode,
        no_watch: src.bool("no-watch", false)?,
        dcs_check_interval: Duration::from_millis(dcs_check_interval),
        patroni_url,
        primary_check,
        metrics_listen: metrics_listen(src)?,
        on_change: on_change(src)?,
        on_change_timeout: Duration::from_millis(src.number(
            "on-change-timeout",
            10_000,
            1,
            MAX_MS,
        )?),
        replica,
        hosted,
        conflict_probe_interval: match src.number("conflict-probe-interval", 10_000, 0, MAX_MS)? {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        },
        verbose: src.bool("verbose", false)?,
        config_file,
    })
}

/// `patroni-url` (an http:// or https:// URL) and `primary-check`, which is on by
/// default with it and cannot be on without it.
/// With a `replica` or `sync` VIP there is no primary to wait for: `primary-check` is
/// off (and ignored, with a warning, when set).
fn patroni(
    src: &Sources<'_>,
    replica: bool,
    warnings: &mut Vec<String>,
) -> Result<(Option<String>, bool), ConfigError> {
    let url = match src.text("patroni-url")? {
        Some((v, origin)) => Some(parse_endpoint(v, origin)?.trim_end_matches('/').to_string()),
        None => None,
    };
    if replica {
        if let Some(origin) = src.origin("primary-check") {
            warnings.push(format!(
                "{origin} is ignored: a replica VIP never waits for a primary"
            ));
        }
        return Ok((url, false));
    }
    let check = src.bool("primary-check", url.is_some())?;
    if check && url.is_none() {
        let origin = src.origin("primary-check").unwrap_or("primary-check");
        return Err(ConfigError(format!(
            "{origin}: needs patroni-url (the node's Patroni REST API to ask)"
        )));
    }
    Ok((url, check))
}

/// `vip-role` and, for `replica` and `sync`, the eligibility rules; `None` for the
/// primary VIP (the leader key alone, as without `vip-role`).
fn replica(src: &Sources<'_>, vip: &Vip) -> Result<Option<Rules>, ConfigError> {
    let role = match src.text("vip-role")? {
        None => Role::Primary,
        Some((v, origin)) => match v.to_ascii_lowercase().as_str() {
            "primary" | "master" | "leader" => Role::Primary,
            "replica" => Role::Replica,
            "sync" => Role::Sync,
            _ => {
                return Err(ConfigError(format!(
                    "{origin}: {v:?} is not a role (primary, replica or sync)"
                )));
            }
        },
    };
    let keys = [
        "replica-max-lag",
        "replica-settle",
        "replica-fallback",
        "replica-skip-nofailover",
    ];
    if role == Role::Primary {
        if let Some(key) = keys.iter().find(|k| src.origin(k).is_some()) {
            let origin = src.origin(key).unwrap_or(key);
            return Err(ConfigError(format!(
                "{origin}: needs vip-role replica or sync (this VIP follows the primary)"
            )));
        }
        return Ok(None);
    }
    let max_lag = match src.text("replica-max-lag")? {
        None => None,
        Some((v, origin)) => Some(parse_lag(v).ok_or_else(|| {
            ConfigError(format!(
                "{origin}: {v:?} is not a size (bytes, or a number with kB, MB, GB or TB)"
            ))
        })?),
    };
    let fallback = match src.text("replica-fallback")? {
        None => Fallback::Primary,
        Some((v, origin)) => match v.to_ascii_lowercase().as_str() {
            "primary" => Fallback::Primary,
            "none" => Fallback::None,
            _ => {
                return Err(ConfigError(format!(
                    "{origin}: {v:?} is not primary or none"
                )));
            }
        },
    };
    Ok(Some(Rules {
        role,
        vip: vip.addr.to_string(),
        max_lag,
        settle: Duration::from_millis(src.number("replica-settle", 30_000, 0, MAX_GRACE_MS)?),
        fallback,
        skip_nofailover: src.bool("replica-skip-nofailover", false)?,
    }))
}

fn dcs_type(src: &Sources<'_>) -> Result<DcsType, ConfigError> {
    let Some((v, origin)) = src.text("dcs-type")? else {
        return Ok(DcsType::Etcd);
    };
    match v.to_ascii_lowercase().as_str() {
        "etcd" => Ok(DcsType::Etcd),
        "etcd3" => Ok(DcsType::Etcd3),
        "etcd2" => Ok(DcsType::Etcd2),
        "consul" => Ok(DcsType::Consul),
        "patroni" => Ok(DcsType::Patroni),
        _ => Err(ConfigError(format!(
            "{origin}: {v:?} is not a known dcs-type \
             (expected etcd, etcd3, etcd2, consul or patroni)"
        ))),
    }
}

/// The address and its prefix length: a single address, with a warning, when the
/// netmask is not set.
fn vip(src: &Sources<'_>, warnings: &mut Vec<String>) -> Result<Vip, ConfigError> {
    let (ip, ip_origin) = src.required("ip")?;
    let addr = parse_ip(ip, ip_origin)?;
    let prefix_len = match src.text("netmask")? {
        Some((v, origin)) => parse_netmask(v, origin, addr)?,
        None => {
            let len = if addr.is_ipv4() { 32 } else { 128 };
            warnings.push(format!(
                "netmask: not set; adding {addr}/{len} (a single address; set netmask to the \
                 subnet's prefix length, e.g. 24, as vip-manager required)"
            ));
            len
        }
    };
    Ok(Vip { addr, prefix_len })
}

fn interface(src: &Sources<'_>) -> Result<String, ConfigError> {
    let (interface, origin) = src.required("interface")?;
    if !valid_interface(interface) {
        return Err(ConfigError(format!(
            "{origin}: {interface:?} is not a valid interface name \
             (at most 15 bytes; no '/', ':' or blanks)"
        )));
    }
    Ok(interface.to_string())
}

/// The key to watch and the value that means "this node", with Patroni's defaults.
/// `trigger-key` and `trigger-value`. A replica VIP reads the scope the trigger key
/// is in (`dcs-type patroni`: `GET /cluster`), and the value is this node's member name.
fn trigger(
    src: &Sources<'_>,
    dcs_type: DcsType,
    hostname: &str,
    replica: bool,
    warnings: &mut Vec<String>,
) -> Result<(String, String), ConfigError> {
    let key = match (src.text("trigger-key")?, dcs_type) {
        // Patroni's status codes say nothing of the replicas: read its /cluster, at a
        // path of the operator's (a proxy's prefix) only when it names that.
        (Some((v, origin)), DcsType::Patroni) if replica && !v.ends_with("/cluster") => {
            warnings.push(format!(
                "{origin} is ignored: a replica VIP with dcs-type patroni reads \
                 {PATRONI_CLUSTER_PATH}"
            ));
            PATRONI_CLUSTER_PATH
        }
        (Some((v, origin)), _) if replica && dcs_type != DcsType::Patroni => {
            let scope = v.trim_start_matches('/').rsplit_once('/').map(|(s, _)| s);
            if scope.is_none_or(str::is_empty) {
                return Err(ConfigError(format!(
                    "{origin}: {v:?} has no scope: a replica VIP reads the records next to \
                     the leader key, <namespace>/<scope>/leader"
                )));
            }
            v
        }
        (Some((v, _)), _) => v,
        (None, DcsType::Patroni) if replica => PATRONI_CLUSTER_PATH,
        (None, DcsType::Patroni) => PATRONI_TRIGGER_KEY,
        (None, _) => src.required("trigger-key")?.0,
    };
    let value = match src.text("trigger-value")? {
        Some((v, _)) => v,
        None if dcs_type == DcsType::Patroni && !replica => PATRONI_TRIGGER_VALUE,
        None if hostname.trim().is_empty() => {
            return Err(ConfigError(
                "trigger-value: not set, and the hostname is empty".into(),
            ));
        }
        None => hostname.trim(),
    };
    Ok((key.to_string(), value.to_string()))
}

fn endpoints(
    src: &Sources<'_>,
    dcs_type: DcsType,
    warnings: &mut Vec<String>,
) -> Result<Vec<String>, ConfigError> {
    let endpoints = match src.setting("dcs-endpoints") {
        Some((_, s)) => parse_endpoints(s)?,
        None => vec![dcs_type.default_endpoint().to_string()],
    };
    if dcs_type == DcsType::Patroni && endpoints.len() > 1 {
        let origin = src.origin_of_any(&["dcs-endpoints"]);
        warnings.push(format!(
            "{origin}: dcs-type patroni uses only the first endpoint, {:?} (this node's \
             Patroni); the others are ignored",
            endpoints[0]
        ));
    }
    Ok(endpoints)
}

/// etcd's user and password: a password needs a user; both are noted as ignored
/// with another DCS.
fn etcd_credentials(
    src: &Sources<'_>,
    dcs_type: DcsType,
    warnings: &mut Vec<String>,
) -> Result<(Option<String>, Option<Secret>), ConfigError> {
    let user = src.text("etcd-user")?.map(|(v, _)| v.to_string());
    let password = src.secret("etcd-password", "etcd-password-file")?;
    if dcs_type.is_etcd() {
        if user.is_none() && password.is_some() {
            let origin = src.origin_of_any(&["etcd-password", "etcd-password-file"]);
            return Err(ConfigError(format!("{origin}: set, but etcd-user is not")));
        }
        if user.is_some() && password.is_none() {
            let origin = src.origin_of_any(&["etcd-user"]);
            warnings.push(format!(
                "{origin}: set without etcd-password; authenticating with an empty password"
            ));
        }
    }
    Ok((user, password))
}

/// Consul's token: only with Consul, and it must fit in an HTTP header. Settings
/// of etcd's are noted as ignored here, after the token, as they always were.
fn consul_token(
    src: &Sources<'_>,
    dcs_type: DcsType,
    warnings: &mut Vec<String>,
) -> Result<Option<Secret>, ConfigError> {
    let token = src.secret("consul-token", "consul-token-file")?;
    let origin = src.origin_of_any(&["consul-token", "consul-token-file"]);
    if let Some(t) = &token {
        if dcs_type != DcsType::Consul {
            warnings.push(format!(
                "{origin} is ignored: it is used only with dcs-type consul"
            ));
        } else if !t.0.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) || t.0.trim() != t.0 {
            // It travels as an HTTP header value (the value is never shown).
            return Err(ConfigError(format!(
                "{origin}: the token contains characters an HTTP header cannot carry \
                 (control or non-ASCII characters, or blanks at either end)"
            )));
        }
    }
    if !dcs_type.is_etcd() {
        for key in ["etcd-user", "etcd-password", "etcd-password-file"] {
            if let Some(origin) = src.origin(key) {
                warnings.push(format!(
                    "{origin} is ignored: it is used only with dcs-type etcd, etcd3 or etcd2"
                ));
            }
        }
    }
    Ok(token)
}

/// The CA, certificate and key files: readable, certificate and key together, and
/// noted as ignored when no endpoint uses https://.
fn tls_files(
    src: &Sources<'_>,
    endpoints: &[String],
    warnings: &mut Vec<String>,
) -> Result<[Option<PathBuf>; 3], ConfigError> {
    let keys = ["etcd-ca-file", "etcd-cert-file", "etcd-key-file"];
    let files = [
        src.readable_file(keys[0])?,
        src.readable_file(keys[1])?,
        src.readable_file(keys[2])?,
    ];
    let (cert, key) = (keys[1], keys[2]);
    match (&files[1], &files[2]) {
        (Some(_), None) => {
            let origin = src.origin_of_any(&[cert]);
            return Err(ConfigError(format!("{origin}: set, but {key} is not")));
        }
        (None, Some(_)) => {
            let origin = src.origin_of_any(&[key]);
            return Err(ConfigError(format!("{origin}: set, but {cert} is not")));
        }
        _ => {}
    }
    if !endpoints.iter().any(|e| e.starts_with("https://")) {
        for origin in keys.iter().filter_map(|k| src.origin(k)) {
            warnings.push(format!(
                "{origin} is ignored: no dcs-endpoint uses https://"
            ));
        }
    }
    Ok(files)
}

fn dcs_grace(src: &Sources<'_>) -> Result<Grace, ConfigError> {
    match src.text("dcs-grace")? {
        None => Ok(Grace::After(Duration::from_secs(10))),
        Some((v, _)) if v.eq_ignore_ascii_case("never") => Ok(Grace::Never),
        Some((v, origin)) if !v.bytes().all(|b| b.is_ascii_digit()) => Err(ConfigError(format!(
            "{origin}: {v:?} is not a whole number of milliseconds or \"never\""
        ))),
        Some((v, origin)) => {
            let ms = parse_number(v, origin, 0, MAX_GRACE_MS)?;
            Ok(Grace::After(Duration::from_millis(ms)))
        }
    }
}

/// How long the kernel keeps the VIP without a refresh (`None`: forever). vipd
/// refreshes it every third of the lifetime, at a turn: below 3 × interval a
/// healthy holder could see its VIP expire between two turns.
fn vip_lifetime(src: &Sources<'_>, interval_ms: u64) -> Result<Option<Duration>, ConfigError> {
    let min = interval_ms.saturating_mul(3);
    let ms = match src.text("vip-lifetime")? {
        None => DEFAULT_LIFETIME_MS.max(min),
        Some((v, _)) if v.eq_ignore_ascii_case("forever") => return Ok(None),
        Some((v, origin)) if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(ConfigError(format!(
                "{origin}: {v:?} is not a whole number of milliseconds or \"forever\""
            )));
        }
        Some((v, origin)) => match v.parse::<u64>() {
            Ok(ms) if ms < min => {
                return Err(ConfigError(format!(
                    "{origin}: {v:?} is below 3 × interval ({min} ms): the VIP could \
                     expire between two refreshes"
                )));
            }
            Ok(ms) if ms <= MAX_GRACE_MS => ms,
            _ => {
                return Err(ConfigError(format!(
                    "{origin}: {v:?} is out of range {min}..{MAX_GRACE_MS} (or \"forever\")"
                )));
            }
        },
    };
    Ok(Some(Duration::from_millis(ms)))
}

/// `metrics-listen`: an IP address and a port (`127.0.0.1:9617`, `[::1]:9617`). Whether
/// it can be bound is found out when vipd starts (or reloads) the server.
fn metrics_listen(src: &Sources<'_>) -> Result<Option<SocketAddr>, ConfigError> {
    let Some((v, origin)) = src.text("metrics-listen")? else {
        return Ok(None);
    };
    match v.parse::<SocketAddr>() {
        Ok(addr) if addr.port() != 0 => Ok(Some(addr)),
        _ if v.parse::<IpAddr>().is_ok() || !v.contains(':') => Err(ConfigError(format!(
            "{origin}: {v:?} has no port (expected ADDR:PORT, e.g. 127.0.0.1:9617)"
        ))),
        _ => Err(ConfigError(format!(
            "{origin}: {v:?} is not ADDR:PORT with an IP address and a port 1..65535 \
             (e.g. 127.0.0.1:9617 or [::1]:9617)"
        ))),
    }
}

/// `on-change`: in YAML a list (program, arguments), as a flag or variable one value
/// split at spaces (no shell, no quoting). The program must be an executable file.
fn on_change(src: &Sources<'_>) -> Result<Option<Vec<String>>, ConfigError> {
    let Some((_, setting)) = src.setting("on-change") else {
        return Ok(None);
    };
    let argv: Vec<String> = match &setting.value {
        Value::List(items) => items.clone(),
        Value::Scalar(v) => v.split_whitespace().map(str::to_string).collect(),
    };
    let origin = &setting.origin;
    let Some(program) = argv.first() else {
        return Ok(None);
    };
    if !program.starts_with('/') {
        return Err(ConfigError(format!(
            "{origin}: {program:?} is not an absolute path (no shell and no PATH lookup)"
        )));
    }
    match std::fs::metadata(program) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(Some(argv)),
        Ok(_) => Err(ConfigError(format!(
            "{origin}: {program:?} is not an executable file"
        ))),
        Err(e) => Err(ConfigError(format!("{origin}: {program:?}: {e}"))),
    }
}

/// How many announcements, how far apart, and of which ARP operation.
fn announcements(
    src: &Sources<'_>,
    addr: IpAddr,
    warnings: &mut Vec<String>,
) -> Result<(u32, Duration, AnnounceMode), ConfigError> {
    let count = src.number("announce-count", 3, 0, MAX_ANNOUNCE_COUNT)?;
    if addr.is_ipv6() && count > 3 {
        warnings.push(format!(
            "announce-count: {count} unsolicited neighbour advertisements; RFC 4861 \
             (section 7.2.6) allows at most 3"
        ));
    }
    let interval = src.number("announce-interval", 1000, 0, MAX_MS)?;
    let mode = match src.text("announce-mode")? {
        None => AnnounceMode::Request,
        Some((v, origin)) => match v.to_ascii_lowercase().as_str() {
            "request" => AnnounceMode::Request,
            "reply" => AnnounceMode::Reply,
            "both" => AnnounceMode::Both,
            _ => {
                return Err(ConfigError(format!(
                    "{origin}: {v:?} is not an announce-mode (expected request, reply or both)"
                )));
            }
        },
    };
    // Bounded by MAX_ANNOUNCE_COUNT above.
    let count = u32::try_from(count).unwrap_or(u32::MAX);
    Ok((count, Duration::from_millis(interval), mode))
}
