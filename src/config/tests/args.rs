//! The command line: flag forms, booleans, commands and argv errors.

use super::*;

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
        let mut a = argv(BASE);
        a.push(OsString::from_vec(vec![b'-', b'-', 0xff]));
        assert_eq!(
            load(a, &|_| None, HOST),
            Err(ConfigError("argument 9 is not valid UTF-8".into()))
        );
    }
}
