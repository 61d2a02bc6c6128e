//! Tests of the configuration: sources, precedence, old names, every error path.

use super::*;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

const HOST: &str = "pg1";

/// A variable name and its value.
type EnvVar<'a> = (&'a str, &'a str);
type Env<'a> = &'a [EnvVar<'a>];

/// A file under the temp dir with a unique name, removed on drop.
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    fn new(tag: &str, content: &[u8]) -> TempFile {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("vipd-config-test-{}-{n}-{tag}", std::process::id()));
        std::fs::write(&path, content).expect("write temp file");
        TempFile { path }
    }

    fn path(&self) -> &str {
        self.path.to_str().expect("temp path is UTF-8")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

fn run(list: &[&str], env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    let map: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    load(args(list), &|k| map.get(k).cloned(), HOST)
}

/// The configuration of a `Run` command and the warnings.
fn config(list: &[&str], env: &[(&str, &str)]) -> (Config, Vec<String>) {
    match run(list, env) {
        Ok(Loaded {
            command: Command::Run(c),
            warnings,
        }) => (c, warnings),
        other => panic!("{list:?} {env:?}: {other:?}"),
    }
}

fn error(list: &[&str], env: &[(&str, &str)]) -> String {
    match run(list, env) {
        Err(ConfigError(e)) => e,
        Ok(l) => panic!("{list:?} {env:?} was accepted: {l:?}"),
    }
}

/// The smallest complete set of flags.
const BASE: &[&str] = &[
    "--ip",
    "192.0.2.50",
    "--netmask",
    "24",
    "--interface",
    "eth0",
    "--trigger-key",
    "/service/pg/leader",
];

fn base_with(extra: &[&str]) -> Vec<&'static str> {
    // Leak-free: the extra flags are 'static in every test.
    BASE.iter()
        .copied()
        .chain(extra.iter().map(|s| leak(s)))
        .collect()
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn has_warning(warnings: &[String], needle: &str) -> bool {
    warnings.iter().any(|w| w.contains(needle))
}

// --- defaults --------------------------------------------------------------------

#[test]
fn defaults() {
    let (c, warnings) = config(BASE, &[]);
    assert_eq!(
        c,
        Config {
            vip: Vip {
                addr: "192.0.2.50".parse().unwrap(),
                prefix_len: 24
            },
            interface: "eth0".into(),
            trigger_key: "/service/pg/leader".into(),
            trigger_value: HOST.into(),
            dcs_type: DcsType::Etcd,
            endpoints: vec!["http://127.0.0.1:2379".into()],
            etcd_user: None,
            etcd_password: None,
            etcd_ca_file: None,
            etcd_cert_file: None,
            etcd_key_file: None,
            consul_token: None,
            interval: Duration::from_millis(1000),
            dcs_grace: Grace::After(Duration::from_millis(10_000)),
            status_file: None,
            keep_on_exit: false,
            announce_count: 3,
            announce_interval: Duration::from_millis(1000),
            announce_mode: AnnounceMode::Request,
            no_watch: false,
            verbose: false,
            config_file: None,
        }
    );
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn missing_netmask_is_a_host_address_with_a_warning() {
    let (c, warnings) = config(
        &[
            "--ip",
            "192.0.2.50",
            "--interface",
            "eth0",
            "--trigger-key",
            "/k",
        ],
        &[],
    );
    assert_eq!(c.vip.prefix_len, 32);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("netmask: not set; adding 192.0.2.50/32"));

    let (c, warnings) = config(
        &[
            "--ip",
            "2001:db8::50",
            "--interface",
            "eth0",
            "--trigger-key",
            "/k",
        ],
        &[],
    );
    assert_eq!(c.vip.prefix_len, 128);
    assert!(has_warning(&warnings, "2001:db8::50/128"));
}

#[test]
fn new_options_parse() {
    let (c, _) = config(
        &base_with(&[
            "--dcs-grace=never",
            "--keep-on-exit",
            "--announce-count=0",
            "--announce-interval",
            "250",
            "--announce-mode=both",
            "--no-watch",
            "--interval=10",
        ]),
        &[],
    );
    assert_eq!(c.dcs_grace, Grace::Never);
    assert!(c.keep_on_exit);
    assert_eq!(c.announce_count, 0);
    assert_eq!(c.announce_interval, Duration::from_millis(250));
    assert_eq!(c.announce_mode, AnnounceMode::Both);
    assert!(c.no_watch);
    assert_eq!(c.interval, Duration::from_millis(10));

    let (c, _) = config(
        &base_with(&["--dcs-grace", "0", "--announce-mode", "Reply"]),
        &[],
    );
    assert_eq!(c.dcs_grace, Grace::After(Duration::ZERO));
    assert_eq!(c.announce_mode, AnnounceMode::Reply);
}

#[test]
fn booleans() {
    for (value, want) in [
        ("true", true),
        ("yes", true),
        ("1", true),
        ("on", true),
        ("TRUE", true),
        ("false", false),
        ("no", false),
        ("0", false),
        ("off", false),
    ] {
        let (c, _) = config(BASE, &[("VIP_VERBOSE", value)]);
        assert_eq!(c.verbose, want, "VIP_VERBOSE={value}");
        let flag = format!("--verbose={value}");
        let (c, _) = config(&base_with(&[&flag]), &[]);
        assert_eq!(c.verbose, want, "{flag}");
    }
    assert!(config(&base_with(&["--verbose"]), &[]).0.verbose);
    assert!(config(&base_with(&["-v"]), &[]).0.verbose);
    assert!(config(&base_with(&["-verbose"]), &[]).0.verbose);
    // A bare flag beats the environment.
    assert!(
        config(&base_with(&["-v"]), &[("VIP_VERBOSE", "false")])
            .0
            .verbose
    );
    assert_eq!(
        error(&base_with(&["--keep-on-exit=maybe"]), &[]),
        "--keep-on-exit: \"maybe\" is not a boolean (expected true or false)"
    );
}

// --- precedence ------------------------------------------------------------------

#[test]
fn precedence_flag_env_file_default() {
    let file = TempFile::new(
        "prec.yml",
        b"interval: 300\nannounce-count: 5\nverbose: true\n",
    );
    let f = file.path();
    let with_file = base_with(&["--config", f]);

    // file > default
    let (c, _) = config(&with_file, &[]);
    assert_eq!(c.interval, Duration::from_millis(300));
    assert_eq!(c.announce_count, 5);
    assert!(c.verbose);
    assert_eq!(c.config_file.as_deref(), Some(Path::new(f)));

    // env > file
    let (c, _) = config(
        &with_file,
        &[("VIP_INTERVAL", "200"), ("VIP_VERBOSE", "no")],
    );
    assert_eq!(c.interval, Duration::from_millis(200));
    assert!(!c.verbose);

    // flag > env > file
    let mut flags = with_file.clone();
    flags.extend(["--interval", "100"]);
    let (c, _) = config(&flags, &[("VIP_INTERVAL", "200")]);
    assert_eq!(c.interval, Duration::from_millis(100));

    // flag > file (no env)
    let (c, _) = config(&flags, &[]);
    assert_eq!(c.interval, Duration::from_millis(100));
    // announce-count untouched by the higher sources: still the file's.
    assert_eq!(c.announce_count, 5);

    // flag > env (no file)
    let (c, _) = config(&base_with(&["--interval=100"]), &[("VIP_INTERVAL", "200")]);
    assert_eq!(c.interval, Duration::from_millis(100));
}

#[test]
fn config_file_from_environment() {
    let file = TempFile::new("env.yml", b"ip: 192.0.2.7\n");
    let f = file.path();
    let (c, _) = config(
        &[
            "--interface",
            "eth0",
            "--trigger-key",
            "/k",
            "--netmask",
            "24",
        ],
        &[("VIP_CONFIG", f)],
    );
    assert_eq!(c.vip.addr, "192.0.2.7".parse::<IpAddr>().unwrap());
    // --config beats VIP_CONFIG.
    let other = TempFile::new("flag.yml", b"ip: 192.0.2.8\n");
    let (c, _) = config(
        &[
            "--interface=eth0",
            "--trigger-key=/k",
            "--netmask=24",
            "--config",
            other.path(),
        ],
        &[("VIP_CONFIG", f)],
    );
    assert_eq!(c.vip.addr, "192.0.2.8".parse::<IpAddr>().unwrap());
}

#[test]
fn empty_value_means_unset() {
    // Debian's unit passes every flag, empty when its variable is unset.
    let (c, warnings) = config(
        &[
            "--ip=192.0.2.50",
            "--interface=eth0",
            "--trigger-key=/service/pg/leader",
            "--trigger-value=",
            "--dcs-type=",
            "--dcs-endpoints=",
            "--netmask=",
        ],
        &[("VIP_NETMASK", "16")],
    );
    assert_eq!(c.vip.prefix_len, 16, "the empty flag must not hide the env");
    assert_eq!(c.trigger_value, HOST);
    assert_eq!(c.endpoints, vec!["http://127.0.0.1:2379".to_string()]);
    assert!(warnings.is_empty(), "{warnings:?}");

    // An empty environment variable does not hide the file.
    let file = TempFile::new("empty.yml", b"netmask: 20\ntrigger-value:\ninterval: ''\n");
    let (c, _) = config(
        &[
            "--ip=192.0.2.50",
            "--interface=eth0",
            "--trigger-key=/k",
            "--config",
            file.path(),
        ],
        &[("VIP_NETMASK", ""), ("VIP_INTERVAL", "  ")],
    );
    assert_eq!(c.vip.prefix_len, 20);
    assert_eq!(c.trigger_value, HOST);
    assert_eq!(c.interval, Duration::from_millis(1000));

    // An empty file value is unset: the /32 default and its warning apply.
    let file = TempFile::new("empty2.yml", b"netmask: ~\n");
    let (c, warnings) = config(
        &[
            "--ip=192.0.2.50",
            "--interface=eth0",
            "--trigger-key=/k",
            "--config",
            file.path(),
        ],
        &[],
    );
    assert_eq!(c.vip.prefix_len, 32);
    assert!(has_warning(&warnings, "netmask: not set"));
}

// --- vip-manager's names ---------------------------------------------------------

#[test]
fn debian_patroni_vip_file() {
    // /etc/patroni/<cluster>.vip as pg_createconfig_patroni writes it (vip.in of
    // Debian's vip-manager 1.0.2): both the old and the new names, equal.
    let env = [
        ("VIP_IP", "192.0.2.50"),
        ("VIP_MASK", "24"),
        ("VIP_NETMASK", "24"),
        ("VIP_IFACE", "eth0"),
        ("VIP_KEY", "/service/main/leader"),
        ("VIP_TRIGGER_KEY", "/service/main/leader"),
        ("VIP_HOST", "pg2"),
        ("VIP_TRIGGER_VALUE", "pg2"),
        ("VIP_TYPE", "etcd"),
        ("VIP_DCS_ENDPOINTS", "http://192.0.2.1:2379"),
        ("VIP_ENDPOINT", "http://192.0.2.1:2379"),
    ];
    let (c, warnings) = config(&[], &env);
    assert_eq!(c.vip.to_string(), "192.0.2.50/24");
    assert_eq!(c.interface, "eth0");
    assert_eq!(c.trigger_key, "/service/main/leader");
    assert_eq!(c.trigger_value, "pg2");
    assert_eq!(c.endpoints, vec!["http://192.0.2.1:2379".to_string()]);
    for (old, new) in [
        ("VIP_MASK", "VIP_NETMASK"),
        ("VIP_IFACE", "VIP_INTERFACE"),
        ("VIP_KEY", "VIP_TRIGGER_KEY"),
        ("VIP_HOST", "VIP_TRIGGER_VALUE"),
        ("VIP_TYPE", "VIP_DCS_TYPE"),
        ("VIP_ENDPOINT", "VIP_DCS_ENDPOINTS"),
    ] {
        assert!(
            warnings.contains(&format!("{old} is deprecated; use {new}")),
            "{old}: {warnings:?}"
        );
    }
    // Equal values: no conflict notes on top of the deprecations.
    assert_eq!(warnings.len(), 6, "{warnings:?}");
}

#[test]
fn debian_default_file_with_unit_flags() {
    // vip-manager.service: EnvironmentFile=/etc/default/vip-manager (old names only)
    // and ExecStart passing them as the new flags, --netmask empty when unset.
    let env = [
        ("VIP_IP", "192.0.2.50"),
        ("VIP_IFACE", "eth0"),
        ("VIP_KEY", "/service/b/leader"),
        ("VIP_HOST", "pg3"),
        ("VIP_TYPE", "etcd"),
        ("VIP_ENDPOINT", "http://192.0.2.1:2379"),
        ("VIP_HOSTINGTYPE", "basic"),
    ];
    let (c, warnings) = config(
        &[
            "--ip=192.0.2.50",
            "--interface=eth0",
            "--trigger-key=/service/b/leader",
            "--trigger-value=pg3",
            "--dcs-type=etcd",
            "--dcs-endpoints=http://192.0.2.1:2379",
            "--netmask=",
        ],
        &env,
    );
    assert_eq!(c.vip.to_string(), "192.0.2.50/32");
    assert_eq!(c.trigger_value, "pg3");
    assert!(has_warning(
        &warnings,
        "VIP_HOSTINGTYPE is deprecated; use VIP_MANAGER_TYPE"
    ));
    assert!(has_warning(&warnings, "netmask: not set"));
}

#[test]
fn old_single_dash_flags_of_vip_manager_0x() {
    // vip-manager 0.x used Go's flag package: -ip=... -iface ... -key -host -endpoint.
    let (c, warnings) = config(
        &[
            "-ip=192.0.2.50",
            "-mask",
            "24",
            "-iface",
            "eth0",
            "-key=/service/b/leader",
            "-host",
            "pg1",
            "-type=etcd",
            "-endpoint",
            "http://192.0.2.1:2379,http://192.0.2.2:2379/",
            "-etcd_user=patroni",
            "-etcd_password",
            "s3cret",
            "-hostingtype=basic",
            "-interval=500",
        ],
        &[],
    );
    assert_eq!(c.vip.to_string(), "192.0.2.50/24");
    assert_eq!(c.interface, "eth0");
    assert_eq!(c.trigger_key, "/service/b/leader");
    assert_eq!(c.trigger_value, "pg1");
    assert_eq!(
        c.endpoints,
        vec![
            "http://192.0.2.1:2379".to_string(),
            "http://192.0.2.2:2379".to_string()
        ]
    );
    assert_eq!(c.etcd_user.as_deref(), Some("patroni"));
    assert_eq!(c.etcd_password, Some(Secret("s3cret".into())));
    assert_eq!(c.interval, Duration::from_millis(500));
    for (old, new) in [
        ("-mask", "--netmask"),
        ("-iface", "--interface"),
        ("-key", "--trigger-key"),
        ("-host", "--trigger-value"),
        ("-type", "--dcs-type"),
        ("-endpoint", "--dcs-endpoints"),
        ("-etcd_user", "--etcd-user"),
        ("-etcd_password", "--etcd-password"),
        ("-hostingtype", "--manager-type"),
    ] {
        assert!(
            warnings.contains(&format!("{old} is deprecated; use {new}")),
            "{old}: {warnings:?}"
        );
    }
    assert!(!warnings.iter().any(|w| w.contains("s3cret")));
}

#[test]
fn flag_forms() {
    // --name=value, --name value, -name=value, -name value; a value may start with '-'.
    for list in [
        &["--trigger-value=-x", "--ip=192.0.2.50"][..],
        &["--trigger-value", "-x", "--ip", "192.0.2.50"][..],
        &["-trigger-value=-x", "-ip=192.0.2.50"][..],
        &["-trigger-value", "-x", "-ip", "192.0.2.50"][..],
    ] {
        let mut all = list.to_vec();
        all.extend(["--interface=eth0", "--trigger-key=/k", "--netmask=24"]);
        let (c, _) = config(&all, &[]);
        assert_eq!(c.trigger_value, "-x", "{list:?}");
        assert_eq!(c.vip.addr, "192.0.2.50".parse::<IpAddr>().unwrap());
    }
    // The last of a repeated flag wins, as in Go.
    let (c, _) = config(&base_with(&["--interval=50", "--interval=60"]), &[]);
    assert_eq!(c.interval, Duration::from_millis(60));
}

#[test]
fn old_and_new_name_in_one_source_new_wins() {
    // Flags, both orders.
    for list in [
        &["--mask=16", "--netmask=24"][..],
        &["--netmask=24", "--mask=16"][..],
    ] {
        let mut all = list.to_vec();
        all.extend(["--ip=192.0.2.50", "--interface=eth0", "--trigger-key=/k"]);
        let (c, warnings) = config(&all, &[]);
        assert_eq!(c.vip.prefix_len, 24, "{list:?}");
        assert!(has_warning(
            &warnings,
            "--mask is deprecated; use --netmask"
        ));
        assert!(has_warning(
            &warnings,
            "--mask is ignored: --netmask is also set and wins"
        ));
    }
    // Environment.
    let (c, warnings) = config(
        &["--ip=192.0.2.50", "--trigger-key=/k", "--netmask=24"],
        &[("VIP_IFACE", "eth1"), ("VIP_INTERFACE", "eth0")],
    );
    assert_eq!(c.interface, "eth0");
    assert!(has_warning(
        &warnings,
        "VIP_IFACE is ignored: VIP_INTERFACE is also set and wins"
    ));
    // File, both orders.
    for text in [
        "iface: eth1\ninterface: eth0\n",
        "interface: eth0\niface: eth1\n",
    ] {
        let file = TempFile::new("oldnew.yml", text.as_bytes());
        let (c, warnings) = config(
            &[
                "--ip=192.0.2.50",
                "--trigger-key=/k",
                "--netmask=24",
                "--config",
                file.path(),
            ],
            &[],
        );
        assert_eq!(c.interface, "eth0", "{text:?}");
        assert!(has_warning(&warnings, "iface is deprecated; use interface"));
        assert!(has_warning(&warnings, "is ignored"));
    }
    // An old name in a higher source still beats a new name in a lower one.
    let (c, _) = config(
        &[
            "--ip=192.0.2.50",
            "--trigger-key=/k",
            "--netmask=24",
            "--iface=eth2",
        ],
        &[("VIP_INTERFACE", "eth0")],
    );
    assert_eq!(c.interface, "eth2");
}

#[test]
fn vip_manager_0x_yaml_file() {
    // The sample file of vip-manager 0.6 (old keys, underscores, a block list).
    let text = "\
interval: 1000
key: \"/service/pgcluster/leader\"
nodename: \"pgcluster_member1\"
ip: 192.0.2.123 # the virtual ip address to manage
mask: 24 # netmask for the virtual ip
iface: enp0s3 #interface to which the virtual ip will be added
hosting_type: basic # possible values: basic, or hetzner.
endpoint_type: etcd # etcd or consul
endpoints:
  - http://127.0.0.1:2379
  - http://192.0.2.42:2379
etcd_user: \"patroni\"
etcd_password: \"Julian's secret password\"
consul_token: \"Julian's secret token\"
retry_num: 2
retry_after: 250  #in milliseconds
";
    let file = TempFile::new("v06.yml", text.as_bytes());
    let (c, warnings) = config(&["--config", file.path()], &[]);
    assert_eq!(c.trigger_key, "/service/pgcluster/leader");
    assert_eq!(c.trigger_value, "pgcluster_member1");
    assert_eq!(c.vip.to_string(), "192.0.2.123/24");
    assert_eq!(c.interface, "enp0s3");
    assert_eq!(c.endpoints.len(), 2);
    assert_eq!(c.etcd_user.as_deref(), Some("patroni"));
    assert_eq!(
        c.etcd_password,
        Some(Secret("Julian's secret password".into()))
    );
    assert_eq!(c.consul_token, Some(Secret("Julian's secret token".into())));
    let f = file.path();
    for (line, old, new) in [
        (2, "key", "trigger-key"),
        (3, "nodename", "trigger-value"),
        (5, "mask", "netmask"),
        (6, "iface", "interface"),
        (7, "hosting_type", "manager-type"),
        (8, "endpoint_type", "dcs-type"),
        (9, "endpoints", "dcs-endpoints"),
        (12, "etcd_user", "etcd-user"),
        (13, "etcd_password", "etcd-password"),
        (14, "consul_token", "consul-token"),
        (15, "retry_num", "retry-num"),
        (16, "retry_after", "retry-after"),
    ] {
        let want = format!("{f}:{line}: {old} is deprecated; use {new}");
        assert!(warnings.contains(&want), "{want}: {warnings:?}");
    }
    assert!(warnings.contains(&format!(
        "{f}:15: retry_num is ignored: vipd retries the DCS every interval"
    )));
    assert!(has_warning(
        &warnings,
        "consul_token is ignored: it is used only with dcs-type consul"
    ));
    assert!(
        !warnings.iter().any(|w| w.contains("secret")),
        "{warnings:?}"
    );
}

#[test]
fn yaml_details_lists_case_duplicates_unknown_keys() {
    let text = "\
IP: 192.0.2.9
netmask: 24
interface: eth0
trigger-key: /k
dcs-endpoints: [\"http://192.0.2.1:2379/\", 'https://192.0.2.2:2379']
ip: 192.0.2.10
foo: bar
";
    let file = TempFile::new("details.yml", text.as_bytes());
    let f = file.path();
    let (c, warnings) = config(&["--config", f], &[]);
    assert_eq!(c.vip.addr, "192.0.2.10".parse::<IpAddr>().unwrap());
    assert_eq!(
        c.endpoints,
        vec![
            "http://192.0.2.1:2379".to_string(),
            "https://192.0.2.2:2379".to_string()
        ]
    );
    assert!(warnings.contains(&format!(
        "{f}:6: ip: duplicate key (also on line 1); the last one wins"
    )));
    assert!(warnings.contains(&format!("{f}:7: foo: unknown key (ignored)")));
    assert_eq!(warnings.len(), 2, "{warnings:?}");
}

#[test]
fn endpoints_forms() {
    let (c, _) = config(
        &base_with(&[
            "--dcs-endpoints",
            " http://a:1 , HTTPS://b:2/, ,http://[2001:db8::1]:2379/v3/ ",
        ]),
        &[],
    );
    assert_eq!(
        c.endpoints,
        vec![
            "http://a:1".to_string(),
            "https://b:2".to_string(),
            "http://[2001:db8::1]:2379/v3".to_string()
        ]
    );
}

#[test]
fn manager_type_and_hosting_type() {
    assert!(
        config(&base_with(&["--manager-type=basic"]), &[])
            .1
            .is_empty()
    );
    assert!(
        config(&base_with(&["--hosting-type=basic"]), &[])
            .1
            .is_empty()
    );
    assert!(config(BASE, &[("VIP_HOSTING_TYPE", "basic")]).1.is_empty());
    assert_eq!(
        error(&base_with(&["--manager-type=hetzner"]), &[]),
        "--manager-type: \"hetzner\" is not supported (vipd supports only \"basic\")"
    );
    assert_eq!(
        error(BASE, &[("VIP_HOSTINGTYPE", "hetzner_floating_ip")]),
        "VIP_HOSTINGTYPE: \"hetzner_floating_ip\" is not supported (vipd supports only \"basic\")"
    );
}

#[test]
fn retry_settings_are_ignored_with_a_note() {
    let (_, warnings) = config(
        &base_with(&["--retry-num=3"]),
        &[("VIP_RETRY_AFTER", "250")],
    );
    assert!(
        warnings.contains(&"--retry-num is ignored: vipd retries the DCS every interval".into())
    );
    assert!(
        warnings
            .contains(&"VIP_RETRY_AFTER is ignored: vipd retries the DCS every interval".into())
    );
}

// --- commands --------------------------------------------------------------------

#[test]
fn commands() {
    for flag in ["--help", "-h", "-help"] {
        assert_eq!(run(&[flag], &[]).unwrap().command, Command::Help, "{flag}");
    }
    for flag in ["--version", "-V", "-version"] {
        assert_eq!(
            run(&[flag], &[]).unwrap().command,
            Command::Version,
            "{flag}"
        );
    }
    // --help wins over anything wrong, and needs no configuration.
    assert_eq!(
        run(&["--bogus", "--ip=300.1.1.1", "--help"], &[])
            .unwrap()
            .command,
        Command::Help
    );
    match run(&base_with(&["--once"]), &[]).unwrap().command {
        Command::Once {
            dry_run,
            config,
            json,
        } => {
            assert!(!dry_run && !json);
            assert_eq!(config.interface, "eth0");
        }
        other => panic!("{other:?}"),
    }
    match run(&base_with(&["--dry-run", "--once", "--json"]), &[])
        .unwrap()
        .command
    {
        Command::Once { dry_run, json, .. } => assert!(dry_run && json),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        run(&base_with(&["--json"]), &[]).unwrap_err().0,
        "--json: only valid with --once"
    );
    assert_eq!(
        error(&base_with(&["--dry-run"]), &[]),
        "--dry-run: only valid with --once"
    );
    assert_eq!(
        error(&base_with(&["--once=yes"]), &[]),
        "--once: takes no value"
    );
}

// --- errors ----------------------------------------------------------------------

#[test]
fn argv_errors() {
    assert_eq!(
        error(&base_with(&["--bogus"]), &[]),
        "--bogus: unknown option (see --help)"
    );
    // The value of a mistyped flag is never echoed: it may be a password.
    assert_eq!(
        error(&base_with(&["--etcd-pasword=hunter2"]), &[]),
        "--etcd-pasword: unknown option (see --help)"
    );
    assert_eq!(error(&base_with(&["--ip"]), &[]), "--ip: missing value");
    assert_eq!(
        error(&base_with(&["extra"]), &[]),
        "unexpected argument \"extra\" (vipd takes only options; see --help)"
    );
    assert_eq!(
        error(&base_with(&["-"]), &[]),
        "unexpected argument \"-\" (vipd takes only options; see --help)"
    );
    assert_eq!(
        error(&base_with(&["--", "x"]), &[]),
        "unexpected argument \"x\" (vipd takes only options)"
    );
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        let mut a = args(BASE);
        a.push(OsString::from_vec(vec![b'-', b'-', 0xff]));
        let map: HashMap<String, String> = HashMap::new();
        assert_eq!(
            load(a, &|k| map.get(k).cloned(), HOST),
            Err(ConfigError("argument 9 is not valid UTF-8".into()))
        );
    }
}

#[test]
fn required_settings() {
    assert_eq!(
        error(&["--interface=eth0", "--trigger-key=/k"], &[]),
        "ip: not set (required)"
    );
    assert_eq!(
        error(&["--ip=192.0.2.1", "--trigger-key=/k"], &[]),
        "interface: not set (required)"
    );
    assert_eq!(
        error(&["--ip=192.0.2.1", "--interface=eth0"], &[]),
        "trigger-key: not set (required)"
    );
    let map: HashMap<String, String> = HashMap::new();
    assert_eq!(
        load(args(BASE), &|k| map.get(k).cloned(), " "),
        Err(ConfigError(
            "trigger-value: not set, and the hostname is empty".into()
        ))
    );
}

#[test]
fn value_errors_name_source_key_and_value() {
    let cases: &[(&[&str], Env, &str)] = &[
        (
            &["--ip=10.0.0.300"],
            &[],
            "--ip: \"10.0.0.300\" is not an IP address",
        ),
        (
            &[],
            &[("VIP_IP", "db1")],
            "VIP_IP: \"db1\" is not an IP address",
        ),
        (
            &["--ip=192.0.2.50/24"],
            &[],
            "--ip: \"192.0.2.50/24\" is not an IP address (give the prefix length in netmask)",
        ),
        (
            &["--ip=0.0.0.0"],
            &[],
            "--ip: \"0.0.0.0\" is not a unicast address",
        ),
        (
            &["--ip=224.0.0.1"],
            &[],
            "--ip: \"224.0.0.1\" is not a unicast address",
        ),
        (
            &["--ip=ff02::1"],
            &[],
            "--ip: \"ff02::1\" is not a unicast address",
        ),
        (
            &["--netmask=33"],
            &[],
            "--netmask: \"33\" is out of range 1..32 for an IPv4 address",
        ),
        (
            &["--netmask=0"],
            &[],
            "--netmask: \"0\" is out of range 1..32 for an IPv4 address",
        ),
        (
            &["--netmask=-1"],
            &[],
            "--netmask: \"-1\" is not a prefix length 1..32",
        ),
        (
            &["--ip=2001:db8::5", "--netmask=129"],
            &[],
            "--netmask: \"129\" is out of range 1..128 for an IPv6 address",
        ),
        (
            &["--netmask=255.255.255.0"],
            &[],
            "--netmask: \"255.255.255.0\" is not a prefix length 1..32 (write 24 for this mask)",
        ),
        (
            &[],
            &[("VIP_MASK", "255.0.255.0")],
            "VIP_MASK: \"255.0.255.0\" is not a prefix length 1..32",
        ),
        (
            &["--interface=eth0:1"],
            &[],
            "--interface: \"eth0:1\" is not a valid interface name (at most 15 bytes; no '/', ':' or blanks)",
        ),
        (
            &["--interface=averyveryverylongname"],
            &[],
            "--interface: \"averyveryverylongname\" is not a valid interface name (at most 15 bytes; no '/', ':' or blanks)",
        ),
        (
            &["--dcs-endpoints=127.0.0.1:2379"],
            &[],
            "--dcs-endpoints: \"127.0.0.1:2379\" has no scheme (expected http:// or https://)",
        ),
        (
            &[],
            &[("VIP_ENDPOINT", "http://a:1,ftp://b")],
            "VIP_ENDPOINT: \"ftp://b\" has an unsupported scheme (expected http:// or https://)",
        ),
        (
            &["--dcs-endpoints=http://"],
            &[],
            "--dcs-endpoints: \"http://\" has no host",
        ),
        (
            &["--dcs-endpoints=http://a:99999"],
            &[],
            "--dcs-endpoints: \"http://a:99999\" has an invalid port",
        ),
        (
            &["--dcs-endpoints=http://a:x"],
            &[],
            "--dcs-endpoints: \"http://a:x\" has an invalid port",
        ),
        (
            &["--dcs-endpoints=http://a b:1"],
            &[],
            "--dcs-endpoints: \"http://a b:1\" contains blanks",
        ),
        (
            &["--dcs-endpoints=,"],
            &[],
            "--dcs-endpoints: no endpoint given",
        ),
        (
            &["--dcs-type=consul", "--consul-token=a\tb"],
            &[],
            "--consul-token: the token contains characters an HTTP header cannot carry \
             (control or non-ASCII characters, or blanks at either end)",
        ),
        (
            &[],
            &[("VIP_TYPE", "consul"), ("VIP_CONSUL_TOKEN", " t")],
            "VIP_CONSUL_TOKEN: the token contains characters an HTTP header cannot carry \
             (control or non-ASCII characters, or blanks at either end)",
        ),
        (
            &["--dcs-type=zookeeper"],
            &[],
            "--dcs-type: \"zookeeper\" is not a known dcs-type (expected etcd, etcd3, etcd2, consul or patroni)",
        ),
        (
            &["--interval=0"],
            &[],
            "--interval: \"0\" is out of range 10..3600000",
        ),
        (
            &["--interval=9"],
            &[],
            "--interval: \"9\" is out of range 10..3600000",
        ),
        (
            &["--interval=99999999999999999999999"],
            &[],
            "--interval: \"99999999999999999999999\" is out of range 10..3600000",
        ),
        (
            &["--interval=1s"],
            &[],
            "--interval: \"1s\" is not a whole number",
        ),
        (
            &["--dcs-grace=soon"],
            &[],
            "--dcs-grace: \"soon\" is not a whole number of milliseconds or \"never\"",
        ),
        (
            &["--dcs-grace=86400001"],
            &[],
            "--dcs-grace: \"86400001\" is out of range 0..86400000",
        ),
        (
            &["--announce-count=101"],
            &[],
            "--announce-count: \"101\" is out of range 0..100",
        ),
        (
            &["--announce-interval=-5"],
            &[],
            "--announce-interval: \"-5\" is not a whole number",
        ),
        (
            &["--announce-mode=gratuitous"],
            &[],
            "--announce-mode: \"gratuitous\" is not an announce-mode (expected request, reply or both)",
        ),
        (
            &[],
            &[("VIP_NO_WATCH", "perhaps")],
            "VIP_NO_WATCH: \"perhaps\" is not a boolean (expected true or false)",
        ),
        (
            &["--etcd-password=pw"],
            &[],
            "--etcd-password: set, but etcd-user is not",
        ),
    ];
    for (flags, env, want) in cases {
        // The required flags, minus those the case sets itself (flags beat env).
        let set_by_env: Vec<&str> = env
            .iter()
            .filter_map(|(var, _)| {
                let name = var
                    .strip_prefix("VIP_")?
                    .to_ascii_lowercase()
                    .replace('_', "-");
                lookup(&name).map(|(opt, _)| opt.key)
            })
            .collect();
        let mut all: Vec<&str> = Vec::new();
        for pair in BASE.chunks(2) {
            if !set_by_env.iter().any(|k| pair[0] == format!("--{k}")) {
                all.extend(pair);
            }
        }
        all.extend(flags.iter());
        assert_eq!(&error(&all, env), want, "{flags:?} {env:?}");
    }
}

#[test]
fn file_errors_name_path_and_line() {
    let file = TempFile::new(
        "bad-ip.yml",
        b"# vipd\ninterface: eth0\nip: \"10.0.0.300\"\n",
    );
    let f = file.path();
    assert_eq!(
        error(&["--config", f, "--trigger-key=/k"], &[]),
        format!("{f}:3: ip: \"10.0.0.300\" is not an IP address")
    );

    let file = TempFile::new("bad-mask.yml", b"ip: 192.0.2.1\nmask: 40\n");
    let f = file.path();
    assert_eq!(
        error(
            &["--config", f, "--interface=eth0", "--trigger-key=/k"],
            &[]
        ),
        format!("{f}:2: mask: \"40\" is out of range 1..32 for an IPv4 address")
    );

    let file = TempFile::new(
        "bad-ep.yml",
        b"dcs-endpoints:\n  - http://a:1\n  - 127.0.0.1:2379\n",
    );
    let f = file.path();
    assert_eq!(
        error(&base_with(&["--config", f]), &[]),
        format!(
            "{f}:1: dcs-endpoints: \"127.0.0.1:2379\" has no scheme (expected http:// or https://)"
        )
    );

    let file = TempFile::new("list.yml", b"interval: [1, 2]\n");
    let f = file.path();
    assert_eq!(
        error(&base_with(&["--config", f]), &[]),
        format!("{f}:1: interval: expects a single value, not a list")
    );

    let file = TempFile::new("syntax.yml", b"ip: 192.0.2.1\ninterface:\n  name: eth0\n");
    let f = file.path();
    assert_eq!(
        error(&base_with(&["--config", f]), &[]),
        format!("{f}:3: nested mappings are not supported (only flat 'key: value')")
    );

    let file = TempFile::new("binary.yml", &[b'i', b'p', b':', b' ', 0xff, b'\n']);
    let f = file.path();
    assert_eq!(
        error(&base_with(&["--config", f]), &[]),
        format!("--config: {f:?} is not UTF-8 text")
    );

    let missing = std::env::temp_dir().join(format!(
        "vipd-config-test-{}-missing.yml",
        std::process::id()
    ));
    let m = missing.to_str().unwrap();
    let e = error(&base_with(&["--config", m]), &[]);
    assert!(
        e.starts_with(&format!("--config: cannot read {m:?}: ")),
        "{e}"
    );
    let e = error(BASE, &[("VIP_CONFIG", m)]);
    assert!(
        e.starts_with(&format!("VIP_CONFIG: cannot read {m:?}: ")),
        "{e}"
    );

    let dir = std::env::temp_dir();
    let d = dir.to_str().unwrap();
    assert_eq!(
        error(&base_with(&["--config", d]), &[]),
        format!("--config: {d:?} is a directory")
    );
}

// --- secrets and certificate files -----------------------------------------------

#[test]
fn secret_files() {
    let pw = TempFile::new("pw", b"correct horse\n");
    let token = TempFile::new("token", b"tok-123\r\n");
    let (c, _) = config(
        &base_with(&["--etcd-user=patroni", "--etcd-password-file", pw.path()]),
        &[("VIP_CONSUL_TOKEN_FILE", token.path())],
    );
    assert_eq!(c.etcd_password, Some(Secret("correct horse".into())));
    assert_eq!(c.consul_token, Some(Secret("tok-123".into())));

    // A higher source's direct password beats a lower source's file, and vice versa.
    let (c, _) = config(
        &base_with(&["--etcd-user=u", "--etcd-password=flagpw"]),
        &[("VIP_ETCD_PASSWORD_FILE", pw.path())],
    );
    assert_eq!(c.etcd_password, Some(Secret("flagpw".into())));
    let (c, _) = config(
        &base_with(&["--etcd-user=u", "--etcd-password-file", pw.path()]),
        &[("VIP_ETCD_PASSWORD", "envpw")],
    );
    assert_eq!(c.etcd_password, Some(Secret("correct horse".into())));

    // Both in one source: an error that names both, not the secret.
    let e = error(
        &base_with(&[
            "--etcd-user=u",
            "--etcd-password=flagpw",
            "--etcd-password-file",
            pw.path(),
        ]),
        &[],
    );
    assert_eq!(
        e,
        "--etcd-password and --etcd-password-file are both set; set only one"
    );

    // Errors name the file, never its content.
    let empty = TempFile::new("empty-pw", b"\n");
    assert_eq!(
        error(
            &base_with(&["--etcd-user=u", "--etcd-password-file", empty.path()]),
            &[]
        ),
        format!("--etcd-password-file: {:?} is empty", empty.path())
    );
    let binary = TempFile::new("bin-pw", &[0xfe, 0xff, b'x']);
    assert_eq!(
        error(
            &base_with(&["--etcd-user=u", "--etcd-password-file", binary.path()]),
            &[]
        ),
        format!(
            "--etcd-password-file: {:?} is not UTF-8 text",
            binary.path()
        )
    );
    let big = TempFile::new("big-pw", &vec![b'a'; 70_000]);
    assert_eq!(
        error(
            &base_with(&["--etcd-user=u", "--etcd-password-file", big.path()]),
            &[]
        ),
        format!(
            "--etcd-password-file: {:?} is larger than 64 KiB",
            big.path()
        )
    );
    let missing = format!("{}-gone", pw.path());
    let e = error(
        &base_with(&["--etcd-user=u", "--etcd-password-file", &missing]),
        &[],
    );
    assert!(
        e.starts_with(&format!("--etcd-password-file: cannot read {missing:?}: ")),
        "{e}"
    );
}

#[test]
fn secrets_never_appear_in_messages() {
    const PW: &str = "Sup3r-Secret-Value";
    let pw_file = TempFile::new("pw-leak", format!("{PW}\n").as_bytes());
    let yaml = TempFile::new(
        "leak.yml",
        format!("etcd-password: {PW}\nconsul_token: {PW}\netcd_password: other-{PW}\n").as_bytes(),
    );
    let attempts: Vec<(Vec<&str>, Vec<EnvVar>)> = vec![
        (base_with(&["--etcd-password", PW]), vec![]),
        (base_with(&[&format!("--etcd-password={PW}")]), vec![]),
        (base_with(&[&format!("--etcd-passwd={PW}")]), vec![]),
        (base_with(&["--consul-token", PW]), vec![]),
        (
            base_with(&[]),
            vec![("VIP_ETCD_PASSWORD", PW), ("VIP_ETCD_USER", "u")],
        ),
        (base_with(&[]), vec![("VIP_ETCD_PASSWORD", PW)]),
        (base_with(&["--config", yaml.path()]), vec![]),
        (
            base_with(&["--config", yaml.path(), "--etcd-user=u"]),
            vec![],
        ),
        (base_with(&["--etcd-password-file", pw_file.path()]), vec![]),
        (
            base_with(&[&format!("--dcs-endpoints=http://u:{PW}@h:1")]),
            vec![],
        ),
        (
            base_with(&[&format!("--dcs-endpoints=http://u:{PW}/x@h:1")]),
            vec![],
        ),
        (
            base_with(&[
                "--etcd-user=u",
                "--etcd-password",
                PW,
                "--etcd-password-file",
                pw_file.path(),
            ]),
            vec![],
        ),
    ];
    for (flags, env) in attempts {
        let out = match run(&flags, &env) {
            Ok(loaded) => format!("{:?} {:?}", loaded.command, loaded.warnings),
            Err(e) => e.to_string(),
        };
        assert!(!out.contains(PW), "{flags:?} {env:?} leaked: {out}");
    }
}

#[test]
fn certificate_files_must_be_readable() {
    let ca = TempFile::new("ca.pem", b"-----BEGIN CERTIFICATE-----\n");
    let cert = TempFile::new("cert.pem", b"x");
    let key = TempFile::new("key.pem", b"x");
    let (c, warnings) = config(
        &base_with(&[
            "--dcs-endpoints=https://192.0.2.1:2379",
            "--etcd-ca-file",
            ca.path(),
            "--etcd-cert-file",
            cert.path(),
            "--etcd-key-file",
            key.path(),
        ]),
        &[],
    );
    assert_eq!(c.etcd_ca_file.as_deref(), Some(Path::new(ca.path())));
    assert_eq!(c.etcd_cert_file.as_deref(), Some(Path::new(cert.path())));
    assert_eq!(c.etcd_key_file.as_deref(), Some(Path::new(key.path())));
    assert!(warnings.is_empty(), "{warnings:?}");

    // With http:// endpoints only, they do nothing: say so.
    let (_, warnings) = config(&base_with(&["--etcd-ca-file", ca.path()]), &[]);
    assert!(warnings.contains(&"--etcd-ca-file is ignored: no dcs-endpoint uses https://".into()));

    let missing = format!("{}-gone", ca.path());
    let e = error(&base_with(&["--etcd-ca-file", &missing]), &[]);
    assert!(
        e.starts_with(&format!("--etcd-ca-file: cannot read {missing:?}: ")),
        "{e}"
    );
    let e = error(BASE, &[("VIP_ETCD_KEY_FILE", &missing)]);
    assert!(
        e.starts_with(&format!("VIP_ETCD_KEY_FILE: cannot read {missing:?}: ")),
        "{e}"
    );

    assert_eq!(
        error(&base_with(&["--etcd-cert-file", cert.path()]), &[]),
        "--etcd-cert-file: set, but etcd-key-file is not"
    );
    assert_eq!(
        error(BASE, &[("VIP_ETCD_KEY_FILE", key.path())]),
        "VIP_ETCD_KEY_FILE: set, but etcd-cert-file is not"
    );
    // vip-manager 0.x's underscore keys work in the file.
    let yaml = TempFile::new(
        "tls.yml",
        format!(
            "dcs-endpoints: https://192.0.2.1:2379\netcd_cert_file: {}\netcd_key_file: {}\n",
            cert.path(),
            key.path()
        )
        .as_bytes(),
    );
    let (c, warnings) = config(&base_with(&["--config", yaml.path()]), &[]);
    assert_eq!(c.etcd_cert_file.as_deref(), Some(Path::new(cert.path())));
    assert!(has_warning(
        &warnings,
        "etcd_cert_file is deprecated; use etcd-cert-file"
    ));
}

#[test]
fn etcd_user_without_password_warns() {
    let (c, warnings) = config(BASE, &[("VIP_ETCD_USER", "patroni")]);
    assert_eq!(c.etcd_user.as_deref(), Some("patroni"));
    assert!(warnings.contains(
        &"VIP_ETCD_USER: set without etcd-password; authenticating with an empty password".into()
    ));
}

// --- environment and help --------------------------------------------------------

#[test]
fn unknown_environment_variables() {
    let names = [
        "PATH",
        "VIP_IP",
        "VIP_IFACE",
        "VIP_HOSTING_TYPE",
        "VIP_CONFIG",
        "VIP_DCS_GRACE",
        "VIP_ADDRES",
        "VIP_FOO",
        "VIPX",
    ];
    assert_eq!(
        unknown_env_warnings(names),
        vec![
            "VIP_ADDRES: unknown environment variable (ignored)".to_string(),
            "VIP_FOO: unknown environment variable (ignored)".to_string(),
        ]
    );
    // Every variable that load() reads is known.
    let read = std::cell::RefCell::new(Vec::new());
    let _ = load(
        args(&[]),
        &|k| {
            read.borrow_mut().push(k.to_string());
            None
        },
        HOST,
    );
    let read = read.into_inner();
    assert!(read.len() > OPTIONS.len(), "{read:?}");
    assert!(read.contains(&"VIP_CONFIG".to_string()));
    assert!(read.contains(&"VIP_NODENAME".to_string()));
    assert!(unknown_env_warnings(&read).is_empty());
}

#[test]
fn help_mentions_every_option() {
    let help = help_text();
    assert!(help.contains("--config FILE"));
    assert!(help.contains("VIP_CONFIG"));
    for opt in OPTIONS {
        assert!(help.contains(&format!("--{}", opt.key)), "{}", opt.key);
        assert!(help.contains(&format!("key {};", opt.key)), "{}", opt.key);
        assert!(help.contains(&env_name(opt.key)), "{}", opt.key);
        assert!(
            help.contains(&format!("default: {}", opt.default)),
            "{}",
            opt.key
        );
        for old in opt.old.iter().chain(opt.also) {
            assert!(help.contains(&format!("  {old} ")), "{old}");
            assert!(help.contains(&env_name(old)), "{old}");
        }
    }
    for flag in ["--once", "--dry-run", "-h, --help", "-V, --version", "-v"] {
        assert!(help.contains(flag), "{flag}");
    }
    assert!(help.contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn every_option_can_be_set_from_each_source() {
    // Each key round-trips through its flag, its variable and its YAML key (values
    // chosen valid for every key), so a typo in the table cannot hide.
    let valid = |key: &str| -> &'static str {
        match key {
            "ip" => "192.0.2.60",
            "netmask" => "25",
            "interface" => "eth9",
            "trigger-key" => "/x/leader",
            "trigger-value" => "n9",
            "dcs-type" => "etcd3",
            "dcs-endpoints" => "http://192.0.2.9:2379",
            "etcd-user" => "u9",
            "etcd-password" => "p9",
            "consul-token" => "t9",
            "interval" | "announce-interval" | "dcs-grace" | "retry-after" => "123",
            "announce-count" | "retry-num" => "7",
            "announce-mode" => "reply",
            "manager-type" => "basic",
            "verbose" | "keep-on-exit" | "no-watch" => "true",
            other => panic!("no test value for {other}"),
        }
    };
    let secret_file = TempFile::new("each-secret", b"s9\n");
    let pem = TempFile::new("each-pem", b"x");
    let file_value = |key: &str| match key {
        "etcd-password-file" | "consul-token-file" => secret_file.path().to_string(),
        _ => pem.path().to_string(),
    };
    let (default, _) = config(BASE, &[]);
    for opt in OPTIONS {
        let value = if opt.key.ends_with("-file") {
            file_value(opt.key)
        } else {
            valid(opt.key).to_string()
        };
        // The required settings as flags, except the one under test.
        let mut required: Vec<String> = Vec::new();
        for pair in BASE.chunks(2) {
            if pair[0] != format!("--{}", opt.key) {
                required.push(format!("{}={}", pair[0], pair[1]));
            }
        }
        // Companions some keys need.
        let mut extra: Vec<(&str, &str)> = Vec::new();
        if opt.key.starts_with("etcd-password") {
            extra.push(("etcd-user", "u"));
        }
        if opt.key.starts_with("etcd-")
            && opt.key.ends_with("-file")
            && opt.key != "etcd-password-file"
        {
            extra.push(("dcs-endpoints", "https://192.0.2.9:2379"));
            if opt.key == "etcd-cert-file" {
                extra.push(("etcd-key-file", pem.path()));
            }
            if opt.key == "etcd-key-file" {
                extra.push(("etcd-cert-file", pem.path()));
            }
        }
        let extra_flags: Vec<String> = extra.iter().map(|(k, v)| format!("--{k}={v}")).collect();

        let mut flags: Vec<&str> = required.iter().map(String::as_str).collect();
        flags.extend(extra_flags.iter().map(String::as_str));
        let from_env = config(&flags, &[(env_name(opt.key).as_str(), value.as_str())]).0;

        let file = TempFile::new("each.yml", format!("{}: '{value}'\n", opt.key).as_bytes());
        let mut file_flags = flags.clone();
        file_flags.extend(["--config", file.path()]);
        let mut from_file = config(&file_flags, &[]).0;
        assert_eq!(
            from_file.config_file.as_deref(),
            Some(Path::new(file.path()))
        );
        from_file.config_file = None;

        let flag = format!("--{}={value}", opt.key);
        flags.push(&flag);
        let from_flag = config(&flags, &[]).0;

        assert_eq!(from_flag, from_env, "{}", opt.key);
        assert_eq!(from_flag, from_file, "{}", opt.key);
        if !matches!(
            opt.key,
            "retry-num" | "retry-after" | "manager-type" | "dcs-type"
        ) {
            assert_ne!(from_flag, default, "{} had no effect", opt.key);
        }
    }
}

// --- DCS types -------------------------------------------------------------------

#[test]
fn dcs_types_and_their_default_endpoints() {
    for (name, want, endpoint) in [
        ("etcd", DcsType::Etcd, "http://127.0.0.1:2379"),
        ("ETCD3", DcsType::Etcd3, "http://127.0.0.1:2379"),
        ("etcd2", DcsType::Etcd2, "http://127.0.0.1:2379"),
        ("consul", DcsType::Consul, "http://127.0.0.1:8500"),
        ("patroni", DcsType::Patroni, "http://127.0.0.1:8008"),
    ] {
        let (c, warnings) = config(&base_with(&[&format!("--dcs-type={name}")]), &[]);
        assert_eq!(c.dcs_type, want, "{name}");
        assert_eq!(c.endpoints, vec![endpoint.to_string()], "{name}");
        assert_eq!(want.default_endpoint(), endpoint);
        assert!(warnings.is_empty(), "{name}: {warnings:?}");
        assert_eq!(want.name(), name.to_ascii_lowercase());
        // Debian's /etc/patroni/*.vip files say VIP_TYPE.
        let (c, _) = config(BASE, &[("VIP_TYPE", name)]);
        assert_eq!(c.dcs_type, want, "VIP_TYPE={name}");
    }
    // An explicit endpoint wins over the type's default.
    let (c, _) = config(
        &base_with(&["--dcs-type=consul", "--dcs-endpoints=http://192.0.2.7:8500"]),
        &[],
    );
    assert_eq!(c.endpoints, vec!["http://192.0.2.7:8500".to_string()]);
}

#[test]
fn patroni_defaults_key_and_value_as_vip_manager() {
    let flags = [
        "--ip=192.0.2.50",
        "--netmask=24",
        "--interface=eth0",
        "--dcs-type=patroni",
    ];
    let (c, warnings) = config(&flags, &[]);
    assert_eq!(c.trigger_key, "/leader");
    assert_eq!(c.trigger_value, "200");
    assert!(warnings.is_empty(), "{warnings:?}");
    // Set, they win.
    let mut more = flags.to_vec();
    more.extend(["--trigger-key=/primary", "--trigger-value=200"]);
    let (c, _) = config(&more, &[]);
    assert_eq!(c.trigger_key, "/primary");
    // The other types still require the key and default the value to the hostname.
    let e = error(&["--ip=192.0.2.50", "--interface=eth0"], &[]);
    assert_eq!(e, "trigger-key: not set (required)");
    let (c, _) = config(&base_with(&["--dcs-type=consul"]), &[]);
    assert_eq!(c.trigger_value, HOST);
}

#[test]
fn patroni_uses_the_first_endpoint_only() {
    let (c, warnings) = config(
        &base_with(&[
            "--dcs-type=patroni",
            "--dcs-endpoints=http://192.0.2.10:8008,http://192.0.2.11:8008",
        ]),
        &[],
    );
    assert_eq!(c.endpoints.len(), 2);
    assert_eq!(
        warnings,
        vec![
            "--dcs-endpoints: dcs-type patroni uses only the first endpoint, \
             \"http://192.0.2.10:8008\" (this node's Patroni); the others are ignored"
                .to_string()
        ]
    );
}

#[test]
fn settings_of_another_dcs_are_ignored_with_a_warning() {
    let (c, warnings) = config(
        &base_with(&[
            "--dcs-type=consul",
            "--consul-token=abc-123",
            "--etcd-user=u",
        ]),
        &[("VIP_ETCD_PASSWORD", "pw")],
    );
    assert_eq!(c.consul_token, Some(Secret("abc-123".into())));
    assert_eq!(
        warnings,
        vec![
            "--etcd-user is ignored: it is used only with dcs-type etcd, etcd3 or etcd2"
                .to_string(),
            "VIP_ETCD_PASSWORD is ignored: it is used only with dcs-type etcd, etcd3 or etcd2"
                .to_string(),
        ]
    );
    // A password alone is no error where no etcd is read.
    let (_, warnings) = config(
        &base_with(&["--dcs-type=patroni"]),
        &[("VIP_ETCD_PASSWORD", "pw")],
    );
    assert_eq!(
        warnings,
        vec![
            "VIP_ETCD_PASSWORD is ignored: it is used only with dcs-type etcd, etcd3 or etcd2"
                .to_string()
        ]
    );
    for t in ["etcd", "etcd2", "etcd3", "patroni"] {
        let (_, warnings) = config(
            &base_with(&[&format!("--dcs-type={t}"), "--consul-token=abc"]),
            &[],
        );
        assert!(
            warnings.contains(
                &"--consul-token is ignored: it is used only with dcs-type consul".into()
            ),
            "{t}: {warnings:?}"
        );
    }
    // A token with blanks inside is a valid header value (vip-manager's sample has one).
    let (c, _) = config(
        &base_with(&["--dcs-type=consul", "--consul-token=Julian's secret token"]),
        &[],
    );
    assert!(c.consul_token.is_some());
}

#[test]
fn dcs_settings_follow_only_the_client_options() {
    let old = Config::example();
    // Settings the client does not use leave its settings as they are.
    let mut new = Config::example();
    new.trigger_value = "pg2".into();
    new.dcs_grace = Grace::Never;
    new.vip.prefix_len = 32;
    new.verbose = true;
    assert_eq!(old.dcs_settings(), new.dcs_settings());
    // Each option a client is built from reaches its settings.
    new.no_watch = true;
    new.etcd_cert_file = Some("/etc/vipd/cert.pem".into());
    let s = new.dcs_settings();
    assert!(!s.watch);
    assert_eq!(s.tls.cert, Some("/etc/vipd/cert.pem".into()));
    assert_eq!(s.key, old.trigger_key);
}
