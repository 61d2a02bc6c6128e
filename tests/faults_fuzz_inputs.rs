//! The fuzz targets' committed inputs as regression tests: every file of the minimised corpus
//! (fuzz/corpus/<target>/) and every input that once crashed a target
//! (fuzz/regressions/<target>/) goes through the same checks as under libFuzzer
//! (fuzz/harness.rs), on the stable toolchain, without libFuzzer. `make fuzz` runs the targets.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::fs;
use std::path::{Path, PathBuf};

/// The committed inputs of `target`: (file, bytes), corpus first, then crash inputs.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut found = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            let data = fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            found.push((f, data));
        }
    }
    found
}

/// Runs `check` on every committed input of `target`, naming the file that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let inputs = inputs(target);
    assert!(
        inputs.len() >= 3,
        "fuzz/corpus/{target}: only {} inputs committed",
        inputs.len()
    );
    let mut failed = Vec::new();
    for (path, data) in &inputs {
        if std::panic::catch_unwind(|| check(data)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs fail: {failed:?}",
        failed.len(),
        inputs.len()
    );
    eprintln!("{target}: {} inputs replayed", inputs.len());
}

#[test]
fn fuzz_inputs_yaml() {
    replay("yaml", harness::yaml);
}

#[test]
fn fuzz_inputs_config() {
    replay("config", harness::config);
}

#[test]
fn fuzz_inputs_etcd_range() {
    replay("etcd_range", harness::etcd_range);
}

#[test]
fn fuzz_inputs_etcd_watch() {
    replay("etcd_watch", harness::etcd_watch);
}

#[test]
fn fuzz_inputs_netlink() {
    replay("netlink", harness::netlink);
}

#[test]
fn fuzz_inputs_consul() {
    replay("consul", harness::consul);
}

#[test]
fn fuzz_inputs_etcd2() {
    replay("etcd2", harness::etcd2);
}

#[test]
fn fuzz_inputs_http_reply() {
    replay("http_reply", harness::http_reply);
}

#[test]
fn fuzz_inputs_conflict() {
    replay("conflict", harness::conflict);
}

#[test]
fn fuzz_inputs_scope() {
    replay("scope", harness::scope);
}
