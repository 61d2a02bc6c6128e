//! Packaging: the manual pages against `vipd --help` (neither may drift), the man-page lint,
//! shellcheck on every script under `packaging/`, the systemd units' settings, the size
//! check script, `make install`, the Debian package `make deb` built (unpacked and checked,
//! its binary run), and, as root with a real etcd in network namespaces, the sysvinit script
//! (start, status, restart with the gap it leaves measured, stop) and the runit service
//! under `runsv` and `svlogd`.
//!
//! Tools: mandoc, shellcheck, dpkg-deb, md5sum, gzip, make, systemd-analyze (no root); for the
//! root tests also start-stop-daemon and Debian's /lib/lsb/init-functions (sysvinit) and
//! runit's runsv, sv and svlogd. A missing tool fails the test, unless VIPD_ALLOW_SKIP=1.

use crate::common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::env;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The source tree.
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Runs a command to completion (bounded), with `dir` as working directory.
fn run_in<S: AsRef<str>>(dir: &Path, program: &Path, args: &[S]) -> Outcome {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let mut cmd = Command::new(program);
    cmd.args(&args).current_dir(dir);
    let what = format!("{} {}", program.display(), args.join(" "));
    Proc::spawn(&what, cmd, true).finish(Duration::from_secs(120))
}

/// `vipd ARGS` (the binary under test) to completion.
fn vipd_output(args: &[&str]) -> Outcome {
    run_in(&repo(), &vipd_bin(), args)
}

/// Panics unless the command succeeded and said nothing.
#[track_caller]
fn expect_quiet(out: &Outcome, what: &str) {
    assert!(
        out.status.success() && out.stdout.trim().is_empty() && out.stderr.trim().is_empty(),
        "{what} ({}):\n{}{}",
        out.status,
        out.stdout,
        out.stderr
    );
}

#[track_caller]
fn expect_contains(text: &str, needle: &str) {
    assert!(text.contains(needle), "want {needle:?} in:\n{text}");
}

/// Lines `KEY VALUE…` (the key without spaces) as a map.
fn table(text: &str) -> BTreeMap<String, String> {
    let pairs = text.lines().filter_map(|l| l.trim().split_once(' '));
    pairs.map(|(k, v)| (k.into(), v.trim().into())).collect()
}

/// Whether two files have the same content (or are both unreadable).
fn same_file(a: &Path, b: &Path) -> bool {
    fs::read(a).ok() == fs::read(b).ok()
}

// ---------------------------------------------------------------------------------------------
// `vipd --help`, parsed.

/// One option of `vipd --help`.
#[derive(Debug)]
struct HelpOption {
    /// The flags of its heading (`--ip`; `-h`, `--help`).
    flags: Vec<String>,
    /// `VIP_IP`, if the option has a variable.
    env: Option<String>,
    /// The YAML key, if it has one.
    key: Option<String>,
    /// As `--help` states it: `1000`, `(required)`, `(none)`, `no default`, …
    default: Option<String>,
}

/// The flags in a heading such as `  --no-watch[=BOOL]` or `  -h, --help`.
fn heading_flags(heading: &str) -> Vec<String> {
    heading
        .split([',', ' '])
        .filter(|t| t.starts_with('-'))
        .map(|t| t.split(['[', '=']).next().unwrap_or(t).to_string())
        .collect()
}

/// Every option block of `--help`: a heading indented by 2 and starting with `-`, then its
/// lines indented by 6 (the description, then `env VIP_X, key x; default: …`).
fn help_options(help: &str) -> Vec<HelpOption> {
    let lines: Vec<&str> = help.lines().collect();
    let mut options = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if !line.starts_with("  -") {
            continue;
        }
        let mut body = String::new();
        while i < lines.len() && lines[i].starts_with("      ") {
            body.push(' ');
            body.push_str(lines[i].trim());
            i += 1;
        }
        let words: Vec<&str> = body.split_whitespace().collect();
        let after = |word: &str| -> Option<String> {
            let at = words.iter().rposition(|w| *w == word)?;
            words
                .get(at + 1)
                .map(|w| w.trim_end_matches([',', ';']).to_string())
        };
        let env = after("env").filter(|v| v.starts_with("VIP_"));
        let key = if env.is_some() { after("key") } else { None };
        let default = if let Some(at) = body.rfind("; default: ") {
            Some(body[at + "; default: ".len()..].trim().to_string())
        } else if body.trim_end().ends_with("; no default") {
            Some("no default".to_string())
        } else {
            None
        };
        options.push(HelpOption {
            flags: heading_flags(line),
            env,
            key,
            default,
        });
    }
    options
}

/// The old names `--help` lists: (old key, its variable).
fn help_old_names(help: &str) -> Vec<(String, String)> {
    help.lines()
        .filter(|l| l.contains(" -> "))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let key = words.next()?;
            let var = words.next()?;
            var.starts_with("VIP_")
                .then(|| (key.to_string(), var.to_string()))
        })
        .collect()
}

/// Every `VIP_…` word in a text.
fn vip_variables(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("VIP_") && w.len() > 4)
        .map(String::from)
        .collect()
}

fn has_word(text: &str, word: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .any(|w| w == word)
}

// ---------------------------------------------------------------------------------------------
// Manual pages, rendered by mandoc.

/// `text` without the overstrike sequences (`c BS c`, `_ BS c`) of mandoc's terminal output.
fn strip_overstrike(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        if chars.get(i + 1) == Some(&'\u{8}') {
            i += 2;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// The page (relative to the source tree) as a reader sees it: `mandoc -T ascii`, wide
/// enough that no paragraph wraps.
fn render(mandoc: &Path, page: &str) -> String {
    let out = run_in(&repo(), mandoc, &["-T", "ascii", "-O", "width=1000", page]);
    out.expect(0, &format!("mandoc {page}"));
    strip_overstrike(&out.stdout)
}

/// The lines of one section (`OPTIONS`, `KEYS`) of a rendered page.
fn section<'a>(page: &'a str, name: &str) -> Vec<&'a str> {
    let mut lines = page.lines().skip_while(|l| *l != name);
    assert!(lines.next().is_some(), "no section {name} in the page");
    lines
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .collect()
}

/// The entries of a tagged list in a section: (tag, body with blanks squeezed). A tag line
/// is indented by exactly 5 and accepted by `is_tag`; the body is what follows, indented
/// deeper (or, for a short tag, on the same line).
fn tagged_entries(lines: &[&str], is_tag: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut open = false;
    for line in lines {
        let indent = line.len() - line.trim_start().len();
        if line.trim().is_empty() {
            continue;
        }
        if indent == 5 {
            let text = line.trim();
            let (tag, rest) = match text.split_once("  ") {
                Some((t, r)) => (t.trim(), r.trim()),
                None => (text, ""),
            };
            open = is_tag(tag);
            if open {
                entries.push((tag.to_string(), rest.to_string()));
            }
        } else if indent > 5 && open {
            if let Some((_, body)) = entries.last_mut() {
                body.push(' ');
                body.push_str(line.trim());
            }
        } else {
            open = false;
        }
    }
    for (_, body) in &mut entries {
        *body = body.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    entries
}

/// Whether an entry states the default as `--help` does: `Required.` for `(required)`,
/// `No default.` for `(none)` and `no default`, `Ignored.` for `(ignored)`, else
/// `Default: <the same text>.`
fn default_mismatch(help_default: &str, body: &str) -> Option<String> {
    let stated = body.find("Default: ").map(|at| {
        let rest = &body[at + "Default: ".len()..];
        let end = rest.find(". ").unwrap_or(rest.len());
        rest[..end].trim_end_matches('.').to_string()
    });
    let phrase = match help_default {
        "(required)" => Some("Required."),
        "(none)" | "no default" => Some("No default."),
        "(ignored)" => Some("Ignored."),
        _ => None,
    };
    match (phrase, stated) {
        (Some(p), None) if body.contains(p) => None,
        (Some(p), stated) => Some(format!(
            "--help says {help_default:?}: the page must say {p:?} and no \"Default:\" \
             (it says {stated:?})"
        )),
        (None, Some(s)) if s == help_default => None,
        (None, stated) => Some(format!(
            "--help says default {help_default:?}, the page says {stated:?}"
        )),
    }
}

/// Notes each item of one set missing from the other, both ways: `x: in A, not in B`.
fn note_differences<T: Ord + std::fmt::Display>(
    problems: &mut Vec<String>,
    a: (&str, &BTreeSet<T>),
    b: (&str, &BTreeSet<T>),
) {
    for ((x, xs), (y, ys)) in [(a, b), (b, a)] {
        let missing = xs.difference(ys);
        problems.extend(missing.map(|v| format!("{v}: in {x}, not in {y}")));
    }
}

fn help_text() -> String {
    let out = vipd_output(&["--help"]);
    out.expect(0, "vipd --help");
    out.stdout
}

#[test]
fn man_page_documents_every_option_of_help_and_no_other() {
    let mandoc = &gate!(Tools, "mandoc")[0];
    let help = help_text();
    let options = help_options(&help);
    let n = options.len();
    assert!(n > 20, "parsed only {n} options from --help:\n{help}");
    let page = render(mandoc, "man/vipd.8");
    let entries = tagged_entries(&section(&page, "OPTIONS"), |t| t.starts_with('-'));
    let mut problems = Vec::new();

    let help_flags: BTreeSet<String> = options.iter().flat_map(|o| o.flags.clone()).collect();
    let man_flags = entries
        .iter()
        .flat_map(|(tag, _)| heading_flags(tag))
        .collect();
    let options_section = ("vipd.8's OPTIONS", &man_flags);
    note_differences(&mut problems, ("--help", &help_flags), options_section);

    for opt in &options {
        let Some((tag, body)) = entries
            .iter()
            .find(|(tag, _)| heading_flags(tag) == opt.flags)
        else {
            continue; // reported above
        };
        if let Some(env) = &opt.env {
            if !vip_variables(body).contains(env) {
                problems.push(format!("{tag}: the entry does not name {env}"));
            }
        }
        if let Some(key) = &opt.key {
            if !has_word(body, key) {
                problems.push(format!("{tag}: the entry does not name the key {key}"));
            }
        }
        if let Some(default) = &opt.default {
            if let Some(m) = default_mismatch(default, body) {
                problems.push(format!("{tag}: {m}"));
            }
        }
    }

    // The variables --help names: each option's and each old name's (its introduction's
    // placeholder VIP_NAME is none of them).
    let help_vars: BTreeSet<String> = options
        .iter()
        .filter_map(|o| o.env.clone())
        .chain(help_old_names(&help).into_iter().map(|(_, v)| v))
        .collect();
    let man_vars = vip_variables(&page);
    note_differences(&mut problems, ("--help", &help_vars), ("vipd.8", &man_vars));
    let old = help_old_names(&help);
    let n = old.len();
    assert!(n >= 10, "parsed only {n} old names from --help");
    for (key, _) in &old {
        if !has_word(&page, key) {
            problems.push(format!("old name {key}: in --help, not in vipd.8"));
        }
    }
    assert!(
        problems.is_empty(),
        "vipd.8 and `vipd --help` disagree:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn config_page_documents_every_yaml_key_of_help_and_no_other() {
    let mandoc = &gate!(Tools, "mandoc")[0];
    let help = help_text();
    let options = help_options(&help);
    let page = render(mandoc, "man/vipd.conf.5");
    let is_key = |t: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    let entries = tagged_entries(&section(&page, "KEYS"), is_key);
    let mut problems = Vec::new();

    let help_keys: BTreeMap<&str, &HelpOption> = options
        .iter()
        .filter_map(|o| o.key.as_deref().map(|k| (k, o)))
        .collect();
    let n = help_keys.len();
    assert!(n > 20, "parsed only {n} keys from --help");
    let page_keys: BTreeMap<&str, &str> = entries
        .iter()
        .map(|(k, b)| (k.as_str(), b.as_str()))
        .collect();
    let help_set: BTreeSet<&str> = help_keys.keys().copied().collect();
    let page_set: BTreeSet<&str> = page_keys.keys().copied().collect();
    let help_set = ("the keys of --help", &help_set);
    note_differences(&mut problems, help_set, ("vipd.conf.5's KEYS", &page_set));
    for (key, opt) in &help_keys {
        if let (Some(body), Some(default)) = (page_keys.get(key), &opt.default) {
            if let Some(m) = default_mismatch(default, body) {
                problems.push(format!("{key}: {m}"));
            }
        }
    }
    for (key, var) in help_old_names(&help) {
        if !has_word(&page, &key) || !vip_variables(&page).contains(&var) {
            problems.push(format!(
                "old name {key} ({var}): in --help, not in vipd.conf.5"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "vipd.conf.5 and `vipd --help` disagree:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn man_pages_lint_without_warnings() {
    let mandoc = &gate!(Tools, "mandoc")[0];
    for page in ["man/vipd.8", "man/vipd.conf.5"] {
        let out = run_in(&repo(), mandoc, &["-T", "lint", "-W", "warning", page]);
        expect_quiet(&out, &format!("mandoc -T lint -W warning {page}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Scripts and units.

/// Every shell script under packaging/: a `#!` line for sh, bash or openrc-run, or a
/// `# shellcheck shell=` directive (the sourced settings files).
fn packaging_scripts() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                walk(&path, out);
            } else if meta.is_file() {
                let text = fs::read_to_string(&path).unwrap_or_default();
                let first = text.lines().next().unwrap_or("");
                let shebang = ["#!/bin/sh", "#!/bin/bash", "#!/sbin/openrc-run"]
                    .iter()
                    .any(|s| first.starts_with(s));
                if shebang || text.lines().any(|l| l.starts_with("# shellcheck shell=")) {
                    out.push(path);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo().join("packaging"), &mut out);
    out.sort();
    out
}

#[test]
fn packaging_scripts_pass_shellcheck() {
    let t = gate!(Tools, "shellcheck");
    let scripts = packaging_scripts();
    let names: Vec<String> = scripts
        .iter()
        .map(|p| {
            p.strip_prefix(repo())
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let must = "sysvinit/vipd sysvinit/vipd.default runit/run runit/log/run openrc/vipd.initd \
                openrc/vipd.confd deb/build-deb.sh deb/postinst deb/prerm deb/postrm check-size.sh";
    for must in must.split_whitespace().map(|m| format!("packaging/{m}")) {
        let found = names.contains(&must);
        assert!(found, "{must} was not found as a script; found {names:?}");
    }
    let out = run_in(&repo(), &t[0], &names);
    out.expect(0, &format!("shellcheck {}", names.join(" ")));
}

/// A unit file's settings: (section, key) → values in order.
fn unit_settings(path: &Path) -> Settings {
    let mut map = Settings::new();
    let mut section = String::new();
    for line in read(path).lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            section = line[1..line.len() - 1].to_string();
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            map.entry((section.clone(), k.trim().to_string()))
                .or_default()
                .push(v.trim().to_string());
        }
    }
    map
}

type Settings = BTreeMap<(String, String), Vec<String>>;

fn words_of(settings: &Settings, sec: &str, key: &str) -> Vec<String> {
    settings
        .get(&(sec.to_string(), key.to_string()))
        .map(|vs| {
            vs.iter()
                .flat_map(|v| v.split_whitespace().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn systemd_units_order_restart_and_confine_vipd() {
    let dir = repo().join("packaging/systemd");
    let alias = dir.join("vip-manager@.service");
    let target = fs::read_link(&alias)
        .unwrap_or_else(|e| panic!("{} must be a symlink (an alias): {e}", alias.display()));
    assert_eq!(
        target,
        Path::new("vipd@.service"),
        "vip-manager@.service must alias vipd@.service"
    );
    let caps: BTreeSet<String> = ["CAP_NET_ADMIN", "CAP_NET_RAW"].map(String::from).into();
    let (vipd, config) = (
        "/usr/sbin/vipd",
        "/usr/sbin/vipd --config /etc/vipd/vipd.yml",
    );
    let units = [
        ("vipd.service", "", config),
        ("vipd@.service", "-/etc/patroni/%i.vip", vipd),
        ("vip-manager.service", "-/etc/default/vip-manager", vipd),
    ];
    for (name, env_file, exec) in units {
        let s = unit_settings(&dir.join(name));
        let one = |sec: &str, key: &str| -> String { words_of(&s, sec, key).join(" ") };
        let has = |key: &str, word: &str| words_of(&s, "Unit", key).iter().any(|w| w == word);
        assert!(
            has("After", "network-online.target") && has("Wants", "network-online.target"),
            "{name}: After= and Wants= network-online.target"
        );
        assert!(
            has("Before", "patroni.service"),
            "{name}: Before=patroni.service"
        );
        assert_eq!(one("Service", "ExecStart"), exec, "{name}: ExecStart");
        assert_eq!(one("Service", "Restart"), "on-failure", "{name}: Restart");
        for key in ["AmbientCapabilities", "CapabilityBoundingSet"] {
            let got: BTreeSet<String> = words_of(&s, "Service", key).into_iter().collect();
            assert_eq!(got, caps, "{name}: {key}, exactly the two");
        }
        assert_eq!(one("Service", "NoNewPrivileges"), "yes", "{name}");
        assert_eq!(one("Service", "ProtectSystem"), "strict", "{name}");
        assert_eq!(one("Service", "ProtectHome"), "yes", "{name}");
        assert_eq!(one("Service", "PrivateTmp"), "yes", "{name}");
        let env = one("Service", "EnvironmentFile");
        assert_eq!(env, env_file, "{name}: EnvironmentFile");
        assert_eq!(one("Install", "WantedBy"), "multi-user.target", "{name}");
    }
}

#[test]
fn check_size_script_passes_within_and_fails_over_budget() {
    let dir = TempDir::new(&lab_id(), "size");
    let script = repo().join("packaging/check-size.sh");
    let sh = tool("sh");
    let exact = dir.path.join("exact");
    let over = dir.path.join("over");
    fs::write(&exact, vec![0u8; 1 << 20]).expect("write exact");
    fs::write(&over, vec![0u8; (1 << 20) + 1]).expect("write over");
    let run = |line: &str| {
        let mut all = vec![script.to_string_lossy().into_owned()];
        all.extend(args(line));
        run_in(&dir.path, &sh, &all)
    };
    let ok = run("exact 1.0 over 1.5");
    ok.expect(0, "within budget");
    expect_contains(&ok.stdout, "OK   exact: 1048576 bytes");
    expect_contains(&ok.stdout, "OK   over:");
    let bad = run("exact 1.0 over 1.0");
    bad.expect(1, "over budget");
    expect_contains(&bad.stdout, "OVER over: 1048577 bytes");
    let missing = run("absent 1.0");
    missing.expect(1, "a missing file");
    expect_contains(&missing.stdout, "MISSING absent");
    for line in ["exact", "exact lots", "exact 1..0"] {
        assert_eq!(run(line).code(), Some(2), "bad arguments {line:?}");
    }
}

/// Every file, symlink and directory below `root`: relative path → ("file", mode, size),
/// ("link", target) or ("dir").
fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for e in entries.flatten() {
            let path = e.path();
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            let meta = fs::symlink_metadata(&path).expect("lstat");
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).expect("readlink");
                out.insert(rel, format!("link -> {}", target.display()));
            } else if meta.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(rel, format!("file {:04o}", meta.mode() & 0o7777));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn make_install_honours_prefix_and_destdir() {
    let t = gate!(Tools, "make");
    let dest = TempDir::new(&lab_id(), "destdir");
    let bin = vipd_bin();
    let bin = bin.to_string_lossy();
    let mut cmd = Command::new(&t[0]);
    // `-o BIN`: install the binary cargo built for these tests; make must not rebuild it.
    cmd.args(["-s", "-o", &bin, "install"])
        .arg(format!("BIN={bin}"))
        .arg(format!("DESTDIR={}", dest.path.display()))
        .arg("PREFIX=/opt/vipd")
        .current_dir(repo());
    for var in ["MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"] {
        cmd.env_remove(var);
    }
    let out = Proc::spawn("make install", cmd, true).finish(Duration::from_secs(60));
    out.expect(0, "make install");
    let want = table(
        "opt/vipd/sbin/vipd file 0755
         opt/vipd/share/doc/vipd/examples/hetzner-cloud.yml file 0644
         opt/vipd/share/doc/vipd/examples/hetzner.yml file 0644
         opt/vipd/share/doc/vipd/examples/replica.yml file 0644
         opt/vipd/share/doc/vipd/examples/sync.yml file 0644
         opt/vipd/share/doc/vipd/examples/vipd.yml file 0644
         opt/vipd/share/man/man5/vipd.conf.5 file 0644
         opt/vipd/share/man/man8/vipd.8 file 0644",
    );
    assert_eq!(
        tree(&dest.path),
        want,
        "files make install put under DESTDIR"
    );
    let sources = table(
        "opt/vipd/share/man/man8/vipd.8 man/vipd.8
         opt/vipd/share/man/man5/vipd.conf.5 man/vipd.conf.5
         opt/vipd/share/doc/vipd/examples/vipd.yml packaging/vipd.yml
         opt/vipd/share/doc/vipd/examples/replica.yml packaging/examples/replica.yml
         opt/vipd/share/doc/vipd/examples/sync.yml packaging/examples/sync.yml
         opt/vipd/share/doc/vipd/examples/hetzner.yml packaging/examples/hetzner.yml
         opt/vipd/share/doc/vipd/examples/hetzner-cloud.yml packaging/examples/hetzner-cloud.yml",
    );
    let sources = sources.iter().map(|(i, s)| (i.as_str(), repo().join(s)));
    for (installed, source) in sources.chain([("opt/vipd/sbin/vipd", vipd_bin())]) {
        let same = same_file(&dest.path.join(installed), &source);
        assert!(same, "{installed} differs from {}", source.display());
    }
}

// ---------------------------------------------------------------------------------------------
// The Debian package.

/// Whether an ELF executable is static-pie: position-independent (ET_DYN), with a dynamic
/// section for its own relocations, and no program interpreter (no dynamic loader).
fn static_pie(bytes: &[u8]) -> Result<(), String> {
    // A little-endian field of `n` bytes at `at`.
    let le = |at: usize, n: usize| -> Option<u64> {
        let b = bytes.get(at..at.checked_add(n)?)?;
        Some(b.iter().rev().fold(0, |v, &x| v << 8 | u64::from(x)))
    };
    let header = |at: usize, n: usize| le(at, n).ok_or("short header");
    if bytes.get(0..4) != Some(b"\x7fELF") || bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let e_type = header(16, 2)?;
    if e_type != 3 {
        return Err(format!(
            "e_type {e_type}, want 3 (ET_DYN: position-independent)"
        ));
    }
    let field = |at, n| header(at, n).map(|v| usize::try_from(v).unwrap_or(usize::MAX));
    let (phoff, phentsize, phnum) = (field(32, 8)?, field(54, 2)?, field(56, 2)?);
    let mut types = Vec::new();
    for i in 0..phnum {
        let at = phoff.saturating_add(i.saturating_mul(phentsize));
        types.push(le(at, 4).ok_or("program header out of the file")?);
    }
    const PT_DYNAMIC: u64 = 2;
    const PT_INTERP: u64 = 3;
    if types.contains(&PT_INTERP) {
        return Err("it has a program interpreter (dynamically linked)".into());
    }
    if !types.contains(&PT_DYNAMIC) {
        return Err("no PT_DYNAMIC: static, but not position-independent".into());
    }
    Ok(())
}

/// Every file of the package: path, then kind and mode (see [`tree`]).
const DEB_FILES: &str = "
    etc/default/vipd file 0644
    etc/init.d/vipd file 0755
    etc/logrotate.d/vipd file 0644
    lib/systemd/system/vip-manager.service file 0644
    lib/systemd/system/vip-manager@.service link -> vipd@.service
    lib/systemd/system/vipd.service file 0644
    lib/systemd/system/vipd@.service file 0644
    usr/bin/vip-manager link -> ../sbin/vipd
    usr/sbin/vipd file 0755
    usr/share/doc/vipd/README.md.gz file 0644
    usr/share/doc/vipd/changelog.gz file 0644
    usr/share/doc/vipd/copyright file 0644
    usr/share/doc/vipd/examples/hetzner-cloud.yml file 0644
    usr/share/doc/vipd/examples/hetzner.yml file 0644
    usr/share/doc/vipd/examples/openrc/vipd.confd file 0644
    usr/share/doc/vipd/examples/openrc/vipd.initd file 0644
    usr/share/doc/vipd/examples/replica.yml file 0644
    usr/share/doc/vipd/examples/runit/log/run file 0644
    usr/share/doc/vipd/examples/runit/run file 0644
    usr/share/doc/vipd/examples/sync.yml file 0644
    usr/share/doc/vipd/examples/vip-manager.default file 0644
    usr/share/doc/vipd/examples/vipd.yml file 0644
    usr/share/man/man5/vipd.conf.5.gz file 0644
    usr/share/man/man8/vip-manager.8.gz link -> vipd.8.gz
    usr/share/man/man8/vipd.8.gz file 0644";

/// Files the package ships as they are in the tree: path in the package, source.
const DEB_SOURCES: &str = "
    etc/default/vipd packaging/sysvinit/vipd.default
    etc/init.d/vipd packaging/sysvinit/vipd
    etc/logrotate.d/vipd packaging/sysvinit/vipd.logrotate
    lib/systemd/system/vipd.service packaging/systemd/vipd.service
    lib/systemd/system/vipd@.service packaging/systemd/vipd@.service
    lib/systemd/system/vip-manager.service packaging/systemd/vip-manager.service
    usr/share/doc/vipd/copyright packaging/deb/copyright
    usr/share/doc/vipd/examples/vipd.yml packaging/vipd.yml
    usr/share/doc/vipd/examples/replica.yml packaging/examples/replica.yml
    usr/share/doc/vipd/examples/sync.yml packaging/examples/sync.yml
    usr/share/doc/vipd/examples/hetzner.yml packaging/examples/hetzner.yml
    usr/share/doc/vipd/examples/hetzner-cloud.yml packaging/examples/hetzner-cloud.yml
    usr/share/doc/vipd/examples/runit/run packaging/runit/run
    usr/share/doc/vipd/examples/openrc/vipd.initd packaging/openrc/vipd.initd";

/// Files the package ships gzipped: path in the package, source.
const DEB_GZIPPED: &str = "
    usr/share/man/man8/vipd.8.gz man/vipd.8
    usr/share/man/man5/vipd.conf.5.gz man/vipd.conf.5
    usr/share/doc/vipd/changelog.gz packaging/deb/changelog";

const CONFFILES: [&str; 3] = [
    "/etc/default/vipd",
    "/etc/init.d/vipd",
    "/etc/logrotate.d/vipd",
];

/// The package `make deb` built; None (the test skips) when it is missing and
/// VIPD_ALLOW_SKIP=1, a failure otherwise.
fn built_deb() -> Option<String> {
    let version = env!("CARGO_PKG_VERSION");
    let deb = repo().join(format!("target/deb/vipd_{version}_amd64.deb"));
    if deb.is_file() {
        return Some(deb.to_string_lossy().into_owned());
    }
    let deb = deb.display();
    if env::var("VIPD_ALLOW_SKIP").as_deref() == Ok("1") {
        eprintln!("SKIPPED: {deb} not built (make deb)");
        return None;
    }
    panic!("{deb} not found: run `make deb` (make test does)");
}

/// The control fields of a package (`dpkg-deb -f`), continuation lines joined.
fn control_fields(text: &str) -> BTreeMap<String, String> {
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.starts_with(' ') {
            if let Some(v) = last.as_ref().and_then(|k| fields.get_mut(k)) {
                v.push('\n');
                v.push_str(line);
            }
        } else if let Some((k, v)) = line.split_once(':') {
            fields.insert(k.to_string(), v.trim().to_string());
            last = Some(k.to_string());
        }
    }
    fields
}

fn gunzip(gzip: &Path, file: &Path) -> Vec<u8> {
    let mut cmd = Command::new(gzip);
    cmd.arg("-dc").arg(file);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("gzip -dc {}: {e}", file.display()));
    assert!(out.status.success(), "gzip -dc {} failed", file.display());
    out.stdout
}

#[test]
fn deb_package_is_a_static_drop_in_for_vip_manager() {
    let t = gate!(Tools, "dpkg-deb", "md5sum", "gzip", "systemd-analyze");
    let (dpkg_deb, md5sum, gzip, analyze) = (&t[0], &t[1], &t[2], &t[3]);
    let Some(deb_s) = built_deb() else {
        return;
    };
    let version = env!("CARGO_PKG_VERSION");

    // Control fields.
    let out = run_in(&repo(), dpkg_deb, &["-f", &deb_s]);
    out.expect(0, "dpkg-deb -f");
    let f = control_fields(&out.stdout);
    let field = |k: &str| f.get(k).cloned().unwrap_or_default();
    assert_eq!(field("Package"), "vipd");
    assert_eq!(field("Version"), version, "Version must be Cargo.toml's");
    assert_eq!(field("Architecture"), "amd64");
    assert_eq!(field("Section"), "net");
    assert_eq!(field("Priority"), "optional");
    for k in ["Provides", "Conflicts", "Replaces"] {
        let names: Vec<String> = field(k).split(',').map(|s| s.trim().to_string()).collect();
        assert_eq!(names, ["vip-manager"], "{k}");
    }
    let depends = f.get("Depends");
    assert_eq!(depends, None, "a static binary depends on nothing");
    let pre = field("Pre-Depends");
    let why = "invoke-rc.d --skip-systemd-native";
    assert!(
        pre.starts_with("init-system-helpers (>= "),
        "Pre-Depends ({why}): {pre}"
    );
    let m = field("Maintainer");
    let ok = m.contains(" <") && m.ends_with('>') && m.contains('@');
    assert!(ok, "Maintainer: {m}");
    let lines = field("Description").lines().count();
    assert!(lines > 3, "Description: a synopsis and a long description");

    // Files.
    let scratch = TempDir::new(&lab_id(), "deb");
    let root = scratch.path.join("root");
    let control = scratch.path.join("control");
    for (op, dir) in [("-x", &root), ("-e", &control)] {
        let out = run_in(&repo(), dpkg_deb, &[op, &deb_s, &dir.to_string_lossy()]);
        out.expect(0, &format!("dpkg-deb {op}"));
    }
    let got = tree(&root);
    assert_eq!(
        got,
        table(DEB_FILES),
        "the package's files (no lintian override among them)"
    );

    // What it ships is what the tree has.
    let src = repo();
    for (shipped, source) in table(DEB_SOURCES) {
        assert!(
            same_file(&root.join(&shipped), &src.join(&source)),
            "{shipped} in the package differs from {source}: run `make deb`"
        );
    }
    for (shipped, source) in table(DEB_GZIPPED) {
        assert!(
            gunzip(gzip, &root.join(&shipped)) == fs::read(src.join(&source)).unwrap_or_default(),
            "{shipped} in the package is not {source}, compressed: run `make deb`"
        );
    }
    let changelog = gunzip(gzip, &root.join("usr/share/doc/vipd/changelog.gz"));
    let changelog = String::from_utf8_lossy(&changelog);
    assert!(
        changelog.starts_with(&format!("vipd ({version}) ")),
        "changelog.gz must start with this version: {changelog}"
    );

    // Control area: conffiles, md5sums, maintainer scripts.
    let conffiles = read(&control.join("conffiles"));
    assert_eq!(
        conffiles.lines().collect::<Vec<_>>(),
        CONFFILES,
        "conffiles: every file in /etc, nothing else"
    );
    let md5 = control.join("md5sums");
    let sums = read(&md5);
    let listed: BTreeSet<&str> = sums
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    let regular: BTreeSet<&str> = got
        .iter()
        .filter(|(p, kind)| kind.starts_with("file") && !p.starts_with("etc/"))
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(listed, regular, "md5sums: every file outside /etc");
    let check = run_in(
        &root,
        md5sum,
        &["--check", "--quiet", &md5.to_string_lossy()],
    );
    check.expect(0, "md5sum --check of the package's md5sums");
    for script in ["postinst", "prerm", "postrm"] {
        let path = control.join(script);
        assert!(
            same_file(&path, &src.join("packaging/deb").join(script)),
            "DEBIAN/{script} differs from packaging/deb/{script}"
        );
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o755, "DEBIAN/{script} mode");
    }

    // The binary: static-pie, the same program as the one these tests built.
    let binary = root.join("usr/sbin/vipd");
    let bytes = fs::read(&binary).expect("read usr/sbin/vipd");
    if let Err(e) = static_pie(&bytes) {
        panic!("usr/sbin/vipd is not static-pie: {e}");
    }
    let version_line = format!("vipd {version}");
    for program in [binary.clone(), root.join("usr/bin/vip-manager")] {
        let out = run_in(&root, &program, &["--version"]);
        out.expect(0, &format!("{} --version", program.display()));
        assert_eq!(out.stdout.trim(), version_line, "{}", program.display());
    }
    let packaged_help = run_in(&root, &binary, &["--help"]);
    packaged_help.expect(0, "packaged vipd --help");
    assert!(
        packaged_help.stdout == help_text(),
        "the packaged vipd --help differs from the tested build's: the package is stale \
         (run `make deb`)"
    );

    // The units load: systemd-analyze verify in the unpacked tree, with the host's targets.
    let units = root.join("lib/systemd/system");
    let host_units = Path::new("/lib/systemd/system");
    for e in fs::read_dir(host_units).into_iter().flatten().flatten() {
        let name = e.file_name();
        if name.to_string_lossy().ends_with(".target") {
            let _ = fs::copy(e.path(), units.join(&name));
        }
    }
    // The scratch root is below /dev/shm or the temporary directory: no spaces.
    let units = "vipd.service vipd@15-main.service vip-manager.service vip-manager@15-main.service";
    let verify = format!("verify --man=no --root={} {units}", root.display());
    let verify = run_in(&root, analyze, &args(&verify));
    expect_quiet(&verify, "systemd-analyze verify");
}

/// `dpkg --root=ROOT ARGS…` with its own database and log in ROOT, the maintainer scripts
/// run outside a chroot with DPKG_ROOT=ROOT (they touch nothing of the host then).
fn dpkg_in(dpkg: &Path, root: &Path, args: &[&str]) -> Outcome {
    let mut all = vec![
        format!("--root={}", root.display()),
        format!("--log={}", root.join("var/log/dpkg.log").display()),
        "--force-script-chrootless".to_string(),
        // Pre-Depends: init-system-helpers is on the host, not in ROOT's database.
        "--force-depends".to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    run_in(root, dpkg, &all)
}

#[test]
fn deb_installs_upgrades_removes_and_purges_in_a_scratch_root() {
    let t = gate!(Root, "dpkg", "deb-systemd-helper");
    let dpkg = &t[0];
    let Some(deb_s) = built_deb() else {
        return;
    };
    let scratch = TempDir::new(&lab_id(), "dpkg-root");
    let root = scratch.path.clone();
    for d in args("var/lib/dpkg/info var/lib/dpkg/updates var/log etc") {
        fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    for f in ["var/lib/dpkg/status", "var/lib/dpkg/available"] {
        fs::write(root.join(f), "").expect("touch");
    }
    let status = |root: &Path| -> String {
        let out = dpkg_in(dpkg, root, &["--status", "vipd"]).stdout;
        let status = out.lines().find_map(|l| l.strip_prefix("Status: "));
        status.unwrap_or("").to_string()
    };
    let wants = root.join("etc/systemd/system/multi-user.target.wants/vipd.service");

    // Install: the files, the conffiles registered, vipd.service enabled.
    let out = dpkg_in(dpkg, &root, &["--install", &deb_s]);
    out.expect(0, "dpkg --install");
    assert_eq!(status(&root), "install ok installed");
    assert!(root.join("usr/sbin/vipd").is_file());
    assert_eq!(
        fs::read_link(root.join("usr/bin/vip-manager")).ok(),
        Some(PathBuf::from("../sbin/vipd"))
    );
    assert_eq!(
        fs::read_link(&wants).ok(),
        Some(PathBuf::from("/lib/systemd/system/vipd.service")),
        "postinst must enable vipd.service (deb-systemd-helper)"
    );
    let out = dpkg_in(dpkg, &root, &["--status", "vipd"]);
    for conffile in CONFFILES {
        expect_contains(&out.stdout, &format!(" {conffile} "));
    }

    // Upgrade (the same version again: postinst configure with the old version), after an
    // admin edited a conffile: kept, no prompt (stdin is /dev/null).
    fs::write(root.join("etc/default/vipd"), "VIPD_OPTS=\"--verbose\"\n").expect("edit");
    let out = dpkg_in(dpkg, &root, &["--install", &deb_s]);
    out.expect(0, "dpkg --install (upgrade)");
    assert_eq!(status(&root), "install ok installed");
    assert_eq!(
        read(&root.join("etc/default/vipd")),
        "VIPD_OPTS=\"--verbose\"\n",
        "the upgrade overwrote the admin's /etc/default/vipd"
    );

    // Remove: the program goes, the configuration stays, the unit stays enabled.
    let out = dpkg_in(dpkg, &root, &["--remove", "vipd"]);
    out.expect(0, "dpkg --remove");
    assert_eq!(status(&root), "deinstall ok config-files");
    for gone in ["usr/sbin/vipd", "usr/bin/vip-manager"] {
        assert!(!root.join(gone).exists(), "remove left {gone}");
    }
    let conffile = root.join("etc/default/vipd");
    assert!(conffile.is_file(), "remove deleted a conffile");

    // Purge: nothing of vipd is left, not even its enablement.
    fs::create_dir_all(root.join("var/log/vipd")).expect("mkdir log");
    fs::write(root.join("var/log/vipd/main.log"), "x\n").expect("write log");
    let out = dpkg_in(dpkg, &root, &["--purge", "vipd"]);
    out.expect(0, "dpkg --purge");
    assert_eq!(status(&root), "", "vipd still known to dpkg after purge");
    for gone in [
        "etc/default/vipd",
        "etc/init.d/vipd",
        "etc/logrotate.d/vipd",
        "var/log/vipd",
        "var/lib/systemd/deb-systemd-helper-enabled/vipd.service.dsh-also",
    ] {
        assert!(!root.join(gone).exists(), "purge left {gone}");
    }
    assert!(
        fs::symlink_metadata(&wants).is_err(),
        "purge left the enablement link of vipd.service"
    );
}

// ---------------------------------------------------------------------------------------------
// The services for real: root, network namespaces, etcd.

const SECOND_VIP: &str = "192.0.2.51";

/// Options every instance gets on top of its file: the lab's interface, key, node and etcd.
fn lab_opts(lab: &SingleNode) -> String {
    format!(
        "--interface {NODE_IF} --trigger-key {KEY} --trigger-value {NODE_NAME} \
         --dcs-endpoints {}",
        lab.etcd.endpoint
    )
}

/// Waits at most `within` (zero: looks once) until `addr` is on the node's interface, or
/// gone from it.
fn addr_within(lab: &SingleNode, addr: &str, present: bool, within: Duration) -> bool {
    let ip = addr.parse().expect("an IPv4 address");
    let has = || !lab.node.prefixes_of(NODE_IF, ip).is_empty();
    wait_until(within, POLL, || has() == present).is_some()
}

/// [`addr_within`], which must hold; the panic names `what`.
#[track_caller]
fn expect_addr(lab: &SingleNode, addr: &str, present: bool, within: Duration, what: &str) {
    let state = if present { "missing" } else { "still present" };
    let done = addr_within(lab, addr, present, within);
    assert!(done, "{what}: {addr} {state} after {within:?}");
}

fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Seconds of the day of an `ip -ts monitor` line: `[2025-11-26T11:22:50.544210] …`.
fn monitor_time(line: &str) -> Option<f64> {
    let stamp = line.strip_prefix('[')?.split(']').next()?;
    let clock = stamp.split('T').nth(1)?;
    let parts = clock.split(':').map(|p| p.parse::<f64>().ok());
    parts.take(3).try_fold(0.0, |t, p| Some(t * 60.0 + p?))
}

/// From `ip -ts monitor address` output: the time from the first deletion of `addr` to the
/// next addition of it, in milliseconds.
fn gap_ms(monitor: &str, addr: &str) -> Option<f64> {
    let needle = format!(" inet {addr}/");
    let mut deleted: Option<f64> = None;
    for line in monitor.lines().filter(|l| l.contains(&needle)) {
        let t = monitor_time(line)?;
        let is_delete = line.contains("] Deleted ");
        match (deleted, is_delete) {
            (None, true) => deleted = Some(t),
            // rem_euclid: also across midnight.
            (Some(d), false) => return Some((t - d).rem_euclid(86_400.0) * 1000.0),
            _ => {}
        }
    }
    None
}

/// The sysvinit script in the lab: `packaging/sysvinit/vipd LINE` inside the node's
/// namespace with the settings file `defaults`, which must exit with `code`.
fn init_script(lab: &SingleNode, defaults: &str, line: &str, code: i32) -> Outcome {
    let mut cmd = Command::new(tool("ip"));
    cmd.args(["netns", "exec", &lab.node.name])
        .arg(tool("sh"))
        .arg(repo().join("packaging/sysvinit/vipd"))
        .args(args(line))
        .env("VIPD_DEFAULT_FILE", defaults);
    scrub_env(&mut cmd);
    let what = format!("init script {line}");
    let out = Proc::spawn(&what, cmd, true).finish(Duration::from_secs(60));
    out.expect(code, &what);
    out
}

#[test]
fn sysvinit_script_starts_reports_restarts_and_stops_one_vipd_per_file() {
    gate!(Etcd, "start-stop-daemon");
    assert!(
        Path::new("/lib/lsb/init-functions").is_file(),
        "/lib/lsb/init-functions missing (apt-get install sysvinit-utils)"
    );
    let lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    let dir = lab.dir("sysvinit");
    let [confdir, rundir, logdir] = ["etc/vipd", "run", "log"].map(|d| dir.path.join(d));
    fs::create_dir_all(&confdir).expect("mkdir confdir");
    // Instance "main": the annotated example as shipped (192.0.2.50/24); "second": another VIP.
    fs::copy(repo().join("packaging/vipd.yml"), confdir.join("main.yml")).expect("copy example");
    let second = format!("ip: {SECOND_VIP}\nnetmask: 24\n");
    fs::write(confdir.join("second.yml"), second).expect("write second.yml");
    let defaults = format!(
        "DAEMON={}\nVIPD_CONFDIR={}\nVIPD_RUNDIR={}\nVIPD_LOGDIR={}\nVIPD_OPTS=\"{}\"\n",
        vipd_bin().display(),
        confdir.display(),
        rundir.display(),
        logdir.display(),
        lab_opts(&lab)
    );
    let defaults = dir.write("default", defaults);
    let sysv = |line: &str, code: i32| init_script(&lab, &defaults, line, code);
    let pidfile = |name: &str| rundir.join(format!("{name}.pid"));
    let pid_of = |name: &str| read_pid(&pidfile(name)).unwrap_or_else(|| panic!("no {name}.pid"));
    let s = Duration::ZERO;

    // start: one vipd per file, each adds its VIP.
    let out = sysv("start", 0);
    for (vip, name) in [(VIP, "main"), (SECOND_VIP, "second")] {
        assert!(
            addr_within(&lab, vip, true, ms(3000)),
            "{vip} ({name}) did not appear after start\n{}{}\nlog: {}",
            out.stdout,
            out.stderr,
            fs::read_to_string(logdir.join(format!("{name}.log"))).unwrap_or_default()
        );
        let pid = pid_of(name);
        assert!(alive(pid), "{name}: pid {pid} is not running");
        expect_vipd_exe(pid, &format!("{name}: the pid file names vipd itself"));
    }

    // status: both run.
    let out = sysv("status", 0);
    for name in ["main", "second"] {
        expect_contains(&out.stdout, &format!("vipd {name} is running"));
    }
    // start again: already running, nothing changes.
    let main_pid = pid_of("main");
    sysv("start main", 0);
    assert_eq!(
        pid_of("main"),
        main_pid,
        "start must not start a second vipd"
    );

    // restart main, measuring how long the VIP is away; the other instance is not touched.
    let mut monitor = {
        let mut cmd = Command::new(tool("ip"));
        let line = format!("-n {} -ts monitor address dev {NODE_IF}", lab.node.name);
        cmd.args(args(&line));
        Proc::spawn("ip monitor address", cmd, true)
    };
    std::thread::sleep(ms(300)); // ip monitor has subscribed
    sysv("restart main", 0);
    expect_addr(&lab, VIP, true, ms(3000), "after restart");
    let new_pid = pid_of("main");
    assert_ne!(new_pid, main_pid, "restart must start a new vipd");
    assert!(!alive(main_pid), "the old vipd {main_pid} still runs");
    std::thread::sleep(ms(100));
    monitor.stop();
    let events = monitor.stdout();
    let gap = gap_ms(&events, VIP).unwrap_or_else(|| {
        panic!("restart: no deletion then addition of {VIP} seen by ip monitor:\n{events}")
    });
    eprintln!("restart gap (sysvinit script, stop then start): the VIP was away {gap:.1} ms");
    assert!(gap < 3000.0, "the VIP was away {gap:.1} ms during restart");
    assert!(
        !events.contains(&format!(" inet {SECOND_VIP}/")),
        "restart main touched the second instance's VIP:\n{events}"
    );

    // force-reload is a restart too (vipd has no reload).
    let second_pid = pid_of("second");
    sysv("force-reload second", 0);
    assert_ne!(
        pid_of("second"),
        second_pid,
        "force-reload must restart vipd"
    );
    expect_addr(&lab, SECOND_VIP, true, ms(3000), "after force-reload");

    // stop one: its VIP is gone when stop returns, the other stays.
    sysv("stop second", 0);
    expect_addr(&lab, SECOND_VIP, false, s, "when `stop second` returned");
    expect_addr(&lab, VIP, true, s, "stop second removed the main VIP");
    assert!(!pidfile("second").exists(), "stop leaves second.pid behind");
    let out = sysv("status", 3);
    expect_contains(&out.stdout, "vipd second is not running");
    sysv("status main", 0);

    // A configuration error: start fails and says why.
    fs::write(confdir.join("bad.yml"), "ip: 192.0.2.300\n").expect("write bad.yml");
    let out = sysv("start bad", 1);
    expect_contains(&out.stderr, "192.0.2.300");
    expect_contains(&out.stderr, "not an IP address");
    assert!(!pidfile("bad").exists(), "a failed start leaves a pid file");
    sysv("start absent", 6);
    sysv("start ../x", 2);
    fs::remove_file(confdir.join("bad.yml")).expect("remove bad.yml");

    // stop all: every VIP gone, no vipd left, status 3.
    let main_pid = pid_of("main");
    sysv("stop", 0);
    expect_addr(&lab, VIP, false, s, "when `stop` returned");
    assert!(!alive(main_pid), "vipd {main_pid} still runs after stop");
    assert!(!pidfile("main").exists(), "stop leaves main.pid behind");
    sysv("status", 3);
    let log = read(&logdir.join("main.log"));
    assert!(
        log.contains("SIGTERM") && log.contains(VIP),
        "main.log must hold vipd's lines (start, SIGTERM):\n{log}"
    );
}

/// Panics unless process `pid` runs the binary under test.
#[track_caller]
fn expect_vipd_exe(pid: u32, what: &str) {
    let exe = fs::read_link(format!("/proc/{pid}/exe")).ok();
    let want = fs::canonicalize(vipd_bin()).unwrap_or_else(|_| vipd_bin());
    assert_eq!(exe, Some(want), "{what}");
}

#[test]
fn runit_service_runs_vipd_under_runsv_with_svlogd() {
    let t = gate!(Etcd, "runsv", "sv", "svlogd");
    let sv = &t[1];
    let lab = SingleNode::new();
    lab.etcd.put(KEY, NODE_NAME);
    let dir = lab.dir("runit");
    let service = dir.path.join("sv/vipd");
    let logdir = dir.path.join("log");
    fs::create_dir_all(service.join("log")).expect("mkdir service");
    for script in ["run", "log/run"] {
        let to = service.join(script);
        fs::copy(repo().join("packaging/runit").join(script), &to).expect("copy run script");
        fs::set_permissions(&to, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let config = dir.path.join("vipd.yml");
    fs::copy(repo().join("packaging/vipd.yml"), &config).expect("copy example");
    let conf = format!(
        "VIPD={}\nVIPD_CONFIG={}\nVIPD_OPTS=\"{}\"\nVIPD_LOGDIR={}\n",
        vipd_bin().display(),
        config.display(),
        lab_opts(&lab),
        logdir.display()
    );
    fs::write(service.join("conf"), conf).expect("write conf");
    let svc = service.to_string_lossy().into_owned();
    let sv_run = |line: &str| -> Outcome {
        let mut all = args(line);
        all.push(svc.clone());
        run_in(&dir.path, sv, &all)
    };
    let current = logdir.join("current");
    // Waits for svlogd's file to hold `text`.
    let logged = |text: &str, within: Duration| -> bool {
        let has = || fs::read_to_string(&current).is_ok_and(|l| l.contains(text));
        wait_until(within, POLL, has).is_some()
    };

    let mut runsv = Proc::spawn_in(&lab.node.name, &t[0], std::slice::from_ref(&svc), true);
    expect_addr(
        &lab,
        VIP,
        true,
        ms(5000),
        &format!("under runsv\n{}", runsv.log()),
    );
    // The supervised process is vipd itself (run execs it), not a shell.
    let status = sv_run("status").stdout;
    assert!(status.starts_with("run: "), "sv status: {status}");
    let pid: u32 = status
        .split("(pid ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no pid in `sv status`: {status}"));
    expect_vipd_exe(pid, "runsv must supervise vipd itself");
    let shown = current.display();
    assert!(
        logged(VIP, ms(3000)),
        "svlogd's {shown} does not show vipd's lines"
    );

    // sv down: SIGTERM, vipd removes the VIP and exits 0.
    sv_run("-w 10 down").expect(0, "sv -w 10 down");
    expect_addr(&lab, VIP, false, Duration::ZERO, "after `sv down`");
    assert!(!alive(pid), "vipd {pid} still runs after sv down");
    let status = sv_run("status").stdout;
    assert!(
        status.starts_with("down: "),
        "sv status after down: {status}"
    );
    assert!(
        logged("SIGTERM", ms(2000)),
        "the log does not show the SIGTERM release:\n{}",
        fs::read_to_string(&current).unwrap_or_default()
    );

    // sv up: a new vipd, the VIP back.
    sv_run("-w 10 up").expect(0, "sv up");
    expect_addr(&lab, VIP, true, ms(5000), "after sv up");
    sv_run("-w 10 exit").expect(0, "sv exit");
    expect_addr(&lab, VIP, false, Duration::ZERO, "after `sv exit`");
    runsv.stop();
}
