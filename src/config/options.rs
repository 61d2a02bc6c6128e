//! The option table: every setting's YAML key, flag and `VIP_*` variable, its older
//! vip-manager names, its kind of value and its `--help` entry; and the lookup from a
//! flag name or YAML key to its option.

/// How an option's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// One value; surrounding blanks are trimmed.
    Text,
    /// `true`/`false` (also yes/no, on/off, 1/0); as a flag, bare means true.
    Bool,
    /// A password or token: never trimmed, never echoed.
    Secret,
    /// A YAML list, an inline list or a comma-separated value.
    List,
}

pub(super) struct Opt {
    /// The YAML key; the flag is `--key`, the variable `VIP_KEY` (upper-cased, `-` → `_`).
    pub(super) key: &'static str,
    pub(super) kind: Kind,
    /// The value's placeholder in `--help`.
    pub(super) metavar: &'static str,
    /// The default, as `--help` shows it.
    pub(super) default: &'static str,
    pub(super) help: &'static str,
    /// vip-manager's older names (YAML keys and flags; their variables follow):
    /// accepted with a deprecation warning. Spelling a key with `_` for `-` is also
    /// accepted as old (vip-manager 0.x wrote `etcd_user`, `etcd_ca_file`).
    pub(super) old: &'static [&'static str],
    /// Other accepted names, without a warning.
    pub(super) also: &'static [&'static str],
}

/// The fields most options share (a text value, no other names); each entry of
/// [`OPTIONS`] sets its own key and texts.
const TEXT: Opt = Opt {
    key: "",
    kind: Kind::Text,
    metavar: "",
    default: "",
    help: "",
    old: &[],
    also: &[],
};

/// Every option that a flag, a `VIP_*` variable and a YAML key can set.
pub(super) const OPTIONS: &[Opt] = &[
    Opt {
        key: "ip",
        metavar: "ADDR",
        default: "(required)",
        help: "The virtual IP address (IPv4 or IPv6).",
        ..TEXT
    },
    Opt {
        key: "netmask",
        metavar: "BITS",
        default: "32 (IPv6: 128), with a warning",
        help: "Prefix length the address is added with (1..32, IPv6 1..128).",
        old: &["mask"],
        ..TEXT
    },
    Opt {
        key: "interface",
        metavar: "NAME",
        default: "(required)",
        help: "Network interface the address is added to.",
        old: &["iface"],
        ..TEXT
    },
    Opt {
        key: "trigger-key",
        metavar: "KEY",
        default: "(required)",
        help: "DCS key to watch: Patroni's leader key, <namespace>/<scope>/leader, \
               e.g. /service/pg/leader (Consul: the leading / is dropped). With \
               dcs-type patroni, the REST API path whose HTTP status is compared; \
               default /leader.",
        old: &["key"],
        ..TEXT
    },
    Opt {
        key: "trigger-value",
        metavar: "NAME",
        default: "the hostname",
        help: "This node's name: the VIP is held while the key's value equals it \
               (Patroni's `name`). With dcs-type patroni, the HTTP status that means \
               leader; default 200.",
        old: &["nodename", "host"],
        ..TEXT
    },
    Opt {
        key: "dcs-type",
        metavar: "TYPE",
        default: "etcd",
        help: "Where the key lives: etcd (the v3 API, or the v2 keys API while only v2 \
               has the key), etcd3 (v3 only), etcd2 (v2 only), consul (KV store) or \
               patroni (this node's REST API).",
        old: &["type", "endpoint_type"],
        ..TEXT
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
        ..TEXT
    },
    Opt {
        key: "etcd-user",
        metavar: "USER",
        default: "(none)",
        help: "etcd user name (etcd authentication: v3 token, v2 basic auth).",
        ..TEXT
    },
    Opt {
        key: "etcd-password",
        kind: Kind::Secret,
        metavar: "PASSWORD",
        default: "(none)",
        help: "Password of etcd-user. Prefer etcd-password-file: flags are visible in ps.",
        ..TEXT
    },
    Opt {
        key: "etcd-password-file",
        metavar: "FILE",
        default: "(none)",
        help: "Read the etcd password from FILE (one trailing newline is stripped).",
        ..TEXT
    },
    Opt {
        key: "etcd-ca-file",
        metavar: "FILE",
        default: "(none)",
        help: "CA certificate(s) (PEM) that the https:// endpoints' certificates must \
               chain to (etcd, Consul or Patroni); without it, the built-in public roots.",
        ..TEXT
    },
    Opt {
        key: "etcd-cert-file",
        metavar: "FILE",
        default: "(none)",
        help: "Client certificate (PEM) for https:// endpoints; needs etcd-key-file.",
        ..TEXT
    },
    Opt {
        key: "etcd-key-file",
        metavar: "FILE",
        default: "(none)",
        help: "Private key (PEM) of etcd-cert-file.",
        ..TEXT
    },
    Opt {
        key: "consul-token",
        kind: Kind::Secret,
        metavar: "TOKEN",
        default: "(none)",
        help: "Consul ACL token, sent as X-Consul-Token (dcs-type consul only). Prefer \
               consul-token-file: flags are visible in ps.",
        ..TEXT
    },
    Opt {
        key: "consul-token-file",
        metavar: "FILE",
        default: "(none)",
        help: "Read the Consul token from FILE (one trailing newline is stripped).",
        ..TEXT
    },
    Opt {
        key: "interval",
        metavar: "MS",
        default: "1000",
        help: "Milliseconds between checks of the key and of the interface (10..3600000); \
               a watch sees changes sooner.",
        ..TEXT
    },
    Opt {
        key: "dcs-grace",
        metavar: "MS",
        default: "10000",
        help: "Keep the VIP this long while the DCS cannot be read; 0 = release at once, \
               never = keep it (Patroni failsafe_mode).",
        ..TEXT
    },
    Opt {
        key: "no-watch",
        kind: Kind::Bool,
        metavar: "BOOL",
        default: "false",
        help: "Read the key once per interval instead of a blocking watch.",
        ..TEXT
    },
    Opt {
        key: "dcs-check-interval",
        metavar: "MS",
        default: "3000",
        help: "etcd v3 with a watch: milliseconds from etcd's last answer until it is \
               asked again (GET /version; a serializable read of the key every tenth \
               time); in between, the watch reports its changes. At least interval (a \
               larger interval raises the default), up to 3600000.",
        ..TEXT
    },
    Opt {
        key: "patroni-url",
        metavar: "URL",
        default: "(none)",
        help: "This node's Patroni REST API, e.g. http://192.0.2.11:8008 (restapi's \
               connect_address). While the DCS cannot be read, GET /patroni decides: a \
               running primary keeps the VIP, anything else releases it; with \
               primary-check, the VIP waits for it to say primary. https takes the \
               etcd-ca-file, etcd-cert-file and etcd-key-file.",
        ..TEXT
    },
    Opt {
        key: "primary-check",
        kind: Kind::Bool,
        metavar: "BOOL",
        default: "true with patroni-url",
        help: "When the key newly names this node, add the VIP only once Patroni says \
               PostgreSQL is a running primary (asked every 100 ms; no answer at all \
               adds it with a warning).",
        ..TEXT
    },
    Opt {
        key: "announce-count",
        metavar: "N",
        default: "3",
        help: "Gratuitous ARPs / unsolicited NAs after each add and link-up (0..100; \
               0 = none).",
        ..TEXT
    },
    Opt {
        key: "announce-interval",
        metavar: "MS",
        default: "1000",
        help: "Milliseconds between those announcements (0..3600000).",
        ..TEXT
    },
    Opt {
        key: "announce-mode",
        metavar: "MODE",
        default: "request",
        help: "ARP operation of the announcements: request, reply or both.",
        ..TEXT
    },
    Opt {
        key: "status-file",
        metavar: "FILE",
        default: "(none)",
        help: "Keep the current state in FILE as one JSON object, rewritten atomically on \
               every change (for monitoring without a metrics server).",
        ..TEXT
    },
    Opt {
        key: "metrics-listen",
        metavar: "ADDR:PORT",
        default: "(none)",
        help: "Serve Prometheus metrics at GET /metrics on this address and port, e.g. \
               127.0.0.1:9617 or [::1]:9617.",
        ..TEXT
    },
    Opt {
        key: "on-change",
        kind: Kind::List,
        metavar: "PROGRAM",
        default: "(none)",
        help: "Program run after each state change (added, removed, conflict, dcs-lost, \
               dcs-back), one at a time in order, with VIPD_* variables; no shell: a flag \
               or variable is split at spaces, in YAML a list is program and arguments.",
        ..TEXT
    },
    Opt {
        key: "on-change-timeout",
        metavar: "MS",
        default: "10000",
        help: "Milliseconds an on-change program may run before its process group is \
               killed.",
        ..TEXT
    },
    Opt {
        key: "conflict-probe-interval",
        metavar: "MS",
        default: "10000",
        help: "While holding the VIP, probe for another holder (ARP probe, IPv6 neighbour \
               solicitation from ::) every MS milliseconds; 0: never (listening goes on).",
        ..TEXT
    },
    Opt {
        key: "vip-role",
        metavar: "ROLE",
        default: "primary",
        help: "Which member the VIP follows: primary (the leader key), replica (a healthy \
               replica, the same on every node) or sync (the synchronous standby).",
        ..TEXT
    },
    Opt {
        key: "replica-max-lag",
        metavar: "SIZE",
        default: "(no limit)",
        help: "vip-role replica/sync: the largest lag behind the leader a member may have, \
               in bytes or with a unit as Patroni's ?lag= takes it (16MB = 16 x 1024^2).",
        ..TEXT
    },
    Opt {
        key: "replica-settle",
        metavar: "MS",
        default: "30000",
        help: "vip-role replica/sync: how long a member that was not eligible must stay \
               eligible before it counts again.",
        ..TEXT
    },
    Opt {
        key: "replica-fallback",
        metavar: "WHERE",
        default: "primary",
        help: "vip-role replica/sync: where the VIP goes while no member is eligible: \
               primary (the leader) or none.",
        ..TEXT
    },
    Opt {
        key: "replica-skip-nofailover",
        kind: Kind::Bool,
        metavar: "BOOL",
        default: "false",
        help: "vip-role replica/sync: a member tagged nofailover is not eligible either.",
        ..TEXT
    },
    Opt {
        key: "keep-on-exit",
        kind: Kind::Bool,
        metavar: "BOOL",
        default: "false",
        help: "Leave the VIP configured when vipd stops (SIGTERM/SIGINT).",
        ..TEXT
    },
    Opt {
        key: "vip-lifetime",
        metavar: "MS",
        default: "10000",
        help: "Milliseconds the kernel keeps the VIP after vipd last refreshed it (every \
               third of it), so a killed or hung vipd cannot hold it on: at least 3 × \
               interval (a larger interval raises the default), up to 86400000; \
               forever = a permanent address. --once adds a permanent one unless this \
               is set.",
        ..TEXT
    },
    Opt {
        key: "manager-type",
        metavar: "TYPE",
        default: "basic",
        help: "How the address is managed: basic (on a local interface), hetzner (a \
               Hetzner Robot failover IP routed to this server) or hetzner-cloud (a \
               Hetzner Cloud floating IP assigned to this server, and on the interface).",
        old: &["hostingtype", "hosting_type"],
        also: &["hosting-type"],
        ..TEXT
    },
    Opt {
        key: "hetzner-credentials-file",
        metavar: "FILE",
        default: "/etc/hetzner",
        help: "hetzner: the Robot webservice login, as user=\"…\" and pass=\"…\" lines \
               (vip-manager's file).",
        ..TEXT
    },
    Opt {
        key: "hetzner-user",
        metavar: "USER",
        default: "(none)",
        help: "hetzner: the Robot webservice user; with hetzner-password-file, wins over \
               hetzner-credentials-file.",
        ..TEXT
    },
    Opt {
        key: "hetzner-password-file",
        metavar: "FILE",
        default: "(none)",
        help: "hetzner: a file holding the Robot webservice password (with hetzner-user).",
        ..TEXT
    },
    Opt {
        key: "hetzner-server-ip",
        metavar: "ADDR",
        default: "(looked up)",
        help: "hetzner: this server's main IP, the failover IP's target; default: the \
               primary address of interface, else the source address of the route \
               towards the API.",
        ..TEXT
    },
    Opt {
        key: "hetzner-local-address",
        kind: Kind::Bool,
        metavar: "BOOL",
        default: "false",
        help: "hetzner: also add the failover IP to interface while leading (never \
               announced: the IP is routed).",
        ..TEXT
    },
    Opt {
        key: "hetzner-cloud-token-file",
        metavar: "FILE",
        default: "(required)",
        help: "hetzner-cloud: a file holding the Cloud API token.",
        ..TEXT
    },
    Opt {
        key: "hetzner-floating-ip-id",
        metavar: "ID",
        default: "(required)",
        help: "hetzner-cloud: the floating IP's id.",
        ..TEXT
    },
    Opt {
        key: "hetzner-server-id",
        metavar: "ID",
        default: "(required)",
        help: "hetzner-cloud: this server's id.",
        ..TEXT
    },
    Opt {
        key: "hetzner-api-url",
        metavar: "URL",
        default: "https://robot-ws.your-server.de",
        help: "hetzner: the Robot webservice's base URL.",
        ..TEXT
    },
    Opt {
        key: "hetzner-cloud-api-url",
        metavar: "URL",
        default: "https://api.hetzner.cloud/v1",
        help: "hetzner-cloud: the Cloud API's base URL.",
        ..TEXT
    },
    Opt {
        key: "hetzner-ca-file",
        metavar: "FILE",
        default: "(built-in roots)",
        help: "hetzner, hetzner-cloud: CA certificates (PEM) to verify the API with.",
        ..TEXT
    },
    Opt {
        key: "hetzner-recheck",
        metavar: "MS",
        default: "60000",
        help: "hetzner, hetzner-cloud: how often the leader checks the route; at least \
               36000 (hetzner: 100 reads an hour) or 10000 (hetzner-cloud).",
        ..TEXT
    },
    Opt {
        key: "retry-num",
        metavar: "N",
        default: "(ignored)",
        help: "Accepted for vip-manager compatibility and ignored: vipd retries every \
               interval.",
        ..TEXT
    },
    Opt {
        key: "retry-after",
        metavar: "MS",
        default: "(ignored)",
        help: "Accepted for vip-manager compatibility and ignored.",
        ..TEXT
    },
    Opt {
        key: "verbose",
        kind: Kind::Bool,
        metavar: "BOOL",
        default: "false",
        help: "Log debug messages. -v is short for --verbose.",
        ..TEXT
    },
];

/// The old variables that Debian's `/etc/patroni/*.vip` files set: the template
/// (`/etc/patroni/vip.in` of the vip-manager package, filled in by
/// `pg_createconfig_patroni`) writes them, alone or beside the new names, and the
/// units read them. The operator cannot drop them, so they carry no deprecation
/// warning; a disagreement with the new name is still reported.
pub(super) const DEBIAN_ENV: &[&str] = &[
    "VIP_MASK",
    "VIP_IFACE",
    "VIP_KEY",
    "VIP_HOST",
    "VIP_TYPE",
    "VIP_ENDPOINT",
];

/// How a name relates to its option: a higher rank wins within one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Rank {
    Old,
    Also,
    New,
}

/// The option a flag name or YAML key (lower-cased) stands for.
pub(super) fn lookup(name: &str) -> Option<(&'static Opt, Rank)> {
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
pub(super) fn env_name(name: &str) -> String {
    format!("VIP_{}", name.to_ascii_uppercase().replace('-', "_"))
}

/// The variable that names the YAML file (its flag is `--config`).
pub(super) const CONFIG_ENV: &str = "VIP_CONFIG";
