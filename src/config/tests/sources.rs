//! The sources: precedence, empty values, the YAML file, secret files.

use super::*;

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
    let env = [("VIP_INTERVAL", "200"), ("VIP_VERBOSE", "no")];
    let (c, _) = config(&with_file, &env);
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
        &words("--interface eth0 --trigger-key /k --netmask 24"),
        &[("VIP_CONFIG", f)],
    );
    assert_eq!(c.vip.addr, "192.0.2.7".parse::<IpAddr>().unwrap());
    // --config beats VIP_CONFIG.
    let other = TempFile::new("flag.yml", b"ip: 192.0.2.8\n");
    let mut flags = words("--interface=eth0 --trigger-key=/k --netmask=24 --config");
    flags.push(other.path());
    let (c, _) = config(&flags, &[("VIP_CONFIG", f)]);
    assert_eq!(c.vip.addr, "192.0.2.8".parse::<IpAddr>().unwrap());
}

#[test]
fn empty_value_means_unset() {
    // Debian's unit passes every flag, empty when its variable is unset.
    let (c, warnings) = config(
        &words(
            "--ip=192.0.2.50 --interface=eth0 --trigger-key=/service/pg/leader --trigger-value= \
             --dcs-type= --dcs-endpoints= --netmask=",
        ),
        &[("VIP_NETMASK", "16")],
    );
    assert_eq!(c.vip.prefix_len, 16, "the empty flag must not hide the env");
    assert_eq!(c.trigger_value, HOST);
    assert_eq!(c.endpoints, ["http://127.0.0.1:2379"]);
    assert!(warnings.is_empty(), "{warnings:?}");

    // An empty environment variable does not hide the file.
    let file = TempFile::new("empty.yml", b"netmask: 20\ntrigger-value:\ninterval: ''\n");
    fn with_file(file: &TempFile) -> Vec<&str> {
        let mut flags = words("--ip=192.0.2.50 --interface=eth0 --trigger-key=/k --config");
        flags.push(file.path());
        flags
    }
    let env = [("VIP_NETMASK", ""), ("VIP_INTERVAL", "  ")];
    let (c, _) = config(&with_file(&file), &env);
    assert_eq!(c.vip.prefix_len, 20);
    assert_eq!(c.trigger_value, HOST);
    assert_eq!(c.interval, Duration::from_millis(1000));

    // An empty file value is unset: the /32 default and its warning apply.
    let file = TempFile::new("empty2.yml", b"netmask: ~\n");
    let (c, warnings) = config(&with_file(&file), &[]);
    assert_eq!(c.vip.prefix_len, 32);
    assert_warns(&warnings, "netmask: not set");
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
        ["http://192.0.2.1:2379", "https://192.0.2.2:2379"]
    );
    let duplicate = format!("{f}:6: ip: duplicate key (also on line 1); the last one wins");
    assert!(warnings.contains(&duplicate), "{warnings:?}");
    assert!(warnings.contains(&format!("{f}:7: foo: unknown key (ignored)")));
    assert_eq!(warnings.len(), 2, "{warnings:?}");
}

#[test]
fn file_errors_name_path_and_line() {
    let base = BASE.join(" ");
    let cases: [(&[u8], &str, &str); 6] = [
        (
            b"# vipd\ninterface: eth0\nip: \"10.0.0.300\"\n",
            "--trigger-key=/k",
            "{f}:3: ip: \"10.0.0.300\" is not an IP address",
        ),
        (
            b"ip: 192.0.2.1\nmask: 40\n",
            "--interface=eth0 --trigger-key=/k",
            "{f}:2: mask: \"40\" is out of range 1..32 for an IPv4 address",
        ),
        (
            b"dcs-endpoints:\n  - http://a:1\n  - 127.0.0.1:2379\n",
            &base,
            "{f}:1: dcs-endpoints: \"127.0.0.1:2379\" has no scheme (expected http:// or https://)",
        ),
        (
            b"interval: [1, 2]\n",
            &base,
            "{f}:1: interval: expects a single value, not a list",
        ),
        (
            b"ip: 192.0.2.1\ninterface:\n  name: eth0\n",
            &base,
            "{f}:3: nested mappings are not supported (only flat 'key: value')",
        ),
        (b"ip: \xff\n", &base, "--config: \"{f}\" is not UTF-8 text"),
    ];
    for (content, flags, want) in cases {
        let file = TempFile::new("bad.yml", content);
        let f = file.path();
        let mut all = words(flags);
        all.extend(["--config", f]);
        assert_eq!(error(&all, &[]), want.replace("{f}", f));
    }

    let missing = std::env::temp_dir().join(format!(
        "vipd-config-test-{}-missing.yml",
        std::process::id()
    ));
    let m = missing.to_str().unwrap();
    let e = error(&base_with(&["--config", m]), &[]);
    assert_starts(&e, &format!("--config: cannot read {m:?}: "));
    let e = error(BASE, &[("VIP_CONFIG", m)]);
    assert_starts(&e, &format!("VIP_CONFIG: cannot read {m:?}: "));

    let dir = std::env::temp_dir();
    let d = dir.to_str().unwrap();
    assert_eq!(
        error(&base_with(&["--config", d]), &[]),
        format!("--config: {d:?} is a directory")
    );
}

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
    let both = format!(
        "--etcd-user=u --etcd-password=flagpw --etcd-password-file {}",
        pw.path()
    );
    let want = "--etcd-password and --etcd-password-file are both set; set only one";
    assert_eq!(error(&base_with(&words(&both)), &[]), want);

    // Errors name the file, never its content.
    let big = vec![b'a'; 70_000];
    for (content, why) in [
        (&b"\n"[..], "is empty"),
        (&[0xfe, 0xff, b'x'][..], "is not UTF-8 text"),
        (&big[..], "is larger than 64 KiB"),
    ] {
        let file = TempFile::new("bad-pw", content);
        let flags = base_with(&["--etcd-user=u", "--etcd-password-file", file.path()]);
        let want = format!("--etcd-password-file: {:?} {why}", file.path());
        assert_eq!(error(&flags, &[]), want);
    }
    let missing = format!("{}-gone", pw.path());
    let e = error(
        &base_with(&["--etcd-user=u", "--etcd-password-file", &missing]),
        &[],
    );
    assert_starts(
        &e,
        &format!("--etcd-password-file: cannot read {missing:?}: "),
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
    let (y, f) = (yaml.path(), pw_file.path());
    let user_env = [("VIP_ETCD_PASSWORD", PW), ("VIP_ETCD_USER", "u")];
    // Arguments after the required flags, and variables.
    let attempts: [(String, Env); 12] = [
        (format!("--etcd-password {PW}"), &[]),
        (format!("--etcd-password={PW}"), &[]),
        (format!("--etcd-passwd={PW}"), &[]),
        (format!("--consul-token {PW}"), &[]),
        (String::new(), &user_env),
        (String::new(), &user_env[..1]),
        (format!("--config {y}"), &[]),
        (format!("--config {y} --etcd-user=u"), &[]),
        (format!("--etcd-password-file {f}"), &[]),
        (format!("--dcs-endpoints=http://u:{PW}@h:1"), &[]),
        (format!("--dcs-endpoints=http://u:{PW}/x@h:1"), &[]),
        (
            format!("--etcd-user=u --etcd-password {PW} --etcd-password-file {f}"),
            &[],
        ),
    ];
    for (extra, env) in attempts {
        let flags = base_with(&words(&extra));
        let out = match run(&flags, env) {
            Ok(loaded) => format!("{:?} {:?}", loaded.command, loaded.warnings),
            Err(e) => e.to_string(),
        };
        assert!(!out.contains(PW), "{flags:?} {env:?} leaked: {out}");
    }
}
