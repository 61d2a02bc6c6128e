//! The command line: flag forms, booleans, commands and argv errors.

use super::*;

#[test]
fn booleans() {
    for (values, want) in [("true yes 1 on TRUE", true), ("false no 0 off", false)] {
        for value in values.split(' ') {
            let (c, _) = config(BASE, &[("VIP_VERBOSE", value)]);
            assert_eq!(c.verbose, want, "VIP_VERBOSE={value}");
            let flag = format!("--verbose={value}");
            let (c, _) = config(&base_with(&[&flag]), &[]);
            assert_eq!(c.verbose, want, "{flag}");
        }
    }
    for flag in ["--verbose", "-v", "-verbose"] {
        assert!(config(&base_with(&[flag]), &[]).0.verbose, "{flag}");
    }
    // A bare flag beats the environment.
    let (c, _) = config(&base_with(&["-v"]), &[("VIP_VERBOSE", "false")]);
    assert!(c.verbose);
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
fn commands() {
    for (flags, want) in [
        (["--help", "-h", "-help"], Command::Help),
        (["--version", "-V", "-version"], Command::Version),
    ] {
        for flag in flags {
            assert_eq!(run(&[flag], &[]).unwrap().command, want, "{flag}");
        }
    }
    // --help wins over anything wrong, and needs no configuration.
    let help = run(&["--bogus", "--ip=300.1.1.1", "--help"], &[]).unwrap();
    assert_eq!(help.command, Command::Help);
    let command = |extra| run(&base_with(extra), &[]).unwrap().command;
    let (config, _) = config(BASE, &[]);
    for (extra, dry_run, json) in [
        (&["--once"][..], false, false),
        (&["--dry-run", "--once", "--json"][..], true, true),
    ] {
        // --once adds a permanent address unless vip-lifetime is set.
        let once = Command::Once {
            config: Config {
                vip_lifetime: None,
                ..config.clone()
            },
            dry_run,
            json,
        };
        assert_eq!(command(extra), once, "{extra:?}");
    }
}

#[test]
fn once_is_permanent_unless_vip_lifetime_is_set() {
    let lifetime =
        |extra: &[&str], env: &[(&str, &str)]| match run(&base_with(extra), env).unwrap().command {
            Command::Once { config, .. } | Command::Run(config) => config.vip_lifetime,
            other => panic!("{other:?}"),
        };
    let secs = |s| Some(Duration::from_secs(s));
    // The daemon: the default, 10 s.
    assert_eq!(lifetime(&[], &[]), secs(10));
    assert_eq!(lifetime(&["--once"], &[]), None);
    assert_eq!(lifetime(&["--once", "--dry-run"], &[]), None);
    // Explicitly set: --once uses it too, from any source.
    assert_eq!(lifetime(&["--once", "--vip-lifetime=4000"], &[]), secs(4));
    let env = [("VIP_VIP_LIFETIME", "5000")];
    assert_eq!(lifetime(&["--once"], &env), secs(5));
    // An empty value is unset, as everywhere.
    assert_eq!(lifetime(&["--once"], &[("VIP_VIP_LIFETIME", "")]), None);
    assert_eq!(lifetime(&["--once", "--vip-lifetime=forever"], &[]), None);
    let file = TempFile::new("once-lifetime", b"vip-lifetime: 6000\n");
    let path = format!("--config={}", file.path());
    assert_eq!(lifetime(&["--once", &path], &[]), secs(6));
    assert_eq!(lifetime(&[&path], &[]), secs(6));
    // The default follows a long interval: 3 × interval; FOREVER in any case.
    assert_eq!(lifetime(&["--interval=5000"], &[]), secs(15));
    assert_eq!(lifetime(&["--vip-lifetime=FOREVER"], &[]), None);
    assert_eq!(
        lifetime(&["--interval=200", "--vip-lifetime=600"], &[]),
        Some(Duration::from_millis(600))
    );
}

/// `ARGUMENTS => ERROR` lines, the arguments after the required flags. The value of a
/// mistyped flag is never echoed: it may be a password.
const ARGV_ERRORS: &str = r#"
--bogus => --bogus: unknown option (see --help)
--etcd-pasword=hunter2 => --etcd-pasword: unknown option (see --help)
--ip => --ip: missing value
extra => unexpected argument "extra" (vipd takes only options; see --help)
- => unexpected argument "-" (vipd takes only options; see --help)
-- x => unexpected argument "x" (vipd takes only options)
--keep-on-exit=maybe => --keep-on-exit: "maybe" is not a boolean (expected true or false)
--json => --json: only valid with --once
--dry-run => --dry-run: only valid with --once
--once=yes => --once: takes no value
"#;

#[test]
fn argv_errors() {
    for (extra, want) in table(ARGV_ERRORS) {
        assert_eq!(error(&base_with(&words(extra)), &[]), want, "{extra}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        let mut a = argv(BASE);
        a.push(OsString::from_vec(vec![b'-', b'-', 0xff]));
        assert_eq!(
            load(a, &|_| None, HOST),
            Err(ConfigError("argument 9 is not valid UTF-8".into()))
        );
    }
}
