//! Building the configuration: defaults, value errors, DCS types and the checks
//! between settings.

use super::*;

#[test]
fn defaults() {
    // Config::example() spells out every default; only its trigger-key is its own.
    let (c, warnings) = config(BASE, &[]);
    let want = Config {
        trigger_key: "/service/pg/leader".into(),
        ..Config::example()
    };
    assert_eq!(c, want);
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn missing_netmask_is_a_host_address_with_a_warning() {
    let without_netmask = |ip| {
        let flags = format!("--ip {ip} --interface eth0 --trigger-key /k");
        config(&words(&flags), &[])
    };
    let (c, warnings) = without_netmask("192.0.2.50");
    assert_eq!(c.vip.prefix_len, 32);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("netmask: not set; adding 192.0.2.50/32"));

    let (c, warnings) = without_netmask("2001:db8::50");
    assert_eq!(c.vip.prefix_len, 128);
    assert_warns(&warnings, "2001:db8::50/128");
}

#[test]
fn new_options_parse() {
    let (c, _) = config(
        &base_with(&words(
            "--dcs-grace=never --keep-on-exit --announce-count=0 --announce-interval 250 \
             --announce-mode=both --no-watch --interval=10",
        )),
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

    // dcs-check-interval: 3 s, or interval when that is longer; set, at least interval.
    let check = |flags: &str| config(&base_with(&words(flags)), &[]).0.dcs_check_interval;
    assert_eq!(check(""), Duration::from_millis(3000));
    assert_eq!(check("--interval=5000"), Duration::from_millis(5000));
    assert_eq!(
        check("--dcs-check-interval=1000"),
        Duration::from_millis(1000)
    );
}

/// `FLAGS => ERROR` lines.
const REQUIRED: &str = "
--interface=eth0 --trigger-key=/k => ip: not set (required)
--ip=192.0.2.1 --trigger-key=/k => interface: not set (required)
--ip=192.0.2.1 --interface=eth0 => trigger-key: not set (required)
";

#[test]
fn required_settings() {
    for (flags, want) in table(REQUIRED) {
        assert_eq!(error(&words(flags), &[]), want, "{flags}");
    }
    assert_eq!(
        load(argv(BASE), &|_| None, " "),
        Err(ConfigError(
            "trigger-value: not set, and the hostname is empty".into()
        ))
    );
}

/// `ARGUMENTS => ERROR` lines: the arguments are flags and `VIP_NAME=value` variables.
const VALUE_ERRORS: &str = r#"
--ip=10.0.0.300 => --ip: "10.0.0.300" is not an IP address
VIP_IP=db1 => VIP_IP: "db1" is not an IP address
--ip=192.0.2.50/24 => --ip: "192.0.2.50/24" is not an IP address (give the prefix length in netmask)
--ip=0.0.0.0 => --ip: "0.0.0.0" is not a unicast address
--ip=224.0.0.1 => --ip: "224.0.0.1" is not a unicast address
--ip=ff02::1 => --ip: "ff02::1" is not a unicast address
--netmask=33 => --netmask: "33" is out of range 1..32 for an IPv4 address
--netmask=0 => --netmask: "0" is out of range 1..32 for an IPv4 address
--netmask=-1 => --netmask: "-1" is not a prefix length 1..32
--ip=2001:db8::5 --netmask=129 => --netmask: "129" is out of range 1..128 for an IPv6 address
--netmask=255.255.255.0 => --netmask: "255.255.255.0" is not a prefix length 1..32 (write 24 for this mask)
VIP_MASK=255.0.255.0 => VIP_MASK: "255.0.255.0" is not a prefix length 1..32
--interface=eth0:1 => --interface: "eth0:1" is not a valid interface name (at most 15 bytes; no '/', ':' or blanks)
--interface=averyveryverylongname => --interface: "averyveryverylongname" is not a valid interface name (at most 15 bytes; no '/', ':' or blanks)
--dcs-endpoints=127.0.0.1:2379 => --dcs-endpoints: "127.0.0.1:2379" has no scheme (expected http:// or https://)
VIP_ENDPOINT=http://a:1,ftp://b => VIP_ENDPOINT: "ftp://b" has an unsupported scheme (expected http:// or https://)
--dcs-endpoints=http:// => --dcs-endpoints: "http://" has no host
--dcs-endpoints=http://a:99999 => --dcs-endpoints: "http://a:99999" has an invalid port
--dcs-endpoints=http://a:x => --dcs-endpoints: "http://a:x" has an invalid port
--dcs-endpoints=, => --dcs-endpoints: no endpoint given
--dcs-type=zookeeper => --dcs-type: "zookeeper" is not a known dcs-type (expected etcd, etcd3, etcd2, consul or patroni)
--interval=0 => --interval: "0" is out of range 10..3600000
--interval=9 => --interval: "9" is out of range 10..3600000
--interval=99999999999999999999999 => --interval: "99999999999999999999999" is out of range 10..3600000
--interval=1s => --interval: "1s" is not a whole number
--dcs-grace=soon => --dcs-grace: "soon" is not a whole number of milliseconds or "never"
--dcs-grace=86400001 => --dcs-grace: "86400001" is out of range 0..86400000
--announce-count=101 => --announce-count: "101" is out of range 0..100
--dcs-check-interval=999 => --dcs-check-interval: "999" is out of range 1000..3600000
--interval=5000 VIP_DCS_CHECK_INTERVAL=4999 => VIP_DCS_CHECK_INTERVAL: "4999" is out of range 5000..3600000
--announce-interval=-5 => --announce-interval: "-5" is not a whole number
--announce-mode=gratuitous => --announce-mode: "gratuitous" is not an announce-mode (expected request, reply or both)
VIP_NO_WATCH=perhaps => VIP_NO_WATCH: "perhaps" is not a boolean (expected true or false)
--etcd-password=pw => --etcd-password: set, but etcd-user is not
--patroni-url=192.0.2.11:8008 => --patroni-url: "192.0.2.11:8008" has no scheme (expected http:// or https://)
VIP_PATRONI_URL=ftp://192.0.2.11 => VIP_PATRONI_URL: "ftp://192.0.2.11" has an unsupported scheme (expected http:// or https://)
--patroni-url=http://192.0.2.11:x => --patroni-url: "http://192.0.2.11:x" has an invalid port
--primary-check => --primary-check: needs patroni-url (the node's Patroni REST API to ask)
--vip-lifetime=2999 => --vip-lifetime: "2999" is below 3 × interval (3000 ms): the VIP could expire between two refreshes
--interval=5000 VIP_VIP_LIFETIME=10000 => VIP_VIP_LIFETIME: "10000" is below 3 × interval (15000 ms): the VIP could expire between two refreshes
VIP_VIP_LIFETIME=10s => VIP_VIP_LIFETIME: "10s" is not a whole number of milliseconds or "forever"
--vip-lifetime=-1 => --vip-lifetime: "-1" is not a whole number of milliseconds or "forever"
--vip-lifetime=86400001 => --vip-lifetime: "86400001" is out of range 3000..86400000 (or "forever")
--vip-lifetime=99999999999999999999999 => --vip-lifetime: "99999999999999999999999" is out of range 3000..86400000 (or "forever")
"#;

#[test]
fn value_errors_name_source_key_and_value() {
    let header = "the token contains characters an HTTP header cannot carry \
                  (control or non-ASCII characters, or blanks at either end)";
    // Values with blanks, which the table's lines cannot hold.
    let blanks: &[(&[&str], Env, String)] = &[
        (
            &["--dcs-endpoints=http://a b:1"],
            &[],
            "--dcs-endpoints: \"http://a b:1\" contains blanks".into(),
        ),
        (
            &["--dcs-type=consul", "--consul-token=a\tb"],
            &[],
            format!("--consul-token: {header}"),
        ),
        (
            &[],
            &[("VIP_TYPE", "consul"), ("VIP_CONSUL_TOKEN", " t")],
            format!("VIP_CONSUL_TOKEN: {header}"),
        ),
    ];
    for (flags, env, want) in blanks {
        assert_eq!(
            &error(&with_required(flags, env), env),
            want,
            "{flags:?} {env:?}"
        );
    }
    for (arguments, want) in table(VALUE_ERRORS) {
        let (vars, flags): (Vec<&str>, Vec<&str>) =
            arguments.split(' ').partition(|a| a.starts_with("VIP_"));
        let env: Vec<EnvVar> = vars.iter().filter_map(|v| v.split_once('=')).collect();
        assert_eq!(
            error(&with_required(&flags, &env), &env),
            want,
            "{arguments}"
        );
    }
}

/// `flags` after the required flags, minus those the variables set (flags beat env).
fn with_required<'a>(flags: &[&'a str], env: Env) -> Vec<&'a str> {
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
    all
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
        ["http://a:1", "https://b:2", "http://[2001:db8::1]:2379/v3"]
    );
}

#[test]
fn manager_type_and_hosting_type() {
    for flag in ["--manager-type=basic", "--hosting-type=basic"] {
        assert!(config(&base_with(&[flag]), &[]).1.is_empty(), "{flag}");
    }
    assert!(config(BASE, &[("VIP_HOSTING_TYPE", "basic")]).1.is_empty());
    assert_eq!(
        error(BASE, &[("VIP_HOSTINGTYPE", "hetzner_floating_ip")]),
        "VIP_HOSTINGTYPE: \"hetzner_floating_ip\" is not a manager type (basic, hetzner \
         or hetzner-cloud)"
    );
}

#[test]
fn retry_settings_are_ignored_with_a_note() {
    let (_, warnings) = config(
        &base_with(&["--retry-num=3"]),
        &[("VIP_RETRY_AFTER", "250")],
    );
    for origin in ["--retry-num", "VIP_RETRY_AFTER"] {
        let want = format!("{origin} is ignored: vipd retries the DCS every interval");
        assert!(warnings.contains(&want), "{want}: {warnings:?}");
    }
}

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
    assert_eq!(c.endpoints, ["http://192.0.2.7:8500"]);
}

#[test]
fn patroni_defaults_key_and_value_as_vip_manager() {
    let flags = words("--ip=192.0.2.50 --netmask=24 --interface=eth0 --dcs-type=patroni");
    let (c, warnings) = config(&flags, &[]);
    assert_eq!(c.trigger_key, "/leader");
    assert_eq!(c.trigger_value, "200");
    assert!(warnings.is_empty(), "{warnings:?}");
    // Set, they win.
    let mut more = flags.clone();
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
    let want = "--dcs-endpoints: dcs-type patroni uses only the first endpoint, \
                \"http://192.0.2.10:8008\" (this node's Patroni); the others are ignored";
    assert_eq!(warnings, [want]);
}

#[test]
fn settings_of_another_dcs_are_ignored_with_a_warning() {
    let flags = words("--dcs-type=consul --consul-token=abc-123 --etcd-user=u");
    let (c, warnings) = config(&base_with(&flags), &[("VIP_ETCD_PASSWORD", "pw")]);
    assert_eq!(c.consul_token, Some(Secret("abc-123".into())));
    let etcd_only = "is ignored: it is used only with dcs-type etcd, etcd3 or etcd2";
    let want = [
        format!("--etcd-user {etcd_only}"),
        format!("VIP_ETCD_PASSWORD {etcd_only}"),
    ];
    assert_eq!(warnings, want);
    // A password alone is no error where no etcd is read.
    let (_, warnings) = config(
        &base_with(&["--dcs-type=patroni"]),
        &[("VIP_ETCD_PASSWORD", "pw")],
    );
    assert_eq!(warnings, want[1..]);
    for t in ["etcd", "etcd2", "etcd3", "patroni"] {
        let flags = format!("--dcs-type={t} --consul-token=abc");
        let (_, warnings) = config(&base_with(&words(&flags)), &[]);
        let want = "--consul-token is ignored: it is used only with dcs-type consul";
        assert!(warnings.contains(&want.into()), "{t}: {warnings:?}");
    }
    // A token with blanks inside is a valid header value (vip-manager's sample has one).
    let (c, _) = config(
        &base_with(&["--dcs-type=consul", "--consul-token=Julian's secret token"]),
        &[],
    );
    assert!(c.consul_token.is_some());
}

#[test]
fn etcd_user_without_password_warns() {
    let (c, warnings) = config(BASE, &[("VIP_ETCD_USER", "patroni")]);
    assert_eq!(c.etcd_user.as_deref(), Some("patroni"));
    let want = "VIP_ETCD_USER: set without etcd-password; authenticating with an empty password";
    assert!(warnings.contains(&want.into()), "{warnings:?}");
}

#[test]
fn certificate_files_must_be_readable() {
    let ca = TempFile::new("ca.pem", b"-----BEGIN CERTIFICATE-----\n");
    let cert = TempFile::new("cert.pem", b"x");
    let key = TempFile::new("key.pem", b"x");
    let all = format!(
        "--dcs-endpoints=https://192.0.2.1:2379 --etcd-ca-file {} --etcd-cert-file {} \
         --etcd-key-file {}",
        ca.path(),
        cert.path(),
        key.path()
    );
    let (c, warnings) = config(&base_with(&words(&all)), &[]);
    assert_eq!(c.etcd_ca_file.as_deref(), Some(Path::new(ca.path())));
    assert_eq!(c.etcd_cert_file.as_deref(), Some(Path::new(cert.path())));
    assert_eq!(c.etcd_key_file.as_deref(), Some(Path::new(key.path())));
    assert!(warnings.is_empty(), "{warnings:?}");

    // With http:// endpoints only, they do nothing: say so.
    let (_, warnings) = config(&base_with(&["--etcd-ca-file", ca.path()]), &[]);
    assert!(warnings.contains(&"--etcd-ca-file is ignored: no dcs-endpoint uses https://".into()));

    let missing = format!("{}-gone", ca.path());
    let e = error(&base_with(&["--etcd-ca-file", &missing]), &[]);
    assert_starts(&e, &format!("--etcd-ca-file: cannot read {missing:?}: "));
    let e = error(BASE, &[("VIP_ETCD_KEY_FILE", &missing)]);
    assert_starts(&e, &format!("VIP_ETCD_KEY_FILE: cannot read {missing:?}: "));

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
    let want = "etcd_cert_file is deprecated; use etcd-cert-file";
    assert_warns(&warnings, want);
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

#[test]
fn operability_options() {
    let (c, _) = config(BASE, &[]);
    assert_eq!(c.metrics_listen, None);
    assert_eq!(c.on_change, None);
    assert_eq!(c.on_change_timeout, Duration::from_millis(10_000));
    assert_eq!(
        c.conflict_probe_interval,
        Some(Duration::from_millis(10_000))
    );

    let (c, _) = config(
        &base_with(&[
            "--metrics-listen=[::1]:9617",
            "--conflict-probe-interval=0",
            "--on-change-timeout=500",
        ]),
        &[("VIP_ON_CHANGE", "/bin/echo  vip changed")],
    );
    assert_eq!(c.metrics_listen, Some("[::1]:9617".parse().unwrap()));
    assert_eq!(c.conflict_probe_interval, None);
    assert_eq!(c.on_change_timeout, Duration::from_millis(500));
    // A flag or variable is split at blanks (no shell, no quoting).
    assert_eq!(
        c.on_change,
        Some(vec!["/bin/echo".into(), "vip".into(), "changed".into()])
    );

    // In YAML, a list is the program and its arguments, blanks kept.
    let yml = TempFile::new("hook.yml", b"on-change:\n  - /bin/echo\n  - two words\n");
    let (c, _) = config(&base_with(&["--config", yml.path()]), &[]);
    assert_eq!(
        c.on_change,
        Some(vec!["/bin/echo".into(), "two words".into()])
    );
}

#[test]
fn operability_errors_name_the_value() {
    let plain = TempFile::new("not-executable", b"#!/bin/sh\n");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--metrics-listen=127.0.0.1"],
            "--metrics-listen: \"127.0.0.1\" has no port (expected ADDR:PORT, e.g. 127.0.0.1:9617)",
        ),
        (
            &["--metrics-listen=localhost:9617"],
            "\"localhost:9617\" is not ADDR:PORT",
        ),
        (
            &["--metrics-listen=127.0.0.1:0"],
            "\"127.0.0.1:0\" is not ADDR:PORT",
        ),
        (
            &["--on-change=/nonexistent/hook"],
            "--on-change: \"/nonexistent/hook\": No such file",
        ),
        (
            &["--on-change=hook.sh"],
            "\"hook.sh\" is not an absolute path",
        ),
        (&["--on-change", plain.path()], "is not an executable file"),
        (&["--on-change-timeout=0"], "on-change-timeout"),
    ];
    for (flags, want) in cases {
        let e = error(&base_with(flags), &[]);
        assert!(e.contains(want), "{flags:?}: {e}");
        assert!(!e.contains('\n'), "{e}");
    }
}

#[test]
fn replica_roles_and_their_rules() {
    use crate::dcs::scope::{Fallback, Role, Rules};
    let (c, warnings) = config(&base_with(&["--vip-role=replica"]), &[]);
    let want = Rules {
        role: Role::Replica,
        vip: "192.0.2.50".into(),
        max_lag: None,
        settle: Duration::from_millis(30_000),
        fallback: Fallback::Primary,
        skip_nofailover: false,
    };
    assert_eq!(c.replica, Some(want));
    assert!(warnings.is_empty(), "{warnings:?}");
    let s = c.dcs_settings();
    assert_eq!((s.scope.is_some(), s.member.as_str()), (true, HOST));
    let flags = words(
        "--vip-role=SYNC --replica-max-lag=16MB --replica-settle=0 --replica-fallback=none \
         --replica-skip-nofailover",
    );
    let (c, _) = config(&base_with(&flags), &[]);
    let r = c.replica.unwrap();
    assert_eq!(
        (r.role, r.max_lag, r.settle),
        (Role::Sync, Some(16 << 20), Duration::ZERO)
    );
    assert_eq!((r.fallback, r.skip_nofailover), (Fallback::None, true));
    // The primary VIP, explicitly: as without the option.
    let (c, _) = config(&base_with(&["--vip-role=primary"]), &[]);
    assert_eq!((c.role(), c.replica.is_none()), (Role::Primary, true));
    assert_eq!(
        c.dcs_settings().member,
        "",
        "no new client for a renamed primary node"
    );
    // A replica VIP never waits for a primary: primary-check is ignored, with a warning.
    let flags = [
        "--vip-role=replica",
        "--patroni-url=http://192.0.2.11:8008",
        "--primary-check",
    ];
    let (c, warnings) = config(&base_with(&flags), &[]);
    assert!(!c.primary_check);
    assert_eq!(c.patroni_url.as_deref(), Some("http://192.0.2.11:8008"));
    assert_warns(
        &warnings,
        "--primary-check is ignored: a replica VIP never waits",
    );
    // With dcs-type patroni it reads /cluster, and this node's name is the hostname.
    let flags = words(
        "--ip=192.0.2.50 --netmask=24 --interface=eth0 --dcs-type=patroni --vip-role=replica",
    );
    let (c, warnings) = config(&flags, &[]);
    assert_eq!(
        (c.trigger_key.as_str(), c.trigger_value.as_str()),
        ("/cluster", HOST)
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    let mut more = flags.clone();
    more.push("--trigger-key=/leader");
    let (c, warnings) = config(&more, &[]);
    assert_eq!(c.trigger_key, "/cluster");
    assert_warns(
        &warnings,
        "--trigger-key is ignored: a replica VIP with dcs-type patroni",
    );
    more.push("--trigger-key=/api/cluster");
    assert_eq!(config(&more, &[]).0.trigger_key, "/api/cluster");
}

#[test]
fn replica_errors_name_the_value() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--vip-role=standby"],
            "--vip-role: \"standby\" is not a role (primary, replica or sync)",
        ),
        (
            &["--replica-max-lag=16MB"],
            "--replica-max-lag: needs vip-role replica or sync",
        ),
        (
            &["--vip-role=replica", "--replica-max-lag=16XB"],
            "--replica-max-lag: \"16XB\" is not a size",
        ),
        (
            &["--vip-role=replica", "--replica-fallback=leader"],
            "--replica-fallback: \"leader\" is not primary or none",
        ),
        (
            &["--vip-role=replica", "--replica-settle=soon"],
            "--replica-settle",
        ),
        (
            &["--vip-role=replica", "--replica-skip-nofailover=maybe"],
            "--replica-skip-nofailover",
        ),
    ];
    for (flags, want) in cases {
        let e = error(&base_with(flags), &[]);
        assert!(e.contains(want), "{flags:?}: {e}");
        assert!(!e.contains('\n'), "{e}");
    }
    let e = error(
        &words("--ip=192.0.2.50 --interface=eth0 --trigger-key=leader --vip-role=replica"),
        &[],
    );
    assert!(e.contains("--trigger-key: \"leader\" has no scope"), "{e}");
}
