//! Configuration: vip-manager's keys from flags, `VIP_*` environment variables and a
//! flat YAML file, with vipd's own additions; precedence flag > env > file > default.
//!
//! One table (`options::OPTIONS`) drives all three sources and the `--help` text: each
//! option has its YAML key (`trigger-key`), its flag (`--trigger-key`, also
//! `-trigger-key`, with `=value` or the value as the next argument, as Go's `flag` and
//! `pflag` accept) and its environment variable (`VIP_TRIGGER_KEY`). The older names
//! vip-manager 0.x and 1.x used (`iface`, `key`, `host`, `nodename`, `mask`, `type`,
//! `endpoint`, `endpoint_type`, ...) are accepted with a one-line deprecation warning,
//! except the variables that Debian's `/etc/patroni/*.vip` files still set, which the
//! operator cannot change. Where one source sets an old and a new name, the new one
//! wins; if their values differ, one line names both and the value used.
//!
//! An empty value means unset (Debian's unit passes `--netmask="${VIP_MASK}"` even
//! when the variable is unset). Every bad value is a [`ConfigError`]: one line that
//! names where the value came from (`--netmask`, `VIP_NETMASK`, `/etc/vipd.yml:3: ip`),
//! the value quoted, and what is wrong with it. Passwords and tokens never appear in
//! any message.
//!
//! This module holds the public types and [`load`]; `options` the table, `args` the
//! command line, `sources` the layered sources, `values` and `build` the checks, and
//! `help` the `--help` text.

mod args;
mod build;
mod help;
mod hosted;
mod options;
mod sources;
mod values;
pub mod yaml;

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::dcs::Settings as DcsSettings;
use crate::dcs::http::TlsFiles;
use crate::dcs::scope::{Role, Rules};
use crate::decide::Grace;
use crate::net::{AnnounceMode, Vip};
use options::{CONFIG_ENV, Kind};
use sources::{Layer, Sources, env_layer, file_layer, given};

pub use crate::dcs::{DcsType, Secret};
pub use help::help_text;
pub use sources::unknown_env_warnings;

/// The validated configuration the daemon runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub vip: Vip,
    pub interface: String,
    pub trigger_key: String,
    pub trigger_value: String,
    pub dcs_type: DcsType,
    /// Base URLs with scheme, without trailing slash.
    pub endpoints: Vec<String>,
    pub etcd_user: Option<String>,
    /// From `etcd-password` or read from `etcd-password-file`.
    pub etcd_password: Option<Secret>,
    /// CA certificate to verify etcd's certificate (checked readable at load).
    pub etcd_ca_file: Option<PathBuf>,
    /// Client certificate for etcd (checked readable; set together with the key).
    pub etcd_cert_file: Option<PathBuf>,
    /// Private key of `etcd_cert_file` (checked readable).
    pub etcd_key_file: Option<PathBuf>,
    /// From `consul-token` or `consul-token-file`; only meaningful with Consul.
    pub consul_token: Option<Secret>,
    pub interval: Duration,
    pub dcs_grace: Grace,
    /// Where the daemon keeps its state as JSON (`status-file`).
    pub status_file: Option<PathBuf>,
    pub keep_on_exit: bool,
    /// How long the kernel keeps the VIP without a refresh (`vip-lifetime`);
    /// `None`: permanently. `--once` without an explicit value: `None`.
    pub vip_lifetime: Option<Duration>,
    pub announce_count: u32,
    pub announce_interval: Duration,
    pub announce_mode: AnnounceMode,
    /// Read the key every interval instead of a blocking watch.
    pub no_watch: bool,
    /// With an etcd v3 watch: the longest time between two reads of the key.
    pub dcs_check_interval: Duration,
    /// This node's Patroni REST API (`patroni-url`), without a trailing `/`.
    pub patroni_url: Option<String>,
    /// Add the VIP only once Patroni says this node is a running primary.
    pub primary_check: bool,
    /// Where Prometheus metrics are served (`metrics-listen`).
    pub metrics_listen: Option<SocketAddr>,
    /// The `on-change` program and its arguments (checked executable at load).
    pub on_change: Option<Vec<String>>,
    pub on_change_timeout: Duration,
    /// A `replica` or `sync` VIP's rules (`vip-role` and the `replica-*` options);
    /// `None`: the VIP follows the leader key.
    pub replica: Option<Rules>,
    /// A hosted failover IP (`manager-type hetzner` or `hetzner-cloud`); `None`:
    /// `basic`, an address on `interface` alone.
    pub hosted: Option<crate::hosted::Settings>,
    /// How often a holder probes for another holder (`conflict-probe-interval`);
    /// `None`: never.
    pub conflict_probe_interval: Option<Duration>,
    pub verbose: bool,
    /// The YAML file the configuration was read from, if any.
    pub config_file: Option<PathBuf>,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(Config),
    Once {
        config: Config,
        dry_run: bool,
        json: bool,
    },
    Help,
    Version,
}

/// A configuration error: one line naming the key, the value and, for files,
/// `file:line`. vipd exits with status 2 on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The result of [`load`]: what to do, and one-line warnings for the log
/// (deprecated names, unknown keys, defaults worth knowing, ignored settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub command: Command,
    pub warnings: Vec<String>,
}

/// Build the command from argv (without `argv[0]`), the environment (`env` looks a
/// variable up) and the YAML file they name; `hostname` is the default trigger-value.
///
/// `--help` and `--version` win over any other argument, even a wrong one.
pub fn load(
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
    hostname: &str,
) -> Result<Loaded, ConfigError> {
    let mut warnings = Vec::new();
    let cli = args::parse_args(args, &mut warnings)?;
    if cli.help || cli.version {
        let command = if cli.help {
            Command::Help
        } else {
            Command::Version
        };
        return Ok(Loaded { command, warnings });
    }
    if cli.dry_run && !cli.once {
        return Err(ConfigError("--dry-run: only valid with --once".into()));
    }
    if cli.json && !cli.once {
        return Err(ConfigError("--json: only valid with --once".into()));
    }
    let env_layer = env_layer(env, &mut warnings);
    let config_file = cli.config.clone().or_else(|| {
        let path = env(CONFIG_ENV).and_then(|v| given(Kind::Text, &v))?;
        Some((path, CONFIG_ENV.to_string()))
    });
    let file_layer = match &config_file {
        Some((path, origin)) => file_layer(path, origin, &mut warnings)?,
        None => Layer::default(),
    };
    let sources = Sources {
        layers: [&cli.layer, &env_layer, &file_layer],
    };
    let config_file = config_file.map(|(path, _)| PathBuf::from(path));
    let mut config = build::build(&sources, hostname, config_file, &mut warnings)?;
    if cli.once && sources.origin("vip-lifetime").is_none() {
        // A cron-driven --once must not lose the VIP between two runs.
        config.vip_lifetime = None;
    }
    let command = if cli.once {
        Command::Once {
            config,
            dry_run: cli.dry_run,
            json: cli.json,
        }
    } else {
        Command::Run(config)
    };
    Ok(Loaded { command, warnings })
}

impl Config {
    /// The DCS client's settings.
    pub fn dcs_settings(&self) -> DcsSettings {
        DcsSettings {
            dcs_type: self.dcs_type,
            endpoints: self.endpoints.clone(),
            key: self.trigger_key.clone(),
            etcd_user: self.etcd_user.clone(),
            etcd_password: self.etcd_password.clone(),
            consul_token: self.consul_token.clone(),
            interval: self.interval,
            watch: !self.no_watch,
            check_interval: self.dcs_check_interval,
            tls: self.tls_files(),
            scope: self.replica.clone(),
            // Only a replica VIP's choice needs it: a new name alone needs no new
            // client for the leader key.
            member: match self.replica {
                Some(_) => self.trigger_value.clone(),
                None => String::new(),
            },
        }
    }

    /// Whether the VIP is an address on the interface: always with `basic` and
    /// `hetzner-cloud`, with `hetzner` only when `hetzner-local-address` says so.
    pub fn local_address(&self) -> bool {
        self.hosted.as_ref().is_none_or(|h| h.local_address())
    }

    /// Whether the local address is announced (ARP, IPv6 NA): not a routed Robot IP.
    pub fn announces(&self) -> bool {
        self.hosted.as_ref().is_none_or(|h| h.announces())
    }

    /// Whether a reload to `other` needs a new API worker (a hosted failover IP's
    /// settings, or the VIP it names, changed).
    pub fn hosted_changed(&self, other: &Config) -> bool {
        self.hosted != other.hosted || self.vip != other.vip
    }

    /// The `manager-type`.
    pub fn manager_type(&self) -> &'static str {
        self.hosted.as_ref().map_or("basic", |h| h.manager_type())
    }

    /// Which member the VIP follows.
    pub fn role(&self) -> Role {
        self.replica.as_ref().map_or(Role::Primary, |r| r.role)
    }

    /// The TLS files named (`etcd-ca-file`, `etcd-cert-file`, `etcd-key-file`).
    pub fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            ca: self.etcd_ca_file.clone(),
            cert: self.etcd_cert_file.clone(),
            key: self.etcd_key_file.clone(),
        }
    }

    /// A complete configuration for unit tests: VIP 192.0.2.50/24 on eth0, node "pg1",
    /// etcd on loopback, the defaults for everything else (a test holds it to them).
    #[cfg(test)]
    pub fn example() -> Config {
        Config {
            vip: Vip {
                addr: std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 50)),
                prefix_len: 24,
            },
            interface: "eth0".into(),
            trigger_key: "/service/demo/leader".into(),
            trigger_value: "pg1".into(),
            dcs_type: DcsType::Etcd,
            endpoints: vec!["http://127.0.0.1:2379".into()],
            etcd_user: None,
            etcd_password: None,
            etcd_ca_file: None,
            etcd_cert_file: None,
            etcd_key_file: None,
            consul_token: None,
            no_watch: false,
            dcs_check_interval: Duration::from_millis(3000),
            patroni_url: None,
            primary_check: false,
            config_file: None,
            interval: Duration::from_millis(1000),
            dcs_grace: Grace::After(Duration::from_secs(10)),
            status_file: None,
            keep_on_exit: false,
            vip_lifetime: Some(Duration::from_secs(10)),
            announce_count: 3,
            announce_interval: Duration::from_millis(1000),
            announce_mode: AnnounceMode::Request,
            metrics_listen: None,
            on_change: None,
            on_change_timeout: Duration::from_millis(10_000),
            replica: None,
            hosted: None,
            conflict_probe_interval: Some(Duration::from_millis(10_000)),
            verbose: false,
        }
    }
}

#[cfg(test)]
mod tests;
