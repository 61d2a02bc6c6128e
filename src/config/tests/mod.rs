//! Tests of the configuration, one file per module of it, and the helpers they share:
//! most tests load a whole configuration, as vipd does, and look at the result.

mod args;
mod build;
mod help;
mod hosted;
mod options;
mod sources;

use super::options::{DEBIAN_ENV, OPTIONS, env_name, lookup};
use super::*;
use std::collections::HashMap;
use std::net::IpAddr;
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

fn argv(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

fn run(list: &[&str], env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    let map: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    load(argv(list), &|k| map.get(k).cloned(), HOST)
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

/// The required flags, then `extra`.
fn base_with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    BASE.iter().chain(extra).copied().collect()
}

/// Arguments written as one line (none of them contains a blank).
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// `NAME=value` variables written as one line (no value contains a blank).
fn env_words(line: &str) -> Vec<EnvVar<'_>> {
    let pairs = line.split_whitespace().map(|w| w.split_once('='));
    pairs.map(|pair| pair.expect(line)).collect()
}

/// Assert that one of `warnings` contains `needle`.
fn assert_warns(warnings: &[String], needle: &str) {
    assert!(
        warnings.iter().any(|w| w.contains(needle)),
        "no {needle:?} in {warnings:?}"
    );
}

/// The `INPUT => EXPECTED` lines of a table, blank lines skipped.
fn table(text: &str) -> impl Iterator<Item = (&str, &str)> {
    let lines = text.lines().filter(|l| !l.is_empty());
    lines.map(|l| l.split_once(" => ").expect(l))
}

fn assert_starts(text: &str, prefix: &str) {
    assert!(
        text.starts_with(prefix),
        "{text:?} does not start with {prefix:?}"
    );
}
