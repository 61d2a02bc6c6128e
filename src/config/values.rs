//! Reading single values: booleans, bounded numbers, the address, prefix length,
//! interface name and DCS URLs. Each error is one line that starts with the value's
//! origin and quotes the value.

use std::net::IpAddr;

use super::ConfigError;
use super::sources::Setting;
use super::yaml::Value;

/// Go's `strconv.ParseBool` words plus YAML's yes/no and on/off.
pub(super) fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "on" | "1" => Some(true),
        "false" | "f" | "no" | "n" | "off" | "0" => Some(false),
        _ => None,
    }
}

pub(super) fn parse_number(v: &str, origin: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfigError(format!(
            "{origin}: {v:?} is not a whole number"
        )));
    }
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ConfigError(format!(
            "{origin}: {v:?} is out of range {min}..{max}"
        ))),
    }
}

/// The prefix length of a contiguous dotted-quad mask, for the error hint.
fn dotted_mask_len(v: &str) -> Option<u32> {
    let mask: std::net::Ipv4Addr = v.parse().ok()?;
    let bits = u32::from(mask);
    let len = bits.leading_ones();
    (bits.checked_shl(len).unwrap_or(0) == 0).then_some(len)
}

pub(super) fn parse_netmask(v: &str, origin: &str, addr: IpAddr) -> Result<u8, ConfigError> {
    let (max, family) = match addr {
        IpAddr::V4(_) => (32u8, "IPv4"),
        IpAddr::V6(_) => (128u8, "IPv6"),
    };
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return match v.parse::<u8>() {
            // /0 would make the VIP's prefix route a default route: refused.
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ConfigError(format!(
                "{origin}: {v:?} is out of range 1..{max} for an {family} address"
            ))),
        };
    }
    let hint = match dotted_mask_len(v) {
        Some(len) => format!(" (write {len} for this mask)"),
        None => String::new(),
    };
    Err(ConfigError(format!(
        "{origin}: {v:?} is not a prefix length 1..{max}{hint}"
    )))
}

pub(super) fn parse_ip(v: &str, origin: &str) -> Result<IpAddr, ConfigError> {
    let Ok(addr) = v.parse::<IpAddr>() else {
        let hint = if v.contains('/') {
            " (give the prefix length in netmask)"
        } else {
            ""
        };
        return Err(ConfigError(format!(
            "{origin}: {v:?} is not an IP address{hint}"
        )));
    };
    let unusable = match addr {
        IpAddr::V4(a) => a.is_unspecified() || a.is_multicast() || a.is_broadcast(),
        IpAddr::V6(a) => a.is_unspecified() || a.is_multicast(),
    };
    if unusable {
        return Err(ConfigError(format!(
            "{origin}: {v:?} is not a unicast address"
        )));
    }
    Ok(addr)
}

/// Linux's rules for an interface name (`dev_valid_name`).
pub(super) fn valid_interface(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

/// One DCS URL: scheme http or https, a host, an optional numeric port; the trailing
/// `/` removed. Credentials in the URL are refused without echoing them.
pub(super) fn parse_endpoint(raw: &str, origin: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| ConfigError(format!("{origin}: {raw:?} {why}"));
    let Some((scheme, rest)) = raw.split_once("://") else {
        return Err(bad("has no scheme (expected http:// or https://)"));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(bad(
            "has an unsupported scheme (expected http:// or https://)",
        ));
    }
    let rest = rest.trim_end_matches('/');
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if rest.contains('@') {
        return Err(ConfigError(format!(
            "{origin}: an endpoint has user information before '@'; \
             use etcd-user and etcd-password instead"
        )));
    }
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains blanks"));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        match bracketed.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) => match p.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return Err(bad("has a malformed host")),
            },
            None => return Err(bad("has a malformed host")),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err() {
            return Err(bad("has an invalid port"));
        }
    }
    Ok(format!("{scheme}://{rest}"))
}

pub(super) fn parse_endpoints(s: &Setting) -> Result<Vec<String>, ConfigError> {
    let items: Vec<&str> = match &s.value {
        Value::Scalar(v) => v
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .collect(),
        Value::List(items) => items.iter().map(|i| i.trim()).collect(),
    };
    if items.is_empty() {
        return Err(ConfigError(format!("{}: no endpoint given", s.origin)));
    }
    items
        .into_iter()
        .map(|item| parse_endpoint(item, &s.origin))
        .collect()
}
