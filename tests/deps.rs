//! The one list of packages (.ci/deps): `make test`, `make demo`, `make bench` and .ci/run
//! all install through it, and it installs exactly what is missing. The package tools are
//! replaced by fakes in PATH, so the machine's packages are neither read nor changed.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn every_entry_point_installs_through_the_one_list() {
    let makefile = read("Makefile");
    let rule = |name: &str| -> String {
        let start = makefile
            .find(&format!("\n{name}:"))
            .unwrap_or_else(|| panic!("no {name} rule"));
        makefile[start + 1..]
            .split("\n\n")
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        rule("deps").contains("bash .ci/deps test"),
        "{}",
        rule("deps")
    );
    assert!(
        makefile.contains("\ntest: deps "),
        "make test starts with deps"
    );
    assert!(rule("demo").contains(".ci/deps demo"), "{}", rule("demo"));
    assert!(
        rule("bench").contains(".ci/deps bench"),
        "{}",
        rule("bench")
    );
    assert!(read(".ci/run").contains("bash .ci/deps test"));
    assert!(read("demo/demo.sh").contains(".ci/deps\" demo"));
    // Nothing else keeps a list of its own.
    for rel in [".ci/run", "Makefile", "demo/demo.sh", "bench/failover.sh"] {
        for line in read(rel).lines() {
            assert!(
                !(line.contains("apt-get install") && line.contains("-y")),
                "{rel} installs by itself: {line}"
            );
        }
    }
}

/// A folder of fake tools: `dpkg-query` answers "installed" for all but `missing`, `id -u`
/// prints `uid`, `apt-get` records its arguments.
fn fakes(dir: &Path, missing: &[&str], uid: u32) -> PathBuf {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let script = |name: &str, body: String| {
        let path = bin.join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    };
    let cases: String = missing.iter().map(|p| format!("{p}) exit 1 ;; ")).collect();
    script(
        "dpkg-query",
        format!("for p; do :; done; case $p in {cases}*) printf 'install ok installed' ;; esac"),
    );
    script("id", format!("echo {uid}"));
    let log = dir.join("apt.log");
    script("apt-get", format!("echo \"$*\" >> '{}'", log.display()));
    script("pgrep", "exit 1".into());
    bin
}

fn deps(dir: &Path, bin: &Path, args: &[&str], allow_skip: bool) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join(".ci/deps"))
        .args(args)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env_remove("VIPD_ALLOW_SKIP")
        .current_dir(dir);
    if allow_skip {
        cmd.env("VIPD_ALLOW_SKIP", "1");
    }
    cmd.output().expect("bash runs")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vipd-deps-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn installs_exactly_what_is_missing_and_says_so_without_root() {
    let dir = scratch("missing");
    // Nothing missing: silent, and apt-get is not run.
    let bin = fakes(&dir, &[], 0);
    let out = deps(&dir, &bin, &["test"], false);
    assert!(out.status.success(), "{out:?}");
    assert!(!dir.join("apt.log").exists());

    // runit missing (a machine where it was removed): --check names it.
    let bin = fakes(&dir, &["runit", "mandoc"], 0);
    let out = deps(&dir, &bin, &["--check", "test"], false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("missing: mandoc runit"), "{stdout}");
    // The demo does not need either.
    let out = deps(&dir, &bin, &["--check", "demo"], false);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("runit"));

    // As root: apt-get installs exactly those two.
    let out = deps(&dir, &bin, &["test"], false);
    assert!(out.status.success(), "{out:?}");
    let log = fs::read_to_string(dir.join("apt.log")).unwrap();
    assert!(log.lines().any(|l| l.starts_with("update")), "{log}");
    let install = log.lines().find(|l| l.starts_with("install")).unwrap();
    assert!(install.ends_with(" mandoc runit"), "{install}");

    // Not root: one line naming them, exit 1; VIPD_ALLOW_SKIP=1 goes on.
    let bin = fakes(&dir, &["runit"], 1000);
    let out = deps(&dir, &bin, &["test"], false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("runit") && stderr.contains("root"),
        "{stderr}"
    );
    let out = deps(&dir, &bin, &["test"], true);
    assert!(out.status.success(), "{out:?}");

    let out = deps(&dir, &bin, &["nonsense"], false);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let _ = fs::remove_dir_all(&dir);
}
