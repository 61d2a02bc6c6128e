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
        let once = Command::Once {
            config: config.clone(),
            dry_run,
            json,
        };
        assert_eq!(command(extra), once, "{extra:?}");
    }
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
