//! The layers of `src/`: no top-level module may reach, directly or through others, a
//! module that reaches back to it. The test reads every `crate::…` and `super::…` path
//! in the sources (test code included, comments and string literals left out) and
//! fails on the first cycle between top-level modules, naming the files that close it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One reference from a source file to a top-level module.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    from: String,
    to: String,
    file: String,
}

/// The source with comments, string and character literals blanked out, so that only
/// code is searched.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        let raw_hashes = rest.strip_prefix(b"r").map(|r| {
            let n = r.iter().take_while(|&&c| c == b'#').count();
            (r.get(n) == Some(&b'"')).then_some(n)
        });
        let len = if rest.starts_with(b"//") {
            rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len())
        } else if rest.starts_with(b"/*") {
            nested_comment_len(rest)
        } else if rest[0] == b'"' {
            quoted_len(rest)
        } else if let Some(Some(hashes)) = raw_hashes {
            let close: Vec<u8> = [b'"'].into_iter().chain(vec![b'#'; hashes]).collect();
            let body = 2 + hashes;
            rest[body..]
                .windows(close.len())
                .position(|w| w == close)
                .map_or(rest.len(), |p| body + p + close.len())
        } else if rest[0] == b'\'' {
            char_literal_len(rest).unwrap_or(0)
        } else {
            0
        };
        if len == 0 {
            out.push(rest[0]);
            i += 1;
        } else {
            out.extend(
                rest[..len]
                    .iter()
                    .map(|&c| if c == b'\n' { c } else { b' ' }),
            );
            i += len;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn nested_comment_len(s: &[u8]) -> usize {
    let (mut depth, mut i) = (0usize, 0usize);
    while i + 1 < s.len() {
        match &s[i..i + 2] {
            b"/*" => depth += 1,
            b"*/" => depth -= 1,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
        if depth == 0 {
            return i;
        }
    }
    s.len()
}

fn quoted_len(s: &[u8]) -> usize {
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    s.len()
}

/// A character literal (`'a'`, `'\n'`, `'\u{1F600}'`), not a lifetime.
fn char_literal_len(s: &[u8]) -> Option<usize> {
    if s.get(1) == Some(&b'\\') {
        return s[2..].iter().position(|&c| c == b'\'').map(|p| p + 3);
    }
    let text = String::from_utf8_lossy(&s[1..s.len().min(6)]);
    let width = text.chars().next()?.len_utf8();
    (s.get(1 + width) == Some(&b'\'')).then_some(width + 2)
}

/// Identifiers and the punctuation a path is made of; `::` is `"::"`.
fn tokens(code: &str) -> Vec<String> {
    let c: Vec<char> = code.chars().collect();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < c.len() {
        let start = i;
        if c[i].is_alphanumeric() || c[i] == '_' {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
        } else if c[i] == ':' && c.get(i + 1) == Some(&':') {
            i += 2;
        } else {
            i += 1;
            if c[start].is_whitespace() {
                continue;
            }
        }
        out.push(c[start..i].iter().collect());
    }
    out
}

fn is_ident(t: &str) -> bool {
    t.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// The module path a file defines: `src/dcs/etcd.rs` → `[dcs, etcd]`, `src/net/mod.rs` →
/// `[net]`, `src/lib.rs` → `[]`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The heads of a `{a, b::c}` group starting at `t[0]` (`{`).
fn group_heads(t: &[String]) -> Vec<String> {
    let (mut level, mut expect_head, mut heads) = (0, true, Vec::new());
    for tok in t {
        match tok.as_str() {
            "{" => level += 1,
            "}" => level -= 1,
            "," => {}
            name if expect_head && level == 1 && is_ident(name) => heads.push(name.to_string()),
            _ => {}
        }
        if level == 0 {
            break;
        }
        expect_head = level == 1 && (tok == "," || tok == "{");
    }
    heads
}

/// The top-level modules every `crate::` and `super::` path in `code` names, seen from
/// a file whose module path is `module` (inline `mod name { … }` blocks deepen it).
fn referenced_tops(module: &[String], code: &str) -> BTreeSet<String> {
    let t = tokens(code);
    let (mut found, mut inline, mut depth) = (BTreeSet::new(), Vec::new(), 0usize);
    let mut pending_mod = None;
    for i in 0..t.len() {
        match t[i].as_str() {
            "mod" => pending_mod = t.get(i + 1).cloned(),
            "{" => {
                depth += 1;
                if let Some(name) = pending_mod.take() {
                    inline.push((depth, name));
                }
            }
            "}" => {
                if inline.last().is_some_and(|(d, _)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            ";" | "," => pending_mod = None,
            _ => {}
        }
        let head = t[i].as_str();
        if !(head == "crate" || head == "super") || (i > 0 && t[i - 1] == "::") {
            continue;
        }
        let mut base: Vec<String> = module.to_vec();
        base.extend(inline.iter().map(|(_, n)| n.clone()));
        // `j`: the last `crate` or `super` of the path's head.
        let mut j = i;
        if head == "crate" {
            base.clear();
        } else {
            base.pop();
            while t.get(j + 2).is_some_and(|s| s == "super") && t[j + 1] == "::" {
                base.pop();
                j += 2;
            }
        }
        if t.get(j + 1).is_none_or(|s| s != "::") {
            continue;
        }
        match (base.first(), t.get(j + 2)) {
            (Some(top), _) => drop(found.insert(top.clone())),
            (None, Some(open)) if open == "{" => found.extend(group_heads(&t[j + 2..])),
            (None, Some(name)) if is_ident(name) => drop(found.insert(name.clone())),
            _ => {}
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// Every reference between two different top-level modules of the library (the binary,
/// `main.rs`, is the top of the house and may use everything).
fn edges(src: &Path) -> Vec<Edge> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let rel = |f: &PathBuf| f.strip_prefix(src).expect("under src").to_path_buf();
    let tops: BTreeSet<String> = files
        .iter()
        .filter_map(|f| module_of(&rel(f)).first().cloned())
        .collect();
    let mut out = Vec::new();
    for file in files.iter().filter(|f| rel(f) != Path::new("main.rs")) {
        let module = module_of(&rel(file));
        let Some(from) = module.first().cloned() else {
            continue;
        };
        let text = std::fs::read_to_string(file).expect("readable source");
        for to in referenced_tops(&module, &code_only(&text)) {
            if tops.contains(&to) && to != from {
                let file = format!("src/{}", rel(file).display());
                out.push(Edge {
                    from: from.clone(),
                    to,
                    file,
                });
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A cycle between modules, as the list of modules it passes (first = last), or none.
fn find_cycle(edges: &[Edge]) -> Option<Vec<String>> {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in edges {
        graph.entry(&e.from).or_default().insert(&e.to);
    }
    fn visit<'a>(
        node: &'a str,
        graph: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = path.iter().position(|&n| n == node) {
            let cycle = path[pos..].iter().chain([&node]);
            return Some(cycle.map(|s| s.to_string()).collect());
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        let next = graph.get(node).into_iter().flatten();
        let found = next.filter_map(|n| visit(n, graph, path, done)).next();
        path.pop();
        found
    }
    let mut done = BTreeSet::new();
    let nodes: Vec<&str> = graph.keys().copied().collect();
    nodes
        .into_iter()
        .find_map(|n| visit(n, &graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_cycle_between_the_top_level_modules_of_src() {
    let edges = edges(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    // The reader sees the house's known lower layers being used.
    for (from, to) in [("daemon", "dcs"), ("daemon", "config"), ("decide", "dcs")] {
        let seen = edges.iter().any(|e| e.from == from && e.to == to);
        assert!(
            seen,
            "no reference {from} -> {to} found: the reader is broken"
        );
    }
    if let Some(cycle) = find_cycle(&edges) {
        let files: Vec<String> = cycle
            .windows(2)
            .flat_map(|w| edges.iter().filter(move |e| e.from == w[0] && e.to == w[1]))
            .map(|e| format!("{} -> {} in {}", e.from, e.to, e.file))
            .collect();
        let cycle = cycle.join(" -> ");
        panic!("import cycle {cycle}:\n  {}", files.join("\n  "));
    }
}

#[test]
fn the_reader_finds_paths_and_cycles() {
    let code = code_only(
        r##"
        use crate::{net::Vip, dcs};
        use crate::decide::Grace; // crate::logger in a comment
        fn f() { let s = "crate::caps"; let r = r#"crate::signals"#; let c = '"'; }
        mod tests { use super::*; use super::super::base64; }
        "##,
    );
    let set =
        |names: &[&str]| -> BTreeSet<String> { names.iter().map(|s| s.to_string()).collect() };
    let config = vec!["config".to_string()];
    let want = set(&["base64", "config", "dcs", "decide", "net"]);
    assert_eq!(referenced_tops(&config, &code), want);
    // From a nested file, `super::super` leaves the top-level module.
    let nested = vec!["dcs".to_string(), "etcd".to_string()];
    let tops = referenced_tops(&nested, &code_only("use super::super::config::X;"));
    assert_eq!(tops, set(&["config"]));
    let tops = referenced_tops(&nested, &code_only("use super::http;"));
    assert_eq!(tops, set(&["dcs"]));

    let edge = |from: &str, to: &str| Edge {
        from: from.into(),
        to: to.into(),
        file: String::new(),
    };
    let acyclic = [edge("a", "b"), edge("b", "c"), edge("a", "c")];
    assert_eq!(find_cycle(&acyclic), None);
    let cyclic = [edge("a", "b"), edge("b", "c"), edge("c", "a")];
    let want = ["a", "b", "c", "a"].map(String::from).to_vec();
    assert_eq!(find_cycle(&cyclic), Some(want));
}
