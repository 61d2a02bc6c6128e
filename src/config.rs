//! Configuration: vip-manager's keys from flags, `VIP_*` environment variables and a
//! flat YAML file, with vipd's own additions; precedence flag > env > file > default.
//!
//! One table ([`OPTIONS`]) drives all three sources and the `--help` text: each option
//! has its YAML key (`trigger-key`), its flag (`--trigger-key`, also `-trigger-key`,
//! with `=value` or the value as the next argument, as Go's `flag` and `pflag` accept)
//! and its environment variable (`VIP_TRIGGER_KEY`). The older names vip-manager 0.x
//! and 1.x used, and that Debian's `/etc/patroni/*.vip` files still set (`iface`,
//! `key`, `host`, `nodename`, `mask`, `type`, `endpoint`, `endpoint_type`, ...), are
//! accepted with a one-line deprecation warning; where one source sets an old and a
//! new name, the new one wins.
//!
//! An empty value means unset (Debian's unit passes `--netmask="${VIP_MASK}"` even
//! when the variable is unset). Every bad value is a [`ConfigError`]: one line that
//! names where the value came from (`--netmask`, `VIP_NETMASK`, `/etc/vipd.yml:3: ip`),
//! the value quoted, and what is wrong with it. Passwords and tokens never appear in
//! any message.

pub mod yaml;

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::dcs::Settings as DcsSettings;
use crate::dcs::http::TlsFiles;
use crate::decide::Grace;
use crate::net::{AnnounceMode, Vip};
use yaml::Value;

pub use crate::dcs::{DcsType, Secret};

/// `trigger-key` and `trigger-value` with `dcs-type patroni`, as vip-manager sets them.
const PATRONI_TRIGGER_KEY: &str = "/leader";
const PATRONI_TRIGGER_VALUE: &str = "200";

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
    pub announce_count: u32,
    pub announce_interval: Duration,
    pub announce_mode: AnnounceMode,
    /// Read the key every interval instead of a blocking watch.
    pub no_watch: bool,
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

// ---------------------------------------------------------------------------------
// The option table

/// How an option's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One value; surrounding blanks are trimmed.
    Text,
    /// `true`/`false` (also yes/no, on/off, 1/0); as a flag, bare means true.
    Bool,
    /// A password or token: never trimmed, never echoed.
    Secret,
    /// A YAML list, an inline list or a comma-separated value.
    List,
}

struct Opt {
    /// The YAML key; the flag is `--key`, the variable `VIP_KEY` (upper-cased, `-` → `_`).
    key: &'static str,
    kind: Kind,
    /// The value's placeholder in `--help`.
    metavar: &'static str,
    /// The default, as `--help` shows it.
    default: &'static str,
    help: &'static str,
    /// vip-manager's older names (YAML keys and flags; their variables follow):
    /// accepted with a deprecation warning. Spelling a key with `_` for `-` is also
    /// accepted as old (vip-manager 0.x wrote `etcd_user`, `etcd_ca_file`).
    old: &'static [&'static str],
    /// Other accepted names, without a warning.
    also: &'static [&'static str],
}

/// The longest interval, announce-interval (1 hour) and dcs-grace (1 day) accepted, so
/// that deadline arithmetic stays far from overflow.
const MAX_MS: u64 = 3_600_000;
const MAX_GRACE_MS: u64 = 86_400_000;
const MIN_INTERVAL_MS: u64 = 10;
const MAX_ANNOUNCE_COUNT: u64 = 100;
const MAX_CONFIG_BYTES: u64 = 1 << 20;
const MAX_SECRET_BYTES: u64 = 64 << 10;

/// Every option that a flag, a `VIP_*` variable and a YAML key can set.
const OPTIONS: &[Opt] = &[
    Opt {
        key: "ip",
        kind: Kind::Text,
        metavar: "ADDR",
        default: "(required)",
        help: "The virtual IP address (IPv4 or IPv6).",
        old: &[],
        also: &[],
    },
    Opt {
        key: "netmask",
        kind: Kind::Text,
        metavar: "BITS",
        default: "32 (IPv6: 128), with a warning",
        help: "Prefix length the address is added with (1..32, IPv6 1..128).",
        old: &["mask"],
        also: &[],
    },
    Opt {
        key: "interface",
        kind: Kind::Text,
        metavar: "NAME",
        default: "(required)",
        help: "Network interface the address is added to.",
        old: &["iface"],
        also: &[],
    },
    Opt {
        key: "trigger-key",
        kind: Kind::Text,
        metavar: "KEY",
        default: "(required)",
        help: "DCS key to watch: Patroni's leader key, <namespace>/<scope>/leader, \
               e.g. /service/pg/leader (Consul: the leading / is dropped). With \
               dcs-type patroni, the REST API path whose HTTP status is compared; \
               default /leader.",
        old: &["key"],
        also: &[],
    },
    Opt {
        key: "trigger-value",
        kind: Kind::Text,
        metavar: "NAME",
        default: "the hostname",
        help: "This node's name: the VIP is held while the key's value equals it \
               (Patroni's `name`). With dcs-type patroni, the HTTP status that means \
               leader; default 200.",
        old: &["nodename", "host"],
        also: &[],
    },
    Opt {
        key: "dcs-type",
        kind: Kind::Text,
        metavar: "TYPE",
        default: "etcd",
        help: "Where the key lives: etcd (the v3 API, or the v2 keys API while only v2 \
               has the key), etcd3 (v3 only), etcd2 (v2 only), consul (KV store) or \
               patroni (this node's REST API).",
        old: &["type", "endpoint_type"],
        also: &[],
    },
    Opt {
        key: "dcs-endpoints",
        kind: Kind::List,
        metavar: "URLS",
        default: "http://127.0.0.1:2379",
        help: "DCS URLs with http:// or https://, comma-separated (a list in the file); \
               a failed one is skipped. Default for consul http://127.0.0.1:8500; for \
               patroni http://127.0.0.1:8008, and only the first is used: this node's \
               restapi.listen address.",
        old: &["endpoints", "endpoint"],
        also: &[],
    },
    Opt {
        key: "etcd-user",
        kind: Kind::Text,
        metavar: "USER",
        default: "(none)",
        help: "etcd user name (etcd authentication: v3 token, v2 basic auth).",
        old: &[],
        also: &[],
    },
    Opt {
        key: "etcd-password",
        kind: Kind::Secret,
        metavar: "PASSWORD",
        default: "(none)",
        help: "Password of etcd-user. Prefer etcd-password-file: flags are visible in ps.",
        old: &[],
        also: &[],
    },
    Opt {
        key: "etcd-password-file",
        kind: Kind::Text,
        metavar: "FILE",
        default: "(none)",
        help: "Read the etcd password from FILE (one trailing newline is stripped).",
        old: &[],
        also: &[],
    },
    Opt {
        key: "etcd-ca-file",
        kind: Kind::Text,
        metavar: "FILE",
        default: "(none)",
        help: "CA certificate(s) (PEM) that the https:// endpoints' certificates must \
               chain to (etcd, Consul or Patroni); without it, the built-in public roots.",
        old: &[],
        also: &[],
    },
    Opt {
        key: "etcd-cert-file",
        kind: Kind::Text,
        metavar: "FILE",
        default: "(none)",
        help: "Client certificate (PEM) for https:// endpoints; needs etcd-key-file.",
        old: &[],
        also: &[],
    },
    Opt {
        key: "etcd-key-file",
        kind: Kind::Text,
        metavar: "FILE",
        default: "(none)",
        help: "Private key (PEM) of etcd-cert-file.",
        old: &[],
        also: &[],
    },
    Opt {
        key: "consul-token",
        kind: Kind::Secret,
        metavar: "TOKEN",
        default: "(none)",
        help: "Consul ACL token, sent as X-Consul-Token (dcs-type consul only). Prefer \
               consul-token-file: flags are visible in ps.",
        old: &[],
        also: &[],
    },
    Opt {
        key: "consul-token-file",
        kind: Kind::Text,
        metavar: "FILE",
        default: "(none)",
        help: "Read the Consul token from FILE (one trailing newline is stripped).",
        old: &[],
        also: &[],
    },
    Opt {
        key: "interval",
        kind: Kind::Text,
        metavar: "MS",
        default: "1000",
        help: "Milliseconds between checks of the key and of the interface (10..3600000); \
               a watch sees changes sooner.",
        old: &[],
        also: &[],
    },
    Opt {
        key: "dcs-grace",
        kind: Kind::Text,
        metavar: "MS",
        default: "10000",
        help: "Keep the VIP this long while the DCS cannot be read; 0 = release at once, \
               never = keep it (Patroni failsafe_mode).",
        old: &[],
        also: &[],
    },
    Opt {
        key: "no-watch",
        kind: Kind::Bool,
        metavar: "BOOL",
        default: "false",
        help: "Read the key once per interval instead of a blocking watch.",
        old: &[],
        also: &[],
    },
    Opt {
        key: "announce-count",
        kind: Kind::Text,
        metavar: "N",
        default: "3",
        help: "Gratuitous ARPs / unsolicited NAs after each add and link-up (0..100; \
               0 = none).",
        old: &[],
        also: &[],
    },
    Opt {
        key: "announce-interval",
        kind: Kind::Text,
        metavar: "MS",
        default: "1000",
        help: "Milliseconds between those announcements (0..3600000).",
        old: &[],
        also: &[],
    },
    Opt {
        key: "announce-mode",
        kind: Kind::Text,
        metavar: "MODE",
        default: "request",
        help: "ARP operation of the announcements: request, reply or both.",
        old: &[],
        also: &[],
    },
    Opt {
        key: "status-file",
        kind: Kind::Text,
        metavar: "FILE",
        default: "(none)",
        help: "Keep the current state in FILE as one JSON object, rewritten atomically on every change (for monitoring without a metrics server).",
        old: &[],
        also: &[],
    },
    Opt {
        key: "keep-on-exit",
        kind: Kind::Bool,
        metavar: "BOOL",
        default: "false",
        help: "Leave the VIP configured when vipd stops (SIGTERM/SIGINT).",
        old: &[],
        also: &[],
    },
    Opt {
        key: "manager-type",
        kind: Kind::Text,
        metavar: "TYPE",
        default: "basic",
        help: "How the address is managed: only basic (on a local interface).",
        old: &["hostingtype", "hosting_type"],
        also: &["hosting-type"],
    },
    Opt {
        key: "retry-num",
        kind: Kind::Text,
        metavar: "N",
        default: "(ignored)",
        help: "Accepted for vip-manager compatibility and ignored: vipd retries every \
               interval.",
        old: &[],
        also: &[],
    },
    Opt {
        key: "retry-after",
        kind: Kind::Text,
        metavar: "MS",
        default: "(ignored)",
        help: "Accepted for vip-manager compatibility and ignored.",
        old: &[],
        also: &[],
    },
    Opt {
        key: "verbose",
        kind: Kind::Bool,
        metavar: "BOOL",
        default: "false",
        help: "Log debug messages. -v is short for --verbose.",
        old: &[],
        also: &[],
    },
];

/// How a name relates to its option: a higher rank wins within one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Old,
    Also,
    New,
}

/// The option a flag name or YAML key (lower-cased) stands for.
fn lookup(name: &str) -> Option<(&'static Opt, Rank)> {
    for opt in OPTIONS {
        if name == opt.key {
            return Some((opt, Rank::New));
        }
        if opt.also.contains(&name) {
            return Some((opt, Rank::Also));
        }
        if opt.old.contains(&name) {
            return Some((opt, Rank::Old));
        }
    }
    if name.contains('_') {
        let dashed = name.replace('_', "-");
        for opt in OPTIONS {
            if dashed == opt.key || opt.also.contains(&dashed.as_str()) {
                return Some((opt, Rank::Old));
            }
        }
    }
    None
}

/// `trigger-key` → `VIP_TRIGGER_KEY`.
fn env_name(name: &str) -> String {
    format!("VIP_{}", name.to_ascii_uppercase().replace('-', "_"))
}

const CONFIG_ENV: &str = "VIP_CONFIG";

// ---------------------------------------------------------------------------------
// Sources

/// One value as a source gave it.
#[derive(Debug, Clone)]
struct Setting {
    value: Value,
    /// Where it came from, as the user wrote it: `--netmask`, `VIP_MASK`,
    /// `/etc/vipd.yml:3: mask`. Every message about the value starts with it.
    origin: String,
    rank: Rank,
    /// The name as written (`mask`, `VIP_MASK`, `--mask`).
    name: String,
    /// The file line, for duplicate-key warnings.
    line: Option<usize>,
}

/// The settings of one source (the flags, the environment or the file).
#[derive(Debug, Default)]
struct Layer {
    map: HashMap<&'static str, Setting>,
}

impl Layer {
    /// Record `s` for `key`: a newer name beats an older one; between equals the
    /// later wins (as repeated flags do in Go, and duplicate keys in viper).
    fn set(&mut self, key: &'static str, s: Setting, warnings: &mut Vec<String>) {
        let Some(prev) = self.map.get(key) else {
            self.map.insert(key, s);
            return;
        };
        let wins = s.rank >= prev.rank;
        if let (Some(prev_line), Some(_), true) = (prev.line, s.line, s.name == prev.name) {
            warnings.push(format!(
                "{}: duplicate key (also on line {prev_line}); the last one wins",
                s.origin
            ));
        } else if prev.origin != s.origin && prev.value != s.value {
            let (winner, loser) = if wins { (&s, prev) } else { (prev, &s) };
            warnings.push(format!(
                "{} is ignored: {} is also set and wins",
                loser.origin, winner.origin
            ));
        }
        if wins {
            self.map.insert(key, s);
        }
    }
}

/// A value as the user gave it, `None` when empty (empty means unset).
fn given(kind: Kind, raw: &str) -> Option<String> {
    let v = if kind == Kind::Secret {
        raw
    } else {
        raw.trim()
    };
    if v.is_empty() {
        None
    } else {
        Some(v.to_string())
    }
}

fn deprecated(old: &str, new: &str) -> String {
    format!("{old} is deprecated; use {new}")
}

/// What the command line said besides the options.
#[derive(Debug, Default)]
struct Cli {
    layer: Layer,
    config: Option<Setting>,
    once: bool,
    dry_run: bool,
    json: bool,
    help: bool,
    version: bool,
}

/// Parse argv (without argv[0]).
///
/// A small loop rather than pico-args: the option table already knows every name,
/// alias and which options are booleans (bare `--verbose`, or `--verbose=false`), and
/// Go's conventions (`-name`, `--name`, `=value` or the next argument, which may start
/// with `-`; the last repeat wins) and the old names map directly onto it; pico-args
/// would need the single-dash names rewritten first, cannot tell an unknown flag from
/// a value, and would report errors without the table's names.
fn parse_args(args: Vec<OsString>, warnings: &mut Vec<String>) -> Result<Cli, ConfigError> {
    let mut cli = Cli::default();
    let mut first_error: Option<ConfigError> = None;
    let mut fail = |e: String| {
        if first_error.is_none() {
            first_error = Some(ConfigError(e));
        }
    };
    let mut args = args.into_iter().enumerate();
    while let Some((index, arg)) = args.next() {
        let Some(arg) = arg.to_str().map(str::to_string) else {
            fail(format!("argument {} is not valid UTF-8", index + 1));
            continue;
        };
        if arg == "--" {
            if let Some((_, extra)) = args.next() {
                fail(format!(
                    "unexpected argument {:?} (vipd takes only options)",
                    extra.to_string_lossy()
                ));
            }
            break;
        }
        let body = match arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) {
            Some(body) if !body.is_empty() => body,
            _ => {
                fail(format!(
                    "unexpected argument {arg:?} (vipd takes only options; see --help)"
                ));
                continue;
            }
        };
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        // The flag as written, without any value (which may be a secret).
        let shown = format!("{}{name}", &arg[..arg.len() - body.len()]);

        let switch = match name {
            "h" | "help" => Some(&mut cli.help),
            "V" | "version" => Some(&mut cli.version),
            "once" => Some(&mut cli.once),
            "dry-run" => Some(&mut cli.dry_run),
            "json" => Some(&mut cli.json),
            _ => None,
        };
        if let Some(flag) = switch {
            *flag = true;
            if inline.is_some() {
                fail(format!("{shown}: takes no value"));
            }
            continue;
        }

        let (opt, rank) = if name == "v" {
            (lookup("verbose").map(|(o, _)| o), Rank::New)
        } else if name == "config" {
            (None, Rank::New)
        } else {
            match lookup(name) {
                Some((opt, rank)) => (Some(opt), rank),
                None => {
                    fail(format!("{shown}: unknown option (see --help)"));
                    continue;
                }
            }
        };
        let kind = opt.map_or(Kind::Text, |o| o.kind);
        let value = match (inline, kind) {
            (Some(v), _) => v.to_string(),
            (None, Kind::Bool) => "true".to_string(),
            (None, _) => match args.next() {
                Some((i, v)) => match v.into_string() {
                    Ok(v) => v,
                    Err(_) => {
                        fail(format!("argument {} is not valid UTF-8", i + 1));
                        continue;
                    }
                },
                None => {
                    fail(format!("{shown}: missing value"));
                    continue;
                }
            },
        };
        let Some(value) = given(kind, &value) else {
            continue;
        };
        let setting = Setting {
            value: Value::Scalar(value),
            origin: shown.clone(),
            rank,
            name: shown.clone(),
            line: None,
        };
        match opt {
            None => cli.config = Some(setting),
            Some(opt) => {
                if rank == Rank::Old {
                    warnings.push(deprecated(&shown, &format!("--{}", opt.key)));
                }
                cli.layer.set(opt.key, setting, warnings);
            }
        }
    }
    match first_error {
        Some(e) if !cli.help && !cli.version => Err(e),
        _ => Ok(cli),
    }
}

/// The `VIP_*` variables of every option, new names first.
fn env_layer(env: &dyn Fn(&str) -> Option<String>, warnings: &mut Vec<String>) -> Layer {
    let mut layer = Layer::default();
    for opt in OPTIONS {
        let new_var = env_name(opt.key);
        let names = std::iter::once((opt.key, Rank::New))
            .chain(opt.also.iter().map(|n| (*n, Rank::Also)))
            .chain(opt.old.iter().map(|n| (*n, Rank::Old)));
        let mut seen: Vec<String> = Vec::new();
        for (name, rank) in names {
            let var = env_name(name);
            if seen.contains(&var) {
                continue;
            }
            let rank = if var == new_var { Rank::New } else { rank };
            let Some(value) = env(&var).and_then(|v| given(opt.kind, &v)) else {
                seen.push(var);
                continue;
            };
            if rank == Rank::Old {
                warnings.push(deprecated(&var, &new_var));
            }
            let setting = Setting {
                value: Value::Scalar(value),
                origin: var.clone(),
                rank,
                name: var.clone(),
                line: None,
            };
            layer.set(opt.key, setting, warnings);
            seen.push(var);
        }
    }
    layer
}

/// Read at most `limit` bytes of `path`; the error names `origin` and the file.
fn read_limited(path: &str, origin: &str, limit: u64) -> Result<Vec<u8>, ConfigError> {
    let cannot = |e: std::io::Error| ConfigError(format!("{origin}: cannot read {path:?}: {e}"));
    let file = File::open(path).map_err(cannot)?;
    if file.metadata().map_err(cannot)?.is_dir() {
        return Err(ConfigError(format!("{origin}: {path:?} is a directory")));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > limit {
        return Err(ConfigError(format!(
            "{origin}: {path:?} is larger than {} KiB",
            limit >> 10
        )));
    }
    Ok(bytes)
}

/// Read and parse the YAML file named by `--config` / `VIP_CONFIG`.
fn file_layer(path: &str, origin: &str, warnings: &mut Vec<String>) -> Result<Layer, ConfigError> {
    let bytes = read_limited(path, origin, MAX_CONFIG_BYTES)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| ConfigError(format!("{origin}: {path:?} is not UTF-8 text")))?;
    let entries =
        yaml::parse(&text).map_err(|e| ConfigError(format!("{path}:{}: {}", e.line, e.message)))?;
    let mut layer = Layer::default();
    for entry in entries {
        let origin = format!("{path}:{}: {}", entry.line, entry.key);
        let Some((opt, rank)) = lookup(&entry.key.to_ascii_lowercase()) else {
            warnings.push(format!("{origin}: unknown key (ignored)"));
            continue;
        };
        let value = match entry.value {
            Value::Scalar(v) => given(opt.kind, &v).map(Value::Scalar),
            Value::List(items) => {
                let items: Vec<String> = items
                    .iter()
                    .filter_map(|item| given(opt.kind, item))
                    .collect();
                (!items.is_empty()).then_some(Value::List(items))
            }
        };
        let Some(value) = value else {
            continue;
        };
        if rank == Rank::Old {
            warnings.push(format!(
                "{path}:{}: {}",
                entry.line,
                deprecated(&entry.key, opt.key)
            ));
        }
        let setting = Setting {
            value,
            origin,
            rank,
            name: entry.key.to_ascii_lowercase(),
            line: Some(entry.line),
        };
        layer.set(opt.key, setting, warnings);
    }
    Ok(layer)
}

// ---------------------------------------------------------------------------------
// Loading and validation

/// Build the command from argv (without argv[0]), the environment (`env` looks a
/// variable up) and the YAML file they name; `hostname` is the default trigger-value.
///
/// `--help` and `--version` win over any other argument, even a wrong one.
pub fn load(
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
    hostname: &str,
) -> Result<Loaded, ConfigError> {
    let mut warnings = Vec::new();
    let cli = parse_args(args, &mut warnings)?;
    if cli.help {
        return Ok(Loaded {
            command: Command::Help,
            warnings,
        });
    }
    if cli.version {
        return Ok(Loaded {
            command: Command::Version,
            warnings,
        });
    }
    if cli.dry_run && !cli.once {
        return Err(ConfigError("--dry-run: only valid with --once".into()));
    }
    if cli.json && !cli.once {
        return Err(ConfigError("--json: only valid with --once".into()));
    }
    let env_layer = env_layer(env, &mut warnings);
    let config_setting = cli.config.clone().or_else(|| {
        env(CONFIG_ENV)
            .and_then(|v| given(Kind::Text, &v))
            .map(|v| Setting {
                value: Value::Scalar(v),
                origin: CONFIG_ENV.into(),
                rank: Rank::New,
                name: CONFIG_ENV.into(),
                line: None,
            })
    });
    let (file_layer, config_file) = match &config_setting {
        Some(Setting {
            value: Value::Scalar(path),
            origin,
            ..
        }) => (
            file_layer(path, origin, &mut warnings)?,
            Some(PathBuf::from(path)),
        ),
        _ => (Layer::default(), None),
    };
    let sources = Sources {
        layers: [&cli.layer, &env_layer, &file_layer],
    };
    let config = build(&sources, hostname, config_file, &mut warnings)?;
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

/// The three sources, highest precedence first.
struct Sources<'a> {
    layers: [&'a Layer; 3],
}

impl Sources<'_> {
    /// The winning setting of `key` and the index of its source (0 = flags).
    fn get(&self, key: &str) -> Option<(usize, &Setting)> {
        self.layers
            .iter()
            .enumerate()
            .find_map(|(i, layer)| layer.map.get(key).map(|s| (i, s)))
    }

    /// The single value of `key` and its origin.
    fn one(&self, key: &str) -> Result<Option<(&str, &str)>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some((_, s)) => match &s.value {
                Value::Scalar(v) => Ok(Some((v.as_str(), s.origin.as_str()))),
                Value::List(_) => Err(ConfigError(format!(
                    "{}: expects a single value, not a list",
                    s.origin
                ))),
            },
        }
    }

    fn required(&self, key: &str) -> Result<(&str, &str), ConfigError> {
        self.one(key)?
            .ok_or_else(|| ConfigError(format!("{key}: not set (required)")))
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.one(key)? {
            None => Ok(default),
            Some((v, origin)) => parse_bool(v).ok_or_else(|| {
                ConfigError(format!(
                    "{origin}: {v:?} is not a boolean (expected true or false)"
                ))
            }),
        }
    }

    fn number(&self, key: &str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        match self.one(key)? {
            None => Ok(default),
            Some((v, origin)) => parse_number(v, origin, min, max),
        }
    }

    /// A secret given directly (`key`) or in a file (`file_key`); the source with the
    /// higher precedence wins, both in one source is an error.
    fn secret(&self, key: &str, file_key: &str) -> Result<Option<Secret>, ConfigError> {
        let direct = self.get(key);
        let file = self.get(file_key);
        let use_file = match (direct, file) {
            (None, None) => return Ok(None),
            (Some((a, sa)), Some((b, sb))) if a == b => {
                return Err(ConfigError(format!(
                    "{} and {} are both set; set only one",
                    sa.origin, sb.origin
                )));
            }
            (Some((a, _)), Some((b, _))) => b < a,
            (None, Some(_)) => true,
            (Some(_), None) => false,
        };
        if use_file {
            let Some((path, origin)) = self.one(file_key)? else {
                return Ok(None);
            };
            read_secret(path, origin).map(Some)
        } else {
            match direct {
                Some((_, s)) => match &s.value {
                    Value::Scalar(v) => Ok(Some(Secret(v.clone()))),
                    Value::List(_) => Err(ConfigError(format!(
                        "{}: expects a single value, not a list",
                        s.origin
                    ))),
                },
                None => Ok(None),
            }
        }
    }

    /// A file that must exist and be readable.
    fn readable_file(&self, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        let Some((path, origin)) = self.one(key)? else {
            return Ok(None);
        };
        let cannot =
            |e: std::io::Error| ConfigError(format!("{origin}: cannot read {path:?}: {e}"));
        let file = File::open(path).map_err(cannot)?;
        if file.metadata().map_err(cannot)?.is_dir() {
            return Err(ConfigError(format!("{origin}: {path:?} is a directory")));
        }
        Ok(Some(PathBuf::from(path)))
    }

    fn origin(&self, key: &str) -> Option<&str> {
        self.get(key).map(|(_, s)| s.origin.as_str())
    }
}

/// Go's `strconv.ParseBool` words plus YAML's yes/no and on/off.
fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "on" | "1" => Some(true),
        "false" | "f" | "no" | "n" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn parse_number(v: &str, origin: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
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

fn parse_netmask(v: &str, origin: &str, addr: IpAddr) -> Result<u8, ConfigError> {
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

fn parse_ip(v: &str, origin: &str) -> Result<IpAddr, ConfigError> {
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
fn valid_interface(name: &str) -> bool {
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
fn parse_endpoint(raw: &str, origin: &str) -> Result<String, ConfigError> {
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

fn parse_endpoints(s: &Setting) -> Result<Vec<String>, ConfigError> {
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

/// Read a secret file: one trailing newline (`\n` or `\r\n`) is stripped. Errors name
/// the file, never its content.
fn read_secret(path: &str, origin: &str) -> Result<Secret, ConfigError> {
    let bytes = read_limited(path, origin, MAX_SECRET_BYTES)?;
    let mut text = String::from_utf8(bytes)
        .map_err(|_| ConfigError(format!("{origin}: {path:?} is not UTF-8 text")))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(ConfigError(format!("{origin}: {path:?} is empty")));
    }
    Ok(Secret(text))
}

fn build(
    src: &Sources<'_>,
    hostname: &str,
    config_file: Option<PathBuf>,
    warnings: &mut Vec<String>,
) -> Result<Config, ConfigError> {
    if let Some((v, origin)) = src.one("manager-type")? {
        if !v.eq_ignore_ascii_case("basic") {
            return Err(ConfigError(format!(
                "{origin}: {v:?} is not supported (vipd supports only \"basic\")"
            )));
        }
    }

    let dcs_type = match src.one("dcs-type")? {
        None => DcsType::Etcd,
        Some((v, origin)) => match v.to_ascii_lowercase().as_str() {
            "etcd" => DcsType::Etcd,
            "etcd3" => DcsType::Etcd3,
            "etcd2" => DcsType::Etcd2,
            "consul" => DcsType::Consul,
            "patroni" => DcsType::Patroni,
            _ => {
                return Err(ConfigError(format!(
                    "{origin}: {v:?} is not a known dcs-type \
                     (expected etcd, etcd3, etcd2, consul or patroni)"
                )));
            }
        },
    };

    let (ip, ip_origin) = src.required("ip")?;
    let addr = parse_ip(ip, ip_origin)?;
    let prefix_len = match src.one("netmask")? {
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

    let (interface, origin) = src.required("interface")?;
    if !valid_interface(interface) {
        return Err(ConfigError(format!(
            "{origin}: {interface:?} is not a valid interface name \
             (at most 15 bytes; no '/', ':' or blanks)"
        )));
    }

    let trigger_key = match (src.one("trigger-key")?, dcs_type) {
        (Some((v, _)), _) => v,
        (None, DcsType::Patroni) => PATRONI_TRIGGER_KEY,
        (None, _) => src.required("trigger-key")?.0,
    };
    let trigger_value = match src.one("trigger-value")? {
        Some((v, _)) => v.to_string(),
        None if dcs_type == DcsType::Patroni => PATRONI_TRIGGER_VALUE.to_string(),
        None if hostname.trim().is_empty() => {
            return Err(ConfigError(
                "trigger-value: not set, and the hostname is empty".into(),
            ));
        }
        None => hostname.trim().to_string(),
    };

    let endpoints = match src.get("dcs-endpoints") {
        Some((_, s)) => parse_endpoints(s)?,
        None => vec![dcs_type.default_endpoint().to_string()],
    };
    if dcs_type == DcsType::Patroni && endpoints.len() > 1 {
        let origin = src.origin("dcs-endpoints").unwrap_or("dcs-endpoints");
        warnings.push(format!(
            "{origin}: dcs-type patroni uses only the first endpoint, {:?} (this node's \
             Patroni); the others are ignored",
            endpoints[0]
        ));
    }

    let etcd_user = src.one("etcd-user")?.map(|(v, _)| v.to_string());
    let etcd_password = src.secret("etcd-password", "etcd-password-file")?;
    match (&etcd_user, &etcd_password) {
        (None, Some(_)) if dcs_type.is_etcd() => {
            let origin = src
                .origin("etcd-password")
                .or_else(|| src.origin("etcd-password-file"))
                .unwrap_or("etcd-password");
            return Err(ConfigError(format!("{origin}: set, but etcd-user is not")));
        }
        (Some(_), None) if dcs_type.is_etcd() => {
            let origin = src.origin("etcd-user").unwrap_or("etcd-user");
            warnings.push(format!(
                "{origin}: set without etcd-password; authenticating with an empty password"
            ));
        }
        _ => {}
    }

    let consul_token = src.secret("consul-token", "consul-token-file")?;
    let token_origin = src
        .origin("consul-token")
        .or_else(|| src.origin("consul-token-file"))
        .unwrap_or("consul-token");
    if let Some(token) = &consul_token {
        if dcs_type != DcsType::Consul {
            warnings.push(format!(
                "{token_origin} is ignored: it is used only with dcs-type consul"
            ));
        } else if !token.0.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
            || token.0.trim() != token.0
        {
            // It travels as an HTTP header value (the value is never shown).
            return Err(ConfigError(format!(
                "{token_origin}: the token contains characters an HTTP header cannot carry \
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

    let etcd_ca_file = src.readable_file("etcd-ca-file")?;
    let etcd_cert_file = src.readable_file("etcd-cert-file")?;
    let etcd_key_file = src.readable_file("etcd-key-file")?;
    match (&etcd_cert_file, &etcd_key_file) {
        (Some(_), None) => {
            let origin = src.origin("etcd-cert-file").unwrap_or("etcd-cert-file");
            return Err(ConfigError(format!(
                "{origin}: set, but etcd-key-file is not"
            )));
        }
        (None, Some(_)) => {
            let origin = src.origin("etcd-key-file").unwrap_or("etcd-key-file");
            return Err(ConfigError(format!(
                "{origin}: set, but etcd-cert-file is not"
            )));
        }
        _ => {}
    }
    if !endpoints.iter().any(|e| e.starts_with("https://")) {
        for key in ["etcd-ca-file", "etcd-cert-file", "etcd-key-file"] {
            if let Some(origin) = src.origin(key) {
                warnings.push(format!(
                    "{origin} is ignored: no dcs-endpoint uses https://"
                ));
            }
        }
    }

    let interval = src.number("interval", 1000, MIN_INTERVAL_MS, MAX_MS)?;
    let dcs_grace = match src.one("dcs-grace")? {
        None => Grace::After(Duration::from_secs(10)),
        Some((v, _)) if v.eq_ignore_ascii_case("never") => Grace::Never,
        Some((v, origin)) => {
            if !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ConfigError(format!(
                    "{origin}: {v:?} is not a whole number of milliseconds or \"never\""
                )));
            }
            Grace::After(Duration::from_millis(parse_number(
                v,
                origin,
                0,
                MAX_GRACE_MS,
            )?))
        }
    };
    let announce_count = src.number("announce-count", 3, 0, MAX_ANNOUNCE_COUNT)?;
    if addr.is_ipv6() && announce_count > 3 {
        warnings.push(format!(
            "announce-count: {announce_count} unsolicited neighbour advertisements; RFC 4861 \
             (section 7.2.6) allows at most 3"
        ));
    }
    let announce_interval = src.number("announce-interval", 1000, 0, MAX_MS)?;
    let announce_mode = match src.one("announce-mode")? {
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

    for key in ["retry-num", "retry-after"] {
        if let Some(origin) = src.origin(key) {
            warnings.push(format!(
                "{origin} is ignored: vipd retries the DCS every interval"
            ));
        }
    }

    Ok(Config {
        vip: Vip { addr, prefix_len },
        interface: interface.to_string(),
        trigger_key: trigger_key.to_string(),
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
        status_file: src.one("status-file")?.map(|(v, _)| PathBuf::from(v)),
        keep_on_exit: src.bool("keep-on-exit", false)?,
        // Bounded by MAX_ANNOUNCE_COUNT above.
        announce_count: u32::try_from(announce_count).unwrap_or(u32::MAX),
        announce_interval: Duration::from_millis(announce_interval),
        announce_mode,
        no_watch: src.bool("no-watch", false)?,
        verbose: src.bool("verbose", false)?,
        config_file,
    })
}

/// Warnings for `VIP_*` variables that vipd does not know, given the names of all
/// variables in the environment (e.g. `std::env::vars_os().map(|(k, _)| k)`). Other
/// variables are not looked at: only the `VIP_` prefix is vipd's (and vip-manager's).
pub fn unknown_env_warnings<I, S>(names: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut known: Vec<String> = vec![CONFIG_ENV.to_string()];
    for opt in OPTIONS {
        known.push(env_name(opt.key));
        known.extend(opt.also.iter().chain(opt.old).map(|n| env_name(n)));
    }
    let mut out = Vec::new();
    for name in names {
        let name = name.as_ref().to_string_lossy();
        if name.starts_with("VIP_") && !known.iter().any(|k| *k == name) {
            out.push(format!("{name}: unknown environment variable (ignored)"));
        }
    }
    out
}

/// `text` wrapped at 80 columns, each line indented by `indent` spaces.
fn wrap(text: &str, indent: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent + line.len() + 1 + word.len() > 80 {
            out.push_str(&format!("{:indent$}{line}\n", ""));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&format!("{:indent$}{line}\n", ""));
    }
    out
}

/// The `--help` text: every option with its flag, variable, YAML key and default.
pub fn help_text() -> String {
    let mut out = format!(
        "vipd {} - keeps a virtual IP address on the node Patroni's leader key names

Usage: vipd [OPTIONS]                     run the daemon
       vipd --once [--dry-run] [--json] [OPTIONS]  check and reconcile once

Each option is a flag (--name=VALUE or --name VALUE; one dash works too), an
environment variable VIP_NAME (upper case, '-' becomes '_') and a key in the
YAML file named by --config. Precedence: flag > environment > file > default.
An empty value means unset. Durations are whole milliseconds.

  --config FILE
      YAML file with the keys below: flat 'key: value' lines; dcs-endpoints may
      be a list.
      env VIP_CONFIG; no default
",
        env!("CARGO_PKG_VERSION")
    );
    for opt in OPTIONS {
        match opt.kind {
            Kind::Bool => out.push_str(&format!("  --{}[=BOOL]\n", opt.key)),
            _ => out.push_str(&format!("  --{} {}\n", opt.key, opt.metavar)),
        }
        out.push_str(&wrap(opt.help, 6));
        out.push_str(&wrap(
            &format!(
                "env {}, key {}; default: {}",
                env_name(opt.key),
                opt.key,
                opt.default
            ),
            6,
        ));
    }
    out.push_str(
        "
  --once
      One observe-and-reconcile, then exit: 0 done, 1 DCS or kernel failure,
      2 configuration error. Never releases the VIP because the DCS is
      unreachable.
  --dry-run
      With --once: change nothing, say what would be done; exit 3 when a change
      is needed.
  --json
      With --once: print the result as one JSON object instead of the line.
  -h, --help
      This text.
  -V, --version
      The version.

Older vip-manager names are accepted, with a deprecation warning, as YAML keys,
flags and VIP_ variables; so are keys spelled with '_' for '-' (etcd_user):
",
    );
    for opt in OPTIONS {
        for old in opt.old {
            out.push_str(&format!(
                "  {old:<14} {:<18} -> {} / {}\n",
                env_name(old),
                opt.key,
                env_name(opt.key)
            ));
        }
    }
    out.push_str("Accepted without a warning:\n");
    for opt in OPTIONS {
        for also in opt.also {
            out.push_str(&format!(
                "  {also:<14} {:<18} -> {} / {}\n",
                env_name(also),
                opt.key,
                env_name(opt.key)
            ));
        }
    }
    out
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
            tls: self.tls_files(),
        }
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
    /// etcd on loopback, the defaults for everything else.
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
            config_file: None,
            interval: Duration::from_millis(1000),
            dcs_grace: Grace::After(Duration::from_secs(10)),
            status_file: None,
            keep_on_exit: false,
            announce_count: 3,
            announce_interval: Duration::from_millis(1000),
            announce_mode: AnnounceMode::Request,
            verbose: false,
        }
    }
}

#[cfg(test)]
mod tests;
