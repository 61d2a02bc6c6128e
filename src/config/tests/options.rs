//! The option table: every option from each source, vip-manager's older names,
//! Debian's files, and the known `VIP_*` variables.

use super::*;

/// A valid value for `key`, chosen to differ from its default where it can; `file`
/// for the keys that name one.
fn valid_value(key: &str, file: &str) -> String {
    let value = match key {
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
        "dcs-check-interval" | "vip-lifetime" => "4000",
        "announce-mode" => "reply",
        "patroni-url" => "http://192.0.2.11:8008",
        // With patroni-url (below), whose default it turns off.
        "primary-check" => "false",
        "manager-type" => "basic",
        "hetzner-user" => "robot9",
        "hetzner-server-ip" => "198.51.100.9",
        "hetzner-local-address" => "true",
        "hetzner-floating-ip-id" => "4711",
        "hetzner-server-id" => "42",
        "hetzner-api-url" => "https://192.0.2.12/robot",
        "hetzner-cloud-api-url" => "https://192.0.2.12/v1",
        "hetzner-recheck" => "90000",
        "metrics-listen" => "127.0.0.1:9617",
        "on-change" => "/bin/true",
        "on-change-timeout" | "conflict-probe-interval" => "2500",
        "verbose" | "keep-on-exit" | "no-watch" | "replica-skip-nofailover" => "true",
        "vip-role" => "replica",
        "replica-max-lag" => "16MB",
        "replica-settle" => "2500",
        "replica-fallback" => "none",
        _ if key.ends_with("-file") => file,
        other => panic!("no test value for {other}"),
    };
    value.to_string()
}

/// The required settings except `key`, and the companions `key` needs, as flags.
fn flags_around(key: &str, pem: &str, creds: &str) -> Vec<String> {
    let mut flags: Vec<String> = BASE
        .chunks(2)
        .filter(|pair| pair[0] != format!("--{key}"))
        .map(|pair| format!("{}={}", pair[0], pair[1]))
        .collect();
    if key == "primary-check" {
        flags.push("--patroni-url=http://192.0.2.11:8008".into());
    }
    if key.starts_with("replica-") {
        flags.push("--vip-role=sync".into());
    }
    if key.starts_with("hetzner-") {
        let cloud = [
            "hetzner-cloud-token-file",
            "hetzner-floating-ip-id",
            "hetzner-server-id",
            "hetzner-cloud-api-url",
        ];
        if cloud.contains(&key) {
            flags.push("--manager-type=hetzner-cloud".into());
            for (k, v) in [
                ("hetzner-cloud-token-file", pem),
                ("hetzner-floating-ip-id", "1"),
                ("hetzner-server-id", "2"),
            ] {
                if k != key {
                    flags.push(format!("--{k}={v}"));
                }
            }
        } else {
            flags.push("--manager-type=hetzner".into());
            match key {
                "hetzner-user" => flags.push(format!("--hetzner-password-file={pem}")),
                "hetzner-password-file" => flags.push("--hetzner-user=u".into()),
                "hetzner-credentials-file" => {}
                _ => flags.push(format!("--hetzner-credentials-file={creds}")),
            }
        }
    }
    if key.starts_with("etcd-password") {
        flags.push("--etcd-user=u".into());
    }
    if key.starts_with("etcd-") && key.ends_with("-file") && key != "etcd-password-file" {
        flags.push("--dcs-endpoints=https://192.0.2.9:2379".into());
        match key {
            "etcd-cert-file" => flags.push(format!("--etcd-key-file={pem}")),
            "etcd-key-file" => flags.push(format!("--etcd-cert-file={pem}")),
            _ => {}
        }
    }
    flags
}

#[test]
fn every_option_can_be_set_from_each_source() {
    // Each key round-trips through its flag, its variable and its YAML key (values
    // chosen valid for every key), so a typo in the table cannot hide.
    let secret_file = TempFile::new("each-secret", b"s9\n");
    let pem = TempFile::new("each-pem", b"x");
    let creds = TempFile::new("each-hetzner", b"user=\"u9\"\npass='p9'\n");
    let (default, _) = config(BASE, &[]);
    for opt in OPTIONS {
        let file = match opt.key {
            "etcd-password-file" | "consul-token-file" => secret_file.path(),
            "hetzner-credentials-file" => creds.path(),
            _ => pem.path(),
        };
        let value = valid_value(opt.key, file);
        let around = flags_around(opt.key, pem.path(), creds.path());
        let mut flags: Vec<&str> = around.iter().map(String::as_str).collect();
        let from_env = config(&flags, &[(env_name(opt.key).as_str(), value.as_str())]).0;

        let file = TempFile::new("each.yml", format!("{}: '{value}'\n", opt.key).as_bytes());
        let mut file_flags = flags.clone();
        file_flags.extend(["--config", file.path()]);
        let mut from_file = config(&file_flags, &[]).0;
        let named = from_file.config_file.take();
        assert_eq!(named.as_deref(), Some(Path::new(file.path())));

        let flag = format!("--{}={value}", opt.key);
        flags.push(&flag);
        let from_flag = config(&flags, &[]).0;

        assert_eq!(from_flag, from_env, "{}", opt.key);
        assert_eq!(from_flag, from_file, "{}", opt.key);
        // Their valid values do what the defaults do.
        let like_default = ["retry-num", "retry-after", "manager-type", "dcs-type"];
        if !like_default.contains(&opt.key) {
            assert_ne!(from_flag, default, "{} had no effect", opt.key);
        }
    }
}

/// The variables of a `/etc/patroni/<version>-<cluster>.vip` file: Debian's template,
/// filled in as `pg_createconfig_patroni` does.
fn debian_vip_file() -> Vec<(String, String)> {
    let fields = [
        ("@VIP_IP@", "192.0.2.50"),
        ("@VIP_MASK@", "24"),
        ("@VIP_IFACE@", "eth0"),
        ("@VIP_KEY@", "/postgresql-common/15-main/leader"),
        ("@VIP_HOST@", "pg2"),
        ("@VIP_TYPE@", "etcd"),
        ("@VIP_ENDPOINT@", "http://192.0.2.1:2379"),
    ];
    let template = include_str!("../../../tests/fixtures/debian-patroni.vip");
    let lines = template.lines().filter(|l| !l.starts_with('#'));
    lines
        .map(|line| {
            let (name, value) = line.split_once('=').expect("NAME=\"value\"");
            let field = value.trim_matches('"');
            let (_, value) = fields.iter().find(|(f, _)| *f == field).expect(field);
            (name.to_string(), value.to_string())
        })
        .collect()
}

fn borrowed(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[test]
fn debian_patroni_vip_file_loads_without_a_warning() {
    let env = debian_vip_file();
    assert_eq!(env.len(), 11, "{env:?}");
    let (c, warnings) = config(&[], &borrowed(&env));
    assert_eq!(c.vip.to_string(), "192.0.2.50/24");
    assert_eq!(c.interface, "eth0");
    assert_eq!(c.trigger_key, "/postgresql-common/15-main/leader");
    assert_eq!(c.trigger_value, "pg2");
    assert_eq!(c.dcs_type, DcsType::Etcd);
    assert_eq!(c.endpoints, ["http://192.0.2.1:2379"]);
    assert_eq!(warnings, Vec::<String>::new());

    // Its old names alone (an older template, or new names removed): no warning either.
    let old_only: Vec<_> = env
        .iter()
        .filter(|(k, _)| k == "VIP_IP" || DEBIAN_ENV.contains(&k.as_str()))
        .cloned()
        .collect();
    assert_eq!(old_only.len(), DEBIAN_ENV.len() + 1, "{old_only:?}");
    let (alone, warnings) = config(&[], &borrowed(&old_only));
    assert_eq!(alone, c);
    assert_eq!(warnings, Vec::<String>::new());
}

#[test]
fn debian_old_and_new_variables_disagreeing_is_one_line() {
    // Each old name of the template set to another value than its new name.
    // `OLD OTHER NEW USED` lines.
    let cases = "
        VIP_MASK 16 VIP_NETMASK 24
        VIP_IFACE eth1 VIP_INTERFACE eth0
        VIP_KEY /old/leader VIP_TRIGGER_KEY /postgresql-common/15-main/leader
        VIP_HOST pg9 VIP_TRIGGER_VALUE pg2
        VIP_TYPE etcd2 VIP_DCS_TYPE etcd
        VIP_ENDPOINT http://192.0.2.9:2379 VIP_DCS_ENDPOINTS http://192.0.2.1:2379";
    for line in cases.lines().skip(1) {
        let [old, other, new, used] = words(line)[..] else {
            panic!("{line}")
        };
        let mut env = debian_vip_file();
        env.retain(|(k, _)| k != old && k != new);
        env.push((old.to_string(), other.to_string()));
        env.push((new.to_string(), used.to_string()));
        let (_, warnings) = config(&[], &borrowed(&env));
        assert_eq!(
            warnings,
            vec![format!(
                "{old} is ignored: {new} is also set and wins (using {used:?})"
            )]
        );
    }
}

#[test]
fn debian_default_file_with_unit_flags() {
    // vip-manager.service: EnvironmentFile=/etc/default/vip-manager (old names only)
    // and ExecStart passing them as the new flags, --netmask empty when unset.
    let env = env_words(
        "VIP_IP=192.0.2.50 VIP_IFACE=eth0 VIP_KEY=/service/b/leader VIP_HOST=pg3 \
         VIP_TYPE=etcd VIP_ENDPOINT=http://192.0.2.1:2379 VIP_HOSTINGTYPE=basic",
    );
    let (c, warnings) = config(
        &words(
            "--ip=192.0.2.50 --interface=eth0 --trigger-key=/service/b/leader \
             --trigger-value=pg3 --dcs-type=etcd --dcs-endpoints=http://192.0.2.1:2379 \
             --netmask=",
        ),
        &env,
    );
    assert_eq!(c.vip.to_string(), "192.0.2.50/32");
    assert_eq!(c.trigger_value, "pg3");
    let want = "VIP_HOSTINGTYPE is deprecated; use VIP_MANAGER_TYPE";
    assert_warns(&warnings, want);
    assert_warns(&warnings, "netmask: not set");
}

#[test]
fn old_single_dash_flags_of_vip_manager_0x() {
    // vip-manager 0.x used Go's flag package: -ip=... -iface ... -key -host -endpoint.
    let (c, warnings) = config(
        &words(
            "-ip=192.0.2.50 -mask 24 -iface eth0 -key=/service/b/leader -host pg1 -type=etcd \
             -endpoint http://192.0.2.1:2379,http://192.0.2.2:2379/ -etcd_user=patroni \
             -etcd_password s3cret -hostingtype=basic -interval=500",
        ),
        &[],
    );
    assert_eq!(c.vip.to_string(), "192.0.2.50/24");
    assert_eq!(c.interface, "eth0");
    assert_eq!(c.trigger_key, "/service/b/leader");
    assert_eq!(c.trigger_value, "pg1");
    assert_eq!(
        c.endpoints,
        ["http://192.0.2.1:2379", "http://192.0.2.2:2379"]
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
        assert_warns(&warnings, "--mask is deprecated; use --netmask");
        let want = "--mask is ignored: --netmask is also set and wins";
        assert_warns(&warnings, want);
    }
    // Environment.
    let (c, warnings) = config(
        &["--ip=192.0.2.50", "--trigger-key=/k", "--netmask=24"],
        &[("VIP_IFACE", "eth1"), ("VIP_INTERFACE", "eth0")],
    );
    assert_eq!(c.interface, "eth0");
    let want = "VIP_IFACE is ignored: VIP_INTERFACE is also set and wins";
    assert_warns(&warnings, want);
    // File, both orders.
    for text in [
        "iface: eth1\ninterface: eth0\n",
        "interface: eth0\niface: eth1\n",
    ] {
        let file = TempFile::new("oldnew.yml", text.as_bytes());
        let mut flags = words("--ip=192.0.2.50 --trigger-key=/k --netmask=24 --config");
        flags.push(file.path());
        let (c, warnings) = config(&flags, &[]);
        assert_eq!(c.interface, "eth0", "{text:?}");
        assert_warns(&warnings, "iface is deprecated; use interface");
        assert_warns(&warnings, "is ignored");
    }
    // An old name in a higher source still beats a new name in a lower one.
    let (c, _) = config(
        &words("--ip=192.0.2.50 --trigger-key=/k --netmask=24 --iface=eth2"),
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
    let want = format!("{f}:15: retry_num is ignored: vipd retries the DCS every interval");
    assert!(warnings.contains(&want), "{want}: {warnings:?}");
    let want = "consul_token is ignored: it is used only with dcs-type consul";
    assert_warns(&warnings, want);
    let leaks = warnings.iter().any(|w| w.contains("secret"));
    assert!(!leaks, "{warnings:?}");
}

#[test]
fn unknown_environment_variables() {
    let names = words(
        "PATH VIP_IP VIP_IFACE VIP_HOSTING_TYPE VIP_CONFIG VIP_DCS_GRACE VIP_ADDRES VIP_FOO VIPX",
    );
    assert_eq!(
        unknown_env_warnings(names),
        [
            "VIP_ADDRES: unknown environment variable (ignored)",
            "VIP_FOO: unknown environment variable (ignored)",
        ]
    );
    // Every variable that load() reads is known.
    let read = std::cell::RefCell::new(Vec::new());
    let _ = load(
        argv(&[]),
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
