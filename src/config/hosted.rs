//! `manager-type` and the settings of a hosted failover IP: which provider, its
//! credentials (read here, so that a missing or malformed file is a configuration
//! error naming it), this server's identity at the provider, the API's address and
//! the recheck, held to the provider's documented rate limits.

use std::net::IpAddr;
use std::time::Duration;

use super::sources::{Sources, read_secret, read_text};
use super::values::{parse_endpoint, parse_ip};
use super::{ConfigError, Secret};
use crate::hosted::{
    CloudSettings, Provider, RobotSettings, ServerIp, Settings, cloud, credentials, robot,
};

pub const ROBOT_API: &str = "https://robot-ws.your-server.de";
pub const CLOUD_API: &str = "https://api.hetzner.cloud/v1";
pub const CREDENTIALS_FILE: &str = "/etc/hetzner";
const DEFAULT_RECHECK_MS: u64 = 60_000;
const MAX_RECHECK_MS: u64 = 3_600_000;

const ROBOT_KEYS: &[&str] = &[
    "hetzner-credentials-file",
    "hetzner-user",
    "hetzner-password-file",
    "hetzner-server-ip",
    "hetzner-local-address",
    "hetzner-api-url",
];
const CLOUD_KEYS: &[&str] = &[
    "hetzner-cloud-token-file",
    "hetzner-floating-ip-id",
    "hetzner-server-id",
    "hetzner-cloud-api-url",
];
const COMMON_KEYS: &[&str] = &["hetzner-ca-file", "hetzner-recheck"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Manager {
    Basic,
    Robot,
    Cloud,
}

/// The hosted failover IP's settings; `None` for `manager-type basic`. Settings of
/// another manager type are noted as ignored.
pub(super) fn hosted(
    src: &Sources<'_>,
    vip: IpAddr,
    warnings: &mut Vec<String>,
) -> Result<Option<Settings>, ConfigError> {
    let manager = match src.text("manager-type")? {
        None => Manager::Basic,
        Some((v, origin)) => match v.to_ascii_lowercase().as_str() {
            "basic" => Manager::Basic,
            "hetzner" => Manager::Robot,
            "hetzner-cloud" | "hetzner_cloud" => Manager::Cloud,
            _ => {
                return Err(ConfigError(format!(
                    "{origin}: {v:?} is not a manager type (basic, hetzner or hetzner-cloud)"
                )));
            }
        },
    };
    let unused: Vec<&str> = match manager {
        Manager::Basic => [ROBOT_KEYS, CLOUD_KEYS, COMMON_KEYS].concat(),
        Manager::Robot => CLOUD_KEYS.to_vec(),
        Manager::Cloud => ROBOT_KEYS.to_vec(),
    };
    for origin in unused.iter().filter_map(|k| src.origin(k)) {
        warnings.push(format!(
            "{origin} is ignored with manager-type {}",
            match manager {
                Manager::Basic => "basic",
                Manager::Robot => "hetzner",
                Manager::Cloud => "hetzner-cloud",
            }
        ));
    }
    if manager != Manager::Basic && !cfg!(feature = "tls") {
        let origin = src.origin("manager-type").unwrap_or("manager-type");
        return Err(ConfigError(format!(
            "{origin}: the provider's API is https only, and this vipd was built without \
             TLS (cargo feature \"tls\")"
        )));
    }
    let provider = match manager {
        Manager::Basic => return Ok(None),
        Manager::Robot => Provider::Robot(robot_settings(src, vip, warnings)?),
        Manager::Cloud => Provider::Cloud(cloud_settings(src)?),
    };
    let min = match provider {
        Provider::Robot(_) => robot::MIN_RECHECK,
        Provider::Cloud(_) => cloud::MIN_RECHECK,
    };
    let min_ms = u64::try_from(min.as_millis()).unwrap_or(u64::MAX);
    let recheck = src.number(
        "hetzner-recheck",
        DEFAULT_RECHECK_MS,
        min_ms,
        MAX_RECHECK_MS,
    )?;
    Ok(Some(Settings {
        provider,
        ca_file: src.readable_file("hetzner-ca-file")?,
        recheck: Duration::from_millis(recheck),
    }))
}

fn robot_settings(
    src: &Sources<'_>,
    vip: IpAddr,
    warnings: &mut Vec<String>,
) -> Result<RobotSettings, ConfigError> {
    let (user, password) = robot_credentials(src, warnings)?;
    let server_ip = match src.text("hetzner-server-ip")? {
        Some((v, origin)) => {
            let ip = parse_ip(v, origin)?;
            if ip.is_ipv6() != vip.is_ipv6() {
                return Err(ConfigError(format!(
                    "{origin}: {v:?} is not of the failover IP {vip}'s family \
                     (Robot routes it to the server's address of that family)"
                )));
            }
            ServerIp::Given(ip)
        }
        None => match src.text("interface")? {
            Some((name, _)) => ServerIp::Interface(name.to_string()),
            None => ServerIp::Route,
        },
    };
    Ok(RobotSettings {
        api_url: api_url(src, "hetzner-api-url", ROBOT_API)?,
        user,
        password,
        server_ip,
        local_address: src.bool("hetzner-local-address", false)?,
    })
}

/// `hetzner-user` with `hetzner-password-file`, or else the credentials file.
fn robot_credentials(
    src: &Sources<'_>,
    warnings: &mut Vec<String>,
) -> Result<(String, Secret), ConfigError> {
    let user = src.text("hetzner-user")?;
    let password_file = src.text("hetzner-password-file")?;
    let file = src.text("hetzner-credentials-file")?;
    match (user, password_file) {
        (Some((user, user_origin)), Some((path, origin))) => {
            if let Some((_, file_origin)) = file {
                warnings.push(format!(
                    "{file_origin} is ignored: hetzner-user and hetzner-password-file are set"
                ));
            }
            let password = read_secret(path, origin)?;
            Ok((header_safe(user, user_origin)?, password))
        }
        (Some((_, origin)), None) => Err(ConfigError(format!(
            "{origin}: set, but hetzner-password-file is not"
        ))),
        (None, Some((_, origin))) => Err(ConfigError(format!(
            "{origin}: set, but hetzner-user is not"
        ))),
        (None, None) => {
            let (path, origin) = file.unwrap_or((CREDENTIALS_FILE, "hetzner-credentials-file"));
            let text = read_text(path, origin, credentials::MAX_FILE as u64)?;
            credentials::parse(&text).map_err(|e| ConfigError(format!("{origin}: {path:?}: {e}")))
        }
    }
}

/// A user name travels in a Basic authorization header, after a `:`-free check.
fn header_safe(user: &str, origin: &str) -> Result<String, ConfigError> {
    if user.contains(':') || user.chars().any(char::is_control) {
        return Err(ConfigError(format!(
            "{origin}: {user:?} cannot be a Robot user (':' or control characters)"
        )));
    }
    Ok(user.to_string())
}

fn cloud_settings(src: &Sources<'_>) -> Result<CloudSettings, ConfigError> {
    let (path, origin) = src.text("hetzner-cloud-token-file")?.ok_or_else(|| {
        ConfigError(
            "hetzner-cloud-token-file: not set (required with manager-type hetzner-cloud)".into(),
        )
    })?;
    let token = read_secret(path, origin)?;
    let token = Secret(token.0.trim().to_string());
    if token.0.is_empty() || !token.0.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError(format!(
            "{origin}: {path:?} does not hold a token (one line of printable ASCII)"
        )));
    }
    let id = |key: &str| -> Result<u64, ConfigError> {
        let (v, origin) = src.text(key)?.ok_or_else(|| {
            ConfigError(format!(
                "{key}: not set (required with manager-type hetzner-cloud)"
            ))
        })?;
        v.parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(|| {
            ConfigError(format!(
                "{origin}: {v:?} is not an id (a positive whole number)"
            ))
        })
    };
    Ok(CloudSettings {
        api_url: api_url(src, "hetzner-cloud-api-url", CLOUD_API)?,
        token,
        floating_ip_id: id("hetzner-floating-ip-id")?,
        server_id: id("hetzner-server-id")?,
    })
}

/// An API base URL: https:// only (credentials travel with every call).
fn api_url(src: &Sources<'_>, key: &str, default: &str) -> Result<String, ConfigError> {
    let Some((v, origin)) = src.text(key)? else {
        return Ok(default.to_string());
    };
    let url = parse_endpoint(v, origin)?.trim_end_matches('/').to_string();
    if !url.starts_with("https://") {
        return Err(ConfigError(format!(
            "{origin}: {v:?} must be an https:// URL (the credentials travel with each call)"
        )));
    }
    Ok(url)
}
